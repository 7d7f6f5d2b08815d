"""Tuning a noise schedule: K piece values of eps(t) (optionally gamma(t)) by gradient.

The objective is the held-out loss of :mod:`daedyn.tune._routes` after ``epochs`` epochs of training
under a piecewise-constant schedule with K equal pieces on [0, T]:

    J(eps_1..K) = 1/(2M) [ sum_j (1 - w_j(T))^2 p_j + eps_eval sum_j w_j(T)^2 ],

with ``w_j(T)`` from the exact chained closed form (route "closed_form",
:func:`daedyn.theory.small_init_trajectory` with a schedule) or from the scheduled gradient-descent
recursion (route "dynamics", :func:`daedyn.dynamics.scalar_gd`, step k uses eps(k)). Positivity is
kept by optimising log-values (:func:`daedyn.tune.tune`), with any optax optimiser (default L-BFGS).

:func:`tune_schedule` first finds the best *constant* eps (a log grid, then :func:`tune` from its
best point) and starts the schedule there (every piece at the constant optimum, where both
objectives agree), so the tuned schedule is never worse than the best constant; its report is the
schedule, the objective and the improvement over that constant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn import dynamics, schedules, theory
from daedyn._checks import check_int, check_range
from daedyn.tune._optimise import TuneResult, grid_search, tune
from daedyn.tune._routes import _loss, check_hidden, hidden_mask, spectral_data

__all__ = ["ScheduleRoute", "ScheduleTuning", "schedule_objective_fn", "tune_schedule", "even_boundaries",
           "schedule_heldout_curve"]


def even_boundaries(epochs: float, pieces: int) -> np.ndarray:
    """The K - 1 boundaries of K equal pieces on [0, epochs] (rounded to whole epochs for GD).

    Example:
      >>> even_boundaries(100, 4).tolist()
      [25.0, 50.0, 75.0]
    """
    return np.round(np.arange(1, pieces) * (float(epochs) / pieces))


@dataclasses.dataclass(frozen=True)
class ScheduleRoute:
    """Static structure of a schedule objective.

    Attributes:
      pieces: number K of schedule pieces, >= 1 (K = 1: a constant eps).
      epochs: training time T in epochs, > 0 (a whole number for ``route="dynamics"``).
      route: "closed_form" (exact chained flow), "dynamics" (the GD recursion, step k uses eps(k)) or
        "train" (full-batch training of a linear DAE on the marginalised loss, epoch k with eps(k)
        (and gamma(k), alpha(k) with ``tune_gamma`` / ``tune_alpha``), from weights drawn with the
        objective's ``key``; ``per_direction`` needs the marginalised linear network, whose
        training takes the diagonal term diag(eps_j) of each piece in the eigenbasis).
      per_direction: one schedule per eigen-direction (eps of shape (K, D)) instead of one (K,).
      tune_gamma: gamma is a K-piece schedule too (params["gamma"], (K,)).
      hidden: hidden units H (directions j >= H stay 0); None means H = D.
      tune_alpha: the learning rate is a K-piece schedule too (params["alpha"], (K,); step k uses
        alpha(k) on route "dynamics", tau = N / alpha(t) per piece in the closed form).
      alpha_max: with ``tune_alpha``, bound the learning rate by reparametrisation:
        alpha = alpha_max u / (1 + u) for the positive parameter u (alpha_max sigmoid(log u); e.g.
        the GD stability edge N / lam_1); None: positivity only (alpha = u).
      tune_epochs: the training time T is tuned too (params["epochs"], a scalar > 0; the K pieces
        stay equal, T / K each); route "closed_form" only (GD takes a whole number of steps).
    """

    pieces: int
    epochs: float
    route: Literal["closed_form", "dynamics", "train"] = "closed_form"
    per_direction: bool = False
    tune_gamma: bool = False
    hidden: int | None = None
    tune_alpha: bool = False
    alpha_max: float | None = None
    tune_epochs: bool = False

    def __post_init__(self):
        check_int("pieces", self.pieces, 1)
        check_range("epochs", self.epochs, 0.0, lo_open=True)
        if self.pieces > max(1.0, float(self.epochs)):  # a piece shorter than an epoch is never trained
            raise ValueError(f"pieces must be an integer in [1, epochs = {self.epochs:g}] (each piece at "
                             f"least one epoch); got {self.pieces}")
        if self.route not in ("closed_form", "dynamics", "train"):
            raise ValueError(f"route must be 'closed_form', 'dynamics' or 'train'; got {self.route!r}")
        if self.route != "closed_form" and float(self.epochs) != int(self.epochs):
            raise ValueError(f"epochs must be a whole number on route {self.route!r}; got {self.epochs}")

        if self.alpha_max is not None:
            check_range("alpha_max", self.alpha_max, 0.0, lo_open=True)
        if self.tune_epochs and self.route != "closed_form":
            raise ValueError("tune_epochs needs route 'closed_form' (the GD recursion takes a whole, static "
                             "number of steps)")


@dataclasses.dataclass(frozen=True)
class _Bound:
    route: ScheduleRoute

    def __call__(self, data, fixed, params) -> Array:
        return _schedule_loss(self.route, data, fixed, params)


@dataclasses.dataclass(frozen=True)
class _TrainBound:
    """Route "train": the K eps pieces as a schedule of the training loop (``_train_route``)."""

    route: ScheduleRoute
    config: Any  # the TrainRoute that builds and runs the network

    def __call__(self, data, fixed, params) -> Array:
        from daedyn.tune._config import Hyperparams
        from daedyn.tune._train_route import _train_loss

        dt = data.n.dtype
        r = self.route
        b = jnp.asarray(even_boundaries(r.epochs, r.pieces), dt)
        piecewise = lambda v: schedules.PiecewiseConstant(b, jnp.asarray(v, dt))
        eps_values = jnp.asarray(params["eps"], dt)
        if r.per_direction:  # (K, D): per piece the (D, D) term diag(eps_j) in the eigenbasis
            eps_values = jax.vmap(jnp.diag)(eps_values)
        eps = piecewise(eps_values)
        gamma = piecewise(params["gamma"]) if r.tune_gamma else fixed["gamma"]
        alpha = piecewise(alpha_of(r, params["alpha"])) if r.tune_alpha else fixed["alpha"]
        hyper = Hyperparams(eps=eps, alpha=alpha, gamma=gamma, w0=fixed["w0"], eps_eval=fixed["eps_eval"])
        return _train_loss(self.config, data, hyper)


def alpha_of(route: ScheduleRoute, u: ArrayLike) -> Array:
    """The learning rate of the positive parameter ``u``: ``alpha_max u / (1 + u)`` with a bound, else u."""
    u = jnp.asarray(u)
    return u if route.alpha_max is None else route.alpha_max * u / (1 + u)


def _schedule_loss(route: ScheduleRoute, data, fixed, params) -> Array:
    lam = data.eigvals
    dt = lam.dtype
    if route.tune_epochs:  # K equal pieces of the tuned T: traced boundaries
        t_end = jnp.asarray(params["epochs"], dt)
        b = t_end * jnp.arange(1, route.pieces, dtype=dt) / route.pieces
    else:
        t_end = jnp.asarray(route.epochs, dt)
        b = jnp.asarray(even_boundaries(route.epochs, route.pieces), dt)
    eps = schedules.PiecewiseConstant(b, jnp.asarray(params["eps"], dt))
    gamma = (schedules.PiecewiseConstant(b, jnp.asarray(params["gamma"], dt)) if route.tune_gamma
             else fixed["gamma"])
    alpha = (schedules.PiecewiseConstant(b, alpha_of(route, jnp.asarray(params["alpha"], dt)))
             if route.tune_alpha else fixed["alpha"])
    if route.route == "closed_form" and route.tune_alpha:
        # a learning-rate schedule of the flow is a change of clock (docs/schedules.md): the run under
        # tau(t) = N / alpha(t) is the tau = 1 run read at s(T) = sum_i alpha_i len_i / N, with the eps
        # and gamma pieces ending at s(b_i). One set of K pieces: passed as a separate tau schedule,
        # its boundaries are merged with eps's (2K - 1 pieces) and the gradient in tau costs 7-30
        # objective evaluations at K = 64 (benchmarks/hypergradient.py), 2-3 this way
        ends = jnp.cumsum(jnp.diff(jnp.concatenate([jnp.zeros((1,), dt), b, t_end[None]])) * alpha.values
                          / data.n)
        eps = schedules.PiecewiseConstant(ends[:-1], eps.values)
        if route.tune_gamma:
            gamma = schedules.PiecewiseConstant(ends[:-1], gamma.values)
        w = theory.small_init_trajectory(ends[-1], lam, eps, gamma, w0=fixed["w0"], tau=jnp.ones((), dt),
                                         n=data.n)
    elif route.route == "closed_form":
        w = theory.small_init_trajectory(t_end, lam, eps, gamma, w0=fixed["w0"], tau=data.n / fixed["alpha"],
                                         n=data.n)
    else:
        u = jnp.sqrt(fixed["w0"]) * hidden_mask(lam.shape[-1], route.hidden, dt)
        w = dynamics.scalar_gd(lam, eps, u, u, alpha=alpha, gamma=gamma, n=data.n,
                               epochs=int(route.epochs), save_every=int(route.epochs),
                               check_stability=False, observables=("w",)).w[..., -1]
    w = w * hidden_mask(lam.shape[-1], route.hidden, dt)
    return _loss(w, data.projected, data.n_heldout, fixed["eps_eval"])


def schedule_objective_fn(problem, route: ScheduleRoute, *, alpha: ArrayLike, gamma: ArrayLike = 0.0,
                          w0: ArrayLike = 1e-6, eval_sigma2: ArrayLike = 0.0, key: Array | None = None,
                          init_scale: ArrayLike = 1e-4) -> jtu.Partial:
    """Held-out loss after training under a K-piece eps schedule, as a pure function of its values.

    Args:
      problem: a :class:`~daedyn.tune.HeldoutProblem`.
      route: the static structure (:class:`ScheduleRoute`).
      alpha: learning rate, > 0 (tau = N / alpha); gamma: weight decay, >= 0 (when not tuned);
      w0: initial per-direction mapping, > 0; eval_sigma2: noise variance of the held-out inputs.
      key, init_scale: route "train": PRNG key and standard deviation of the initial weights (the
        problem must hold its data: ``heldout_problem(..., keep_data=True)``).
    Returns:
      ``objective(params) -> scalar`` with ``params = {"eps": (K,) or (K, D)[, "gamma": (K,)]
      [, "alpha": (K,) positive u, alpha = alpha_of(route, u)][, "epochs": T]}``;
      pure (``jax.grad``, ``jax.vmap`` apply), to pass to :func:`daedyn.tune.tune`.
    Raises:
      ValueError: for out-of-range settings or an empty held-out set.
    Example:
      >>> from daedyn.tune import problem_from_spectrum
      >>> p = problem_from_spectrum([4.0, 1.0], [2.0, 0.5], n=10, n_heldout=5)
      >>> f = schedule_objective_fn(p, ScheduleRoute(pieces=2, epochs=1e3), alpha=0.1, eval_sigma2=0.1)
      >>> bool(f({"eps": jnp.array([1.0, 1.0])}) < f({"eps": jnp.array([100.0, 100.0])}))
      True
    """
    check_hidden(route, int(problem.eigvals.shape[-1]))
    check_range("alpha", alpha, 0.0, lo_open=True)
    check_range("gamma", gamma, 0.0)
    check_range("w0", w0, 0.0, lo_open=True)
    check_range("eval_sigma2", eval_sigma2, 0.0)
    data = spectral_data(problem)
    dt = data.eigvals.dtype
    fixed = dict(alpha=jnp.asarray(alpha, dt), gamma=jnp.asarray(gamma, dt), w0=jnp.asarray(w0, dt),
                 eps_eval=jnp.asarray(problem.n_heldout * jnp.asarray(eval_sigma2), dt))
    if route.route == "train":
        from daedyn.tune._config import TrainRoute
        from daedyn.tune._train_route import train_data

        config = TrainRoute(epochs=int(route.epochs), hidden=route.hidden)
        tdata = train_data(problem, config, key=key, init_scale=init_scale)
        return jtu.Partial(_TrainBound(route, config), tdata, fixed)
    return jtu.Partial(_Bound(route), data, fixed)


class ScheduleTuning(NamedTuple):
    """Outcome of :func:`tune_schedule`.

    Attributes:
      schedule: the tuned :class:`daedyn.schedules.PiecewiseConstant` of eps (values (K,) or (K, D)).
      gamma_schedule: the tuned gamma schedule (None unless ``tune_gamma``).
      objective: held-out objective of the tuned schedule.
      constant_eps: the best constant eps found (log grid + L-BFGS).
      constant_objective: its objective.
      improvement: 1 - objective / constant_objective (>= 0; the relative gain of the schedule).
      result: the :class:`~daedyn.tune.TuneResult` of the schedule stage (history, evaluations).
      constant: the :class:`~daedyn.tune.TuneResult` of the constant stage.
      objective_fn: the schedule objective (for re-evaluation, e.g. on another held-out split).
      alpha_schedule: the tuned learning-rate schedule (values are alpha itself, after the
        ``alpha_max`` reparametrisation; None unless ``tune_alpha``).
      epochs: the training time T of the schedules (the tuned one with ``tune_epochs``).
    """

    schedule: Any
    gamma_schedule: Any
    objective: float
    constant_eps: float
    constant_objective: float
    improvement: float
    result: TuneResult
    constant: TuneResult
    objective_fn: Callable
    alpha_schedule: Any = None
    epochs: float | None = None

    def heldout_curve(self, ts: ArrayLike) -> tuple[Array, Array]:
        """The held-out objective over training time ``ts`` under the tuned schedule and under the
        best constant (:func:`schedule_heldout_curve`)."""
        return schedule_heldout_curve(self, ts)

    def to_xarray(self):
        """The tuned schedule and both stages' histories as an ``xarray.Dataset``.

        ``schedule_eps`` over ``piece`` (and ``direction`` for a per-direction schedule), with the
        coordinates ``piece_start`` / ``piece_end`` (epochs) along ``piece``; ``schedule_gamma`` and
        ``schedule_alpha`` when tuned; the schedule stage's history over ``step``
        (:meth:`TuneResult.to_xarray`: ``eps``, ``grad_eps``, ``best_eps``, ``objective``, ``evals``;
        ``alpha`` there is the optimised parameter, the learning rate after the ``alpha_max``
        reparametrisation is ``schedule_alpha``); the constant stage's over ``constant_step``
        (``constant_eps``, ``constant_objective``). Attributes: the objectives, ``improvement``,
        ``epochs`` (T), the best constant eps and the schedule stage's status.

        Raises:
          ImportError: xarray (the ``sweep`` extra) is not installed.
        """
        from daedyn._xarray import dataset

        values = np.asarray(self.schedule.values)
        piece = ("piece",) + (("direction",) if values.ndim == 2 else ())
        k = values.shape[0]
        bounds = np.asarray(self.schedule.boundaries, np.float64)
        t_end = np.nan if self.epochs is None else float(self.epochs)
        edges = np.concatenate([[0.0], bounds, [t_end]])
        fields = {"schedule_eps": (values, piece)}
        for name, sched in (("gamma", self.gamma_schedule), ("alpha", self.alpha_schedule)):
            if sched is not None:
                fields[f"schedule_{name}"] = (np.asarray(sched.values), ("piece",))
        fields.update(self.result.history_fields(dims={"eps": piece, "gamma": ("piece",),
                                                       "alpha": ("piece",)}))
        const = self.constant.history
        fields["constant_eps"] = (np.asarray(const.params["eps"]).reshape(len(const.objective)),
                                  ("constant_step",))
        fields["constant_objective"] = (np.asarray(const.objective), ("constant_step",))
        attrs = {**self.result.summary(), "objective": float(self.objective),
                 "best_constant_eps": float(self.constant_eps),
                 "best_constant_objective": float(self.constant_objective),
                 "improvement": float(self.improvement), "epochs": t_end, "pieces": int(k),
                 "per_direction": int(values.ndim == 2)}
        coords = {"piece": np.arange(k), "piece_start": ("piece", edges[:-1]),
                  "piece_end": ("piece", edges[1:]), "constant_step": np.arange(len(const.objective))}
        return dataset(fields, time=("step", np.arange(len(self.result.history.objective))), coords=coords,
                       attrs=attrs, what="ScheduleTuning.to_xarray")


def tune_schedule(problem, *, pieces: int, epochs: float, alpha: ArrayLike, gamma: ArrayLike = 0.0,
                  w0: ArrayLike = 1e-6, eval_sigma2: ArrayLike = 0.0, route: str = "closed_form",
                  per_direction: bool = False, tune_gamma: bool = False, hidden: int | None = None,
                  eps_range: tuple[float, float] | None = None, optimizer: Any = None,
                  max_steps: int = 200, tune_alpha: bool = False, alpha_max: float | None = None,
                  tune_epochs: bool = False, key: Array | None = None,
                  init_scale: ArrayLike = 1e-4) -> ScheduleTuning:
    """Tune a K-piece noise schedule eps(t) on a held-out objective and compare it with the best
    constant eps.

    Stage 1: the best constant eps, from a 61-point log grid over ``eps_range`` refined by
    :func:`daedyn.tune.tune`. Stage 2: :func:`daedyn.tune.tune` (L-BFGS by default, in log-values) of
    the K piece values (``(K, D)`` with ``per_direction``; plus K gamma values with ``tune_gamma``,
    K learning rates with ``tune_alpha`` and the training time T with ``tune_epochs``: the joint
    (eps, gamma, alpha, T) problem) from every piece at the constant optimum (and the given gamma,
    alpha, T), so the result is never worse than the constant.

    Args:
      problem: a :class:`~daedyn.tune.HeldoutProblem` (train spectrum, held-out projections).
      pieces: K, >= 1; the pieces split [0, epochs] evenly (:func:`even_boundaries`).
      epochs, alpha, gamma, w0, eval_sigma2, route, per_direction, tune_gamma, hidden: see
        :class:`ScheduleRoute` and :func:`schedule_objective_fn`.
      eps_range: the constant stage's grid range (default ``(1e-3 N, 10 N)``).
      optimizer, max_steps: for :func:`daedyn.tune.tune`.
      tune_alpha, alpha_max, tune_epochs: see :class:`ScheduleRoute` (the bounded learning rate
        starts at ``alpha``, which must be < ``alpha_max``).
      key, init_scale: route "train" (see :func:`schedule_objective_fn`); both stages train from the
        same initial weights.
    Returns:
      :class:`ScheduleTuning`.
    Raises:
      ValueError: for out-of-range settings (naming them).
    """
    r = ScheduleRoute(pieces=pieces, epochs=epochs, route=route, per_direction=per_direction,
                      tune_gamma=tune_gamma, hidden=hidden, tune_alpha=tune_alpha, alpha_max=alpha_max,
                      tune_epochs=tune_epochs)
    if tune_alpha and alpha_max is not None and not float(np.max(np.asarray(alpha))) < alpha_max:
        raise ValueError(f"alpha must be < alpha_max = {alpha_max} (the start of the bounded learning-rate "
                         f"schedule); got {alpha}")
    kw = dict(alpha=alpha, gamma=gamma, w0=w0, eval_sigma2=eval_sigma2)
    if route == "train":
        kw.update(key=key, init_scale=init_scale)
    const_fn = schedule_objective_fn(problem, dataclasses.replace(r, pieces=1, per_direction=False,
                                                                  tune_gamma=False, tune_alpha=False,
                                                                  tune_epochs=False), **kw)
    lo, hi = eps_range if eps_range is not None else (1e-3 * problem.n, 10.0 * problem.n)
    check_range("eps_range", np.asarray([lo, hi]), 0.0, lo_open=True)
    grid = grid_search(lambda p: const_fn({"eps": p["eps"][None]}), {"eps": np.geomspace(lo, hi, 61)})
    const = tune(const_fn, {"eps": np.asarray([float(grid.params["eps"])])}, optimizer=optimizer,
                 max_steps=max_steps)
    eps_c = float(np.asarray(const.params["eps"])[0])
    d = int(problem.eigvals.shape[-1])
    fn = schedule_objective_fn(problem, r, **kw)
    init = {"eps": np.full((pieces, d) if per_direction else (pieces,), eps_c)}
    if tune_gamma:
        g0 = float(np.max(np.asarray(gamma)))
        init["gamma"] = np.full((pieces,), g0 if g0 > 0 else 1e-6)  # log-parameters need > 0
    if tune_alpha:  # u such that alpha_of(u) = alpha: every piece at the given rate
        a0 = float(np.max(np.asarray(alpha)))
        init["alpha"] = np.full((pieces,), a0 if alpha_max is None else a0 / (alpha_max - a0))
    if tune_epochs:
        init["epochs"] = np.asarray(float(epochs))
    res = tune(fn, init, optimizer=optimizer, max_steps=max_steps)
    t_end = float(np.asarray(res.params["epochs"])) if tune_epochs else float(epochs)
    b = (t_end * np.arange(1, pieces) / pieces) if tune_epochs else even_boundaries(epochs, pieces)
    sched = schedules.piecewise_constant(b, np.asarray(res.params["eps"]))
    gsched = schedules.piecewise_constant(b, np.asarray(res.params["gamma"])) if tune_gamma else None
    asched = (schedules.piecewise_constant(b, np.asarray(alpha_of(r, res.params["alpha"])))
              if tune_alpha else None)
    improvement = 1.0 - res.objective / const.objective
    return ScheduleTuning(sched, gsched, float(res.objective), eps_c, float(const.objective),
                          float(improvement), res, const, fn, asched, t_end)


def schedule_heldout_curve(tuning: ScheduleTuning, ts: ArrayLike) -> tuple[Array, Array]:
    """Held-out objective over training time under the tuned schedule and under the best constant.

    Evaluates the same objective as the tuning (closed form, the problem and settings of
    ``tuning.objective_fn``) at every time in ``ts`` instead of at T only: the curves a figure
    draws. (The schedule's pieces keep their times; past T the last piece continues.)

    Args:
      tuning: a :class:`ScheduleTuning` (route "closed_form" or "dynamics": both are drawn with the
        closed form, the flow).
      ts: (S,) times in epochs, >= 0.
    Returns:
      ``(J_schedule(ts), J_constant(ts))``, each (S,).
    """
    check_range("ts", ts, 0.0)
    if isinstance(tuning.objective_fn.func, _TrainBound):
        raise ValueError("schedule_heldout_curve draws the closed form of a spectral objective; a tuning on "
                         "route 'train' has no spectrum to draw it from (tune on 'closed_form' to draw)")
    data, fixed = tuning.objective_fn.args
    route = tuning.objective_fn.func.route
    lam = data.eigvals
    dt = lam.dtype
    t = jnp.asarray(ts, dt)[:, None]
    mask = hidden_mask(lam.shape[-1], route.hidden, dt)
    gamma = tuning.gamma_schedule if tuning.gamma_schedule is not None else fixed["gamma"]
    a = tuning.alpha_schedule
    tau = (schedules.PiecewiseConstant(jnp.asarray(a.boundaries, dt), data.n / jnp.asarray(a.values, dt))
           if a is not None else data.n / fixed["alpha"])

    def curve(eps, tau):
        w = theory.small_init_trajectory(t, lam, eps, gamma, w0=fixed["w0"], tau=tau, n=data.n)
        return jax.vmap(lambda wt: _loss(wt * mask, data.projected, data.n_heldout, fixed["eps_eval"]))(w)

    return curve(tuning.schedule, tau), curve(jnp.asarray(tuning.constant_eps, dt), data.n / fixed["alpha"])
