"""Gradient-based tuning in log-parameters with optax, grid-search baseline, anisotropic noise."""

from __future__ import annotations

import functools as ft
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optax
from jax import Array
from jax.typing import ArrayLike

from daedyn._progress import starting

__all__ = ["History", "TuneResult", "GridResult", "tune", "grid_search", "tune_anisotropic"]


class History(NamedTuple):
    """One row per objective-and-gradient evaluation of the optimiser's iterates.

    Attributes:
      params: dict name -> (S, ...) constrained values (eps, gamma, ...) at each iterate.
      objective: (S,) objective at each iterate.
      grad: dict name -> (S, ...) gradient with respect to the log-parameters at each iterate.
      evals: (S,) cumulative objective evaluations when each iterate was evaluated (line-search
        trials included).
    """

    params: dict
    objective: np.ndarray
    grad: dict
    evals: np.ndarray


#: Default box for the optimised log-parameters: exp(-30) ~ 9.4e-14 to exp(30) ~ 1.1e13.
LOG_BOUNDS = (-30.0, 30.0)


class TuneResult(NamedTuple):
    """Outcome of :func:`tune`.

    Attributes:
      params: best constrained hyperparameters found (dict of arrays), never worse than ``init``.
      objective: objective at ``params`` (NaN only if even the initial objective was not finite).
      initial_objective: objective at ``init``.
      status: "converged" (early stopping), "max_steps", "nonfinite" (NaN/inf objective or
        gradient: stopped, best-so-far returned), or "flat" (the gradient vanished on a plateau, e.g.
        an absurd starting eps where the objective is saturated: nothing was optimised).
      message: human-readable reason for stopping.
      n_steps: optimiser iterations taken.
      n_evals: objective evaluations (iterates plus line-search trials, when the optimiser has them).
      history: per-iterate (params, objective, gradient).
    """

    params: dict
    objective: float
    initial_objective: float
    status: str
    message: str
    n_steps: int
    n_evals: int
    history: History

    @property
    def success(self) -> bool:
        return self.status in ("converged", "max_steps")

    def to_xarray(self, dims: dict | None = None):
        """The optimisation history as an ``xarray.Dataset`` over ``step`` (one row per evaluated
        iterate): each tuned hyperparameter (``eps`` over (``step``, ``direction``) when
        anisotropic), its gradient in log-space (``grad_eps``), ``objective`` and the cumulative
        ``evals``; the best values are ``best_<name>`` and the status, message, step and
        evaluation counts and objectives are attributes.

        Args:
          dims: the dimension names of a hyperparameter's own axes, by name (e.g.
            ``{"eps": ("piece", "direction")}`` for a per-direction schedule); default
            ``direction`` for each axis (one axis: per-direction tuning).
        Raises:
          ImportError: xarray (the ``sweep`` extra) is not installed.
        """
        from daedyn._xarray import dataset

        return dataset(self.history_fields(dims=dims), time=("step", np.arange(len(self.history.objective))),
                       attrs=self.summary(), what="TuneResult.to_xarray")

    def summary(self) -> dict:
        """The outcome as plain numbers and strings (the attributes of :meth:`to_xarray`)."""
        return {"status": self.status, "message": self.message, "n_steps": int(self.n_steps),
                "n_evals": int(self.n_evals), "best_objective": float(self.objective),
                "initial_objective": float(self.initial_objective)}

    def history_fields(self, *, dims: dict | None = None, step: str = "step", prefix: str = "") -> dict:
        """The fields of :meth:`to_xarray` (``{name: (array, dims)}`` for
        :func:`daedyn._xarray.dataset`), over the step dimension ``step`` and with names prefixed
        by ``prefix``: how a result of several stages (schedules, per-component variances) puts
        each stage's history in one dataset."""
        h = self.history
        own = dict(dims or {})

        def names(k, a, lead):
            extra = np.ndim(a) - len(lead)
            given = tuple(own.get(k, ("direction",) * extra))
            if len(given) != extra:
                raise ValueError(f"dims[{k!r}] names {len(given)} axes; {k} has {extra}")
            return lead + given

        fields = {f"{prefix}objective": (h.objective, (step,)), f"{prefix}evals": (h.evals, (step,))}
        for k, a in h.params.items():
            fields[f"{prefix}{k}"] = (a, names(k, a, (step,)))
            fields[f"{prefix}grad_{k}"] = (h.grad[k], names(k, h.grad[k], (step,)))
            fields[f"{prefix}best_{k}"] = (np.asarray(self.params[k]), names(k, self.params[k], ()))
        return fields


