"""Tuning a corruption's parameters (masking rate p, per-component Gaussian variances) through the
closed form, the dynamics and training (daedyn.tune.corruption_objective_fn, tune_corruption)."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from daedyn import data, dynamics, noise, schedules, spectrum, theory, tune


def _problem(d=5, n=60, m=30):
    x = np.random.default_rng(0).uniform(size=(n + m, d)) * np.linspace(1.0, 0.3, d)
    return tune.heldout_problem(x[:n], x[n:])


def _spec(prob):
    return spectrum.Spectrum(prob.eigvals, prob.eigvecs, prob.n)


def _reference_loss(prob, mapping, eval_sigma2):
    return tune.heldout_loss(mapping, prob.projected, prob.n_heldout, eval_sigma2)


def _masking_fn(prob, **kw):
    """The objective of the masking rate p itself (the corruption value as the argument)."""
    f = tune.corruption_objective_fn(prob, noise.masking(0.5), **kw)
    return lambda p: f(noise.masking(p))


def _variances_fn(prob, **kw):
    return tune.corruption_objective_fn(prob, noise.gaussian_covariance(np.ones(prob.eigvals.shape[0])), **kw)


def test_masking_term_per_route_equals_independent_runs(x64):
    """objective(p) on each route = the same run assembled from daedyn.noise / dynamics / theory."""
    prob, p, s2 = _problem(), 0.3, 0.05
    c = noise.masking(p).marginal_term(_spec(prob))  # V^T C V, (D, D)
    d = prob.eigvals.shape[0]
    kw = dict(alpha=0.5, eval_sigma2=s2, w0=1e-2)
    # coupled: matrix GD with the whole V^T C V from the decoupled start diag(sqrt(w0))
    f = _masking_fn(prob, epochs=40, route="dynamics", init="orthogonal", **kw)
    w1, w2 = dynamics.orthogonal_init(d, d, 0.1, 0.1)
    traj = dynamics.matrix_gd(prob.eigvals, w1, w2, eps=c, eps_dims=2, alpha=0.5, n=prob.n, epochs=40,
                              save_every=40)
    ref = _reference_loss(prob, traj.mapping[-1], s2)
    # float64: the same arithmetic in another order, measured 1e-16 relative; 1e-12 leaves margin
    np.testing.assert_allclose(float(f(p)), float(ref), rtol=1e-12)
    # per direction: the closed form with eps_j = diag(V^T C V)
    f = _masking_fn(prob, epochs=40.0, **kw)
    w = theory.small_init_trajectory(40.0, prob.eigvals, theory.diagonal_eps(c), w0=1e-2,
                                     tau=prob.n / 0.5, n=prob.n)
    np.testing.assert_allclose(float(f(p)), float(_reference_loss(prob, w, s2)), rtol=1e-12)


def test_variances_term_per_route_equals_independent_runs(x64):
    prob, s2 = _problem(), 0.05
    v = jnp.linspace(0.01, 0.05, prob.eigvals.shape[0])
    c = noise.gaussian_covariance(v).marginal_term(_spec(prob))  # N V^T diag(v) V
    f = _variances_fn(prob, epochs=40.0, alpha=0.5, eval_sigma2=s2, w0=1e-2)
    w = theory.small_init_trajectory(40.0, prob.eigvals, theory.diagonal_eps(c), w0=1e-2,
                                     tau=prob.n / 0.5, n=prob.n)
    # float64 rounding (see above)
    np.testing.assert_allclose(float(f({"var": v})), float(_reference_loss(prob, w, s2)), rtol=1e-12)
    # a scalar variance is isotropic noise eps = N v: route "closed_form" of heldout_objective
    g = tune.heldout_objective(prob, epochs=40.0, alpha=0.5, eval_sigma2=s2, w0=1e-2)
    np.testing.assert_allclose(float(f({"var": 0.02})), float(g({"eps": prob.n * 0.02})), rtol=1e-12)


# the default suite checks the training route (the (D, D) term through train_fn); the dynamics routes
# reuse recursions the existing tune tests differentiate: slow here (~5 s each loaded)
@pytest.mark.parametrize("route", [pytest.param("dynamics_balanced", marks=pytest.mark.slow),
                                   pytest.param("dynamics_coupled", marks=pytest.mark.slow), "train"])
def test_masking_gradient_matches_finite_differences(route, x64):
    prob = _problem(d=4, n=40, m=20)
    kw = dict(epochs=10, alpha=0.5, eval_sigma2=0.05)
    if route == "dynamics_balanced":
        f = _masking_fn(prob, route="dynamics", w0=1e-2, **kw)
    elif route == "dynamics_coupled":
        f = _masking_fn(prob, route="dynamics", init="orthogonal", w0=1e-2, **kw)
    else:
        f = _masking_fn(prob, route="train", key=jr.key(0), init_scale=0.1, **kw)
    # float64 central differences (step 1e-4 in p): truncation ~1e-8 relative; check_grads' default
    # tolerance (1e-5 in float64) is the stated bound
    check_grads(jax.jit(f), (0.3,), order=1, modes=("rev",))  # jit: one compilation per mode


@pytest.mark.parametrize("coupled", [pytest.param(False, marks=pytest.mark.slow), True])
def test_variances_gradient_matches_finite_differences(coupled, x64):
    prob = _problem(d=4, n=40, m=20)
    route = tune.DynamicsRoute(epochs=10, init="orthogonal" if coupled else "balanced")
    f = _variances_fn(prob, epochs=None, alpha=0.5, eval_sigma2=0.05, route=route, w0=1e-2)
    v = jnp.array([0.01, 0.02, 0.03, 0.04])
    check_grads(jax.jit(lambda v: f({"var": v})), (v,), order=1, modes=("rev",))  # float64 (see above)


def _check_against_grid(r, spacing):
    i = int(jnp.argmin(r.grid.values))
    # the optimiser reaches the continuous optimum: no grid point is better (to float32 rounding of
    # the objective, 1e-6 relative), and it lies within one grid spacing of the best grid point
    assert float(r.loss) <= float(r.grid.values[i]) * (1 + 1e-6)
    assert abs(float(r.noise.p) - float(r.grid.grid["p"][i])) <= spacing + 1e-6


def _tune_masking(prob, **kw):
    return tune.tune_corruption(prob, noise.masking(0.2), **kw)  # the former tune_masking's start


def _tune_variances(prob, **kw):
    """Shared variance first from eval_sigma2 (the former tune_variances' default start), then D."""
    d, s2 = prob.eigvals.shape[0], kw["eval_sigma2"]
    return tune.tune_corruption(prob, noise.gaussian_covariance(np.full(d, s2)), **kw)


@pytest.mark.slow  # two L-BFGS compilations and a 49-point grid per route: ~15 s each
@pytest.mark.parametrize("route", ["dynamics", "train"])
def test_tune_masking_routes_match_grid(route):
    prob = _problem(d=5, n=200, m=100)
    grid = np.linspace(0.02, 0.98, 49)
    kw = dict(key=jr.key(1), init_scale=0.1) if route == "train" else dict(init="orthogonal")
    r = _tune_masking(prob, epochs=200, alpha=0.05, eval_sigma2=0.05, route=route, grid=grid, w0=1e-2, **kw)
    assert 0.02 < float(r.noise.p) < 0.98 and r.result.success  # an interior optimum, found
    _check_against_grid(r, 0.02)


@pytest.mark.slow  # two L-BFGS stages: ~17 s
def test_tune_variances_never_worse_than_isotropic():
    prob = _problem(d=5, n=200, m=100)
    r = _tune_variances(prob, epochs=200.0, alpha=0.05, eval_sigma2=0.05, w0=1e-2, max_steps=30)
    var = jnp.asarray(r.noise.cov)
    assert var.shape == (5,) and bool(jnp.all(var > 0))  # positive by the log reparametrisation
    assert r.loss <= r.shared.objective
    # the isotropic start is exact: all D variances equal the shared one there
    np.testing.assert_allclose(r.result.history.params["var"][0], float(r.shared.params["var"]), rtol=1e-6)


def test_tune_corruption_errors():
    prob = _problem()
    kw = dict(epochs=10.0, alpha=0.1, eval_sigma2=0.1)
    with pytest.raises(ValueError, match="marginalised loss"):
        tune.corruption_objective_fn(prob, noise.masking(0.2), epochs=10, alpha=0.1, eval_sigma2=0.1,
                                     route=tune.TrainRoute(epochs=10, marginalised=False), key=jr.key(0))
    for bad, message in ((noise.salt_and_pepper(0.1), "'salt_and_pepper' cannot be tuned"),
                         (noise.masking(0.2, rescale=False), "rescale=False"),
                         (noise.gaussian_covariance(np.eye(5)), r"per-component variances \(D,\)"),
                         (noise.gaussian_covariance(np.ones(3)), "D = 3 components"),
                         (noise.masking(schedules.piecewise_constant([5.0], [0.1, 0.2])), "scheduled")):
        with pytest.raises(ValueError, match=message):
            tune.corruption_objective_fn(prob, bad, **kw)
    no_v = tune.problem_from_spectrum([2.0, 1.0], [1.0, 0.5], n=10, n_heldout=5)
    with pytest.raises(ValueError, match="eigenvectors"):
        tune.corruption_objective_fn(no_v, noise.gaussian_covariance(np.ones(2)), **kw)
    with pytest.raises(ValueError, match=r"cov must lie in \(0, inf\)"):
        tune.tune_corruption(prob, noise.gaussian_covariance(np.zeros(5)), **kw)
    with pytest.raises(ValueError, match=r"p must lie in \(0, 1\)"):
        tune.tune_corruption(prob, noise.masking(0.0), **kw)
    with pytest.raises(ValueError, match="epochs is required"):
        tune.corruption_objective_fn(prob, noise.masking(0.2), epochs=None, alpha=0.1, eval_sigma2=0.1,
                                     route="dynamics")
    with pytest.raises(ValueError, match="grid"):
        tune.tune_corruption(prob, noise.masking(0.2), grid=[0.0, 0.5], **kw)


# --- real data (slow) ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist_problem():
    x = np.asarray(data.load("mnist5k").x)
    return tune.heldout_problem(x[:4000], x[4000:])


_GRID = np.round(np.arange(0.02, 0.5, 0.02), 2)


@pytest.mark.slow  # mnist5k, 2000 GD steps per evaluation: ~15 s on the 2-core CPU
def test_tune_masking_dynamics_mnist5k(mnist_problem):
    r = _tune_masking(mnist_problem, epochs=2000, alpha=0.02, eval_sigma2=0.05, route="dynamics", grid=_GRID)
    # measured: p = 0.1110 (objective 5.50683) vs the grid's 0.12 (5.50745)
    _check_against_grid(r, 0.02)


@pytest.mark.slow  # coupled 784 x 16 matrix GD, 500 steps per evaluation: ~60 s
def test_tune_masking_coupled_dynamics_mnist5k(mnist_problem):
    r = _tune_masking(mnist_problem, epochs=500, alpha=0.02, eval_sigma2=0.05, route="dynamics",
                      init="orthogonal", hidden=16, grid=_GRID)
    # measured: p = 0.1953 (objective 13.45485) vs the grid's 0.20 (13.45487)
    _check_against_grid(r, 0.02)


@pytest.mark.slow  # marginalised training of a 784-16-784 linear DAE, 500 epochs per evaluation
def test_tune_masking_train_mnist5k(mnist_problem):
    r = _tune_masking(mnist_problem, epochs=500, alpha=0.02, eval_sigma2=0.05, route="train",
                      hidden=16, key=jr.key(0), init_scale=0.01, grid=_GRID)
    # measured: p = 0.0907 (objective 13.77863) vs the grid's 0.10 (13.77870)
    _check_against_grid(r, 0.02)


@pytest.mark.slow  # mnist5k: two spectra, ~100 L-BFGS steps over 784 variances per route, ~50 s
@pytest.mark.parametrize("route,epochs", [("closed_form", 2000.0), ("dynamics", 2000)])
def test_tune_variances_mnist5k_beats_isotropic_on_test_split(route, epochs):
    x = np.asarray(data.load("mnist5k").x)
    xt, xv, xs = x[:3000], x[3000:4000], x[4000:]
    val, test = tune.heldout_problem(xt, xv), tune.heldout_problem(xt, xs)
    r = _tune_variances(val, epochs=epochs, alpha=0.02, eval_sigma2=0.05, route=route)
    f_test = _variances_fn(test, epochs=epochs, alpha=0.02, eval_sigma2=0.05, route=route)
    iso, aniso = float(f_test({"var": r.shared.params["var"]})), float(f_test(r.noise))
    # measured (both routes): 5.6986 -> 5.6870 on the test split (0.20 %), 6.2856 -> 6.2650 on the
    # tuning split (0.33 %). Asserted: at least half the measured test gain (0.1 %).
    assert (iso - aniso) / iso > 1e-3


# --- one tuner, every kind, against NumPy ---------------------------------------------------------


def _numpy_objective(x_train, x_heldout, eps_of_v, *, epochs, alpha, w0, eval_sigma2):
    """The closed-form held-out objective in NumPy, independently of daedyn: eps_j from the data's
    eigenvectors V (``eps_of_v(V)``), the balanced small-start flow w_j(T) = k / (1 + (k / w0 - 1)
    exp(-2 lam_j T / tau)), k = lam_j / (lam_j + eps_j), tau = N / alpha, and the loss
    1/(2M) [sum_j (1 - w_j)^2 p_j + M s_eval^2 sum_j w_j^2]."""
    n, m = x_train.shape[0], x_heldout.shape[0]
    lam, v = np.linalg.eigh(x_train.T @ x_train)
    lam = np.maximum(lam, 0.0)
    eps = eps_of_v(v)
    k = lam / (lam + eps)
    w = k / (1.0 + (k / w0 - 1.0) * np.exp(-2.0 * lam * epochs / (n / alpha)))
    proj = np.sum((x_heldout @ v) ** 2, axis=0)
    return (np.sum((1 - w) ** 2 * proj) + m * eval_sigma2 * np.sum(w * w)) / (2 * m)


def test_tune_corruption_both_kinds_closed_form_match_numpy(x64):
    """The same tune_corruption tunes masking and per-component variances through route
    "closed_form"; its objective (the former masking_objective_fn / variances_objective_fn values),
    its grid and its optimum are the NumPy closed form with eps_j built from the data."""
    x = np.random.default_rng(3).uniform(size=(90, 5)) * np.linspace(1.0, 0.3, 5)
    xt, xh = x[:60], x[60:]
    prob = tune.heldout_problem(xt, xh)
    n, kw = xt.shape[0], dict(epochs=300.0, alpha=0.05, w0=1e-3, eval_sigma2=0.05)
    diag_sigma = np.sum(xt * xt, axis=0)

    def masking_ref(p):  # eps_j = p / (1 - p) [V^T diag(Sigma) V]_jj
        return _numpy_objective(xt, xh, lambda v: p / (1 - p) * np.einsum("kj,k,kj->j", v, diag_sigma, v),
                                **kw)

    def variances_ref(var):  # eps_j = N [V^T diag(v) V]_jj
        return _numpy_objective(xt, xh, lambda v: n * np.einsum("kj,k,kj->j", v, var, v), **kw)

    grid = np.array([0.1, 0.3, 0.5])
    # Adam (cheap to compile: the default L-BFGS's line search costs ~5 s per parameter shape)
    rm = tune.tune_corruption(prob, noise.masking(0.2), max_steps=40, grid=grid, optimizer=optax.adam(0.2),
                              **kw)
    rv = tune.tune_corruption(prob, noise.gaussian_covariance(np.linspace(0.02, 0.06, 5)), max_steps=40,
                              shared_first=False, optimizer=optax.adam(0.2), **kw)
    assert isinstance(rm, tune.CorruptionTuning) and isinstance(rv, tune.CorruptionTuning)
    # float64 throughout; the two sides differ only in the order of rounding (measured ~1e-15)
    for p, value in zip(grid, np.asarray(rm.grid.values), strict=True):
        np.testing.assert_allclose(value, masking_ref(p), rtol=1e-10)
    np.testing.assert_allclose(rm.loss, masking_ref(float(rm.noise.p)), rtol=1e-10)
    np.testing.assert_allclose(rm.result.initial_objective, masking_ref(0.2), rtol=1e-10)
    var = np.asarray(rv.noise.cov)
    np.testing.assert_allclose(rv.loss, variances_ref(var), rtol=1e-10)
    np.testing.assert_allclose(rv.result.initial_objective, variances_ref(np.linspace(0.02, 0.06, 5)),
                               rtol=1e-10)
    # each is an optimum of its own objective: better than its start and than every grid rate
    assert rm.loss <= min(np.asarray(rm.grid.values)) and rv.loss < rv.result.initial_objective
    assert rm.result.success and rv.result.success
    # the objective takes the corruption value or the dict of its tunable leaves alike
    np.testing.assert_allclose(rm.objective(noise.masking(0.3)), rm.objective({"odds": 0.3 / 0.7}),
                               rtol=1e-14)
    np.testing.assert_allclose(rv.objective(rv.noise), rv.loss, rtol=1e-14)
