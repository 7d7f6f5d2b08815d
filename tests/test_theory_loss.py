"""daedyn.theory, losses (daedyn/theory/_loss.py): scalar_loss is the potential of the flow,
expected_loss equals the data form and the sum of per-direction losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from daedyn import theory


def test_scalar_loss_is_the_potential_of_the_flow(x64):
    lam, eps, gamma, tau, n = 1.3, 0.7, 0.2, 5.0, 3.0
    w1, w2 = 0.4, -1.1
    g1, g2 = jax.grad(theory.scalar_loss, argnums=(0, 1))(w1, w2, lam, eps, gamma, tau, n)
    w = w1 * w2
    rhs1 = w2 * lam * (1 - w) - eps * w2 * w2 * w1 - n * gamma * w1
    rhs2 = w1 * lam * (1 - w) - eps * w2 * w1 * w1 - n * gamma * w2
    # tau dw/dt = -tau grad l, exact up to float64 rounding (1e-14)
    np.testing.assert_allclose([-tau * g1, -tau * g2], [rhs1, rhs2], rtol=1e-14)
    # Figure 1's surface: lam/2 (1 - w)^2 + eps/2 w^2 at tau = n = 1
    assert float(theory.scalar_loss(0.5, 2.0, 1.0, 5.0)) == pytest.approx(2.5, rel=1e-15)


def test_expected_loss_from_data_and_eigenbasis(x64):
    rng = np.random.default_rng(0)
    n_s, d, h = 40, 5, 3
    x = rng.random((n_s, d))
    sigma = x.T @ x
    w1 = rng.normal(size=(h, d))
    w2 = rng.normal(size=(d, h))
    eps, gamma = 2.0, 0.3
    w = w2 @ w1
    direct = (0.5 / n_s) * np.sum((x - x @ w.T) ** 2) + 0.5 * eps / n_s * np.sum(w * w) \
        + 0.5 * gamma * (np.sum(w1**2) + np.sum(w2**2))
    # the data form and the Sigma form: same number up to float64 rounding (1e-12)
    assert float(theory.expected_loss(w1, w2, sigma, n_s, eps, gamma)) == pytest.approx(direct, rel=1e-12)
    # decoupled weights W1 = R D1 V^T, W2 = V D2 R^T: the loss is sum_j (tau/n) scalar_loss_j (+ the
    # directions the H hidden units do not cover, which keep lam_j / (2n))
    lam, v = np.linalg.eigh(sigma)
    lam, v = lam[::-1], v[:, ::-1]
    r, _ = np.linalg.qr(rng.normal(size=(h, h)))
    d1, d2 = rng.normal(size=h), rng.normal(size=h)
    w1o = r @ np.diag(d1) @ v[:, :h].T
    w2o = v[:, :h] @ np.diag(d2) @ r.T
    tau = 7.0
    per_dir = theory.scalar_loss(d1, d2, lam[:h], eps, gamma, tau, n_s) * tau / n_s
    expect = float(jnp.sum(per_dir)) + lam[h:].sum() / (2 * n_s)
    assert float(theory.expected_loss(w1o, w2o, sigma, n_s, eps, gamma)) == pytest.approx(expect, rel=1e-12)
    # batched weights
    batch = theory.expected_loss(np.stack([w1, w1o]), np.stack([w2, w2o]), sigma, n_s, eps, gamma)
    np.testing.assert_allclose(batch, [direct, expect], rtol=1e-12)



def test_expected_loss_shape_mismatch():
    with pytest.raises(ValueError, match="shapes do not match"):
        theory.expected_loss(np.ones((2, 3)), np.ones((2, 3)), np.eye(3), 5)
