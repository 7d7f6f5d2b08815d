"""Tests for daedyn.noise: variances of the samplers, eps conversion, pytree behaviour, bad input."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import noise

M = 200_000  # samples per variance estimate


def _var_tolerance(var, kurtosis):
    # The sample variance of M i.i.d. draws has standard error var * sqrt((kurtosis - 1) / M);
    # 5 standard errors keep the false-failure rate below 1e-6 (Gaussian kurtosis 3, Laplace 6).
    return 5 * var * np.sqrt((kurtosis - 1) / M)


def test_gaussian_variance():
    x = noise.gaussian(0.5).sample(jr.key(0), (M,))
    assert abs(float(jnp.var(x)) - 0.5) < _var_tolerance(0.5, 3)
    assert abs(float(jnp.mean(x))) < 5 * np.sqrt(0.5 / M)  # 5 standard errors of the mean


@pytest.mark.parametrize("b", [0.1, 0.7])
def test_laplace_variance_is_two_b_squared(b):
    nz = noise.laplace(b)
    np.testing.assert_allclose(float(nz.variance), 2 * b**2, rtol=1e-6)  # float32 rounding of b^2
    x = nz.sample(jr.key(1), (M,))
    assert abs(float(jnp.var(x)) - 2 * b**2) < _var_tolerance(2 * b**2, 6)
    # Laplace, not Gaussian: E|x| = b for Laplace(b) (sqrt(2/pi) * sigma ~ 0.798 * 1.414 b = 1.13 b
    # for a Gaussian of the same variance); std error of the mean |x| is b / sqrt(M).
    assert abs(float(jnp.mean(jnp.abs(x))) - b) < 5 * b / np.sqrt(M)


def test_custom_sampler_rescaled_by_variance():
    uni = noise.custom(lambda k, s, d: jr.uniform(k, s, d, -1.0, 1.0), variance=1.0 / 3.0)
    assert uni.kind == "custom"
    x = uni.with_variance(2.0).sample(jr.key(2), (M,))
    # Uniform has kurtosis 1.8.
    assert abs(float(jnp.var(x)) - 2.0) < _var_tolerance(2.0, 1.8)
    assert float(jnp.max(jnp.abs(x))) <= np.sqrt(6.0) * (1 + 1e-6)  # support [-sqrt(3 * 2), sqrt(6)]


def test_eps_of():
    assert float(noise.eps_of(noise.gaussian(0.5), 1000)) == 500.0
    np.testing.assert_allclose(float(noise.eps_of(noise.laplace(0.5), 10)), 2 * 10 * 0.25, rtol=1e-7)
    assert float(noise.eps_of(None, 10)) == 0.0


def test_eps_of_checks_and_broadcasts():
    # The conversion eps = n * variance (daedyn.noise, the only one): n must be > 0 (also without noise),
    # and the variance (here a batch of 3) and n (a column of 2) broadcast explicitly, which conftest's
    # jax_numpy_rank_promotion="raise" would refuse for an implicit rank promotion.
    for nz in (noise.gaussian(0.5), None):
        with pytest.raises(ValueError, match=r"n must lie in \(0, inf\)"):
            noise.eps_of(nz, 0)
    eps = noise.eps_of(noise.gaussian(jnp.array([0.0, 0.5, 2.0])), np.array([[10], [20]]))
    assert eps.shape == (2, 3) and eps.dtype == jnp.float32
    np.testing.assert_array_equal(eps, [[0.0, 5.0, 20.0], [0.0, 10.0, 40.0]])  # exact products


def test_unit_sampler_rebuilds_the_noise():
    # (kind, unit_sampler) is static and hashable: train keys its compiled function on it.
    nz = noise.laplace(0.5)
    hash((nz.kind, nz.unit_sampler))
    again = noise.Noise(nz.kind, nz.variance, nz.unit_sampler)
    np.testing.assert_array_equal(again.sample(jr.key(6), (5,)), nz.sample(jr.key(6), (5,)))


def test_pytree_vmap_and_grad():
    nz = noise.gaussian(jnp.array([0.0, 1.0, 4.0]))
    leaves, treedef = jax.tree_util.tree_flatten(nz)
    assert len(leaves) == 1
    keys = jr.split(jr.key(3), 3)
    x = jax.vmap(lambda n, k: n.sample(k, (M,)))(nz, keys)
    assert x.shape == (3, M)
    assert float(jnp.max(jnp.abs(x[0]))) == 0.0  # zero variance gives exactly zero noise
    np.testing.assert_allclose(np.var(np.asarray(x[1:]), axis=1), [1.0, 4.0],
                               atol=_var_tolerance(4.0, 3))
    # Reparameterised: d/dvar of sum(sample^2) = sum(unit^2) / 1 (since sample^2 = var * unit^2).
    g = jax.grad(lambda v: jnp.sum(noise.gaussian(v).sample(jr.key(4), (1000,)) ** 2))(2.0)
    unit = noise.gaussian(1.0).sample(jr.key(4), (1000,))
    np.testing.assert_allclose(float(g), float(jnp.sum(unit**2)), rtol=1e-5)  # float32 sums


def test_float64(x64):
    x = noise.laplace(0.3).sample(jr.key(5), (10,), jnp.float64)
    assert x.dtype == jnp.float64


def test_as_noise():
    assert noise.as_noise(None) is None
    nz = noise.as_noise("laplace", 0.5)
    assert nz.kind == "laplace" and nz.variance == 0.5
    with pytest.raises(ValueError, match="noise must be"):
        noise.as_noise("uniform")


@pytest.mark.parametrize("make", [lambda: noise.gaussian(-1.0), lambda: noise.laplace(float("nan")),
                                  lambda: noise.custom(lambda k, s, d: 0.0, variance=0.0),
                                  lambda: noise.custom("not callable", variance=1.0)])
def test_bad_input(make):
    with pytest.raises(ValueError, match="sigma2|b|variance|sample_fn"):
        make()
