"""The public edge of the held-out objective: options in, one typed route config, a pure function out.

Objective (denoising loss on held-out data, in the authors' scaling):

    J = 1/(2M) sum_j (1 - w_j(T))^2 p_j + (s_eval^2 / 2) sum_j w_j(T)^2,

for a model whose map is W = V diag(w) V^T (V the train eigenvectors), p_j = [V^T X_ho^T X_ho V]_jj
and s_eval^2 the per-component variance of the noise on the held-out inputs. It is the expected loss
1/(2M) sum_i E ||x_i - W (x_i + e_i)||^2 on the held-out set, i.e. the loss of the contract with
eps_eval = M s_eval^2 (the variance is converted to eps_eval here, once). With s_eval^2 = 0 (clean
reconstruction) it is minimised by the identity map, so eps -> 0 and T -> infinity are optimal; an
interior optimum in eps needs s_eval^2 > 0.
"""

from __future__ import annotations

import functools as ft
from collections.abc import Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn import models, theory
from daedyn._checks import check_range
from daedyn.tune._config import (
    ROUTES,
    TUNABLE,
    ClosedFormRoute,
    DynamicsRoute,
    Hyperparams,
    Route,
    TrainRoute,
)
from daedyn.tune._problem import HeldoutProblem, problem_from_spectrum  # noqa: F401 (doctests)
from daedyn.tune._routes import closed_form_objective_fn, dynamics_objective_fn, hidden_mask
from daedyn.tune._train_route import train_objective_fn

__all__ = ["objective_fn", "heldout_objective", "time_to_loss"]


def objective_fn(problem: HeldoutProblem, route=None, *, key: Array | None = None,
                 init_scale: ArrayLike = 1e-4) -> jtu.Partial:
    """The held-out objective of one route, ``objective(hyper: Hyperparams) -> loss``: the route is a
    value (:class:`ClosedFormRoute`, :class:`DynamicsRoute` or :class:`TrainRoute`), one factory.

    Args:
      problem: a :class:`HeldoutProblem` (train spectrum, held-out projections).
      route: the route config (default ``ClosedFormRoute()``: the balanced closed form).
      key: the initial weights of a random or orthogonal start (dynamics) and of training (required
        for ``TrainRoute``).
      init_scale: standard deviation of the random initial weights (dynamics and train routes).
    Returns:
      A pure, jittable ``objective(hyper)``; :func:`heldout_objective` adds defaults and overrides.
    Raises:
      ValueError: for an unknown route, or ``TrainRoute`` without a key.
    Example:
      >>> p = problem_from_spectrum([4.0, 1.0], [2.0, 0.5], n=10, n_heldout=5)
      >>> f = objective_fn(p)  # the closed form; objective_fn(p, DynamicsRoute(epochs=100)) integrates
      >>> loss = f(Hyperparams(eps=1.0, alpha=0.1, w0=1e-4, epochs=100.0))
      >>> loss.shape
      ()
    """
    route = ClosedFormRoute() if route is None else route
    if isinstance(route, ClosedFormRoute):
        return closed_form_objective_fn(problem, route)
    if isinstance(route, DynamicsRoute):
        return dynamics_objective_fn(problem, route, key=key, init_scale=init_scale)
    if isinstance(route, TrainRoute):
        if key is None:
            raise ValueError("route TrainRoute needs key= (the initial weights and the sampled noise)")
        return train_objective_fn(problem, route, key=key, init_scale=init_scale)
    raise ValueError(f"route must be a ClosedFormRoute, DynamicsRoute or TrainRoute; got {route!r}")

RouteName = Literal["closed_form", "dynamics", "train"]
# Structural keywords of heldout_objective and their defaults: with a route config they stay unset.
_STRUCTURE = {"hidden": None, "init": "balanced", "marginalised": True, "activation": None,
              "remat_every": None, "precision": None, "depth": 2}


def _with_defaults(route_objective: jtu.Partial, defaults: Hyperparams, hyper) -> Array:
    """Fill a dict of overrides from ``defaults`` (a full :class:`Hyperparams` passes through)."""
    if isinstance(hyper, Hyperparams):
        return route_objective(hyper)
    if not isinstance(hyper, Mapping):
        raise TypeError(f"hyper must be a Hyperparams or a dict of overrides; got {type(hyper).__name__}")
    unknown = set(hyper) - set(TUNABLE)
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)}; tunable: {TUNABLE}")
    if "epochs" in hyper and defaults.epochs is None:
        raise ValueError("epochs can only be tuned on route 'closed_form' (routes 'dynamics' and "
                         "'train' run a whole number of gradient steps)")
    return route_objective(defaults._replace(**hyper))


