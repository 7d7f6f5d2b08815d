"""``daedyn tune``: choose the noise level of a linear DAE by gradient descent on a held-out loss."""

from __future__ import annotations

import inspect
import json
import math
import sys
import time

from daedyn.cli._corruption import add_corruption_options
from daedyn.cli._files import (
    check_data_fits,
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
    add_deprecated,
    seed_int,
)
from daedyn.cli._results import RESULT_FORMATS, write_out

HELP = "tune the noise level eps on a held-out split by gradient descent through the learning dynamics"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tune", help=HELP, description=HELP + " (daedyn.tune). The objective is the denoising loss "
        "on held-out images corrupted with noise of variance --eval-sigma2 after --epochs epochs of "
        "training; with --eval-sigma2 0 the best eps is 0 (the identity map reconstructs clean data "
        "best).", epilog="Exit codes: 0 ok, 1 tuning stopped on a NaN/inf objective (the best eps "
        "so far is still printed), 2 bad usage.")
    add_dataset_options(p)
    p.add_argument("--heldout", type=int, default=1000, metavar="M",
                   help="hold out M of the loaded samples for the objective (default 1000)")
    add_deprecated(p, "--n-heldout", "--heldout", type=int)
    p.add_argument("--epochs", type=float, default=2000.0, help="training time T in epochs (2000)")
    p.add_argument("--alpha", type=float, default=0.02, help="learning rate (default 0.02)")
    p.add_argument("--eval-sigma2", type=float, default=0.05,
                   help="noise variance per pixel on held-out inputs (default 0.05)")
    p.add_argument("--eps0", type=float, default=None,
                   help="starting eps (default: the matched noise N * eval_sigma2)")
    p.add_argument("--route", choices=("closed_form", "dynamics", "train"), default="closed_form",
                   help="closed form (default), integrated dynamics, or actual training")
    p.add_argument("--hidden", type=int, default=None, help="hidden units (default D)")
    p.add_argument("--depth", type=int, default=2, metavar="L",
                   help="number of weight matrices L >= 2 (default 2); L >= 3 tunes through the depth-L "
                   "closed form, the L-factor recursion or a network with L - 1 hidden layers (--route; "
                   "docs/depth.md)")
    p.add_argument("--anisotropic", action="store_true",
                   help="also tune a per-direction eps_j from the isotropic optimum")
    p.add_argument("--max-steps", type=int, default=100, help="optimiser iterations (default 100)")
    p.add_argument("--pieces", type=int, default=None, metavar="K",
                   help="tune a noise schedule of K equal pieces on [0, T] instead of one eps, against "
                   "the best constant eps (any --route; with --anisotropic one per direction)")
    add_deprecated(p, "--schedule", "--pieces", convert=_pieces_spec, metavar="piecewise:K")
    p.add_argument("--schedule-also", default=None, metavar="LIST",
                   help="with --pieces, tune these jointly with the eps pieces: a comma list of gamma "
                   "(K pieces), alpha (K pieces of the learning rate), epochs (T; route closed_form)")
    p.add_argument("--alpha-max", type=float, default=None, metavar="A",
                   help="with --schedule-also alpha: bound the learning rate below A by reparametrisation "
                   "(e.g. the GD stability edge N / lam_1)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the split and the initial weights")
    p.add_argument("--plot", default=None, metavar="OUT.png",
                   help="write objective vs eps with the path (--noise masking: vs the rate p, with the "
                   "grid; --pieces: the tuned eps(t) and the objective over training; not with --noise "
                   "variances)")
    p.add_argument("--out", default=None, metavar="FILE.nc|.zarr|.npz|.json",
                   help="write the result as a labelled xarray dataset: the optimisation history (every "
                   "iterate), and the tuned schedule (--pieces), rate and grid (--noise masking) or "
                   "per-component variances (--noise variances)")
    p.add_argument("--noise", choices=("gaussian", "masking", "variances"), default="gaussian",
                   help="the training corruption to tune: gaussian (its eps, default), masking (its rate "
                   "p, against a grid) or variances (D per-component Gaussian variances, from the best "
                   "shared one); any --route (docs/corruption.md)")
    p.add_argument("--p0", type=float, default=None,
                   help="--noise masking: the rate p to start tuning from, in (0, 1) (default 0.2)")
    add_deprecated(p, "--p", "--p0", type=float)
    p.add_argument("--init", choices=("balanced", "orthogonal"), default="balanced",
                   help="--noise masking/variances, route dynamics: balanced (per-direction GD with the "
                   "diagonal eps_j, default) or orthogonal (full-matrix GD with the coupled V^T C V)")
    p.add_argument("--grid", type=int, default=99, metavar="K",
                   help="--noise masking: K rates 1/(K+1) ... K/(K+1) for the grid baseline (default 99)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--log", default=None, metavar="csv|tensorboard[:PATH]",
                   help="write every iterate (stage, step, eps, objective, gradient) as it comes: csv to "
                   "<out>.log.csv (or PATH), tensorboard event files to runs/daedyn-tune (or PATH; the "
                   "tensorboard extra); tuning one eps (--noise gaussian without --pieces)")
    add_corruption_options(p)
    add_common_options(p)
    add_config_options(p)
    p.set_defaults(func=run)


