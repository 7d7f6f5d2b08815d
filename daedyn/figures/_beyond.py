"""Two figures beyond the paper: predicted learning times, and tuning the noise on held-out data.

``figure_learning_time``: the paper's future work asks to predict "the training time of DAEs".
Linear AE, WDAE and DAE are trained on real data (``daedyn.train``); for each eigen-direction the
measured time to reach half of its fixed point is set against ``daedyn.theory.learning_time``
(the inverted small-initialisation closed form) with that direction's own balanced start w0_j read
from the initial weights (``daedyn.train.initial_w0``).

``figure_tuning``: the held-out denoising loss of a linear DAE after T epochs as a function of the
noise level, through the closed form (``daedyn.tune.heldout_objective``), the optimum found by
gradient descent in log eps (``daedyn.tune.tune``) with its path, the grid optimum, and the loss of
actually trained networks at a few noise levels (markers).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from daedyn import _linear as core
from daedyn import train
from daedyn.figures._common import (
    COLORS,
    FigureResult,
    figure_dataset,
    finish,
    new_figure,
    panel_axes,
    report,
    require_key,
    run_progress,
    styled,
)
from daedyn.figures._real_data import FIG5_GAMMA, FIG5_INIT, FIG5_SIGMA2, LABELS, MODELS

LT_FULL = dict(n=50000, hidden=256, alpha=0.01, epochs=5000, save_every=10)
LT_QUICK = dict(n=5000, hidden=32, alpha=0.01, epochs=3000, save_every=10)
LT_FRACTION = 0.5


def plot_learning_times(predicted, measured, *, color, label=None, ax=None, title=None):
    """Measured against predicted learning times on log axes, with the diagonal."""
    ax = panel_axes(ax)
    ok = np.isfinite(predicted) & np.isfinite(measured)
    ax.loglog(np.asarray(predicted)[ok], np.asarray(measured)[ok], "o", color=color, ms=3,
              label=label, alpha=0.8)
    lo, hi = ax.get_xlim()
    lo2, hi2 = ax.get_ylim()
    lo, hi = min(lo, lo2), max(hi, hi2)
    ax.plot([lo, hi], [lo, hi], "k:", lw=0.8)
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="predicted (epochs)", ylabel="measured (epochs)")
    if title:
        ax.set_title(title)
    return ax


@styled
def figure_learning_time(*, quick: bool = True, out_dir=None, key: jax.Array | None = None,
                         data_dir=None, dataset: str = "mnist", n: int | None = None,
                         hidden: int | None = None, epochs: int | None = None,
                         fraction: float = LT_FRACTION) -> FigureResult:
    """Beyond the paper: measured vs predicted time for each direction to reach ``fraction`` of w*.

    Linear AE, WDAE (gamma = 0.5) and DAE (sigma^2 = 0.5, marginalised) as in Figure 5, the
    per-direction mapping diag(V^T W2 W1 V) recorded every 10 epochs. Directions whose fixed point
    is below 0.05 or that do not reach the fraction within the run are left out (counted in the
    numbers). Left: measured against predicted (log-log, diagonal dotted). Right: relative error
    per direction index. Quick: MNIST N = 5000 (mnist5k fallback), H = 32, 3000 epochs.
    """
    from daedyn import spectrum, theory
    from daedyn.figures._real_data import _train_linear

    key = require_key(key, "figure_learning_time")
    s = dict(LT_QUICK if quick else LT_FULL)
    s.update({k: v for k, v in dict(n=n, hidden=hidden, epochs=epochs).items() if v is not None})
    ds, label, note = figure_dataset(dataset, n=s["n"], quick=quick, data_dir=data_dir)
    spec = spectrum.compute_spectrum(ds.x)
    runs = _train_linear(ds.x, spec, key=key, hidden=s["hidden"], alpha=s["alpha"],
                         epochs=s["epochs"], save_every=s["save_every"], gamma=FIG5_GAMMA,
                         sigma2=FIG5_SIGMA2, label=label)
    h = s["hidden"]
    lam = np.asarray(spec.eigvals[:h])
    numbers = {"dataset": dataset, "label": label, "note": note or "", "source": ds.source,
               "n": ds.x.shape[0], "hidden": h, "alpha": s["alpha"], "epochs_total": s["epochs"],
               "save_every": s["save_every"], "fraction": fraction, "eigvals": lam,
               "quick": quick,
               "conventions": {"published": False, "beyond_the_paper": True, "w0": "balanced",
                               "theory": "theory.learning_time (continuous small-start flow)",
                               "measured": "first crossing of fraction * w* by the trained mapping"}}
    fig, axes = new_figure(1, 2, width=7.0, height=3.0)
    for m in MODELS:
        r = runs[m]
        w0 = np.asarray(train.initial_w0(r.init_params, spec.eigvecs, kind="balanced"))[:h]
        w_star = np.asarray(theory.fixed_point(lam, r.eps, r.gamma, n=r.n))
        keep = w_star > 0.05
        predicted = np.where(keep, np.asarray(theory.learning_time(
            fraction, lam, r.eps, r.gamma, w0=jnp.asarray(w0), tau=r.tau, n=r.n)), np.nan)
        mapping = np.asarray(r.mapping)[:, :h]
        measured = np.asarray(train.crossing_times(r.t, mapping, fraction * w_star), np.float64)
        measured = np.where(keep, measured, np.nan)
        rel = (measured - predicted) / predicted
        numbers.update({f"predicted_{m}": predicted, f"measured_{m}": measured,
                        f"w0_{m}": w0, f"fixed_point_{m}": w_star, f"rel_error_{m}": rel,
                        f"median_abs_rel_error_{m}": float(np.nanmedian(np.abs(rel)))
                        if np.isfinite(rel).any() else float("nan"),
                        f"n_compared_{m}": int(np.isfinite(rel).sum()),
                        f"mapping_{m}": mapping, f"eps_{m}": float(r.eps),
                        f"gamma_{m}": float(r.gamma), f"tau_{m}": float(r.tau)})
        plot_learning_times(predicted, measured, color=COLORS[m], label=LABELS[m], ax=axes[0, 0])
        ax = axes[0, 1]
        ax.plot(np.arange(h), rel, "o-", color=COLORS[m], ms=3, lw=0.8, label=LABELS[m])
    numbers["epochs"] = np.asarray(runs["ae"].t)
    axes[0, 0].legend(frameon=False)
    axes[0, 0].set_title(f"time to {fraction:g} w*, {label}")
    axes[0, 1].axhline(0.0, color="k", lw=0.6)
    axes[0, 1].set(xlabel="direction j (descending eigenvalue)",
                   ylabel="(measured - predicted) / predicted", title="relative error")
    fig.suptitle("Beyond the paper: learning time per direction, measured vs "
                 f"daedyn.theory.learning_time{' [quick]' if quick else ''}")
    return finish("figure_learning_time", fig, numbers, out_dir)


# Quick: MNIST average-pooled 4x4 (D = 49) with H = D, so that low-variance directions are learned
# within a short run and the held-out optimum in eps is interior; full: the 28x28 images, H = D.
TUNE_FULL = dict(n=60000, heldout=10000, pool=1, alpha=0.02, epochs=2000, eval_sigma2=0.05,
                 measured=7)
TUNE_QUICK = dict(n=5000, heldout=1000, pool=4, alpha=0.2, epochs=500, eval_sigma2=0.02,
                  measured=5)


def pool_images(x, image_shape, pool: int):
    """Average-pool flattened grey images (N, H*W) by ``pool`` x ``pool`` blocks.

    Example:
      >>> pool_images(np.arange(16.0).reshape(1, 16), (4, 4), 2).tolist()
      [[2.5, 4.5, 10.5, 12.5]]
    """
    if pool == 1:
        return np.asarray(x)
    hh, ww = image_shape[0], image_shape[1]
    if len(image_shape) != 2 or hh % pool or ww % pool:
        raise ValueError(f"pool must divide the grey image shape; got pool={pool}, "
                         f"image_shape={tuple(image_shape)}")
    x = np.asarray(x).reshape(-1, hh // pool, pool, ww // pool, pool)
    return x.mean(axis=(2, 4)).reshape(x.shape[0], -1)


def _heldout_denoising_loss(params, x_heldout, eval_sigma2):
    """J = 1/(2M) sum_i ||x_i - W x_i||^2 + (s^2/2) tr(W W^T) of a trained linear map W = W2 W1:
    the core's data loss with corruption term eps = M s^2, evaluated in float64."""
    with jax.enable_x64(True):
        ws = tuple(jnp.asarray(np.asarray(params[k], np.float64)) for k in ("w1", "w2"))
        x = jnp.asarray(np.asarray(x_heldout, np.float64))
        eps = jnp.asarray(x.shape[0] * float(eval_sigma2))
        return float(core.data_loss(ws, x, eps, mm=core.matmul_fn("highest")))


