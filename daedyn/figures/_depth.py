"""A figure beyond the paper: deep linear DAEs (L = 2, 3, 4 weight matrices).

``figure_depth``: (top) AE / WDAE / DAE of depth 2, 3 and 4 trained by gradient descent on real images
from a small random start, the measured per-direction mapping (dots) against the per-direction
discrete-time theory (lines, ``dynamics.scalar_gd(depth=L)`` from each direction's effective start:
``train.compare_with_theory``'s default, the alignment model's at depth >= 3); (bottom left)
the learning-threshold diagram: the learned value of one direction against weight decay by depth
(solid: the stable learned state, dotted: the threshold a start must exceed; at depth >= 3 weight decay
makes learning jump from 0); (bottom middle) the learned value against the noise level by depth (the
same curve lam / (lam + eps) at every depth); (bottom right) the time to reach half the learned state
against the initial mapping w0 by depth (log(1/w0) at depth 2, w0^-(1-2/L) beyond).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from daedyn.figures._common import COLORS, figure_dataset, finish, new_figure, report, run_progress, styled

# init_scale per depth: the initial mapping of a random product scales like scale^L, and learning
# times like w0^-(1-2/L) (log(1/w0) at L = 2): these put all three depths' top directions inside the run
INIT_SCALE = {2: 1e-3, 3: 0.03, 4: 0.06}
DEPTH_QUICK = dict(
    n=1000, hidden=8, epochs=3000, save_every=50, alpha=0.004, gamma=0.05, sigma2=0.5, directions=4
)
DEPTH_FULL = dict(
    n=5000, hidden=32, epochs=6000, save_every=50, alpha=0.004, gamma=0.05, sigma2=0.5, directions=6
)
DEPTHS = (2, 3, 4)
MODELS = ("ae", "wdae", "dae")


def _run_at(batch, i: int):
    """Run ``i`` of a one-axis :func:`daedyn.train.train_batch` result (t, eigvals and n are shared)."""
    shared = {"t", "eigvals", "n"}
    pick = lambda v: None if v is None else jax.tree.map(lambda a: a[i], v)
    return batch._replace(**{f: pick(getattr(batch, f)) for f in batch._fields if f not in shared})


@styled
def figure_depth(
    *,
    quick: bool = True,
    out_dir=None,
    key: jax.Array | None = None,
    data_dir=None,
    dataset: str = "mnist",
    n: int | None = None,
    hidden: int | None = None,
):
    """Beyond the paper: deep linear DAEs, trained vs theory, the learning threshold and learning times.

    Quick: MNIST N = 1000 (mnist5k fallback), hidden width 8, 3000 epochs (40 s on an idle 2-core
    CPU; the three models of a depth train in one compiled ``train_batch`` run); full: N = 5000,
    width 32, 6000 epochs.
    Initial weights N(0, s^2) with s = 1e-3, 0.03, 0.06 for L = 2, 3, 4.
    Training is float32 with ``precision="highest"``; the theory panels are float64.
    """
    from daedyn import noise, spectrum, theory, train

    s = dict(DEPTH_QUICK if quick else DEPTH_FULL)
    s.update({k: v for k, v in dict(n=n, hidden=hidden).items() if v is not None})
    key = jr.key(0) if key is None else key
    ds, label, note = figure_dataset(dataset, n=int(s["n"]), quick=quick, data_dir=data_dir)
    x = jnp.asarray(np.asarray(ds.x, np.float32))
    spec = spectrum.compute_spectrum(x, accumulate_dtype=jnp.float64)
    k = int(s["directions"])
    start = time.perf_counter()
    runs, numbers = {}, {}
    for depth in DEPTHS:
        # the three models in one vmapped, compiled run (train_batch): AE and WDAE are the
        # marginalised loss with noise variance 0, which is the clean loss; one shared initialisation
        report(f"depth: training AE / WDAE / DAE of depth {depth} on {label}")
        k_depth = jr.fold_in(key, depth)
        batch = train.train_batch(
            x,
            hidden=[int(s["hidden"])] * (depth - 1),
            key=jnp.stack([k_depth] * len(MODELS)),
            alpha=float(s["alpha"]),
            gamma=jnp.asarray([float(s["gamma"]) if m == "wdae" else 0.0 for m in MODELS], jnp.float32),
            noise=noise.gaussian(jnp.asarray([float(s["sigma2"]) if m == "dae" else 0.0 for m in MODELS],
                                             jnp.float32)),
            marginalised=True,
            epochs=int(s["epochs"]),
            save_every=int(s["save_every"]),
            spectrum=spec,
            init_scale=INIT_SCALE[depth],
            precision="highest",
            **run_progress(int(s["epochs"]), int(s["save_every"]), f"L={depth}"),
        )
        for i, model in enumerate(MODELS):
            r = _run_at(batch, i)
            c = train.compare_with_theory(r, eigvecs=spec.eigvecs)  # w0="aligned" at depth >= 3
            runs[depth, model] = (r, c)
            numbers[f"L{depth}_{model}_measured"] = np.asarray(r.mapping[:, :k])
            numbers[f"L{depth}_{model}_theory"] = np.asarray(c.discrete[:, :k])
            numbers[f"L{depth}_{model}_rmse"] = np.asarray(c.rmse_discrete[:k])
    train_seconds = time.perf_counter() - start
    report("depth: threshold diagram and learning times (closed forms, float64)")
    with jax.enable_x64(True):
        gammas = np.linspace(0.0, 0.45, 91)
        epss = np.linspace(0.0, 4.0, 81)
        w0s = np.geomspace(1e-9, 1e-1, 33)
        theory_curves = {}
        for depth in DEPTHS:
            theory_curves[depth] = dict(
                fp_gamma=np.asarray(theory.fixed_point(1.0, 0.5, gammas, depth=depth)),
                th_gamma=np.asarray(theory.learning_threshold(1.0, 0.5, gammas, depth=depth)),
                fp_eps=np.asarray(theory.fixed_point(1.0, epss, 0.0, depth=depth)),
                t_w0=np.asarray(theory.learning_time(0.5, 1.0, 0.0, 0.0, w0=w0s, depth=depth)),
            )
    fig, axes = new_figure(2, 3, width=8.0, height=5.2)
    colors = [COLORS["ae"], COLORS["wdae"], COLORS["dae"]]
    for col, model in enumerate(MODELS):
        ax = axes[0, col]
        for depth, ls in zip(DEPTHS, ("-", "--", ":"), strict=True):
            r, c = runs[depth, model]
            t = np.asarray(r.t)
            for j in range(k):
                ax.plot(t, np.asarray(r.mapping[:, j]), ".", ms=1.5, color=colors[DEPTHS.index(depth)])
                ax.plot(
                    t,
                    np.asarray(c.discrete[:, j]),
                    ls,
                    lw=0.7,
                    color=colors[DEPTHS.index(depth)],
                    label=f"L = {depth}" if j == 0 else None,
                )
        ax.set(
            xlabel="epoch",
            ylabel="mapping per direction",
            title=f"{model.upper()}: dots measured, lines theory",
        )
        if col == 0:
            ax.legend(frameon=False, fontsize=6)
    for depth, color in zip(DEPTHS, colors, strict=True):
        tc = theory_curves[depth]
        axes[1, 0].plot(gammas, tc["fp_gamma"], color=color, lw=1.0, label=f"L = {depth} learned")
        th = np.where(np.isfinite(tc["th_gamma"]), tc["th_gamma"], np.nan)
        axes[1, 0].plot(
            gammas, th, ":", color=color, lw=1.0, label=f"L = {depth} threshold" if depth > 2 else None
        )
        axes[1, 1].plot(
            epss,
            tc["fp_eps"],
            color=color,
            lw=1.0,
            ls=("-", "--", ":")[DEPTHS.index(depth)],
            label=f"L = {depth}",
        )
        axes[1, 2].loglog(w0s, tc["t_w0"], color=color, lw=1.0, label=f"L = {depth}")
    axes[1, 0].set(xlabel="weight decay γ (λ = 1, ε = 0.5, n = 1)", ylabel="w", title="learning threshold")
    axes[1, 1].set(
        xlabel="noise ε (λ = 1, γ = 0)", ylabel="learned value", title="noise: same at every depth"
    )
    axes[1, 2].set(xlabel="initial mapping w0", ylabel="time to w*/2 (τ = 1)", title="learning time vs start")
    for ax in axes[1]:
        ax.legend(frameon=False, fontsize=6)
    fig.suptitle(f"Beyond the paper: deep linear DAEs, {label}{' [quick]' if quick else ''}")
    numbers.update(
        {
            "dataset": dataset,
            "label": label,
            "note": note or "",
            "n": int(spec.n),
            "hidden": int(s["hidden"]),
            "epochs": int(s["epochs"]),
            "alpha": float(s["alpha"]),
            "gamma": float(s["gamma"]),
            "sigma2": float(s["sigma2"]),
            "init_scale": [INIT_SCALE[d] for d in DEPTHS],
            "quick": quick,
            "train_seconds": train_seconds,
            "gammas": gammas,
            "eps": epss,
            "w0s": w0s,
        }
    )
    for depth in DEPTHS:
        numbers.update({f"L{depth}_{name}": v for name, v in theory_curves[depth].items()})
    numbers["conventions"] = {
        "published": False,
        "beyond_the_paper": True,
        "training": "train.train with hidden=[H] * (L - 1), small random start, full-batch GD, float32",
        "theory": "train.compare_with_theory (default w0): discrete scalar_gd(depth=L) from each "
                  "direction's effective start (depth 2: |u_j + v_j|^2 / 4; depth >= 3: 'aligned', the "
                  "alignment model theory.random_start_mapping, docs/depth.md)",
        "closed_forms": "theory.fixed_point / learning_threshold / learning_time with depth=L",
    }
    return finish("figure_depth", fig, numbers, out_dir)
