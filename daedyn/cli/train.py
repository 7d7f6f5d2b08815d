"""``daedyn train``: train autoencoders on a dataset and report their per-direction learning."""

from __future__ import annotations

import json
import sys
import time

from daedyn.cli._corruption import add_corruption_options, check_cov_dim, load_cov
from daedyn.cli._files import (
    check_data_fits,
    check_distinct,
    check_file,
    check_out,
    check_plot,
    lost_out,
    npz_path,
    save_dataset,
    save_npz,
    save_plot,
)
from daedyn.cli._options import add_common_options, add_config_options, add_dataset_options, seed_int

HELP = "train linear or nonlinear (denoising) autoencoders and report the per-direction mapping"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help=HELP, description=HELP + " (daedyn.train). The mapping of eigen-direction j "
        "is diag(V^T W V)_j for linear networks and the supplement-F estimate lam_hat_j / lam_j for "
        "nonlinear ones; linear runs are compared with the small-initialisation theory "
        "(daedyn.theory.small_init_trajectory) with eps = N s^2 and tau = N / alpha.",
        epilog="Exit codes: 0 ok, 1 dataset not available or training diverged (NaN/inf), "
        "2 bad usage.")
    add_dataset_options(p)
    p.add_argument("--heldout", type=int, default=0, metavar="M",
                   help="hold out M of the loaded samples for the held-out loss (default 0)")
    p.add_argument("--hidden", type=int, default=32, help="hidden units H (default 32)")
    p.add_argument("--depth", type=int, default=2, metavar="L",
                   help="number of weight matrices L >= 2, each hidden layer H wide (default 2, the paper; "
                   "docs/depth.md)")
    p.add_argument("--activation", default="linear",
                   help="linear (default), or a jax.nn function name: relu, tanh, sigmoid, gelu, ...")
    p.add_argument("--noise", choices=("none", "gaussian", "laplace", "masking", "salt-and-pepper"),
                   default="none", help="input noise or corruption (default none; docs/corruption.md)")
    p.add_argument("--sigma2", type=float, default=None, help="Gaussian noise variance sigma^2")
    p.add_argument("--b", type=float, default=None, help="Laplace noise scale b (variance 2 b^2)")
    p.add_argument("--p", type=float, default=None,
                   help="corruption rate: the drop rate of --noise masking (inverted dropout, in [0, 1)) "
                   "or the replaced fraction of --noise salt-and-pepper (values 0 and 1, in [0, 1])")
    add_corruption_options(p)
    p.add_argument("--eps-schedule", default=None, metavar="SPEC",
                   help="a schedule of eps = N s^2 instead of --noise/--sigma2: Gaussian noise of variance "
                   "eps(k) / N at epoch k (sampled, or the expected loss with --marginalised): "
                   "'piecewise:B1,...:V0,...', 'linear:START,END,T_END' or 'exponential:START,END,T_END' "
                   "(docs/schedules.md); the report's eps is the value at the last epoch")
    p.add_argument("--marginalised", action="store_true",
                   help="train on the expected loss over the noise (linear networks) instead of "
                   "sampling it every epoch")
    p.add_argument("--gamma", type=float, default=0.0, help="weight decay gamma (default 0)")
    p.add_argument("--alpha", type=float, default=0.01, help="learning rate (default 0.01)")
    p.add_argument("--epochs", type=int, default=1000, help="epochs of full-batch GD (default 1000)")
    p.add_argument("--save-every", type=int, default=None, metavar="K",
                   help="record the observables every K epochs (default: the largest divisor of "
                   "--epochs up to min(100, epochs), i.e. 100 for 1000 epochs)")
    p.add_argument("--batch-size", type=int, default=None, help="minibatch size (default full batch)")
    p.add_argument("--init-scale", type=float, default=1e-4,
                   help="std of the initial weights (default 1e-4, Figure 5; Figure 6 uses 1e-3)")
    p.add_argument("--loss-scale", choices=("paper", "mse"), default="paper",
                   help="paper: 1/(2N) sum of squared errors (tau = N / alpha); mse: mean over N x D "
                   "entries (Figure 6)")
    p.add_argument("--seed", type=seed_int, default=0, help="PRNG seed (initial weights, noise, split)")
    p.add_argument("--seeds", type=int, default=1,
                   help="number of seeds trained together in one vmapped run (default 1)")
    p.add_argument("--top", type=int, default=5, help="directions to report (default 5)")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="plot the mapping over epochs")
    p.add_argument("--out", default=None, metavar="FILE.npz|.nc|.zarr|.json",
                   help="save the recorded observables: .nc (netCDF) or .zarr as a labelled xarray "
                   "dataset with the theory beside them (the sweep extra), .json the report --json "
                   "prints, anything else as .npz")
    p.add_argument("--checkpoint", default=None, metavar="FILE.npz",
                   help="save the run's state there as it goes; rerunning the same command resumes "
                   "an interrupted run from it (a checkpoint of different settings is refused)")
    p.add_argument("--log", default=None, metavar="csv|tensorboard[:PATH]",
                   help="write every record (epoch, losses, mapping, ...) as the run goes: csv to "
                   "<out>.log.csv (or PATH), tensorboard event files to runs/daedyn-train (or PATH; the "
                   "tensorboard extra); the Python hook is train(log=)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_common_options(p)
    add_config_options(p)
    p.set_defaults(func=run, resolve_defaults=_resolve_defaults)


def _noise(args):
    from daedyn import noise
    from daedyn._checks import check_range

    if args.cov is not None and args.noise != "gaussian":
        raise ValueError("--cov is the covariance of --noise gaussian")
    if args.raw and args.noise != "masking":
        raise ValueError("--raw goes with --noise masking (the mask without the 1 / (1 - p) rescaling)")
    if args.noise == "none":
        if args.sigma2 is not None or args.b is not None or args.p is not None:
            raise ValueError("--sigma2/--b/--p need --noise gaussian/laplace/masking/salt-and-pepper")
        if args.marginalised and args.eps_schedule is None:
            raise ValueError("--marginalised needs --noise gaussian, laplace or masking, or --eps-schedule")
        return None
    if args.noise in ("masking", "salt-and-pepper"):
        if args.sigma2 is not None or args.b is not None:
            raise ValueError(f"--sigma2/--b are additive noise levels; --noise {args.noise} takes --p")
        if args.p is None:
            raise ValueError(f"--noise {args.noise} needs its rate: give --p (e.g. --p 0.3)")
        if args.noise == "masking":
            check_range("--p", args.p, 0.0, 1.0, hi_open=True)
            return noise.masking(args.p, rescale=not args.raw)
        check_range("--p", args.p, 0.0, 1.0)
        if args.marginalised:
            raise ValueError("--noise salt-and-pepper cannot be --marginalised (its mean is affine in the "
                             "input; the expected loss has no bias term): drop --marginalised to sample it")
        return noise.salt_and_pepper(args.p)
    if args.p is not None:
        raise ValueError("--p is the rate of --noise masking or salt-and-pepper")
    if args.noise == "gaussian":
        if args.b is not None:
            raise ValueError("--b is the Laplace scale; use --sigma2 with --noise gaussian")
        if args.cov is not None:
            if args.sigma2 is not None:
                raise ValueError("give --sigma2 (isotropic) or --cov (per component), not both")
            return load_cov(args.cov)
        if args.sigma2 is None:
            raise ValueError("--noise gaussian needs its variance: give --sigma2 (e.g. --sigma2 0.05)")
        check_range("--sigma2", args.sigma2, 0.0)
        return noise.gaussian(args.sigma2)
    if args.sigma2 is not None:
        raise ValueError("--sigma2 is the Gaussian variance; use --b with --noise laplace")
    if args.b is None:
        raise ValueError("--noise laplace needs its scale: give --b (variance 2 b^2)")
    check_range("--b", args.b, 0.0)
    return noise.laplace(args.b)


def _resolve_defaults(args) -> None:
    """Defaults that follow other options (also shown by --print-config): --save-every follows
    --epochs, 100 when it divides them, else the next divisor down."""
    if args.save_every is None and isinstance(args.epochs, int) and args.epochs >= 1:
        args.save_every = next(k for k in range(min(100, args.epochs), 0, -1) if args.epochs % k == 0)


def _check(args):
    from daedyn import models
    from daedyn._checks import check_int, check_range

    check_range("--hidden", args.hidden, 1)
    check_int("--depth", args.depth, 2)
    check_range("--alpha", args.alpha, 0.0, lo_open=True)
    check_range("--gamma", args.gamma, 0.0)
    check_range("--epochs", args.epochs, 1)
    _resolve_defaults(args)
    check_range("--save-every", args.save_every, 1)
    check_range("--seeds", args.seeds, 1)
    check_range("--top", args.top, 1)
    check_range("--heldout", args.heldout, 0)
    check_range("--init-scale", args.init_scale, 0.0)
    if args.n is not None:
        check_range("--n", args.n, 2)
    if args.batch_size is not None:
        check_range("--batch-size", args.batch_size, 1)
    check_plot("--plot", args.plot)
    check_out("--out", args.out, (".npz", ".nc", ".zarr", ".json"), other="npz")
    check_file("--checkpoint", args.checkpoint)
    args.log_spec = _check_log(args, "train")
    check_distinct(**{"--out": None if args.out is None else _out_path(args.out), "--plot": args.plot,
                      "--checkpoint": args.checkpoint})
    if args.epochs % args.save_every:
        raise ValueError(f"--epochs ({args.epochs}) must be a multiple of --save-every "
                         f"({args.save_every})")
    try:
        models.get_activation(None if args.activation == "linear" else args.activation)
    except ValueError as e:
        raise ValueError(f"--activation must be 'linear' or an elementwise function name in jax.nn "
                         f"({e})") from None


def _check_log(args, command: str):
    """--log, before any work: its format, and its file writable (csv) or its writer installed."""
    from daedyn.cli._log import parse_log

    spec = parse_log(args.log, command=command, out=args.out)
    if spec is not None and spec[0] == "csv":
        check_file("--log", spec[1])
    elif spec is not None:
        from daedyn._extras import require

        require("tensorboardX", what="--log tensorboard")
    return spec


def _one_seed(r, s: int):
    """Seed ``s`` of a :func:`daedyn.train.train_batch` result, as an unbatched result."""
    import jax

    per_seed = ("mapping", "singular_values", "weight_norm", "train_loss", "heldout_loss", "tau", "eps",
                "gamma", "params", "init_params")
    from daedyn.schedules import is_schedule

    # a schedule (--eps-schedule) is one for all seeds: kept whole, not indexed
    return r._replace(**{f: jax.tree_util.tree_map(lambda a: a[s], getattr(r, f))
                         for f in per_seed if getattr(r, f) is not None and not is_schedule(getattr(r, f))})


def run(args) -> int:
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    from daedyn import data, models, spectrum, theory, train
    from daedyn._progress import progress_bar, spinner
    from daedyn.schedules import is_schedule

    command_start = getattr(args, "started", None) or time.perf_counter()  # the whole command's wall time
    _check(args)
    nz = _noise(args)
    schedule = None
    if args.eps_schedule is not None:
        from daedyn.schedules import parse_schedule

        if args.noise != "none" or args.cov is not None or args.raw:
            raise ValueError("--eps-schedule is the schedule of Gaussian noise's eps = N s^2: drop --noise, "
                             "--sigma2, --cov and --raw")
        schedule = parse_schedule(args.eps_schedule)
    activation = None if args.activation == "linear" else args.activation
    linear = models.is_linear(activation)
    if args.marginalised and not linear:
        raise ValueError("--marginalised needs --activation linear (the expected loss over the noise "
                         "has a closed form only for linear networks)")
    ds, _ = data.load_dataset(args.dataset, n=args.n, data_dir=args.data_dir, subset=args.subset,
                              seed=args.subset_seed)
    x, name = np.asarray(ds.x), ds.name
    check_data_fits(args.dataset, x)
    if args.cov is not None:
        check_cov_dim(nz, x.shape[1])
    if x.shape[0] < 2:
        raise ValueError(f"--dataset {args.dataset}: training needs at least 2 samples; got {x.shape[0]}")
    if args.heldout:
        if not 1 <= args.heldout < x.shape[0] - 1:
            raise ValueError(f"--heldout must lie in [0, {x.shape[0] - 2}] for {x.shape[0]} samples; "
                             f"got {args.heldout}")
        x_train, x_held = data.train_heldout_split(x, args.heldout, seed=args.seed)
    else:
        x_train, x_held = x, None
    n, d = x_train.shape
    quiet = args.quiet or args.json
    say = (lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    start = time.perf_counter()
    say(f"{name}: N = {n}, D = {d}; computing the spectrum of X^T X ...")
    spec = spectrum.compute_spectrum(x_train)
    _warn_plan(args, spec, nz)
    x_train = jnp.asarray(x_train, jnp.result_type(float))
    n_records = args.epochs // args.save_every
    kw = dict(hidden=args.hidden, depth=args.depth, epochs=args.epochs, alpha=args.alpha,
              activation=activation,
              noise=nz, marginalised=args.marginalised, gamma=args.gamma, spectrum=spec,
              **({} if schedule is None else {"eps": schedule}),
              x_heldout=x_held, save_every=args.save_every, init_scale=args.init_scale,
              batch_size=args.batch_size, loss_scale=args.loss_scale, precision="highest",
              progress=None if quiet else progress_bar("epochs"),
              chunk_records=None if quiet else max(1, n_records // 20), checkpoint=args.checkpoint)
    from daedyn.cli._log import open_log

    logger = open_log(args.log_spec)
    if logger is not None:
        kw["log"] = logger
    say(f"training {args.seeds} {'linear' if linear else args.activation} network(s), H = {args.hidden}, "
        f"depth {args.depth}, "
        f"{args.epochs} epochs ...")
    key = jr.key(args.seed)
    try:
        if args.seeds > 1:
            batch = train.train_batch(x_train, key=jr.split(key, args.seeds), **kw)
            runs = [_one_seed(batch, s) for s in range(args.seeds)]
        else:
            runs = [train.train(x_train, key=key, **kw)]
            batch = None
    except KeyboardInterrupt:
        if logger is not None:
            logger.close()
        kept = (f"the checkpoint {args.checkpoint} keeps the last finished chunk of epochs: rerun the same "
                "command to resume from it" if args.checkpoint else
                "nothing was kept (give --checkpoint FILE.npz to make a long run resumable)")
        print(f"daedyn train: interrupted; {kept}", file=sys.stderr, flush=True)
        raise
    train_seconds = time.perf_counter() - start
    if logger is not None:
        logger.close()
    top = min(args.top, d)
    r0 = runs[0]
    lam = np.asarray(r0.eigvals)
    epochs = np.asarray(r0.t)
    mapping = np.stack([np.asarray(r.mapping) for r in runs])  # (S, T, D)
    # a schedule's columns are those of its value at the last epoch (the fixed point it approaches)
    last = lambda v: v(float(args.epochs)) if is_schedule(v) else v
    tau, eps, gamma = (float(np.ravel(last(v))[0]) for v in (r0.tau, r0.eps, r0.gamma))
    eps_dir = eps
    if args.noise == "masking" or args.cov is not None:  # the diagonal eps_j (docs/corruption.md)
        eps_dir = np.asarray(theory.diagonal_eps(nz.marginal_term(spec)), np.float64)
        runs = [r._replace(eps=jnp.asarray(eps_dir, r.mapping.dtype)) for r in runs]
    pred = None
    # no theory for salt-and-pepper (no marginalised form) nor the raw mask (it trains W' / (1 - p))
    if linear and args.batch_size is None and args.noise != "salt-and-pepper" and not args.raw:
        # Balanced small-init theory per direction from each seed's own start; directions >= H are
        # not learned by H hidden units.
        with spinner("comparing with the theory", quiet=quiet):
            compare = lambda r: train.compare_with_theory(r, eigvecs=spec.eigvecs).continuous
            pred = np.stack([np.asarray(compare(r))[:, :top] for r in runs])
        pred = np.where(np.arange(top) < args.hidden, pred, 0.0)
    eps_top = eps_dir[:top] if np.ndim(eps_dir) else eps_dir
    fixed = np.asarray(theory.fixed_point(lam[:top], eps_top, gamma, n, depth=args.depth))
    fixed = np.where(np.arange(top) < args.hidden, fixed, 0.0) if linear and not args.raw else None
    loss = np.stack([np.asarray(r.train_loss) for r in runs])
    finite = bool(np.all(np.isfinite(mapping[..., :top])) and np.all(np.isfinite(loss)))
    directions = []
    for j in range(top):
        row = {"index": j, "lam": float(lam[j]), "mapping": float(mapping[:, -1, j].mean()),
               "mapping_std": float(mapping[:, -1, j].std())}
        if pred is not None:
            row["theory"] = float(pred[:, -1, j].mean())
            row["rmse_vs_theory"] = float(np.sqrt(np.mean((mapping[:, :, j] - pred[:, :, j]) ** 2)))
        if fixed is not None:
            row["fixed_point"] = float(fixed[j])
        directions.append(row)
    report = {
        "dataset": name, "subset": _subset(ds),
        "n_train": n, "n_heldout": 0 if x_held is None else int(x_held.shape[0]),
        "dim": d, "hidden": args.hidden, "depth": args.depth, "activation": args.activation,
        "noise": "gaussian" if schedule is not None else args.noise,
        "s2": eps / n, "eps": eps, "p": args.p, "raw": args.raw, "cov": args.cov,
        "marginalised": args.marginalised, "gamma": gamma, "eps_schedule": args.eps_schedule,
        "alpha": args.alpha, "tau": tau, "loss_scale": args.loss_scale, "epochs": args.epochs,
        "save_every": args.save_every, "batch_size": args.batch_size, "seeds": args.seeds,
        "seed": args.seed, "dtype": str(mapping.dtype), "directions": directions,
        "train_loss_initial": float(loss[:, 0].mean()), "train_loss_final": float(loss[:, -1].mean()),
        "train_seconds": round(train_seconds, 3), "finite": finite,
    }
    if r0.heldout_loss is not None:
        report["heldout_loss_final"] = float(np.mean([np.asarray(r.heldout_loss)[-1] for r in runs]))
    def npz_arrays() -> dict:
        # a schedule is saved as its values at the recorded epochs
        at_t = lambda v: v(jnp.asarray(epochs, r0.mapping.dtype)) if is_schedule(v) else v
        per_seed = lambda f: np.stack([np.asarray(at_t(getattr(r, f))) for r in runs])
        arrays = {"t": epochs, "mapping": mapping, "eigvals": lam, "tau": per_seed("tau"),
                  "eps": per_seed("eps"), "gamma": per_seed("gamma"),
                  "settings": np.asarray(json.dumps({k: v for k, v in report.items()
                                                     if k != "directions"}))}
        for f in ("singular_values", "weight_norm", "train_loss", "heldout_loss"):
            if getattr(r0, f) is not None:
                arrays[f] = per_seed(f)
        if pred is not None:
            arrays["theory"] = pred
        return arrays

    lost = 0
    if args.out and _is_dataset_path(args.out):  # never loses the run: .npz when the dataset fails
        result = runs[0] if batch is None else batch
        report["out"], reason = save_dataset(
            "--out", args.out, lambda: _dataset(result, pred, report),
            lambda: {**npz_arrays(), **{f"params_{k}": np.stack([np.asarray(r.params[k]) for r in runs])
                                         for k in r0.params}})
        if reason is not None:
            report["out_error"] = reason
            lost = lost_out("daedyn train", "--out", args.out, report["out"], reason)
    elif args.out and args.out.lower().endswith(".json"):  # what --json prints
        from daedyn.cli._results import write_json

        report["out"] = write_json(args.out, report)
    elif args.out:
        report["out"] = save_npz(args.out, npz_arrays())
    if args.plot:
        from daedyn.figures import plot_training_run

        ax = plot_training_run(r0, directions=range(top), hidden=args.hidden,
                               eigvecs=spec.eigvecs if pred is not None else None,
                               title=f"{name}: {args.activation}, H = {args.hidden}"
                               f"{'' if args.depth == 2 else f', depth {args.depth}'}, ε = {eps:.3g}, "
                               f"γ = {gamma:g}")
        report["plot"] = save_plot(ax.figure, args.plot)
    report["seconds"] = round(time.perf_counter() - command_start, 3)  # the command's wall time so far
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        _print_report(report, linear)
    if lost:
        return lost
    if not finite:
        print("daedyn train: training diverged (NaN/inf in the recorded mapping or loss); lower --alpha",
              file=sys.stderr)
        return 1
    return 0


def _level(rep: dict) -> str:
    if rep["p"] is not None:
        extra = ", theory with the diagonal eps_j" if rep["noise"] == "masking" else ""
        extra = ", raw mask, no theory" if rep.get("raw") else extra
        return f"p = {rep['p']:g}{extra}"
    if rep.get("cov"):
        return f"cov from {rep['cov']}, theory with the diagonal eps_j"
    if rep.get("eps_schedule"):
        return f"eps schedule {rep['eps_schedule']}, eps = {rep['eps']:.4g} at the last epoch"
    return f"s^2 = {rep['s2']:.4g}, eps = N s^2 = {rep['eps']:.4g}"


def _depth(rep: dict) -> str:
    """The depth in the report's header, when it is not the paper's 2."""
    return "" if rep.get("depth", 2) == 2 else f", depth {rep['depth']} (L = {rep['depth']} weight matrices)"


def _subset(ds) -> dict | None:
    """The loaded rows' record (daedyn.data.Subset) as JSON-ready values, with its one-line text."""
    import dataclasses

    return None if ds.subset is None else {**dataclasses.asdict(ds.subset), "text": str(ds.subset)}


def _print_report(rep: dict, linear: bool) -> None:
    if rep.get("subset"):
        print(f"data: {rep['dataset']}, {rep['subset']['text']}")
    print(f"{rep['dataset']}: N = {rep['n_train']} train, M = {rep['n_heldout']} held-out, D = {rep['dim']}; "
          f"{rep['activation']} H = {rep['hidden']}{_depth(rep)}, noise {rep['noise']} ({_level(rep)}"
          f"{', marginalised' if rep['marginalised'] else ''}), "
          f"gamma = {rep['gamma']:g}, alpha = {rep['alpha']:g} (tau = {rep['tau']:.4g}), "
          f"{rep['epochs']} epochs, {rep['seeds']} seed(s), {rep['dtype']}")
    head = f"{'j':>3} {'lam_j':>11} {'mapping':>9}"
    if rep["seeds"] > 1:
        head += f" {'(std)':>9}"
    if linear and "theory" in rep["directions"][0]:
        head += f" {'theory':>9} {'rmse':>9} {'fixed pt':>9}"
    print(head)
    for row in rep["directions"]:
        line = f"{row['index']:>3} {row['lam']:>11.5g} {row['mapping']:>9.4f}"
        if rep["seeds"] > 1:
            line += f" {row['mapping_std']:>9.2g}"
        if "theory" in row:
            line += f" {row['theory']:>9.4f} {row['rmse_vs_theory']:>9.2g} {row['fixed_point']:>9.4f}"
        print(line)
    loss = f"train loss {rep['train_loss_initial']:.5g} -> {rep['train_loss_final']:.5g}"
    if "heldout_loss_final" in rep:
        loss += f", held-out loss {rep['heldout_loss_final']:.5g}"
    print(f"{loss}; {rep['seconds']:.2f} s wall ({rep['train_seconds']:.2f} s training)")
    for key in ("out", "plot"):
        if key in rep and not (key == "out" and "out_error" in rep):
            print(f"wrote {rep[key]}")


def _is_dataset_path(path: str) -> bool:
    return path.rstrip("/").lower().endswith((".nc", ".zarr"))


def _out_path(path: str) -> str:
    return path if _is_dataset_path(path) or path.lower().endswith(".json") else npz_path(path)


def _dataset(result, pred, report: dict):
    """``result.to_xarray()`` (a ``seed`` axis for several seeds), the theory curves and the settings."""
    import numpy as np

    seeds = report["seeds"]
    ds = result.to_xarray(**({} if seeds == 1 else {"batch_dims": ("seed",),
                                                    "coords": {"seed": np.arange(seeds)}}))
    if pred is not None:  # (S, T, top): NaN beyond the directions compared
        full = np.full(pred.shape[:2] + (ds.sizes["direction"],), np.nan, pred.dtype)
        full[..., :pred.shape[-1]] = pred
        dims = ("seed", "epoch", "direction")
        ds["theory"] = (dims, full) if seeds > 1 else (dims[1:], full[0])
    ds.attrs["settings"] = json.dumps({k: v for k, v in report.items() if k not in ("directions", "out")})
    return ds


def _warn_plan(args, spec, nz) -> None:
    """One line on stderr before training (not with --quiet) when :func:`daedyn.plan` predicts that the run
    learns almost nothing by --epochs (linear, depth 2, full batch, constant rates; train itself warns
    about stability)."""
    import daedyn

    if args.quiet or not (args.activation == "linear" and args.depth == 2 and args.eps_schedule is None
                          and not args.raw and args.batch_size is None and args.loss_scale == "paper"
                          and args.noise != "salt-and-pepper"):
        return
    p = daedyn.plan(spectrum=spec, hidden=args.hidden, alpha=args.alpha, epochs=args.epochs, noise=nz,
                    gamma=args.gamma, init_scale=args.init_scale)
    if p.warning:
        print(f"daedyn train: warning: {p.warning}", file=sys.stderr, flush=True)
