"""daedyn.dynamics.scalar_gd / scalar_flow with eps and gamma schedules (daedyn/dynamics/_scalar.py):
the step convention, agreement with the exact closed forms, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from daedyn import dynamics, schedules, theory


def eps_gamma():
    """Built inside each test, so that they take the test's dtype (0.3 in float32 is not 0.3)."""
    return (schedules.piecewise_constant([250.0, 750.0], [4.0, 0.5, 2.0]),
            schedules.piecewise_constant([500.0], [0.0, 0.3]))


def test_gd_step_k_uses_eps_k(x64):
    # a schedule run equals constant-eps runs chained piece by piece (step k uses eps(k), gamma(k));
    # the same float64 operations in another order of jit boundaries: measured 0 difference, bound 1e-13
    EPS, GAMMA = eps_gamma()
    lam, w = jnp.array([0.5, 1.0, 3.0]), jnp.array([0.01, 0.2, -0.1])
    got = dynamics.scalar_gd(lam, EPS, w, 0.1, alpha=0.05, gamma=GAMMA, epochs=1000, save_every=100,
                             observables="all")
    # equal piece lengths: the chained runs share one compilation
    w1, w2, pieces = w, jnp.full(3, 0.1), [(0, 250, 4.0, 0.0), (250, 500, 0.5, 0.0), (500, 750, 0.5, 0.3),
                                           (750, 1000, 2.0, 0.3)]
    for start, end, e, g in pieces:
        tr = dynamics.scalar_gd(lam, e, w1, w2, alpha=0.05, gamma=g, epochs=end - start,
                               save_every=end - start, backend="scan", observables=("w1", "w2"))
        w1, w2 = tr.w1[:, -1], tr.w2[:, -1]
    np.testing.assert_allclose(got.w1[:, -1], w1, rtol=1e-13)
    np.testing.assert_allclose(got.w2[:, -1], w2, rtol=1e-13)
    # the saved loss uses the values at the save time
    e_t, g_t = EPS(got.t)[None], GAMMA(got.t)[None]
    loss = (lam[:, None] * (1 - got.w) ** 2 + e_t * got.w**2 + g_t * got.weight_norm) * 0.05 / 2
    np.testing.assert_allclose(got.loss, loss, rtol=1e-13)


def test_gd_constant_schedule_equals_constant(x64):
    # one piece: the same recursion; measured bit-identical (0 difference), bound 1e-14 (jit-fusion
    # freedom between two differently compiled loops)
    s = schedules.piecewise_constant([], [0.7])
    a = dynamics.scalar_gd(1.0, s, 0.1, 0.1, alpha=0.05, epochs=200, save_every=50)
    b = dynamics.scalar_gd(1.0, 0.7, 0.1, 0.1, alpha=0.05, epochs=200, save_every=50)
    np.testing.assert_allclose(a.w, b.w, rtol=1e-14)


@pytest.mark.parametrize("dtype", [pytest.param(jnp.float32, marks=pytest.mark.slow), jnp.float64])
def test_flow_and_gd_match_the_closed_form(dtype, x64):  # float32: slow-marked, 9 s (compilation)
    EPS, GAMMA = eps_gamma()
    ts = jnp.arange(0.0, 1001.0, 50.0, dtype=dtype)  # the jumps (250, 500, 750) are save times
    lam = jnp.asarray([0.5, 1.0, 2.0], dtype)
    w0 = 1e-4
    exact = theory.small_init_trajectory(ts, lam[:, None], EPS, GAMMA, w0=jnp.asarray(w0, dtype), tau=100.0)
    flow = dynamics.scalar_flow(ts, lam, EPS, w0**0.5, w0**0.5, tau=100.0, gamma=GAMMA, dt=0.5)
    # RK4 with dt = 0.5 = tau / 200, steps ending on the jumps: measured 4.2e-10 relative in float64
    # (2e-9 bound: O(dt^4) truncation, 5x margin) and 2.0e-6 in float32 (rounding over 2000 steps;
    # 1e-4 bound)
    rtol = 2e-9 if dtype == jnp.float64 else 1e-4
    np.testing.assert_allclose(flow.w, exact, rtol=rtol)
    # GD with alpha = 1 / tau = n / tau (one step per epoch): the Euler discretisation; its error
    # is O(alpha lam / n) per epoch, accumulated over the growth: measured 4.9e-2 relative worst; bound 0.1
    gd = dynamics.scalar_gd(lam, EPS, w0**0.5, w0**0.5, alpha=0.01, gamma=GAMMA, epochs=1000, save_every=50)
    np.testing.assert_allclose(gd.w, exact, rtol=0.1)


def test_continuous_schedule_flow_converges():
    # a linear ramp through the flow: RK4 at dt and dt / 2 agree (the time-dependent RHS is smooth);
    # float32, measured 1.2e-6 relative difference, bound 1e-5
    s = schedules.linear(2.0, 0.0, 500.0)
    ts = jnp.arange(0.0, 1001.0, 250.0)
    a = dynamics.scalar_flow(ts, 1.0, s, 0.01, 0.01, tau=100.0, dt=1.0).w
    b = dynamics.scalar_flow(ts, 1.0, s, 0.01, 0.01, tau=100.0, dt=0.5).w
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert float(a[-1]) == pytest.approx(1.0, abs=1e-4)  # eps(t) = 0 from t = 500: w* = 1


