"""``daedyn simulate``: integrate the scalar or the full-matrix learning dynamics from the command line."""

from __future__ import annotations

import json
import math
import sys
import time

from daedyn.cli._corruption import add_corruption_options, check_cov_dim, load_cov
from daedyn.cli._files import (
    check_out,
    check_plot,
    raw_arrays,
    save_plot,
)
from daedyn.cli._options import (
    add_common_options,
    add_config_options,
    add_deprecated,
    eigvals_arg,
    float_list,
    load_eigvals,
    seed_int,
)
from daedyn.cli._results import RESULT_FORMATS, write_out

HELP = "integrate the learning dynamics of one eigen-direction (a grid of settings) or of the full matrices"

# Long gradient-descent runs go in pieces of about this many trajectory-epochs, reporting progress
# (daedyn.dynamics._simulate.CHUNK_WORK; a module constant here so that tests can shrink it).
_CHUNK_WORK = 50_000_000


def _num(x) -> float | None:
    """A JSON-safe float: None for NaN / inf (a diverged run)."""
    x = float(x)
    return x if x == x and abs(x) != float("inf") else None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate", help=HELP, description=HELP + " (daedyn.dynamics). Scalar mode integrates Eqs. "
        "(2)-(3) with weight decay for every combination of the --lam, --eps, --gamma, --alpha lists "
        "and prints the final mapping w = w1 w2, the fixed point and the largest deviation from the "
        "closed form of the flow (where one exists: gamma = 0, or a balanced start w1 = w2). "
        "Matrix mode (--matrix) runs (W1, W2) in the eigenbasis of a spectrum and prints the mapping "
        "of every direction at the end.", epilog="Conventions: lam is an eigenvalue of the summed second "
        "moment, eps = N s^2, tau = N / alpha, time in epochs (docs/dynamics.md). Exit codes: 0 ok, "
        "1 non-finite result, 2 bad usage.")
    p.add_argument("--lam", type=float_list, default=[1.0], metavar="L[,L...]",
                   help="eigenvalue(s) lam (default 1); matrix mode: the top eigenvalue of the default "
                   "spectrum lam_j = lam * 100^(-j / (D - 1))")
    p.add_argument("--eps", type=float_list, default=[0.0], metavar="E[,E...]",
                   help="noise level(s) eps = N s^2 (default 0)")
    p.add_argument("--gamma", type=float_list, default=[0.0], metavar="G[,G...]",
                   help="weight decay(s) gamma (default 0)")
    p.add_argument("--alpha", type=float_list, default=[0.01], metavar="A[,A...]",
                   help="learning rate(s) alpha (default 0.01); tau = n / alpha")
    p.add_argument("--n", type=float, default=1.0, help="number of samples N (default 1)")
    p.add_argument("--w1", type=float, default=0.01, help="initial w1 (matrix mode: diagonal of D1) (0.01)")
    p.add_argument("--w2", type=float, default=0.01, help="initial w2 (matrix mode: diagonal of D2) (0.01)")
    p.add_argument("--epochs", type=int, default=1000, help="epochs to run (default 1000)")
    p.add_argument("--save-every", type=int, default=None,
                   help="epochs between saved points (default: about 200 saves)")
    p.add_argument("--method", choices=("gd", "rk4", "diffrax"), default="gd",
                   help="gd: the exact gradient-descent recursion (default); rk4 / diffrax: the "
                   "continuous flow (diffrax: scalar mode only)")
    p.add_argument("--dt", type=float, default=None, help="largest RK4 step in epochs (default: automatic "
                   "in scalar mode, 0.1 in matrix mode)")
    p.add_argument("--backend", choices=("auto", "pallas", "jnp", "scan"), default="auto",
                   help="scalar GD engine (default auto: Pallas on GPU; elsewhere scan, or fused jnp when "
                   "saving every 50th epoch or sparser)")
    p.add_argument("--precision", choices=("default", "high", "highest"), default=None,
                   help="matmul precision in matrix mode (validate with highest or --x64)")
    p.add_argument("--out", default=None, metavar="FILE.nc|.zarr|.npz|.json",
                   help="write the run as a labelled dataset (the sweep extra): scalar mode, the "
                   "trajectories over (lam, eps, gamma, alpha, epoch) (t for the flows; at --depth L also "
                   "every factor over 'factor'), with the closed form; matrix mode, the mapping over "
                   "(epoch, direction) with lam, the closed form and the final weight matrices")
    matrix = p.add_argument_group("matrix mode")
    matrix.add_argument("--matrix", action="store_true", help="full-matrix dynamics of (W1, W2)")
    matrix.add_argument("--dim", type=int, default=10, help="input dimension D (default 10)")
    matrix.add_argument("--hidden", type=int, default=None, help="hidden units H (default D)")
    matrix.add_argument("--init", choices=("orthogonal", "random"), default="orthogonal",
                        help="orthogonal: W1 = R D1, W2 = D2 R^T from --w1/--w2 (section 3.2, decoupled); "
                        "random: i.i.d. N(0, init_scale^2) entries")
    matrix.add_argument("--init-scale", type=float, default=1e-2,
                        help="standard deviation of the random init's entries (default 0.01)")
    add_deprecated(matrix, "--scale", "--init-scale", type=float)
    matrix.add_argument("--seed", type=seed_int, default=0,
                        help="PRNG seed of R / the random init (default 0)")
    matrix.add_argument("--eigvals", type=eigvals_arg, default=None, metavar="LIST|FILE.npy",
                        help="spectrum (D,): a comma list or a .npy file, instead of the default (sorted "
                        "descending)")
    matrix.add_argument("--noise", choices=("none", "masking", "gaussian"), default="none",
                        help="masking: inverted-dropout noise at rate --p on the spectrum of --dataset; "
                        "the full term V^T C V, C = p / (1 - p) diag(Sigma), couples the directions and N "
                        "is the dataset's size (docs/corruption.md); gaussian: the covariance --cov "
                        "(C = N cov)")
    add_corruption_options(matrix)
    matrix.add_argument("--p", type=float, default=None, help="masking rate in [0, 1) (with --noise masking)")
    matrix.add_argument("--dataset", default=None, metavar="NAME|FILE.npy",
                        help="the data whose spectrum and masking term --noise masking uses (e.g. mnist5k)")
    matrix.add_argument("--data-dir", default=None, metavar="DIR", help="folder with local dataset files")
    p.add_argument("--eps-schedule", default=None, metavar="SPEC",
                   help="an eps schedule instead of --eps (scalar and matrix mode): "
                   "'piecewise:B1,...:V0,...', 'linear:START,END,T_END' or 'exponential:START,END,T_END' "
                   "(docs/schedules.md); the "
                   "eps and fixed point columns are then those at the last epoch")
    p.add_argument("--depth", type=int, default=2, metavar="L",
                   help="number of weight matrices L >= 2 (default 2); L >= 3 runs the depth-L dynamics: "
                   "the first L - 1 factors start at --w1, the last at --w2; matrix mode has L - 1 hidden "
                   "layers of --hidden units (docs/depth.md)")
    p.add_argument("--plot", default=None, metavar="OUT.png", help="write the trajectories to an image")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_common_options(p)
    add_config_options(p)
    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------------