def _route_config(route: str, epochs, structure: dict) -> Route:
    """The one place where a route name becomes its typed config."""
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES} or a route config; got {route!r}")
    hidden, depth = structure["hidden"], structure.get("depth", 2)
    if route == "closed_form":
        return ClosedFormRoute(hidden=hidden, depth=depth)
    e = float(np.asarray(epochs))
    if e != int(e):
        raise ValueError(f"epochs must be a whole number on route {route!r}; got {e}")
    remat = {} if structure["remat_every"] is None else {"remat_every": structure["remat_every"]}
    if route == "dynamics":
        return DynamicsRoute(epochs=int(e), init=structure["init"], hidden=hidden,
                             precision=structure["precision"], depth=depth, **remat)
    return TrainRoute(epochs=int(e), hidden=hidden, marginalised=structure["marginalised"],
                      activation=structure["activation"], precision=structure["precision"], depth=depth,
                      **remat)


def heldout_objective(problem: HeldoutProblem, *, epochs: ArrayLike | None = None, alpha: ArrayLike,
                      route: RouteName | Route = "closed_form", eps: ArrayLike = 0.0,
                      gamma: ArrayLike = 0.0, eval_sigma2: ArrayLike = 0.0, hidden: int | None = None,
                      w0: ArrayLike = 1e-6,
                      init: Literal["balanced", "orthogonal", "random"] = "balanced",
                      key: Array | None = None, init_scale: float = 1e-4, marginalised: bool = True,
                      activation: Any = None, remat_every: int | None = None,
                      precision: Any = None, depth: int = 2) -> jtu.Partial:
    """Held-out loss after ``epochs`` epochs of training with noise level ``eps``, as a pure function.

    Returns ``objective(hyper) -> scalar``: ``hyper`` is a dict with any of ``"eps"`` (scalar, or
    (D,) for per-direction noise), ``"gamma"``, ``"alpha"`` and (route "closed_form" only)
    ``"epochs"``, missing keys taking the values given here; or a full :class:`Hyperparams`. The
    objective is a ``jax.tree_util.Partial`` whose leaves are the problem's arrays and the defaults,
    so ``jax.jit``/``jax.grad``/``jax.vmap`` apply, the data is not baked into compiled code as
    constants, and objectives of equal structure share compilations.

    Routes (all differentiable in eps, gamma, alpha); a name is mapped once to its config, or pass
    the config itself (then structure keywords such as ``hidden`` or ``init`` go into the config):
      ``"closed_form"`` / :class:`ClosedFormRoute`: w_j(T) from the balanced small-initialisation
        solution (:func:`closed_form_objective_fn`). Exact for the continuous flow.
      ``"dynamics"`` / :class:`DynamicsRoute`: ``epochs`` steps of gradient descent (rate alpha)
        on the expected loss through daedyn.dynamics (:func:`dynamics_objective_fn`), reverse-mode
        through lax.scan with ``jax.checkpoint`` every ``remat_every`` steps.
      ``"train"`` / :class:`TrainRoute`: ``epochs`` steps of full-batch training of an actual
        autoencoder (:func:`train_objective_fn`), loss of the learned map on the held-out data.

    Args:
      problem: train spectrum and held-out projections (:func:`heldout_problem`).
      epochs: training time T in epochs, > 0 (a positive integer on routes "dynamics" and
        "train"); may be omitted when ``route`` is a config that holds it.
      alpha: learning rate, > 0 (tau = N / alpha).
      route: a route name, or a route config.
      eps: default noise level N s^2, >= 0; scalar or (D,).
      gamma: default weight decay, >= 0.
      eval_sigma2: per-component variance of the noise on held-out inputs, >= 0 (see module doc).
      hidden: number of hidden units H (1 <= H <= D); None means H = D.
      w0: initial per-direction mapping for routes "closed_form" and "dynamics", in (0, 1).
      init: initialisation of route "dynamics".
      key: PRNG key of the initial weights (route "train", and init="random").
      init_scale: scale of the initial weights on route "train" and of init="random".
      marginalised: route "train": marginalised noise term (True) or sampled noise (False).
      activation: route "train": None for a linear DAE, or an activation name/function.
      remat_every: steps per rematerialised block on routes "dynamics" and "train", >= 1
        (default 100).
      precision: matmul precision on routes "dynamics" and "train".
      depth: number of weight matrices L >= 2 on every route (docs/depth.md): the depth-L closed
        form, the L-factor recursion, or a network with L - 1 hidden layers of ``hidden`` units.
    Returns:
      The objective function.
    Raises:
      ValueError: for an unknown route, out-of-range values, structure given both in a config and
        as keywords, or a problem without the data that route "train" needs.
    Example:
      >>> p = problem_from_spectrum([4.0, 1.0], [2.0, 0.5], n=10, n_heldout=5)
      >>> f = heldout_objective(p, epochs=1e4, alpha=0.1, eval_sigma2=0.1)
      >>> bool(f({"eps": 1.0}) < f({"eps": 100.0}))
      True
    """
    structure = dict(hidden=hidden, init=init, marginalised=marginalised, activation=activation,
                     remat_every=remat_every, precision=precision, depth=depth)
    if isinstance(route, str):
        if epochs is None:
            raise ValueError("epochs is required (training time T in epochs, > 0)")
        check_range("epochs", epochs, 0.0, lo_open=True)
        if remat_every is not None:
            check_range("remat_every", remat_every, 1)
        config = _route_config(route, epochs, structure)
    elif isinstance(route, ClosedFormRoute | DynamicsRoute | TrainRoute):
        changed = sorted(k for k, v in structure.items() if v is not _STRUCTURE[k] and v != _STRUCTURE[k])
        if changed:
            raise ValueError(f"with a route config, set {changed} in the config, not as keywords")
        config = route
        if isinstance(route, ClosedFormRoute):
            if epochs is None:
                raise ValueError("epochs is required on route 'closed_form' (it is traced)")
            check_range("epochs", epochs, 0.0, lo_open=True)
        elif epochs is not None and float(np.asarray(epochs)) != route.epochs:
            raise ValueError(f"epochs={epochs} disagrees with the route config's epochs={route.epochs}")
    else:
        raise ValueError(f"route must be one of {ROUTES} or a route config; got {route!r}")
    check_range("alpha", alpha, 0.0, lo_open=True)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    check_range("eval_sigma2", eval_sigma2, 0.0)
    check_range("w0", w0, 0.0, 1.0, lo_open=True, hi_open=True)
    d = int(problem.eigvals.shape[-1])
    if np.ndim(eps) not in (0, 1) or (np.ndim(eps) == 1 and np.shape(eps)[0] != d):
        raise ValueError(f"eps must be a scalar or have shape ({d},); got shape {np.shape(eps)}")
    if isinstance(config, ClosedFormRoute):
        fn = closed_form_objective_fn(problem, config)
    elif isinstance(config, DynamicsRoute):
        fn = dynamics_objective_fn(problem, config, key=key, init_scale=init_scale)
    else:
        if np.ndim(eps) == 1 and not (models.is_linear(config.activation) and config.marginalised):
            raise ValueError("per-direction eps on route 'train' needs the marginalised linear network "
                             "(a corruption term diag(eps_j) in the eigenbasis); otherwise use routes "
                             "'closed_form' or 'dynamics'")
        fn = train_objective_fn(problem, config, key=key, init_scale=init_scale)
    dt = problem.eigvals.dtype
    defaults = Hyperparams(
        eps=jnp.asarray(eps, dt), alpha=jnp.asarray(alpha, dt), gamma=jnp.asarray(gamma, dt),
        w0=jnp.asarray(w0, dt),
        eps_eval=jnp.asarray(problem.n_heldout, dt) * jnp.asarray(eval_sigma2, dt),  # M s_eval^2
        epochs=jnp.asarray(epochs, dt) if isinstance(config, ClosedFormRoute) else None)
    return jtu.Partial(_with_defaults, fn, defaults)