@styled
def figure_tuning(*, quick: bool = True, out_dir=None, key: jax.Array | None = None,
                  data_dir=None, dataset: str = "mnist", eval_sigma2: float | None = None,
                  n: int | None = None, epochs: int | None = None, pool: int | None = None,
                  measured: int | None = None) -> FigureResult:
    """Beyond the paper: held-out denoising loss against the noise level, with the tuned optimum.

    A linear DAE with H = D hidden units (learning rate alpha, T epochs, marginalised Gaussian
    noise of per-component variance s^2 = eps / N) is judged on held-out data corrupted with
    variance ``eval_sigma2``. Line: the closed-form objective (``daedyn.tune.heldout_objective``,
    w0 the mean balanced start of the networks' actual initial weights). Star: the optimum of
    ``daedyn.tune.tune`` (L-BFGS in log eps) with its path; square: the grid optimum. 'x': the
    same loss for networks actually trained with ``daedyn.train`` at ``measured`` noise levels
    around the optimum. Full: MNIST 28x28, 50000 train / 10000 held out, alpha = 0.02, T = 2000,
    eval s^2 = 0.05. Quick: 5000 images (mnist5k fallback) average-pooled 4x4 to 7x7 (D = 49),
    4000 / 1000, alpha = 0.2, T = 500, eval s^2 = 0.02.
    """
    from daedyn import data, models, noise, spectrum, tune

    key = require_key(key, "figure_tuning")
    s = dict(TUNE_QUICK if quick else TUNE_FULL)
    s.update({k: v for k, v in dict(n=n, epochs=epochs, measured=measured, pool=pool,
                                    eval_sigma2=eval_sigma2).items() if v is not None})
    ds, label, note = figure_dataset(dataset, n=s["n"], quick=quick, data_dir=data_dir)
    x = pool_images(ds.x, ds.image_shape, int(s["pool"]))
    if s["pool"] > 1:
        label += f", pooled {s['pool']}x{s['pool']} (D = {x.shape[1]})"
    n_ho = min(s["heldout"], x.shape[0] // 5)
    x_tr, x_ho = data.train_heldout_split(x, n_ho, seed=0)
    n_tr, d = x_tr.shape
    es2 = float(s["eval_sigma2"])
    problem = tune.heldout_problem(x_tr, x_ho, keep_data=False)
    spec = spectrum.compute_spectrum(x_tr)
    params0 = models.init_autoencoder(d, d, key=jr.fold_in(key, 0), init_scale=FIG5_INIT)
    w0 = float(np.mean(np.asarray(train.initial_w0(params0, spec.eigvecs, kind="balanced"))))
    objective = tune.heldout_objective(problem, epochs=float(s["epochs"]), alpha=s["alpha"],
                                       eval_sigma2=es2, w0=w0)
    s2_grid = np.geomspace(1e-4, 10.0, 101)
    grid = tune.grid_search(objective, {"eps": s2_grid * n_tr})
    # start at the evaluation noise (eps0 = N eval_sigma2): far below it the objective is flat to
    # float32 (noise below the data's scale changes nothing) and the gradient gives no direction
    result = tune.tune(objective, {"eps": es2 * n_tr}, max_steps=50)
    eps_best = float(np.asarray(result.params["eps"]))
    path = np.asarray(result.history.params["eps"])
    s2_measured = np.geomspace(eps_best / n_tr / 10, eps_best / n_tr * 10, int(s["measured"]))
    loss_measured = []
    for s2 in s2_measured:
        report(f"{label}: training a linear DAE with s^2 = {s2:.3g}, {s['epochs']} epochs")
        r = train.train(x_tr, hidden=d, key=jr.fold_in(key, 1), epochs=int(s["epochs"]),
                        alpha=s["alpha"], noise=noise.gaussian(float(s2)), marginalised=True,
                        spectrum=spec, params=params0, save_every=int(s["epochs"]),
                        precision="highest", observables=("weight_norm",),
                        **run_progress(int(s["epochs"]), int(s["epochs"])))
        loss_measured.append(_heldout_denoising_loss(r.params, x_ho, es2))
    loss_measured = np.asarray(loss_measured)
    loss_theory_at_measured = np.asarray(jax.vmap(lambda e: objective({"eps": e}))(
        jnp.asarray(s2_measured * n_tr, jnp.float32)))

    fig, axes = new_figure(1, 2, width=7.4, height=3.0)
    s2_best = eps_best / n_tr
    for i, ax in enumerate(axes[0]):
        ax.semilogx(s2_grid, grid.values, "-", color=COLORS["dae"], label="closed form")
        ax.plot(path / n_tr, result.history.objective, ".--", color="0.4", ms=4, lw=0.7,
                label=f"tune path ({result.n_steps} steps)")
        ax.plot([float(grid.params["eps"]) / n_tr], [grid.objective], "s", mfc="none",
                color="k", ms=8, label="grid optimum")
        ax.plot([s2_best], [result.objective], "*", color=COLORS["fixed"], ms=10,
                label=rf"tuned $s^2$ = {s2_best:.3g}")
        ax.plot(s2_measured, loss_measured, "x", color=COLORS["ae"], ms=7, mew=1.5,
                label="trained networks")
        ax.set(xlabel=r"training noise $s^2 = \varepsilon / N$", ylabel="held-out denoising loss")
        if i == 1:  # zoom on the optimum: a decade and a half either side
            lo_x, hi_x = s2_best / 30, s2_best * 30
            sel = (s2_grid >= lo_x) & (s2_grid <= hi_x)
            ys = np.concatenate([np.asarray(grid.values)[sel], loss_measured])
            pad = 0.05 * (ys.max() - ys.min())
            ax.set(xlim=(lo_x, hi_x), ylim=(ys.min() - pad, ys.max() + pad), title="near the optimum")
        else:
            ax.legend(frameon=False, fontsize=6)
            ax.set_title(f"{label}\nH = D, T = {s['epochs']}, " + rf"$\alpha$ = {s['alpha']:g}, "
                         f"eval $s^2$ = {es2:g}")
    fig.suptitle(f"Beyond the paper: tuning the noise level{' [quick]' if quick else ''}")
    numbers = {
        "dataset": dataset, "label": label, "note": note or "", "source": ds.source,
        "n_train": n_tr, "n_heldout": int(x_ho.shape[0]), "d": d, "hidden": d,
        "pool": int(s["pool"]), "alpha": s["alpha"], "epochs": s["epochs"], "eval_sigma2": es2,
        "w0": w0, "quick": quick,
        "eigvals": np.asarray(problem.eigvals), "projected": np.asarray(problem.projected),
        "s2_grid": s2_grid, "objective_grid": np.asarray(grid.values),
        "eps_grid_best": float(grid.params["eps"]), "objective_grid_best": grid.objective,
        "eps_tuned": eps_best, "objective_tuned": result.objective,
        "objective_initial": result.initial_objective, "tune_status": result.status,
        "tune_steps": result.n_steps, "tune_evals": result.n_evals,
        "tune_path_eps": path, "tune_path_objective": np.asarray(result.history.objective),
        "s2_measured": s2_measured, "loss_measured": loss_measured,
        "loss_theory_at_measured": loss_theory_at_measured,
        "conventions": {"published": False, "beyond_the_paper": True, "w0": w0,
                        "objective": "held-out denoising loss with evaluation noise eval_sigma2",
                        "rmse_theory_vs_measured": float(np.sqrt(np.mean(
                            (np.asarray(loss_measured) - np.asarray(loss_theory_at_measured)) ** 2)))},
    }
    return finish("figure_tuning", fig, numbers, out_dir)


_WAY_STYLE = {"closed": ("-", "closed form"), "scalar": ("--", "scalar GD"),
              "matrix": (":", "matrix GD"), "train": ("x", "trained")}


def plot_crosscheck(result, *, directions=None, title: str | None = None):
    """The four ways of a :func:`daedyn.crosscheck.crosscheck` and their verdict, as one figure.

    Left: the mapping of ``directions`` (default the checked ones, at most 6) over epochs, one
    colour per direction, one line style per way (markers: the trained network). Right: the
    RMSE difference of every pair per direction (log scale), the tolerance dotted.

    Returns:
      The matplotlib ``Figure``.
    """
    fig, axes = new_figure(1, 2, width=7.4, height=3.0)
    ax = axes[0, 0]
    t = np.asarray(result.t)
    if directions is None:
        directions = [int(j) for j in np.flatnonzero(result.checked)[:6]] or [0]
    for j in directions:
        for way, (style, name) in _WAY_STYLE.items():
            w = np.asarray(result.mapping[way])[:, j]
            kw = dict(ms=3, mew=0.8) if style == "x" else dict(lw=1.0)
            ax.plot(t, w, style, color=f"C{j % 10}", label=(name if j == directions[0] else None), **kw)
    ax.set(xlabel="epoch", ylabel="mapping", title=title or "four ways, per direction")
    ax.legend(frameon=False, fontsize=6)
    ax = axes[0, 1]
    k = np.arange(len(result.eigvals))
    for i, (pair, d) in enumerate(result.pairs.items()):
        ax.semilogy(k, np.maximum(np.asarray(d["rmse"]), 1e-12), "o-", ms=3, lw=0.8, color=f"C{i}",
                    label=pair)
    ax.axhline(result.tolerances.rmse, color="k", ls=":", lw=0.8)
    ax.set(xlabel="direction j", ylabel="RMSE difference",
           title="verdict: " + ("agree" if result.verdict else "DISAGREE"))
    ax.legend(frameon=False, fontsize=6)
    return fig
