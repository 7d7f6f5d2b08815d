"""Tuning the masking rate p through any route of the held-out objective, against a grid.

Inverted-dropout masking with rate p has the marginalised term C = p / (1 - p) diag(Sigma)
(docs/corruption.md): linear in the odds r = p / (1 - p). The objective is the route's held-out
objective with that term (:func:`~daedyn.tune._corruption.corruption_objective_fn`): the diagonal
eps_j(p) = r [V^T diag(Sigma) V]_jj on the per-direction routes (closed form; dynamics from a
balanced start), the whole coupled V^T C V on the matrix dynamics (``init="orthogonal"`` /
``"random"``) and on training (a linear network on the marginalised loss). The rate is optimised
by :func:`~daedyn.tune.tune` in log r = logit p (every p in (0, 1) reachable, no clipping) and
checked against :func:`~daedyn.tune.grid_search` over p.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import check_int, check_range
from daedyn.tune._corruption import corruption_objective_fn
from daedyn.tune._optimise import GridResult, TuneResult, grid_search, tune

__all__ = ["MaskingTuning", "masking_objective_fn", "tune_masking"]


class MaskingTuning(NamedTuple):
    """Result of :func:`tune_masking`.

    Attributes:
      p: the tuned rate. loss: the objective there.
      grid_p, grid_loss: the grid and its objective values (the baseline).
      history_p: the rate at each evaluated iterate (the start first).
      result: the optimiser's :class:`~daedyn.tune.TuneResult` (parameter ``"odds"`` = p / (1 - p)).
    """

    p: Array
    loss: Array
    grid_p: Array
    grid_loss: Array
    history_p: Array
    result: TuneResult | None = None

    def to_xarray(self):
        """The tuning as an ``xarray.Dataset``: the rate ``p`` at every evaluated iterate over
        ``step`` (with the optimiser's history in its own parameter, the odds p / (1 - p):
        ``odds``, ``grad_odds``, ``objective``, ``evals``), and the grid baseline
        ``grid_objective`` over the coordinate ``grid_p``. Attributes: the tuned ``p`` and its
        ``objective``, the grid's best ``grid_best_p`` / ``grid_best_objective``, and the
        optimiser's status.

        Raises:
          ImportError: xarray (the ``sweep`` extra) is not installed.
        """
        from daedyn._xarray import dataset

        hp = np.asarray(self.history_p)
        fields = {"p": (hp, ("step",)), "grid_objective": (np.asarray(self.grid_loss), ("grid_p",))}
        attrs = {"p": float(self.p), "objective": float(self.loss)}
        if self.result is not None:
            fields.update(self.result.history_fields())
            attrs.update(self.result.summary())
        grid_loss = np.asarray(self.grid_loss, np.float64)
        if np.any(np.isfinite(grid_loss)):
            i = int(np.nanargmin(np.where(np.isfinite(grid_loss), grid_loss, np.nan)))
            attrs.update(grid_best_p=float(np.asarray(self.grid_p)[i]),
                         grid_best_objective=float(grid_loss[i]))
        return dataset(fields, time=("step", np.arange(hp.shape[0])),
                       coords={"grid_p": np.asarray(self.grid_p)}, attrs=attrs,
                       what="MaskingTuning.to_xarray")

    def as_p(self) -> tuple[TuneResult, GridResult]:
        """The optimiser's result and the grid baseline over the rate ``p`` itself (the optimiser
        ran in the odds p / (1 - p)): what :func:`daedyn.figures.plot_objective` draws with
        ``name="p"``."""
        res = self.result
        history = res.history._replace(params={"p": np.asarray(self.history_p)})
        tuned = res._replace(params={"p": np.asarray(self.p)}, history=history)
        grid_loss = np.asarray(self.grid_loss, np.float64)
        i = int(np.argmin(np.where(np.isfinite(grid_loss), grid_loss, np.inf)))
        grid = GridResult({"p": np.asarray(self.grid_p)[i]}, float(grid_loss[i]), grid_loss,
                          {"p": np.asarray(self.grid_p)}, int(grid_loss.size),
                          "ok" if np.all(np.isfinite(grid_loss)) else "nonfinite")
        return tuned, grid


def _odds_to_p(objective, p):
    p = jnp.asarray(p)
    return objective({"odds": p / (1 - p)})


def masking_objective_fn(problem, *, epochs: ArrayLike | None, alpha: ArrayLike, eval_sigma2: ArrayLike,
                         route: Any = "closed_form", hidden: int | None = None, w0: ArrayLike = 1e-4,
                         gamma: ArrayLike = 0.0,
                         init: Literal["balanced", "orthogonal", "random"] = "balanced",
                         key: Array | None = None, init_scale: float = 1e-4,
                         remat_every: int | None = None, precision: Any = None):
    """``objective(p)``: the held-out loss after ``epochs`` of training with masking rate p.

    Args:
      problem: a :class:`~daedyn.tune.HeldoutProblem` with ``eigvecs`` (``keep_data=True``).
      epochs: training time T (a whole number on routes "dynamics" and "train").
      alpha: learning rate (tau = N / alpha). eval_sigma2: noise variance on the held-out inputs
        (> 0 for an interior optimum).
      route: "closed_form" (default), "dynamics" or "train", or a route config; see the module
        docstring for which term each integrates.
      hidden: H (None: all directions). w0: initial mapping per direction (closed form, dynamics).
      gamma: weight decay. init: start of route "dynamics". key, init_scale: initial weights of
        route "train" and of ``init="random"``. remat_every, precision: as
        :func:`~daedyn.tune.heldout_objective`.
    Returns:
      A pure function of p in (0, 1) (jit, grad and vmap apply).
    Raises:
      ValueError: without eigenvectors, for out-of-range settings, or route "train" on a sampled
        or nonlinear network.
    """
    f = corruption_objective_fn(problem, "masking", epochs=epochs, alpha=alpha, route=route,
                                eval_sigma2=eval_sigma2, gamma=gamma, w0=w0, hidden=hidden, init=init,
                                key=key, init_scale=init_scale, remat_every=remat_every,
                                precision=precision)
    return jtu.Partial(_odds_to_p, f)


def tune_masking(problem, *, epochs: ArrayLike | None, alpha: ArrayLike, eval_sigma2: ArrayLike,
                 route: Any = "closed_form", hidden: int | None = None, w0: ArrayLike = 1e-4,
                 gamma: ArrayLike = 0.0, init: Literal["balanced", "orthogonal", "random"] = "balanced",
                 key: Array | None = None, init_scale: float = 1e-4, remat_every: int | None = None,
                 precision: Any = None, p0: float = 0.2, steps: int = 100, optimizer: Any = None,
                 grid: ArrayLike | None = None) -> MaskingTuning:
    """Tune the masking rate p by gradient descent in logit p through a route; compare with a grid.

    Args:
      problem, epochs, alpha, eval_sigma2, route, hidden, w0, gamma, init, key, init_scale,
        remat_every, precision: as :func:`masking_objective_fn`.
      p0: starting rate in (0, 1). steps: the optimiser's iteration cap (>= 1).
      optimizer: any optax transformation for :func:`~daedyn.tune.tune` (default L-BFGS).
      grid: rates for the baseline (default 99 points 0.01 ... 0.99), in (0, 1).
    Returns:
      :class:`MaskingTuning`.
    Raises:
      ValueError: for p0 outside (0, 1), a grid outside (0, 1), or as :func:`masking_objective_fn`.
    Example:
      >>> import jax.numpy as jnp
      >>> from daedyn.tune import HeldoutProblem
      >>> prob = HeldoutProblem(jnp.array([4.0, 1.0]), jnp.array([0.8, 0.2]), 10, 2, eigvecs=jnp.eye(2))
      >>> r = tune_masking(prob, epochs=1000.0, alpha=0.5, eval_sigma2=0.1)
      >>> round(float(r.p), 3), round(float(r.grid_p[jnp.argmin(r.grid_loss)]), 2)  # tuned vs grid
      (0.286, 0.29)
    """
    check_range("p0", p0, 0.0, 1.0, lo_open=True, hi_open=True)
    steps = check_int("steps", steps, 1)
    grid = np.linspace(0.01, 0.99, 99) if grid is None else np.asarray(grid, np.float64)
    check_range("grid", grid, 0.0, 1.0, lo_open=True, hi_open=True)
    f = corruption_objective_fn(problem, "masking", epochs=epochs, alpha=alpha, route=route,
                                eval_sigma2=eval_sigma2, gamma=gamma, w0=w0, hidden=hidden, init=init,
                                key=key, init_scale=init_scale, remat_every=remat_every,
                                precision=precision)
    res = tune(f, {"odds": p0 / (1 - p0)}, optimizer=optimizer, max_steps=steps)
    dtype = problem.eigvals.dtype
    g = grid_search(f, {"odds": grid / (1 - grid)})
    odds = jnp.asarray(res.params["odds"], dtype)
    history = np.asarray(res.history.params["odds"], np.float64)
    return MaskingTuning(odds / (1 + odds), jnp.asarray(res.objective, dtype), jnp.asarray(grid, dtype),
                         jnp.asarray(g.values, dtype), jnp.asarray(history / (1 + history), dtype), res)
