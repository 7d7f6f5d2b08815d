"""A tuned noise schedule against the best constant eps: the schedule and the held-out loss over
training (two panels; numbers from :func:`daedyn.tune.schedule_heldout_curve`)."""

from __future__ import annotations

import numpy as np

from daedyn.figures._common import new_figure
from daedyn.tune import ScheduleTuning, schedule_heldout_curve

__all__ = ["plot_schedule_tuning"]


def plot_schedule_tuning(tuning: ScheduleTuning, *, points: int = 200, axes=None, title: str | None = None):
    """Left: the tuned eps(t) (steps; the range over directions for per-direction schedules) and the
    best constant eps. Right: the held-out objective over training under the schedule relative to
    the best constant, in percent (closed form): < 0 where the schedule is ahead.

    Args:
      tuning: a :class:`daedyn.tune.ScheduleTuning`.
      points: times from 0 to T for the loss curves.
      axes: two matplotlib Axes; default a new two-panel figure on an Agg canvas.
      title: the figure's title.
    Returns:
      The two Axes (``axes[0].figure.savefig(path)`` writes it).
    """
    if axes is None:
        fig, grid = new_figure(1, 2, width=7.0, height=2.8)
        axes = grid[0]
    a, b = axes
    sched = tuning.schedule
    bounds = np.asarray(sched.boundaries, np.float64)
    route = tuning.objective_fn.func.route
    t_end = float(route.epochs)
    edges = np.concatenate([[0.0], bounds, [t_end]])
    values = np.asarray(sched.values, np.float64)
    lo, hi = (values, values) if values.ndim == 1 else (values.min(axis=-1), values.max(axis=-1))
    floor = max(float(np.min(lo[lo > 0])) if np.any(lo > 0) else 1e-6, 1e-6) / 10
    a.stairs(np.maximum(hi, floor), edges, baseline=None, color="C1",
             label=f"tuned schedule (K = {values.shape[0]})")
    if values.ndim > 1:
        a.stairs(np.maximum(lo, floor), edges, baseline=None, color="C1", linestyle=":",
                 label="range over directions")
    a.axhline(tuning.constant_eps, color="C0", label="best constant")
    a.set_yscale("log")
    a.set_xlabel("epoch t")
    a.set_ylabel("eps(t)")
    a.legend(fontsize="small", loc="best")
    ts = np.linspace(0.0, t_end, points)
    j_sched, j_const = (np.asarray(x, np.float64) for x in schedule_heldout_curve(tuning, ts))
    b.plot(ts, 100.0 * (j_sched / j_const - 1.0), color="C1",
           label=f"at T: {tuning.objective:.6g} vs {tuning.constant_objective:.6g}")
    b.axhline(0.0, color="C0", linewidth=0.8)
    b.set_xlabel("epoch t")
    b.set_ylabel("held-out objective,\nschedule vs constant (%)")
    b.legend(fontsize="small", loc="best")
    if title:
        a.figure.suptitle(title)
    return a, b
