"""Noise levels tuned by gradient: the noise-level distribution (or sigma_data) that makes the linear
denoiser generate the held-out data's Gaussian most closely after a training budget T.

The objective is the distance (KL or Frechet) between the Gaussian the probability-flow ODE generates
at ``t = T`` (:func:`~daedyn.diffusion.predict`, a closed form in the distribution's numbers) and a
held-out set's second moment: a smooth function of (p_mean, p_std), of (s_min, s_max), of a K-level
:class:`Ladder`'s levels and probabilities, or of sigma_data, differentiated by ``jax.grad`` through
the quadrature nodes, the coefficients (A, B), the trajectory and the flow integral. The optimiser is
:func:`daedyn.tune.tune` (optax, L-BFGS by default, in log-parameters, best-so-far, history):

- ``p_mean`` is tuned as ``exp(p_mean)`` (the median noise level; its log is p_mean, any real);
- ``p_std``, ``s_min``, ``s_max``, ``sigma_data`` and the ladder's ``sigmas`` in their logs (> 0);
  ``p_std`` is held to at most 5 (the range of :class:`LogNormal`'s nodes);
- the ladder's ``probs`` as positive weights normalised to sum 1.

:func:`tune` returns a :class:`DiffusionTuning`: the tuned :class:`Objective`, the distance before
and after, and :meth:`DiffusionTuning.to_xarray` of the optimiser's history in the distribution's
own numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import check_int, check_range, renamed
from daedyn.diffusion._levels import Ladder, LogNormal, LogUniform
from daedyn.diffusion._objective import Objective
from daedyn.diffusion._predict import predict

__all__ = ["DiffusionTuning", "tune", "distance_fn", "TUNABLE"]

Distance = Literal["kl", "frechet"]

#: What can be tuned, per noise-level distribution (``sigma_data`` with any of them).
TUNABLE = {LogNormal: ("p_mean", "p_std"), LogUniform: ("s_min", "s_max"), Ladder: ("sigmas", "probs")}
_P_STD_MAX = 5.0


def _positive(name: str, value) -> Array:
    """The positive number the optimiser sees for a named parameter's value."""
    v = jnp.asarray(value)
    return jnp.exp(v) if name == "p_mean" else v


def _natural(name: str, positive) -> Array:
    """The parameter's own value from the optimiser's positive number."""
    if name == "p_mean":
        return jnp.log(positive)
    if name == "p_std":
        return jnp.minimum(positive, _P_STD_MAX)
    if name == "probs":
        return positive / jnp.sum(positive)
    return positive


def _values(objective: Objective) -> dict[str, Any]:
    """Every tunable number of an objective, by name (a Ladder's probs filled in when None)."""
    sigma = objective.sigma
    out = {"sigma_data": objective.sigma_data}
    if isinstance(sigma, Ladder):
        _, p = sigma.nodes()
        out.update(sigmas=sigma.sigmas, probs=p)
    else:
        out.update({k: getattr(sigma, k) for k in TUNABLE[type(sigma)]})
    return out


def _with(objective: Objective, params: dict[str, Any]) -> Objective:
    """The objective with the named (natural) values replaced."""
    sigma = objective.sigma
    own = {k: v for k, v in params.items() if k != "sigma_data"}
    if own:
        sigma = dataclasses.replace(sigma, **own)
    sd = params.get("sigma_data", objective.sigma_data)
    return dataclasses.replace(objective, sigma=sigma, sigma_data=sd)


@jtu.register_dataclass
@dataclasses.dataclass(frozen=True)
class _Problem:
    """The data of one tuning problem (arrays traced; the structure static)."""

    objective: Objective
    lam: Array
    heldout: Array
    basis: Array | None
    n: Array
    alpha: Array
    budget: Array
    w0: Array
    sigma_min: Array
    sigma_max: Array
    depth: int = dataclasses.field(metadata=dict(static=True))
    distance: str = dataclasses.field(metadata=dict(static=True))

    def value(self, objective: Objective) -> Array:
        r = predict(self.budget[None], self.lam, n=self.n, alpha=self.alpha, w0=self.w0,
                    sigma=objective.sigma, precond=objective.precond, sigma_data=objective.sigma_data,
                    depth=self.depth, sigma_min=self.sigma_min, sigma_max=self.sigma_max,
                    weighting=objective.weighting, conditioning=objective.conditioning)
        if self.distance == "kl":
            return r.kl_divergence(self.heldout, basis=self.basis)[0]
        return r.frechet_distance(self.heldout, basis=self.basis)[0]


def _positive_objective(problem: _Problem, params: dict[str, Array]) -> Array:
    """The distance as a function of the optimiser's positive numbers (what :func:`daedyn.tune.tune`
    minimises in their logs)."""
    natural = {k: _natural(k, v) for k, v in params.items()}
    return problem.value(_with(problem.objective, natural))


