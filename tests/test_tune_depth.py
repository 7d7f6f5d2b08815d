"""Tuning routes 2 (dynamics) and 3 (training) at depth L >= 3: the objective is the held-out loss of
the L-factor recursion / of a trained network with L - 1 hidden layers, and its gradient is exact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from daedyn import _linear, dynamics, models, train, tune
from daedyn.dynamics._deep import balanced_factors
from daedyn.tune._train_route import _train_data

LAM = np.array([6.0, 3.0, 1.0, 0.4])
PROJ = np.array([2.5, 1.0, 0.6, 0.1])


def _problem():
    return tune.problem_from_spectrum(LAM, PROJ, n=10, n_heldout=4)


def _loss(w, eps_eval):
    """The held-out loss 1/(2M) [sum_j (1 - w_j)^2 p_j + eps_eval sum_j w_j^2], written out again."""
    return (np.sum((1 - w) ** 2 * PROJ) + eps_eval * np.sum(w ** 2)) / (2 * 4)


def test_dynamics_route_depth3_equals_the_recursion_and_its_gradient_is_exact():
    with jax.enable_x64(True):
        kw = dict(epochs=400, alpha=0.05, eval_sigma2=0.2, route="dynamics", depth=3, w0=0.01, hidden=3)
        bal = tune.heldout_objective(_problem(), init="balanced", **kw)
        orth = tune.heldout_objective(_problem(), init="orthogonal", key=jax.random.key(1), **kw)
        a = balanced_factors(jnp.array([0.01, 0.01, 0.01, 0.0]), 3)
        tr = dynamics.scalar_gd(jnp.asarray(LAM), 2.0, factors=a, alpha=0.05, epochs=400, n=10.0,
                                save_every=400)
        want = _loss(np.asarray(tr.w[:, -1]), 4 * 0.2)
        # the same float64 recursion (remat blocks restart from saved factors): measured 0 to 4e-16
        assert float(bal({"eps": 2.0})) == pytest.approx(want, rel=1e-13, abs=0)
        # the decoupled matrix start follows the per-direction recursion: rounding of 3 x 3 matmuls
        assert float(orth({"eps": 2.0})) == pytest.approx(want, rel=1e-12, abs=0)
        # reverse mode through the remat blocks vs central differences
        check_grads(lambda e, g: bal({"eps": e, "gamma": g}), (2.0, 0.01), order=1, modes=("rev",),
                    atol=1e-6, rtol=1e-6)


@pytest.mark.slow  # a second compilation of the depth-3 matrix recursion (~5 s)
def test_dynamics_route_depth3_random_start_equals_matrix_gd():
    with jax.enable_x64(True):
        key = jax.random.key(3)
        f = tune.heldout_objective(_problem(), epochs=300, alpha=0.05, route="dynamics", depth=3,
                                   init="random", key=key, init_scale=0.2, hidden=2, remat_every=64)
        ws = dynamics.random_init(4, (2, 2), init_scale=0.2, key=key, dtype=jnp.float64)
        tr = dynamics.matrix_gd(jnp.asarray(LAM), *ws, eps=1.5, gamma=0.01, alpha=0.05, n=10.0,
                                epochs=300, save_every=300)
        want = _loss(np.asarray(tr.mapping[-1]), 0.0)
        # the same step (shared core) in blocks of 64 vs one run: measured 1e-16 relative
        assert float(f({"eps": 1.5, "gamma": 0.01})) == pytest.approx(want, rel=1e-12, abs=0)


@pytest.mark.slow  # reverse mode through 200 epochs of depth-3 training (~10 s)
def test_train_route_depth3_is_the_trained_networks_loss_with_exact_gradient():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)) * np.linspace(2.0, 0.3, 5)
    with jax.enable_x64(True):
        prob = tune.heldout_problem(x[:40], x[40:])
        f = tune.heldout_objective(prob, epochs=200, alpha=0.01, route="train", depth=3, hidden=3,
                                   key=jax.random.key(0), init_scale=0.3, eval_sigma2=0.05)
        data = _train_data(f)
        assert sorted(data.params0) == ["w1", "w2", "w3"]  # two hidden layers of 3 units
        run = train.train_fn(epochs=200, save_every=200, path="eigen", noise=None, marginalised=True)
        params, _ = run(data.params0, data.train_data, train.Hyper(alpha=0.01, gamma=0.0, eps=3.0),
                        data.noise_key)
        want = _linear.data_loss(models.weights(params), prob.x_heldout, 20 * 0.05,
                                 mm=_linear.matmul_fn("highest"))
        assert float(f({"eps": 3.0})) == pytest.approx(float(want), rel=1e-12)
        check_grads(lambda e: f({"eps": e}), (3.0,), order=1, modes=("rev",), atol=1e-6, rtol=1e-6)
