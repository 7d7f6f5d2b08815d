"""Figures 1 and 4: scalar dynamics of one eigen-direction, loss surfaces, weight norms.

Figure 1 (section 4): gradient descent on l = lam/2 (1 - w2 w1)^2 + eps/2 (w2 w1)^2 from random
starts, against the closed form Eq. (5) (``daedyn.theory.dae_trajectory``) and the RK4 flow; loss
surfaces with the saddle at the origin and the minimum-loss manifold w2 w1 = lam / (lam + eps).

Figure 4 (sections 5.1-5.2): the same with weight decay, l + gamma/2 (w1^2 + w2^2); w(t), the weight
norm w1^2 + w2^2 over time, and a run from a small balanced start against the small-initialisation
closed form (``daedyn.theory.small_init_trajectory``, Eq. (7) with noise).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from daedyn.figures._common import (
    COLORS,
    FigureResult,
    finish,
    new_figure,
    panel_axes,
    require_key,
    styled,
)

# Settings of the paper's experiments (figure-settings.md); identical in quick and full mode:
# these runs are tiny.
FIG1_LAM, FIG1_EPS, FIG1_RUNS, FIG1_EPOCHS, FIG1_ALPHA = 1.0, (0.0, 1.0, 5.0), 10, 200, 0.01
FIG4_LAM, FIG4_RUNS, FIG4_EPOCHS, FIG4_ALPHA, FIG4_SMALL = 1.0, 10, 1000, 0.01, 0.01
FIG4_EPS = 0.1
FIG4_GAMMA = FIG4_LAM * FIG4_EPS / (FIG4_LAM + FIG4_EPS)  # equivalent weight decay, 0.0909
INIT_RANGE = 2.0  # w1, w2 ~ Uniform(-2, 2)


def loss_grid(lam, eps=0.0, gamma=0.0, *, extent: float = 2.5, resolution: int = 161):
    """Scalar loss (Eq. (4) with tau = n = 1, plus weight decay) on a square grid of (w1, w2).

    Returns ``(grid, loss)`` with ``grid`` (R,) and ``loss`` (R, R) indexed ``[i2, i1]`` (rows: w2).
    """
    from daedyn import theory

    g = np.linspace(-extent, extent, resolution, dtype=np.float32)
    w1, w2 = np.meshgrid(g, g)
    loss = theory.scalar_loss(jnp.asarray(w1), jnp.asarray(w2), lam, eps, gamma, tau=1.0, n=1)
    return g, np.asarray(loss)


def manifold_curve(w_star: float, *, extent: float = 2.5, points: int = 200):
    """Both branches of the hyperbola w1 w2 = w_star inside the square [-extent, extent]^2.

    Returns an array (2, 2, P): [branch, (w1, w2), point].
    """
    lo = w_star / extent
    w1 = np.geomspace(lo, extent, points) if w_star > 0 else np.zeros(points)
    branch = np.stack([w1, np.divide(w_star, w1, out=np.zeros_like(w1), where=w1 > 0)])
    return np.stack([branch, -branch])


def plot_loss_surface(grid, loss, *, w_star: float, paths=None, small_path=None, minima=None,
                      extent: float = 2.5, ax=None, title: str | None = None):
    """Contours of a scalar loss surface with the saddle, the minimum-loss manifold and GD paths.

    Args:
      grid, loss: from :func:`loss_grid`.
      w_star: the fixed point of w = w1 w2; the manifold w1 w2 = w_star is drawn in cyan.
      paths: optional (runs, 2, T) array of gradient-descent paths (w1, w2), dashed orange.
      small_path: optional (2, T) path from a small start, magenta.
      minima: optional (K, 2) isolated minima (weight decay), cyan dots; the manifold is then dotted.
    Returns:
      The Axes.
    """
    ax = panel_axes(ax)
    levels = np.quantile(loss, np.linspace(0.0, 1.0, 25) ** 2)
    levels = np.unique(levels)
    ax.contourf(grid, grid, loss, levels=levels, cmap="Greys_r", alpha=0.85)
    ax.contour(grid, grid, loss, levels=levels[::2], colors="k", linewidths=0.3, alpha=0.5)
    curve = manifold_curve(w_star, extent=extent)
    style = ":" if minima is not None else "-"
    for b in curve:
        ax.plot(b[0], b[1], style, color=COLORS["manifold"], lw=1.5)
    if minima is not None:
        m = np.asarray(minima)
        ax.plot(m[:, 0], m[:, 1], "o", color=COLORS["manifold"], ms=5)
    if paths is not None:
        for p in np.asarray(paths):
            ax.plot(p[0], p[1], "--", color=COLORS["sim"], lw=1.0)
            ax.plot(p[0, 0], p[1, 0], ".", color=COLORS["sim"], ms=4)
    if small_path is not None:
        sp = np.asarray(small_path)
        ax.plot(sp[0], sp[1], "-", color=COLORS["small"], lw=1.5)
    ax.plot([0.0], [0.0], "*", color=COLORS["fixed"], ms=10, zorder=5)
    ax.set(xlim=(-extent, extent), ylim=(-extent, extent), xlabel="$w_1$", ylabel="$w_2$",
           aspect="equal")
    if title:
        ax.set_title(title)
    return ax


def plot_trajectories(t, w_sim, w_theory=None, *, w_star=None, w_small=None, w_small_theory=None,
                      ax=None, title: str | None = None):
    """w(t) of simulated runs (dashed orange) against closed forms (solid green).

    Args:
      t: (T,) epochs. w_sim: (runs, T). w_theory: optional (runs, T) closed form for the same runs.
      w_star: optional fixed point, a red horizontal line.
      w_small, w_small_theory: optional (T,) small-start run and its closed form (magenta).
    Returns:
      The Axes.
    """
    ax = panel_axes(ax)
    if w_theory is not None:
        for w in np.asarray(w_theory):
            ax.plot(t, w, "-", color=COLORS["theory"], lw=2.0, alpha=0.6)
    for w in np.asarray(w_sim):
        ax.plot(t, w, "--", color=COLORS["sim"], lw=1.0)
    if w_small is not None:
        ax.plot(t, w_small, "-", color=COLORS["small"], lw=1.5)
    if w_small_theory is not None:
        ax.plot(t, w_small_theory, ":", color="k", lw=1.0)
    if w_star is not None:
        ax.axhline(w_star, color=COLORS["fixed"], lw=1.0)
    ax.set(xlabel="epoch", ylabel="$w = w_2 w_1$")
    if title:
        ax.set_title(title)
    return ax


def plot_weight_norm(t, weight_norm, *, weight_norm_small=None, ax=None, title: str | None = None):
    """||w||^2 = w1^2 + w2^2 over time for each run (and the small-start run in magenta)."""
    ax = panel_axes(ax)
    for v in np.asarray(weight_norm):
        ax.plot(t, v, "--", color=COLORS["sim"], lw=1.0)
    if weight_norm_small is not None:
        ax.plot(t, weight_norm_small, "-", color=COLORS["small"], lw=1.5)
    ax.set(xlabel="epoch", ylabel="$w_1^2 + w_2^2$")
    if title:
        ax.set_title(title)
    return ax


def _random_starts(key, runs: int):
    k1, k2 = jr.split(key)
    w1 = jr.uniform(k1, (runs,), minval=-INIT_RANGE, maxval=INIT_RANGE)
    w2 = jr.uniform(k2, (runs,), minval=-INIT_RANGE, maxval=INIT_RANGE)
    return w1, w2


@styled
def figure_1(*, quick: bool = True, out_dir=None, key: jax.Array | None = None, data_dir=None,
             lam: float = FIG1_LAM, eps=FIG1_EPS, runs: int = FIG1_RUNS, epochs: int = FIG1_EPOCHS,
             alpha: float = FIG1_ALPHA) -> FigureResult:
    """Figure 1: hyperbolic learning dynamics and loss surfaces for eps = 0, 1, 5 (lam = 1).

    Top row: w(t) of ``runs`` gradient-descent runs (dashed orange, ``daedyn.dynamics.scalar_gd``)
    from w1, w2 ~ Uniform(-2, 2), the closed form Eq. (5) from the same starts (solid green,
    ``daedyn.theory.dae_trajectory`` with tau = 1 / alpha) and the fixed point lam / (lam + eps)
    (red; 1, 0.5 and 1/6). Bottom row: loss surfaces with the GD paths, the saddle (red star) and
    the minimum-loss manifold (cyan). The numbers also hold the RK4 flow from the same starts.

    ``quick`` is accepted for a uniform signature; these runs are cheap, so both modes use the
    paper's settings. ``data_dir`` is unused.
    """
    from daedyn import dynamics, theory

    key = require_key(key, "figure_1")
    eps = np.asarray(eps, dtype=np.float32)
    tau = 1.0 / alpha
    w1_0, w2_0 = _random_starts(key, runs)
    # One batched GD run over (eps, runs): shapes (E, 1) x (runs,) -> (E, runs, T).
    e = jnp.asarray(eps)[:, None]
    gd = dynamics.scalar_gd(lam, e, w1_0, w2_0, alpha=alpha, epochs=epochs, observables=("w1", "w2", "w"))
    t = np.asarray(gd.t)
    w_theory = theory.dae_trajectory(jnp.asarray(t), lam, e[..., None], w1_0[:, None],
                                     w2_0[:, None], tau=tau)
    flow = dynamics.scalar_flow(jnp.asarray(t), lam, e, w1_0, w2_0, tau=tau, method="rk4", dt=0.5)
    w_star = np.asarray(theory.fixed_point(lam, jnp.asarray(eps)))
    grids = [loss_grid(lam, float(ei)) for ei in eps]

    fig, axes = new_figure(2, len(eps), width=2.4 * len(eps), height=4.8)
    for j, ej in enumerate(eps):
        plot_trajectories(t, gd.w[j], w_theory[j], w_star=float(w_star[j]), ax=axes[0, j],
                          title=rf"$\varepsilon$ = {ej:g}, $w^*$ = {w_star[j]:.3g}")
        paths = np.stack([np.asarray(gd.w1[j]), np.asarray(gd.w2[j])], axis=1)
        plot_loss_surface(*grids[j], w_star=float(w_star[j]), paths=paths, ax=axes[1, j])
    fig.suptitle(rf"Figure 1: scalar DAE, $\lambda$ = {lam:g}, GD $\alpha$ = {alpha:g} (dashed) "
                 "vs closed form Eq. (5) (solid)")
    numbers = {
        "lam": lam, "alpha": alpha, "tau": tau, "epochs": epochs, "runs": runs,
        "eps": eps, "t": t, "w1_0": np.asarray(w1_0), "w2_0": np.asarray(w2_0),
        "w_sim": np.asarray(gd.w), "w1_sim": np.asarray(gd.w1), "w2_sim": np.asarray(gd.w2),
        "w_theory": np.asarray(w_theory), "w_flow": np.asarray(flow.w),
        "fixed_point": w_star, "loss_grid": np.stack([g[1] for g in grids]), "grid": grids[0][0],
        "saddle": np.zeros(2, np.float32),
        "max_abs_gd_minus_theory": float(np.max(np.abs(np.asarray(gd.w) - np.asarray(w_theory)))),
        "max_abs_flow_minus_theory": float(np.max(np.abs(np.asarray(flow.w)
                                                          - np.asarray(w_theory)))),
    }
    numbers["conventions"] = {
        "published": True, "theory": "Eq. (5), robust (Riccati/Moebius) form of the printed closed form",
        "simulated": "gradient descent, one step per epoch (dashed), and the RK4 flow",
        "max_abs_gd_minus_theory": numbers["max_abs_gd_minus_theory"],
        "max_abs_flow_minus_theory": numbers["max_abs_flow_minus_theory"]}
    return finish("figure_1", fig, numbers, out_dir)


@styled
def figure_4(*, quick: bool = True, out_dir=None, key: jax.Array | None = None, data_dir=None,
             lam: float = FIG4_LAM, eps: float = FIG4_EPS, gamma: float = FIG4_GAMMA,
             runs: int = FIG4_RUNS, epochs: int = FIG4_EPOCHS, alpha: float = FIG4_ALPHA,
             small: float = FIG4_SMALL) -> FigureResult:
    """Figure 4: noise (top, eps = 0.1) versus equivalent weight decay (bottom, gamma = 0.0909).

    Columns: loss surface with GD paths (orange) and the small-start path (magenta), the
    minimum-loss manifold (cyan; dotted with the two isolated minima for weight decay) and the
    saddle; w(t) of every run with the small-start closed form (black dotted,
    ``daedyn.theory.small_init_trajectory``); the weight norm w1^2 + w2^2 over time.
    ``runs`` random starts w1, w2 ~ Uniform(-2, 2) shared by both rows, plus w1 = w2 = ``small``.

    ``quick`` is accepted for a uniform signature (the paper's settings are cheap).
    """
    from daedyn import dynamics, theory

    key = require_key(key, "figure_4")
    tau = 1.0 / alpha
    w1_r, w2_r = _random_starts(key, runs)
    w1_0 = jnp.concatenate([w1_r, jnp.full((1,), small, w1_r.dtype)])
    w2_0 = jnp.concatenate([w2_r, jnp.full((1,), small, w2_r.dtype)])
    settings = [("noise", eps, 0.0), ("weight decay", 0.0, gamma)]
    e = jnp.asarray([s[1] for s in settings], jnp.float32)[:, None]
    g = jnp.asarray([s[2] for s in settings], jnp.float32)[:, None]
    gd = dynamics.scalar_gd(lam, e, w1_0, w2_0, alpha=alpha, epochs=epochs, gamma=g, observables="all")
    t = np.asarray(gd.t)
    tt = jnp.asarray(t)
    small_theory = theory.small_init_trajectory(tt, lam, e, g, w0=small * small, tau=tau)
    dae_theory = theory.dae_trajectory(tt, lam, eps, w1_0[:, None], w2_0[:, None], tau=tau)
    w_star = np.asarray(theory.fixed_point(lam, e[:, 0], g[:, 0]))

    fig, axes = new_figure(2, 3, width=7.2, height=4.8)
    for i, (label, ei, gi) in enumerate(settings):
        ws = float(w_star[i])
        grid, loss = loss_grid(lam, ei, gi)
        paths = np.stack([np.asarray(gd.w1[i, :-1]), np.asarray(gd.w2[i, :-1])], axis=1)
        small_path = np.stack([np.asarray(gd.w1[i, -1]), np.asarray(gd.w2[i, -1])])
        minima = None
        if gi > 0:
            r = np.sqrt(ws)
            minima = np.array([[r, r], [-r, -r]])
        plot_loss_surface(grid, loss, w_star=ws, paths=paths, small_path=small_path,
                          minima=minima, ax=axes[i, 0],
                          title=rf"{label}: $\varepsilon$ = {ei:g}, $\gamma$ = {gi:.4g}")
        plot_trajectories(t, gd.w[i, :-1], dae_theory[:-1] if gi == 0 else None, w_star=ws,
                          w_small=gd.w[i, -1], w_small_theory=small_theory[i], ax=axes[i, 1],
                          title=rf"$w(t)$, $w^*$ = {ws:.4g}")
        plot_weight_norm(t, gd.weight_norm[i, :-1], weight_norm_small=gd.weight_norm[i, -1], ax=axes[i, 2],
                         title="weight norm")
    fig.suptitle(rf"Figure 4: noise vs weight decay, $\lambda$ = {lam:g}, GD $\alpha$ = {alpha:g}")
    numbers = {
        "lam": lam, "alpha": alpha, "tau": tau, "epochs": epochs, "runs": runs, "small": small,
        "eps": np.asarray(e[:, 0]), "gamma": np.asarray(g[:, 0]), "t": t,
        "w1_0": np.asarray(w1_0), "w2_0": np.asarray(w2_0),
        "w_sim": np.asarray(gd.w), "w1_sim": np.asarray(gd.w1), "w2_sim": np.asarray(gd.w2),
        "weight_norm_sim": np.asarray(gd.weight_norm), "loss_sim": np.asarray(gd.loss),
        "w_small_theory": np.asarray(small_theory), "w_theory_noise": np.asarray(dae_theory),
        "fixed_point": w_star,
    }
    numbers["conventions"] = {
        "published": True, "theory": "Eq. (7) with weight decay (small start) and Eq. (5) (noise)",
        "simulated": "gradient descent, one step per epoch"}
    return finish("figure_4", fig, numbers, out_dir)
