"""daedyn.schedules and the closed forms under piecewise-constant schedules (daedyn/theory/_schedule.py):
construction and bad input, exactness against an independent float64 integration, gradients,
bit-identity of a one-piece schedule with the constant, float32 finiteness."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.integrate import solve_ivp

from daedyn import schedules, theory


def reference_scheduled(lam, eps_fn, gamma_fn, w1, w2, ts, boundaries, n=1.0, tau=1.0):
    """(w1, w2) at ``ts`` of Eqs. (2)-(3) + weight decay with eps(t), gamma(t) piecewise constant:
    DOP853 in float64, restarted at every output time and boundary (the jumps land on step ends;
    the rates are evaluated at each segment's midpoint, so they are the piece's constants)."""
    lam, w1, w2 = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (lam, w1, w2)))
    m = lam.size
    knots = np.unique(np.concatenate([[0.0], ts, boundaries]))
    y, out = np.concatenate([w1.ravel(), w2.ravel()]), {}
    out[0.0] = y
    for t0, t1 in zip(knots[:-1], knots[1:]):
        eps, gamma = eps_fn(0.5 * (t0 + t1)), gamma_fn(0.5 * (t0 + t1))

        def rhs(_, y, eps=eps, gamma=gamma):
            a, b = y[:m], y[m:]
            common = lam.ravel() - (lam.ravel() + eps) * a * b
            return np.concatenate([b * common - n * gamma * a, a * common - n * gamma * b]) / tau

        sol = solve_ivp(rhs, (t0, t1), y, method="DOP853", rtol=1e-12, atol=1e-300)
        assert sol.success
        y = sol.y[:, -1]
        out[t1] = y
    ys = np.stack([out[t] for t in ts])
    return ys[:, :m], ys[:, m:]


def np_piecewise(boundaries, values):
    return lambda t: np.asarray(values)[np.searchsorted(boundaries, t, side="right")]


# ---------------------------------------------------------------- construction and bad input


def test_piecewise_constant_evaluates_left_closed_pieces():
    s = schedules.piecewise_constant([10.0, 20.0], [4.0, 2.0, 1.0])
    np.testing.assert_array_equal(s(jnp.array([0.0, 9.99, 10.0, 19.0, 20.0, 1e9])), [4, 4, 2, 2, 1, 1])
    assert s.shape == () and s.n_pieces == 3
    per_dir = schedules.piecewise_constant([5.0], jnp.ones((2, 7)))  # one schedule per direction
    assert per_dir(jnp.zeros(3)).shape == (3, 7) and per_dir.shape == (7,)


def test_ramps_and_function():
    np.testing.assert_allclose(schedules.linear(2.0, 0.0, 10.0)(jnp.array([0.0, 5.0, 30.0])), [2, 1, 0])
    np.testing.assert_allclose(schedules.exponential(4.0, 1.0, 10.0)(jnp.array([0.0, 5.0, 30.0])), [4, 2, 1],
                               rtol=1e-6)  # float32 exp/log rounding
    f = schedules.function(lambda t, a: a / (1.0 + t), 2.0)
    assert float(f(1.0)) == 1.0
    # values are traced leaves: differentiable, and one compilation serves every value
    g = jax.grad(lambda v: schedules.PiecewiseConstant(jnp.array([1.0]), v)(2.0))(jnp.array([3.0, 5.0]))
    np.testing.assert_array_equal(g, [0.0, 1.0])


@pytest.mark.parametrize("make, match", [
    (lambda: schedules.piecewise_constant([20.0, 10.0], [1.0, 2.0, 3.0]), "boundaries must be strictly"),
    (lambda: schedules.piecewise_constant([10.0, 10.0], [1.0, 2.0, 3.0]), "boundaries must be strictly"),
    (lambda: schedules.piecewise_constant([0.0], [1.0, 2.0]), "boundaries must lie in"),
    (lambda: schedules.piecewise_constant([[1.0]], [1.0, 2.0]), "boundaries must be a 1-d"),
    (lambda: schedules.piecewise_constant([10.0], [1.0, 2.0, 3.0]), "values must have K . 1 = 2"),
    (lambda: schedules.piecewise_constant([10.0], [1.0, -2.0]), "values must lie in"),
    (lambda: schedules.piecewise_constant([10.0], [1.0, np.nan]), "values must"),
    (lambda: schedules.linear(-1.0, 0.0, 10.0), "start must lie in"),
    (lambda: schedules.linear(1.0, 0.0, 0.0), "t_end must lie in"),
    (lambda: schedules.exponential(0.0, 1.0, 10.0), "start must lie in"),
    (lambda: schedules.exponential(1.0, -1.0, 10.0), "end must lie in"),
    (lambda: schedules.function(3.0), "fn must be a callable"),
    (lambda: schedules.parse_schedule("piecewise:1,2"), "needs boundaries and values"),
    (lambda: schedules.parse_schedule("cosine:1,2,3"), "schedule must be"),
    (lambda: schedules.parse_schedule("linear:1,x,3"), "linear: expected comma-separated"),
])
def test_bad_schedules_name_the_parameter(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_schedule_where_a_constant_is_required():
    s = schedules.piecewise_constant([1.0], [1.0, 2.0])
    with pytest.raises(TypeError, match="where a constant number or array is required"):
        jnp.asarray(s)
    with pytest.raises(ValueError, match="eps must be a number or an array here"):
        schedules.reject_schedule("eps", s)
    with pytest.raises(ValueError, match="eps must be a number or an array here"):  # any range-checked input
        theory.fixed_point(1.0, s)
    with pytest.raises(ValueError, match="eps: small_init_trajectory is exact for piecewise-constant"):
        theory.small_init_trajectory(1.0, 1.0, schedules.linear(1.0, 0.0, 5.0), w0=1e-3)
    with pytest.raises(ValueError, match="eps must lie in"):  # traced values are checked at the edge too
        theory.small_init_trajectory(1.0, 1.0, schedules.PiecewiseConstant(jnp.array([1.0]),
                                                                           jnp.array([1.0, -1.0])), w0=1e-3)


# ---------------------------------------------------------------- exactness


B_EPS, V_EPS = np.array([3.0, 8.0, 8.5, 20.0]), np.array([2.0, 0.0, 5.0, 0.5, 1.0])
B_GAMMA, V_GAMMA = np.array([5.0, 12.0]), np.array([0.0, 1.5, 0.2])  # 1.5 > lam for lam < 1.5: decay
TS = np.array([0.0, 1.0, 3.0, 4.0, 8.0, 8.2, 10.0, 12.0, 19.0, 25.0, 40.0])


@pytest.mark.parametrize("with_gamma", [False, True])
def test_small_init_schedule_matches_integration(with_gamma, x64):
    lam = np.array([0.3, 1.0, 2.5])[:, None]
    w0 = np.array([1e-6, 0.04, 1.7])  # tiny, moderate, above every fixed point
    eps = schedules.piecewise_constant(B_EPS, V_EPS)
    gamma = schedules.piecewise_constant(B_GAMMA, V_GAMMA) if with_gamma else 0.1
    g_fn = np_piecewise(B_GAMMA, V_GAMMA) if with_gamma else (lambda t: 0.1)
    tau, n = 2.0, 1.0
    r1, r2 = reference_scheduled(lam, np_piecewise(B_EPS, V_EPS), g_fn, np.sqrt(w0), np.sqrt(w0), TS,
                                 np.concatenate([B_EPS, B_GAMMA]), n=n, tau=tau)
    w = theory.small_init_trajectory(TS[:, None, None], lam, eps, gamma, w0=w0, tau=tau, n=n)
    # relative (the balanced mapping keeps its sign; with decay it shrinks to ~1e-8, still relative-
    # accurate in the reference, atol = 1e-300); measured 5e-13; the task's bound is rtol 1e-8.
    np.testing.assert_allclose(w, (r1 * r2).reshape(w.shape), rtol=1e-8, atol=0)


def test_dae_schedule_matches_integration(x64):
    lam = np.array([0.5, 2.0])[:, None]
    w1 = np.array([0.1, 0.9, 1e-3, 0.4])  # unbalanced, w1^2 > w2^2, near the saddle, negative product
    w2 = np.array([0.3, 0.2, 2e-3, -1.1])
    eps = schedules.piecewise_constant(B_EPS, V_EPS)
    r1, r2 = reference_scheduled(lam, np_piecewise(B_EPS, V_EPS), lambda t: 0.0, w1, w2, TS, B_EPS, tau=3.0)
    w = theory.dae_trajectory(TS[:, None, None], lam, eps, w1, w2, tau=3.0)
    ref = (r1 * r2).reshape(w.shape)
    # the general solution crosses 0 (negative start): rtol 1e-8 plus atol 1e-12 for a save near the
    # crossing; measured 9e-13 relative worst.
    np.testing.assert_allclose(w, ref, rtol=1e-8, atol=1e-12)


def test_one_piece_schedule_is_bit_identical_to_the_constant():
    t = jnp.linspace(0.0, 50.0, 11)
    one = schedules.piecewise_constant([], [0.7])
    for gamma in (0.0, 0.3, schedules.piecewise_constant([], [0.3])):
        g = 0.3 if schedules.is_schedule(gamma) else gamma
        np.testing.assert_array_equal(theory.small_init_trajectory(t, 1.3, one, gamma, w0=1e-3, tau=5.0),
                                      theory.small_init_trajectory(t, 1.3, 0.7, g, w0=1e-3, tau=5.0))
    np.testing.assert_array_equal(theory.dae_trajectory(t, 1.3, one, 0.2, -0.1, 5.0),
                                  theory.dae_trajectory(t, 1.3, 0.7, 0.2, -0.1, 5.0))


def test_equal_pieces_agree_with_the_constant():
    # chaining the constant solution through boundaries with equal values: only rounding (float32:
    # measured 1.1e-7 relative; 2e-6 bound, ~16 ulp)
    t = jnp.linspace(0.0, 50.0, 11)
    s = schedules.piecewise_constant([7.0, 21.0], [0.7, 0.7, 0.7])
    np.testing.assert_allclose(theory.small_init_trajectory(t, 1.3, s, w0=1e-3, tau=5.0),
                               theory.small_init_trajectory(t, 1.3, 0.7, w0=1e-3, tau=5.0), rtol=2e-6)


# ---------------------------------------------------------------- gradients and float32


def _chained_logistic(t, lam, gamma, bounds, values, w0, tau):
    """w(t) of tau dw/dt = 2 w (a - b w), a = lam - gamma (n = 1), b = lam + eps(t), by Eq. (7) written
    out in float64 NumPy and chained over the pieces of eps."""
    edges = np.concatenate([[0.0], bounds, [np.inf]])
    w = w0
    with np.errstate(over="ignore"):
        for i, e in enumerate(values):
            s = min(t, edges[i + 1]) - edges[i]
            if s <= 0 or w == 0:
                break
            a, b = lam - gamma, lam + e
            w = a / (b + (a / w - b) * np.exp(-2 * a * s / tau))
    return w


def test_float32_values_in_every_regime():
    # growth, decay (n gamma > lam), eps switched off and on, times to 1e7 and underflow to 0, in float32
    eps = schedules.piecewise_constant([1e2, 1e4], [1e3, 0.0, 5.0])
    lam = jnp.array([1e-3, 1.0, 1e3])[:, None]
    gamma = jnp.array([0.0, 2.0])[:, None, None]
    ts = [0.0, 50.0, 1e4, 1e7]
    w = theory.small_init_trajectory(jnp.array(ts), lam, eps, gamma, w0=1e-6, tau=10.0)
    assert w.dtype == jnp.float32
    ref = [[[_chained_logistic(t, a, g, [1e2, 1e4], [1e3, 0.0, 5.0], 1e-6, 10.0) for t in ts]
            for a in (1e-3, 1.0, 1e3)] for g in (0.0, 2.0)]
    # float32 against float64: measured <= 3.4e-7 relative (values from 2e-15 to 1; the decayed ones
    # are 0 in both); bound 1e-5
    np.testing.assert_allclose(np.asarray(w), np.array(ref), rtol=1e-5, atol=1e-37)


@pytest.mark.parametrize("order", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_small_init_schedule_check_grads(order, x64):
    b = jnp.array([4.0, 9.0])

    @jax.jit  # one compilation per derivative (check_grads evaluates f many times)
    def f(values, gammas, lam):
        return theory.small_init_trajectory(jnp.array([2.0, 6.0, 15.0]), lam,
                                            schedules.PiecewiseConstant(b, values),
                                            schedules.PiecewiseConstant(b, gammas), w0=1e-2, tau=3.0)

    # interior values (finite differences stay >= 0); through the scan and the gather
    check_grads(f, (jnp.array([1.0, 0.3, 2.0]), jnp.array([0.2, 1.4, 0.5]), 1.0), order=order, modes=("rev",),
                eps=1e-6)


@pytest.mark.slow  # 9 s on the 2-core CPU (compiling the forward-mode rule of Eq. (5) inside the scan)
def test_dae_schedule_check_grads(x64):
    b = jnp.array([4.0, 9.0])
    f = lambda values, w1, w2: theory.dae_trajectory(jnp.array([2.0, 6.0, 15.0]), 1.0,
                                                     schedules.PiecewiseConstant(b, values), w1, w2, 3.0)
    check_grads(f, (jnp.array([1.0, 0.3, 2.0]), 0.2, -0.5), order=1, modes=("rev", "fwd"), eps=1e-6)


@pytest.mark.slow  # 12 s on the 2-core CPU (compilation)
def test_float32_finite_values_and_gradients_in_every_regime():
    eps = schedules.piecewise_constant(jnp.array([1e2, 1e4]), jnp.array([1e3, 0.0, 5.0]))
    lam = jnp.array([1e-3, 1.0, 1e3])[:, None]
    gamma = jnp.array([0.0, 2.0])[:, None, None]  # growth and decay pieces (n gamma > lam for two lams)
    t = jnp.array([0.0, 50.0, 1e4, 1e7])

    def total(values):
        s = schedules.PiecewiseConstant(eps.boundaries, values)
        return jnp.sum(theory.small_init_trajectory(t, lam, s, gamma, w0=1e-6, tau=10.0))

    g = jax.grad(total)(eps.values)  # the values: test_float32_values_in_every_regime
    assert bool(jnp.all(jnp.isfinite(g)))
    wd = theory.dae_trajectory(t, lam, eps, 0.3, -0.3001, 10.0)  # near the saddle line
    gd = jax.grad(lambda v: jnp.sum(theory.dae_trajectory(t, lam, schedules.PiecewiseConstant(
        eps.boundaries, v), 0.3, -0.3001, 10.0)))(eps.values)
    assert bool(jnp.all(jnp.isfinite(wd))) and bool(jnp.all(jnp.isfinite(gd)))


@pytest.mark.slow  # 11 s on the loaded 2-core CPU (four compilations)
def test_per_direction_schedules_and_vmap_over_values(x64):
    # values (K + 1, D): direction j follows its own schedule, the same as a scalar schedule per j;
    # and vmap over value sets (the random-search and sweep use) equals separate calls. Same
    # arithmetic per element: measured equal; rtol 1e-14.
    b = jnp.array([5.0, 12.0])
    vals = jnp.array([[3.0, 0.1, 1.0], [0.2, 4.0, 1.0], [1.0, 1.0, 0.0]])  # (K + 1, D = 3)
    lam, t = jnp.array([2.0, 1.0, 0.5]), jnp.array([[4.0], [10.0], [30.0]])
    w = theory.small_init_trajectory(t, lam, schedules.PiecewiseConstant(b, vals), w0=1e-2, tau=4.0)
    for j in range(3):
        sj = schedules.PiecewiseConstant(b, vals[:, j])
        wj = theory.small_init_trajectory(t[:, 0], lam[j], sj, w0=1e-2, tau=4.0)
        np.testing.assert_allclose(w[:, j], wj, rtol=1e-14)
    f = lambda v: theory.small_init_trajectory(30.0, 1.0, schedules.PiecewiseConstant(b, v), w0=1e-2, tau=4.0)
    batch = jax.vmap(f)(vals.T)  # three scalar schedules at once
    np.testing.assert_allclose(batch, [f(vals[:, j]) for j in range(3)], rtol=1e-14)


def test_piecewise_constant_matrix_values():
    """matrix=True: (K + 1, D, D) pieces, each symmetric PSD (negative off-diagonals allowed)."""
    c = np.array([[1.0, -0.5], [-0.5, 1.0]])
    s = schedules.piecewise_constant([5.0], np.stack([c, 2 * c]), matrix=True)
    np.testing.assert_array_equal(s(jnp.asarray(6.0)), 2 * c)
    with pytest.raises(ValueError, match="values must lie in"):  # without matrix=True: elementwise >= 0
        schedules.piecewise_constant([5.0], np.stack([c, 2 * c]))
    with pytest.raises(ValueError, match="positive semi-definite"):
        schedules.piecewise_constant([5.0], np.stack([c, -c]), matrix=True)
    with pytest.raises(ValueError, match=r"shape \(K \+ 1, ..., D, D\)"):
        schedules.piecewise_constant([5.0], np.ones((2, 3)), matrix=True)
