"""Tuning plots: a held-out objective against eps with the optimisation path (Agg canvas, no pyplot)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from jax.typing import ArrayLike

from daedyn.tune import GridResult, NoiseTuning, TuneResult, grid_search

__all__ = ["plot_objective", "plot_noise_tuning"]


def plot_objective(objective: Callable, result: TuneResult | None = None, *,
                   values: ArrayLike | None = None, grid_result: GridResult | None = None,
                   name: str = "eps", ax=None, fixed: dict | None = None):
    """Plot a held-out objective against one hyperparameter (log axis) with the optimiser's path.

    Args:
      objective: ``f(params) -> scalar`` (as given to :func:`daedyn.tune.tune`).
      result: a :class:`daedyn.tune.TuneResult` whose history over ``name`` (a scalar parameter) is drawn as
        connected markers from start (square) to the best point (star).
      values: grid of ``name`` values for the curve; default: 121 log-spaced values spanning the path
        (or 1e-3..1e3 without a result), widened by a decade on each side.
      grid_result: a :class:`daedyn.tune.GridResult` over ``name`` to draw instead of evaluating
        the curve; its optimum is marked.
      name: the hyperparameter on the x axis.
      ax: matplotlib Axes to draw on; default a new Figure on an Agg canvas (no pyplot, no window).
      fixed: other hyperparameters held fixed while evaluating the curve (default: the result's
        best values for those it tuned).
    Returns:
      The Axes (``ax.figure.savefig(path)`` writes it).
    Raises:
      ValueError: if the result's ``name`` parameter is not a scalar (e.g. anisotropic eps).
    """
    if ax is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.0, 3.6), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
    path_x = path_y = None
    if result is not None:
        if name not in result.history.params:
            raise ValueError(f"the result did not tune {name!r}; tuned: {list(result.history.params)}")
        px = np.asarray(result.history.params[name])
        if px.ndim != 1:
            raise ValueError(f"can only plot a scalar {name!r}; the result has shape {px.shape[1:]} "
                             "per step (per-direction tuning)")
        path_x, path_y = px, np.asarray(result.history.objective)
    if grid_result is not None:
        if list(grid_result.grid) != [name]:
            raise ValueError(f"grid_result must be a 1-D grid over {name!r}; got {list(grid_result.grid)}")
        xs, ys = np.asarray(grid_result.grid[name]), np.asarray(grid_result.values)
    else:
        if values is None:
            lo, hi = (1e-3, 1e3) if path_x is None else (path_x.min() / 10, path_x.max() * 10)
            values = np.geomspace(lo, hi, 121)
        xs = np.asarray(values, np.float64)
        rest = {} if fixed is None else dict(fixed)
        if result is not None and fixed is None:
            rest = {k: v for k, v in result.params.items() if k != name}
        if rest:
            obj = objective
            objective = lambda p: obj({**rest, **p})  # noqa: E731
        ys = np.asarray(grid_search(objective, {name: xs}).values)
    ax.plot(xs, ys, color="0.3", lw=1.5, label="objective")
    if grid_result is not None:
        ax.plot(grid_result.params[name], grid_result.objective, "v", color="tab:orange", ms=9,
                label=f"grid optimum ({grid_result.n_evals} evals)")
    if path_x is not None:
        ax.plot(path_x, path_y, "o-", color="tab:blue", ms=4, lw=1, alpha=0.8,
                label=f"optimiser path ({result.n_evals} evals)")
        ax.plot(path_x[0], path_y[0], "s", color="tab:blue", ms=7)
        ax.plot(np.asarray(result.params[name]), result.objective, "*", color="tab:red", ms=12,
                label=f"tuned {name} = {float(result.params[name]):.4g}")
    ax.set_xscale("log")
    ax.set_xlabel(name)
    ax.set_ylabel("held-out objective")
    ax.legend(fontsize="small")
    return ax


def plot_noise_tuning(tuned: NoiseTuning, *, title: str | None = None, ax=None):
    """The objective :func:`daedyn.tune.tune_noise` minimised against eps, with its isotropic path.

    Args:
      tuned: the :class:`daedyn.tune.NoiseTuning` returned by ``tune_noise``.
      title: optional Axes title. ax: Axes to draw on (default a new Agg figure).
    Returns:
      The Axes.
    """
    ax = plot_objective(tuned.objective, tuned.isotropic, ax=ax)
    if title:
        ax.set_title(title)
    return ax
