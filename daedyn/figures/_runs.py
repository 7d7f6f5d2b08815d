"""Plots of single computations, as the ``daedyn`` subcommands draw them (``--plot FILE.png``).

Each function takes the numbers already computed (closed forms, trajectories, a training run) and
``ax=None``, draws them in the package style, and returns the Axes; ``ax.figure.savefig(path)``
writes the image. Nothing here computes dynamics of its own, except :func:`plot_training_run`'s
theory lines, which come from :func:`daedyn.figures.linear_theory`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from daedyn.figures._common import new_figure
from daedyn.figures._real_data import linear_theory, plot_strengths

__all__ = ["plot_closed_form", "plot_scalar_runs", "plot_matrix_mapping", "plot_training_run"]


def _axes(ax, width=5.0, height=3.2):
    if ax is not None:
        return ax
    _, axes = new_figure(1, 1, width=width, height=height)
    return axes[0, 0]


def plot_closed_form(t, w, labels: Sequence[str], *, fixed_points=None, t_points=None, w_points=None,
                     title: str | None = None, ax=None):
    """Closed-form curves w(t) (lines), optional marked points and fixed points (dotted).

    Args:
      t: (T,) times; w: (T, K) one curve per column.
      labels: K legend labels.
      fixed_points: optional (K,) horizontal dotted lines, one per curve.
      t_points, w_points: optional (P,), (P, K) values to mark with dots (e.g. printed times).
      title: optional title; ax: Axes to draw on (default a new figure).
    Returns:
      The Axes.
    Example:
      >>> ax = plot_closed_form(np.linspace(0, 1, 5), np.ones((5, 1)), ["w"], fixed_points=[1.0])
      >>> len(ax.lines)
      2
    """
    ax = _axes(ax, 6.0, 4.0)
    w = np.asarray(w)
    for j, label in enumerate(labels):
        (line,) = ax.plot(t, w[:, j], label=label)
        if t_points is not None:
            ax.plot(t_points, np.asarray(w_points)[:, j], ".", color=line.get_color(), ms=4)
        if fixed_points is not None:
            ax.axhline(fixed_points[j], color=line.get_color(), ls=":", lw=0.8)
    ax.set(xlabel="t (epochs)", ylabel="w(t) = w2 w1")
    if title:
        ax.set_title(title)
    # outside the axes, on the right: never over the curves, however many there are (the figures'
    # constrained layout makes room for it)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    return ax


def plot_scalar_runs(t, w, labels: Sequence[str], *, closed=None, max_runs: int = 20, ax=None):
    """Simulated scalar mappings w = w1 w2 over time, with their closed forms (dashed) where known.

    Args:
      t: (T,) epochs; w: (K, T) one run per row; labels: K legend labels.
      closed: optional (K, T) closed forms; rows holding NaN (no closed form) are not drawn.
      max_runs: draw at most this many runs.
    Returns:
      The Axes.
    """
    ax = _axes(ax)
    for i in range(min(len(w), max_runs)):
        (line,) = ax.plot(t, w[i], label=labels[i])
        if closed is not None and not np.isnan(closed[i]).any():
            ax.plot(t, closed[i], "--", color=line.get_color(), lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("w = w1 w2")
    ax.legend(fontsize=6)
    return ax


def plot_matrix_mapping(t, mapping, eigvals, *, max_directions: int = 12, ax=None):
    """Per-direction mapping diag(V^T W2 W1 V) of a full-matrix run over time.

    Args:
      t: (T,) epochs; mapping: (T, D); eigvals: (D,) labels of the directions.
    Returns:
      The Axes.
    """
    ax = _axes(ax)
    for j in range(min(np.shape(mapping)[-1], max_directions)):
        ax.plot(t, np.asarray(mapping)[:, j], label=f"j={j} lam={eigvals[j]:.3g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mapping diag(V^T W2 W1 V)")
    ax.legend(fontsize=6)
    return ax


def plot_training_run(result, *, directions: Sequence[int], eigvecs=None, hidden: int | None = None,
                      title: str | None = None, ax=None):
    """One training run's recorded per-direction mapping ('x'), with the small-init theory (lines).

    Args:
      result: an unbatched ``daedyn.train.TrainResult``.
      directions: the directions j to draw, one colour each.
      eigvecs: V of the training Sigma; given, the balanced small-initialisation theory of each
        direction (its own w0 from the initial weights, :func:`linear_theory`) is drawn on a fine
        grid, 0 for directions j >= ``hidden`` (linear networks only).
      hidden: H (default the number of singular values recorded).
    Returns:
      The Axes.
    """
    ax = _axes(ax, 6.8, 3.4)  # room on the right for the legend
    epochs = np.asarray(result.t)
    mapping = np.asarray(result.mapping)
    theory = None
    if eigvecs is not None:
        h = hidden if hidden is not None else np.shape(result.singular_values)[-1]
        t = np.linspace(float(epochs[0]), float(epochs[-1]), 400)
        _, w, _ = linear_theory(result, eigvecs, h, t=t, w0="balanced")
        full = np.zeros((t.size, mapping.shape[-1]), w.dtype)
        full[:, : w.shape[-1]] = w
        theory = (t, full)
    for j in directions:
        plot_strengths(epochs, mapping, theory, directions=[j], color=f"C{j % 10}", label=f"j = {j}",
                       ax=ax, ylabel="mapping")
    if title:
        ax.set_title(title, fontsize=8)
    handles, _ = ax.get_legend_handles_labels()
    from matplotlib.lines import Line2D

    handles.append(Line2D([], [], color="0.4", marker="x", ls="none", ms=4,
                          label="measured (trained network)"))
    if theory is not None:
        handles.append(Line2D([], [], color="0.4", ls="-", lw=1.2, label="theory (small-init closed form)"))
    ax.legend(handles=handles, frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
              borderaxespad=0.0)  # outside the axes: never over the curves
    return ax
