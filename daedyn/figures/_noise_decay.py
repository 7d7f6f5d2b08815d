"""Figures 2 and 3: noise versus weight decay in the balanced small-initialisation theory.

Every line is a closed form from ``daedyn.theory``: ``small_init_trajectory`` (the logistic
solution tau dw/dt = 2 w (lam - n gamma - w (lam + eps)); Eq. (7) when eps = 0), the equivalent
weight decay gamma = lam eps / (lam + eps) (section 5), the optimal learning rates of supplement D
and their ratio R, Eq. (8).
"""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
import numpy as np
from matplotlib import colormaps

from daedyn._checks import renamed
from daedyn.figures._common import COLORS, FigureResult, finish, new_figure, panel_axes, styled

FIG2_LAMS = (2.5, 1.0, 0.5, 0.1)
EPS_GRID = tuple(np.round(np.arange(0.0, 1.8 + 1e-9, 0.2), 10))  # 0, 0.2, ..., 1.8
FIG2_ALPHA, FIG2_EPOCHS, W0 = 0.001, 20000, 1e-6
FIG3_LAM, FIG3_RATE_SCALE, FIG3_EPOCHS = 1.0, 0.005, 20000


def shades(cmap: str, k: int):
    """``k`` colours of a sequential colormap, light to dark (darker = more regularisation)."""
    return colormaps[cmap](np.linspace(0.35, 1.0, k))


def plot_family(t, curves, *, cmap: str, ax=None, title: str | None = None, ylabel="$w(t)$",
                linestyle="-"):
    """A family of curves (K, T) over t, light to dark in ``cmap``."""
    ax = panel_axes(ax)
    curves = np.asarray(curves)
    for c, color in zip(curves, shades(cmap, len(curves)), strict=True):
        ax.plot(t, c, color=color, linestyle=linestyle)
    ax.set(xlabel="epoch", ylabel=ylabel)
    if title:
        ax.set_title(title)
    return ax


@styled
@renamed(lams="lam")
def figure_2(*, quick: bool = True, out_dir=None, key=None, data_dir=None,
             lam=FIG2_LAMS, eps=EPS_GRID, alpha: float = FIG2_ALPHA, epochs: int = FIG2_EPOCHS,
             w0: float = W0) -> FigureResult:
    """Figure 2: noise (top, green) versus equivalent weight decay (bottom, orange) over lam.

    For each lam in ``lam`` (the keyword ``lams`` is deprecated) and eps in ``eps`` (0 to 1.8), the
    DAE mapping
    ``small_init_trajectory(t, lam, eps, 0)`` and the WDAE mapping with the equivalent weight
    decay gamma = lam eps / (lam + eps) (``daedyn.theory.equivalent_gamma``), which has the same
    fixed point; N = 1, tau = 1 / alpha, w0 = 1e-6. The numbers include each curve's
    half-way time (``daedyn.theory.learning_time`` with f = 0.5): noise leaves it unchanged,
    weight decay delays it.

    ``quick`` only thins the time grid (401 instead of 2001 points). ``key`` and ``data_dir``
    are unused.
    """
    from daedyn import theory

    lams = lam
    lam = jnp.asarray(lams, jnp.float32)[:, None]  # (L, 1)
    e = jnp.asarray(eps, jnp.float32)[None, :]  # (1, E)
    tau = 1.0 / alpha
    gamma = theory.equivalent_gamma(lam, e)  # (L, E)
    t = jnp.linspace(0.0, float(epochs), 401 if quick else 2001)
    w_noise = theory.small_init_trajectory(t, lam[..., None], e[..., None], 0.0, w0=w0, tau=tau)
    w_decay = theory.small_init_trajectory(t, lam[..., None], 0.0, gamma[..., None], w0=w0,
                                           tau=tau)
    lt_noise = theory.learning_time(0.5, lam, e, 0.0, w0=w0, tau=tau)
    lt_decay = theory.learning_time(0.5, lam, 0.0, gamma, w0=w0, tau=tau)
    w_star = theory.fixed_point(lam, e)

    n_l = len(lams)
    fig, axes = new_figure(2, n_l, width=1.9 * n_l + 0.4, height=4.4)
    tn = np.asarray(t)
    for j, lj in enumerate(lams):
        plot_family(tn, w_noise[j], cmap="Greens", ax=axes[0, j],
                    title=rf"noise, $\lambda$ = {lj:g}")
        plot_family(tn, w_decay[j], cmap="Oranges", ax=axes[1, j],
                    title=rf"weight decay, $\lambda$ = {lj:g}")
        top = max(1.0, float(np.max(w_noise[j])))
        for i in range(2):
            axes[i, j].set_ylim(-0.03, 1.05 * top)
    fig.suptitle(rf"Figure 2: $\varepsilon$ = {eps[0]:g}..{eps[-1]:g} vs $\gamma$ = "
                 rf"$\lambda\varepsilon/(\lambda+\varepsilon)$; $\alpha$ = {alpha:g}, "
                 rf"$w_0$ = {w0:g}, N = 1 (closed forms)")
    numbers = {
        "lam": np.asarray(lams, np.float32), "eps": np.asarray(eps, np.float32),
        "gamma": np.asarray(gamma), "alpha": alpha, "tau": tau, "w0": w0, "n": 1, "t": tn,
        "w_noise": np.asarray(w_noise), "w_decay": np.asarray(w_decay),
        "fixed_point": np.asarray(w_star),
        "half_time_noise": np.asarray(lt_noise), "half_time_decay": np.asarray(lt_decay),
    }
    numbers["conventions"] = {
        "published": True, "theory": "small-start closed forms (Eq. 7 with noise or weight decay), N = 1"}
    return finish("figure_2", fig, numbers, out_dir)


