"""Tests for daedyn.models: initialisation statistics, shapes, activations, reconstruction."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import models


def test_init_shapes_scale_and_key():
    p = models.init_autoencoder(50, 40, key=jr.key(0), init_scale=1e-3)
    assert set(p) == {"w1", "w2"}  # biases off by default, as in the paper
    assert p["w1"].shape == (40, 50) and p["w2"].shape == (50, 40)
    assert p["w1"].dtype == jnp.float32
    # 2000 entries per matrix: the sample std has relative standard error 1/sqrt(2 * 2000) = 1.6%;
    # 10% is > 6 standard errors.
    for w in (p["w1"], p["w2"]):
        np.testing.assert_allclose(float(jnp.std(w)), 1e-3, rtol=0.1)
    q = models.init_autoencoder(50, 40, key=jr.key(0), init_scale=1e-3)
    np.testing.assert_array_equal(p["w1"], q["w1"])  # same key, same weights
    r = models.init_autoencoder(50, 40, key=jr.key(1), init_scale=1e-3)
    assert not np.allclose(p["w1"], r["w1"])
    assert not np.allclose(p["w1"], p["w2"].T)  # independent keys per matrix


def test_bias_and_float64(x64):
    p = models.init_autoencoder(3, 2, key=jr.key(0), bias=True, dtype=jnp.float64)
    assert p["b1"].shape == (2,) and p["b2"].shape == (3,)
    assert all(v.dtype == jnp.float64 for v in p.values())
    assert float(jnp.abs(p["b1"]).max()) == 0.0


def test_linear_reconstruction_is_w2_w1():
    p = models.init_autoencoder(6, 3, key=jr.key(2), init_scale=1.0)
    x = jr.normal(jr.key(3), (5, 6))
    out = models.reconstruct(p, x, precision="highest")
    ref = x @ models._end_to_end(p, precision="highest").T
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)  # float32 matmul reassociation


@pytest.mark.parametrize("act,fn", [("relu", jax.nn.relu), ("tanh", jnp.tanh), ("sigmoid", jax.nn.sigmoid),
                                    (jnp.sin, jnp.sin)])
def test_nonlinear_reconstruction(act, fn):
    p = models.init_autoencoder(6, 3, key=jr.key(2), init_scale=1.0, bias=True)
    p["b1"] = jnp.arange(3.0)
    p["b2"] = -jnp.arange(6.0)
    x = jr.normal(jr.key(3), (5, 6))
    ref = fn(x @ p["w1"].T + p["b1"][None, :]) @ p["w2"].T + p["b2"][None, :]
    np.testing.assert_allclose(models.reconstruct(p, x, act), ref, rtol=1e-5, atol=1e-5)


def test_activation_names():
    assert models.is_linear(None) and models.is_linear("linear") and not models.is_linear("relu")
    with pytest.raises(ValueError, match="activation"):
        models.get_activation("not_an_activation")
    with pytest.raises(ValueError, match="activation"):
        models.get_activation(3)


@pytest.mark.parametrize("kw", [dict(d=0, h=2), dict(d=2, h=0), dict(d=2, h=2, init_scale=-1.0)])
def test_bad_input(kw):
    with pytest.raises(ValueError, match="must lie in"):
        models.init_autoencoder(key=jr.key(0), **kw)


def test_non_floating_dtype_is_refused():
    with pytest.raises(ValueError, match="dtype must be a floating dtype"):
        models.init_autoencoder(3, 2, key=jr.key(0), dtype=jnp.int32)


def test_end_to_end_is_the_product_of_the_factors():
    p = models.init_autoencoder(4, 2, key=jr.key(1), init_scale=1.0)
    np.testing.assert_allclose(models._end_to_end(p, precision="highest"),
                               np.asarray(p["w2"], np.float64) @ np.asarray(p["w1"], np.float64),
                               rtol=1e-5, atol=1e-6)  # float32 products of 2 terms

