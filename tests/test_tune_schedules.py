"""daedyn.tune schedule tuning (daedyn/tune/_schedule.py): the schedule objective against the
constant-eps routes, gradients, the tuned schedule against the best constant (synthetic and mnist5k)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from data_fixtures import load_real
from jax.test_util import check_grads

from daedyn import data, spectrum, tune


@pytest.fixture
def small(x64):
    """A 6-direction float64 problem with a spread-out spectrum and a held-out set that differs from it."""
    lam = np.array([40.0, 20.0, 9.0, 4.0, 1.0, 0.2])
    proj = np.array([9.0, 4.5, 2.5, 0.8, 0.4, 0.3])
    return tune.problem_from_spectrum(lam, proj, n=50, n_heldout=10, dtype=jnp.float64)


def test_one_piece_equals_the_closed_form_route(small, x64):
    f1 = tune.schedule_objective_fn(small, tune.ScheduleRoute(pieces=1, epochs=300.0), alpha=0.05,
                                    gamma=0.01, eval_sigma2=0.1)
    ref = tune.heldout_objective(small, epochs=300.0, alpha=0.05, gamma=0.01, eval_sigma2=0.1)
    for e in (0.5, 5.0, 50.0):
        # one piece is the constant-eps closed form itself: measured equal; rtol 1e-14
        np.testing.assert_allclose(f1({"eps": jnp.array([e])}), ref({"eps": e}), rtol=1e-14)


def test_dynamics_route_tracks_the_closed_form(small, x64):
    values = {"eps": jnp.array([20.0, 1.0, 8.0, 0.5])}
    kw = dict(alpha=0.05, eval_sigma2=0.1)
    flow = tune.schedule_objective_fn(small, tune.ScheduleRoute(pieces=4, epochs=400.0), **kw)(values)
    gd = tune.schedule_objective_fn(small, tune.ScheduleRoute(pieces=4, epochs=400.0, route="dynamics"),
                                    **kw)(values)
    # GD (alpha lam / N <= 0.04 per epoch) vs the flow: O(alpha lam / N); measured 2e-3 relative, bound 2e-2
    np.testing.assert_allclose(gd, flow, rtol=2e-2)


@pytest.mark.slow  # 10 s on the 2-core CPU (compilation); tests/test_schedules.py checks the closed form's
def test_schedule_objective_gradients(small, x64):
    route = tune.ScheduleRoute(pieces=3, epochs=200.0, tune_gamma=True)
    f = jax.jit(tune.schedule_objective_fn(small, route, alpha=0.05, eval_sigma2=0.1))
    g = lambda e, gm: f({"eps": e, "gamma": gm})
    check_grads(g, (jnp.array([3.0, 0.5, 9.0]), jnp.array([0.01, 0.2, 0.05])), order=1, modes=("rev",),
                eps=1e-6)


@pytest.mark.slow  # 30 s on the 2-core CPU (compiling the grid and two L-BFGS loops)
def test_tuned_schedule_is_never_worse_than_the_best_constant(small, x64):
    r = tune.tune_schedule(small, pieces=4, epochs=300.0, alpha=0.05, eval_sigma2=0.1, max_steps=50)
    assert r.objective <= r.constant_objective and r.improvement >= 0
    assert r.schedule.values.shape == (4,) and np.all(np.asarray(r.schedule.values) > 0)
    # the reported objective is the schedule's
    np.testing.assert_allclose(r.objective_fn({"eps": r.schedule.values}), r.objective, rtol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(pieces=0), "pieces must be an integer >= 1"),
    (dict(route="sampled"), "route must be 'closed_form', 'dynamics' or 'train'"),
    (dict(route="train", epochs=10.5), "epochs must be a whole number on route 'train'"),
    (dict(route="dynamics", epochs=10.5), "epochs must be a whole number"),
    (dict(epochs=-1.0), "epochs must lie in"),
])
def test_bad_routes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tune.ScheduleRoute(**{"pieces": 2, "epochs": 10.0, **kwargs})


@pytest.mark.slow  # about 40 s on the 2-core CPU (two tunings on D = 784)
def test_mnist5k_tuned_schedule_beats_the_best_constant_on_a_test_split(x64):
    x = load_real("mnist5k")
    rest, x_test = data.train_heldout_split(x, 1000, seed=0)
    x_train, x_val = data.train_heldout_split(rest, 1000, seed=1)
    val = tune.heldout_problem(x_train, x_val, keep_data=False)
    spec = spectrum.compute_spectrum(x_train, accumulate_dtype=np.float64)
    proj = spectrum.projected_second_moment(spec, x_test)
    test = val._replace(projected=jnp.asarray(proj, val.eigvals.dtype), n_heldout=x_test.shape[0])
    kw = dict(epochs=2000.0, alpha=0.02, eval_sigma2=0.05)
    r = tune.tune_schedule(val, pieces=16, **kw)
    # on the split it was tuned on: measured 1.26e-3 (0.126% lower); bound 5e-4. The schedule learned
    # is low noise early (fast learning of the top directions), high noise at the end.
    assert r.improvement > 5e-4
    # on the unseen test split: the tuned schedule against the tuned constant
    f_test = tune.schedule_objective_fn(test, tune.ScheduleRoute(pieces=16, epochs=2000.0), alpha=0.02,
                                        eval_sigma2=0.05)
    j_sched = float(f_test({"eps": r.schedule.values}))
    j_const = float(f_test({"eps": jnp.full(16, r.constant_eps)}))
    gain = 1 - j_sched / j_const
    # measured 1.27e-3 on the test split (the gain carries over); bound 5e-4
    assert gain > 5e-4


@pytest.mark.slow  # 30 s on the 2-core CPU (tune_schedule compiles its grid and L-BFGS loops)
def test_heldout_curve_and_figure(small, x64, tmp_path):
    from daedyn import figures

    r = tune.tune_schedule(small, pieces=4, epochs=300.0, alpha=0.05, eval_sigma2=0.1, max_steps=20)
    j_s, j_c = r.heldout_curve(np.array([0.0, 150.0, 300.0]))
    # at T the curves are the two objectives the tuning reported: the same closed form, rtol 1e-12
    np.testing.assert_allclose([j_s[-1], j_c[-1]], [r.objective, r.constant_objective], rtol=1e-12)
    a, _ = figures.plot_schedule_tuning(r, points=20)
    a.figure.savefig(tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 1000


@pytest.mark.slow  # about 2 min on the loaded 2-core CPU (tuning through 400 GD steps, two trainings)
def test_mnist5k_pooled_schedule_confirmed_by_training(x64):
    """Tuned on the GD recursion (route "dynamics"), then confirmed by actually training linear DAEs
    (marginalised, eigenbasis, decoupling start) with the tuned schedule and with the best constant:
    the trained networks' held-out objectives are the predicted ones and the schedule wins."""
    from daedyn import dynamics, schedules, train

    x = load_real("mnist5k")
    x = x.reshape(-1, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(-1, 49)  # 4 x 4 pooling: D = 49
    xt, xh = data.train_heldout_split(x, 1000, seed=0)
    problem = tune.heldout_problem(xt, xh)
    alpha, epochs, s2, w0 = 0.2, 400, 0.02, 1e-6  # alpha lam_max / N = 0.45: stable GD
    r = tune.tune_schedule(problem, pieces=8, epochs=float(epochs), alpha=alpha, eval_sigma2=s2,
                           route="dynamics", w0=w0)
    wb1, wb2 = dynamics.orthogonal_init(49, 49, np.sqrt(w0), np.sqrt(w0))
    w1, w2 = dynamics.from_eigenbasis(wb1, wb2, np.asarray(problem.eigvecs))
    kw = dict(hidden=49, key=jax.random.key(0), epochs=epochs, alpha=alpha, save_every=epochs,
              marginalised=True, params={"w1": w1, "w2": w2}, precision="highest")
    held = lambda run: float(tune.heldout_loss(run.mapping[-1], problem.projected, problem.n_heldout, s2))
    j_sched = held(train.train(xt, eps=r.schedule, **kw))
    j_const = held(train.train(xt, eps=schedules.piecewise_constant([], [r.constant_eps]), **kw))
    # trained = predicted (the data are float32, so the training runs in float32): measured 4e-7
    # relative; bound 1e-5
    np.testing.assert_allclose([j_sched, j_const], [r.objective, r.constant_objective], rtol=1e-5)
    # the schedule's gain survives training: measured 7.4e-4 (0.074%); bound 3e-4
    assert 1 - j_sched / j_const > 3e-4


def test_train_route_schedule_is_a_trained_network_and_its_gradient_is_exact():
    """Route "train" of tune_schedule: the K eps pieces as the schedule of a real (linear,
    marginalised) training run, checked against train.train with the same start, against the
    constant-eps train route, and against central differences."""
    from jax.test_util import check_grads

    from daedyn import _linear, models, schedules, train
    from daedyn.tune._schedule import ScheduleRoute, schedule_objective_fn
    from daedyn.tune._train_route import _train_data

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)) * np.linspace(2.0, 0.3, 6)
    with jax.enable_x64(True):
        prob = tune.heldout_problem(x[:50], x[50:])
        kw = dict(alpha=0.01, eval_sigma2=0.1, key=jax.random.key(0), init_scale=0.1)
        f = schedule_objective_fn(prob, ScheduleRoute(pieces=4, epochs=200, route="train"), **kw)
        const = tune.heldout_objective(prob, epochs=200, route="train", **kw)
        # four equal pieces are the constant: the same epochs with the same eps values
        assert float(f({"eps": jnp.full(4, 3.0)})) == pytest.approx(float(const({"eps": 3.0})), rel=1e-14)
        values = jnp.array([1.0, 8.0, 3.0, 0.5])
        sched = schedules.piecewise_constant([50.0, 100.0, 150.0], values)
        p0 = _train_data(f).params0
        r = train.train(prob.x_train, key=jax.random.key(5), alpha=0.01, eps=sched, marginalised=True,
                        params=p0, hidden=6, epochs=200, save_every=200, path="data")
        want = _linear.data_loss(models.weights(r.params), prob.x_heldout, 30 * 0.1,
                                 mm=_linear.matmul_fn("highest"))
        # the same marginalised GD through the public driver on the data path (the route trains in the
        # eigenbasis): agreement to float64 rounding of the two paths
        assert float(f({"eps": values})) == pytest.approx(float(want), rel=1e-10)
        check_grads(lambda e: f({"eps": e}), (values,), order=1, modes=("rev",), atol=1e-7, rtol=1e-6,
                    eps=1e-5)
        # per-direction schedules on this route: tests/test_tune_train_per_direction.py