def wdae_learning_rate(lam, eps, *, scale: float = FIG3_RATE_SCALE,
                       formula: Literal["supplement", "authors"] = "supplement"):
    """WDAE learning rate at the equivalent weight decay gamma = lam eps / (lam + eps).

    ``"supplement"``: the optimal rate of supplement D, scale / (2 lam + gamma) (the paper's text).
    ``"authors"``: scale (lam + eps) / (2 lam (lam + 2 eps)) = scale / (2 lam + 2 gamma), the rate
    the authors' Figure 3 experiment used (``convention="experiment"`` in
    ``daedyn.theory.optimal_learning_rates``). They differ for eps > 0.

    Example:
      >>> round(float(wdae_learning_rate(1.0, 1.0)), 6)  # 0.005 / (2 + 0.5)
      0.002
      >>> round(float(wdae_learning_rate(1.0, 1.0, formula="authors")), 6)  # 0.005 * 2 / 6
      0.001667
    """
    from daedyn import theory

    conventions = {"supplement": "supplement", "authors": "experiment"}
    if formula not in conventions:
        raise ValueError(f"formula must be 'supplement' or 'authors'; got {formula!r}")
    gamma = theory.equivalent_gamma(lam, eps)
    return theory.optimal_learning_rates(lam, eps, gamma, scale, convention=conventions[formula])[1]


def plot_learning_rates(eps, alpha_eps, alpha_gamma, ratio, *, ax=None, title=None):
    """Optimal rates 1/(2 lam + 3 eps) (DAE), 1/(2 lam + gamma) (WDAE) and their ratio R, Eq. (8)."""
    ax = panel_axes(ax)
    ax.plot(eps, alpha_eps, color=COLORS["dae"], label=r"DAE $1/(2\lambda+3\varepsilon)$")
    ax.plot(eps, alpha_gamma, color=COLORS["wdae"], label=r"WDAE $1/(2\lambda+\gamma)$")
    ax.plot(eps, ratio, "k--", label="ratio R, Eq. (8)")
    ax.set(xlabel=r"noise $\varepsilon$", ylabel="optimal learning rate ($\\tau$ = 1)")
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return ax