class GridResult(NamedTuple):
    """Outcome of :func:`grid_search`.

    Attributes:
      params: constrained hyperparameters of the best grid point (dict of 0-d arrays).
      objective: best objective value on the grid.
      values: objective on the Cartesian grid, shape (len(grid[k]) for k in grid).
      grid: dict name -> 1-D array of the grid values, in the order of the axes of ``values``.
      n_evals: number of objective evaluations (the grid size).
      status: "ok", or "nonfinite" when some points gave NaN/inf (they are skipped).
    """

    params: dict
    objective: float
    values: np.ndarray
    grid: dict
    n_evals: int
    status: str

    def to_xarray(self):
        """The grid as an ``xarray.Dataset``: ``objective`` over one dimension per hyperparameter
        (``eps``, ``gamma``, ...), each with its grid values as coordinate; the best point's values
        as ``best_<name>`` and ``best_objective`` (0-d); ``n_evals`` and ``status`` as attributes.

        Raises:
          ImportError: xarray (the ``sweep`` extra) is not installed.
        """
        from daedyn._xarray import dataset

        names = tuple(self.grid)
        fields = {"objective": (np.asarray(self.values), names),
                  "best_objective": (np.asarray(self.objective), ())}
        fields.update({f"best_{k}": (np.asarray(v), ()) for k, v in self.params.items()})
        return dataset(fields, coords={k: np.asarray(v) for k, v in self.grid.items()},
                       attrs={"n_evals": int(self.n_evals), "status": str(self.status)},
                       what="GridResult.to_xarray")


def _as_partial(objective: Callable) -> jtu.Partial:
    return objective if isinstance(objective, jtu.Partial) else jtu.Partial(objective)


def _check_init(init: Mapping[str, ArrayLike]) -> dict:
    if not isinstance(init, Mapping) or not init:
        raise ValueError("init must be a non-empty dict of positive starting values, e.g. {'eps': 1.0}")
    out = {}
    for k, v in init.items():
        a = np.asarray(v, dtype=np.float64)
        if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise ValueError(f"initial {k} must be finite and > 0 (it is optimised as log {k}); "
                             f"got {v!r}")
        out[k] = a
    return out


def _num_linesearch_evals(state) -> int:
    """Line-search trial evaluations recorded in an optax state (0 if it keeps none)."""
    try:
        info = optax.tree_utils.tree_get(state, "info")
    except (KeyError, ValueError):
        return 0
    steps = getattr(info, "num_linesearch_steps", None)
    return 0 if steps is None else int(steps)


@ft.cache
def default_optimizer() -> optax.GradientTransformationExtraArgs:
    """L-BFGS with a zoom line search (``optax.lbfgs()``): few evaluations on smooth objectives.

    One shared instance, so jitted tuning steps compile once per objective configuration.
    """
    return optax.lbfgs()


def _value_fn(obj, z):
    return obj(jtu.tree_map(jnp.exp, z))


_evaluate = jax.jit(jax.value_and_grad(_value_fn, argnums=1))


@ft.partial(jax.jit, static_argnames=("optimizer", "bounds"))
def _update(obj, z, state, value, grad, *, optimizer, bounds):
    if isinstance(optimizer, optax.GradientTransformationExtraArgs):
        updates, state = optimizer.update(grad, state, z, value=value, grad=grad,
                                          value_fn=ft.partial(_value_fn, obj))
    else:
        updates, state = optimizer.update(grad, state, z)
    z = optax.apply_updates(z, updates)
    return jtu.tree_map(lambda a: jnp.clip(a, *bounds), z), state