def _pieces_spec(text: str) -> int:
    """The deprecated ``--schedule piecewise:K`` as --pieces K."""
    from daedyn.cli._schedule import pieces_spec

    return pieces_spec(text)


def run(args) -> int:
    import jax.random as jr
    import numpy as np

    from daedyn import data, tune
    from daedyn._checks import check_int, check_range
    from daedyn._progress import progress_bar

    check_range("--epochs", args.epochs, 0.0, lo_open=True)
    check_range("--alpha", args.alpha, 0.0, lo_open=True)
    check_range("--eval-sigma2", args.eval_sigma2, 0.0)
    check_range("--max-steps", args.max_steps, 1)
    if args.eps0 is not None:
        bounds = inspect.signature(tune.tune).parameters["log_bounds"].default
        lo, hi = (math.exp(b) for b in bounds)  # the tuner optimises log eps in this box (its default)
        check_range("--eps0", args.eps0, lo, hi)
    if args.hidden is not None:
        check_range("--hidden", args.hidden, 1)
    check_int("--depth", args.depth, 2)
    if args.depth > 2 and (args.pieces is not None or args.noise != "gaussian"):
        raise ValueError("--depth >= 3 tunes the Gaussian noise level eps: drop --pieces and "
                         "--noise masking (depth 2 only)")
    if args.n is not None:
        check_range("--n", args.n, 2)
    check_plot("--plot", args.plot)
    check_out("--out", args.out, RESULT_FORMATS)
    from daedyn.cli.train import _check_log

    args.log_spec = _check_log(args, "tune")
    if args.log_spec is not None and (args.pieces is not None or args.noise != "gaussian"):
        raise ValueError("--log records the iterates of tuning one eps: drop --pieces / --noise, or --log")
    if args.cov is not None:
        raise ValueError("--cov fixes the noise, and tune chooses it: use --noise variances to tune D "
                         "per-component variances")
    if args.raw:
        raise ValueError("--raw: the raw mask has no marginalised loss for the trained W (its expected "
                         "loss is that of W' = (1 - p) W, docs/corruption.md), so its rate cannot be tuned "
                         "through these routes; tune inverted dropout (--noise masking)")
    if args.noise != "gaussian":
        if args.anisotropic or args.eps0 is not None:
            raise ValueError(f"--noise {args.noise} tunes its own parameters: drop --anisotropic and --eps0")
        if args.noise == "variances" and args.plot:
            raise ValueError("--plot draws the objective against one noise parameter; --noise variances "
                             "tunes D of them: drop --plot (--out writes them all)")
        if args.p0 is not None:
            if args.noise != "masking":
                raise ValueError("--p0 is the starting rate of --noise masking")
            check_range("--p0", args.p0, 0.0, 1.0, lo_open=True, hi_open=True)
        check_range("--grid", args.grid, 1)
    elif args.p0 is not None:
        raise ValueError("--p0 is the starting rate of --noise masking")
    if args.init != "balanced" and (args.route != "dynamics" or args.noise == "gaussian"):
        raise ValueError("--init orthogonal goes with --noise masking/variances on --route dynamics")
    if args.pieces is not None:
        check_int("--pieces", args.pieces, 1)  # a usage error before loading data
        if args.plot and args.route == "train":
            raise ValueError("--plot with --pieces draws the held-out objective over training from the "
                             "closed form, which route train has not got: drop --plot, or tune on "
                             "--route closed_form or dynamics")
    from daedyn.cli._schedule import also_spec

    also_spec(args)  # --schedule-also / --alpha-max: usage errors before loading data
    ds, _ = data.load_dataset(args.dataset, n=args.n, data_dir=args.data_dir, subset=args.subset,
                              seed=args.subset_seed)
    x, name = np.asarray(ds.x), ds.name
    check_data_fits(args.dataset, x)
    if not 1 <= args.heldout < x.shape[0]:
        raise ValueError(f"--heldout must lie in [1, {x.shape[0] - 1}] for {x.shape[0]} samples; "
                         f"got {args.heldout}")
    start = getattr(args, "started", None) or time.perf_counter()  # "seconds": the command's wall time
    xt, xh = data.train_heldout_split(x, args.heldout, seed=args.seed)
    if args.pieces is not None:  # a K-piece eps schedule (cli/_schedule.py)
        from daedyn.cli import _schedule

        return _schedule.run_tune(args, xt, xh, name, start)
    if args.noise != "gaussian":
        return _corruption(args, name, xt, xh, start)
    kw = dict(epochs=args.epochs, alpha=args.alpha, eval_sigma2=args.eval_sigma2, route=args.route,
              hidden=args.hidden, max_steps=args.max_steps)
    if args.depth > 2:  # every route builds its depth-L config from this (tune.heldout_objective)
        kw["depth"] = args.depth
    if args.route == "train":
        kw["key"] = jr.key(args.seed)
    if not (args.json or getattr(args, "quiet", False)):  # progress on stderr; stdout stays clean
        kw["progress"] = lambda stage: progress_bar("steps", desc=f"tune ({stage})")
    from daedyn.cli._log import open_log

    logger = open_log(args.log_spec)
    try:
        tuned = tune.tune_noise(xt, xh, eps0=args.eps0, anisotropic=args.anisotropic,
                                **kw, **({} if logger is None else {"log": logger}))
    finally:
        if logger is not None:
            logger.close()
    iso, result, eps0 = tuned.isotropic, tuned.result, tuned.eps0
    n_train, dim = xt.shape
    seconds = time.perf_counter() - start
    report = {
        "dataset": name, "n_train": n_train, "n_heldout": int(xh.shape[0]),
        "dim": int(dim), "route": args.route, "depth": args.depth, "epochs": args.epochs,
        "alpha": args.alpha, "eval_sigma2": args.eval_sigma2,
        "eps0": eps0, "objective_before": iso.initial_objective,
        "eps": float(iso.params["eps"]), "sigma2": float(iso.params["eps"]) / n_train,
        "objective_after": iso.objective, "status": iso.status, "message": iso.message,
        "steps": iso.n_steps, "evaluations": iso.n_evals, "seconds": round(seconds, 3),
    }
    if args.anisotropic:
        eps_j = np.asarray(result.params["eps"])
        report["anisotropic"] = {"objective_after": result.objective, "status": result.status,
                                 "eps_min": float(eps_j.min()) if eps_j.ndim else float(eps_j),
                                 "eps_max": float(eps_j.max()) if eps_j.ndim else float(eps_j)}
    def history():
        ds = tuned.to_xarray()
        ds.attrs["settings"] = json.dumps({k: v for k, v in report.items()
                                           if k not in ("anisotropic", "out")})
        return ds

    lost = write_out("daedyn tune", args.out, report, history, lambda: raw_arrays(tuned.result))
    if args.plot:
        from daedyn.figures import plot_noise_tuning

        ax = plot_noise_tuning(tuned, title=f"{name}: {args.route}, T = {args.epochs:g}, "
                               f"eval noise {args.eval_sigma2:g}")
        report["plot"] = save_plot(ax.figure, args.plot)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{name}: N = {n_train} train, M = {report['n_heldout']} held-out, D = {report['dim']}; "
              f"route {args.route}, T = {args.epochs:g} epochs, alpha = {args.alpha:g}, "
              f"held-out noise variance {args.eval_sigma2:g}")
        print(f"objective before: {iso.initial_objective:.6g} at eps = {eps0:.6g}")
        print(f"objective after:  {iso.objective:.6g} at eps = {report['eps']:.6g} "
              f"(sigma^2 = eps / N = {report['sigma2']:.4g})")
        print(f"{iso.status}: {iso.message}; {iso.n_steps} steps, {iso.n_evals} evaluations, "
              f"{seconds:.2f} s")
        if args.anisotropic:
            a = report["anisotropic"]
            print(f"anisotropic eps_j in [{a['eps_min']:.4g}, {a['eps_max']:.4g}]: objective "
                  f"{a['objective_after']:.6g} ({a['status']})")
        print_written(report)
    if lost:
        return lost
    if not result.success:
        print(f"daedyn tune: {result.message}", file=sys.stderr)
        return 1
    return 0


