"""``daedyn theory``: closed-form trajectories w(t), fixed points and learning times (daedyn.theory)."""

from __future__ import annotations

import itertools
import json
import math

from daedyn.cli._files import check_out, check_plot, print_written, save_plot
from daedyn.cli._options import add_common_options, add_config_options, add_deprecated, float_list
from daedyn.cli._results import RESULT_FORMATS, write_out

HELP = "print closed-form trajectories w(t), fixed points and learning times of one eigen-direction"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "theory", help=HELP, description=HELP + " (daedyn.theory). From a general start (--w1, --w2) "
        "it evaluates Eq. (5) in its robust form (no weight decay); from a small balanced start "
        "(--w0, the default) the logistic of Eq. (7) with noise and weight decay. --lam, --eps and "
        "--gamma take comma lists; every combination is one curve. Conventions: lam is an "
        "eigenvalue of the summed second moment X^T X, eps = N s^2, tau = N / alpha, t in epochs.",
        epilog="Exit codes: 0 ok, 1 --out could not be written (the arrays are then in FILE.npz), 2 bad "
        "usage (an out-of-range value names the parameter and its allowed range).")
    p.add_argument("--lam", type=float_list, default=[1.0], metavar="LIST",
                   help="eigenvalue(s) lam >= 0 (default 1)")
    p.add_argument("--eps", type=float_list, default=[0.0], metavar="LIST",
                   help="noise level(s) eps = N s^2 >= 0 (default 0)")
    p.add_argument("--gamma", type=float_list, default=[0.0], metavar="LIST",
                   help="weight decay(s) gamma >= 0 (default 0; balanced start only)")
    p.add_argument("--n", type=float, default=1.0, help="number of samples N in n*gamma (default 1)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--w0", type=float, default=None,
                       help="small balanced start w1 = w2 = sqrt(w0), w0 >= 0 (default 1e-3)")
    start.add_argument("--w1", type=float, default=None, help="general start: first weight (needs --w2)")
    p.add_argument("--w2", type=float, default=None, help="general start: second weight (needs --w1)")
    p.add_argument("--tau", type=float, default=1.0, help="time constant tau = N / alpha > 0 (default 1)")
    p.add_argument("--depth", type=int, default=2, metavar="L",
                   help="number of weight matrices L >= 2 (default 2, the paper); L >= 3 needs the balanced "
                   "start --w0 (each factor w0^(1/L)) and also prints the learning threshold (docs/depth.md)")
    times = p.add_mutually_exclusive_group()
    times.add_argument("--t-max", type=float, default=None,
                       help="last time, > 0 (default: twice the longest finite learning time to 99%% "
                       "of the fixed point, or 10 tau)")
    times.add_argument("--times", type=float_list, default=None, metavar="LIST",
                       help="explicit times >= 0 instead of --t-max/--points")
    p.add_argument("--points", type=int, default=11, help="number of times from 0 to --t-max (default 11)")
    p.add_argument("--fraction", type=float, default=0.9,
                   help="learning time = time to reach this fraction of the fixed point, in (0, 1) "
                   "(default 0.9)")
    add_deprecated(p, "--f", "--fraction", type=float)
    p.add_argument("--eps-schedule", default=None, metavar="piecewise:B1,...:V0,...",
                   help="a piecewise-constant eps schedule instead of --eps (K boundaries in epochs, K + 1 "
                   "values; exact closed form, docs/schedules.md); the eps, fixed point and learning "
                   "time columns are then those of the last piece")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="write a PNG of w(t)")
    p.add_argument("--out", default=None, metavar="FILE.nc|.zarr|.npz|.json",
                   help="write the curves as a labelled dataset (the sweep extra): w over (lam, eps, "
                   "gamma, t), the fixed point, learning time (and threshold) over (lam, eps, gamma)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_common_options(p)
    add_config_options(p)
    p.set_defaults(func=run)


def _check(name: str, values, lo: float = -math.inf, hi: float = math.inf, *,
           lo_open: bool = False, hi_open: bool = False) -> None:
    """The library's range check (``ValueError``, exit 2, naming the option and its range) for each
    value of an option, so the message quotes the first bad one; an infinite end is open (values
    must be finite)."""
    from daedyn._checks import check_range

    for v in values if isinstance(values, list) else [values]:
        check_range(name, v, lo, hi, lo_open=lo_open or lo == -math.inf,
                    hi_open=hi_open or hi == math.inf)


def _validate(args) -> None:
    _check("--lam", args.lam, 0.0)
    _check("--eps", args.eps, 0.0)
    _check("--gamma", args.gamma, 0.0)
    _check("--n", args.n, 0.0, lo_open=True)
    _check("--tau", args.tau, 0.0, lo_open=True)
    _check("--fraction", args.fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    from daedyn._checks import check_int

    check_int("--depth", args.depth, 2)
    if args.depth > 2 and args.w1 is not None:
        raise ValueError("--depth >= 3 needs the balanced start --w0 (the general start --w1/--w2 is the "
                         "paper's two-factor Eq. (5))")
    if (args.w1 is None) != (args.w2 is None):
        raise ValueError("--w1 and --w2 go together (a general start); use --w0 for a balanced one")
    if args.w1 is not None:
        _check("--w1", args.w1, -math.inf, math.inf, hi_open=True)  # finite
        _check("--w2", args.w2, -math.inf, math.inf, hi_open=True)
        if any(g != 0 for g in args.gamma):
            raise ValueError("--gamma must be 0 with --w1/--w2 (Eq. (5) has no weight decay); "
                             "use --w0 for weight decay")
    else:
        _check("--w0", args.w0, 0.0, math.inf, hi_open=True)
    if args.times is not None:
        _check("--times", args.times, 0.0, math.inf, hi_open=True)
    else:
        if args.t_max is not None:
            _check("--t-max", args.t_max, 0.0, math.inf, lo_open=True, hi_open=True)
        _check("--points", args.points, 2, 100000)
    check_plot("--plot", args.plot)
    check_out("--out", args.out, RESULT_FORMATS)


def _dataset(args, ts, w, curves, report: dict):
    """The curves over the grid (lam, eps, gamma) of the command line (the sweeps' names): w over
    (lam, eps, gamma, t); fixed point, learning time (NaN: never) and, at depth >= 3, the learning
    threshold over (lam, eps, gamma); the start, tau, n, f and depth as attributes."""
    import numpy as np

    from daedyn import _xarray

    axes = {k: np.asarray(getattr(args, k), np.float64) for k in ("lam", "eps", "gamma")}
    grid = tuple(a.size for a in axes.values())
    dims = tuple(axes)
    column = lambda key: np.asarray([np.nan if c.get(key) is None else c[key] for c in curves],
                                    np.float64).reshape(grid)
    fields = {"w": (np.moveaxis(w, 0, -1).reshape(grid + (ts.size,)), dims + ("t",)),
              "fixed_point": (column("fixed_point"), dims), "learning_time": (column("learning_time"), dims)}
    if args.depth > 2:
        fields["threshold"] = (column("threshold"), dims)
    attrs = {k: v for k, v in report.items() if k not in ("t", "curves", "plot", "out")}
    attrs.update({k: getattr(args, k) for k in ("n", "w0", "w1", "w2", "eps_schedule")
                  if getattr(args, k) is not None})
    return _xarray.dataset(fields, time=("t", ts), coords=axes, attrs=attrs, what="daedyn theory --out")


def _curves(args):
    """One dict per (lam, eps, gamma) combination: parameters, fixed point, learning time."""
    import numpy as np

    from daedyn import theory

    combos = list(itertools.product(args.lam, args.eps, args.gamma))
    lam, eps, gamma = (np.array(v, np.float64) for v in zip(*combos))
    general = args.w1 is not None
    fixed = np.asarray(theory.fixed_point(lam, eps, gamma, args.n, depth=args.depth), np.float64)
    threshold = np.asarray(theory.learning_threshold(lam, eps, gamma, args.n, depth=args.depth), np.float64)
    if general:
        t_learn = theory.dae_learning_time(args.fraction, lam, eps, args.w1, args.w2, tau=args.tau)
    else:
        t_learn = theory.learning_time(args.fraction, lam, eps, gamma, w0=args.w0, tau=args.tau, n=args.n,
                                       depth=args.depth)
    curves = []
    for i, (la, ep, ga) in enumerate(combos):
        c = {"lam": la, "eps": ep}
        c |= {"w1": args.w1, "w2": args.w2} if general else {"gamma": ga, "n": args.n, "w0": args.w0}
        tl = float(np.asarray(t_learn)[i])
        c |= {"fixed_point": float(fixed[i]), "learning_time": tl if math.isfinite(tl) else None}
        if args.depth > 2:
            th = float(threshold[i])
            c["threshold"] = th if math.isfinite(th) else None
        curves.append(c)
    return combos, curves


def _times(args, combos):
    import numpy as np

    from daedyn import theory

    if args.times is not None:
        return np.array(args.times, np.float64)
    t_max = args.t_max
    if t_max is None:
        lam, eps, gamma = (np.array(v, np.float64) for v in zip(*combos))
        if args.w1 is not None:
            t99 = theory.dae_learning_time(0.99, lam, eps, args.w1, args.w2, tau=args.tau)
        else:
            t99 = theory.learning_time(0.99, lam, eps, gamma, w0=args.w0, tau=args.tau, n=args.n,
                                       depth=args.depth)
        t99 = np.asarray(t99, np.float64)
        finite = t99[np.isfinite(t99) & (t99 > 0)]
        t_max = 2.0 * float(finite.max()) if finite.size else 10.0 * args.tau
    return np.linspace(0.0, t_max, args.points)


def _trajectories(args, ts, combos):
    import numpy as np

    from daedyn import theory

    lam, eps, gamma = (np.array(v, np.float64) for v in zip(*combos))
    t = ts[:, None]
    if getattr(args, "schedule", None) is not None:  # --eps-schedule (parsed in run)
        eps = args.schedule
    if args.w1 is not None:
        w = theory.dae_trajectory(t, lam, eps, args.w1, args.w2, tau=args.tau)
    else:
        w = theory.small_init_trajectory(t, lam, eps, gamma, w0=args.w0, tau=args.tau, n=args.n,
                                         depth=args.depth)
    return np.asarray(w, np.float64)  # (T, curves)


def _label(c: dict) -> str:
    """A legend label in the figures' symbols: λ, ε, γ."""
    text = f"λ={c['lam']:g} ε={c['eps']:g}"
    return text + (f" γ={c['gamma']:g}" if "gamma" in c else "")


def _plot(path: str, ts, w, combos, curves, args) -> None:
    import numpy as np

    from daedyn.figures import plot_closed_form

    dense = np.linspace(0.0, float(ts.max()), 400)  # smooth curves; the printed times as dots
    start = f"w1={args.w1:g}, w2={args.w2:g}" if args.w1 is not None else f"w0={args.w0:g}"
    deep = args.depth > 2

    def reached(c):  # at depth >= 3 a start at or below the learning threshold decays to 0
        below = deep and args.w0 is not None and c.get("threshold") is not None and args.w0 <= c["threshold"]
        return 0.0 if below else c["fixed_point"]

    ax = plot_closed_form(dense, _trajectories(args, dense, combos), [_label(c) for c in curves],
                          fixed_points=[reached(c) for c in curves], t_points=ts, w_points=w,
                          title=f"closed form{f', depth {args.depth}' if deep else ''}, {start}, "
                          f"tau={args.tau:g}")
    if deep:  # the learning threshold: the smallest balanced start that is learned
        shown = False
        for c in curves:
            if c.get("threshold"):
                ax.axhline(c["threshold"], color="tab:red", ls="-.", lw=0.9,
                           label=None if shown else "learning threshold (depth L)")
                shown = True
        if shown:
            ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize="small")
        ax.set_ylabel(f"w(t) = w{args.depth} ··· w1 (depth {args.depth})")
    save_plot(ax.figure, path)


def run(args) -> int:
    if args.w1 is None and args.w0 is None:
        args.w0 = 1e-3
    args.schedule = None
    if args.eps_schedule is not None:  # the table's eps is the last piece's (docs/schedules.md)
        from daedyn.schedules import PiecewiseConstant, parse_schedule

        args.schedule = parse_schedule(args.eps_schedule)
        if not isinstance(args.schedule, PiecewiseConstant):
            raise ValueError(f"--eps-schedule: the closed forms are exact for piecewise-constant "
                             f"schedules only ('piecewise:B1,...:V0,...'); got {args.eps_schedule!r} "
                             f"(integrate it with daedyn.dynamics.scalar_flow)")
        args.eps = [float(args.schedule.values[-1])]
    from daedyn._progress import spinner

    _validate(args)
    # the deep closed forms solve an equation per point (seconds to compile): a spinner after 2 s
    with spinner(f"closed forms at depth {args.depth}", quiet=args.quiet or args.json or args.depth < 3):
        combos, curves = _curves(args)
        ts = _times(args, combos)
        sched = args.schedule
        if sched is not None and args.times is None and args.t_max is None and sched.boundaries.size:
            import numpy as np  # the default range also covers the last jump

            ts = np.linspace(0.0, max(float(ts[-1]), 2.0 * float(sched.boundaries[-1])), args.points)
        w = _trajectories(args, ts, combos)
    general = args.w1 is not None
    report = {"solution": "general (Eq. 5)" if general else "balanced (Eq. 7)", "tau": args.tau,
              "depth": args.depth, "fraction": args.fraction, "t": ts.tolist(), "curves": curves}
    for j, c in enumerate(curves):  # what --json prints, and what --out FILE.json holds
        c["w"] = w[:, j].tolist()
    lost = write_out("daedyn theory", args.out, report, lambda: _dataset(args, ts, w, curves, report),
                    lambda: {"t": ts, "w": w})
    if args.plot:
        _plot(args.plot, ts, w, combos, curves, args)
        report["plot"] = args.plot
    if args.json:
        print(json.dumps(report, indent=1))
        return lost
    deep = args.depth > 2
    start = (f"general start w1 = {args.w1:g}, w2 = {args.w2:g} (Eq. 5)" if general
             else f"balanced start w0 = {args.w0:g}, n = {args.n:g} "
             + (f"(depth {args.depth}, docs/depth.md)" if deep else "(Eq. 7)"))
    print(f"closed form, {start}, tau = {args.tau:g}")
    if args.schedule is not None:
        print(f"eps schedule {args.eps_schedule} (exact, chained per piece); the eps, fixed point and "
              f"learning time columns are those of the last piece")
    print(f"{'curve':>5}  {'lam':>9} {'eps':>9} {'gamma':>9}  {'fixed point':>12}  "
          + (f"{'threshold':>12}  " if deep else "") + f"{'t(' + format(args.fraction, 'g') + ' w*)':>12}")
    for j, c in enumerate(curves):
        tl = "never" if c["learning_time"] is None else f"{c['learning_time']:.6g}"
        th = "" if not deep else (
            ("none" if c["threshold"] is None else f"{c['threshold']:.6g}").rjust(12) + "  ")
        print(f"{j:>5}  {c['lam']:>9.4g} {c['eps']:>9.4g} {c.get('gamma', 0.0):>9.4g}  "
              f"{c['fixed_point']:>12.6g}  {th}{tl:>12}")
    print()
    print(f"{'t':>12}  " + "  ".join(f"{'w_' + str(j):>12}" for j in range(len(curves))))
    for i, t in enumerate(ts):
        print(f"{t:>12.6g}  " + "  ".join(f"{v:>12.6g}" for v in w[i]))
    print_written(report)
    return lost
