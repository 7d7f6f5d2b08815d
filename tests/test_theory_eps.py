"""daedyn.theory, noise levels (daedyn/theory/_eps.py): eps = n * variance, and daedyn.noise.eps_of
uses the same conversion."""

import jax
import numpy as np
import pytest

from daedyn import noise, theory


def test_eps_conversions():
    assert float(theory.gaussian_eps(0.5, 50000)) == 25000.0
    assert float(theory.laplace_eps(0.5, 10)) == 5.0  # Laplace variance 2 b^2
    assert float(theory.variance_eps(2 * 0.5**2, 10)) == float(theory.laplace_eps(0.5, 10))
    with pytest.raises(ValueError, match="sigma2"):
        theory.gaussian_eps(-1.0, 10)
    with pytest.raises(ValueError, match="n must lie"):
        theory.laplace_eps(1.0, 0)
    with pytest.raises(ValueError, match="var must"):
        theory.variance_eps(-0.1, 7)


@pytest.mark.parametrize("x64_on", [False, True])
def test_one_conversion_shared_with_noise(x64_on):
    # daedyn.noise.eps_of converts with theory.variance_eps: the same numbers and dtype, bit for bit.
    with jax.enable_x64(x64_on):
        for nz, n in [(noise.gaussian(0.37), 17), (noise.laplace(np.array([0.1, 0.5])), 10.0),
                      (noise.custom(lambda k, s, d: np.zeros(s, d), variance=0.25), np.array([3, 4]))]:
            got = noise.eps_of(nz, n)
            want = theory.variance_eps(nz.variance, n)
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(noise.eps_of(noise.laplace(0.3), 7), theory.laplace_eps(0.3, 7))
        np.testing.assert_array_equal(noise.eps_of(noise.gaussian(0.3), 7), theory.gaussian_eps(0.3, 7))