class DiffusionTuning(NamedTuple):
    """What :func:`tune` returns.

    Fields:
      objective: the tuned :class:`Objective` (never worse than the start).
      start: the starting :class:`Objective`.
      value: the distance at ``objective`` after the budget; initial_value: at ``start``.
      params: the tuned numbers by name, in their own terms (p_mean, p_std, ...).
      distance: "kl" or "frechet". budget: T in epochs.
      result: the optimiser's :class:`daedyn.tune.TuneResult` (its params and history in the
        positive numbers it works on: ``exp(p_mean)``, unnormalised ladder weights).
    """

    objective: Objective
    start: Objective
    value: float
    initial_value: float
    params: dict
    distance: str
    budget: float
    result: Any

    def summary(self) -> dict:
        """Plain numbers: the distances before and after, the tuned values, the optimiser's outcome."""
        out = {"distance": self.distance, "budget": self.budget, "initial_value": self.initial_value,
               "value": self.value, "gain": self.initial_value - self.value}
        out.update({k: np.asarray(v).tolist() for k, v in self.params.items()})
        out.update({k: v for k, v in self.result.summary().items() if k in ("status", "message", "n_steps",
                                                                            "n_evals")})
        return out

    def to_xarray(self):
        """The optimisation history as an ``xarray.Dataset`` over ``step``: each tuned number in its own
        terms (``p_mean``, ``p_std``, ladder ``sigmas`` / ``probs`` over ``level``), its gradient
        with respect to the optimiser's log-variable (``grad_<name>``: for p_mean, d/dp_mean),
        ``objective`` (the distance) and ``evals``; ``best_<name>``; :meth:`summary` as attributes.
        Needs the ``sweep`` extra."""
        from daedyn._xarray import dataset

        fields = self.result.history_fields(dims={"sigmas": ("level",), "probs": ("level",)})
        for k in self.params:
            a, dims = fields[k]
            fields[k] = (np.asarray(_natural(k, jnp.asarray(a))) if k != "probs"
                         else np.asarray(a) / np.sum(np.asarray(a), axis=-1, keepdims=True), dims)
            fields[f"best_{k}"] = (np.asarray(self.params[k]), fields[f"best_{k}"][1])
        attrs = {k: (str(v) if isinstance(v, list) else v) for k, v in self.summary().items()}
        return dataset(fields, time=("step", np.arange(len(self.result.history.objective))), attrs=attrs,
                       what="DiffusionTuning.to_xarray")


def _check_over(objective: Objective, over) -> tuple[str, ...]:
    if isinstance(over, str):
        over = (over,)
    over = tuple(over)
    allowed = TUNABLE[type(objective.sigma)] + ("sigma_data",)
    if not over:
        raise ValueError(f"over must name at least one of {allowed}")
    for k in over:
        if k not in allowed:
            raise ValueError(f"over: {k!r} is not a number of {type(objective.sigma).__name__} "
                             f"(allowed: {', '.join(allowed)})")
    if len(set(over)) != len(over):
        raise ValueError(f"over names a parameter twice: {over}")
    return over


def distance_fn(lam: ArrayLike, heldout: ArrayLike, *, n: ArrayLike, alpha: ArrayLike, budget: ArrayLike,
                objective: Objective = Objective(), over=("p_mean", "p_std"), distance: Distance = "kl",
                basis: ArrayLike | None = None, depth: int = 2, w0: ArrayLike = 1e-6,
                sigma_min: ArrayLike = 0.002, sigma_max: ArrayLike = 80.0) -> Callable[[dict], Array]:
    """The tuning objective as a pure function ``f({name: natural value}) -> distance`` (a
    ``jax.tree_util.Partial``: jit/grad/vmap friendly); names not given keep ``objective``'s values.
    Arguments as :func:`tune`. For baselines (a grid, Optuna) and gradient checks."""
    problem, _ = _problem(lam, heldout, n=n, alpha=alpha, budget=budget, objective=objective, over=over,
                          distance=distance, basis=basis, depth=depth, w0=w0, sigma_min=sigma_min,
                          sigma_max=sigma_max)
    return jtu.Partial(_natural_objective, problem)


def _natural_objective(problem: _Problem, params: dict) -> Array:
    return problem.value(_with(problem.objective, params))


