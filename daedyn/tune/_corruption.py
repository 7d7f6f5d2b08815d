"""A corruption's parameters as tunable hyperparameters of any route of the held-out objective.

A marginalised corruption enters the core's loss only through its term C (docs/corruption.md). For
the two families tuned here C is linear in positive parameters, so an objective over them is the
existing route objective (:func:`~daedyn.tune.heldout_objective`) with ``eps`` replaced by the term:

- **masking** (inverted dropout, rate p): C = r diag(Sigma) with the odds r = p / (1 - p) > 0. Tuning
  log r is tuning logit p: every p in (0, 1) is reachable and none outside it.
- **variances** (additive Gaussian noise with per-component variances v > 0, a (D,) vector):
  C = N diag(v). :func:`~daedyn.tune.tune` works in log v, so positivity is the log
  reparametrisation.

The term is given to each route in the form it integrates (eigenbasis, B = V^T C V):

- route "closed_form" and route "dynamics" with ``init="balanced"`` (per-direction models): the
  diagonal eps_j = B_jj, i.e. r [V^T diag(Sigma) V]_jj or N sum_k V_kj^2 v_k (the per-direction
  approximation of daedyn.theory.diagonal_eps);
- route "dynamics" with ``init="orthogonal"`` / ``"random"`` and route "train" (a linear network
  on the marginalised loss, eigen path): the whole (D, D) B, directions coupled.

Nothing here optimises: the objective is a ``jax.tree_util.Partial`` of ``params: dict`` that
:func:`~daedyn.tune.tune` and :func:`~daedyn.tune.grid_search` take as they are.
"""

from __future__ import annotations

from typing import Any, Literal

import jax.numpy as jnp
import jax.tree_util as jtu
from jax import Array
from jax.typing import ArrayLike

from daedyn import _corruption
from daedyn.tune._config import ClosedFormRoute, DynamicsRoute, TrainRoute
from daedyn.tune._objective import _route_config, heldout_objective

__all__ = ["CORRUPTION_KINDS", "corruption_objective_fn", "coupled_route"]

CORRUPTION_KINDS = ("masking", "variances")


def coupled_route(route) -> bool:
    """Whether a route config integrates the whole (D, D) term (else its diagonal eps_j)."""
    return isinstance(route, TrainRoute) or (isinstance(route, DynamicsRoute) and route.init != "balanced")


def _as_config(route, epochs, structure: dict):
    if isinstance(route, ClosedFormRoute | DynamicsRoute | TrainRoute):
        return route
    return _route_config(route, epochs, structure)


def _unit_term(problem, kind: str, coupled: bool) -> Array:
    """The per-unit term: masking's V^T diag(Sigma) V (odds 1), or for variances V itself (the term
    is assembled per call: N V^T diag(v) V, or its diagonal N (V o V)^T v)."""
    lam, v = problem.eigvals, problem.eigvecs
    if kind == "variances":
        return v if coupled else v * v
    v2 = v * v
    diag_sigma = jnp.sum(v2 * lam[None, :], axis=1)  # diag(Sigma)_k = sum_i V_ki^2 lam_i
    if not coupled:
        return jnp.sum(v2 * diag_sigma[:, None], axis=0)  # [V^T diag(Sigma) V]_jj
    return _corruption.rotate_term(diag_sigma, v)


def _masking_apply(base, unit: Array, params: dict) -> Array:
    rest = {k: a for k, a in params.items() if k != "odds"}
    return base({**rest, "eps": jnp.asarray(params["odds"], unit.dtype) * unit})


def _variances_diagonal(base, v2: Array, n: Array, params: dict) -> Array:
    rest = {k: a for k, a in params.items() if k != "var"}
    var = jnp.broadcast_to(jnp.asarray(params["var"], v2.dtype), v2.shape[:1])  # a scalar: isotropic
    return base({**rest, "eps": n * jnp.sum(v2 * var[:, None], axis=0)})  # N sum_k V_kj^2 v_k


def _variances_coupled(base, v: Array, n: Array, params: dict) -> Array:
    rest = {k: a for k, a in params.items() if k != "var"}
    var = jnp.broadcast_to(jnp.asarray(params["var"], v.dtype), v.shape[:1])
    return base({**rest, "eps": n * _corruption.rotate_term(var, v)})  # N V^T diag(v) V


def corruption_objective_fn(problem, kind: Literal["masking", "variances"], *, epochs: ArrayLike | None,
                            alpha: ArrayLike, route: Any = "closed_form", eval_sigma2: ArrayLike = 0.0,
                            gamma: ArrayLike = 0.0, w0: ArrayLike = 1e-4, hidden: int | None = None,
                            init: Literal["balanced", "orthogonal", "random"] = "balanced",
                            key: Array | None = None, init_scale: float = 1e-4,
                            remat_every: int | None = None, precision: Any = None) -> jtu.Partial:
    """The held-out objective of a route as a function of a corruption's parameters.

    Args:
      problem: a :class:`~daedyn.tune.HeldoutProblem` with ``eigvecs`` (``heldout_problem(...,
        keep_data=True)``, the default).
      kind: "masking" (params ``{"odds": p / (1 - p)}``) or "variances" (params ``{"var": v}``,
        v of shape (D,), per-component variances of additive Gaussian noise).
      epochs, alpha, route, eval_sigma2, gamma, w0, hidden, init, key, init_scale, remat_every,
        precision: as :func:`~daedyn.tune.heldout_objective` (``route`` a name or a config).
    Returns:
      ``objective(params: dict) -> scalar``, pure (``jit``, ``grad``, ``vmap`` apply); other keys of
      ``params`` (``"gamma"``, ``"alpha"``, ...) override the defaults as in ``heldout_objective``.
    Raises:
      ValueError: for an unknown kind, a problem without eigenvectors, route "train" without
        ``marginalised=True`` and a linear network (the sampled draw has no gradient in the
        corruption's parameters), or as :func:`~daedyn.tune.heldout_objective`.
    """
    if kind not in CORRUPTION_KINDS:
        raise ValueError(f"kind must be one of {CORRUPTION_KINDS}; got {kind!r}")
    if problem.eigvecs is None:
        raise ValueError(f"tuning {kind} needs the train eigenvectors: build the problem with "
                         "heldout_problem(..., keep_data=True)")
    if isinstance(route, str) and epochs is None:
        raise ValueError("epochs is required (training time T in epochs, > 0)")
    structure = dict(hidden=hidden, init=init, marginalised=True, activation=None,
                     remat_every=remat_every, precision=precision)
    config = _as_config(route, epochs, structure)
    if isinstance(config, TrainRoute) and not (config.marginalised and config.activation is None):
        raise ValueError(f"tuning {kind} through route 'train' needs a linear network on the "
                         "marginalised loss (TrainRoute(marginalised=True, activation=None)): a sampled "
                         "corruption has no gradient in its parameters")
    kw = {} if config is route else structure  # a name: the structure keywords build the config
    kw = {k: v for k, v in kw.items() if k not in ("marginalised", "activation")}
    base = heldout_objective(problem, epochs=epochs, alpha=alpha, route=route, gamma=gamma,
                             eval_sigma2=eval_sigma2, w0=w0, key=key, init_scale=init_scale, **kw)
    coupled = coupled_route(config)
    unit = _unit_term(problem, kind, coupled)
    if kind == "masking":
        return jtu.Partial(_masking_apply, base, unit)
    apply = _variances_coupled if coupled else _variances_diagonal
    return jtu.Partial(apply, base, unit, jnp.asarray(problem.n, unit.dtype))
