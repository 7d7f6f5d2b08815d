"""Each corruption's quadratic-form moments (M, K) (daedyn/_corruption.py, daedyn/noise.py,
daedyn/train/_corruption.py) against exact enumeration of every mask, or Monte Carlo of corrupt():
K = sum_i x_i E[x~_i]^T, M = sum_i E[x~_i x~_i^T], written here in NumPy; the core takes K and
C = M - K (inverted masking, covariance and isotropic noise: K = Sigma; raw masking: K = (1 - p) Sigma)."""

import itertools
from types import SimpleNamespace

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import noise, schedules
from daedyn.train._corruption import _raw_masking

X = np.array([[0.9, 0.1, 0.4], [0.2, 0.7, 0.5], [0.6, 0.3, 0.8]])  # N = 3 samples, D = 3
SIGMA = X.T @ X


def enumerated_moments(p, rescale):
    """(M, K) of masking over all 2^D masks of every sample (samples independent): exact."""
    m_sum, k_sum = np.zeros((3, 3)), np.zeros((3, 3))
    for x in X:
        mean, second = np.zeros(3), np.zeros((3, 3))
        for bits in itertools.product([0.0, 1.0], repeat=3):
            mask = np.array(bits)
            prob = np.prod(np.where(mask == 1, 1 - p, p))
            xt = x * mask / (1 - p) if rescale else x * mask
            mean += prob * xt
            second += prob * np.outer(xt, xt)
        m_sum += second
        k_sum += np.outer(x, mean)
    return m_sum, k_sum


def spectrum():
    lam, v = np.linalg.eigh(SIGMA)
    lam, v = lam[::-1], v[:, ::-1]
    return SimpleNamespace(eigvals=jnp.asarray(lam), eigvecs=jnp.asarray(v), n=3.0, sigma=jnp.asarray(SIGMA))


@pytest.mark.parametrize("p", [0.3, 0.75])
def test_inverted_masking_term_is_m_minus_k(x64, p):
    m, k = enumerated_moments(p, rescale=True)
    np.testing.assert_allclose(k, SIGMA, rtol=1e-14)  # unbiased: K = Sigma
    c = np.asarray(noise.masking(p).marginal_term(SIGMA, basis="input"))
    # 8 masks x 3 samples in float64: rounding ~1e-15; bound 1e-13. The term is diagonal in the input basis.
    np.testing.assert_allclose(np.diag(c), m - k, rtol=1e-13, atol=1e-15)
    data = spectrum()
    v = np.asarray(data.eigvecs)
    np.testing.assert_allclose(noise.masking(p).marginal_term(data), v.T @ (m - k) @ v, rtol=1e-12,
                               atol=1e-14)


@pytest.mark.parametrize("path", ["sigma", "eigen", "data"])
def test_raw_masking_moments_on_every_training_path(x64, path):
    p = 0.3
    m, k = enumerated_moments(p, rescale=False)
    np.testing.assert_allclose(k, (1 - p) * SIGMA, rtol=1e-14)  # the mean is (1 - p) x
    data = spectrum()
    v = np.asarray(data.eigvecs)
    term, scale = _raw_masking(noise.masking(p, rescale=False), data, path)
    term, scale = np.asarray(term), float(scale)
    np.testing.assert_allclose(scale, 1 - p, rtol=1e-15)  # K = scale Sigma
    if path == "sigma":  # the core's C = M - K, in the input basis
        np.testing.assert_allclose(term, m - k, rtol=1e-12, atol=1e-14)
    elif path == "eigen":
        np.testing.assert_allclose(term, v.T @ (m - k) @ v, rtol=1e-12, atol=1e-14)
    else:  # data path: rows scaled by s = 1 - p, plus the covariance M - s^2 Sigma
        np.testing.assert_allclose(np.diag(term), m - scale**2 * SIGMA, rtol=1e-12, atol=1e-14)


def test_gaussian_moments_monte_carlo(x64):
    # (k, m) = (lam, lam + n s^2) per eigen-direction against corrupt(): K_jj = sum_i (v_j.x_i)(v_j.x~_i),
    # M_jj = sum_i (v_j.x~_i)^2 averaged over 20000 draws of the three rows
    s2, draws = 0.05, 20000
    data = spectrum()
    lam, v = np.asarray(data.eigvals), np.asarray(data.eigvecs)
    k, m = (np.asarray(a) for a in noise.gaussian(s2).direction_moments(lam, 3.0))
    np.testing.assert_allclose(k, lam, rtol=1e-15)
    xt = np.asarray(noise.gaussian(s2).corrupt(jr.key(0), jnp.broadcast_to(X, (draws, 3, 3))))
    proj, proj_t = X @ v, xt @ v  # (3, D), (draws, 3, D)
    m_mc = np.sum(proj_t**2, axis=1)  # (draws, D)
    k_mc = np.sum(proj[None] * proj_t, axis=1)
    # 5 standard errors of each mean (measured errors ~1 SE)
    for est, want in ((m_mc, m), (k_mc, k)):
        se = est.std(axis=0) / np.sqrt(draws)
        assert np.all(np.abs(est.mean(axis=0) - want) < 5 * se), (est.mean(axis=0), want, se)
    assert np.all(m - k == pytest.approx(3 * s2, rel=1e-12))  # eps = n s^2


def test_scheduled_terms_piece_by_piece(x64):
    # a piecewise p: the term of each piece is that piece's constant term; a piecewise variance: the
    # per-direction (k, m) of each piece, on the merged boundaries
    ps = schedules.piecewise_constant([10.0, 30.0], [0.1, 0.5, 0.25])
    term = noise.masking(ps).marginal_term(SIGMA, basis="input")
    for t, p in ((0.0, 0.1), (9.5, 0.1), (10.0, 0.5), (29.0, 0.5), (30.0, 0.25), (1e3, 0.25)):
        m, k = enumerated_moments(p, rescale=True)
        np.testing.assert_allclose(np.asarray(term(t)), np.diag(m - k), rtol=1e-13, atol=1e-15)
    # a piecewise covariance (per-component variances): n S_i of the piece, rotated to the eigenbasis
    variances = np.array([[0.2, 0.1, 0.0], [0.05, 0.3, 0.1]])
    term = noise.gaussian_covariance(schedules.piecewise_constant([5.0], variances)).marginal_term(spectrum())
    v = np.asarray(spectrum().eigvecs)
    for t, i in ((0.0, 0), (4.9, 0), (5.0, 1)):
        draws = 100000  # covariance of corrupt() of the piece's value, Monte Carlo: n Cov(x~ | x)
        z = np.asarray(noise.gaussian_covariance(variances[i]).corrupt(jr.key(i), jnp.zeros((draws, 3))))
        np.testing.assert_allclose(np.cov(z.T), np.diag(variances[i]), atol=5 * np.sqrt(2 * 0.09 / draws))
        np.testing.assert_allclose(np.asarray(term(t)), v.T @ (3.0 * np.diag(variances[i])) @ v, rtol=1e-12,
                                   atol=1e-14)