def _is_flat(objective, z, value: float, rtol: float) -> bool:
    """Whether the objective has the same value a factor e either side of ``z`` (all parameters
    scaled together): a plateau (saturated objective), not a minimum."""
    for shift in (1.0, -1.0):
        other, _ = _evaluate(objective, jtu.tree_map(lambda a: a + shift, z))
        other = float(other)
        if not math.isfinite(other) or abs(other - value) > max(rtol, 1e-12) * max(abs(value), 1e-300):
            return False
    return True


def tune(objective: Callable[[dict], Array], init: Mapping[str, ArrayLike], *,
         optimizer: optax.GradientTransformation | None = None, max_steps: int = 100,
         patience: int = 5, rtol: float = 1e-9, gtol: float = 1e-7,
         log_bounds: tuple[float, float] = LOG_BOUNDS,
         progress: Callable[[int, int], None] | None = None,
         log: Callable[[dict], Any] | None = None) -> TuneResult:
    """Minimise ``objective`` over positive hyperparameters by gradient descent in their logarithms.

    The optimiser works on z = log(params) (so eps, gamma, alpha, T stay positive); the gradient
    is taken with ``jax.value_and_grad`` through the objective (any route). Each iteration is one
    jitted step (compiled once). It stops early when the gradient norm (in z) falls below ``gtol``
    or the best objective improved by less than ``rtol`` (relative) for ``patience`` iterations, and
    stops with status "nonfinite" as soon as the objective or its gradient is NaN/inf, returning the
    best parameters found so far.

    Args:
      objective: ``f(params: dict) -> scalar``, e.g. from :func:`heldout_objective`; a
        ``jax.tree_util.Partial`` passes its arrays as arguments rather than compile-time constants.
      init: starting values, e.g. ``{"eps": 1.0}`` or ``{"eps": jnp.full(D, 1.0), "gamma": 0.1}``;
        each must be finite and > 0.
      optimizer: any optax transformation, applied to z; those taking extra arguments
        (``optax.lbfgs``, line searches) get ``value``, ``grad`` and ``value_fn``. Default L-BFGS.
      max_steps: maximum number of iterations, >= 1.
      patience: iterations without relative improvement ``rtol`` before stopping, >= 1.
      rtol: relative improvement that counts as progress, >= 0.
      gtol: gradient-norm threshold (in log-parameters) for convergence, >= 0.
      log_bounds: z is clipped to this box after each step (keeps exp(z) finite); ``init`` must lie
        inside ``[exp(lo), exp(hi)]``.
      progress: optional ``progress(done, total)`` callback (e.g. :func:`daedyn._progress.progress_bar`),
        called after each evaluation with ``total = max_steps``, and once at the end with
        ``done = total`` = the evaluations made.
      log: the logging hook: ``log(record)`` after each evaluated iterate, ``record`` a dict
        ``{"step": int, "objective": float, "<name>": value, "grad_<name>": value}`` of NumPy values
        (values in the constrained space, gradients in log-space), for TensorBoard / W&B.
    Returns:
      A :class:`TuneResult`.
    Raises:
      ValueError: for a non-positive or non-finite initial value, one outside ``exp(log_bounds)``, or
        bad settings.
    Example:
      >>> f = lambda p: (jnp.log(p["eps"]) - 1.0) ** 2  # optimum eps = e
      >>> r = tune(f, {"eps": 1.0}, optimizer=optax.sgd(0.4))  # default L-BFGS: fewer steps
      >>> r.status, round(float(r.params["eps"]), 4), r.n_steps
      ('converged', 2.7183, 11)
    """
    from daedyn._checks import check_range

    init = _check_init(init)
    if not (len(log_bounds) == 2 and all(math.isfinite(float(b)) for b in log_bounds)
            and float(log_bounds[0]) < float(log_bounds[1])):
        raise ValueError(f"log_bounds must be two finite numbers lo < hi; got {log_bounds!r}")
    for k, a in init.items():  # the box the iterates are clipped to: a start outside it is refused
        check_range(f"initial {k}", a, math.exp(float(log_bounds[0])), math.exp(float(log_bounds[1])))
    check_range("max_steps", max_steps, 1)
    check_range("patience", patience, 1)
    check_range("rtol", rtol, 0.0)
    check_range("gtol", gtol, 0.0)
    optimizer = default_optimizer() if optimizer is None else optimizer
    objective = _as_partial(objective)
    dtype = jnp.result_type(float)
    z = {k: jnp.log(jnp.asarray(v, dtype)) for k, v in init.items()}
    bounds = (float(log_bounds[0]), float(log_bounds[1]))
    # strong-typed state: optax's init leaves weak-typed leaves that its update returns strong-typed,
    # and the changed types would compile the jitted step a second time (measured: twice the time)
    state = jtu.tree_map(lambda a: jnp.asarray(a, a.dtype) if isinstance(a, jax.Array) else a,
                         optimizer.init(z))
    hist_z, hist_v, hist_g, hist_n = [], [], [], []
    best_z, best_v = z, math.inf
    status, message = "max_steps", f"reached max_steps={max_steps}"
    n_evals, stale, n_steps = 0, 0, 0
    starting(progress, 0, max_steps)
    for step in range(max_steps):
        value, grad = _evaluate(objective, z)
        n_evals += 1
        v = float(value)
        if progress is not None and step + 1 < max_steps:
            progress(step + 1, max_steps)
        if log is not None:
            record = {"step": step, "objective": v}
            for k, a in z.items():
                record[k] = np.asarray(jnp.exp(a))[()]
                record[f"grad_{k}"] = np.asarray(grad[k])[()]
            log(record)
        g_ok = all(bool(jnp.all(jnp.isfinite(g))) for g in jtu.tree_leaves(grad))
        hist_z.append(z), hist_v.append(v), hist_g.append(grad), hist_n.append(n_evals)
        if not (math.isfinite(v) and g_ok):
            what = "objective" if not math.isfinite(v) else "gradient"
            at = {k: np.asarray(jnp.exp(a)).tolist() for k, a in z.items()}
            status = "nonfinite"
            message = (f"the {what} became {v if what == 'objective' else 'non-finite'} at step {step} "
                       f"(params {at}); stopped and returned the best parameters found so far")
            break
        improved = v < best_v - rtol * abs(best_v) if math.isfinite(best_v) else True
        if v < best_v:
            best_z, best_v = z, v
        stale = 0 if improved else stale + 1
        gnorm = float(optax.tree.norm(grad))
        if gnorm <= gtol:
            if _is_flat(objective, z, v, rtol):
                at = {k: np.asarray(jnp.exp(a)).tolist() for k, a in z.items()}
                status = "flat"
                message = (f"the objective is flat (saturated) at step {step}, params {at}: gradient norm "
                           f"{gnorm:.3g} and the same value {v:.6g} at params times e and divided by e; "
                           f"no optimum was found there: start nearer the problem's scale (e.g. eps0 ~ "
                           f"N * eval_sigma2)")
                break
            status, message = "converged", f"gradient norm {gnorm:.3g} <= gtol={gtol:g} at step {step}"
            break
        if stale >= patience:
            status = "converged"
            message = f"objective improved by < rtol={rtol:g} for {patience} steps (step {step})"
            break
        if step == max_steps - 1:
            break  # no update whose result would never be evaluated
        z, state = _update(objective, z, state, value, grad, optimizer=optimizer, bounds=bounds)
        n_steps += 1
        n_evals += _num_linesearch_evals(state)
    if progress is not None:
        progress(len(hist_v), len(hist_v))  # finished (possibly before max_steps)
    stack = lambda xs: {k: np.stack([np.asarray(jnp.exp(x[k])) for x in xs]) for k in xs[0]}
    history = History(params=stack(hist_z), objective=np.asarray(hist_v),
                      grad={k: np.stack([np.asarray(g[k]) for g in hist_g]) for k in hist_g[0]},
                      evals=np.asarray(hist_n))
    best_params = {k: jnp.exp(a) for k, a in best_z.items()}
    return TuneResult(params=best_params, objective=best_v if math.isfinite(best_v) else math.nan,
                      initial_objective=hist_v[0], status=status, message=message, n_steps=n_steps,
                      n_evals=n_evals, history=history)


