"""daedyn.theory.small_init_trajectory at depth L >= 3 under piecewise-constant eps, gamma and tau
schedules (daedyn/theory/_schedule.py chaining the depth-L solver of _deep_solve.py) against an
independent float64 integration of the balanced depth-L equation, piece by piece; gradients with
respect to a piece value against central differences; continuous schedules refused.

Compilation dominates the run time (the chained deep solver takes 15-45 s to compile on the shared
2-core CPU, then tens of milliseconds per call). It compiles once per (dtype, output shape, number of
parameter sets, number of pieces): not per depth (depth is traced inside it) and not per
combination of schedules. Every case below therefore has the same shape (TS x LAMS, four pieces
after merging the boundaries), so the float64 values of both depths and all four combinations
share one compilation, and the finite differences reuse it.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from daedyn import schedules, theory

LAMS = np.array([0.05, 0.4, 1.0, 2.5])
TS = np.array([0.0, 1.0, 2.0, 3.5, 4.0, 5.0, 6.0, 8.0, 12.0])  # the boundaries 2, 4, 6 among them
W0 = 0.01
# (boundaries, values) or a constant; every case merges to the boundaries 2, 4, 6 (four pieces);
# n = N scales the weight decay (1 unless given).
# "eps+gamma" has a weight-decay piece (gamma = 0.3) past the critical gamma of the small eigenvalues:
# they decay there and stay below the learning threshold after it (unlearned directions, down to
# 5e-5 at depth 4), while lam = 2.5 is learned in every case.
CASES = {
    "eps+tau": dict(eps=([2.0, 6.0], [0.1, 2.0, 0.3]), gamma=0.01, tau=([4.0], [1.0, 0.5])),
    "eps+gamma": dict(eps=([4.0], [0.5, 0.05]), gamma=([2.0, 6.0], [0.0, 0.3, 0.02]), tau=1.0),
    "gamma+tau": dict(eps=0.2, gamma=([2.0], [0.02, 0.15]), tau=([4.0, 6.0], [2.0, 0.7, 1.3])),
    "all": dict(eps=([2.0], [1.0, 0.1]), gamma=([4.0], [0.05, 0.0]), tau=([6.0], [1.5, 0.8]), n=2.0),
}


def _arg(spec, dtype=np.float64):
    if np.isscalar(spec):
        return spec
    return schedules.piecewise_constant(np.asarray(spec[0], dtype), np.asarray(spec[1], dtype))


def _value_at(spec, t):
    return spec if np.isscalar(spec) else spec[1][np.searchsorted(spec[0], t, side="right")]


def reference(case, depth):
    """u(TS) for every lam in LAMS of tau du/dt = L u^(2-2/L) (lam - u (lam + eps)) - L n gamma u:
    scipy's DOP853 in float64 at rtol 1e-11, atol 1e-14, all lams as one system (the step control
    bounds the error of every component), one solve per interval between consecutive output times
    and boundaries, each restarted from the state reached (the jumps are exact, no dense-output
    interpolation). Shape (len(TS), len(LAMS))."""
    spec = CASES[case]
    n = spec.get("n", 1.0)
    bounds = [b for k in ("eps", "gamma", "tau") if not np.isscalar(spec[k]) for b in spec[k][0]]
    events = np.union1d(TS, bounds)
    u = np.full(LAMS.shape, W0)
    at = {0.0: u}
    for t0, t1 in zip(events[:-1], events[1:]):
        eps, gamma, tau = (_value_at(spec[k], t0) for k in ("eps", "gamma", "tau"))

        def rhs(_, y, eps=eps, gamma=gamma, tau=tau):
            return depth * (y ** (2.0 - 2.0 / depth) * (LAMS - y * (LAMS + eps)) - n * gamma * y) / tau

        sol = solve_ivp(rhs, (t0, t1), u, method="DOP853", rtol=1e-11, atol=1e-14)
        assert sol.success
        u = sol.y[:, -1]
        at[t1] = u
    return np.stack([at[t] for t in TS])


def _trajectory(case, depth, dtype=np.float64, eps=None):
    spec = CASES[case]
    eps = _arg(spec["eps"], dtype) if eps is None else eps
    return theory.small_init_trajectory(TS[:, None].astype(dtype), LAMS.astype(dtype), eps,
                                        _arg(spec["gamma"], dtype), w0=dtype(W0),
                                        tau=_arg(spec["tau"], dtype), n=spec.get("n", 1.0), depth=depth)


def test_chained_deep_solution_matches_piecewise_integration(x64):
    for depth in (3, 4):
        for case in CASES:
            u = _trajectory(case, depth)
            assert u.shape == (len(TS), len(LAMS)) and u.dtype == jnp.float64
            # relative error (the unlearned directions decay to 5e-5). Measured at most 1.4e-11 at depth 3
            # and 1.6e-10 at depth 4 ("eps+gamma", limited by the reference's own atol 1e-14 against
            # values of 5e-5: with atol 1e-20, rtol 1e-13 it is 3.5e-13); bound 1e-8, the bound of the
            # constant-parameter depth tests (tests/test_theory_depth.py).
            np.testing.assert_allclose(u, reference(case, depth), rtol=1e-8, atol=0,
                                       err_msg=f"depth {depth}, {case}")


@pytest.mark.slow  # a second compilation of the chained solver, in float32 (15-50 s on the 2-core CPU)
def test_float32_chained_deep_solution():
    for depth in (3, 4):
        for case in CASES:
            u = _trajectory(case, depth, np.float32)
            assert u.dtype == jnp.float32
            # float32 against the float64 reference: the solver's float32 rounding (the time table and
            # the Newton solve, about 1e-6 relative per piece, carried over three boundaries). Measured
            # at most 2.8e-6 at depth 3 and 3.6e-6 at depth 4; bound 1e-4, the float32 bound of the
            # constant-parameter depth tests.
            np.testing.assert_allclose(u, reference(case, depth), rtol=1e-4, atol=0,
                                       err_msg=f"depth {depth}, {case}")


@pytest.mark.slow  # reverse mode through the chained solver compiles for 1-3 minutes on the 2-core CPU
def test_gradient_wrt_eps_piece_matches_central_difference(x64):
    """d u(T) / d (value of eps on piece j) by reverse mode through the chain (jax.grad, as the tuners
    use it) against a central difference of the float64 function. The values themselves are checked
    above; one jitted value-and-gradient serves both the gradient and the differences."""
    bounds, values = CASES["eps+tau"]["eps"]
    values = np.asarray(values)

    def u_at_end(v, weights):  # weights . u(T = 12), T in the last piece: derivatives cross every boundary
        eps = schedules.piecewise_constant(jnp.asarray(bounds), v)
        return jnp.dot(weights, _trajectory("eps+tau", 3, eps=eps)[-1])

    value_and_grad = jax.jit(jax.value_and_grad(u_at_end))
    h = 1e-5
    for b in range(len(LAMS)):
        one_hot = np.eye(len(LAMS))[b]
        grad = np.asarray(value_and_grad(values, one_hot)[1])
        at = lambda v: value_and_grad(v, one_hot)[0]
        fd = np.array([(at(values + h * e) - at(values - h * e)) / (2 * h) for e in np.eye(len(values))])
        # central difference: truncation h^2 u''' ~ 1e-10 and the solver's rounding ~1e-15 / h = 1e-10,
        # relative to the largest derivative of u(T) for that lam (the derivatives with respect to the
        # first piece are down to 1e-54 for lam = 2.5, which forgets its past). Measured 6.5e-10;
        # bound 1e-6.
        scale = np.max(np.abs(fd))
        assert np.all(np.abs(grad - fd) <= 1e-6 * scale), (b, grad, fd)
        assert np.abs(grad[-1]) > 0.1 * scale  # the last piece's eps sets the learned value at T


@pytest.mark.slow  # the constant-parameter deep solver and the jitted chained one compile once more each
def test_one_piece_and_traced_schedules_at_depth_3(x64):
    """A schedule with one piece is the constant itself (bit for bit, as at depth 2); under jit, traced
    piece values out of range give NaN in their elements only (a negative lam, a negative eps piece)."""
    one = schedules.piecewise_constant([], [0.3])
    t = TS[:, None]
    np.testing.assert_array_equal(theory.small_init_trajectory(t, LAMS, one, 0.01, w0=W0, depth=3),
                                  theory.small_init_trajectory(t, LAMS, 0.3, 0.01, w0=W0, depth=3))

    @jax.jit
    def run(lam, eps_values):
        eps = schedules.piecewise_constant(jnp.asarray([2.0, 6.0]), eps_values)
        return theory.small_init_trajectory(t, lam, eps, 0.01, w0=W0, tau=_arg(([4.0], [1.0, 0.5])), depth=3)

    eps_values = np.array([[0.1] * 4, [2.0, 2.0, -1.0, 2.0], [0.3] * 4])  # (pieces, lams)
    lam = LAMS * np.array([1.0, -1.0, 1.0, 1.0])
    u = np.asarray(run(lam, eps_values))
    assert np.all(np.isnan(u[:, 1:3])) and np.all(np.isfinite(u[:, [0, 3]]))
    # the valid directions are those of the eager call ("eps+tau": the same eps pieces for them)
    np.testing.assert_allclose(u[:, [0, 3]], np.asarray(_trajectory("eps+tau", 3))[:, [0, 3]], rtol=1e-12)


@pytest.mark.parametrize("name, schedule", [
    ("eps", schedules.linear(1.0, 0.5, 10.0)),
    ("gamma", schedules.exponential(0.1, 0.01, 10.0)),
    ("tau", schedules.function(lambda t, c: c + 0.1 * t, 1.0)),
])
def test_continuous_schedule_refused_at_depth_3(name, schedule):
    kwargs = dict(eps=0.5, gamma=0.01, tau=1.0)
    kwargs[name] = schedule
    kind = type(schedule).__name__
    message = (f"{name}: small_init_trajectory is exact for piecewise-constant schedules only; got a {kind} "
               "schedule (integrate it with daedyn.dynamics.scalar_flow(..., depth=3), or approximate it by "
               "daedyn.schedules.piecewise_constant)")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        theory.small_init_trajectory(1.0, 1.0, kwargs["eps"], kwargs["gamma"], w0=1e-3, tau=kwargs["tau"],
                                     depth=3)


def test_schedule_refused_where_no_time_is_given_at_depth_3():
    """fixed_point, learning_threshold and learning_time have no time argument to place a piece at:
    a schedule is refused naming the parameter, at depth 3 as at depth 2."""
    eps = schedules.piecewise_constant([1.0], [0.5, 1.0])
    for call in (lambda: theory.fixed_point(1.0, eps, depth=3),
                 lambda: theory.learning_threshold(1.0, 0.0, eps, depth=3),
                 lambda: theory.learning_time(0.5, 1.0, eps, w0=1e-3, depth=3)):
        with pytest.raises(ValueError, match=r"^(eps|gamma) must be a number or an array here, not a "
                                             r"PiecewiseConstant schedule"):
            call()
