"""Tests for masking, salt-and-pepper and covariance noise (daedyn.noise, daedyn._corruption):
marginalised terms against exact expectations and Monte Carlo, one GD step against NumPy, bad input."""

import itertools

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import _linear, noise
from daedyn.spectrum import compute_spectrum

MM = _linear.matmul_fn("highest")


def _problem(n=3, d=4, h=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (n, d))
    w1 = 0.5 * rng.standard_normal((h, d))
    w2 = 0.5 * rng.standard_normal((d, h))
    return x, w1, w2


def _sampled_loss(ws, x, xt):
    """sum_i ||x_i - W x~_i||^2 / (2N): the data term on corrupted inputs (row convention)."""
    recon = xt @ ws[0].T @ ws[1].T
    return jnp.sum(jnp.square(x - recon)) / (2 * x.shape[0])


def _exact_mask_expectation(ws, x, p, rescale):
    """E over every one of the 2^D masks per sample (samples are independent): exact, no sampling."""
    total = 0.0
    for bits in itertools.product([0.0, 1.0], repeat=x.shape[1]):
        m = np.array(bits)
        prob = np.prod(np.where(m == 1, 1 - p, p))
        xt = x * m / (1 - p) if rescale else x * m
        total = total + prob * _sampled_loss(ws, x, jnp.asarray(xt))
    return total


@pytest.mark.parametrize("p", [0.3, 0.8])
def test_masking_marginal_loss_equals_exact_expectation(p, x64):
    x, w1, w2 = _problem()
    sigma = x.T @ x
    c = noise.masking(p).marginal_term(sigma, basis="input")
    np.testing.assert_allclose(c, p / (1 - p) * np.diag(sigma), rtol=1e-15, atol=0)
    ws = (jnp.asarray(w1), jnp.asarray(w2))
    marg = _linear.loss(ws, jnp.asarray(sigma), c, n=x.shape[0], mm=MM)
    exact = _exact_mask_expectation(ws, x, p, rescale=True)
    # Both are exact; 16 masks x 3 samples summed in float64: rounding ~1e-15 relative.
    np.testing.assert_allclose(marg, exact, rtol=1e-12)


def test_raw_masking_is_inverted_masking_of_the_scaled_network(x64):
    # rescale=False: E loss(W) equals the core's loss of W' = (1 - p) W with the same C.
    p = 0.4
    x, w1, w2 = _problem(seed=1)
    sigma = x.T @ x
    mk = noise.masking(p, rescale=False)
    c = mk.marginal_term(sigma, basis="input")
    ws = (jnp.asarray(w1), jnp.asarray(w2))
    scaled = (ws[0], mk.mean_scale * ws[1])  # W' = W2' W1 with W2' = (1 - p) W2
    marg = _linear.loss(scaled, jnp.asarray(sigma), c, n=x.shape[0], mm=MM)
    exact = _exact_mask_expectation(ws, x, p, rescale=False)
    np.testing.assert_allclose(marg, exact, rtol=1e-12)  # exact enumeration: float64 rounding


def test_masking_loss_and_gradient_match_monte_carlo(x64):
    p, k = 0.3, 1000
    x, w1, w2 = _problem(n=6, d=5, h=2, seed=2)
    sigma = jnp.asarray(x.T @ x)
    ws = (jnp.asarray(w1), jnp.asarray(w2))
    mk = noise.masking(p)
    c = mk.marginal_term(sigma, basis="input")

    def sampled(ws, key):
        return _sampled_loss(ws, jnp.asarray(x), mk.corrupt(key, jnp.asarray(x)))

    keys = jr.split(jr.key(3), k)
    losses = jax.vmap(sampled, in_axes=(None, 0))(ws, keys)
    grads = jax.vmap(jax.grad(sampled), in_axes=(None, 0))(ws, keys)
    marg = _linear.loss(ws, sigma, c, n=x.shape[0], mm=MM)
    marg_grad = _linear.grad(ws, sigma, c, n=x.shape[0], mm=MM)
    # The mean of k i.i.d. draws is off by at most 5 standard errors std / sqrt(k) except with
    # probability < 1e-6 per quantity (Gaussian tail of the CLT; 1 loss + 36 gradient entries).
    se = np.std(losses) / np.sqrt(k)
    assert abs(float(np.mean(losses)) - float(marg)) < 5 * se
    for g_mc, g in zip(grads, marg_grad, strict=True):
        se = np.std(np.asarray(g_mc), axis=0) / np.sqrt(k)
        assert np.all(np.abs(np.mean(np.asarray(g_mc), axis=0) - np.asarray(g)) < 5 * se + 1e-12)


