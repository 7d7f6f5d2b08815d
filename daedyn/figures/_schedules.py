"""A tuned noise schedule against the best constant eps.

``plot_schedule_tuning``: the schedule and the held-out loss over training of a
:class:`daedyn.tune.ScheduleTuning` (two panels; numbers from
:meth:`daedyn.tune.ScheduleTuning.heldout_curve`).
``figure_schedules`` (registered as "schedules"): the same comparison on real images, confirmed by
training linear DAEs with the tuned schedule and with the best constant.
"""

from __future__ import annotations

import time

import jax
import jax.random as jr
import numpy as np

from daedyn.figures._common import (
    COLORS,
    FigureResult,
    figure_dataset,
    finish,
    new_figure,
    report,
    run_progress,
    styled,
)
from daedyn.tune import ScheduleTuning

__all__ = ["plot_schedule_tuning", "figure_schedules"]


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
    j_sched, j_const = (np.asarray(x, np.float64) for x in tuning.heldout_curve(ts))
    b.plot(ts, 100.0 * (j_sched / j_const - 1.0), color="C1",
           label=f"at T: {tuning.objective:.6g} vs {tuning.constant_objective:.6g}")
    b.axhline(0.0, color="C0", linewidth=0.8)
    b.set_xlabel("epoch t")
    b.set_ylabel("held-out objective,\nschedule vs constant (%)")
    b.legend(fontsize="small", loc="best")
    if title:
        a.figure.suptitle(title)
    return a, b


# Quick: mnist5k pooled 4 x 4 (D = 49), 4000 / 1000, T = 400 epochs, alpha = 0.2 (alpha lam_1 / N = 0.45:
# stable GD), K = 8 pieces. Full: the same images pooled 2 x 2 (D = 196, lam_1 / N four times larger, so
# alpha = 0.05 keeps alpha lam_1 / N at 0.45), K = 16, T = 2000.
SCHEDULES_QUICK = dict(n=5000, pool=4, heldout=1000, epochs=400, alpha=0.2, eval_sigma2=0.02, pieces=8,
                       w0=1e-6, saves=40, max_steps=100)
SCHEDULES_FULL = dict(n=5000, pool=2, heldout=1000, epochs=2000, alpha=0.05, eval_sigma2=0.02, pieces=16,
                      w0=1e-6, saves=50, max_steps=200)


