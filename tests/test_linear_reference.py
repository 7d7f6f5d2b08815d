"""The shared core (daedyn/_linear) where its existing tests do not look: the coupled Hessian-vector
product away from a fixed point (G = (W A - Lam) / N far from 0), and Sigma given as a scalar (s I),
each against a dense reference written here in NumPy or jax.numpy with full matrices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from daedyn import _linear
from daedyn._linear._coupled import _hvp_fn, coupled_hessian_eigenvalue

LAM, N = np.array([8.0, 4.0, 2.0, 1.0]), 10.0


def dense_loss(w1, w2, a, s, n):
    """1/(2N) [tr S - 2 tr(W S) + tr(W A W^T)], W = W2 W1, every term a dense matrix."""
    w = w2 @ w1
    return (jnp.trace(s) - 2 * jnp.trace(w @ s) + jnp.trace(w @ a @ w.T)) / (2 * n)


def test_coupled_hvp_away_from_the_fixed_point(x64):
    rng = np.random.default_rng(3)
    m = rng.standard_normal((4, 4))
    c = m @ m.T * 0.5
    w1, w2 = rng.standard_normal((3, 4)), rng.standard_normal((4, 3))  # H = 3, far from any fixed point
    g = ((w2 @ w1) @ (np.diag(LAM) + c) - np.diag(LAM)) / N
    assert np.linalg.norm(g) > 1.0  # the G terms of the product matter here (at a fixed point G = 0)
    a, s = jnp.asarray(np.diag(LAM) + c), jnp.asarray(np.diag(LAM))
    f = lambda p1, p2: dense_loss(p1, p2, a, s, N)
    hvp = _hvp_fn(LAM, c, N, w1, w2)
    ref_hvp = jax.jit(lambda d1, d2: jax.jvp(jax.grad(f, argnums=(0, 1)), (w1, w2), (d1, d2))[1])
    for _ in range(3):
        d1, d2 = rng.standard_normal(w1.shape), rng.standard_normal(w2.shape)
        want = ref_hvp(d1, d2)  # forward-over-reverse autodiff of the dense loss
        got = hvp(d1, d2)
        # the same float64 products in another order: measured 3e-15 relative; bound 1e-12
        for x, y in zip(got, want):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12 * np.abs(y).max())
    # Lanczos over the whole space (24 parameters) gives the largest eigenvalue of the dense Hessian
    x = jnp.concatenate([jnp.ravel(w1), jnp.ravel(w2)])
    flat = lambda x: f(x[:12].reshape(3, 4), x[12:].reshape(4, 3))
    top = np.linalg.eigvalsh(np.asarray(jax.jit(jax.hessian(flat))(x)))[-1]
    got = coupled_hessian_eigenvalue(LAM, c, N, hidden=3, steps=24, w1=w1, w2=w2)
    np.testing.assert_allclose(got, top, rtol=1e-9)  # measured 1e-15; Lanczos' exact-space bound


@pytest.mark.parametrize("form", ["gram", "residual"])
def test_scalar_sigma_is_s_times_identity(x64, form):
    # Sigma = s I given as the scalar s: its trace is D s (D = 4), in the loss and the gradient
    rng = np.random.default_rng(4)
    ws = (rng.standard_normal((3, 4)), rng.standard_normal((2, 3)), rng.standard_normal((4, 2)))  # depth 3
    s, c, gamma = 2.5, np.diag([0.5, 1.0, 0.2, 3.0]), 0.03
    mm = _linear.matmul_fn("highest")
    got = jax.jit(lambda ws: _linear.loss(ws, s, c, n=N, gamma=gamma, mm=mm, form=form))(ws)

    def ref(*ws):
        w = ws[2] @ ws[1] @ ws[0]
        sig = s * jnp.eye(4)
        quad = jnp.trace(sig) - 2 * jnp.trace(w @ sig) + jnp.trace(w @ (sig + c) @ w.T)
        return quad / (2 * N) + gamma / 2 * sum(jnp.sum(x * x) for x in ws)

    # float64, a dozen terms: measured <= 4e-16 relative; bound 1e-12 (losing the factor D: 3e-2)
    np.testing.assert_allclose(got, jax.jit(ref)(*ws), rtol=1e-12)
    if form == "gram":
        got = jax.jit(lambda ws: _linear.grad(ws, s, c, n=N, gamma=gamma, mm=mm))(ws)
        for x, y in zip(got, jax.jit(jax.grad(ref, argnums=(0, 1, 2)))(*ws)):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-13)