def _corruption(args, name, xt, xh, start) -> int:
    import jax.random as jr
    import numpy as np

    from daedyn import noise, tune

    problem = tune.heldout_problem(xt, xh)
    kw = dict(epochs=args.epochs, alpha=args.alpha,
              eval_sigma2=args.eval_sigma2, route=args.route, hidden=args.hidden)
    if args.route == "dynamics":
        kw["init"] = args.init
    if args.route == "train":
        kw["key"] = jr.key(args.seed)
    how = {"closed_form": "the closed form (diagonal eps_j)",
           "dynamics": f"{int(args.epochs)} GD steps ("
                       + ("coupled V^T C V" if args.init == "orthogonal" else "diagonal eps_j") + ")",
           "train": f"{int(args.epochs)} epochs of marginalised training (coupled V^T C V)"}[args.route]
    report = {"dataset": name, "n_train": int(xt.shape[0]), "n_heldout": int(xh.shape[0]),
              "dim": int(xt.shape[1]), "noise": args.noise, "route": args.route, "init": args.init,
              "epochs": args.epochs, "alpha": args.alpha, "eval_sigma2": args.eval_sigma2}
    if args.noise == "masking":
        grid = np.arange(1, args.grid + 1) / (args.grid + 1)
        noise0, more = noise.masking(0.2 if args.p0 is None else args.p0), dict(grid=grid)
    else:  # one shared variance (matched noise, or 0.01 without evaluation noise), then D of them
        s2 = float(args.eval_sigma2)
        noise0, more = noise.gaussian_covariance(np.full(int(xt.shape[1]), s2 if s2 > 0 else 0.01)), {}
    r = tune.tune_corruption(problem, noise0, max_steps=args.max_steps, **more, **kw)
    res, dtype = r.result, problem.eigvals.dtype
    if args.noise == "masking":
        history_p = r.natural()[0].history.params["p"]
        i = int(np.argmin(np.asarray(r.grid.values)))
        report.update({"p0": float(history_p[0]), "p": float(r.noise.p),
                       "objective_after": float(np.asarray(r.loss, dtype)),
                       "grid_p": float(r.grid.grid["p"][i]), "grid_objective": float(r.grid.values[i]),
                       "grid_points": args.grid})
        # the .npz fallback keeps the fields it always had (those of the former MaskingTuning)
        raw = dict(p=r.noise.p, loss=np.asarray(r.loss, dtype), grid_p=r.grid.grid["p"],
                   grid_loss=r.grid.values, history_p=history_p, result=res)
    else:
        v = np.asarray(r.noise.cov, np.float64)
        iso_var = np.asarray(r.shared.params["var"], dtype)
        report.update({"isotropic_var": float(iso_var), "isotropic_objective": r.shared.objective,
                       "var_min": float(v.min()), "var_max": float(v.max()), "objective_after": r.loss})
        raw = dict(var=r.noise.cov, objective=r.loss, isotropic_var=iso_var,  # (VarianceTuning's)
                   isotropic_objective=r.shared.objective, isotropic=r.shared,
                   result=None if res is r.shared else res)
    report.update({"status": res.status, "message": res.message, "steps": res.n_steps,
                   "seconds": round(time.perf_counter() - start, 3)})

    def dataset():
        ds = r.to_xarray()
        ds.attrs["settings"] = json.dumps({k: v for k, v in report.items() if k != "out"})
        return ds

    lost = write_out("daedyn tune", args.out, report, dataset, lambda: raw_arrays(raw))
    if args.plot:  # masking: the objective over the grid of rates, with the optimiser's path
        from daedyn.figures import plot_objective

        tuned_p, grid_p = r.natural()
        ax = plot_objective(None, tuned_p, grid_result=grid_p, name="p")
        ax.set_title(f"{name}: masking rate, {args.route}, T = {args.epochs:g}")
        report["plot"] = save_plot(ax.figure, args.plot)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        what = "masking rate" if args.noise == "masking" else "per-component noise variances"
        print(f"{name}: N = {report['n_train']} train, M = {report['n_heldout']} held-out, "
              f"D = {report['dim']}; {what} through {how}, T = {args.epochs:g} epochs, "
              f"alpha = {args.alpha:g}, held-out noise variance {args.eval_sigma2:g}")
        if args.noise == "masking":
            print(f"tuned: p = {report['p']:.4g}, objective {report['objective_after']:.6g} "
                  f"({res.status}, {res.n_steps} steps from p = {report['p0']:.3g})")
            print(f"grid:  p = {report['grid_p']:.4g}, objective {report['grid_objective']:.6g} "
                  f"({args.grid} rates {grid[0]:.3g} ... {grid[-1]:.3g}); {report['seconds']:.2f} s")
        else:
            print(f"isotropic: variance {report['isotropic_var']:.4g}, objective "
                  f"{report['isotropic_objective']:.6g}")
            print(f"per component: variances in [{report['var_min']:.3g}, {report['var_max']:.3g}], "
                  f"objective {report['objective_after']:.6g} ({res.status}, {res.n_steps} steps); "
                  f"{report['seconds']:.2f} s")
        print_written(report)
    if lost:
        return lost
    if not res.success:
        print(f"daedyn tune: {res.message}", file=sys.stderr)
        return 1
    return 0