@styled
def figure_3(*, quick: bool = True, out_dir=None, key=None, data_dir=None,
             lam: float = FIG3_LAM, eps=EPS_GRID, epochs: int = FIG3_EPOCHS, w0: float = W0,
             rate_scale: float = FIG3_RATE_SCALE,
             wdae_rate: Literal["supplement", "authors"] = "supplement") -> FigureResult:
    """Figure 3: DAE versus WDAE dynamics at their optimal discrete-time learning rates (lam = 1).

    Left: DAE mappings (green) with alpha = rate_scale / (2 lam + 3 eps) and WDAE mappings (orange)
    with the equivalent gamma and the WDAE rate chosen by ``wdae_rate`` (see
    :func:`wdae_learning_rate`; default the supplement's formula, as in the paper's text).
    Middle: the optimal rates and R (Eq. (8)) for eps from 0 to 10. Right: DAE minus WDAE mapping.

    Note: with the supplement's formula the two balanced small-start solutions coincide exactly
    (both grow at rate 2 rate_scale lam / (2 lam + 3 eps) towards the same fixed point), so the
    right panel is zero up to rounding; the authors' experiment rate (``wdae_rate="authors"``)
    is slower and gives the paper's positive difference. The numbers hold both differences.

    ``quick`` only thins the time grid. ``key`` and ``data_dir`` are unused.
    """
    from daedyn import theory

    lam_f = float(lam)
    e = jnp.asarray(eps, jnp.float32)[:, None]  # (E, 1)
    gamma = theory.equivalent_gamma(lam_f, e)
    alpha_dae = theory.optimal_learning_rates(lam_f, e, gamma, rate_scale)[0]
    t = jnp.linspace(0.0, float(epochs), 401 if quick else 2001)
    w_dae = theory.small_init_trajectory(t, lam_f, e, 0.0, w0=w0, tau=1.0 / alpha_dae)
    w_wdae = {}
    rates = {}
    for formula in ("supplement", "authors"):
        rates[formula] = wdae_learning_rate(lam_f, e, scale=rate_scale, formula=formula)
        w_wdae[formula] = theory.small_init_trajectory(t, lam_f, 0.0, gamma, w0=w0,
                                                       tau=1.0 / rates[formula])
    eps_wide = jnp.linspace(0.0, 10.0, 201)
    gamma_wide = theory.equivalent_gamma(lam_f, eps_wide)
    a_eps, a_gamma = theory.optimal_learning_rates(lam_f, eps_wide, gamma_wide, 1.0)
    ratio = theory.learning_rate_ratio(lam_f, eps_wide, gamma_wide)

    tn = np.asarray(t)
    other_rate = "authors" if wdae_rate == "supplement" else "supplement"
    fig, axes = new_figure(1, 3, width=7.6, height=2.6)
    plot_family(tn, w_dae, cmap="Greens", ax=axes[0, 0])
    plot_family(tn, w_wdae[wdae_rate], cmap="Oranges", ax=axes[0, 0], linestyle="--",
                title=f"DAE vs WDAE (dashed), {wdae_rate} rate")
    plot_learning_rates(np.asarray(eps_wide), a_eps, a_gamma, ratio, ax=axes[0, 1],
                        title=rf"$\lambda$ = {lam_f:g}, $\gamma = \lambda\varepsilon/"
                              r"(\lambda+\varepsilon)$")
    diff = np.asarray(w_dae) - np.asarray(w_wdae[wdae_rate])
    diff_other = np.asarray(w_dae) - np.asarray(w_wdae[other_rate])
    plot_family(tn, diff_other, cmap="Greys", ax=axes[0, 2], linestyle=":")
    plot_family(tn, diff, cmap="Greens", ax=axes[0, 2], ylabel="DAE - WDAE mapping",
                title=f"difference, {wdae_rate} rate")
    axes[0, 2].text(0.98, 0.98, f"dotted: {other_rate} rate", transform=axes[0, 2].transAxes,
                    ha="right", va="top", fontsize=6)
    fig.suptitle(rf"Figure 3: optimal learning rates (scale {rate_scale:g}), $w_0$ = {w0:g}, N = 1")
    numbers = {
        "lam": lam_f, "eps": np.asarray(eps, np.float32), "gamma": np.asarray(gamma[:, 0]),
        "rate_scale": rate_scale, "w0": w0, "n": 1, "wdae_rate": wdae_rate, "t": tn,
        "alpha_dae": np.asarray(alpha_dae[:, 0]),
        "alpha_wdae_supplement": np.asarray(rates["supplement"][:, 0]),
        "alpha_wdae_authors": np.asarray(rates["authors"][:, 0]),
        "w_dae": np.asarray(w_dae), "w_wdae": np.asarray(w_wdae[wdae_rate]),
        "w_wdae_supplement": np.asarray(w_wdae["supplement"]),
        "w_wdae_authors": np.asarray(w_wdae["authors"]),
        "diff": diff, "diff_other": diff_other, "other_rate": other_rate,
        "max_abs_diff_supplement": float(np.max(np.abs(np.asarray(w_dae)
                                                       - np.asarray(w_wdae["supplement"])))),
        "max_diff_authors": float(np.max(np.asarray(w_dae) - np.asarray(w_wdae["authors"]))),
        "eps_wide": np.asarray(eps_wide), "alpha_eps_opt": np.asarray(a_eps),
        "alpha_gamma_opt": np.asarray(a_gamma), "ratio": np.asarray(ratio),
    }
    numbers["conventions"] = {
        "published": wdae_rate == "authors", "wdae_rate": wdae_rate,
        "wdae_rate_formula": {"supplement": "supplement D's optimal rate 0.005 / (2 lam + gamma)",
                              "authors": "the experiment's rate 0.005 (lam + eps) / (2 lam (lam + 2 eps))"
                              }[wdae_rate],
        "note": "the supplement rate makes DAE and WDAE identical; the paper's plotted difference "
                "comes from the experiment's rate (docs/errata.md)"}
    return finish("figure_3", fig, numbers, out_dir)
