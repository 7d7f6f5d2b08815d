"""daedyn.theory, Eq. (5) from any start (daedyn/theory/_general.py): against an independent
float64 integration, limits, gradients, learning times, bad input, tracing and dtypes."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from theory_reference import reference_flow  # tests/ is on sys.path

from daedyn import theory
from daedyn.theory._general import dae_trajectory_printed  # private: Eq. (5) as printed

T_FINITE = np.array([0.0, 0.05, 0.3, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0])  # in units of tau
T_LONG = np.array([1e3, 1e6, 1e9])  # compared with the converged reference state
T_END = 80.0  # every grid trajectory with lam >= 0.5 has converged to machine precision by then


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
    r1, r2 = reference_flow(lam, eps, w1, w2, ts)
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
    printed = dae_trajectory_printed(t, lam, eps, w1, w2)
    # Both float64; the printed form loses a few digits in atanh near its fixed point: 1e-9.
    np.testing.assert_allclose(ours, printed, rtol=1e-9)
    # At a balanced start the printed form is 0/0: NaN, or (when XLA fuses w2^2 - w1^2 into an FMA and
    # leaves c0 ~ 1e-18) a wrong number. Ours is the logistic. At large t E overflows.
    printed_bal = float(dae_trajectory_printed(1.0, 1.0, 0.0, 0.3, 0.3))
    logistic = 0.09 * np.e**2 / (1 + 0.09 * (np.e**2 - 1))
    assert float(theory.dae_trajectory(1.0, 1.0, 0.0, 0.3, 0.3)) == pytest.approx(logistic, rel=1e-14)
    assert not np.isclose(printed_bal, logistic, rtol=1e-2)
    with jax.enable_x64(False):
        bad = dae_trajectory_printed(jnp.float32(200.0), 1.0, 5.0, 0.4, 1.3)
        assert not np.isfinite(float(bad))
        ours = float(theory.dae_trajectory(jnp.float32(200.0), 1.0, 5.0, 0.4, 1.3))
        assert ours == pytest.approx(1 / 6, rel=1e-6)



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



# ---------------------------------------------------------------------------------------------
# Learning time


def test_dae_learning_time_inverts_dae_trajectory(x64):
    lam, eps, w1, w2 = GRID.T
    f = 0.9
    t = theory.dae_learning_time(f, lam, eps, w1, w2, tau=2.0)
    # t = inf (never reached) is not a valid time to evaluate at: the trajectory refuses it
    w = theory.dae_trajectory(jnp.where(jnp.isinf(t), 0.0, t), lam, eps, w1, w2, tau=2.0)
    with pytest.raises(ValueError, match=r"^t must lie in \[0, inf\)"):
        theory.dae_trajectory(t, lam, eps, w1, w2, tau=2.0)
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
# Bad input, tracing, dtypes


@pytest.mark.parametrize("kwargs,name", [
    (dict(lam=-1.0), "lam"), (dict(eps=-0.1), "eps"), (dict(tau=0.0), "tau"), (dict(t=-1.0), "t"),
    (dict(w1=np.nan), "w1"), (dict(w2=np.inf), "w2"),
])
def test_dae_trajectory_bad_input(kwargs, name):
    args = dict(t=1.0, lam=1.0, eps=0.0, w1=0.1, w2=0.2, tau=1.0) | kwargs
    with pytest.raises(ValueError, match=rf"^{name} must"):
        theory.dae_trajectory(**args)




def test_dae_learning_time_and_broadcast_bad_input():
    for f in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="fraction must"):
            theory.dae_learning_time(f, 1.0, 0.0, 0.1, 0.1)
    with pytest.raises(ValueError, match="do not broadcast"):
        theory.dae_trajectory(np.zeros(3), np.ones(4), 0.0, 0.1, 0.1)


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


def test_integer_inputs_give_the_default_float_and_complex_is_refused():
    # daedyn/theory/_args.py: the dtype is daedyn._checks.float_dtype of the inputs (ints promote to the
    # default float), complex inputs are an error naming the arguments, in every closed form.
    assert theory.dae_trajectory(1, 1, 0, 1, 1).dtype == jnp.float32
    assert theory.fixed_point(np.arange(3)).dtype == jnp.float32
    with jax.enable_x64(True):
        assert theory.dae_weights(1, 1, 0, 1, 1)[0].dtype == jnp.float64
    with pytest.raises(ValueError, match="expected real arguments; got dtype complex64 for t, lam, eps, w1"):
        theory.dae_trajectory(1.0, 1.0, 0.0, np.complex64(0.1), 0.2)
    with pytest.raises(ValueError, match="expected real arguments"):
        theory.fixed_point(jnp.asarray(1.0 + 0j))