def test_marginal_gd_step_equals_numpy(x64):
    # One GD step on the marginalised masking loss in the eigenbasis (core) vs plain NumPy in the
    # input basis: G = (W (Sigma + C) - Sigma) / n, dW1 = W2^T G, dW2 = G W1^T.
    p, alpha, gamma = 0.25, 0.05, 0.01
    x, w1, w2 = _problem(n=30, d=5, h=3, seed=4)
    n = x.shape[0]
    spec = compute_spectrum(jnp.asarray(x))
    c_eig = noise.masking(p).marginal_term(spec)
    v = np.asarray(spec.eigvecs)
    ws_eig = _linear.to_eigenbasis((jnp.asarray(w1), jnp.asarray(w2)), jnp.asarray(v), MM)
    new = _linear.gd_step(ws_eig, spec.eigvals, c_eig, n=n, gamma=gamma, alpha=alpha, mm=MM)
    new1, new2 = _linear.from_eigenbasis(new, jnp.asarray(v), MM)

    sigma = x.T @ x
    cmat = np.diag(p / (1 - p) * np.diag(sigma))
    g = (w2 @ w1 @ (sigma + cmat) - sigma) / n
    ref1 = w1 - alpha * (w2.T @ g + gamma * w1)
    ref2 = w2 - alpha * (g @ w1.T + gamma * w2)
    # float64 rounding through an eigendecomposition of Sigma (condition ~1e2): 1e-12 relative.
    np.testing.assert_allclose(new1, ref1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(new2, ref2, rtol=1e-12, atol=1e-14)


def test_marginal_term_eigen_is_rotated_input_term(x64):
    x, *_ = _problem(n=20, d=5, seed=5)
    spec = compute_spectrum(jnp.asarray(x))
    v = np.asarray(spec.eigvecs)
    mk = noise.masking(0.5)
    np.testing.assert_allclose(mk.marginal_term(spec, basis="input"), np.diag(x.T @ x), rtol=1e-12)
    np.testing.assert_allclose(mk.marginal_term(spec), v.T @ np.diag(np.diag(x.T @ x)) @ v, atol=1e-12)
    cov = np.array([[1.0, 0.5, 0, 0, 0], [0.5, 1.0, 0, 0, 0], [0, 0, 2.0, 0, 0], [0, 0, 0, 0, 0],
                    [0, 0, 0, 0, 0.1]])
    gc = noise.gaussian_covariance(cov)
    np.testing.assert_allclose(gc.marginal_term(spec), 20 * v.T @ cov @ v, atol=1e-12)
    np.testing.assert_allclose(gc.marginal_term(n=20, basis="input"), 20 * cov, rtol=1e-15)
    # isotropic noise: the scalar eps = n s^2, the existing conversion
    assert float(noise.gaussian(0.5).marginal_term(spec)) == float(noise.eps_of(noise.gaussian(0.5), 20))


def test_covariance_sampling_and_marginal_loss(x64):
    cov = np.array([[1.0, 0.6, 0.0], [0.6, 0.5, 0.1], [0.0, 0.1, 0.2]])
    k = 200_000
    z = noise.gaussian_covariance(cov).corrupt(jr.key(6), jnp.zeros((k, 3)))
    # Sample covariance entries: std error sqrt((S_ii S_jj + S_ij^2) / k) <= 1.6e-3 here; 5 of them.
    np.testing.assert_allclose(np.cov(np.asarray(z).T), cov, atol=5 * np.sqrt(1.36 / k))
    zd = noise.gaussian_covariance(np.diag(cov)).corrupt(jr.key(7), jnp.zeros((k, 3)))
    np.testing.assert_allclose(np.var(np.asarray(zd), axis=0), np.diag(cov), atol=5 * np.sqrt(2 / k))


def test_salt_and_pepper_samples_and_refuses_marginalisation():
    sp = noise.salt_and_pepper(0.4, low=-1.0, high=2.0)
    x = jnp.full((100_000,), 0.25)
    xt = np.asarray(sp.corrupt(jr.key(8), x))
    assert set(np.unique(xt)) <= {-1.0, 0.25, 2.0}
    # each value's frequency: 0.6, 0.2, 0.2 with std error <= sqrt(0.25 / 1e5); 5 of them
    for value, freq in ((0.25, 0.6), (-1.0, 0.2), (2.0, 0.2)):
        assert abs(np.mean(xt == value) - freq) < 5 * np.sqrt(0.25 / x.size)
    with pytest.raises(ValueError, match="salt_and_pepper.*cannot be marginalised"):
        sp.marginal_term(np.eye(3), basis="input")


def test_masking_float32_and_pytree():
    x = jnp.ones((4, 3), jnp.float32)
    xt = noise.masking(0.5).corrupt(jr.key(0), x)
    assert xt.dtype == jnp.float32 and set(np.unique(np.asarray(xt))) <= {0.0, 2.0}
    # p is the traced leaf: vmap over rates and differentiate the marginal term in p
    ps = jnp.array([0.1, 0.5])
    out = jax.vmap(lambda mk: mk.marginal_term(np.eye(3), basis="input"))(noise.masking(ps))
    np.testing.assert_allclose(out[:, 0], ps / (1 - ps), rtol=1e-6)  # float32 rounding
    dc = jax.grad(lambda p: noise.masking(p).marginal_term(np.eye(3), basis="input")[0])(0.5)
    np.testing.assert_allclose(dc, 1 / (1 - 0.5) ** 2, rtol=1e-6)  # d/dp p/(1-p) = 1/(1-p)^2


@pytest.mark.parametrize("p", [-0.1, 1.0, float("nan")])
def test_masking_rejects_bad_p(p):
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\)"):
        noise.masking(p)


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(p=1.5), r"p must lie in \[0, 1\]"),
    (dict(p=0.1, low=1.0, high=0.0), "low < high"),
    (dict(p=0.1, high=float("inf")), "high must lie"),
])
def test_salt_and_pepper_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        noise.salt_and_pepper(**kwargs)


@pytest.mark.parametrize(("cov", "match"), [
    (np.array([[1.0, 0.5], [0.0, 1.0]]), "symmetric"),
    (np.array([[1.0, 2.0], [2.0, 1.0]]), "positive semi-definite"),
    (np.ones((2, 3)), "shape"),
    (np.ones((2, 2, 2)), "shape"),
    (np.array([1.0, -0.5]), "cov must lie"),
])
def test_covariance_rejects_bad_matrices(cov, match):
    with pytest.raises(ValueError, match=match):
        noise.gaussian_covariance(cov)


def test_size_and_basis_errors():
    gc = noise.gaussian_covariance(np.eye(3))
    with pytest.raises(ValueError, match="D = 3"):
        gc.corrupt(jr.key(0), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="n .*is needed"):
        gc.marginal_term(basis="input")
    with pytest.raises(ValueError, match="Spectrum"):
        noise.masking(0.2).marginal_term(np.eye(3))  # eigen basis from a Sigma matrix
    with pytest.raises(ValueError, match="basis must be"):
        noise.masking(0.2).marginal_term(np.eye(3), basis="pixel")
