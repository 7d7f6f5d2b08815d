"""Learning times located between records with the per-direction dynamics (train.crossing_times):
independent of the save spacing, unlike the straight line between records (issue 27)."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from daedyn import train as tr

SPACINGS = (1, 5, 20)


def _logistic(t, w_star, w0, rate):
    """The balanced depth-2 flow's closed form w(t) = w* / (1 + (w*/w0 - 1) exp(-rate t)),
    rate = 2 (lam - N gamma) / tau (independent of daedyn.theory)."""
    return w_star / (1 + (w_star / w0 - 1) * np.exp(-rate * t))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logistic_crossing_is_exact_at_every_spacing(dtype, request):
    if dtype == "float64":
        request.getfixturevalue("x64")
    # three directions: fast, medium, slow; fractions 0.2, 0.5, 0.9 of their fixed points
    w_star = np.array([0.9, 0.6, 0.3])
    w0 = np.array([1e-4, 1e-3, 2e-3])
    rate = np.array([0.41, 0.123, 0.051])
    f = np.array([0.2, 0.5, 0.9])
    exact = np.log((w_star / w0 - 1) * f / (1 - f)) / rate  # solve w(t) = f w* for t
    for every in SPACINGS:
        t = np.arange(0.0, 400.0 + every / 2, every)
        w = _logistic(t[:, None], w_star, w0, rate).astype(dtype)
        new = tr.crossing_times(t.astype(dtype), w, (f * w_star).astype(dtype),
                                fixed_point=w_star.astype(dtype))
        assert new.dtype == np.dtype(dtype)
        # logit(w / w*) is linear in t for this flow, so only rounding is left: float64 measured ~1e-14,
        # float32 ~3e-7 (logs of float32 values near w*, where w* - w loses digits); bounds with margin.
        np.testing.assert_allclose(new, exact, rtol=1e-11 if dtype == "float64" else 1e-5)
        if every == 20:
            # The straight line between the same records (the old method) is off by percents.
            old = np.asarray(tr.crossing_times(t, w.astype(np.float64), f * w_star))
            assert np.max(np.abs(old - exact) / exact) > 0.02


def _deep_flow(depth, k, m, w0, tau, t_end, level):
    """The balanced depth-L flow tau dw/dt = L w^(2 - 2/L) (k - m w) integrated by SciPy (DOP853,
    rtol 1e-12), as (dense solution, exact time of reaching ``level``)."""
    rhs = lambda _, w: [depth * w[0] ** (2 - 2 / depth) * (k - m * w[0]) / tau]
    event = lambda _, w: w[0] - level
    sol = solve_ivp(rhs, (0.0, t_end), [w0], method="DOP853", rtol=1e-12, atol=1e-16, dense_output=True,
                    events=event)
    return sol.sol, float(sol.t_events[0][0])


@pytest.mark.parametrize("depth", [3, 4])
def test_deep_flow_crossing_is_exact_at_every_spacing(depth, x64):
    k, m, tau, w0 = 1.0, 1.2, 10.0, 1e-3
    w_star = k / m
    sol, exact = _deep_flow(depth, k, m, w0, tau, 400.0, 0.5 * w_star)
    old_err = []
    for every in SPACINGS:
        t = np.arange(0.0, 400.0 + every / 2, every)
        w = sol(t)[0][:, None]
        new = float(tr.crossing_times(t, w, [0.5 * w_star], fixed_point=[w_star], depth=depth)[0])
        # 16-point Gauss-Legendre of a smooth integrand and a 1e-12 ODE solution: measured ~1e-14
        assert new == pytest.approx(exact, rel=1e-9)
        old_err.append(abs(float(tr.crossing_times(t, w, [0.5 * w_star])[0]) - exact) / exact)
    assert old_err[-1] > 0.01  # the straight line, saved every 20: measured 1.5% (depth 3), 2.3% (depth 4)


def test_outside_the_flow_falls_back_to_the_straight_line(x64):
    t = np.array([0.0, 10.0, 20.0])
    # column 0 starts below 0 (a random start), column 1 steps past w* (gradient descent's overshoot)
    w = np.array([[-0.1, 0.01], [0.6, 0.4], [0.9, 1.1]])
    w_star = np.array([1.0, 1.0])
    got = np.asarray(tr.crossing_times(t, w, 0.5 * w_star, fixed_point=w_star))
    np.testing.assert_allclose(got, [(0.5 + 0.1) / 0.7 * 10, 10 + 0.1 / 0.7 * 10], rtol=1e-12)
    # never reached: NaN; reached at the first record: t[0]
    got = np.asarray(tr.crossing_times(t, np.array([[0.1], [0.2], [0.3]]), [0.5], fixed_point=[1.0]))
    assert np.isnan(got).all()
    assert float(tr.crossing_times(t, np.array([[0.6], [0.7], [0.8]]), [0.5], fixed_point=[1.0])[0]) == 0.0
    with pytest.raises(ValueError, match="depth"):
        tr.crossing_times(t, w, 0.5 * w_star, fixed_point=w_star, depth=1)


@pytest.fixture(scope="module")
def tiny():
    """Small synthetic data (N = 32, D = 5) with a spread-out spectrum (as tests/test_train_compare.py)."""
    x = jr.uniform(jr.key(0), (32, 5)) * jnp.array([1.0, 0.8, 0.6, 0.4, 0.2])[None, :]
    return np.asarray(x, np.float64)


@pytest.mark.slow  # a real training run (~20 CPU-s); the exact logistic and depth-L flows test the method
def test_trained_run_learning_times_barely_depend_on_the_save_spacing(tiny, x64):
    """A real gradient-descent run (alpha lam_0 / N = 0.16) saved every 2, 10 and 20 epochs: the
    learning times compare_with_theory measures agree across spacings to a fraction of the straight
    line's spread. Gradient descent is not exactly a logistic (its logit advances 0.29 per step at the
    start and 0.37 near w* for this step, against the flow's 0.31), so a small residual is left."""
    v = np.linalg.eigh(tiny.T @ tiny)[1][:, ::-1]
    run = tr.train(tiny, key=jr.key(11), alpha=0.3, init_scale=0.01, hidden=3, epochs=600, save_every=2)
    c = tr.compare_with_theory(run, eigvecs=v)  # the configuration of test_train_compare's learning-time test
    t, w, w_star = np.asarray(run.t), np.asarray(c.measured), np.asarray(c.fixed_point)
    new, old = {}, {}
    for every in (2, 10, 20):  # the same run saved every 2, 10, 20 epochs (sub-sampled records)
        rows = slice(None, None, every // 2)
        new[every] = np.asarray(tr.crossing_times(t[rows], w[rows], 0.5 * w_star, fixed_point=w_star))[:2]
        old[every] = np.asarray(tr.crossing_times(t[rows], w[rows], 0.5 * w_star))[:2]
    np.testing.assert_allclose(new[2], np.asarray(c.time_measured)[:2], rtol=1e-12)  # what compare reports
    np.testing.assert_allclose(new[2], old[2], rtol=3e-3)  # within two epochs both locate it closely
    spread = lambda d: max(abs(d[e][0] - d[2][0]) / d[2][0] for e in d)
    # measured: 2.4% (new) against 7.6% (straight line) for direction 0, learned in ~27 epochs
    assert spread(new) < 0.03 and spread(old) > 2 * spread(new)
    np.testing.assert_allclose(new[20][1], new[2][1], rtol=1e-3)  # direction 1 (~246 epochs): 2.6e-5
