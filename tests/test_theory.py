"""daedyn.theory: closed forms against an independent float64 integration, the paper's numbers,
gradients, dtypes, limits and bad input."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.integrate import solve_ivp

from daedyn import theory

# ---------------------------------------------------------------------------------------------
# The reference: Eqs. (2)-(3) with weight decay, integrated by scipy's DOP853 in float64, all grid
# trajectories stacked into one vectorised system (cheap: one solve for the whole grid).

T_FINITE = np.array([0.0, 0.05, 0.3, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0])  # in units of tau
T_LONG = np.array([1e3, 1e6, 1e9])  # compared with the converged reference state
T_END = 80.0  # every grid trajectory with lam >= 0.5 has converged to machine precision by then


def _reference(lam, eps, w1, w2, ts, gamma=0.0, n=1.0):
    """(w1(t), w2(t)) for each grid point at times ts (tau = 1), float64, rtol 1e-12."""
    lam, eps, w1, w2, gamma, n = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in
                                                       (lam, eps, w1, w2, gamma, n)))
    m = lam.size

    def rhs(_, y):
        a, b = y[:m], y[m:]
        w = a * b
        common = lam - (lam + eps) * w
        return np.concatenate([b * common - n * gamma * a, a * common - n * gamma * b])

    # Integrate from one output time to the next and restart there: solver steps end exactly on the
    # output times, so no dense-output interpolation (less accurate than the steps) is involved.
    ys = [np.concatenate([w1.ravel(), w2.ravel()])]
    for t0, t1 in zip(ts[:-1], ts[1:]):
        if t1 == t0:
            ys.append(ys[-1])
            continue
        sol = solve_ivp(rhs, (t0, t1), ys[-1], method="DOP853", rtol=1e-12, atol=1e-300)
        assert sol.success
        ys.append(sol.y[:, -1])
    y = np.stack(ys)
    return y[:, :m], y[:, m:]  # (T, m) each


# Every regime of the issue: balanced (large and tiny), w1^2 > w2^2 and w1^2 < w2^2, negative
# products that cross 0, w1 = -w2 (into the saddle), nearly anti-balanced, and (0, 0).
PAIRS = [(0.3, 0.3), (1e-3, 1e-3), (1.5, 0.2), (0.2, 1.5), (-1.0, 0.3), (0.5, -1.8), (1.0, -1.0),
         (0.0, 0.0), (-2.0, 2.0), (1.2, -1.1), (-0.05, -0.05), (2.0, 1.9)]
LAMS = [0.5, 1.0, 2.5]
EPSS = [0.0, 1.0, 50.0]  # eps = 0, eps ~ lam, eps >> lam
GRID = np.array([(lam, eps, a, b) for lam, eps, (a, b) in itertools.product(LAMS, EPSS, PAIRS)])


@pytest.fixture(scope="module")
def reference():
    lam, eps, w1, w2 = GRID.T
    ts = np.concatenate([T_FINITE, [T_END]])
    r1, r2 = _reference(lam, eps, w1, w2, ts)
    w = r1 * r2
    # Long times: the limit is lam / (lam + eps) off the saddle line w1 = -w2 and 0 on it, with
    # w2^2 - w1^2 conserved; the integration has reached it by T_END (checked, to 1e-13).
    saddle = (w1 + w2) == 0
    w_inf = np.where(saddle, 0.0, lam / (lam + eps))
    c = w2**2 - w1**2
    s_inf = np.sqrt(c * c + 4 * w_inf**2)
    assert np.all(np.abs(w[-1] - w_inf)[~saddle] <= 1e-13 * (np.abs(w_inf) + s_inf)[~saddle])
    assert np.all(np.abs(w[-1][saddle]) < 1e-30)  # decays like exp(-2 lam t / tau) into the saddle
    n_fin = len(T_FINITE)
    times = np.concatenate([T_FINITE, T_LONG])
    ref_w = np.concatenate([w[:n_fin], np.repeat(w_inf[None], len(T_LONG), 0)])
    ref_s = np.concatenate([(r1**2 + r2**2)[:n_fin], np.repeat(s_inf[None], len(T_LONG), 0)])
    sign2 = np.where(w2 + w1 != 0, np.sign(w2 + w1), 0.0)  # u = w1 + w2 keeps its sign
    u_inf = sign2 * np.sqrt(s_inf + 2 * w_inf)
    v_inf = np.sign(w2 - w1) * np.sqrt(np.maximum(s_inf - 2 * w_inf, 0.0))
    ref_1 = np.concatenate([r1[:n_fin], np.repeat((0.5 * (u_inf - v_inf))[None], len(T_LONG), 0)])
    ref_2 = np.concatenate([r2[:n_fin], np.repeat((0.5 * (u_inf + v_inf))[None], len(T_LONG), 0)])
    return times, ref_w, ref_s, ref_1, ref_2


def _rel_err(w, ref_w, ref_s, floor=1e-300):
    """Relative error in w; the denominator is raised by 1e-3 ||w||^2 (w1^2 + w2^2) so that the
    instants where w crosses 0 (any relative error is undefined there, for any method) are measured
    against the size of the weights instead, and never drops below ``floor`` (the underflow range of
    the dtype: the saddle trajectories decay to 1e-66 by t = 30 tau)."""
    return np.abs(np.asarray(w, np.float64) - ref_w) / np.maximum(np.abs(ref_w) + 1e-3 * ref_s, floor)


def _eval_grid(fn, dtype, times, tau=1.0):
    lam, eps, w1, w2 = (jnp.asarray(v, dtype) for v in GRID.T)
    t = jnp.asarray(times, dtype)[:, None] * tau
    return fn(t, lam, eps, w1, w2, jnp.asarray(tau, dtype))


def test_dae_trajectory_matches_integration_float64(reference, x64):
    times, ref_w, ref_s, _, _ = reference
    w = _eval_grid(theory.dae_trajectory, jnp.float64, times, tau=3.0)  # t / tau is what matters
    assert w.dtype == jnp.float64
    err = _rel_err(w, ref_w, ref_s)
    # DOP853 at rtol 1e-12 is itself good to ~1e-11 here; the closed form measured 4e-12 worst.
    # 1e-8 is the bound and leaves >1000x margin.
    assert err.max() <= 1e-8, np.unravel_index(err.argmax(), err.shape)


def test_dae_trajectory_matches_integration_float32(reference):
    times, ref_w, ref_s, _, _ = reference
    w = _eval_grid(theory.dae_trajectory, jnp.float32, times)
    assert w.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(w)))
    err = _rel_err(w, ref_w, ref_s, floor=1e-36)  # float32's smallest normal number is 1.2e-38
    # float32 (ulp 6e-8): the inputs alone are rounded by 6e-8 relative and the escape from a small
    # start amplifies input errors by ~ 2 lam t; with eps = 50 the cancellation in (y - z)/2 costs up
    # to ||w||^2 / w* ~ 1e2 ulp. Measured 3e-6 worst; 1e-4 (the bound) leaves 30x margin.
    assert err.max() <= 1e-4, np.unravel_index(err.argmax(), err.shape)


def test_dae_weights_match_integration(reference, x64):
    times, ref_w, ref_s, ref_1, ref_2 = reference
    w1, w2 = _eval_grid(theory.dae_weights, jnp.float64, times)
    scale = np.sqrt(ref_s)
    # each weight against the reference, relative to ||w|| (a weight may cross 0); measured 2e-12.
    np.testing.assert_array_less(np.abs(np.asarray(w1) - ref_1), 1e-8 * scale + 1e-300)
    np.testing.assert_array_less(np.abs(np.asarray(w2) - ref_2), 1e-8 * scale + 1e-300)
    # the product is the trajectory, and w2^2 - w1^2 is conserved (float64 rounding, 1e-12)
    w = _eval_grid(theory.dae_trajectory, jnp.float64, times)
    np.testing.assert_allclose(w1 * w2, w, rtol=1e-12, atol=1e-12 * ref_s.max())
    c0 = GRID[:, 3] ** 2 - GRID[:, 2] ** 2
    np.testing.assert_allclose(w2**2 - w1**2, np.broadcast_to(c0, w.shape), rtol=1e-12, atol=1e-12)


def test_printed_formula_agrees_where_finite_and_fails_elsewhere(x64):
    # Unbalanced, positive-product starts (Eq. 5's own domain), moderate times: same function.
    t = jnp.linspace(0.0, 5.0, 11)[:, None]
    lam, eps, w1, w2 = 1.0, jnp.array([0.0, 1.0, 5.0]), 0.4, 1.3
    ours = theory.dae_trajectory(t, lam, eps, w1, w2)
    printed = theory.dae_trajectory_printed(t, lam, eps, w1, w2)
    # Both float64; the printed form loses a few digits in atanh near its fixed point: 1e-9.
    np.testing.assert_allclose(ours, printed, rtol=1e-9)
    # At a balanced start the printed form is 0/0: NaN, or (when XLA fuses w2^2 - w1^2 into an FMA and
    # leaves c0 ~ 1e-18) a wrong number. Ours is the logistic. At large t E overflows.
    printed_bal = float(theory.dae_trajectory_printed(1.0, 1.0, 0.0, 0.3, 0.3))
    logistic = 0.09 * np.e**2 / (1 + 0.09 * (np.e**2 - 1))
    assert float(theory.dae_trajectory(1.0, 1.0, 0.0, 0.3, 0.3)) == pytest.approx(logistic, rel=1e-14)
    assert not np.isclose(printed_bal, logistic, rtol=1e-2)
    with jax.enable_x64(False):
        bad = theory.dae_trajectory_printed(jnp.float32(200.0), 1.0, 5.0, 0.4, 1.3)
        assert not np.isfinite(float(bad))
        ours = float(theory.dae_trajectory(jnp.float32(200.0), 1.0, 5.0, 0.4, 1.3))
        assert ours == pytest.approx(1 / 6, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# The balanced solution with noise and weight decay

SI_LAM = [0.5, 1.0, 2.5]
SI_EPS = [0.0, 1.0]
SI_GAMMA = [0.0, 0.3, 1.0, 2.0]  # with n = 1: lam - n gamma > 0, = 0 (lam = 1), < 0
SI_W0 = [1e-6, 0.04, 1.7]  # tiny, moderate, above the fixed point
SI_GRID = np.array(list(itertools.product(SI_LAM, SI_EPS, SI_GAMMA, SI_W0, [1.0, 2.0])))


def test_small_init_matches_integration(x64):
    lam, eps, gamma, w0, n = SI_GRID.T
    ts = np.array([0.0, 0.1, 1.0, 3.0, 7.0, 15.0, 30.0])
    r1, r2 = _reference(lam, eps, np.sqrt(w0), np.sqrt(w0), ts, gamma=gamma, n=n)
    ref = r1 * r2
    w = theory.small_init_trajectory(ts[:, None] * 2.0, lam, eps, gamma, w0=w0, tau=2.0, n=n)
    # relative error (the balanced trajectory never changes sign); the reference decays to ~1e-40 for
    # n gamma > lam, where it is still relative-accurate (atol = 1e-300). Measured 3e-12; bound 1e-8.
    np.testing.assert_allclose(w, ref, rtol=1e-8, atol=0)


def test_small_init_float32_and_long_times():
    lam, eps, gamma, w0, n = (jnp.asarray(v, jnp.float32) for v in SI_GRID.T)
    t = jnp.asarray([0.0, 1e3, 1e6, 1e9], jnp.float32)[:, None]
    w = theory.small_init_trajectory(t, lam, eps, gamma, w0=w0, n=n)
    assert w.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(w)))
    fp = theory.fixed_point(lam, eps, gamma, n)
    # a >= 0 at t >= 1e3: converged to the fixed point (0 for n gamma >= lam, reached like 1/t when
    # n gamma = lam: at 1e6 it is 1e-6 / k); float32 rounding, so 1e-6 relative + 1e-6 absolute.
    np.testing.assert_allclose(w[2:], jnp.broadcast_to(fp, w[2:].shape), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(w[0], jnp.broadcast_to(w0, w[0].shape))


def test_dae_trajectory_balanced_equals_small_init(x64):
    t = np.array([0.0, 0.5, 2.0, 10.0, 1e4])[:, None]
    lam, eps = np.array([0.0, 0.5, 1.0, 2.5]), np.array([0.0, 0.3, 5.0, 50.0])
    for a in (1e-4, 0.2, 1.0, 3.0):
        w_gen = theory.dae_trajectory(t, lam, eps, a, a)
        w_bal = theory.small_init_trajectory(t, lam, eps, w0=a * a)
        # the same logistic through two different formulas; float64 rounding: 1e-13
        np.testing.assert_allclose(w_gen, w_bal, rtol=1e-13, atol=0)


def test_balanced_point_is_continuous(x64):
    # Eq. (5) is 0/0 at w1 = w2; ours approaches the balanced value smoothly from both sides.
    t, lam, eps, a = 3.0, 1.0, 1.0, 0.3
    at = float(theory.dae_trajectory(t, lam, eps, a, a))
    for d in (1e-3, 1e-6, 1e-9):
        for sgn in (-1, 1):
            near = float(theory.dae_trajectory(t, lam, eps, a + sgn * d, a))
            # Lipschitz near the balanced point: |dw/dw1| < 2 here (measured 0.58)
            assert abs(near - at) <= 2 * d


def test_limits_and_special_starts():
    t = jnp.array([0.0, 1.0, 10.0, 1e3, 1e6, 1e9], jnp.float32)
    # (0, 0) stays at the saddle; w1 = -w2 shrinks into it; t = 0 returns the start
    assert jnp.all(theory.dae_trajectory(t, 1.0, 1.0, 0.0, 0.0) == 0)
    shrink = theory.dae_trajectory(t, 1.0, 1.0, 1.5, -1.5)
    assert shrink[0] == pytest.approx(-2.25) and bool(jnp.all(jnp.diff(shrink) >= 0)) and shrink[-1] == 0
    assert float(theory.dae_trajectory(0.0, 2.0, 3.0, -0.7, 1.3)) == pytest.approx(-0.91, rel=1e-6)
    # float32 at t = 1e6 tau returns the fixed point for every off-saddle start (rounding: 1e-6)
    for (a, b), (lam, eps) in itertools.product([(0.01, 0.01), (2.0, -0.1), (-1.0, 1.2), (0.0, 0.5)],
                                                [(1.0, 0.0), (1.0, 1.0), (1.0, 5.0), (0.1, 50.0)]):
        w = theory.dae_trajectory(jnp.float32(1e6), lam, eps, a, b, tau=jnp.float32(7.0))
        assert float(w) == pytest.approx(lam / (lam + eps), rel=1e-6), (a, b, lam, eps)
    # lam = 0: nothing to learn, noise shrinks w to 0; lam = eps = 0: nothing moves
    assert float(theory.dae_trajectory(1e9, 0.0, 1.0, 0.3, 0.5)) == pytest.approx(0.0, abs=1e-8)
    assert float(theory.dae_trajectory(1e9, 0.0, 0.0, 0.3, 0.5)) == pytest.approx(0.15, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Gradients

GRAD_POINTS = [  # (t, lam, eps, w1, w2), which of them sit on a boundary of the domain (held fixed), order
    ((2.0, 1.0, 1.0, 0.3, 0.3), (), 2),  # balanced
    ((2.0, 1.0, 0.0, 0.5, 1.5), (2,), 2),  # eps = 0 (a boundary), w1^2 < w2^2
    ((1.5, 2.5, 5.0, 1.5, 0.2), (), 2),  # w1^2 > w2^2
    ((0.7, 1.0, 1.0, -1.0, 0.6), (), 2),  # negative product, before the crossing
    ((3.0, 0.5, 50.0, -0.4, 0.41), (), 2),  # eps >> lam, nearly anti-balanced
    ((0.0, 1.0, 1.0, 0.2, -0.9), (0,), 2),  # t = 0
    ((4.0, 1.0, 1.0, 0.8, -0.8), (), 2),  # w1 = -w2: the saddle line
    ((2.0, 0.0, 1.0, 0.3, 0.9), (1,), 2),  # lam = 0
    # lam = 0 *and* w1 = w2: R = k |w2^2 - w1^2| / 2 is not differentiable in w there; the solution
    # is (it is even in R), and first derivatives are exact, but second derivatives in w1, w2 miss
    # the term through R (documented in docs/theory.md), so only order 1 is checked.
    ((2.0, 0.0, 1.0, 0.3, 0.3), (1,), 1),
]


@pytest.mark.parametrize("point,fixed,order", GRAD_POINTS)
def test_dae_trajectory_check_grads(point, fixed, order, x64):
    # float64, first and second order, reverse mode, against central differences. Boundary arguments
    # (t = 0, eps = 0, lam = 0) are held fixed, a central difference would step outside the domain:
    # they enter as p + 0 * (x - p), so every point traces the same 5-argument function and the
    # derivative programs compile once for the whole list (per-point argument subsets compiled anew).
    #
    # Step 1e-6: the default 1e-4 is too coarse where |d2w/dw1^2| ~ 40 (the eps = 50 point). At the
    # saddle line 1e-6 is still too coarse: the order-2 check differentiates g = w * grad w, and across
    # the line d2w/du0^2 ~ exp(2 lam t / tau) (the saddle is unstable; 3397 here) makes g''' ~ 7e8
    # along the random direction of check_grads. Measured: the central difference misses the autodiff
    # value -0.404037 by 1.2e-2, 1.2e-4, 1.2e-6 at h = 1e-5, 1e-6, 1e-7 (h^2 * 1.2e8: truncation error,
    # converging to the autodiff value), against a tolerance of 1e-5 + 1e-5 * 0.40. So h = 1e-7 there
    # (10x margin; the rounding error of the float64 difference is ~1e-16 / h ~ 1e-9).
    step = 1e-7 if point[3] == -point[4] else 1e-6
    mask = [0.0 if i in fixed else 1.0 for i in range(5)]

    def f(*xs):
        return theory.dae_trajectory(*(p + m * (x - p) for p, m, x in zip(point, mask, xs)))

    check_grads(f, point, order=order, modes=("rev",), eps=step)


@pytest.mark.parametrize("x64_on", [False, pytest.param(True, marks=pytest.mark.slow)])  # same mechanism
def test_dae_trajectory_grads_finite_near_the_saddle(x64_on):
    # Regression: on the saddle line B ~ exp(-2 R t / tau) is tiny. The quotient rule's B^2 underflowed
    # (float32 from 2 lam t / tau ~ 44) and reverse mode formed (1/B) * 0 (from ~ 77 when lam = 1e-3),
    # both NaN; the derivative of the weights' sqrt(B / A) was infinite once B = 0. Now every first
    # derivative is finite at every time, in float32 (float64: the same at 2 lam t / tau ~ 370 and 1e4;
    # slow only for its second compilation).
    ts = np.concatenate([[0.0], np.geomspace(1e-2, 1e9, 60)])
    pairs = np.array([(1.0, -1.0), (0.0, 0.0), (-2.0, 2.0), (1e-20, -1e-20), (0.3, 0.3), (1.0, -1.2)])
    lam = np.array([1e-3, 1.0, 2.5])[:, None]
    fns = (theory.dae_trajectory, lambda *a: theory.dae_weights(*a)[0], lambda *a: theory.dae_weights(*a)[1])

    @jax.jit
    def all_grads(t, *args):
        out = []
        for fn in fns:
            d = jax.grad(fn, argnums=(0, 1, 2, 3, 4))
            for axes in ((None, 0, 0, 0, 0), (None, 0, 0, 0, 0), (0, None, None, None, None)):
                d = jax.vmap(d, axes)
            out.extend(d(t, *args))
        return out

    with jax.enable_x64(x64_on):
        dt = jnp.float64 if x64_on else jnp.float32
        args = [jnp.asarray(np.broadcast_to(v, (3, len(pairs))), dt) for v in (lam, 1.0, *pairs.T)]
        for g in all_grads(jnp.asarray(ts, dt), *args):
            assert g.dtype == dt and bool(jnp.all(jnp.isfinite(g)))


def test_dae_trajectory_grads_finite_on_grid(reference):
    times = reference[0]
    lam, eps, w1, w2 = (jnp.asarray(v, jnp.float32) for v in GRID.T)
    grad = jax.vmap(jax.vmap(jax.grad(theory.dae_trajectory, argnums=(0, 1, 2, 3, 4)),
                             (None, 0, 0, 0, 0)), (0, None, None, None, None))
    gs = grad(jnp.asarray(times, jnp.float32), lam, eps, w1, w2)
    for g in gs:
        assert bool(jnp.all(jnp.isfinite(g)))
    # d w / d t at t = 0 is the flow itself: (lam - k w) (w1^2 + w2^2)  (float32 rounding, 1e-5)
    w0, s0 = w1 * w2, w1**2 + w2**2
    np.testing.assert_allclose(gs[0][0], (lam - (lam + eps) * w0) * s0, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gamma", [0.4, 1.0, 2.0])  # lam - n gamma > 0, = 0, < 0 (all interior:
# the finite differences must not step out of gamma >= 0)
def test_small_init_check_grads(gamma, x64):
    f = lambda t, lam, eps, g, w0: theory.small_init_trajectory(t, lam, eps, g, w0=w0, tau=10.0)
    # step 1e-6: w0 = 1e-2 is small, so the default step 1e-4 is too coarse for d2w/dw0^2
    check_grads(f, (30.0, 1.0, 0.7, gamma, 1e-2), order=2, modes=("rev",), eps=1e-6)


def test_small_init_gamma_derivative_continuous_through_lam_equals_n_gamma(x64):
    # STYLE.md: abs() would flip dw/dgamma at lam = n gamma; the where-form must not.
    g = jax.grad(lambda gam: theory.small_init_trajectory(20.0, 1.0, 0.5, gam, w0=0.05, tau=5.0))
    d = 1e-7
    left, mid, right = float(g(1.0 - d)), float(g(1.0)), float(g(1.0 + d))
    # smooth function: the derivative moves by O(d) across the switch (1e-5 covers it 100x)
    assert abs(left - mid) < 1e-5 and abs(right - mid) < 1e-5


# ---------------------------------------------------------------------------------------------
# The paper's numbers


def test_paper_fixed_points_gamma_and_ratio(x64):
    # section 4 / Figure 1: w* = 1, 0.5, 1/6 for lam = 1, eps = 0, 1, 5 (exact fractions, 1e-15)
    np.testing.assert_allclose(theory.fixed_point(1.0, jnp.array([0.0, 1.0, 5.0])), [1.0, 0.5, 1 / 6],
                               rtol=1e-15)
    # Figure 4: gamma = lam * 0.1 / (lam + 0.1) = 0.0909 (printed to 4 digits)
    assert round(float(theory.equivalent_gamma(1.0, 0.1)), 4) == 0.0909
    # the equivalent gamma gives the same fixed point as the noise
    lam, eps = jnp.array([0.1, 0.5, 1.0, 2.5]), jnp.array([0.2, 1.0, 1.8, 0.4])
    np.testing.assert_allclose(theory.fixed_point(lam, 0.0, theory.equivalent_gamma(lam, eps, n=3.0), n=3.0),
                               theory.fixed_point(lam, eps), rtol=1e-14)
    # Eq. (8): R = (2 lam + gamma) / (2 lam + 3 eps); lam = 1, eps = 1, gamma_eq = 1/2: 2.5 / 5
    g = theory.equivalent_gamma(1.0, 1.0)
    assert float(theory.learning_rate_ratio(1.0, 1.0, g)) == pytest.approx(0.5, rel=1e-15)
    a_eps, a_gam = theory.optimal_learning_rates(1.0, 1.0, g)
    assert float(a_eps / a_gam) == pytest.approx(0.5, rel=1e-15)
    # section 5: with the equivalent gamma, R decreases monotonically in eps, faster for smaller lam
    eps_grid = jnp.linspace(0.0, 10.0, 101)
    for lam in (0.5, 1.0, 2.5):
        r = theory.learning_rate_ratio(lam, eps_grid, theory.equivalent_gamma(lam, eps_grid))
        assert bool(jnp.all(jnp.diff(r) < 0)) and float(r[0]) == 1.0
    # figure-settings.md: the authors' Figure 3 WDAE rate 0.005 (lam + eps) / (2 lam (lam + 2 eps))
    for eps in (0.2, 1.0, 1.8):
        g = theory.equivalent_gamma(1.0, eps)
        _, a_exp = theory.optimal_learning_rates(1.0, eps, g, 0.005, convention="experiment")
        assert float(a_exp) == pytest.approx(0.005 * (1 + eps) / (2 * (1 + 2 * eps)), rel=1e-14)
        a_dae, _ = theory.optimal_learning_rates(1.0, eps, g, 0.005)
        assert float(a_dae) == pytest.approx(0.005 / (2 + 3 * eps), rel=1e-14)


def test_weight_decay_delays_learning_noise_does_not(x64):
    # section 5 / Figure 2: from small weights, noise does not delay learning (it reaches half of its
    # own fixed point slightly *earlier* than the plain AE, by log(w*) / (2 lam)), while the
    # equivalent weight decay stretches the escape by lam / (lam - gamma).
    lam, w0 = 1.0, 1e-6
    t_ae = float(theory.learning_time(0.5, lam, 0.0, w0=w0))
    for eps in (0.4, 1.0, 1.8):
        w_star = lam / (lam + eps)
        t_dae = float(theory.learning_time(0.5, lam, eps, w0=w0))
        g = float(theory.equivalent_gamma(lam, eps))
        t_wdae = float(theory.learning_time(0.5, lam, 0.0, g, w0=w0))
        # closed-form differences (exact, float64 rounding: 1e-12)
        assert t_dae == pytest.approx(t_ae + (np.log(w_star - w0) - np.log(1 - w0)) / (2 * lam), rel=1e-12)
        assert t_wdae == pytest.approx(t_dae * lam / (lam - g), rel=1e-12)
        assert t_dae < t_ae < t_wdae


# ---------------------------------------------------------------------------------------------
# Learning times


def test_learning_time_inverts_small_init(x64):
    f = jnp.array([0.1, 0.5, 0.9, 0.999])[:, None]
    lam, eps, gamma, w0 = jnp.array([0.5, 1.0, 2.5, 1.0]), jnp.array([0.0, 1.0, 5.0, 0.2]), \
        jnp.array([0.0, 0.3, 0.5, 0.1]), jnp.array([1e-6, 1e-3, 0.01, 1e-8])
    t = theory.learning_time(f, lam, eps, gamma, w0=w0, tau=4.0, n=2.0)
    w = theory.small_init_trajectory(t, lam, eps, gamma, w0=w0, tau=4.0, n=2.0)
    # round trip through log and exp: float64, 1e-10 relative
    np.testing.assert_allclose(w, np.asarray(f) * np.asarray(theory.fixed_point(lam, eps, gamma, n=2.0)),
                               rtol=1e-10)
    # already there: 0; never learned (n gamma >= lam) or the saddle (w0 = 0): inf
    assert float(theory.learning_time(0.5, 1.0, 1.0, w0=0.4)) == 0.0
    assert float(theory.learning_time(0.5, 1.0, 0.0, 1.0, w0=0.1)) == np.inf
    assert float(theory.learning_time(0.5, 1.0, 0.0, w0=0.0)) == np.inf


def test_dae_learning_time_inverts_dae_trajectory(x64):
    lam, eps, w1, w2 = GRID.T
    f = 0.9
    t = theory.dae_learning_time(f, lam, eps, w1, w2, tau=2.0)
    w = theory.dae_trajectory(t, lam, eps, w1, w2, tau=2.0)
    target = f * lam / (lam + eps)
    saddle = (w1 + w2) == 0
    ahead = w1 * w2 >= target
    assert bool(jnp.all(jnp.isinf(t[saddle]))) and bool(jnp.all(t[ahead & ~saddle] == 0))
    todo = ~saddle & ~ahead
    # round trip: 1e-9 relative (the log of ratios of near-equal numbers near f -> 1 costs a few digits)
    np.testing.assert_allclose(w[todo], target[todo], rtol=1e-9)
    # balanced starts agree with the balanced learning time
    tb = theory.learning_time(f, 1.0, 1.0, w0=1e-4)
    assert float(theory.dae_learning_time(f, 1.0, 1.0, 1e-2, 1e-2)) == pytest.approx(float(tb), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Losses and eps


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


def test_eps_conversions():
    assert float(theory.gaussian_eps(0.5, 50000)) == 25000.0
    assert float(theory.laplace_eps(0.5, 10)) == 5.0  # Laplace variance 2 b^2
    assert float(theory.variance_eps(2 * 0.5**2, 10)) == float(theory.laplace_eps(0.5, 10))
    with pytest.raises(ValueError, match="sigma2"):
        theory.gaussian_eps(-1.0, 10)
    with pytest.raises(ValueError, match="n must lie"):
        theory.laplace_eps(1.0, 0)


# ---------------------------------------------------------------------------------------------
# Whole spectra


def test_spectrum_mapping_and_predicted_loss(x64):
    eigvals = jnp.array([5.0, 2.0, 1.0, 0.5, 0.0])
    t = jnp.array([0.0, 10.0, 1e6])
    w = theory.spectrum_mapping(t, eigvals, 1.0, 0.1, w0=1e-3, tau=2.0, n=4, hidden=3)
    assert w.shape == (3, 5)
    expect = theory.small_init_trajectory(t[:, None], eigvals, 1.0, 0.1, w0=1e-3, tau=2.0, n=4)
    np.testing.assert_array_equal(w[:, :3], expect[:, :3])
    assert bool(jnp.all(w[:, 3:] == 0))
    # batch over eps: shape (E, T, D)
    wb = theory.spectrum_mapping(t, eigvals, jnp.array([0.0, 1.0])[:, None], w0=1e-3, tau=2.0, n=4)
    assert wb.shape == (2, 3, 5)
    projected = jnp.array([4.0, 3.0, 2.0, 1.0, 0.5])
    loss = theory.predicted_loss(t, eigvals, projected, 10, eps=1.0, gamma=0.1, w0=1e-3, tau=2.0, n=4,
                                 hidden=3)
    manual = np.sum((1 - np.asarray(w)) ** 2 * np.asarray(projected), axis=-1) / 20
    np.testing.assert_allclose(loss, manual, rtol=1e-14)
    # t = 0 from w0 = 0: nothing learned, loss = tr / (2 n_eval); training set, eps = gamma = 0,
    # t -> inf, all directions with lam > 0 learned: only the zero direction is left (it is 0 here)
    at_0 = float(theory.predicted_loss(0.0, eigvals, projected, 10, w0=0.0, tau=1.0, n=4))
    assert at_0 == pytest.approx(0.525)
    at_inf = float(theory.predicted_loss(1e6, eigvals, eigvals, 4, w0=1e-3, tau=1.0, n=4))
    assert at_inf == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Bad input, tracing, dtypes


@pytest.mark.parametrize("kwargs,name", [
    (dict(lam=-1.0), "lam"), (dict(eps=-0.1), "eps"), (dict(tau=0.0), "tau"), (dict(t=-1.0), "t"),
    (dict(w1=np.nan), "w1"), (dict(w2=np.inf), "w2"),
])
def test_dae_trajectory_bad_input(kwargs, name):
    args = dict(t=1.0, lam=1.0, eps=0.0, w1=0.1, w2=0.2, tau=1.0) | kwargs
    with pytest.raises(ValueError, match=rf"^{name} must"):
        theory.dae_trajectory(**args)


def test_bad_input_other_functions():
    with pytest.raises(ValueError, match="gamma must"):
        theory.small_init_trajectory(1.0, 1.0, 0.0, -0.1, w0=0.1)
    with pytest.raises(ValueError, match="w0 must"):
        theory.small_init_trajectory(1.0, 1.0, w0=-0.1)
    for f in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"f must lie in \(0, 1\)"):
            theory.learning_time(f, 1.0, w0=0.1)
        with pytest.raises(ValueError, match="f must"):
            theory.dae_learning_time(f, 1.0, 0.0, 0.1, 0.1)
    with pytest.raises(ValueError, match="do not broadcast"):
        theory.dae_trajectory(np.zeros(3), np.ones(4), 0.0, 0.1, 0.1)
    with pytest.raises(ValueError, match="shapes do not match"):
        theory.expected_loss(np.ones((2, 3)), np.ones((2, 3)), np.eye(3), 5)
    with pytest.raises(ValueError, match="convention"):
        theory.optimal_learning_rates(1.0, 1.0, 0.1, convention="paper")


def test_traced_out_of_range_gives_nan_only_there():
    f = jax.jit(theory.dae_trajectory)
    w = f(jnp.array([1.0, 1.0, -1.0]), jnp.array([1.0, -1.0, 1.0]), 0.5, 0.1, 0.2)
    assert bool(jnp.isfinite(w[0])) and bool(jnp.all(jnp.isnan(w[1:])))
    g = jax.jit(lambda gam: theory.small_init_trajectory(1.0, 1.0, 0.0, gam, w0=0.1))
    assert bool(jnp.isnan(g(-1.0))) and bool(jnp.isfinite(g(1.0)))


def test_jit_vmap_and_dtypes_agree():
    t, lam, eps, w1, w2 = jnp.linspace(0, 5, 7), 1.0, 0.5, -0.3, 0.9
    plain = theory.dae_trajectory(t, lam, eps, w1, w2)
    jitted = jax.jit(theory.dae_trajectory)(t, lam, eps, w1, w2)
    mapped = jax.vmap(theory.dae_trajectory, (0, None, None, None, None))(t, lam, eps, w1, w2)
    # same float32 program: bit-for-bit up to XLA fusion differences (2 ulp)
    np.testing.assert_allclose(jitted, plain, rtol=3e-7)
    np.testing.assert_allclose(mapped, plain, rtol=3e-7)
    assert plain.dtype == jnp.float32
    assert theory.dae_trajectory(np.float32(1.0), 1.0, 0.0, 0.1, 0.1).dtype == jnp.float32
    with jax.enable_x64(True):
        assert theory.dae_trajectory(1.0, 1.0, 0.0, 0.1, 0.1).dtype == jnp.float64
        assert theory.small_init_trajectory(1.0, 1.0, w0=0.1).dtype == jnp.float64
        # float32 inputs stay float32 under x64
        assert theory.small_init_trajectory(jnp.float32(1.0), jnp.float32(1.0), w0=jnp.float32(0.1)).dtype \
            == jnp.float32