def _problem(lam, heldout, *, n, alpha, budget, objective, over, distance, basis, depth, w0, sigma_min,
             sigma_max):
    if not isinstance(objective, Objective):
        raise ValueError(f"objective must be a daedyn.diffusion.Objective; got {type(objective).__name__}")
    if distance not in ("kl", "frechet"):
        raise ValueError(f"distance must be 'kl' or 'frechet'; got {distance!r}")
    over = _check_over(objective, over)
    depth = check_int("depth", depth, 1)
    check_range("lam", lam, 0.0)
    check_range("heldout", heldout, -np.inf if np.ndim(heldout) == 2 else 0.0,
                lo_open=np.ndim(heldout) == 2, hi_open=True)
    check_range("n", n, 0.0, lo_open=True)
    check_range("alpha", alpha, 0.0, lo_open=True)
    check_range("budget", budget, 0.0, lo_open=True)
    lam_np = np.asarray(lam)
    if lam_np.ndim != 1:
        raise ValueError(f"lam must be 1-D (one eigenvalue per direction); got shape {lam_np.shape}")
    d = lam_np.shape[0]
    h = np.asarray(heldout)
    if h.shape not in ((d,), (d, d)):
        raise ValueError(f"heldout must be the held-out second moment per direction ({d},) or as a "
                         f"({d}, {d}) matrix; got shape {h.shape}")
    if basis is not None and h.ndim != 2:
        raise ValueError("basis goes with a (D, D) heldout matrix")
    dtype = jnp.result_type(float)
    cast = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    problem = _Problem(jtu.tree_map(cast, objective), cast(lam), cast(heldout),
                       None if basis is None else cast(basis), cast(n), cast(alpha), cast(budget), cast(w0),
                       cast(sigma_min), cast(sigma_max), depth=depth, distance=distance)
    return problem, over


@renamed(steps="max_steps")
def tune(lam: ArrayLike, heldout: ArrayLike, *, n: ArrayLike, alpha: ArrayLike, budget: ArrayLike,
         objective: Objective = Objective(), over=("p_mean", "p_std"), distance: Distance = "kl",
         basis: ArrayLike | None = None, depth: int = 2, w0: ArrayLike = 1e-6, sigma_min: ArrayLike = 0.002,
         sigma_max: ArrayLike = 80.0, max_steps: int = 100, optimizer: Any = None,
         progress: Callable[[int, int], None] | None = None,
         log: Callable[[dict], Any] | None = None) -> DiffusionTuning:
    """Tune the noise-level distribution (and/or sigma_data) by gradient through :func:`predict` so
    that the Gaussian generated after ``budget`` epochs is closest to the held-out data's.

    Args:
      lam: the training set's eigenvalues of ``Sigma = X^T X`` (D,), >= 0.
      heldout: the held-out data's per-sample second moment: per direction (D,) in Sigma's
        eigenbasis (``diag(V^T C V)``: only the diagonal counts for KL and a diagonal C for Frechet),
        or a (D, D) matrix with ``basis=V`` (Sigma's eigenvectors as columns).
      n: N, the number of training samples; alpha: learning rate (``tau = N / alpha``).
      budget: the training time T in epochs, > 0.
      objective: the starting :class:`Objective` (default EDM's: ``LogNormal(-1.2, 1.2)``, "edm",
        sigma_data 0.5); its preconditioning, weighting and conditioning stay fixed.
      over: the numbers to tune: of a LogNormal "p_mean", "p_std"; of a LogUniform "s_min", "s_max";
        of a Ladder "sigmas", "probs"; and "sigma_data" with any.
      distance: "kl" (``KL(data || generated)``) or "frechet".
      basis: Sigma's eigenvectors (columns) for a (D, D) ``heldout``.
      depth, w0, sigma_min, sigma_max: as :func:`predict`.
      max_steps: the optimiser's iterations at most, >= 1 (the keyword ``steps`` is deprecated).
      optimizer: any optax transformation (default L-BFGS, :func:`daedyn.tune.tune`).
      progress, log: :func:`daedyn.tune.tune`'s callbacks.
    Returns:
      a :class:`DiffusionTuning`.
    Raises:
      ValueError: a name in ``over`` the distribution does not have, shapes that disagree, values out
        of range (each named).
    Example:
      >>> lam = 100.0 * jnp.array([4.0, 1.0, 0.25, 0.04])  # per-sample variances 4 ... 0.04, N = 100
      >>> r = tune(lam, lam / 100.0, n=100, alpha=0.5, budget=400.0, max_steps=20)
      >>> bool(r.value < r.initial_value), sorted(r.params)
      (True, ['p_mean', 'p_std'])
    """
    from daedyn.tune import tune as optimise  # the shared optimiser driver (optax, history, best-so-far)

    problem, over = _problem(lam, heldout, n=n, alpha=alpha, budget=budget, objective=objective, over=over,
                             distance=distance, basis=basis, depth=depth, w0=w0, sigma_min=sigma_min,
                             sigma_max=sigma_max)
    steps = check_int("max_steps", max_steps, 1)
    start = _values(objective)
    init = {k: np.asarray(_positive(k, start[k]), np.float64) for k in over}
    if "p_std" in init:
        init["p_std"] = np.minimum(init["p_std"], _P_STD_MAX)
    res = optimise(jtu.Partial(_positive_objective, problem), init, optimizer=optimizer, max_steps=steps,
                   progress=progress, log=log)
    params = {k: _natural(k, v) for k, v in res.params.items()}
    tuned = _with(objective, {k: jnp.asarray(v) for k, v in params.items()})
    return DiffusionTuning(objective=tuned, start=objective, value=float(res.objective),
                           initial_value=float(res.initial_objective), params=params, distance=distance,
                           budget=float(budget), result=res)
