"""Learning-rate (alpha) schedules and joint (eps, gamma, alpha, T) schedule tuning: the closed form
with a tau = N / alpha(t) schedule against an independent integration, GD with alpha(k) against
chained constant runs, gradients of the joint objective, and the joint tuning on mnist5k."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from data_fixtures import load_real
from jax.test_util import check_grads
from scipy.integrate import solve_ivp

from daedyn import data, dynamics, schedules, theory, tune


def test_alpha_schedule_closed_form_matches_integration(x64):
    lam, n, w0 = 2.0, 10.0, 1e-3
    eps = schedules.piecewise_constant([30.0, 70.0], [1.0, 0.2, 3.0])
    gamma = schedules.piecewise_constant([40.0], [0.0, 0.1])
    alpha = schedules.piecewise_constant([50.0], [0.5, 2.0])
    tau = schedules.piecewise_constant(alpha.boundaries, n / alpha.values)  # tau(t) = N / alpha(t)
    ts = np.array([0.0, 10.0, 30.0, 45.0, 50.0, 60.0, 70.0, 100.0])
    got = theory.small_init_trajectory(ts, lam, eps, gamma, w0=w0, tau=tau, n=n)

    def value(b, v, t):  # the schedules in NumPy: the integrator calls this thousands of times
        return v[np.searchsorted(b, t, side="right")]

    def rhs(t, y):
        a, e, g = (value(b, v, t) for b, v in (([50.0], [0.5, 2.0]), ([30.0, 70.0], [1.0, 0.2, 3.0]),
                                               ([40.0], [0.0, 0.1])))
        return [a / n * 2 * y[0] * (lam - n * g - y[0] * (lam + e))]

    ref, y, edges = {0.0: w0}, [w0], [0.0, 30.0, 40.0, 50.0, 70.0, 100.0]
    for a, b in zip(edges[:-1], edges[1:], strict=True):  # one integration per piece: jumps on the ends
        sol = solve_ivp(rhs, (a, b), y, method="DOP853", rtol=1e-13, atol=1e-15, dense_output=True)
        ref.update({t: sol.sol(t)[0] for t in ts if a < t <= b})
        y = [sol.sol(b)[0]]
    # chained closed form vs DOP853: measured 1.6e-13 relative; the bound 1e-8
    np.testing.assert_allclose(got, [ref[t] for t in ts], rtol=1e-8)


@pytest.mark.slow  # ~10 s on the loaded 2-core CPU (two GD compilations)
def test_gd_alpha_schedule_step_k_uses_alpha_k(x64):
    lam, w = jnp.array([0.5, 1.0, 3.0]), jnp.array([0.01, 0.2, -0.1])
    alpha = schedules.piecewise_constant([250.0, 750.0], [0.05, 0.2, 0.1])
    eps = schedules.piecewise_constant([500.0], [1.0, 0.3])
    got = dynamics.scalar_gd(lam, eps, w, 0.1, alpha=alpha, epochs=1000, save_every=250, observables="all")
    w1, w2 = w, jnp.full(3, 0.1)
    for a, e in [(0.05, 1.0), (0.2, 1.0), (0.2, 0.3), (0.1, 0.3)]:  # equal pieces: one compilation
        tr = dynamics.scalar_gd(lam, e, w1, w2, alpha=a, epochs=250, save_every=250, observables=("w1", "w2"))
        w1, w2 = tr.w1[:, -1], tr.w2[:, -1]
    # the same float64 steps chained: measured 1e-13 relative (the third direction shrinks to a subnormal
    # 1.8e-301, where the last bits differ); bound 1e-12 with an absolute floor far below 1e-300
    np.testing.assert_allclose(got.w1[:, -1], w1, rtol=1e-12, atol=1e-305)
    np.testing.assert_allclose(got.w2[:, -1], w2, rtol=1e-12, atol=1e-305)
    # the saved loss is scaled by alpha(t) / n (as the constant-alpha loss by alpha / n)
    loss = (lam[:, None] * (1 - got.w) ** 2 + eps(got.t)[None] * got.w**2) * alpha(got.t)[None] / 2
    np.testing.assert_allclose(got.loss, loss, rtol=1e-13)


@pytest.fixture
def small(x64):
    lam = np.array([40.0, 20.0, 9.0, 4.0, 1.0, 0.2])
    proj = np.array([9.0, 4.5, 2.5, 0.8, 0.4, 0.3])
    return tune.problem_from_spectrum(lam, proj, n=50, n_heldout=10, dtype=jnp.float64)


@pytest.mark.slow  # ~17 s on the loaded 2-core CPU (compiling two objectives and their gradients)
@pytest.mark.parametrize("route", ["closed_form", "dynamics"])
def test_joint_objective_gradients(small, route, x64):
    r = tune.ScheduleRoute(pieces=3, epochs=200.0, route=route, tune_gamma=True, tune_alpha=True,
                           alpha_max=1.0, tune_epochs=route == "closed_form")
    f = jax.jit(tune.schedule_objective_fn(small, r, alpha=0.05, eval_sigma2=0.1))
    params = {"eps": jnp.array([3.0, 0.5, 9.0]), "gamma": jnp.array([0.01, 0.2, 0.05]),
              "alpha": jnp.array([0.05, 0.1, 0.02])}
    if route == "closed_form":
        params["epochs"] = jnp.array(200.0)
    # reverse mode vs central differences (step 1e-6, float64; check_grads' own tolerance)
    check_grads(lambda *v: f(dict(zip(params, v, strict=True))), tuple(params.values()), order=1,
                modes=("rev",), eps=1e-6)


def test_joint_route_errors():
    with pytest.raises(ValueError, match="tune_epochs needs route 'closed_form'"):
        tune.ScheduleRoute(pieces=2, epochs=10.0, route="dynamics", tune_epochs=True)
    with pytest.raises(ValueError, match="alpha_max must lie in"):
        tune.ScheduleRoute(pieces=2, epochs=10.0, tune_alpha=True, alpha_max=0.0)
    with pytest.raises(ValueError, match="alpha must be < alpha_max"):
        tune.tune_schedule(None, pieces=2, epochs=10.0, alpha=1.0, tune_alpha=True, alpha_max=0.5)
    with pytest.raises(ValueError, match=r"alpha schedule values must lie in \(0"):
        dynamics.scalar_gd(1.0, 0.5, 0.1, 0.1, alpha=schedules.piecewise_constant([5.0], [0.1, 0.0]),
                           epochs=10)


@pytest.mark.slow  # about 45 s on the loaded 2-core CPU (two tuning stages on D = 784)
def test_mnist5k_joint_schedule_tuning(x64):
    """(eps, gamma, alpha, T) tuned jointly on a validation split of mnist5k (closed form, K = 4, the
    learning rate bounded by the GD stability edge N / lam_1 by reparametrisation), against the best
    constant eps at the given (alpha, T); the gain is checked on an unseen test split."""
    x = load_real("mnist5k")
    rest, x_test = data.train_heldout_split(x, 1000, seed=0)
    x_train, x_val = data.train_heldout_split(rest, 1000, seed=1)
    val = tune.heldout_problem(x_train, x_val, keep_data=False)
    test = tune.heldout_problem(x_train, x_test, keep_data=False)
    edge = float(val.n / val.eigvals[0])  # alpha lam_1 / N < 1
    r = tune.tune_schedule(val, pieces=4, epochs=2000.0, alpha=0.02, eval_sigma2=0.05, tune_gamma=True,
                           tune_alpha=True, alpha_max=edge, tune_epochs=True, max_steps=100)
    assert np.all(np.asarray(r.alpha_schedule.values) < edge)
    # measured: T runs to 2e8 epochs (the flow's fixed point: with the right noise, training longer
    # never hurts), alpha stays near 0.022, eps ~ (124, 121, 87, 149), gamma ~ 0: on the validation
    # split 35.1% below the best constant eps (124.5) at alpha = 0.02, T = 2000; bound 20%
    assert r.epochs > 1e6 and r.improvement > 0.2
    f_test = tune.schedule_objective_fn(test, r.objective_fn.func.route, alpha=0.02, eval_sigma2=0.05)
    const = tune.schedule_objective_fn(test, tune.ScheduleRoute(pieces=1, epochs=2000.0), alpha=0.02,
                                       eval_sigma2=0.05)
    j_joint = float(f_test(jax.tree_util.tree_map(jnp.asarray, r.result.params)))
    j_const = float(const({"eps": jnp.array([r.constant_eps])}))
    # measured on the unseen test split: 35.4% below; bound 20%
    assert 1 - j_joint / j_const > 0.2


def test_schedules_sharing_boundaries_are_one_set_of_pieces(x64):
    """eps and gamma schedules on the same boundaries (one array, equal arrays, one traced array) chain
    K pieces, not 2K - 1 (the merge had kept a zero-length piece per shared boundary: 5x the cost of a
    K = 64 weight-decay hypergradient), with values equal to DOP853 on tau dw/dt = 2 w (lam - n gamma -
    (lam + eps) w) piece by piece (rtol 1e-12: measured 7.6e-14 on the closed form's float64)."""
    from daedyn.theory._schedule import schedule_pieces

    b = jnp.array([20.0, 50.0, 90.0])
    eps_v, gam_v = np.array([0.5, 2.0, 0.1, 1.0]), np.array([0.0, 0.02, 0.05, 0.01])
    lam, n, w0, tau = 1.5, 4.0, 1e-3, 30.0  # every piece in transit (w from 1e-3 through 0.66)
    ts = np.array([0.0, 10.0, 20.0, 35.0, 50.0, 70.0, 90.0, 130.0])
    for b2 in (b, jnp.array([20.0, 50.0, 90.0])):
        eps, gam = schedules.piecewise_constant(b, eps_v), schedules.piecewise_constant(b2, gam_v)
        assert schedule_pieces(eps, gam)[0].shape == (3,)
    traced = jax.jit(lambda bb: schedule_pieces(schedules.piecewise_constant(bb, eps_v),
                                                schedules.piecewise_constant(bb, gam_v))[0])(b)
    assert traced.shape == (3,)
    # distinct boundaries still merge: 3 + 1 pieces' boundaries
    other = schedules.piecewise_constant(jnp.array([60.0]), [0.0, 0.03])
    assert schedule_pieces(eps, other)[0].shape == (4,)
    got = theory.small_init_trajectory(ts, lam, eps, gam, w0=w0, tau=tau, n=n)
    edges = [0.0, 20.0, 50.0, 90.0, np.inf]
    want, w = [w0], np.array([w0])
    for t0, t1 in zip(ts[:-1], ts[1:]):
        for j in range(4):  # the pieces inside [t0, t1]
            lo, hi = max(t0, edges[j]), min(t1, edges[j + 1])
            if hi > lo:
                rhs = lambda _, y, j=j: 2 * y * (lam - n * gam_v[j] - (lam + eps_v[j]) * y) / tau
                w = solve_ivp(rhs, (lo, hi), w, method="DOP853", rtol=1e-13, atol=1e-18).y[:, -1]
        want.append(w[0])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)


