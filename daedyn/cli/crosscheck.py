"""``daedyn crosscheck``: one configuration four ways (closed form, scalar GD, matrix GD, training)."""

from __future__ import annotations

import json

from daedyn.cli._files import (
    check_out,
    check_plot,
    print_written,
    raw_arrays,
    save_plot,
)
from daedyn.cli._options import (
    add_common_options,
    add_config_options,
    add_dataset_options,
    eigvals_arg,
    load_eigvals,
    seed_int,
)
from daedyn.cli._results import RESULT_FORMATS, write_out

HELP = "run one configuration four ways and say whether the theory can be trusted on it"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "crosscheck", help=HELP,
        description=HELP + ": the closed form, the scalar gradient-descent recursion per direction, "
        "full-matrix gradient descent in the eigenbasis and a real linear network trained with "
        "marginalised noise, from the same initial weights. Prints the per-direction agreement table "
        "and a verdict against the tolerances.",
        epilog="Exit codes: 0 the four agree, 1 they disagree (the table says where) or --out could not "
        "be written (the arrays are then in FILE.npz), 2 bad usage.")
    add_dataset_options(p)
    p.add_argument("--eigvals", type=eigvals_arg, default=None, metavar="LIST|FILE.npy",
                   help="a spectrum of Sigma = X^T X instead of data, a comma list or a .npy file (needs "
                   "--n >= its length)")
    noise = p.add_mutually_exclusive_group()
    noise.add_argument("--sigma2", type=float, default=None,
                       help="Gaussian noise variance s^2 (marginalised; eps = N s^2)")
    noise.add_argument("--eps", type=float, default=None, help="noise level eps = N s^2 (default 0)")
    noise.add_argument("--eps-schedule", default=None, metavar="piecewise:B1,...:V0,...",
                       help="a piecewise-constant schedule of eps instead (every way runs under it; "
                       "w* is the last piece's; docs/schedules.md)")
    p.add_argument("--gamma", type=float, default=0.0, help="weight decay (default 0)")
    p.add_argument("--alpha", type=float, default=0.01, help="learning rate (default 0.01)")
    p.add_argument("--hidden", type=int, default=16, help="hidden units H (default 16)")
    p.add_argument("--epochs", type=int, default=1000, help="epochs (default 1000)")
    p.add_argument("--save-every", type=int, default=None, metavar="K",
                   help="epochs between records (default epochs / 100)")
    p.add_argument("--init", choices=("random", "orthogonal"), default="random",
                   help="the network's random start (default) or section 3.2's balanced decoupled start")
    p.add_argument("--init-scale", type=float, default=1e-3, help="initial weight scale (default 1e-3)")
    p.add_argument("--fraction", type=float, default=0.5,
                   help="learning time = time to reach this fraction of w* (default 0.5)")
    p.add_argument("--tol-max", type=float, default=None, help="max |difference| tolerance (0.1)")
    p.add_argument("--tol-rmse", type=float, default=None, help="RMSE difference tolerance (0.02)")
    p.add_argument("--tol-time", type=float, default=None, help="learning-time relative tolerance (0.05)")
    p.add_argument("--top", type=int, default=8, help="directions to print (default 8)")
    p.add_argument("--seed", type=seed_int, default=0, help="PRNG seed of the initial weights")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="plot the four ways and the differences")
    p.add_argument("--out", default=None, metavar="FILE.nc|.zarr|.npz|.json",
                   help="write the four trajectories, learning times and differences as a labelled "
                   "dataset (the sweep extra): mapping over (way, epoch, direction), lam along direction")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_common_options(p)
    add_config_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import jax.random as jr

    from daedyn import crosscheck as cc
    from daedyn import data
    from daedyn._checks import check_range

    check_plot("--plot", args.plot)
    check_out("--out", args.out, RESULT_FORMATS)
    check_range("--top", args.top, 1)
    for opt, v in (("--tol-max", args.tol_max), ("--tol-rmse", args.tol_rmse), ("--tol-time", args.tol_time)):
        if v is not None:
            check_range(opt, v, 0.0)
    if args.save_every is not None:
        check_range("--save-every", args.save_every, 1)
        if args.epochs % args.save_every:
            raise ValueError(f"--save-every must divide --epochs = {args.epochs}; got {args.save_every}")
    tol = cc.Tolerances()._replace(**{k: v for k, v in (("max_diff", args.tol_max), ("rmse", args.tol_rmse),
                                                         ("time_rel", args.tol_time)) if v is not None})
    if args.eigvals is not None:
        args.eigvals = load_eigvals("--eigvals", args.eigvals).tolist()
        x, n = None, args.n
    else:
        ds, _ = data.load_dataset(args.dataset, n=args.n, data_dir=args.data_dir, subset=args.subset,
                                  seed=args.subset_seed)
        x, n = ds, ds.x.shape[0]  # the Dataset: crosscheck records its subset
    if args.sigma2 is not None:
        check_range("--sigma2", args.sigma2, 0.0)
        if n is None:
            raise ValueError("--sigma2 with --eigvals needs --n")
        eps = float(n) * args.sigma2
    elif args.eps_schedule is not None:
        from daedyn.schedules import parse_schedule

        eps = parse_schedule(args.eps_schedule)
    else:
        eps = 0.0 if args.eps is None else args.eps
    from daedyn._progress import spinner

    # four computations (closed form, recursion, full-matrix GD, training): seconds to minutes
    with spinner("crosscheck: closed form, scalar recursion, full-matrix GD and training",
                 quiet=args.quiet or args.json):
        r = cc.crosscheck(x, eigvals=args.eigvals, n=n, eps=eps, gamma=args.gamma, alpha=args.alpha,
                          hidden=args.hidden, epochs=args.epochs, save_every=args.save_every, init=args.init,
                          init_scale=args.init_scale, key=jr.key(args.seed), fraction=args.fraction,
                          tolerances=tol)
    report = r.to_dict()
    lost = write_out("daedyn crosscheck", args.out, report, r.to_xarray, lambda: raw_arrays(r))
    if args.plot:
        from daedyn import figures

        report["plot"] = save_plot(figures.plot_crosscheck(r), args.plot)
    if args.json:
        report.setdefault("plot", None)
        print(json.dumps(report, indent=1))
    else:
        _print_table(r, args.top)
        print_written(report)
    return lost or (0 if r.verdict else 1)


