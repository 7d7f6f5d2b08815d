"""Tuning a corruption's parameters: any corruption value with a marginalised term, through any route.

A marginalised corruption enters the core's loss only through its term C (docs/corruption.md), so
the held-out objective of a corruption is the route's objective (:func:`~daedyn.tune.heldout_objective`)
with ``eps`` replaced by the corruption's own :meth:`marginal_term`, in the form the route integrates
(eigenbasis, B = V^T C V):

- route "closed_form" and route "dynamics" with ``init="balanced"`` (per-direction models): the
  diagonal eps_j = B_jj (the per-direction approximation of daedyn.theory.diagonal_eps);
- route "dynamics" with ``init="orthogonal"`` / ``"random"`` and route "train" (a linear network on
  the marginalised loss, eigen path): the whole (D, D) B, directions coupled.

The tunable leaves (one dispatch point, :func:`_parametrisation`) are positive, and
:func:`~daedyn.tune.tune` works in their logarithms, which is the unconstrained parametrisation:

- :func:`daedyn.noise.masking` (inverted dropout, rate p): ``{"odds": p / (1 - p)}``; log odds is
  logit p, every p in (0, 1) reachable and none outside it. C = r diag(Sigma) is linear in the odds
  r, so the unit term (the corruption's term at r = 1, i.e. p = 1/2) is formed once in the route's
  form and scaled.
- :func:`daedyn.noise.gaussian_covariance` with per-component variances v (D,): ``{"var": v}``
  (log v; a scalar ``var`` is isotropic, broadcast to D), C = N diag(v): the corruption's term per
  sample at every evaluation, in the route's form, times N.
- isotropic additive noise (:func:`daedyn.noise.gaussian`, ``laplace``, ``custom``): ``{"var": s^2}``,
  C = eps = N s^2.

:func:`tune_corruption` optimises them (per-component variances: one shared variance first, then all
D from it) and returns one :class:`CorruptionTuning` for every kind.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn import _corruption
from daedyn._checks import check_range
from daedyn.noise import Noise
from daedyn.spectrum import Spectrum
from daedyn.tune._config import ClosedFormRoute, DynamicsRoute, TrainRoute
from daedyn.tune._objective import _route_config, heldout_objective
from daedyn.tune._optimise import GridResult, TuneResult, grid_search, tune

__all__ = ["CorruptionTuning", "corruption_objective_fn", "tune_corruption", "coupled_route"]

_TUNABLE_KINDS = ("masking (rate p, inverted dropout)", "gaussian_covariance (per-component variances "
                  "(D,))", "gaussian / laplace / custom (isotropic variance)")


def coupled_route(route) -> bool:
    """Whether a route config integrates the whole (D, D) term (else its diagonal eps_j)."""
    return isinstance(route, TrainRoute) or (isinstance(route, DynamicsRoute) and route.init != "balanced")


def _as_config(route, epochs, structure: dict):
    if isinstance(route, ClosedFormRoute | DynamicsRoute | TrainRoute):
        return route
    return _route_config(route, epochs, structure)


# ----------------------------------------------------------------------------------------------
# The route's form of a term (generic), and the one per-kind dispatch point


def _route_form(c: Array, v: Array, coupled: bool) -> Array:
    """An input-basis term C (a scalar, a (D,) diagonal or a (D, D) matrix) in the form a route
    integrates: the whole V^T C V (coupled) or its diagonal [V^T C V]_jj; a scalar is isotropic."""
    if c.ndim == 0:
        return c
    if c.ndim == 1 and not coupled:
        return jnp.sum(v * v * c[:, None], axis=0)  # [V^T diag(c) V]_jj = sum_k V_kj^2 c_k
    b = _corruption.rotate_term(c, v)
    return b if coupled else jnp.diagonal(b)


def _split(params, key: str):
    return params[key], {k: a for k, a in params.items() if k != key}


def _odds_term(unit: Array, params: dict):
    """Masking: the term is linear in the odds r = p / (1 - p): r times the unit term (route form)."""
    odds, rest = _split(params, "odds")
    return jnp.asarray(odds, unit.dtype) * unit, rest


def _variances_term(v: Array, n: Array, coupled: bool, params: dict):
    var, rest = _split(params, "var")
    var = jnp.broadcast_to(jnp.asarray(var, v.dtype), v.shape[:1])  # a scalar: isotropic
    c = _corruption.GaussianCovariance(var).marginal_term(n=1.0, basis="input")  # diag(v) per sample
    return n * _route_form(c, v, coupled), rest  # C = N diag(v), linear in N


def _variances_diagonal(v, n, params):
    return _variances_term(v, n, False, params)


def _variances_coupled(v, n, params):
    return _variances_term(v, n, True, params)


def _isotropic_term(kind: str, sampler, n: Array, params: dict):
    var, rest = _split(params, "var")
    return Noise(kind, jnp.asarray(var, n.dtype), sampler).marginal_term(n=n), rest  # eps = N s^2


class _Param(NamedTuple):
    """How one kind of corruption is tuned: its params key, the name of its own parameter, the
    start, and the maps between the two."""

    key: str  # "odds" or "var": the positive leaf tune() optimises in log space
    name: str  # "p" or "var": the corruption's own parameter
    start: Any  # the start in the key's parametrisation
    to_noise: Any  # key's value -> corruption value
    natural: Any  # key's value -> the corruption's own parameter


def _odds(p):
    p = jnp.asarray(p)
    return p / (1 - p)


def _parametrisation(noise, d: int) -> _Param:
    """The one per-kind dispatch point: a :class:`_Param` for a tunable corruption value, or a
    ``ValueError`` naming why it is not tunable here."""
    if getattr(noise, "scheduled", False):
        raise ValueError(f"noise: a scheduled {noise.kind} has no single value to tune; pass the constant "
                         "corruption (schedules of eps: tune_schedule)")
    if isinstance(noise, _corruption.Masking):
        if not noise.rescale:
            raise ValueError("noise: masking with rescale=False (the raw mask) has no marginalised loss for "
                             "the trained W (its expected loss is that of W' = (1 - p) W, "
                             "docs/corruption.md): tune inverted dropout, masking(p)")
        rescale = noise.rescale
        return _Param("odds", "p", _odds(noise.p),
                      lambda r: _corruption.Masking(r / (1 + r), rescale),
                      lambda r: r / (1 + r))
    if isinstance(noise, _corruption.GaussianCovariance):
        shape = np.shape(noise.cov)
        if len(shape) != 1:
            raise ValueError(f"noise: gaussian_covariance is tuned as per-component variances (D,); got cov "
                             f"of shape {shape} (a full covariance has no positive parametrisation here)")
        if shape[0] != d:
            raise ValueError(f"noise: cov has D = {shape[0]} components but the data has {d}")
        return _Param("var", "var", noise.cov, _corruption.GaussianCovariance,
                      lambda v: v)
    if isinstance(noise, Noise):
        if np.ndim(noise.variance) != 0:
            raise ValueError(f"noise: {noise.kind} noise is tuned by its one variance (a scalar); got shape "
                             f"{np.shape(noise.variance)} (per-component variances: gaussian_covariance)")
        kind, sampler = noise.kind, noise.unit_sampler
        return _Param("var", "var", noise.variance, lambda v: Noise(kind, v, sampler), lambda v: v)
    what = getattr(noise, "kind", type(noise).__name__)
    raise ValueError(f"noise: {what!r} cannot be tuned: its parameters have no marginalised term here "
                     f"(salt-and-pepper is affine in x); tunable: {', '.join(_TUNABLE_KINDS)}")


def _term_fn(problem, noise, coupled: bool) -> jtu.Partial:
    """``term(params) -> (route-form term, other params)`` for the kind of ``noise``."""
    v = jnp.asarray(problem.eigvecs)
    n = jnp.asarray(problem.n, v.dtype)
    if isinstance(noise, _corruption.Masking):  # linear in the odds: the unit term (p = 1/2), once
        spec = Spectrum(jnp.asarray(problem.eigvals, v.dtype), v, problem.n)
        unit = _corruption.Masking(0.5, True).marginal_term(spec, basis="input")  # diag(Sigma)
        return jtu.Partial(_odds_term, _route_form(unit, v, coupled))
    if isinstance(noise, _corruption.GaussianCovariance):
        return jtu.Partial(_variances_coupled if coupled else _variances_diagonal, v, n)
    return jtu.Partial(_IsotropicTerm(noise.kind, noise.unit_sampler), n)


class _IsotropicTerm:
    """``(n, params) -> (eps, rest)`` for one kind of isotropic noise: hashable by its kind and
    sampler (static in a ``jtu.Partial``), so objectives of one kind share compilations."""

    def __init__(self, kind, sampler):
        self.kind, self.sampler = kind, sampler

    def __call__(self, n, params):
        return _isotropic_term(self.kind, self.sampler, n, params)

    def __eq__(self, other):
        return isinstance(other, _IsotropicTerm) and (self.kind, self.sampler) == (other.kind, other.sampler)

    def __hash__(self):
        return hash((self.kind, self.sampler))


def _params_of(c) -> dict:
    """A corruption value's params dict (the objective's argument), traceable."""
    if isinstance(c, _corruption.Masking):
        return {"odds": _odds(c.p)}
    if isinstance(c, _corruption.GaussianCovariance):
        return {"var": c.cov}
    if isinstance(c, Noise):
        return {"var": c.variance}
    raise ValueError(f"objective: params must be a dict or a corruption value; got {type(c).__name__}")


def _apply(base, term, params):
    eps, rest = term(params if isinstance(params, dict) else _params_of(params))
    return base({**rest, "eps": eps})


def corruption_objective_fn(problem, noise, *, epochs: ArrayLike | None, alpha: ArrayLike,
                            route: Any = "closed_form", eval_sigma2: ArrayLike = 0.0,
                            gamma: ArrayLike = 0.0, w0: ArrayLike = 1e-4, hidden: int | None = None,
                            init: Literal["balanced", "orthogonal", "random"] = "balanced",
                            key: Array | None = None, init_scale: float = 1e-4,
                            remat_every: int | None = None, precision: Any = None) -> jtu.Partial:
    """The held-out objective of a route as a function of a corruption's parameters.

    Args:
      problem: a :class:`~daedyn.tune.HeldoutProblem` with ``eigvecs`` (``heldout_problem(...,
        keep_data=True)``, the default).
      noise: a corruption value giving the kind (its parameters are not used: they are the
        objective's argument): ``noise.masking(p)`` (params ``{"odds": p / (1 - p)}``),
        ``noise.gaussian_covariance(v)`` with v of shape (D,) (params ``{"var": v}``, v (D,) or a
        scalar for isotropic noise), ``noise.gaussian(s2)`` / ``laplace`` / ``custom`` (params
        ``{"var": s2}``, a scalar).
      epochs, alpha, route, eval_sigma2, gamma, w0, hidden, init, key, init_scale, remat_every,
        precision: as :func:`~daedyn.tune.heldout_objective` (``route`` a name or a config);
        ``eval_sigma2 > 0`` for an interior optimum.
    Returns:
      ``objective(params) -> scalar``, pure (``jit``, ``grad``, ``vmap`` apply): ``params`` the dict
      above (its other keys, ``"gamma"``, ``"alpha"``, ..., override the defaults as in
      ``heldout_objective``) or a corruption value of the same kind (``objective(noise.masking(0.3))``).
    Raises:
      ValueError: for a corruption without a tunable marginalised term (salt-and-pepper, raw masking,
        a full (D, D) covariance, a schedule), a problem without eigenvectors, route "train" without
        ``marginalised=True`` and a linear network (the sampled draw has no gradient in the
        corruption's parameters), or as :func:`~daedyn.tune.heldout_objective`.
    Example:
      >>> import jax.numpy as jnp
      >>> from daedyn import noise
      >>> from daedyn.tune import HeldoutProblem
      >>> prob = HeldoutProblem(jnp.array([4.0, 1.0]), jnp.array([0.8, 0.2]), 10, 2, eigvecs=jnp.eye(2))
      >>> f = corruption_objective_fn(prob, noise.masking(0.2), epochs=1000.0, alpha=0.5, eval_sigma2=0.1)
      >>> bool(jnp.isclose(f({"odds": 0.25}), f(noise.masking(0.2))))
      True
    """
    what = getattr(noise, "kind", type(noise).__name__)
    if problem.eigvecs is None:
        raise ValueError(f"tuning {what} needs the train eigenvectors: build the problem with "
                         "heldout_problem(..., keep_data=True)")
    _parametrisation(noise, int(problem.eigvals.shape[-1]))  # a ValueError for an untunable corruption
    if isinstance(route, str) and epochs is None:
        raise ValueError("epochs is required (training time T in epochs, > 0)")
    structure = dict(hidden=hidden, init=init, marginalised=True, activation=None,
                     remat_every=remat_every, precision=precision)
    config = _as_config(route, epochs, structure)
    if isinstance(config, TrainRoute) and not (config.marginalised and config.activation is None):
        raise ValueError(f"tuning {what} through route 'train' needs a linear network on the "
                         "marginalised loss (TrainRoute(marginalised=True, activation=None)): a sampled "
                         "corruption has no gradient in its parameters")
    kw = {} if config is route else structure  # a name: the structure keywords build the config
    kw = {k: v for k, v in kw.items() if k not in ("marginalised", "activation")}
    base = heldout_objective(problem, epochs=epochs, alpha=alpha, route=route, gamma=gamma,
                             eval_sigma2=eval_sigma2, w0=w0, key=key, init_scale=init_scale, **kw)
    term = _term_fn(problem, noise, coupled_route(config))
    return jtu.Partial(_apply, base, term)


# ----------------------------------------------------------------------------------------------
# Tuning


class CorruptionTuning(NamedTuple):
    """Result of :func:`tune_corruption`, for every kind of corruption.

    Attributes:
      noise: the tuned corruption value itself (``masking(p)``, ``gaussian_covariance(v)``, ...).
      loss: the objective there.
      result: the optimiser's :class:`~daedyn.tune.TuneResult` of the last stage run, in the
        objective's parametrisation (``"odds"`` = p / (1 - p) for masking, ``"var"`` otherwise).
      objective: ``objective(params)`` every stage minimised (:func:`corruption_objective_fn`), to
        re-evaluate or to build the same objective on another split.
      grid: the grid baseline over the corruption's own parameter (``"p"``, or a shared ``"var"``)
        as a :class:`~daedyn.tune.GridResult` (None without a grid).
      shared: per-component variances: the shared-variance stage (None for the other kinds or with
        ``shared_first=False``); ``result is shared`` when it failed and the second did not run.
    """

    noise: Any
    loss: float
    result: TuneResult
    objective: Any
    grid: GridResult | None = None
    shared: TuneResult | None = None

    @property
    def _masking(self) -> bool:
        return isinstance(self.noise, _corruption.Masking)

    def _history(self) -> np.ndarray:
        """The corruption's own parameter at every evaluated iterate of :attr:`result`."""
        if not self._masking:
            return np.asarray(self.result.history.params["var"])
        h = np.asarray(self.result.history.params["odds"], np.float64)
        return np.asarray(jnp.asarray(h / (1 + h), jnp.asarray(self.noise.p).dtype))

    def natural(self) -> tuple[TuneResult, GridResult | None]:
        """The optimiser's result and the grid baseline over the corruption's own scalar parameter
        (masking: the rate ``p``, the optimiser ran in the odds p / (1 - p); a variance: ``var``):
        what :func:`daedyn.figures.plot_objective` draws with ``name="p"`` / ``"var"``.

        Raises:
          ValueError: for per-component variances (D parameters: no one axis to draw).
        """
        name = "p" if self._masking else "var"
        value = _params_of(self.noise)["odds" if self._masking else "var"]
        if np.ndim(value) != 0:
            raise ValueError(f"natural(): {self.noise.kind} has {np.size(value)} parameters; it gives one "
                             "scalar parameter's path (masking p, an isotropic variance)")
        res = self.result
        history = res.history._replace(params={name: self._history()})
        value = self.noise.p if self._masking else value
        return res._replace(params={name: np.asarray(value)}, history=history), self.grid

    def to_xarray(self):
        """The tuning as an ``xarray.Dataset``.

        Masking: the rate ``p`` at every evaluated iterate over ``step`` (with the optimiser's history
        in its own parameter, the odds p / (1 - p): ``odds``, ``grad_odds``, ``objective``,
        ``evals``), and the grid baseline ``grid_objective`` over the coordinate ``grid_p``.
        Attributes: the tuned ``p`` and its ``objective``, the grid's best ``grid_best_p`` /
        ``grid_best_objective``, and the optimiser's status.

        Per-component variances: the tuned ``variances`` over ``input`` (one per component of the
        data; not ``var``, which is ``Dataset.var``), the per-component stage's history over ``step``
        (its fields prefixed ``history_``: ``history_var`` over (``step``, ``input``),
        ``history_objective``, ...; absent when the shared stage failed) and the shared stage's over
        ``isotropic_step`` (prefixed ``isotropic_``). Attributes: both objectives, the best shared
        variance ``isotropic_var``, and the last stage's status.

        An isotropic variance: the optimiser's history over ``step`` and the tuned ``variance``.
        A grid over a variance: ``grid_objective`` over ``grid_var``.

        Raises:
          ImportError: xarray (the ``sweep`` extra) is not installed.
        """
        from daedyn._xarray import dataset

        what = "CorruptionTuning.to_xarray"
        if self._masking:
            return self._masking_dataset(dataset, what)
        fields, coords, attrs = {}, {}, {}
        if isinstance(self.noise, _corruption.GaussianCovariance):
            fields["variances"] = (np.asarray(self.noise.cov), ("input",))
            dims, prefix, step = {"var": ("input",)}, "history_", "step"
        else:
            attrs["variance"] = float(np.asarray(self.noise.variance))
            dims, prefix, step = None, "", "step"
        last = self.result
        if self.shared is not None:
            fields.update(self.shared.history_fields(step="isotropic_step", prefix="isotropic_"))
            coords["isotropic_step"] = np.arange(len(self.shared.history.objective))
        if self.result is not self.shared:
            fields.update(self.result.history_fields(dims=dims, prefix=prefix, step=step))
            coords[step] = np.arange(len(self.result.history.objective))
        attrs = {**last.summary(), "objective": float(self.loss), **attrs}
        if self.shared is not None:
            dtype = np.asarray(self.noise.cov).dtype
            attrs["isotropic_var"] = float(np.asarray(jnp.asarray(self.shared.params["var"], dtype)))
            attrs["isotropic_objective"] = float(self.shared.objective)
        if self.grid is not None:
            fields["grid_objective"] = (np.asarray(self.grid.values), ("grid_var",))
            coords["grid_var"] = np.asarray(self.grid.grid["var"])
            attrs.update(grid_best_var=float(np.asarray(self.grid.params["var"])),
                         grid_best_objective=float(self.grid.objective))
        return dataset(fields, coords=coords, attrs=attrs, what=what)

    def _masking_dataset(self, dataset, what):
        hp = self._history()
        p = jnp.asarray(self.noise.p)
        fields = {"p": (hp, ("step",))}
        attrs = {"p": float(p), "objective": float(jnp.asarray(self.loss, p.dtype))}
        coords = {}
        fields.update(self.result.history_fields())
        attrs.update(self.result.summary())
        if self.grid is not None:
            grid_loss = np.asarray(self.grid.values, np.float64)
            fields["grid_objective"] = (np.asarray(self.grid.values), ("grid_p",))
            coords["grid_p"] = np.asarray(self.grid.grid["p"])
            if np.any(np.isfinite(grid_loss)):
                i = int(np.nanargmin(np.where(np.isfinite(grid_loss), grid_loss, np.nan)))
                attrs.update(grid_best_p=float(coords["grid_p"][i]), grid_best_objective=float(grid_loss[i]))
        return dataset(fields, time=("step", np.arange(hp.shape[0])), coords=coords, attrs=attrs, what=what)


def _check_start(noise) -> None:
    if isinstance(noise, _corruption.Masking):
        check_range("p", noise.p, 0.0, 1.0, lo_open=True, hi_open=True)  # logit p must be finite
    elif isinstance(noise, _corruption.GaussianCovariance):
        check_range("cov", noise.cov, 0.0, lo_open=True)  # log v must be finite
    else:
        check_range("variance", noise.variance, 0.0, lo_open=True)


def _grid(noise, grid, param: _Param, f, dtype) -> GridResult | None:
    """The grid baseline over the corruption's own parameter (rates p, or shared variances)."""
    if grid is None:
        if not isinstance(noise, _corruption.Masking):
            return None
        grid = np.linspace(0.01, 0.99, 99)
    grid = np.asarray(grid, np.float64)
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError(f"grid must be a non-empty 1-D array of {param.name} values; got shape {grid.shape}")
    if isinstance(noise, _corruption.Masking):
        check_range("grid", grid, 0.0, 1.0, lo_open=True, hi_open=True)
        g = grid_search(f, {"odds": grid / (1 - grid)})
    else:
        check_range("grid", grid, 0.0, lo_open=True)
        g = grid_search(f, {"var": grid})
    values, points = jnp.asarray(g.values, dtype), jnp.asarray(grid, dtype)
    loss = np.asarray(values, np.float64)
    i = int(np.argmin(np.where(np.isfinite(loss), loss, np.inf)))
    return GridResult({param.name: points[i]}, float(loss[i]), values, {param.name: points}, int(loss.size),
                      "ok" if np.all(np.isfinite(loss)) else "nonfinite")


def tune_corruption(problem, noise, *, epochs: ArrayLike | None, alpha: ArrayLike,
                    route: Any = "closed_form", eval_sigma2: ArrayLike = 0.0, gamma: ArrayLike = 0.0,
                    w0: ArrayLike = 1e-4, hidden: int | None = None,
                    init: Literal["balanced", "orthogonal", "random"] = "balanced", key: Array | None = None,
                    init_scale: float = 1e-4, remat_every: int | None = None, precision: Any = None,
                    max_steps: int = 100, optimizer: Any = None, grid: ArrayLike | None = None,
                    shared_first: bool = True) -> CorruptionTuning:
    """Tune a corruption's parameters by gradient descent through a route, from the value given.

    The optimiser (:func:`~daedyn.tune.tune`, default L-BFGS) works in the log of the positive
    parametrisation (:func:`corruption_objective_fn`): logit p for masking, log v for variances.

    - masking: the rate p from ``noise.p``, against a grid of rates (default 99 points
      0.01 ... 0.99).
    - per-component variances (``gaussian_covariance(v)``, v (D,)): with ``shared_first`` (the
      default), one shared variance first (isotropic noise, from the mean of v), then all D from that
      optimum; the second stage starts where the objective equals the shared optimum and ``tune``
      never returns a worse point than its start, so the result is never worse than the best
      isotropic noise on the tuning split. ``shared_first=False``: the D variances from v directly.
    - isotropic noise (``gaussian(s2)``, ...): its variance.

    Args:
      problem, noise, epochs, alpha, route, eval_sigma2, gamma, w0, hidden, init, key, init_scale,
        remat_every, precision: as :func:`corruption_objective_fn`; ``noise`` is also the start
        (p in (0, 1); variances > 0).
      max_steps, optimizer: per stage, as :func:`~daedyn.tune.tune` (``max_steps`` >= 1).
      grid: values of the corruption's own scalar parameter for the baseline: rates in (0, 1)
        (masking; default 99 rates 0.01 ... 0.99) or shared variances > 0 (default none).
      shared_first: per-component variances only (see above).
    Returns:
      :class:`CorruptionTuning`.
    Raises:
      ValueError: for a start outside the parameter's open range (``p``, ``cov``, ``variance``), a
        grid outside it, or as :func:`corruption_objective_fn`.
    Example:
      >>> import jax.numpy as jnp
      >>> from daedyn import noise
      >>> from daedyn.tune import HeldoutProblem
      >>> prob = HeldoutProblem(jnp.array([4.0, 1.0]), jnp.array([0.8, 0.2]), 10, 2, eigvecs=jnp.eye(2))
      >>> r = tune_corruption(prob, noise.masking(0.2), epochs=1000.0, alpha=0.5, eval_sigma2=0.1)
      >>> round(float(r.noise.p), 3), round(float(r.grid.params["p"]), 2)  # tuned vs grid
      (0.286, 0.29)
    """
    d = int(problem.eigvals.shape[-1])
    param = _parametrisation(noise, d)
    f = corruption_objective_fn(problem, noise, epochs=epochs, alpha=alpha, route=route,
                                eval_sigma2=eval_sigma2, gamma=gamma, w0=w0, hidden=hidden, init=init,
                                key=key, init_scale=init_scale, remat_every=remat_every,
                                precision=precision)
    _check_start(noise)
    if not isinstance(shared_first, bool):
        raise ValueError(f"shared_first must be True or False; got {shared_first!r}")
    dtype = problem.eigvals.dtype
    baseline = _grid(noise, grid, param, f, dtype)
    kw = dict(optimizer=optimizer, max_steps=max_steps)
    shared = None
    if isinstance(noise, _corruption.Masking):
        p0 = float(noise.p)
        res = tune(f, {"odds": p0 / (1 - p0)}, **kw)
    elif isinstance(noise, _corruption.GaussianCovariance) and shared_first:
        shared = tune(f, {"var": float(np.mean(np.asarray(noise.cov, np.float64)))}, **kw)
        v_shared = jnp.asarray(shared.params["var"], dtype)
        if not shared.success:
            return CorruptionTuning(param.to_noise(jnp.full((d,), v_shared)), shared.objective, shared, f,
                                    baseline, shared)
        res = tune(f, {"var": np.full((d,), float(v_shared))}, **kw)
    else:
        res = tune(f, {param.key: np.asarray(param.start, np.float64)}, **kw)
    value = jnp.asarray(res.params[param.key], dtype)
    return CorruptionTuning(param.to_noise(value), res.objective, res, f, baseline, shared)