# --- training time to a target loss ----------------------------------------------------------------

def time_to_loss(problem: HeldoutProblem, target: ArrayLike, *, eps: ArrayLike = 0.0,
                 gamma: ArrayLike = 0.0, alpha: ArrayLike, w0: ArrayLike = 1e-6,
                 hidden: int | None = None, on: Literal["train", "heldout"] = "train",
                 t_max: float = 1e9, iterations: int = 80) -> Array:
    """Training time (epochs) at which the clean reconstruction loss first reaches ``target``.

    Uses the closed-form per-direction trajectories (balanced small start, as route "closed_form").
    The loss 1/(2 n_eval) sum_j (1 - w_j(t))^2 p_j decreases monotonically in t there (each w_j rises
    from w0 to its fixed point <= 1), so the time is found by bisection in log t and made
    differentiable by the implicit function theorem: dT/dtheta = -(dL/dtheta) / (dL/dt) at the root.
    ``daedyn.theory.learning_time`` gives the per-direction analogue (time to a fraction of w*).

    Args:
      problem: spectra (``on="train"`` uses p_j = lam_j and n_eval = N).
      target: loss to reach, > 0.
      eps, gamma, alpha, w0, hidden: as in :func:`heldout_objective` (traceable).
      on: which set the loss is measured on.
      t_max: search bracket [1e-6, t_max] epochs.
      iterations: bisection steps (80 halves the log-bracket to below float64 resolution).
    Returns:
      T (scalar, differentiable in eps, gamma, alpha, w0, target); ``inf`` if the target is not
      reached by ``t_max`` (for instance below the loss at the fixed point).
    Example:
      >>> p = problem_from_spectrum([4.0, 1.0], [4.0, 1.0], n=1, n_heldout=1)
      >>> t = time_to_loss(p, 0.3, alpha=1.0)
      >>> bool(jnp.isfinite(t) & (t > 0))
      True
    """
    check_range("target", target, 0.0, lo_open=True)
    check_range("alpha", alpha, 0.0, lo_open=True)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    check_range("t_max", t_max, 1e-6, lo_open=True)
    if on not in ("train", "heldout"):
        raise ValueError(f"on must be 'train' or 'heldout'; got {on!r}")
    lam = problem.eigvals
    dt = lam.dtype
    proj, n_eval = (lam, problem.n) if on == "train" else (problem.projected, problem.n_heldout)
    mask = hidden_mask(lam.shape[-1], hidden, dt)
    args = tuple(jnp.asarray(a, dt) for a in (eps, gamma, alpha, w0, target))
    return _time_to_loss_impl(lam, proj, jnp.asarray(n_eval, dt), jnp.asarray(problem.n, dt), mask,
                              *args, jnp.asarray(t_max, dt), iterations=int(iterations))