@pytest.mark.slow  # 7 s on the 2-core CPU (compilation); theory's check_grads stays in the default suite
def test_gd_gradient_wrt_schedule_values(x64):
    # differentiable through the loop: d w(T) / d values vs central differences, step 1e-6
    b = jnp.array([30.0])

    def w_end(v):
        s = schedules.PiecewiseConstant(b, v)
        return dynamics.scalar_gd(1.0, s, 0.1, 0.1, alpha=0.05, epochs=60, save_every=60,
                                  check_stability=False).w[-1]

    v = jnp.array([1.0, 0.5])
    g = jax.grad(w_end)(v)
    fd = [(w_end(v.at[i].add(1e-6)) - w_end(v.at[i].add(-1e-6))) / 2e-6 for i in range(2)]
    # central differences in float64: truncation ~1e-12, rounding ~1e-10; bound 1e-7 relative
    np.testing.assert_allclose(g, fd, rtol=1e-7)


EPS, _ = eps_gamma()  # float32, for the bad-input table


@pytest.mark.parametrize("call, match", [
    (lambda: dynamics.scalar_gd(1.0, schedules.linear(1.0, 0.0, 5.0), 0.1, 0.1, alpha=0.01, epochs=10,
                                backend="jnp"), "backend must be 'auto' or 'scan' with a continuous"),
    (lambda: dynamics.scalar_flow(jnp.array([1.0]), 1.0, EPS, 0.1, 0.1, method="diffrax"),
     "method must be 'rk4'"),
    (lambda: dynamics.scalar_gd(-1.0, EPS, 0.1, 0.1, alpha=0.01, epochs=10), "lam must lie in"),
    (lambda: dynamics.scalar_gd(1.0, schedules.PiecewiseConstant(jnp.array([1.0]), jnp.array([1.0, -1.0])),
                                0.1, 0.1, alpha=0.01, epochs=10), "eps schedule values must lie in"),
    (lambda: dynamics.scalar_gd(1.0, EPS, 0.1, 0.1, alpha=0.01, epochs=10, save_every=3), "multiple of"),
])
def test_bad_input(call, match):
    EPS, _ = eps_gamma()
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.slow  # 9 s on the loaded 2-core CPU (two compilations)
def test_simulate_scalar_in_chunks_equals_one_run(x64):
    # simulate_scalar continues each chunk with the schedules shifted to its start (schedules.shift):
    # the same steps as one scalar_gd call; measured 0 difference, bound 1e-14
    eps, _ = eps_gamma()
    gamma = schedules.linear(0.0, 0.3, 600.0)
    lam = jnp.array([0.5, 1.0, 2.0])
    alpha = schedules.piecewise_constant([420.0], [0.05, 0.08])  # a learning-rate schedule is shifted too
    kw = dict(gamma=gamma, alpha=alpha, epochs=1000, save_every=50)
    a = dynamics.simulate_scalar(lam, eps, 0.1, 0.1, chunk_work=300, **kw)  # 10 chunks
    b = dynamics.scalar_gd(lam, eps, 0.1, 0.1, observables="all", **kw)
    np.testing.assert_allclose(a.w, b.w, rtol=1e-14)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-14)
    s = schedules.shift(eps, 300.0)  # piecewise constant stays piecewise constant
    np.testing.assert_array_equal(s(jnp.array([0.0, 449.0, 450.0])), eps(jnp.array([300.0, 749.0, 750.0])))


def test_flow_with_a_learning_rate_schedule_matches_the_chained_closed_form():
    """scalar_flow(tau=schedule) (tau = N / alpha(t), with an eps schedule too) against the exact
    chained closed form with the same tau schedule; a one-piece tau schedule is the constant."""
    with jax.enable_x64(True):
        ts = jnp.linspace(0.0, 300.0, 31)  # the jumps (100, 150, 200) are save times
        tau = schedules.piecewise_constant([100.0, 200.0], jnp.array([20.0, 5.0, 40.0]))
        eps = schedules.piecewise_constant([150.0], jnp.array([0.5, 2.0]))
        lam = jnp.array([1.0, 0.3])
        tr = dynamics.scalar_flow(ts, lam, eps, 0.03, 0.03, tau=tau, gamma=0.01, n=1.0, dt=0.01)
        ref = theory.small_init_trajectory(ts[:, None], lam, eps, 0.01, w0=0.03**2, tau=tau, n=1.0)
        # RK4 (dt = 0.01) against the exact solution: measured 9e-11 (the same against DOP853)
        np.testing.assert_allclose(tr.w, np.asarray(ref).T, rtol=0, atol=1e-9)
        one = schedules.piecewise_constant([], jnp.array([20.0]))
        a = dynamics.scalar_flow(ts, lam, 0.5, 0.03, 0.03, tau=one, gamma=0.01, n=1.0, dt=0.01)
        b = dynamics.scalar_flow(ts, lam, 0.5, 0.03, 0.03, tau=20.0, gamma=0.01, n=1.0, dt=0.01)
        # the same loop and operations; XLA may fuse a constant's division differently: 1 ulp (1e-15)
        np.testing.assert_allclose(a.w, b.w, rtol=1e-14, atol=0)
        np.testing.assert_allclose(a.loss, b.loss, rtol=1e-14, atol=0)
        with pytest.raises(ValueError, match="tau schedule values"):
            bad = schedules.piecewise_constant([50.0], [1.0, 0.0])
            dynamics.scalar_flow(ts, lam, 0.5, 0.03, 0.03, tau=bad, dt=0.01)