def _silent(msg: str) -> None:
    pass


def _say(args):
    if args.quiet or args.json:
        return _silent
    return lambda msg: print(f"  {msg}", file=sys.stderr, flush=True)


def _checked_ints(args):
    from daedyn._checks import check_range

    for name in ("lam", "eps", "gamma"):
        check_range(f"--{name}", getattr(args, name), 0.0)
    check_range("--alpha", args.alpha, 0.0, lo_open=True)
    check_range("--n", args.n, 0.0, lo_open=True)
    check_range("--epochs", args.epochs, 1)
    every = args.save_every if args.save_every is not None else max(1, args.epochs // 200)
    if args.save_every is None:
        while args.epochs % every:
            every -= 1
    check_range("--save-every", every, 1)
    if args.epochs % every:
        raise ValueError(f"--epochs ({args.epochs}) must be a multiple of --save-every ({every})")
    if args.dt is not None:
        check_range("--dt", args.dt, 0.0, lo_open=True)
    for name in ("w1", "w2", "init_scale"):
        check_range(f"--{name.replace('_', '-')}", getattr(args, name), -math.inf, math.inf)  # finite
    check_range("--init-scale", args.init_scale, 0.0)
    for a in args.alpha:  # tau = n / alpha must be a finite positive number
        tau = args.n / a
        if not 0.0 < tau < math.inf:
            raise ValueError(f"--n / --alpha (the time constant tau) must be a finite positive number; got "
                             f"--n {args.n:g} / --alpha {a:g} = {tau:g}")
    check_plot("--plot", args.plot)
    check_out("--out", args.out, RESULT_FORMATS)
    return every


def _progress(args, every: int, batch: int):
    """A progress bar on stderr for gradient-descent runs in several pieces, else None (also with
    --quiet or --json)."""
    from daedyn._progress import progress_bar

    if args.quiet or args.json or args.method != "gd":
        return None
    n_saves = args.epochs // every  # simulate_* run whole save intervals of about _CHUNK_WORK each
    pieces = n_saves > 1 and _CHUNK_WORK // max(1, batch * every) < n_saves
    return progress_bar("epochs") if pieces else None


def run(args) -> int:
    from daedyn._checks import check_int

    check_int("--depth", args.depth, 2)
    if not args.matrix and (args.noise != "none" or args.p is not None or args.dataset is not None
                            or args.cov is not None or args.raw):
        raise ValueError("--noise masking/gaussian, --p, --cov, --raw and --dataset need --matrix (the "
                         "coupled full-matrix run)")
    args.schedule = None
    if args.eps_schedule is not None:  # the table's eps is the value at the last epoch
        from daedyn.schedules import parse_schedule

        if args.matrix and args.noise != "none":
            raise ValueError("--eps-schedule schedules the isotropic eps: drop --noise (a scheduled (D, D) "
                             "term has no CLI form; in Python: dynamics.matrix_gd(..., eps_dims=2) with "
                             "schedules.piecewise_constant(..., matrix=True))")
        args.schedule = parse_schedule(args.eps_schedule)
        args.eps = [float(args.schedule(float(args.epochs)))]
    return _run_matrix(args) if args.matrix else _run_scalar(args)


def _scalar_closed_form(t, lam, eps, gamma, n, w1, w2, tau, depth=2):
    """w(t) of the flow: Eq. (5) for gamma = 0 (depth 2), the balanced solution for w1 = w2 (> 0 at
    depth L >= 3, every factor w1, w0 = w1^L); NaN elsewhere."""
    import numpy as np

    from daedyn import theory

    if depth > 2:
        shape = np.broadcast_shapes(*(np.shape(x) for x in (t, lam, gamma, tau)),
                                    () if hasattr(eps, "boundaries") else np.shape(eps))
        if not (w1 == w2 and w1 > 0):
            return np.full(shape, np.nan)
        out = theory.small_init_trajectory(t, lam, eps, gamma, w0=w1 ** depth, tau=tau, n=n, depth=depth)
        return np.broadcast_to(np.asarray(out, np.float64), shape)
    general = np.asarray(theory.dae_trajectory(t, lam, eps, w1, w2, tau=tau))
    w0 = w1 * w2 if w1 == w2 else 0.0  # the balanced form only applies (and is only used) when w1 = w2
    balanced = np.asarray(theory.small_init_trajectory(t, lam, eps, gamma, w0=w0, tau=tau, n=n))
    out = np.where(gamma == 0, general, np.where(w1 == w2, balanced, np.nan))
    return np.broadcast_to(out, np.broadcast_shapes(general.shape, balanced.shape))


def _print_scalar_rows(rows: list[dict], threshold: bool = False) -> None:
    """The table of scalar mode, one row per setting (with the depth-L learning threshold column)."""
    print(f"{'lam':>9} {'eps':>9} {'gamma':>9} {'alpha':>9} {'w(T)':>11} {'fixed pt':>11} "
          + (f"{'threshold':>11} " if threshold else "") + f"{'max|w - closed form|':>21}")
    for r in rows:
        d = "n/a" if r["max_dev_closed_form"] is None else f"{r['max_dev_closed_form']:.3g}"
        w = "nan" if r["w_final"] is None else f"{r['w_final']:.6g}"
        th = ("none" if r["threshold"] is None else f"{r['threshold']:.6g}") if threshold else None
        print(f"{r['lam']:>9.4g} {r['eps']:>9.4g} {r['gamma']:>9.4g} {r['alpha']:>9.4g} "
              f"{w:>11} {r['fixed_point']:>11.6g} " + (f"{th:>11} " if threshold else "") + f"{d:>21}")


def _run_scalar(args) -> int:
    import jax.numpy as jnp
    import numpy as np

    from daedyn import dynamics, theory
    from daedyn._extras import require
    from daedyn.dynamics import simulate_scalar

    every = _checked_ints(args)
    say = _say(args)
    grid = np.meshgrid(args.lam, args.eps, args.gamma, args.alpha, indexing="ij")
    lam, eps, gamma, alpha = (g.ravel() for g in grid)
    dtype = jnp.result_type(float)
    c = [jnp.asarray(x, dtype) for x in (lam, eps, gamma, alpha)]
    n, tau = args.n, args.n / alpha
    batch = lam.size
    start = time.perf_counter()
    if args.method == "diffrax":
        require("diffrax", what="daedyn simulate --method diffrax")
    if args.method != "gd":
        say(f"integrating the flow ({args.method}) for {batch} setting(s) ...")
    eps_run = c[1] if args.schedule is None else args.schedule  # --eps-schedule
    depth = args.depth
    tr = simulate_scalar(c[0], eps_run, jnp.full(batch, args.w1, dtype), jnp.full(batch, args.w2, dtype),
                         alpha=c[3], gamma=c[2], n=n, epochs=args.epochs, save_every=every,
                         method=args.method, dt=args.dt, backend=args.backend, depth=depth,
                         progress=_progress(args, every, batch), chunk_work=_CHUNK_WORK)
    t = np.asarray(tr.t, np.float64)
    w1s, w2s, ws, losses = (np.asarray(x) for x in (tr.w1, tr.w2, tr.w, tr.loss))
    seconds = time.perf_counter() - start
    from daedyn.schedules import PiecewiseConstant

    eps_closed = eps[:, None] if args.schedule is None else args.schedule
    closed = (np.full(ws.shape, np.nan) if args.schedule is not None and not isinstance(args.schedule,
              PiecewiseConstant) else  # continuous schedules have no closed form
              _scalar_closed_form(t[None, :], lam[:, None], eps_closed, gamma[:, None], n, args.w1, args.w2,
                                  tau[:, None], depth))
    fixed = np.asarray(theory.fixed_point(lam, eps, gamma, n, depth=depth))
    threshold = (np.asarray(theory.learning_threshold(lam, eps, gamma, n, depth=depth), np.float64)
                 if depth > 2 else None)
    has_closed = ~np.isnan(closed[:, 0])
    dev = np.max(np.abs(np.where(has_closed[:, None], ws - closed, 0.0)), axis=1)
    dev = np.where(has_closed, dev, np.nan)
    rows = [{"lam": float(lam[i]), "eps": float(eps[i]), "gamma": float(gamma[i]), "alpha": float(alpha[i]),
             "w_final": _num(ws[i, -1]), "w1_final": _num(w1s[i, -1]), "w2_final": _num(w2s[i, -1]),
             "fixed_point": float(fixed[i]), "loss_final": _num(losses[i, -1]),
             "max_dev_closed_form": _num(dev[i]),
             **({"threshold": _num(threshold[i])} if depth > 2 else {})} for i in range(batch)]
    report = {"mode": "scalar", "method": args.method, "epochs": args.epochs, "save_every": every,
              "n": n, "w1": args.w1, "w2": args.w2, "seconds": round(seconds, 3), "settings": rows,
              **({"depth": depth} if depth > 2 else {})}
    if args.method == "gd":
        from daedyn.schedules import is_schedule

        continuous = is_schedule(args.schedule) and not isinstance(args.schedule, PiecewiseConstant)
        report["backend"] = dynamics.choose_backend(args.backend, epochs=args.epochs, save_every=every,
                                                    observables="all", continuous=continuous)
    lost = _save_out(args, report, lambda: scalar_dataset(args, tr, closed, report),
                     lambda: {**raw_arrays(tr), "closed_form": closed})
    if args.plot:
        from daedyn.figures import plot_scalar_runs

        labels = [f"lam={lam[i]:g} eps={eps[i]:g} gamma={gamma[i]:g} alpha={alpha[i]:g}"
                  for i in range(batch)]
        save_plot(plot_scalar_runs(t, ws, labels, closed=closed).figure, args.plot)
        report["plot"] = args.plot
    finite = bool(np.all(np.isfinite(ws[:, -1])))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        label = {"gd": f"gradient descent ({report.get('backend')})", "rk4": "flow, RK4",
                 "diffrax": "flow, diffrax Tsit5"}[args.method]
        if depth > 2:
            print(f"depth-{depth} scalar dynamics, {label}: {batch} setting(s), {args.epochs} epochs, "
                  f"n = {n:g}, start: {depth - 1} factor(s) {args.w1:g}, last {args.w2:g} ({seconds:.2f} s)")
        else:
            print(f"scalar dynamics, {label}: {batch} setting(s), {args.epochs} epochs, n = {n:g}, "
                  f"start w1 = {args.w1:g}, w2 = {args.w2:g} ({seconds:.2f} s)")
        _print_scalar_rows(rows, threshold=depth > 2)
        if depth > 2:
            balanced = args.w1 == args.w2 and args.w1 > 0
            print(f"closed form: the balanced depth-{depth} flow with tau = n / alpha and w0 = w1^{depth} "
                  f"({'GD differs by O(alpha)' if balanced else 'n/a: the start is not balanced'}); "
                  "threshold: the smallest balanced start that is learned")
        elif args.method == "gd":
            print("closed form: the continuous flow with tau = n / alpha (GD differs from it by O(alpha))")
        if args.plot:
            print(f"wrote {args.plot}")
        if args.out and "out_error" not in report:
            print(f"wrote {report['out']}")
    if lost:
        return lost
    if not finite:
        print("daedyn simulate: non-finite weights at the end (diverged)", file=sys.stderr)
        return 1
    return 0


def _save_out(args, report: dict, build, raw) -> int:
    """Write ``--out`` (``build()``, a dataset; ``raw()`` to ``<out>.npz`` if that fails, exit 1)."""
    return write_out("daedyn simulate", args.out, report, build, raw)


def _settings(report: dict) -> str:
    return json.dumps({k: v for k, v in report.items() if k not in ("settings", "directions", "out")})


def scalar_dataset(args, tr, closed, report):
    """The scalar runs over the grid (lam, eps, gamma, alpha) of the command line (the sweeps' names),
    by the trajectory's fields (any depth: :func:`daedyn._xarray.scalar_trajectory`), plus the
    closed form (where there is one) and the fixed point, learning threshold, ... of every setting."""
    import numpy as np

    from daedyn import _xarray

    axes = {k: np.asarray(getattr(args, k), np.float64) for k in ("lam", "eps", "gamma", "alpha")}
    grid = tuple(a.size for a in axes.values())
    time_dim = "epoch" if args.method == "gd" else "t"
    ds = _xarray.scalar_trajectory(tr, batch_shape=grid, batch_dims=tuple(axes), coords=axes,
                                   time_dim=time_dim, attrs={"depth": getattr(args, "depth", 2)},
                                   what="daedyn simulate --out")
    if closed is not None:
        ds["closed_form"] = (tuple(axes) + (time_dim,), np.asarray(closed).reshape(grid + (-1,)))
    for key in ("fixed_point", "threshold"):
        values = [r.get(key) for r in report["settings"]]
        if any(v is not None for v in values):
            ds[key] = (tuple(axes), np.asarray([np.nan if v is None else v for v in values],
                                               np.float64).reshape(grid))
    ds.attrs["settings"] = _settings(report)
    return ds


def matrix_dataset(args, tr, lam, fixed, closed, report):
    """A matrix run (any depth, :func:`daedyn._xarray.matrix_trajectory`): mapping over (epoch,
    direction) with ``lam`` along ``direction``, the fixed point and closed form per direction, the
    final weight matrices."""
    import numpy as np

    from daedyn import _xarray

    time_dim = "epoch" if args.method == "gd" else "t"
    ds = _xarray.matrix_trajectory(tr, eigvals=np.asarray(lam, np.float64), time_dim=time_dim,
                                   attrs={"depth": getattr(args, "depth", 2)}, what="daedyn simulate --out")
    ds["fixed_point"] = (("direction",), np.asarray(fixed, np.float64))
    if closed is not None:
        ds["closed_form"] = ((time_dim, "direction"), np.asarray(closed, np.float64))
    ds.attrs["settings"] = _settings(report)
    return ds


def _spectrum(args):
    import numpy as np

    if args.eigvals:
        lam = load_eigvals("--eigvals", args.eigvals)
        return np.sort(np.asarray(lam, np.float64))[::-1]
    if args.dim < 1:
        raise ValueError(f"--dim must be >= 1; got {args.dim}")
    return args.lam[0] * 100.0 ** (-np.arange(args.dim) / max(1, args.dim - 1))


def _masking(args, say):
    """(lam (D,), V^T C V (D, D), N, spectrum, corruption value) for ``--noise masking`` or
    ``gaussian``, from the dataset's spectrum; else None."""
    import numpy as np

    from daedyn._checks import check_range

    if args.noise == "none":
        if args.p is not None or args.dataset is not None or args.cov is not None or args.raw:
            raise ValueError("--p, --raw and --dataset go with --noise masking, --cov with --noise gaussian")
        return None
    if args.raw and args.noise != "masking":
        raise ValueError("--raw goes with --noise masking (the mask without the 1 / (1 - p) rescaling)")
    if args.noise == "gaussian":
        if args.cov is None or args.dataset is None or args.p is not None:
            raise ValueError("--noise gaussian in matrix mode needs --cov FILE.npy and --dataset (N and "
                             "the eigenbasis), not --p (isotropic noise is --eps)")
    elif args.p is None or args.dataset is None or args.cov is not None:
        raise ValueError("--noise masking needs --p (the rate) and --dataset (whose spectrum it uses), "
                         "not --cov")
    else:
        check_range("--p", args.p, 0.0, 1.0, hi_open=True)
    if args.eigvals or args.n != 1.0 or args.eps != [0.0]:
        raise ValueError(f"--noise {args.noise} takes the spectrum and N from --dataset and its own noise "
                         "term: drop --eigvals, --n and --eps")
    from daedyn import data, noise, spectrum

    nz = noise.masking(args.p, rescale=not args.raw) if args.noise == "masking" else load_cov(args.cov)
    ds, _ = data.load_dataset(args.dataset, data_dir=args.data_dir)
    if args.noise == "gaussian":
        check_cov_dim(nz, ds.x.shape[1])
    say(f"{ds.name}: N = {ds.x.shape[0]}, D = {ds.x.shape[1]}; spectrum and {args.noise} term ...")
    spec = spectrum.compute_spectrum(ds.x)
    c = nz.marginal_term(spec)
    return np.asarray(spec.eigvals, np.float64), np.asarray(c), float(ds.x.shape[0]), spec, nz


def _run_matrix(args) -> int:
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    from daedyn import dynamics, theory
    from daedyn.dynamics import simulate_matrix

    if args.method == "diffrax":
        raise ValueError("--method diffrax is available in scalar mode only (use gd or rk4 with --matrix)")
    depth = args.depth
    for name in ("eps", "gamma", "alpha"):
        if len(getattr(args, name)) != 1:
            raise ValueError(f"--{name} takes one value in matrix mode; got {getattr(args, name)}")
    every = _checked_ints(args)
    say = _say(args)
    masked = _masking(args, say)
    lam = _spectrum(args) if masked is None else masked[0]
    d = lam.size
    h = d if args.hidden is None else args.hidden
    if h < 1:
        raise ValueError(f"--hidden must be >= 1; got {h}")
    eps, gamma, alpha, n = args.eps[0], args.gamma[0], args.alpha[0], args.n
    eps_run, eps_dims = (eps if args.schedule is None else args.schedule), 0  # --eps-schedule
    if masked is not None:  # the coupled term runs; the theory columns use its diagonal eps_j
        _, term, n, spec, nz = masked
        eps, eps_run, eps_dims = np.diagonal(term), None, 0
    dtype = jnp.result_type(float)
    key = jr.key(args.seed)
    if args.init == "orthogonal":  # the first L - 1 factors' diagonals at --w1, the last at --w2
        ws = dynamics.orthogonal_init(d, h, *([args.w1] * (depth - 1)), args.w2, key=key, dtype=dtype)
    else:
        ws = dynamics.random_init(d, h, init_scale=args.init_scale, key=key, dtype=dtype, depth=depth)
    lam_j = jnp.asarray(lam, dtype) if masked is None else spec  # a corruption value needs the basis
    kw = dict(eps=eps_run, gamma=gamma, n=n, precision=args.precision, eps_dims=eps_dims,
              noise=None if masked is None else nz)
    start = time.perf_counter()
    if args.method != "gd":
        say(f"integrating the depth-{depth} matrix flow (RK4) D = {d}, H = {h} ...")
    tr = simulate_matrix(lam_j, *ws, alpha=alpha, epochs=args.epochs, save_every=every,
                         method=args.method, dt=args.dt or 0.1,
                         progress=_progress(args, every, sum(int(w.size) for w in ws)),
                         chunk_work=_CHUNK_WORK, **kw)
    mapping, loss = np.asarray(tr.mapping), np.asarray(tr.loss)
    seconds = time.perf_counter() - start
    t = np.arange(0, args.epochs + 1, every, dtype=np.float64)
    k = min(d, h)
    fixed = np.where(np.arange(d) < k, np.asarray(theory.fixed_point(lam, eps, gamma, n, depth=depth)), 0.0)
    if args.raw:  # the raw mask's network is the inverted one's over 1 - p (docs/corruption.md)
        fixed = fixed / (1 - args.p)
    closed = None
    from daedyn.schedules import PiecewiseConstant

    exact = args.schedule is None or isinstance(args.schedule, PiecewiseConstant)  # continuous: none
    balanced = args.w1 == args.w2 and (depth == 2 or args.w1 > 0)
    if args.init == "orthogonal" and ((gamma == 0 and depth == 2) or balanced) and exact and not args.raw:
        closed = np.zeros((t.size, d))
        eps_k = eps[None, :k] if np.ndim(eps) else eps
        eps_k = eps_k if args.schedule is None else args.schedule
        closed[:, :k] = _scalar_closed_form(t[:, None], lam[None, :k], eps_k, gamma, n, args.w1, args.w2,
                                            n / alpha, depth)
    final = mapping[-1]
    report = {"mode": "matrix", "method": args.method, "dim": d,
              "hidden": h if depth == 2 else [h] * (depth - 1), "init": args.init,
              "epochs": args.epochs, "save_every": every, "gamma": gamma, "alpha": alpha,
              "eps": float(eps) if masked is None else None, "noise": args.noise, "p": args.p,
              "raw": args.raw, "cov": args.cov,
              "n": n, "seconds": round(seconds, 3), "loss_final": _num(loss[-1]),
              **({"depth": depth} if depth > 2 else {})}
    _add_directions(report, args, t, lam, mapping, fixed, closed)
    lost = _save_out(args, report, lambda: matrix_dataset(args, tr, lam, fixed, closed, report),
                     lambda: {**raw_arrays(tr), "lam": lam, "fixed_point": fixed, "closed_form": closed})
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        level = f"eps = {eps:g}" if masked is None else (
            f"{'raw ' if args.raw else ''}masking p = {args.p:g} (coupled; theory: eps_j)"
            if args.noise == "masking" else
            f"gaussian cov {args.cov} (coupled; theory: eps_j)")
        what = "matrix dynamics" if depth == 2 else f"depth-{depth} matrix dynamics"
        width = f"H = {h}" if depth == 2 else f"hidden {[h] * (depth - 1)}"
        print(f"{what} ({'gradient descent' if args.method == 'gd' else 'flow, RK4'}), D = {d}, "
              f"{width}, {args.init} init, {level}, "
              f"gamma = {gamma:g}, alpha = {alpha:g}, n = {n:g}, "
              f"{args.epochs} epochs ({seconds:.2f} s)")
        _print_directions(report, args)
    return lost or _matrix_exit(final)


def _add_directions(report: dict, args, t, lam, mapping, fixed, closed) -> None:
    """A matrix run's per-direction rows (final mapping, fixed point, closed form), its largest
    deviation from the closed form, and its plot (``--plot``), into ``report``."""
    import numpy as np

    final = mapping[-1]
    report["directions"] = [{"j": j, "lam": float(lam[j]), "mapping": _num(final[j]),
                             "fixed_point": float(fixed[j]),
                             "closed_form": None if closed is None else float(closed[-1, j])}
                            for j in range(lam.size)]
    if closed is not None:
        report["max_dev_closed_form"] = _num(np.max(np.abs(mapping - closed)))
    if args.plot:
        from daedyn.figures import plot_matrix_mapping

        save_plot(plot_matrix_mapping(t, mapping, lam).figure, args.plot)
        report["plot"] = args.plot


def _print_directions(report: dict, args) -> None:
    """The per-direction table of a matrix run, its final loss and deviation from the closed form."""
    d = len(report["directions"])
    closed = "max_dev_closed_form" in report
    show = d if d <= 12 else 10
    print(f"{'j':>4} {'lam_j':>11} {'mapping':>11} {'fixed pt':>11}" + (f" {'closed form':>11}" if closed
                                                                      else ""))
    for r in report["directions"][:show]:
        extra = f" {r['closed_form']:>11.6g}" if closed else ""
        m = "nan" if r["mapping"] is None else f"{r['mapping']:.6g}"
        print(f"{r['j']:>4} {r['lam']:>11.5g} {m:>11} {r['fixed_point']:>11.6g}{extra}")
    if show < d:
        print(f"   ... {d - show} more directions (--json lists all)")
    loss_end = report["loss_final"]
    print(f"loss at the end: {'nan' if loss_end is None else f'{loss_end:.6g}'}")
    if closed and report["max_dev_closed_form"] is not None:
        print(f"max |mapping - closed form of the flow| over time and directions: "
              f"{report['max_dev_closed_form']:.3g}")
    if args.plot:
        print(f"wrote {args.plot}")
    if args.out and "out_error" not in report:
        print(f"wrote {report['out']}")


def _matrix_exit(final) -> int:
    """Exit code of a matrix run: 1 (and a line on stderr) when the final mapping is not finite."""
    import numpy as np

    if not np.all(np.isfinite(final)):
        print("daedyn simulate: non-finite mapping at the end (diverged)", file=sys.stderr)
        return 1
    return 0
