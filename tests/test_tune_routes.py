"""Tests of daedyn.tune's typed routes: one factory per route, frozen configs, Hyperparams."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import daedyn.tune as tn
from daedyn.tune._train_route import train_init_w0  # the balanced-equivalent start of a route-3 run

D8, N8, M8 = 8, 400, 100
LAM8 = np.geomspace(400.0, 0.04, D8)
PROJ8 = LAM8 * M8 / N8 * (1 + 0.3 * np.sin(np.arange(D8)))


def small_problem():
    return tn.problem_from_spectrum(LAM8, PROJ8, N8, M8)


def hyper(**kw):
    base = dict(eps=7.0, alpha=0.5, gamma=0.01, w0=1e-3, eps_eval=M8 * 0.05)
    return tn.Hyperparams(**{**base, **kw})


def test_closed_form_factory_is_heldout_objective(x64):
    p = small_problem()
    f = tn.objective_fn(p, tn.ClosedFormRoute(hidden=5))
    g = tn.heldout_objective(p, epochs=300.0, alpha=0.5, gamma=0.01, w0=1e-3, eval_sigma2=0.05, hidden=5)
    # The same route function behind both; the only difference is eps_eval = M s_eval^2 computed at
    # the edge vs given: float64 round-off (1e-14 relative).
    np.testing.assert_allclose(f(hyper(epochs=300.0)), g({"eps": 7.0}), rtol=1e-14)
    # A full Hyperparams passes through heldout_objective's defaults unchanged.
    np.testing.assert_allclose(g(hyper(epochs=300.0)), g({"eps": 7.0}), rtol=1e-14)
    # Pure in the hyperparameters: jit, grad and vmap over a Hyperparams pytree.
    eps = jnp.array([1.0, 7.0, 50.0])
    batched = jax.vmap(lambda e: f(hyper(epochs=300.0, eps=e)))(eps)
    np.testing.assert_allclose(batched[1], f(hyper(epochs=300.0)), rtol=1e-12)
    grads = jax.jit(jax.grad(f))(hyper(epochs=300.0))
    assert isinstance(grads, tn.Hyperparams) and np.isfinite(float(grads.eps))


@pytest.mark.parametrize("init", ["balanced", "orthogonal"])
def test_route_config_equals_route_name(init, x64):
    p = small_problem()
    kw = dict(alpha=0.5, w0=1e-3, eval_sigma2=0.05)
    by_name = tn.heldout_objective(p, route="dynamics", epochs=120, init=init, remat_every=50, **kw)
    config = tn.DynamicsRoute(epochs=120, init=init, remat_every=50)
    by_config = tn.heldout_objective(p, route=config, **kw)
    direct = tn.objective_fn(p, config)
    # The name is mapped to the same config: identical computation, bit for bit.
    assert float(by_name({"eps": 3.0})) == float(by_config({"eps": 3.0}))
    np.testing.assert_allclose(direct(hyper(eps=3.0, gamma=0.0)), by_name({"eps": 3.0}), rtol=1e-14)


def test_route_configs_are_frozen_hashable_and_validated():
    a, b = tn.DynamicsRoute(epochs=10, init="orthogonal"), tn.DynamicsRoute(epochs=10, init="orthogonal")
    assert a == b and hash(a) == hash(b)  # equal settings share compilations
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.epochs = 20
    with pytest.raises(ValueError, match="init must be"):
        tn.DynamicsRoute(epochs=10, init="magic")
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        tn.DynamicsRoute(epochs=0)
    with pytest.raises(ValueError, match="remat_every must be an integer >= 1"):
        tn.TrainRoute(epochs=10, remat_every=0)
    with pytest.raises(ValueError, match="precision"):
        tn.TrainRoute(epochs=10, precision="sloppy")
    with pytest.raises(ValueError, match="hidden must lie in"):
        tn.objective_fn(small_problem(), tn.ClosedFormRoute(hidden=D8 + 1))


def test_static_and_traced_epochs_are_kept_apart():
    p = small_problem()
    f2 = tn.heldout_objective(p, route="dynamics", epochs=20, alpha=0.5)
    with pytest.raises(ValueError, match="epochs can only be tuned on route 'closed_form'"):
        f2({"epochs": 30.0})
    with pytest.raises(ValueError, match="epochs can only be tuned on route 'closed_form'"):
        tn.objective_fn(p, tn.DynamicsRoute(epochs=20))(hyper(epochs=30.0))
    with pytest.raises(ValueError, match="needs the training time"):
        tn.objective_fn(p)(hyper())
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        f2({"sigma2": 1.0})
    with pytest.raises(ValueError, match="remat_every"):
        tn.heldout_objective(p, route="dynamics", epochs=20, alpha=0.5, remat_every=0)
    # Structure goes either into the config or into keywords, not both (and epochs must agree).
    with pytest.raises(ValueError, match=r"set \['hidden', 'init'\] in the config"):
        tn.heldout_objective(p, route=tn.DynamicsRoute(epochs=20), alpha=0.5, hidden=3, init="orthogonal")
    with pytest.raises(ValueError, match="disagrees with the route config"):
        tn.heldout_objective(p, route=tn.DynamicsRoute(epochs=20), epochs=30, alpha=0.5)
    with pytest.raises(ValueError, match="epochs is required"):
        tn.heldout_objective(p, route=tn.ClosedFormRoute(), alpha=0.5)
    with pytest.raises(ValueError, match="init='random' needs key"):
        tn.objective_fn(p, tn.DynamicsRoute(epochs=5, init="random"))


def test_equal_configs_share_one_compilation(x64):
    p = small_problem()
    evaluate = jax.jit(lambda f, e: f({"eps": e}))
    for eps, alpha in ((1.0, 0.5), (4.0, 0.2)):  # other default values: traced leaves only
        f = tn.heldout_objective(p, route=tn.DynamicsRoute(epochs=30, init="orthogonal"), alpha=alpha,
                                 eps=eps, w0=1e-3, eval_sigma2=0.05)
        evaluate(f, 2.0)
    assert evaluate._cache_size() == 1


def test_train_factory_and_train_init_w0(x64):
    rng = np.random.default_rng(0)
    p = tn.heldout_problem(rng.random((60, 5)), rng.random((20, 5)))
    route = tn.TrainRoute(epochs=6, remat_every=3)
    f = tn.objective_fn(p, route, key=jax.random.key(0), init_scale=1e-2)
    g = tn.heldout_objective(p, route="train", epochs=6, remat_every=3, alpha=0.3, eval_sigma2=0.02,
                             key=jax.random.key(0), init_scale=1e-2)
    h = tn.Hyperparams(eps=2.0, alpha=0.3, eps_eval=20 * 0.02)
    # Same initial weights and training; eps_eval given vs converted at the edge: 1e-13 relative.
    np.testing.assert_allclose(f(h), g({"eps": 2.0}), rtol=1e-13)
    np.testing.assert_array_equal(train_init_w0(f), train_init_w0(g))
    assert train_init_w0(f).shape == (5,)
    # per-direction eps_j on the marginalised linear network: the term diag(eps_j); equal values are
    # the scalar (tests/test_tune_train_per_direction.py checks unequal ones against the data path)
    np.testing.assert_allclose(f(h._replace(eps=jnp.full(5, 2.0))), f(h), rtol=1e-13)
    f_tanh = tn.objective_fn(p, tn.TrainRoute(epochs=6, remat_every=3, activation="tanh"),
                                   key=jax.random.key(0), init_scale=1e-2)
    with pytest.raises(ValueError, match="per-direction eps for other networks"):
        f_tanh(h._replace(eps=jnp.ones(5)))
    with pytest.raises(ValueError, match="route='train'"):
        train_init_w0(tn.objective_fn(p))
    with pytest.raises(ValueError, match="needs key"):
        tn.objective_fn(p, route, key=None)
