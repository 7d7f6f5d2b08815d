"""Route 3 of the objective: actual training of an autoencoder with ``daedyn.train.train_fn``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
from jax import Array
from jax.typing import ArrayLike

from daedyn import _linear, models, train
from daedyn._checks import check_range
from daedyn.schedules import is_schedule
from daedyn.spectrum import Spectrum
from daedyn.tune._config import Hyperparams, TrainRoute, as_hyperparams
from daedyn.tune._routes import Bound, check_hidden

__all__ = ["train_objective_fn", "train_data", "train_init_w0"]


class TrainData(NamedTuple):
    """The traced data of route 3 (leaves of the objective's ``Partial``)."""

    train_data: Any  # daedyn.train.TrainData
    params0: dict
    noise_key: Array
    x_heldout: Array
    eigvecs: Array
    n: Array
    n_heldout: Array


def _path(route: TrainRoute) -> str:
    """Eigenbasis training for a linear network on the marginalised loss, the data path otherwise."""
    return "eigen" if (models.is_linear(route.activation) and route.marginalised) else "data"


def train_objective_fn(problem, route: TrainRoute, *, key: Array,
                       init_scale: ArrayLike = 1e-4) -> jtu.Partial:
    """Held-out loss of an autoencoder trained for ``route.epochs`` epochs, as a pure function.

    Full-batch training by ``daedyn.train.train_fn`` (``train.Hyper(alpha, gamma, eps)``)
    from weights drawn with ``key`` (``daedyn.models.init_autoencoder``, scale ``init_scale``; L - 1
    hidden layers of H units at ``route.depth`` L), on the
    marginalised noise loss or with Gaussian noise sampled with a fixed key per step. The loss is
    evaluated with the learned map, not the per-direction approximation: for a linear network the
    exact expected loss 1/(2M) [||X_ho - X_ho W^T||^2 + eps_eval ||W||_F^2] of W = W_L ... W_1; for a
    nonlinear network the reconstruction of held-out inputs corrupted with fixed-key Gaussian noise
    of variance eps_eval / M (pathwise).

    Args:
      problem: a :class:`~daedyn.tune.HeldoutProblem` built with ``keep_data=True``.
      route: the static structure.
      key: PRNG key of the initial weights and of the sampled noise.
      init_scale: standard deviation of the initial weights, >= 0 (used once, here).
    Returns:
      ``objective(hyper: Hyperparams) -> scalar`` (scalar ``hyper.eps``; ``hyper.epochs`` None).
    Raises:
      ValueError: for a problem without data, a missing key, or hidden outside [1, D].
    """
    return jtu.Partial(Bound(_train_loss, route), train_data(problem, route, key=key, init_scale=init_scale))


def train_data(problem, route: TrainRoute, *, key: Array, init_scale: ArrayLike = 1e-4) -> TrainData:
    """The traced data of route 3 (checked): the prepared training data, the initial weights drawn
    with ``key`` and the held-out set; shared by :func:`train_objective_fn` and the schedule route."""
    if problem.x_train is None or problem.x_heldout is None or problem.eigvecs is None:
        raise ValueError("route 'train' needs the data: build the problem with "
                         "heldout_problem(x_train, x_heldout, keep_data=True)")
    if key is None:
        raise ValueError("route 'train' needs key= for the initial weights (and sampled noise)")
    if problem.n_heldout < 1:
        raise ValueError("the held-out set is empty (n_heldout must be >= 1)")
    check_hidden(route, int(problem.eigvals.shape[-1]))
    check_range("init_scale", init_scale, 0.0)
    dt = problem.eigvals.dtype
    spec = Spectrum(problem.eigvals, problem.eigvecs, problem.n)
    tdata = train.prepare_data(problem.x_train, spectrum=spec, linear=models.is_linear(route.activation),
                               path=_path(route), dtype=dt)
    d = problem.x_train.shape[1]
    k_init, k_noise = jr.split(key)
    width = d if route.hidden is None else route.hidden
    hidden = width if route.depth == 2 else [width] * (route.depth - 1)
    params = models.init_autoencoder(d, hidden, key=k_init, init_scale=init_scale)
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dt), params)
    return TrainData(tdata, params, k_noise, problem.x_heldout, problem.eigvecs,
                     jnp.asarray(problem.n, dt), jnp.asarray(problem.n_heldout, dt))