def test_train_route_gamma_and_alpha_pieces_are_the_trained_network():
    """Route "train" with tune_gamma and tune_alpha: the K eps, gamma and alpha pieces are the
    schedules of one real training run (train.train with alpha= and gamma= schedules), and the
    reverse-mode gradient in all three matches central differences."""
    from jax.test_util import check_grads

    from daedyn import _linear, models, schedules, train
    from daedyn.tune._schedule import ScheduleRoute, schedule_objective_fn
    from daedyn.tune._train_route import _train_data

    rng = np.random.default_rng(1)
    x = rng.normal(size=(70, 5)) * np.linspace(2.0, 0.3, 5)
    with jax.enable_x64(True):
        prob = tune.heldout_problem(x[:45], x[45:])
        route = ScheduleRoute(pieces=2, epochs=120, route="train", tune_gamma=True, tune_alpha=True,
                              alpha_max=0.05)
        f = schedule_objective_fn(prob, route, alpha=0.01, eval_sigma2=0.1, key=jax.random.key(0),
                                  init_scale=0.1)
        p = {"eps": jnp.array([4.0, 0.5]), "gamma": jnp.array([1e-3, 2e-2]), "alpha": jnp.array([0.3, 1.5])}
        alpha = 0.05 * p["alpha"] / (1 + p["alpha"])  # alpha_max u / (1 + u) written out: 0.0115, 0.03
        sched = lambda v: schedules.piecewise_constant([60.0], v)
        r = train.train(prob.x_train, key=jax.random.key(5), eps=sched(p["eps"]), gamma=sched(p["gamma"]),
                        alpha=sched(alpha), marginalised=True, params=_train_data(f).params0, hidden=5,
                        epochs=120, save_every=120, path="data")
        want = _linear.data_loss(models.weights(r.params), prob.x_heldout, 25 * 0.1,
                                 mm=_linear.matmul_fn("highest"))
        # the same scheduled GD through the public driver on the data path (the route trains in the
        # eigenbasis): agreement to float64 rounding of the two paths
        assert float(f(p)) == pytest.approx(float(want), rel=1e-10)
        check_grads(lambda g, a: f({"eps": p["eps"], "gamma": g, "alpha": a}), (p["gamma"], p["alpha"]),
                    order=1, modes=("rev",), atol=1e-7, rtol=1e-6, eps=1e-6)
