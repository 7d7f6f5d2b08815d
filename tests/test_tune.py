"""Tests of daedyn.tune: objectives, gradients of every route, optimisers, bad input, plot, CLI."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from data_fixtures import load_real

import daedyn.tune as tn
from daedyn import data, figures, theory
from daedyn.tune._train_route import train_init_w0  # the balanced-equivalent start of a route-3 run

# A small synthetic problem (D = 8): train spectrum over 4 decades, held-out projections that
# differ from lam * M / N by +-30% so per-direction optima differ from the isotropic one.
D8 = 8
N8, M8 = 400, 100
LAM8 = np.geomspace(400.0, 0.04, D8)
PROJ8 = LAM8 * M8 / N8 * (1 + 0.3 * np.sin(np.arange(D8)))
SETTINGS8 = dict(epochs=300.0, alpha=0.5, eval_sigma2=0.05, w0=1e-3)


def small_problem():
    return tn.problem_from_spectrum(LAM8, PROJ8, N8, M8)


def central_difference(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


# --- the objective ---------------------------------------------------------------------------------

def test_heldout_loss_is_expected_denoising_loss(x64):
    # The per-direction formula equals the loss of the map W = V diag(w) V^T on the held-out data,
    # 1/(2M) ||X_ho - X_ho W^T||^2 + s2/2 ||W||_F^2 (the Gaussian-noise expectation, exact).
    rng = np.random.default_rng(0)
    xt, xh = rng.random((50, 6)), rng.random((20, 6))
    p = tn.heldout_problem(xt, xh)
    w = rng.random(6)
    v = np.asarray(p.eigvecs)
    big_w = v @ np.diag(w) @ v.T
    direct = np.sum((xh - xh @ big_w.T) ** 2) / (2 * 20) + 0.3 / 2 * np.sum(big_w**2)
    # float64 round-off of a 6 x 6 eigendecomposition: 1e-12 relative is far above it.
    np.testing.assert_allclose(tn.heldout_loss(w, p.projected, p.n_heldout, 0.3), direct, rtol=1e-10)


def test_closed_form_is_theory_predicted_loss(x64):
    # Without evaluation noise the objective is daedyn.theory.predicted_loss on the held-out set.
    p = small_problem()
    f = tn.heldout_objective(p, epochs=300.0, alpha=0.5, w0=1e-3, hidden=5)
    ref = theory.predicted_loss(300.0, p.eigvals, p.projected, M8, eps=3.0, w0=1e-3, tau=N8 / 0.5,
                                n=N8, hidden=5)
    # Same closed form on both sides; 1e-10 covers float64 round-off in different op orders.
    np.testing.assert_allclose(f({"eps": 3.0}), ref, rtol=1e-10)


def test_objective_jit_vmap_agree_with_plain_call(x64):
    f = tn.heldout_objective(small_problem(), **SETTINGS8)
    eps = jnp.geomspace(0.1, 1e3, 3)
    plain = np.array([float(f({"eps": e})) for e in eps])  # eager: slow per op, keep it to 3 calls
    # Identical operations traced vs eager; 1e-12 relative allows re-association by XLA.
    np.testing.assert_allclose(jax.jit(f)({"eps": eps[1]}), plain[1], rtol=1e-12)
    np.testing.assert_allclose(jax.vmap(lambda e: f({"eps": e}))(eps), plain, rtol=1e-12)


@pytest.mark.parametrize("name", ["eps", "gamma", "alpha", "epochs"])
def test_closed_form_gradients_match_central_differences(name, x64):
    f = tn.heldout_objective(small_problem(), gamma=0.01, **SETTINGS8)
    base = {"eps": 5.0, "gamma": 0.01, "alpha": 0.5, "epochs": 300.0}
    g = jax.jit(jax.grad(lambda z, eps: f({name: jnp.exp(z), "eps": eps} if name != "eps"
                                          else {"eps": jnp.exp(z)})))
    h = 1e-5  # in log-parameter: float64 truncation error ~h^2 = 1e-10, round-off ~1e-16/h = 1e-11
    for eps in (0.3, 5.0, 60.0, 800.0):  # below, around and above the optimum
        z0 = math.log(base[name] if name != "eps" else eps)
        fd = central_difference(lambda z: float(f({name: jnp.exp(z), "eps": eps} if name != "eps"
                                                  else {"eps": jnp.exp(z)})), z0, h)
        ad = float(g(z0, eps))
        # Relative 1e-6 (or absolute 1e-9 of an O(1) objective): 100x above the FD error estimate.
        assert ad == pytest.approx(fd, rel=1e-6, abs=1e-9), (name, eps)


# --- the optimiser ---------------------------------------------------------------------------------

def test_tune_finds_interior_optimum_of_small_problem(x64):
    f = tn.heldout_objective(small_problem(), **SETTINGS8)
    res = tn.tune(f, {"eps": 0.5})
    assert res.status == "converged", res.message
    assert res.objective <= res.initial_objective
    grid = tn.grid_search(f, {"eps": np.geomspace(1e-2, 1e4, 3001)})
    # Interior optimum: grid minimum away from both ends of six decades.
    assert 0 < int(np.argmin(grid.values)) < 3000
    # L-BFGS converges to the stationary point; the grid (step 0.0046 in log eps) brackets it
    # within half a step.
    assert abs(math.log(float(res.params["eps"]) / float(grid.params["eps"]))) < 0.005
    assert res.objective <= grid.objective * (1 + 1e-9)  # tuned point at least as good as the grid
    # History: one row per evaluated iterate, the gradient is d objective / d log eps.
    h = res.history
    assert h.objective.shape == h.params["eps"].shape == h.grad["eps"].shape
    assert h.objective[0] == res.initial_objective and h.params["eps"][0] == pytest.approx(0.5)
    assert np.nanmin(h.objective) == res.objective


def test_tune_with_first_order_optax_optimiser(x64):
    # Any optax transformation works (here Adam with a decaying step); it is slower but gets there.
    f = tn.heldout_objective(small_problem(), **SETTINGS8)
    best = tn.tune(f, {"eps": 0.5})
    opt = optax.adam(optax.exponential_decay(0.3, transition_steps=40, decay_rate=0.3))
    res = tn.tune(f, {"eps": 0.5}, optimizer=opt, max_steps=400, patience=20)
    assert res.n_steps > best.n_steps
    # Within 1% in eps of the L-BFGS optimum; the final Adam step size is ~1e-3 in log eps.
    assert abs(math.log(float(res.params["eps"]) / float(best.params["eps"]))) < 0.01


def test_grid_search_two_dimensional(x64):
    f = tn.heldout_objective(small_problem(), **SETTINGS8)
    eps, gamma = np.geomspace(0.1, 1e3, 9), np.geomspace(1e-4, 1e-1, 4)
    r = tn.grid_search(f, {"eps": eps, "gamma": gamma}, batch_size=5)
    assert r.values.shape == (9, 4) and r.n_evals == 36 and r.status == "ok"
    i, j = 3, 2
    # Batched lax.map evaluation equals a single call (same ops; float64 re-association only).
    np.testing.assert_allclose(r.values[i, j], f({"eps": eps[i], "gamma": gamma[j]}), rtol=1e-12)
    assert r.objective == pytest.approx(np.min(r.values), rel=0)


def test_anisotropic_never_worse_than_isotropic(x64):
    p = small_problem()
    f = tn.heldout_objective(p, **SETTINGS8)
    iso = tn.tune(f, {"eps": 0.5})
    aniso = tn.tune_anisotropic(f, iso, D8)
    assert aniso.params["eps"].shape == (D8,)
    # The start (eps_j = eps_iso for all j) reproduces the isotropic optimum exactly
    # (same elementwise arithmetic), and tune only returns points at least as good as the start.
    assert aniso.initial_objective == pytest.approx(iso.objective, rel=1e-14)
    assert aniso.objective <= iso.objective
    # Here the held-out spectrum differs per direction, so per-direction noise strictly helps.
    assert aniso.objective < iso.objective * (1 - 1e-4)


# --- bad input -------------------------------------------------------------------------------------

def test_bad_input_raises_before_any_work():
    p = small_problem()
    with pytest.raises(ValueError, match="x_heldout is empty"):
        tn.heldout_problem(np.ones((5, 3)), np.ones((0, 3)))
    with pytest.raises(ValueError, match="n_heldout"):
        tn.problem_from_spectrum(LAM8, PROJ8, N8, 0)
    with pytest.raises(ValueError, match="epochs"):
        tn.heldout_objective(p, epochs=0.0, alpha=0.1)
    with pytest.raises(ValueError, match="epochs"):
        tn.tune_noise(np.ones((5, 3)), np.ones((2, 3)), epochs=-1, alpha=0.1, eval_sigma2=0.1)
    with pytest.raises(ValueError, match="alpha"):
        tn.heldout_objective(p, epochs=10.0, alpha=0.0)
    with pytest.raises(ValueError, match="route"):
        tn.heldout_objective(p, epochs=10.0, alpha=0.1, route="magic")
    with pytest.raises(ValueError, match="eps must be a scalar or have shape"):
        tn.heldout_objective(p, epochs=10.0, alpha=0.1, eps=np.ones(3))
    f = tn.heldout_objective(p, **SETTINGS8)
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="initial eps must be finite and > 0"):
            tn.tune(f, {"eps": bad})
    with pytest.raises(ValueError, match="initial eps"):
        tn.tune_noise(np.ones((5, 3)), np.ones((2, 3)), epochs=10, alpha=0.1, eval_sigma2=0.1,
                      eps0=0.0)


def test_nonfinite_objective_stops_and_returns_best_so_far():
    # -log eps decreases until eps = 10, then the objective is NaN. SGD steps +0.5 in log eps:
    # iterates z = 0, 0.5, ..., 2.0 are finite (best z = 2.0), z = 2.5 (eps = 12.2) is NaN.
    f = lambda p: jnp.where(p["eps"] < 10.0, -jnp.log(p["eps"]), jnp.nan)
    res = tn.tune(f, {"eps": 1.0}, optimizer=optax.sgd(0.5), max_steps=50)
    assert res.status == "nonfinite" and not res.success
    assert "NaN" in res.message or "nan" in res.message
    assert "best parameters found so far" in res.message
    # exp(2.0) exactly up to float32 round-off of the accumulated z (1e-6 relative).
    assert float(res.params["eps"]) == pytest.approx(math.exp(2.0), rel=1e-6)
    assert res.objective == pytest.approx(-2.0, rel=1e-6)
    assert res.history.objective.shape == (6,) and np.isnan(res.history.objective[-1])
    # NaN from the very start: nothing better is known than the initial parameters.
    res0 = tn.tune(lambda p: jnp.nan * p["eps"], {"eps": 3.0}, optimizer=optax.sgd(0.5))
    assert res0.status == "nonfinite" and math.isnan(res0.objective)
    assert float(res0.params["eps"]) == pytest.approx(3.0, rel=1e-6)


# --- training time ---------------------------------------------------------------------------------

def test_time_to_loss_value_and_gradient(x64):
    p = small_problem()
    kw = dict(alpha=0.5, w0=1e-3)
    target = 0.5 * float(np.sum(LAM8)) / (2 * N8)  # half of the loss at w = 0
    t = float(tn.time_to_loss(p, target, eps=2.0, **kw))

    w = theory.small_init_trajectory(t, p.eigvals, 2.0, w0=1e-3, tau=N8 / 0.5, n=N8)
    # The root: 80 bisection halvings of log t leave no error above float64 round-off (1e-10 rel).
    np.testing.assert_allclose(float(jnp.sum((1 - w) ** 2 * p.eigvals) / (2 * N8)), target, rtol=1e-10)
    g = float(jax.grad(lambda e: tn.time_to_loss(p, target, eps=e, **kw))(2.0))
    fd = central_difference(lambda e: float(tn.time_to_loss(p, target, eps=e, **kw)), 2.0, 1e-4)
    # Implicit-function derivative vs FD of bisected roots (each exact to ~1e-13 relative):
    # 1e-5 relative is above FD truncation (~h^2 = 1e-8) and root round-off / h (~1e-9 * t).
    assert g == pytest.approx(fd, rel=1e-5)
    unreachable = tn.time_to_loss(p, 1e-12, eps=2.0, **kw)  # below the fixed-point loss
    assert math.isinf(float(unreachable))


# --- real data -------------------------------------------------------------------------------------

MNIST_SETTINGS = dict(epochs=2000.0, alpha=0.02, eval_sigma2=0.05)


@pytest.fixture(scope="module")
def mnist_problem():
    x = load_real("mnist5k")
    xt, xh = data.train_heldout_split(x, 1000, seed=0)
    with jax.enable_x64(True):  # float64 arrays; the tests using them run under the x64 fixture
        problem = tn.heldout_problem(xt, xh, keep_data=False)
    return problem


def test_mnist_gradient_descent_matches_dense_grid(mnist_problem, x64):
    # mnist5k, 4000 train / 1000 held-out, T = 2000 epochs at alpha = 0.02 (alpha lam_max / N = 0.76
    # < 1), held-out inputs with noise variance 0.05: the optimum eps ~ 160 is interior.
    f = tn.heldout_objective(mnist_problem, **MNIST_SETTINGS)
    grid = tn.grid_search(f, {"eps": np.geomspace(1.0, 1e5, 2001)})  # step 0.0058 in log eps
    k = int(np.argmin(grid.values))
    assert 100 < k < 1900, "optimum must be interior for this test to mean anything"
    # ... and pronounced: both ends of the grid are worse by more than 1%.
    assert min(grid.values[0], grid.values[-1]) > 1.01 * grid.objective
    res = tn.tune(f, {"eps": 4.0})  # start 1.6 decades below the optimum
    assert res.success, res.message
    # The criteria: within 2% in log eps and 0.5% in held-out loss.
    assert abs(math.log(float(res.params["eps"])) - math.log(float(grid.params["eps"]))) < 0.02
    assert abs(res.objective - grid.objective) <= 0.005 * grid.objective


# --- routes 2 (dynamics) and 3 (training) ----------------------------------------------------------

ADAM = optax.adam(optax.exponential_decay(0.3, transition_steps=20, decay_rate=0.3))  # one instance


@pytest.mark.parametrize("init", ["balanced", "orthogonal"])
def test_dynamics_route_gradients_match_central_differences(init, x64):
    key = jax.random.key(3) if init == "orthogonal" else None
    f = tn.heldout_objective(small_problem(), route="dynamics", init=init, key=key,
                             remat_every=64, **SETTINGS8)  # 300 = 4 x 64 + 44: both block kinds
    g = jax.jit(jax.grad(lambda z: f({"eps": jnp.exp(z)})))
    fj = jax.jit(lambda z: f({"eps": jnp.exp(z)}))  # compiled once for the six FD evaluations
    for eps in (0.3, 15.0, 500.0):
        z0 = math.log(eps)
        fd = central_difference(lambda z: float(fj(z)), z0, 1e-5)
        # Same error budget as the closed form (h = 1e-5 in float64): 1e-6 relative.
        assert float(g(z0)) == pytest.approx(fd, rel=1e-6, abs=1e-9), eps


def test_routes_1_and_2_same_optimum_orthogonal_init(x64):
    p = small_problem()
    r1 = tn.tune(tn.heldout_objective(p, **SETTINGS8), {"eps": 0.5})
    f2 = tn.heldout_objective(p, route="dynamics", init="orthogonal", key=jax.random.key(1), **SETTINGS8)
    r2 = tn.tune(f2, {"eps": 0.5}, optimizer=ADAM, max_steps=300, patience=20)
    assert r2.success, r2.message
    # Route 2 is gradient descent (Euler steps, alpha lam_max / N = 0.5) and route 1 the flow; the
    # measured optima differ by 0.05% in eps (L-BFGS both). Adam's last steps are ~1e-3 in log eps,
    # so 1% in eps bounds both effects with margin; the objectives agree within 0.1%.
    assert abs(math.log(float(r2.params["eps"]) / float(r1.params["eps"]))) < 0.01
    assert r2.objective == pytest.approx(r1.objective, rel=1e-3)
    # With R = identity the orthogonal start is the balanced scalar start: identical numbers up to
    # float64 round-off of the matrix products (1e-12 relative).
    fb = tn.heldout_objective(p, route="dynamics", init="balanced", **SETTINGS8)
    fo = tn.heldout_objective(p, route="dynamics", init="orthogonal", **SETTINGS8)
    np.testing.assert_allclose(fo({"eps": 7.0}), fb({"eps": 7.0}), rtol=1e-12)


def test_dynamics_route_anisotropic_matches_closed_form_structure(x64):
    # Per-direction eps on route 2 (matrix recursion, orthogonal init) equals the scalar recursion
    # per direction (balanced init): two independent code paths, same numbers (1e-12 relative).
    p = small_problem()
    eps = np.geomspace(1.0, 100.0, D8)
    fb = tn.heldout_objective(p, route="dynamics", init="balanced", **SETTINGS8)
    fo = tn.heldout_objective(p, route="dynamics", init="orthogonal", key=jax.random.key(2), **SETTINGS8)
    np.testing.assert_allclose(fo({"eps": eps}), fb({"eps": eps}), rtol=1e-12)


@pytest.fixture(scope="module")
def small_mnist():
    """mnist5k averaged over 4 x 4 pixel blocks (D = 49), 4000 train / 1000 held-out."""
    x = load_real("mnist5k")
    x = x.reshape(-1, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(-1, 49)
    xt, xh = data.train_heldout_split(x, 1000, seed=0)
    with jax.enable_x64(True):  # not `yield` inside: x64 would stay on for the rest of the module
        problem = tn.heldout_problem(xt, xh)
    return problem


# alpha lam_max / N = 0.45 (stable GD); the optimum eps ~ 70 is interior (measured on a grid).
SMALL_MNIST = dict(epochs=500, alpha=0.2, eval_sigma2=0.02)


def test_train_route_gradient_matches_central_differences(small_mnist, x64):
    f = tn.heldout_objective(small_mnist, route="train", key=jax.random.key(0), init_scale=1e-3,
                             **{**SMALL_MNIST, "epochs": 100})
    g = jax.jit(jax.grad(lambda z: f({"eps": jnp.exp(z)})))
    fj = jax.jit(lambda z: f({"eps": jnp.exp(z)}))
    for eps in (10.0, 300.0):
        z0 = math.log(eps)
        fd = central_difference(lambda z: float(fj(z)), z0, 1e-5)
        # Reverse mode through 100 rematerialised training epochs vs FD (h = 1e-5, float64):
        # 1e-5 relative leaves room for the longer chain of round-off.
        assert float(g(z0)) == pytest.approx(fd, rel=1e-5, abs=1e-10), eps


def test_train_route_close_to_closed_form(small_mnist, x64):
    f3 = tn.heldout_objective(small_mnist, route="train", key=jax.random.key(0), init_scale=1e-3,
                              **SMALL_MNIST)
    f1 = tn.heldout_objective(small_mnist, w0=train_init_w0(f3), **SMALL_MNIST)
    eps = jnp.geomspace(10.0, 1000.0, 5)
    v1 = tn.grid_search(f1, {"eps": eps}).values
    v3 = tn.grid_search(f3, {"eps": eps}).values
    # A linear DAE from small random weights (1e-3 N(0, 1)) trained by GD vs the balanced flow from
    # the equivalent per-direction start: measured 0.8-1.5% apart (Euler steps, coupling between
    # directions, the diagonal approximation); 3% is the stated tolerance.
    np.testing.assert_allclose(v3, v1, rtol=0.03)
    assert int(np.argmin(v3)) == int(np.argmin(v1))  # same best of five (a factor 3.2 apart)


@pytest.mark.slow
def test_train_route_tuned_optimum_close_to_route_1(small_mnist, x64):
    f3 = tn.heldout_objective(small_mnist, route="train", key=jax.random.key(0), init_scale=1e-3,
                              **SMALL_MNIST)
    f1 = tn.heldout_objective(small_mnist, w0=train_init_w0(f3), **SMALL_MNIST)
    r1 = tn.tune(f1, {"eps": 5.0})
    r3 = tn.tune(f3, {"eps": 5.0}, optimizer=ADAM, max_steps=150, patience=10)
    assert r3.success, r3.message
    # Measured: optima 67.7 (route 1) and 71.2 (route 3), 5% apart in eps, objectives 0.85% apart.
    # Tolerances 15% in eps and 2% in objective.
    assert abs(math.log(float(r3.params["eps"]) / float(r1.params["eps"]))) < 0.15
    assert r3.objective == pytest.approx(r1.objective, rel=0.02)


# --- plot and CLI ----------------------------------------------------------------------------------

def test_plot_objective_draws_curve_and_path(tmp_path, x64):
    f = tn.heldout_objective(small_problem(), **SETTINGS8)
    res = tn.tune(f, {"eps": 0.5})
    ax = figures.plot_objective(f, res)
    assert ax.get_xscale() == "log"
    xs, ys = ax.lines[0].get_data()
    assert len(xs) == 121 and np.all(np.diff(xs) > 0)
    # The curve is the objective (vectorised evaluation vs a direct call: 1e-12 relative).
    np.testing.assert_allclose(ys[60], f({"eps": xs[60]}), rtol=1e-12)
    path = ax.lines[1].get_data()
    np.testing.assert_array_equal(path[0], res.history.params["eps"])
    ax.figure.savefig(tmp_path / "obj.png")
    assert (tmp_path / "obj.png").stat().st_size > 1000
    aniso = tn.tune_anisotropic(f, res, D8, max_steps=2)
    with pytest.raises(ValueError, match="scalar"):
        figures.plot_objective(f, aniso)


def test_cli_tune_on_local_file(tmp_path, capsys, x64):
    # float64 through the x64 fixture, not --x64 (which would switch it on for the whole session).
    import json

    from daedyn.cli import main

    rng = np.random.default_rng(0)
    # Eight directions of decreasing variance; D = 8 as in the tests above, so the jitted tuning
    # step compiled there is reused (the objective's settings are arguments, not constants).
    x = rng.random((300, 8)) * np.geomspace(1.0, 0.05, 8)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "plot.png"
    code = main(["tune", "--dataset", str(tmp_path / "x.npy"), "--heldout", "100", "--epochs",
                 "500", "--alpha", "0.1", "--eval-sigma2", "0.02", "--eps0", "0.5", "--plot", str(out),
                 "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert code == 0 and rep["status"] == "converged" and out.stat().st_size > 1000
    assert rep["n_train"] == 200 and rep["n_heldout"] == 100 and rep["dim"] == 8
    assert rep["objective_after"] <= rep["objective_before"]
    assert rep["eps"] != pytest.approx(0.5, rel=0.01)  # it moved
    assert main(["tune", "--dataset", str(tmp_path / "x.npy"), "--epochs", "0"]) == 2
    assert "--epochs must lie in" in capsys.readouterr().err
    assert main(["tune", "--dataset", str(tmp_path / "x.npy"), "--heldout", "300"]) == 2


# --- more routes and consistency checks ------------------------------------------------------------

def test_time_to_loss_single_direction_is_theory_learning_time(x64):
    # One direction: loss (1 - w)^2 lam / (2N) = target  <=>  w = f w* with f = (1 - sqrt(2 N target /
    # lam)) / w*, which daedyn.theory.learning_time inverts in closed form.

    lam, n, eps, alpha, w0 = 50.0, 10, 5.0, 0.1, 1e-4
    p = tn.problem_from_spectrum([lam], [lam], n, 1)
    target = 0.6
    w_star = lam / (lam + eps)
    f = (1 - math.sqrt(2 * n * target / lam)) / w_star
    ref = float(theory.learning_time(f, lam, eps, w0=w0, tau=n / alpha, n=n))
    # Bisection to float64 resolution vs the closed-form inverse: 1e-9 relative.
    assert float(tn.time_to_loss(p, target, eps=eps, alpha=alpha, w0=w0)) == pytest.approx(ref, rel=1e-9)


def test_remat_does_not_change_values_or_gradients(x64):
    p = small_problem()
    vals = []
    for every in (7, 300):  # 42 blocks of 7 + remainder 6, or one block
        f = tn.heldout_objective(p, route="dynamics", remat_every=every, **SETTINGS8)
        vals.append(jax.jit(jax.value_and_grad(lambda z: f({"eps": jnp.exp(z)})))(math.log(12.0)))
    # Rematerialisation recomputes the same operations: equal to float64 round-off (1e-13).
    np.testing.assert_allclose(vals[0][0], vals[1][0], rtol=1e-13)
    np.testing.assert_allclose(vals[0][1], vals[1][1], rtol=1e-11)


@pytest.mark.parametrize("variant", ["sampled", pytest.param("tanh", marks=pytest.mark.slow)])
def test_train_route_sampled_noise_and_nonlinear_gradients(variant, small_mnist, x64):
    # Sampled Gaussian noise with a fixed key per step (pathwise gradient), for a linear network and
    # for a tanh network (the marginalised loss exists for linear networks only).
    kw = dict(marginalised=False) if variant == "sampled" else dict(marginalised=False, activation="tanh")
    p = tn.heldout_problem(np.asarray(small_mnist.x_train[:400]), np.asarray(small_mnist.x_heldout[:100]))
    f = tn.heldout_objective(p, route="train", key=jax.random.key(0), init_scale=1e-2, epochs=40,
                             alpha=0.2, eval_sigma2=0.02, remat_every=20, **kw)
    fj = jax.jit(lambda z: f({"eps": jnp.exp(z)}))
    g = jax.jit(jax.grad(lambda z: f({"eps": jnp.exp(z)})))
    z0 = math.log(40.0)
    fd = central_difference(lambda z: float(fj(z)), z0, 1e-5)
    # Pathwise derivative of a deterministic (fixed-key) function: 1e-5 relative as for route 3.
    assert float(g(z0)) == pytest.approx(fd, rel=1e-5, abs=1e-10)


def test_tune_training_time_coarse_grid_then_gradient(x64):
    # Early stopping as tuning: eps = 0, tune T. The objective in T is multi-modal (directions are
    # learned one after another: a staircase), e.g. a local minimum at T ~ 33 besides the global one
    # at T ~ 104, so gradients refine a coarse grid's best point instead of starting anywhere.
    f = tn.heldout_objective(small_problem(), **SETTINGS8)
    dense = tn.grid_search(f, {"epochs": np.geomspace(1.0, 1e6, 3001)})  # step 0.0046 in log T
    coarse = tn.grid_search(f, {"epochs": np.geomspace(1.0, 1e6, 13)})  # half-decade steps
    res = tn.tune(f, coarse.params)
    assert res.success, res.message
    # Converged stationary point vs a grid with log-step 0.0046: within half a step in log T.
    assert abs(math.log(float(res.params["epochs"]) / float(dense.params["epochs"]))) < 0.005
    assert res.objective <= dense.objective * (1 + 1e-9)
    assert res.objective < coarse.objective  # the refinement improved on the coarse grid
    # The local minimum exists: from T = 30 the optimiser stops there, 30% worse than the global one.
    local = tn.tune(f, {"epochs": 30.0})
    assert local.objective > 1.2 * dense.objective


def test_same_structure_objectives_share_compilations_float32():
    from daedyn.tune import _optimise

    p = small_problem()  # float32 (x64 off)
    sgd = optax.sgd(0.1)
    f1 = tn.heldout_objective(p, **SETTINGS8)
    assert f1({"eps": 1.0}).dtype == jnp.float32
    r1 = tn.tune(f1, {"eps": 0.5}, optimizer=sgd, max_steps=3)
    assert r1.history.objective.dtype == np.float64 and np.all(np.isfinite(r1.history.objective))
    sizes = _optimise._evaluate._cache_size(), _optimise._update._cache_size()
    # Other values of every setting (they are traced leaves of the objective): no new compilation.
    f2 = tn.heldout_objective(p, epochs=50.0, alpha=0.1, eval_sigma2=0.2, w0=1e-4, eps=3.0, gamma=0.01)
    tn.tune(f2, {"eps": 2.0}, optimizer=sgd, max_steps=3)
    assert (_optimise._evaluate._cache_size(), _optimise._update._cache_size()) == sizes


def test_diverging_gradient_descent_stops_with_best_alpha(x64):
    # Route 2 with a learning rate pushed up by a fixed +0.7 step in log alpha (an optax
    # transformation that ignores the gradient): at alpha lam_max / N >= 2 gradient descent
    # diverges, the objective overflows to inf/NaN, and tuning stops with the best alpha so far.
    up = optax.GradientTransformation(
        lambda params: optax.EmptyState(),
        lambda g, state, params=None: (jax.tree_util.tree_map(lambda x: jnp.full_like(x, 0.7), g), state))
    f = tn.heldout_objective(small_problem(), route="dynamics", epochs=300, alpha=0.5, w0=1e-3)
    res = tn.tune(f, {"alpha": 0.25}, optimizer=up, max_steps=20)
    assert res.status == "nonfinite" and "best parameters found so far" in res.message
    alphas = res.history.params["alpha"]
    assert alphas[-1] * LAM8[0] / N8 >= 2  # the last iterate is past the stability edge
    assert math.isfinite(res.objective) and float(res.params["alpha"]) * LAM8[0] / N8 < 2
    assert res.objective == np.nanmin(res.history.objective[:-1])


def test_remat_bounds_reverse_mode_memory(x64):
    # 4000 matrix GD steps (D = H = 8): without blocks every step's weights (2 x 8 x 8 float64 = 1 KiB)
    # are kept for the backward pass; with blocks of 100 only 40 boundaries plus one block are.
    # Measured by XLA's memory analysis: 12.3 MB vs 0.35 MB; the test asks for a 10x reduction.
    temp = {}
    for every in (100, 4000):
        f = tn.heldout_objective(small_problem(), route="dynamics", init="orthogonal", epochs=4000,
                                 alpha=0.05, w0=1e-3, eval_sigma2=0.05, remat_every=every)
        grad = jax.jit(jax.grad(lambda z, f: f({"eps": jnp.exp(z)})))
        analysis = grad.lower(1.0, f).compile().memory_analysis()
        if analysis is None:
            pytest.skip("this backend gives no memory analysis")
        temp[every] = analysis.temp_size_in_bytes
    assert temp[100] * 10 < temp[4000]


def test_tune_noise_pipeline_matches_manual_steps(x64):
    rng = np.random.default_rng(1)
    x = rng.random((300, 8)) * np.geomspace(1.0, 0.05, 8)
    xt, xh = x[:200], x[200:]
    kw = dict(epochs=500.0, alpha=0.1, eval_sigma2=0.02)
    out = tn.tune_noise(xt, xh, **kw)
    res = out.isotropic
    assert out.anisotropic is None and out.result is res and out.eps0 == pytest.approx(4.0, rel=1e-12)
    f = tn.heldout_objective(tn.heldout_problem(xt, xh, keep_data=False), **kw)
    manual = tn.tune(f, {"eps": 200 * 0.02})  # the default start: matched noise N s_eval^2
    # Same computation, same start: identical up to float64 round-off of the spectrum (1e-10).
    assert float(res.params["eps"]) == pytest.approx(float(manual.params["eps"]), rel=1e-10)
    assert res.history.params["eps"][0] == pytest.approx(4.0, rel=1e-12)
    both = tn.tune_noise(xt, xh, anisotropic=True, max_steps=5, **kw)
    aniso = both.anisotropic
    assert both.result is aniso and float(both.objective({"eps": aniso.params["eps"]})) == pytest.approx(
        aniso.objective, rel=1e-9)  # the returned objective is the one that was minimised
    assert aniso.params["eps"].shape == (8,) and aniso.objective <= aniso.initial_objective