def _train_loss(route: TrainRoute, data: TrainData, hyper: Hyperparams) -> Array:
    if hyper.epochs is not None:
        raise ValueError("epochs can only be tuned on route 'closed_form' (TrainRoute runs a whole "
                         f"number of epochs, epochs={route.epochs} in the route config)")
    # schedules (tune_schedule's route "train"): step k uses eps(k), gamma(k), alpha(k); the checks
    # and casts of as_hyperparams see stand-ins (their values are the tuned parameters, > 0 by the
    # log / bounded reparametrisation)
    sched = {k: getattr(hyper, k) for k in ("eps", "gamma", "alpha") if is_schedule(getattr(hyper, k))}
    stand_in = {k: 1.0 if k == "alpha" else 0.0 for k in sched}
    h = as_hyperparams(hyper._replace(**stand_in), data.n.dtype)._replace(**sched)
    eigen = _path(route) == "eigen"
    if not is_schedule(h.eps) and h.eps.ndim == 1 and eigen:
        # per-direction eps_j: Gaussian noise whose covariance is diagonal in the eigenbasis, the
        # (D, D) corruption term V^T C V = diag(eps_j) of the marginalised linear network
        h = h._replace(eps=jnp.diag(h.eps))
    if not is_schedule(h.eps) and h.eps.ndim != 0 and not (h.eps.ndim == 2 and eigen):
        raise ValueError("route 'train' takes a scalar eps, or per-direction eps_j (D,) or a (D, D) "
                         "corruption term in the eigenbasis (V^T C V) on the marginalised linear network "
                         "only; per-direction eps for other networks: routes 'closed_form' and 'dynamics'")
    save_every = route.remat_every if route.epochs % route.remat_every == 0 else route.epochs
    run = train.train_fn(epochs=route.epochs, save_every=save_every, activation=route.activation,
                         noise=None if route.marginalised else "gaussian",
                         marginalised=route.marginalised, path=_path(route), precision=route.precision,
                         observables=("weight_norm",))
    hyper_train = train.Hyper(alpha=h.alpha, gamma=h.gamma, eps=h.eps)
    params, _ = run(data.params0, data.train_data, hyper_train, data.noise_key)
    xh, m = data.x_heldout, data.n_heldout
    if models.is_linear(route.activation):
        # 1/(2M) [||X_ho - X_ho W^T||^2 + eps_eval ||W||_F^2]: the expected loss from data rows.
        return _linear.data_loss(models.weights(params), xh, h.eps_eval,
                                 mm=_linear.matmul_fn(route.precision))
    e = jr.normal(jr.fold_in(data.noise_key, 2**30), xh.shape, xh.dtype)
    rec = models.reconstruct(params, xh + jnp.sqrt(h.eps_eval / m) * e, route.activation,
                             precision=route.precision)
    return jnp.sum((xh - rec) ** 2) / (2 * m)


def train_init_w0(objective: jtu.Partial) -> Array:
    """Per-direction start w0 (D,) equivalent to a route-"train" objective's initial weights.

    ``daedyn.train.initial_w0(params0, V, kind="balanced")``: pass it as ``w0=`` to route
    "closed_form" to predict the same run from the theory.

    Args:
      objective: from ``heldout_objective(..., route="train")`` or :func:`train_objective_fn`.
    Returns:
      (D,) the balanced-equivalent start of each eigen-direction.
    Raises:
      ValueError: if ``objective`` is not a route-"train" objective.
    """
    data = _train_data(objective)
    if data is None:
        raise ValueError("train_init_w0 needs an objective built with route='train'")
    return train.initial_w0(data.params0, data.eigvecs)


def _train_data(objective) -> TrainData | None:
    """The route-3 data of an objective, looking through the defaults wrapper of heldout_objective."""
    while isinstance(objective, jtu.Partial) and objective.args:
        if isinstance(objective.args[0], TrainData):
            return objective.args[0]
        objective = objective.args[0]
    return None
