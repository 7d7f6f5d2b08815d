"""The K-piece schedule-tuning objective (daedyn/tune/_schedule.py) by VALUE against an independent
NumPy/SciPy computation: each direction's balanced flow tau(t) dw/dt = 2 w (lam - n gamma(t) -
w (lam + eps(t))), tau = n / alpha(t), integrated piece by piece by DOP853 (route "closed_form"), or
the GD loop written out in NumPy (route "dynamics"), then the held-out loss
1/(2M) [sum_j (1 - w_j)^2 p_j + M s^2 sum_j w_j^2]. And tune_schedule's promise: the schedule stage
starts from the best constant (itself checked against a NumPy grid) and ends no worse."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.integrate import solve_ivp

from daedyn import tune
from daedyn.tune._schedule import ScheduleRoute, schedule_objective_fn

LAM = np.array([40.0, 20.0, 9.0, 4.0, 1.0, 0.2])
PROJ = np.array([9.0, 4.5, 2.5, 0.8, 0.4, 0.3])
N, M, S2, W0 = 50.0, 10.0, 0.1, 1e-6


@pytest.fixture
def problem(x64):
    return tune.problem_from_spectrum(LAM, PROJ, n=N, n_heldout=M, dtype=jnp.float64)


def heldout(w):
    return (np.sum((1 - w) ** 2 * PROJ) + M * S2 * np.sum(w * w)) / (2 * M)


def flow_objective(t_end, eps, gamma, alpha):
    """K equal pieces on [0, t_end] with the given per-piece values (arrays of length K)."""
    k = len(eps)
    edges = np.linspace(0.0, t_end, k + 1)
    w = np.full(LAM.shape, W0)
    for i in range(k):
        tau = N / alpha[i]
        rhs = lambda _, w, i=i, tau=tau: 2 * w * (LAM - N * gamma[i] - w * (LAM + eps[i])) / tau
        sol = solve_ivp(rhs, (edges[i], edges[i + 1]), w, method="DOP853", rtol=1e-12, atol=1e-300)
        assert sol.success
        w = sol.y[:, -1]
    return heldout(w)


def gd_objective(epochs, eps, gamma, alpha):
    """Scheduled GD from w1 = w2 = sqrt(w0): step j uses the values of the piece holding epoch j."""
    k = len(eps)
    a = b = np.full(LAM.shape, np.sqrt(W0))
    for j in range(epochs):
        i = min(int(j * k // epochs), k - 1)
        u = a * b
        common = LAM - (LAM + eps[i]) * u
        a, b = (a + alpha[i] / N * (b * common - N * gamma[i] * a),
                b + alpha[i] / N * (a * common - N * gamma[i] * b))
    return heldout(a * b)


def test_closed_form_value(problem):
    eps = np.array([20.0, 1.0, 8.0])
    f = schedule_objective_fn(problem, ScheduleRoute(pieces=3, epochs=300.0), alpha=0.05, gamma=0.01,
                              w0=W0, eval_sigma2=S2)
    got = float(f({"eps": jnp.asarray(eps)}))
    want = flow_objective(300.0, eps, [0.01] * 3, [0.05] * 3)
    # DOP853 at rtol 1e-12 against the chained logistic: measured 1e-15 relative; bound 1e-9. (tau =
    # alpha / n instead of n / alpha: 0.10 vs 0.46; eps and gamma swapped between pieces: 0.42)
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # the joint schedule: gamma and alpha pieces too (alpha = u without alpha_max)
    route = ScheduleRoute(pieces=3, epochs=300.0, tune_gamma=True, tune_alpha=True)
    f = schedule_objective_fn(problem, route, alpha=0.05, w0=W0, eval_sigma2=S2)
    gamma, alpha = np.array([0.02, 0.0, 0.05]), np.array([0.02, 0.08, 0.05])
    got = float(f({"eps": jnp.asarray(eps), "gamma": jnp.asarray(gamma), "alpha": jnp.asarray(alpha)}))
    np.testing.assert_allclose(got, flow_objective(300.0, eps, gamma, alpha), rtol=1e-9)
    # ... and the tuned training time T (equal pieces of T = 250)
    route = ScheduleRoute(pieces=3, epochs=300.0, tune_epochs=True)
    f = schedule_objective_fn(problem, route, alpha=0.05, gamma=0.01, w0=W0, eval_sigma2=S2)
    got = float(f({"eps": jnp.asarray(eps), "epochs": jnp.asarray(250.0)}))
    np.testing.assert_allclose(got, flow_objective(250.0, eps, [0.01] * 3, [0.05] * 3), rtol=1e-9)


def test_dynamics_value(problem):
    eps, gamma, u = np.array([20.0, 1.0, 8.0]), np.array([0.02, 0.0, 0.05]), np.array([0.3, 1.5, 0.7])
    route = ScheduleRoute(pieces=3, epochs=300, route="dynamics", tune_gamma=True, tune_alpha=True,
                          alpha_max=0.2)
    f = schedule_objective_fn(problem, route, alpha=0.05, w0=W0, eval_sigma2=S2)
    got = float(f({"eps": jnp.asarray(eps), "gamma": jnp.asarray(gamma), "alpha": jnp.asarray(u)}))
    alpha = 0.2 * u / (1 + u)  # the bounded learning rate alpha_max u / (1 + u), written out
    # the same float64 recursion in another order of operations: measured 4e-15; bound 1e-11
    np.testing.assert_allclose(got, gd_objective(300, eps, gamma, alpha), rtol=1e-11)


def logistic_objective(t, eps, alpha):
    """The constant-eps objective by Eq. (7) written out in NumPy (gamma = 0), for a grid of eps."""
    e = np.asarray(eps)[:, None]
    g = np.exp(2 * LAM * t * alpha / N)  # exp(2 lam t / tau)
    w = LAM * W0 * g / (LAM + (LAM + e) * W0 * (g - 1))
    return (np.sum((1 - w) ** 2 * PROJ, -1) + M * S2 * np.sum(w * w, -1)) / (2 * M)


def test_schedule_starts_at_the_best_constant_and_is_never_worse(problem):
    # adam: the stages' logic does not depend on the optimiser, and it compiles in half L-BFGS's time
    r = tune.tune_schedule(problem, pieces=2, epochs=300.0, alpha=0.05, w0=W0, eval_sigma2=S2, max_steps=8,
                           optimizer=optax.adam(0.1))
    # the constant stage refines the best point of its 61-point log grid over (1e-3 N, 10 N): no worse
    # than the best of that grid computed here (the NumPy logistic agrees with DOP853 to 1e-13)
    grid = logistic_objective(300.0, np.geomspace(1e-3 * N, 10 * N, 61), 0.05)
    np.testing.assert_allclose(grid[:3], [flow_objective(300.0, [e], [0.0], [0.05]) for e in
                                          np.geomspace(1e-3 * N, 10 * N, 61)[:3]], rtol=1e-10)
    assert r.constant_objective <= np.min(grid) * (1 + 1e-12)
    np.testing.assert_allclose(r.constant_objective, flow_objective(300.0, [r.constant_eps], [0.0], [0.05]),
                               rtol=1e-9)
    # the schedule stage starts with every piece at that constant (so its first objective is the
    # constant's), and what it returns is never worse
    start = np.asarray(r.result.history.params["eps"])[0]
    np.testing.assert_allclose(start, [r.constant_eps] * 2, rtol=1e-12)
    np.testing.assert_allclose(r.result.initial_objective, r.constant_objective, rtol=1e-12)
    # never worse: up to rounding, since K equal pieces are the constant chained K times (measured
    # improvement -4.4e-16 when the stage finds nothing better)
    assert r.objective <= r.constant_objective * (1 + 1e-14) and r.improvement >= -1e-14
    np.testing.assert_allclose(r.objective, flow_objective(300.0, np.asarray(r.schedule.values), [0.0] * 2,
                                                           [0.05] * 2), rtol=1e-9)