def grid_search(objective: Callable[[dict], Array], grid: Mapping[str, ArrayLike], *,
                batch_size: int = 256) -> GridResult:
    """Evaluate ``objective`` on the Cartesian product of ``grid`` and return the best point.

    The same objective functions as :func:`tune`; points are evaluated with ``jax.lax.map`` in
    batches of ``batch_size`` (vectorised within a batch, one compilation). NaN/inf points are
    skipped (status "nonfinite").

    Args:
      objective: ``f(params: dict) -> scalar``.
      grid: dict name -> 1-D array of candidate values (e.g. ``{"eps": jnp.geomspace(1, 1e4, 101)}``).
      batch_size: points evaluated together, >= 1.
    Returns:
      A :class:`GridResult`.
    Raises:
      ValueError: for an empty or non-1-D grid, or when every point is non-finite.
    Example:
      >>> f = lambda p: (jnp.log(p["eps"]) - 1.0) ** 2
      >>> r = grid_search(f, {"eps": jnp.geomspace(0.1, 10.0, 401)})
      >>> round(float(r.params["eps"]), 2), r.n_evals
      (2.72, 401)
    """
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError("grid must be a non-empty dict name -> 1-D array of values")
    dtype = jnp.result_type(float)
    axes = {}
    for k, v in grid.items():
        a = np.asarray(v, dtype=np.float64)
        if a.ndim != 1 or a.size == 0:
            raise ValueError(f"grid[{k!r}] must be a non-empty 1-D array; got shape {a.shape}")
        axes[k] = a
    mesh = np.meshgrid(*axes.values(), indexing="ij")
    points = {k: jnp.asarray(m.ravel(), dtype) for k, m in zip(axes, mesh, strict=True)}
    objective = _as_partial(objective)
    values = np.asarray(_grid_eval(objective, points, int(batch_size)))
    values = values.reshape(mesh[0].shape)
    finite = np.isfinite(values)
    if not finite.any():
        raise ValueError("the objective is NaN/inf at every grid point")
    i = np.unravel_index(np.argmin(np.where(finite, values, np.inf)), values.shape)
    best = {k: jnp.asarray(axes[k][i[j]], dtype) for j, k in enumerate(axes)}
    return GridResult(params=best, objective=float(values[i]), values=values,
                      grid={k: a for k, a in axes.items()}, n_evals=int(values.size),
                      status="ok" if finite.all() else "nonfinite")


