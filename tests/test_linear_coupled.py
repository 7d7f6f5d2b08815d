"""GD stability with a coupled corruption term (daedyn._linear._coupled): the largest Hessian
eigenvalue of the factorised loss against jax.hessian, its closed form for a diagonal term, and the
warning where the per-direction check is silent but gradient descent diverges."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import _linear, dynamics, noise, train
from daedyn._linear import UnstableStepWarning, coupled_fixed_point, coupled_hessian_eigenvalue

LAM, N = np.array([8.0, 4.0, 2.0, 1.0]), 10.0
EPS = np.array([0.5, 30.0, 0.2, 50.0])  # much noise on directions the data barely use


def _dense_term():
    m = np.random.default_rng(1).standard_normal((4, 4))
    return m @ m.T * 0.5


def _jax_hessian_max(w1, w2, c):
    h, d = w1.shape
    mm = _linear.matmul_fn("highest")

    def f(p):
        ws = (p[: h * d].reshape(h, d), p[h * d:].reshape(d, h))
        return _linear.loss(ws, jnp.asarray(LAM), jnp.asarray(c), n=N, mm=mm, form="gram")

    x = jnp.concatenate([jnp.ravel(jnp.asarray(w1)), jnp.ravel(jnp.asarray(w2))])
    return float(np.linalg.eigvalsh(np.asarray(jax.jit(jax.hessian(f))(x)))[-1])


@pytest.mark.parametrize("hidden", [4, pytest.param(2, marks=pytest.mark.slow)])
def test_hessian_eigenvalue_matches_jax_hessian(hidden, x64):
    c = _dense_term()
    # at the estimated fixed point, and at the one gradient descent reaches from a decoupled start
    w1, w2 = coupled_fixed_point(LAM, c, hidden)
    ours = coupled_hessian_eigenvalue(LAM, c, N, hidden=hidden)
    # Lanczos (24 steps) vs a dense eigendecomposition: measured 1e-15 relative; 1e-9 leaves margin
    np.testing.assert_allclose(ours, _jax_hessian_max(w1, w2, c), rtol=1e-9)
    s1, s2 = dynamics.orthogonal_init(4, hidden, 0.01, 0.01, dtype=jnp.float64)
    tr = dynamics.matrix_gd(LAM, s1, s2, eps=c, eps_dims=2, alpha=0.5, n=N, epochs=3000,
                            save_every=3000)
    g1, g2 = np.asarray(tr.w1), np.asarray(tr.w2)
    at_gd = coupled_hessian_eigenvalue(LAM, c, N, hidden=hidden, w1=g1, w2=g2)
    np.testing.assert_allclose(at_gd, _jax_hessian_max(g1, g2, c), rtol=1e-9)
    # the estimate's fixed point is the balanced one in the top-H subspace; GD's differs slightly
    # (measured: 2e-4 relative for H = D, GD is not exactly balanced; 7e-3 for H = 2, the coupling
    # tilts the learned subspace): 2e-2
    np.testing.assert_allclose(ours, at_gd, rtol=2e-2)


def test_diagonal_term_closed_form(x64):
    w = LAM / (LAM + EPS)
    closed = max((LAM[i] + EPS[i]) * w[j] + LAM[i] for i in range(4) for j in range(4)) / N
    # float64 Lanczos on a 32-parameter problem: exact to rounding (1e-10 stated)
    np.testing.assert_allclose(coupled_hessian_eigenvalue(LAM, np.diag(EPS), N, hidden=4), closed,
                               rtol=1e-10)
    assert closed > 2 * LAM[0] / N * 3  # the cross term (i = 3, j = 0) dominates: 4.9 vs 1.6
    # isotropic noise: the per-direction value 2 lam_0 / N is exact
    np.testing.assert_allclose(coupled_hessian_eigenvalue(LAM, 3.0 * np.eye(4), N, hidden=4),
                               2 * LAM[0] / N, rtol=1e-10)


def test_matrix_gd_warns_where_the_per_direction_check_is_silent():
    # per direction: alpha < 2 / (2 lam_0 / N) = 1.25; coupled at the balanced point: alpha < 0.408.
    # measured: gradient descent from a rotated small start diverges at alpha >= 0.8 (and settles, at
    # an unbalanced factorisation of the same map, up to 0.75)
    w1, w2 = dynamics.orthogonal_init(4, 4, 0.1, 0.1, key=jr.key(0))
    assert float(np.max(_linear.check_gd_stability(LAM, EPS, 0.0, 0.8, N))) < 2  # silent
    with pytest.warns(UnstableStepWarning, match="coupled corruption term"):
        tr = dynamics.matrix_gd(LAM, w1, w2, eps=np.diag(EPS), eps_dims=2, alpha=0.8, n=N,
                                epochs=3000, save_every=3000)
    assert not np.all(np.isfinite(np.asarray(tr.mapping)))  # it did diverge
    tr = dynamics.matrix_gd(LAM, w1, w2, eps=np.diag(EPS), eps_dims=2, alpha=0.3, n=N, epochs=3000,
                            save_every=3000)  # below both edges: no warning (warnings are errors)
    np.testing.assert_allclose(np.asarray(tr.mapping[-1]), LAM / (LAM + EPS), rtol=1e-4)


def test_train_warns_with_a_covariance():
    # data whose last component is nearly constant zero, and much noise there
    x = np.random.default_rng(0).uniform(size=(40, 3)) * np.array([1.0, 0.6, 0.01])
    lam = np.linalg.eigvalsh(x.T @ x)[::-1]
    nz = noise.gaussian_covariance(np.array([0.001, 0.001, 20.0]))
    scalar_edge = 2 / (2 * lam[0] / 40)
    # measured: the coupled edge is alpha < 0.100, the per-direction one 2.25; training diverges at
    # 0.9 x the per-direction edge, where only the coupled check warns
    with pytest.warns(UnstableStepWarning) as caught:  # the check before the run, the report after
        r = train.train(x, key=jr.key(0), hidden=3, epochs=200, save_every=200, noise=nz,
                        marginalised=True, alpha=0.9 * scalar_edge)
    messages = [str(w.message) for w in caught]
    assert any("coupled corruption term" in m for m in messages), messages
    assert any("diverged" in m for m in messages), messages
    assert not np.all(np.isfinite(np.asarray(r.mapping)))
    r = train.train(x, key=jr.key(0), hidden=3, epochs=200, save_every=200, noise=nz, marginalised=True,
                    alpha=0.09)  # below both edges: no warning (warnings are errors), finite
    assert np.all(np.isfinite(np.asarray(r.mapping)))