@styled
def figure_schedules(*, quick: bool = True, out_dir=None, key: jax.Array | None = None, data_dir=None,
                     dataset: str = "mnist5k", pieces: int | None = None, epochs: int | None = None,
                     pool: int | None = None) -> FigureResult:
    """Beyond the paper: a tuned noise schedule eps(t) against the best constant eps on real images,
    confirmed by training linear DAEs with both.

    The schedule (K equal pieces on [0, T]) is tuned by :func:`daedyn.tune.tune_schedule` (the
    chained closed form, L-BFGS in log-values, from the best constant) on the held-out objective
    J = 1/(2M) sum_i ||x_i - W x_i||^2 + (s_eval^2 / 2) ||W||_F^2 (held-out
    inputs corrupted with variance s_eval^2). Two linear DAEs (H = D, marginalised noise, float64,
    the decoupling start of mapping w0 in every direction) are then trained with
    ``train.train(eps=schedule)`` and with the best constant; their J is measured on the held-out
    images from the trained weights (the recorded clean held-out loss plus (s_eval^2 / 2) times the
    sum of W's squared singular values). Left: the schedule (pieces tuned to ~0 drawn at 1e-3 times
    the constant); middle: J over training (lines: the per-direction GD recursion
    ``dynamics.scalar_gd`` with the schedule, step k uses eps(k) as training does; markers: the
    trained networks); right: J of the schedule relative to the constant, in percent. ``key`` is
    unused (the start is deterministic).

    Quick: mnist5k pooled 4 x 4 (D = 49), 4000 / 1000 images, T = 400, alpha = 0.2, s_eval^2 =
    0.02, K = 8 (15-17 s of CPU time, most of it compiling the tuning); full: pooled 2 x 2
    (D = 196), T = 2000, alpha = 0.05, K = 16.
    """
    from daedyn import data, dynamics, schedules, train, tune
    from daedyn.figures._beyond import pool_images

    del key
    s = dict(SCHEDULES_QUICK if quick else SCHEDULES_FULL)
    s.update({k: v for k, v in dict(pieces=pieces, epochs=epochs, pool=pool).items() if v is not None})
    ds, label, note = figure_dataset(dataset, n=int(s["n"]), quick=quick, data_dir=data_dir)
    x = pool_images(np.asarray(ds.x, np.float64), ds.image_shape, int(s["pool"]))
    if s["pool"] > 1:
        label += f", pooled {s['pool']}x{s['pool']} (D = {x.shape[1]})"
    epochs_, k, es2, alpha, w0 = int(s["epochs"]), int(s["pieces"]), float(s["eval_sigma2"]), \
        float(s["alpha"]), float(s["w0"])
    save_every = max(1, epochs_ // int(s["saves"]))
    start = time.perf_counter()
    with jax.enable_x64(True):
        x_tr, x_ho = data.train_heldout_split(x, int(s["heldout"]), seed=0)
        d = x_tr.shape[1]
        problem = tune.heldout_problem(x_tr, x_ho)
        report(f"schedules: tuning K = {k} pieces of eps(t) on {label}")
        r = tune.tune_schedule(problem, pieces=k, epochs=float(epochs_), alpha=alpha, eval_sigma2=es2,
                               w0=w0, max_steps=int(s["max_steps"]))
        # the constant as K equal pieces: the same pytree structure, so one compilation serves both runs
        const = schedules.piecewise_constant(r.schedule.boundaries, np.full(k, r.constant_eps))
        lam, u = problem.eigvals, np.sqrt(w0)
        predicted = {}
        for name, sched in (("schedule", r.schedule), ("constant", const)):
            w = dynamics.scalar_gd(lam, sched, u, u, alpha=alpha, n=problem.n, epochs=epochs_,
                                   save_every=save_every, check_stability=False, observables=("w",)).w
            loss = jax.vmap(lambda wt: tune.heldout_loss(wt, problem.projected, problem.n_heldout, es2))
            predicted[name] = np.asarray(loss(w.T))
        wb1, wb2 = dynamics.orthogonal_init(d, d, u, u)
        w1, w2 = dynamics.from_eigenbasis(wb1, wb2, np.asarray(problem.eigvecs))
        kw = dict(hidden=d, key=jr.key(0), epochs=epochs_, alpha=alpha, save_every=save_every,
                  marginalised=True, params={"w1": w1, "w2": w2}, precision="highest", x_heldout=x_ho,
                  observables=("singular_values", "heldout_loss"))
        trained = {}
        for name, sched in (("schedule", r.schedule), ("constant", const)):
            report(f"schedules: training a linear DAE with the {name}, {epochs_} epochs")
            run = train.train(x_tr, eps=sched, **kw, **run_progress(epochs_, save_every, name))
            sv2 = np.sum(np.asarray(run.singular_values, np.float64) ** 2, axis=-1)
            trained[name] = np.asarray(run.heldout_loss, np.float64) + es2 / 2 * sv2
            t = np.asarray(run.t, np.float64)
    seconds = time.perf_counter() - start
    values = np.asarray(r.schedule.values, np.float64)
    bounds = np.asarray(r.schedule.boundaries, np.float64)
    fig, axes = new_figure(1, 3, width=7.5, height=2.6)
    ax = axes[0, 0]
    edges = np.concatenate([[0.0], bounds, [float(epochs_)]])
    floor = 1e-3 * r.constant_eps  # pieces tuned to ~0 are drawn there
    ax.stairs(np.maximum(values, floor), edges, baseline=None, color=COLORS["dae"],
              label=f"tuned, K = {k}")
    ax.axhline(r.constant_eps, color=COLORS["ae"], lw=1.0, label=f"best constant {r.constant_eps:.3g}")
    ax.set(yscale="log", xlabel="epoch t", ylabel="eps(t) = N s^2(t)",
           title=f"(a) eps(t) (values < {floor:.2g} drawn at it)")
    ax.legend(frameon=False, fontsize=6, loc="center", bbox_to_anchor=(0.63, 0.45))
    ax = axes[0, 1]
    # the two objectives differ by < 1%, invisible on a log axis: distinct line styles and markers,
    # and an inset of the last third on a linear axis where they part
    styles = {"schedule": ("-", "x", COLORS["dae"]), "constant": ("--", "o", COLORS["ae"])}  # dashes on top
    inset = ax.inset_axes([0.36, 0.5, 0.61, 0.46])
    late = t >= t[-1] * 2 / 3
    for name, (ls, mk, c) in styles.items():
        ax.plot(t, predicted[name], ls, color=c, lw=1.0, marker=mk, ms=3, mfc="none", markevery=[],
                label=name)  # one legend entry per curve pair: its line style and (unused) marker
        ax.plot(t[::2], trained[name][::2], mk, color=c, ms=3, mfc="none")
        inset.plot(t[late], predicted[name][late], ls, color=c, lw=1.0)
        inset.plot(t[late][::2], trained[name][late][::2], mk, color=c, ms=2.5, mfc="none")
    inset.tick_params(labelsize=5)
    inset.set_title("last third, linear axis", fontsize=5)
    ax.set(yscale="log", xlabel="epoch t", ylabel="held-out objective J", title="(b) held-out objective J")
    ax.legend(frameon=False, fontsize=6, loc="lower left")
    ax = axes[0, 2]
    ax.plot(t, 100 * (predicted["schedule"] / predicted["constant"] - 1), "-", color=COLORS["dae"], lw=1.0,
            label="GD recursion")
    ax.plot(t, 100 * (trained["schedule"] / trained["constant"] - 1), "x", color="k", ms=3,
            label="trained networks")
    ax.axhline(0.0, color=COLORS["ae"], lw=0.8)
    gain = 1 - trained["schedule"][-1] / trained["constant"][-1]
    ax.set(xlabel="epoch t", ylabel="J(schedule) / J(constant) - 1 (%)",
           title=f"(c) relative: {100 * gain:.3f}% lower at T")
    ax.legend(frameon=False, fontsize=6)
    tag = " [quick]" if quick else ""
    fig.suptitle(f"Beyond the paper: a tuned noise schedule vs the best constant eps{tag}"
                 f"\n{label}; lines: GD recursion, x: trained linear DAEs")
    numbers = {"dataset": dataset, "label": label, "note": note or "", "source": ds.source,
               "n": int(problem.n), "n_heldout": int(problem.n_heldout), "d": d, "pool": int(s["pool"]),
               "epochs": epochs_, "alpha": alpha, "eval_sigma2": es2, "pieces": k, "w0": w0, "quick": quick,
               "seconds": seconds, "boundaries": bounds, "values": values, "constant_eps": r.constant_eps,
               "objective": r.objective, "constant_objective": r.constant_objective,
               "improvement": r.improvement, "trained_improvement": float(gain),
               "evaluations": int(r.result.n_evals),
               "t": t, "predicted_schedule": predicted["schedule"],
               "predicted_constant": predicted["constant"],
               "trained_schedule": trained["schedule"], "trained_constant": trained["constant"],
               "conventions": {"published": False, "beyond_the_paper": True,
                               "tuning": "tune.tune_schedule (closed form, L-BFGS in log-values)",
                               "predicted": "dynamics.scalar_gd with the schedule: GD step k uses eps(k)",
                               "trained": "train.train(eps=schedule, marginalised=True), decoupling start, "
                                          "float64; J = heldout_loss + eval_sigma2/2 * sum(sv^2)"}}
    return finish("figure_schedules", fig, numbers, out_dir)
