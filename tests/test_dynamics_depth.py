"""daedyn.dynamics at depth: the per-direction L-factor recursion and flow from any start
(scalar_gd / scalar_flow with factors=, daedyn/dynamics/_deep.py) against independent references;
the full-matrix engine at depth L (daedyn/dynamics/_matrix.py: its values against NumPy are in
tests/test_combinations.py) from the decoupled start of orthogonal_init against the per-direction
runs; bad input."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from daedyn import dynamics, theory
from daedyn.dynamics._deep import balanced_factors

LAM = np.array([3.0, 2.0, 1.0, 0.5, 0.1])


def test_depth_two_equals_scalar_gd(x64):
    lam, eps, gamma = jnp.asarray(LAM), 0.7, 0.01
    ref = dynamics.scalar_gd(lam, eps, 0.1, 0.3, alpha=0.05, gamma=gamma, epochs=200, save_every=20,
                             observables=("w", "loss"))
    deep = dynamics.scalar_gd(
        lam, eps, factors=jnp.array([0.1, 0.3]), alpha=0.05, gamma=gamma, epochs=200, save_every=20,
        observables="all"
    )
    # the same Euler step written with prefix/suffix products: equal to float64 rounding (1e-15)
    np.testing.assert_allclose(deep.w, ref.w, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(deep.loss, ref.loss, rtol=1e-12)
    via = dynamics.scalar_gd(lam, eps, 0.1, 0.3, alpha=0.05, gamma=gamma, epochs=200, save_every=20, depth=3)
    direct = dynamics.scalar_gd(
        lam, eps, factors=jnp.array([0.1, 0.1, 0.3]), alpha=0.05, gamma=gamma, epochs=200, save_every=20,
        observables="all"
    )
    # the same type at every depth: w1 is the common value of the first L - 1 factors, w2 the last;
    # the two-value recursion and the L-factor one differ in the order of products only (1e-13)
    assert type(via) is dynamics.ScalarTrajectory and via.w.shape == (5, 11)
    np.testing.assert_allclose(via.w, direct.w, rtol=1e-13, atol=1e-15)
    via = dynamics.scalar_gd(lam, eps, 0.1, 0.3, alpha=0.05, gamma=gamma, epochs=200, save_every=20, depth=3,
                             observables=("w1", "w2"))
    # factors=: w1 holds the first L - 1 factors (*batch, L - 1, T), w2 the last
    assert direct.w1.shape == (5, 2, 11) and direct.w2.shape == (5, 11)
    np.testing.assert_allclose(via.w1, direct.w1[:, 0], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(via.w1, direct.w1[:, 1], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(via.w2, direct.w2, rtol=1e-13, atol=1e-15)


def test_factors_gd_equals_numpy_recursion(x64):
    """An independent NumPy loop of the L-factor GD step (prod of the other factors by division-free
    products written out by hand)."""
    lam, eps, gamma, alpha = 2.0, 0.5, 0.02, 0.03
    a = np.array([0.2, -0.4, 0.3, 0.5])
    traj = dynamics.scalar_gd(
        lam, eps, factors=jnp.asarray(a), alpha=alpha, gamma=gamma, epochs=50, save_every=50,
        observables=("w1", "w2")
    )
    for _ in range(50):
        w = np.prod(a)
        others = np.array([np.prod(np.delete(a, i)) for i in range(4)])
        a = a + alpha * (others * (lam - w * (lam + eps)) - gamma * a)
    got = np.append(np.asarray(traj.w1[:, -1]), float(traj.w2[-1]))
    np.testing.assert_allclose(got, a, rtol=1e-13)  # rounding only
    # time_major moves time first; unsaved fields are placeholders as on the w1, w2 route
    tm = dynamics.scalar_gd(lam, eps, factors=jnp.asarray(a), alpha=alpha, epochs=4, time_major=True,
                            observables=("w", "w1"))
    assert tm.w.shape == (5,) and tm.w1.shape == (5, 3) and not isinstance(tm.loss, jnp.ndarray)


def test_factors_flow_from_unbalanced_start_matches_solve_ivp(x64):
    lam, eps, gamma = 1.5, 0.4, 0.05
    a0 = np.array([0.3, 0.1, 0.6])
    ts = np.array([0.0, 1.0, 5.0, 20.0])

    def rhs(_, a):
        return (
            np.array([np.prod(np.delete(a, i)) for i in range(3)]) * (lam - np.prod(a) * (lam + eps))
            - gamma * a
        )

    ref = solve_ivp(rhs, (0, 20.0), a0, t_eval=ts, method="DOP853", rtol=1e-13, atol=1e-15).y
    traj = dynamics.scalar_flow(ts, lam, eps, factors=jnp.asarray(a0), gamma=gamma, dt=0.01)
    # RK4 with dt = 0.01: global error O(dt^4) ~ 1e-10 here; bound 1e-8
    got = np.concatenate([np.asarray(traj.w1), np.asarray(traj.w2)[None]])
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-12)


def test_matrix_gd_from_decoupled_start_follows_directions(x64):
    """orthogonal_init at depth 3 (Haar rotations between the factors, one value per factor)
    decouples the directions: each follows scalar_gd(depth=3) from (a_1 = a_2, a_3)."""
    hidden = (6, 4)
    k = min((5,) + hidden)
    a, b = jnp.linspace(0.1, 0.4, k), jnp.linspace(0.3, 0.2, k)
    ws = dynamics.orthogonal_init(5, hidden, a, a, b, key=jr.key(1))
    assert [w.shape for w in ws] == [(6, 5), (4, 6), (5, 4)]
    m = dynamics.matrix_gd(jnp.asarray(LAM), *ws, eps=0.5, gamma=0.01, alpha=0.02, n=1, epochs=300,
                           save_every=50)
    s = dynamics.scalar_gd(jnp.asarray(LAM[:k]), 0.5, a, b, alpha=0.02, gamma=0.01, epochs=300, save_every=50,
                           depth=3, observables="all")
    # decoupled: each direction is its own scalar run; rotations by Haar Q's cost rounding only (1e-13)
    np.testing.assert_allclose(m.mapping[:, :k], np.asarray(s.w).T, atol=1e-13)
    np.testing.assert_allclose(m.mapping[:, k:], 0.0, atol=1e-15)
    np.testing.assert_allclose(m.weight_norm, np.sum(np.asarray(s.weight_norm), axis=0), rtol=1e-12)


def test_depth_float32_keeps_dtype_and_bad_input():
    ws = dynamics.random_init(4, (3, 2), init_scale=0.1, key=jr.key(0))
    assert [w.shape for w in ws] == [(3, 4), (2, 3), (4, 2)] and ws[0].dtype == jnp.float32
    assert [w.shape for w in dynamics.orthogonal_init(4, 3, 0.1, depth=4)] == [(3, 4), (3, 3), (3, 3), (4, 3)]
    traj = dynamics.matrix_gd(jnp.ones(4), *ws, alpha=0.1, n=1, epochs=4)
    assert traj.mapping.dtype == jnp.float32 and traj.mapping.shape == (5, 4) and traj.depth == 3
    assert traj.w1 is traj.ws[0] and traj.w2 is traj.ws[2]  # first and last factor
    kw = dict(alpha=0.1, n=1, epochs=4)
    with pytest.raises(ValueError, match=r"w4 \(\.\.\., D, H_3\).*got w1 \(3, 4\), w2 \(2, 3\), w3 \(2, 3\)"):
        dynamics.matrix_gd(jnp.ones(4), ws[0], ws[1], ws[1], ws[2], **kw)  # w3's columns are not H_2
    with pytest.raises(ValueError, match="w3"):
        dynamics.matrix_gd(jnp.ones(4), ws[0], ws[1], jnp.full((4, 2), jnp.nan), **kw)
    with pytest.raises(ValueError, match="H_2"):
        dynamics.matrix_gd(jnp.ones(4), ws[0], jnp.zeros((0, 3)), jnp.zeros((4, 0)), **kw)
    with pytest.raises(ValueError, match="form='gram_t' needs depth 2"):
        dynamics.matrix_flow(jnp.array([1.0]), jnp.ones(4), *ws, tau=1.0, n=1, dt=0.1, form="gram_t")
    with pytest.raises(ValueError, match="eps with eps_dims=2"):
        dynamics.matrix_gd(jnp.ones(4), *ws, eps=jnp.eye(3), eps_dims=2, **kw)
    with pytest.raises(ValueError, match=r"hidden\[1\]"):
        dynamics.orthogonal_init(4, [3, 0], 0.1)
    with pytest.raises(ValueError, match="d1, d2, ...: give one diagonal for every factor"):
        dynamics.orthogonal_init(4, (3, 3), 0.1, 0.2)
    with pytest.raises(ValueError, match="depth=2 contradicts"):
        dynamics.random_init(4, (3, 3), init_scale=0.1, key=jr.key(0), depth=2)
    with pytest.raises(ValueError, match="depth"):
        dynamics.random_init(4, 3, init_scale=0.1, key=jr.key(0), depth=1)
    with pytest.raises(ValueError, match="number of weight matrices"):
        dynamics.scalar_gd(1.0, 0.0, factors=jnp.array([0.1]), alpha=0.1, epochs=2)
    with pytest.raises(ValueError, match="depth=4 contradicts"):
        dynamics.scalar_gd(1.0, 0.0, factors=jnp.full(3, 0.1), alpha=0.1, epochs=2, depth=4)
    with pytest.raises(ValueError, match="not both"):
        dynamics.scalar_gd(1.0, 0.0, 0.1, 0.1, factors=jnp.full(3, 0.1), alpha=0.1, epochs=2)
    from daedyn import schedules
    with pytest.raises(ValueError, match="alpha must be a number or an array with factors="):
        dynamics.scalar_gd(1.0, 0.0, factors=jnp.full(3, 0.1), epochs=2,
                           alpha=schedules.piecewise_constant([1.0], [0.1, 0.2]))
    with pytest.raises(ValueError, match="method='rk4'"):
        dynamics.scalar_flow(jnp.array([0.0, 1.0]), 1.0, 0.0, factors=jnp.full(3, 0.1), method="diffrax")
    with pytest.raises(ValueError, match="depth"):
        dynamics.scalar_gd(1.0, 0.0, 0.1, 0.1, alpha=0.1, epochs=2, depth=1)
    with pytest.raises(ValueError, match="w0"):
        balanced_factors(-1.0, 3)


@pytest.mark.slow  # compiles the depth-3 closed form
def test_balanced_flow_matches_depth_theory(x64):
    ts = jnp.linspace(0.0, 60.0, 7)
    f = dynamics.scalar_flow(ts, 2.0, 0.5, factors=balanced_factors(0.01, 3), gamma=0.05, dt=0.01)
    u = theory.small_init_trajectory(ts, 2.0, 0.5, 0.05, w0=0.01, depth=3)
    np.testing.assert_allclose(f.w, u, rtol=1e-9)  # RK4 dt = 0.01 vs the exact solution
