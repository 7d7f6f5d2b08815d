"""Per-direction eps_j on route "train" (daedyn/tune/_train_route.py, _schedule.py): the marginalised
linear network trained with the corruption term diag(eps_j) in the eigenbasis, checked against
training on the data path with the Gaussian covariance V diag(eps_j / N) V^T (an independent path),
for one eps_j and for a two-piece per-direction schedule (two chained trainings)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from daedyn import _linear, models, noise, spectrum, train, tune
from daedyn.tune._schedule import ScheduleRoute, schedule_objective_fn
from daedyn.tune._train_route import _train_data

KW = dict(alpha=0.01, eval_sigma2=0.1, key=jax.random.key(0), init_scale=0.1)


def _problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)) * np.linspace(2.0, 0.3, 6)
    return tune.heldout_problem(x[:50], x[50:])


def _trained(prob, params, eps_j, epochs):
    """Data-path training under Gaussian noise of covariance V diag(eps_j / N) V^T."""
    v = np.asarray(spectrum.compute_spectrum(prob.x_train).eigvecs)
    cov = jnp.asarray(v @ np.diag(np.asarray(eps_j) / 50) @ v.T)
    return train.train(prob.x_train, key=jax.random.key(5), alpha=0.01, noise=noise.gaussian_covariance(cov),
                       marginalised=True, params=params, hidden=6, epochs=epochs, save_every=epochs,
                       path="data").params


def _heldout(prob, params):
    return float(_linear.data_loss(models.weights(params), prob.x_heldout, 30 * 0.1,
                                   mm=_linear.matmul_fn("highest")))


def test_per_direction_eps_on_route_train_is_the_covariance_training():
    with jax.enable_x64(True):
        prob = _problem()
        f = tune.heldout_objective(prob, epochs=100, route="train", **KW)
        # equal eps_j are the scalar eps (the same term diag(eps) = eps I): measured equal
        assert float(f({"eps": jnp.full(6, 3.0)})) == pytest.approx(float(f({"eps": 3.0})), rel=1e-14)
        e = jnp.array([0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
        want = _heldout(prob, _trained(prob, _train_data(f).params0, e, 100))
        # eigenbasis vs data-path training: measured 1.6e-15 relative; bound 1e-10 (float64 rounding)
        assert float(f({"eps": e})) == pytest.approx(want, rel=1e-10)
        check_grads(lambda e: f({"eps": e}), (e,), order=1, modes=("rev",), atol=1e-7, rtol=1e-6, eps=1e-5)


def test_per_direction_schedule_on_route_train_is_two_chained_trainings():
    with jax.enable_x64(True):
        prob = _problem()
        route = ScheduleRoute(pieces=2, epochs=100, route="train", per_direction=True)
        f = schedule_objective_fn(prob, route, **KW)
        v = jnp.array([[0.5, 1.0, 2.0, 4.0, 8.0, 16.0], [3.0, 3.0, 1.0, 1.0, 0.2, 9.0]])
        p = _trained(prob, _train_data(f).params0, v[0], 50)  # epochs 0-49 under piece 0
        p = _trained(prob, p, v[1], 50)  # then 50-99 under piece 1
        # the same 100 GD steps, two paths: measured ~1e-15 relative; bound 1e-10
        assert float(f({"eps": v})) == pytest.approx(_heldout(prob, p), rel=1e-10)
        check_grads(lambda e: f({"eps": e}), (v,), order=1, modes=("rev",), atol=1e-7, rtol=1e-6, eps=1e-5)


def test_per_direction_eps_needs_the_marginalised_linear_network():
    prob = _problem()
    with pytest.raises(ValueError, match="per-direction eps on route 'train' needs the marginalised linear"):
        tune.heldout_objective(prob, epochs=10, route=tune.TrainRoute(epochs=10, activation="tanh"),
                               eps=np.ones(6), **KW)