@ft.partial(jax.jit, static_argnames=("batch_size",))
def _grid_eval(objective, points, batch_size):
    n = jtu.tree_leaves(points)[0].shape[0]
    return jax.lax.map(objective, points, batch_size=min(batch_size, n))


def tune_anisotropic(objective: Callable[[dict], Array], isotropic: TuneResult | Mapping[str, Any],
                     d: int, **tune_kwargs) -> TuneResult:
    """Tune a per-direction noise level eps_j (shape (d,)) jointly, from the best isotropic eps.

    The start is eps_j = eps_iso for every j (plus any other tuned hyperparameters of the
    isotropic result), where the objective equals the isotropic optimum; :func:`tune` only ever
    returns a point at least as good as its start, so the result is never worse than the best
    isotropic eps.

    Args:
      objective: as for :func:`tune`, accepting ``eps`` of shape (d,) (routes "closed_form" and
        "dynamics" of :func:`heldout_objective`).
      isotropic: a :class:`TuneResult` (its ``params``) or a dict with a scalar ``"eps"``.
      d: number of eigen-directions.
      **tune_kwargs: passed to :func:`tune`.
    Returns:
      A :class:`TuneResult` whose ``params["eps"]`` has shape (d,).
    """
    params = dict(isotropic.params if isinstance(isotropic, TuneResult) else isotropic)
    if "eps" not in params:
        raise ValueError("isotropic must contain a scalar 'eps' to start from")
    eps = np.asarray(params["eps"])
    if eps.ndim != 0:
        raise ValueError(f"isotropic 'eps' must be a scalar; got shape {eps.shape}")
    params["eps"] = np.full((int(d),), float(eps))
    return tune(objective, params, **tune_kwargs)