def _fmt(v) -> str:
    return "-" if v != v else f"{v:.3g}"


def _print_table(r, top: int) -> None:
    s = r.settings
    eps = (f"{s['eps']:g}" if not isinstance(s["eps"], dict)
           else f"schedule {s['eps']['values']} switching at {s['eps']['boundaries']}")
    print(f"crosscheck: N = {s['n']}, D = {s['d']}, H = {s['hidden']}, eps = {eps}, "
          f"gamma = {s['gamma']:g}, alpha = {s['alpha']:g}, {s['epochs']} epochs, init {s['init']}")
    k = min(top, len(r.eigvals))
    head = ["j", "lam", "a*lam/N", "w*"] + [f"t_{w}" for w in r.times] + [f"rmse {p}" for p in r.pairs]
    rows = []
    for j in range(k):
        rows.append([str(j), _fmt(r.eigvals[j]), _fmt(r.alpha_lam_over_n[j]), _fmt(r.fixed_point[j])]
                    + [_fmt(t[j]) for t in r.times.values()] + [_fmt(d["rmse"][j]) for d in r.pairs.values()])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    for row in [head, *rows]:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    for w in s["warnings"]:
        print(f"warning: {w}")
    t = r.tolerances
    print(f"verdict: {'AGREE' if r.verdict else 'DISAGREE'} (tolerances: max {t.max_diff:g}, "
          f"rmse {t.rmse:g}, "
          f"learning time {t.time_rel:g} relative, directions with w* >= {t.min_fixed_point:g})")
    for f in r.failures:
        print(f"  {f}")
