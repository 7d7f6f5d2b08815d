"""Noise levels (daedyn/noise.py): eps = n * variance, written once (``eps_of``); the values the former
``theory.gaussian_eps`` / ``laplace_eps`` / ``variance_eps`` gave, now spelled ``noise.eps_of``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from daedyn import noise


def _noise_with_variance(var):
    """A noise object whose variance is not checked on construction: eps_of's own checks run."""
    return noise.Noise("custom", var, lambda k, s, d: jnp.zeros(s, d))


def test_eps_conversions():
    assert float(noise.eps_of(noise.gaussian(0.5), 50000)) == 25000.0
    assert float(noise.eps_of(noise.laplace(0.5), 10)) == 5.0  # Laplace variance 2 b^2
    laplace = float(noise.eps_of(noise.laplace(0.5), 10))
    assert float(noise.eps_of(_noise_with_variance(2 * 0.5**2), 10)) == laplace
    assert float(noise.eps_of(_noise_with_variance(0.5), 4)) == 2.0
    with pytest.raises(ValueError, match="sigma2"):
        noise.eps_of(noise.gaussian(-1.0), 10)
    with pytest.raises(ValueError, match="n must lie"):
        noise.eps_of(noise.laplace(1.0), 0)
    with pytest.raises(ValueError, match="var must"):
        noise.eps_of(_noise_with_variance(-0.1), 7)


@pytest.mark.parametrize("x64_on", [False, True])
def test_one_conversion_n_times_variance(x64_on):
    # eps_of is n * variance in the promoted floating dtype, bit for bit, whatever the noise kind.
    with jax.enable_x64(x64_on):
        for nz, n in [(noise.gaussian(0.37), 17), (noise.laplace(np.array([0.1, 0.5])), 10.0),
                      (noise.custom(lambda k, s, d: np.zeros(s, d), variance=0.25), np.array([3, 4]))]:
            got = noise.eps_of(nz, n)
            dtype = jnp.result_type(jnp.asarray(nz.variance), jnp.asarray(n), float)
            want = jnp.asarray(n).astype(dtype) * jnp.asarray(nz.variance).astype(dtype)
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(noise.eps_of(noise.laplace(0.3), 7),
                                      noise.eps_of(_noise_with_variance(noise.laplace(0.3).variance), 7))
        np.testing.assert_array_equal(noise.eps_of(noise.gaussian(0.3), 7),
                                      noise.eps_of(_noise_with_variance(0.3), 7))