@ft.partial(jax.jit, static_argnames=("iterations",))
def _time_to_loss_impl(lam, proj, n_eval, n, mask, eps, gamma, alpha, w0, target, t_max, *, iterations):
    def loss(t, eps, gamma, alpha, w0, target):
        w = theory.small_init_trajectory(t, lam, eps, gamma, w0=w0, tau=n / alpha, n=n) * mask
        return jnp.sum((1 - w) ** 2 * proj) / (2 * n_eval) - target

    args = (eps, gamma, alpha, w0, target)
    sg = tuple(jax.lax.stop_gradient(a) for a in args)
    lo, hi = jnp.log(jnp.asarray(1e-6, lam.dtype)), jnp.log(t_max)

    def bisect(_, bracket):
        a, b = bracket
        m = (a + b) / 2
        above = loss(jnp.exp(m), *sg) > 0
        return jnp.where(above, m, a), jnp.where(above, b, m)

    _, b = jax.lax.fori_loop(0, iterations, bisect, (lo, hi))
    t_star = jax.lax.stop_gradient(jnp.exp(b))
    reached = loss(jnp.exp(hi), *sg) <= 0
    slope = jax.grad(loss)(t_star, *sg)
    slope_safe = jnp.where(slope < 0, slope, -1.0)  # double where: finite off the taken branch
    # Implicit-function step: value t_star (residual ~ 0), derivative -(dL/dtheta) / (dL/dt).
    residual = loss(t_star, *args)
    t = t_star - (residual - jax.lax.stop_gradient(residual)) / slope_safe
    return jnp.where(reached, t, jnp.inf)