def test_gd_schedules_sharing_boundaries_are_one_set_of_pieces(x64, monkeypatch):
    """The fused GD recursion's tables over eps, gamma and alpha schedules on the same boundaries have
    K + 1 rows, not 3K + 1 (empty pieces had halved the reverse pass's blocks), and its values equal a
    NumPy loop of the epochs (step j uses the piece holding t = j): rtol 1e-12, float64 rounding only."""
    import daedyn.dynamics._scalar as scalar_mod

    b = jnp.array([7.0, 19.0, 33.0])
    eps_v, gam_v, al_v = [0.5, 2.0, 0.1, 1.0], [0.0, 0.02, 0.05, 0.01], [0.3, 0.6, 0.2, 0.5]
    lam, n = np.array([0.4, 1.5, 3.0]), 4.0
    w1, w2 = np.array([0.01, 0.2, -0.1]), np.array([0.02, 0.1, 0.3])
    seen = []
    fused = scalar_mod.scalar_gd_fused
    monkeypatch.setattr(scalar_mod, "scalar_gd_fused",
                        lambda *a, **k: seen.append(k["boundaries"].shape) or fused(*a, **k))
    eps = schedules.piecewise_constant(b, eps_v)
    gam = schedules.piecewise_constant(jnp.array([7.0, 19.0, 33.0]), gam_v)  # equal values, another array
    alpha = schedules.piecewise_constant(b, al_v)
    got = dynamics.scalar_gd(lam, eps, w1, w2, alpha=alpha, gamma=gam, n=n, epochs=40, save_every=40,
                             backend="jnp", observables=("w1", "w2"))
    assert seen == [(3,)]
    a1, a2 = w1.copy(), w2.copy()
    for j in range(40):
        i = int(np.sum(np.asarray(b) <= j))
        tau = n / al_v[i]
        h = (lam - (lam + eps_v[i]) * a1 * a2) / tau
        a1, a2 = (1 - n * gam_v[i] / tau) * a1 + h * a2, (1 - n * gam_v[i] / tau) * a2 + h * a1
    np.testing.assert_allclose(np.asarray(got.w1[:, -1]), a1, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(got.w2[:, -1]), a2, rtol=1e-12)
