"""The schedule options of ``daedyn tune`` (``--pieces K``, ``--schedule-also``) and
``daedyn theory`` (``--eps-schedule``): parsing and formatting only; the work is
``daedyn.tune.tune_schedule`` and ``daedyn.theory.small_init_trajectory``."""

from __future__ import annotations

import json

from daedyn.cli._files import print_written, raw_arrays, save_plot
from daedyn.cli._results import write_out


def pieces_spec(text: str) -> int:
    """``piecewise:K`` -> K (the number of equal pieces); ValueError (usage, exit 2) otherwise."""
    kind, _, k = text.partition(":")
    k = k.strip()
    # isdecimal() alone would let "²" or other Unicode digits through to int()
    if kind != "piecewise" or not (k.isascii() and k.isdecimal()) or int(k) < 1:
        raise ValueError(f"--schedule must be 'piecewise:K' with an integer K >= 1 (K equal pieces); "
                         f"got {text!r}")
    return int(k)


ALSO = ("gamma", "alpha", "epochs")


def also_spec(args) -> set[str]:
    """The parameters ``--schedule-also`` names (a subset of gamma, alpha, epochs); ValueError (usage)
    for unknown names, for ``--schedule-also`` without ``--pieces`` or ``--alpha-max`` without alpha."""
    names = set()
    if getattr(args, "schedule_also", None):
        if args.pieces is None:
            raise ValueError("--schedule-also needs --pieces K")
        names = {n.strip() for n in args.schedule_also.split(",") if n.strip()}
        unknown = sorted(names - set(ALSO))
        if unknown or not names:
            raise ValueError(f"--schedule-also must be a comma list of {', '.join(ALSO)}; got "
                             f"{args.schedule_also!r}")
    if getattr(args, "alpha_max", None) is not None and "alpha" not in names:
        raise ValueError("--alpha-max bounds the learning rate of --schedule-also alpha")
    return names


def run_tune(args, xt, xh, name: str, start: float) -> int:
    """``daedyn tune --pieces K``: tune_schedule on the split, then print or JSON; ``--out``
    writes ``ScheduleTuning.to_xarray()``, ``--plot`` ``figures.plot_schedule_tuning`` (both checked
    before any work by ``daedyn.cli.tune``)."""
    import time

    import numpy as np

    from daedyn import tune

    k = args.pieces
    problem = tune.heldout_problem(xt, xh, keep_data=args.route == "train")
    also = also_spec(args)
    extra = {}
    if args.route == "train":  # the initial weights of both stages' networks
        import jax.random as jr

        extra["key"] = jr.key(args.seed)
    r = tune.tune_schedule(problem, pieces=k, epochs=args.epochs, alpha=args.alpha, **extra,
                           eval_sigma2=args.eval_sigma2, route=args.route, per_direction=args.anisotropic,
                           hidden=args.hidden, max_steps=args.max_steps, tune_gamma="gamma" in also,
                           tune_alpha="alpha" in also, alpha_max=args.alpha_max, tune_epochs="epochs" in also)
    seconds = time.perf_counter() - start
    values = np.asarray(r.schedule.values)
    report = {
        "dataset": name, "n_train": int(xt.shape[0]), "n_heldout": int(xh.shape[0]), "dim": int(xt.shape[1]),
        "route": args.route, "epochs": args.epochs, "alpha": args.alpha, "eval_sigma2": args.eval_sigma2,
        "pieces": k, "per_direction": bool(args.anisotropic),
        "boundaries": np.asarray(r.schedule.boundaries).tolist(),
        "eps": values.tolist() if not args.anisotropic else None,
        "eps_min_per_piece": values.min(axis=-1).tolist() if args.anisotropic else None,
        "eps_max_per_piece": values.max(axis=-1).tolist() if args.anisotropic else None,
        "objective": r.objective, "constant_eps": r.constant_eps, "constant_objective": r.constant_objective,
        "gamma": None if r.gamma_schedule is None else np.asarray(r.gamma_schedule.values).tolist(),
        "alpha_schedule": None if r.alpha_schedule is None else np.asarray(r.alpha_schedule.values).tolist(),
        "tuned_epochs": r.epochs if "epochs" in also else None,
        "improvement": r.improvement, "status": r.result.status, "message": r.result.message,
        "steps": r.result.n_steps, "evaluations": r.result.n_evals, "seconds": round(seconds, 3),
    }

    def dataset():
        ds = r.to_xarray()
        ds.attrs["settings"] = json.dumps({k: v for k, v in report.items() if k != "out"})
        return ds

    lost = write_out("daedyn tune", args.out, report, dataset, lambda: raw_arrays(r))
    if args.plot:  # refused before any work on route train (no closed form to draw)
        from daedyn.figures import plot_schedule_tuning

        axes = plot_schedule_tuning(r, title=f"{name}: {k}-piece eps schedule, {args.route}, "
                                    f"T = {float(r.epochs):g}")
        report["plot"] = save_plot(axes[0].figure, args.plot)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{name}: N = {report['n_train']} train, M = {report['n_heldout']} held-out, "
              f"D = {report['dim']}; "
              f"route {args.route}, T = {args.epochs:g} epochs, alpha = {args.alpha:g}, "
              f"held-out noise variance {args.eval_sigma2:g}")
        print(f"best constant eps: {r.constant_eps:.6g}, objective {r.constant_objective:.8g}")
        edges = [0.0, *report["boundaries"], float(r.epochs)]
        if "epochs" in also:
            print(f"tuned training time T: {r.epochs:.6g} epochs")
        for i in range(k):
            v = (f"{values[i]:.6g}" if not args.anisotropic
                 else f"[{values[i].min():.4g}, {values[i].max():.4g}] over directions")
            more = "".join(f", {lbl} {report[key][i]:.4g}" for lbl, key in (("gamma", "gamma"),
                                                                          ("alpha", "alpha_schedule"))
                           if report[key] is not None)
            print(f"  eps on [{edges[i]:g}, {edges[i + 1]:g}): {v}{more}")
        print(f"schedule objective: {r.objective:.8g} ({100 * r.improvement:.4f}% below the best constant)")
        print(f"{r.result.status}: {r.result.message}; {r.result.n_steps} steps, {r.result.n_evals} "
              f"evaluations, {seconds:.2f} s")
        print_written(report)
    if lost:
        return lost
    if not r.result.success:
        import sys

        print(f"daedyn tune: {r.result.message}", file=sys.stderr)
        return 1
    return 0
