"""One matrix of combinations against one cheap, independent reference.

Depth x schedule kind x engine: every per-direction engine (scalar GD on each backend, the RK4 flow)
under every kind of schedule (constant, piecewise constant, linear, exponential, user function) for
eps, gamma and alpha (tau for the flow) at depths 2, 3 and 4, against a NumPy reference that keeps
every one of the L factors as its own array and evaluates the rates with its own NumPy formulas
(never daedyn's), in float64. Rows are added here rather than in one test file per combination.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from daedyn import dynamics, schedules

EPOCHS, EVERY = 24, 6
LAM = np.array([0.8, 1.5, 3.0])  # learned (lam > n gamma) and well inside GD's stable range
W1, W2 = 0.35, 0.45  # the first L - 1 factors start at W1, the last at W2


def _kinds():
    """name -> (builder of the daedyn schedule, NumPy evaluation), for a rate around ``base``."""
    return {
        "constant": (lambda b: b, lambda b, t: b + 0 * t),
        "piecewise": (lambda b: schedules.piecewise_constant([5.0, 13.5], [b, 2.5 * b, 0.5 * b]),
                      lambda b, t: np.where(t < 5.0, b, np.where(t < 13.5, 2.5 * b, 0.5 * b))),
        "linear": (lambda b: schedules.linear(b, 3 * b, 15.0),
                   lambda b, t: b + 2 * b * np.clip(t / 15.0, 0, 1)),
        "exponential": (lambda b: schedules.exponential(b, b / 4, 20.0),
                        lambda b, t: b * 0.25 ** np.clip(t / 20.0, 0, 1)),
        "function": (lambda b: schedules.function(lambda t, c: c * (1 + 0.5 * jnp.sin(t / 3.0)), b),
                     lambda b, t: b * (1 + 0.5 * np.sin(t / 3.0))),
    }


RATES = {"eps": 0.6, "gamma": 0.02, "alpha": 0.05}


def _numpy_gd(depth, eps, gamma, alpha, n=1.0):
    """GD on all L factors, each its own array; rates evaluated at t = epoch (step j uses rate(j))."""
    a = [np.full(LAM.shape, W1) for _ in range(depth - 1)] + [np.full(LAM.shape, W2)]
    us = [np.prod(a, axis=0)]
    for j in range(EPOCHS):
        e, g, al = eps(float(j)), gamma(float(j)), alpha(float(j))
        u = np.prod(a, axis=0)
        others = [np.prod([a[i] for i in range(depth) if i != l], axis=0) for l in range(depth)]
        a = [a[l] + (al / n) * ((LAM - (LAM + e) * u) * others[l] - n * g * a[l]) for l in range(depth)]
        us.append(np.prod(a, axis=0))
    return np.array(us)[::EVERY].T, a


# every kind for eps; gamma and alpha through the two code paths (table, per-step evaluation)
GD_CASES = [("eps", k) for k in _kinds()] + [(r, k) for r in ("gamma", "alpha") for k in ("piecewise", "linear")]


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("rate, kind", GD_CASES)
def test_scalar_gd_any_depth_any_schedule(depth, rate, kind, x64):
    make, ref = _kinds()[kind]
    args = {r: (make(b) if r == rate else b) for r, b in RATES.items()}
    refs = {r: ((lambda t, b=b, f=ref: f(b, t)) if r == rate else (lambda t, b=b: b)) for r, b in RATES.items()}
    want, factors = _numpy_gd(depth, refs["eps"], refs["gamma"], refs["alpha"])
    backends = ["scan"] + (["jnp"] if kind in ("constant", "piecewise") else [])  # interpret: test_kernels
    for backend in backends:
        tr = dynamics.scalar_gd(LAM, args["eps"], W1, W2, alpha=args["alpha"], gamma=args["gamma"],
                                epochs=EPOCHS, save_every=EVERY, depth=depth, backend=backend,
                                observables="all")
        # float64, the same recursion written independently: rounding only (24 steps), 1e-12
        np.testing.assert_allclose(tr.w, want, rtol=1e-12, atol=1e-14, err_msg=backend)
        np.testing.assert_allclose(tr.w1[:, -1], factors[0], rtol=1e-12, err_msg=backend)
        np.testing.assert_allclose(tr.w2[:, -1], factors[-1], rtol=1e-12, err_msg=backend)
        np.testing.assert_allclose(tr.weight_norm[:, -1], sum(f**2 for f in factors), rtol=1e-12)
        # the loss at the save times uses the rates in force then (eps(t), gamma(t), alpha(t) / n)
        t = np.asarray(tr.t)
        e, g, al = (np.broadcast_to(refs[r](t), t.shape) for r in ("eps", "gamma", "alpha"))
        loss = (LAM[:, None] * (1 - want) ** 2 + e * want**2 + g * np.asarray(tr.weight_norm)) * al / 2
        np.testing.assert_allclose(tr.loss, loss, rtol=1e-12, err_msg=backend)


FLOW_TS = np.array([0.0, 4.0, 5.0, 9.0, 13.5, 20.0])  # the piecewise jumps (5, 13.5) are save times


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("kind", ["piecewise", "linear", "function"])
def test_scalar_flow_any_depth_any_schedule(depth, kind, x64):
    make, ref = _kinds()[kind]
    tau = 20.0
    eps_s, eps_np = make(0.6), (lambda t: ref(0.6, t))
    tau_s, tau_np = make(tau), (lambda t: ref(tau, t))
    g = 0.02

    def rhs(t, y):  # all L factors, a separate state each
        a = y.reshape(depth, -1)
        u = np.prod(a, axis=0)
        e, ta = eps_np(t), tau_np(t)
        d = [((LAM - (LAM + e) * u) * np.prod([a[i] for i in range(depth) if i != l], axis=0) - g * a[l]) / ta
             for l in range(depth)]
        return np.concatenate(d)

    y = np.concatenate([np.full(LAM.shape, W1)] * (depth - 1) + [np.full(LAM.shape, W2)])
    want = [np.prod(y.reshape(depth, -1), axis=0)]
    for t0, t1 in zip(FLOW_TS[:-1], FLOW_TS[1:]):  # piece by piece: the jumps are exact
        if t1 > t0:
            y = solve_ivp(rhs, (t0, t1), y, method="DOP853", rtol=1e-12, atol=1e-14).y[:, -1]
        want.append(np.prod(y.reshape(depth, -1), axis=0))
    tr = dynamics.scalar_flow(jnp.asarray(FLOW_TS), LAM, eps_s, W1, W2, tau=tau_s, gamma=g, dt=0.01, depth=depth)
    # RK4 at dt = 0.01 with the jumps on step ends: error ~ dt^4 x rates; measured < 1e-10, bound 1e-8
    np.testing.assert_allclose(tr.w, np.array(want).T, rtol=0, atol=1e-8)
