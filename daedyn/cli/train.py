"""``daedyn train``: train autoencoders on a dataset and report their per-direction learning."""

from __future__ import annotations

import json
import sys
import time

from daedyn.cli import add_common_options, add_dataset_options, load_dataset, progress_reporter

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
    p.add_argument("--activation", default="linear",
                   help="linear (default), or a jax.nn function name: relu, tanh, sigmoid, gelu, ...")
    p.add_argument("--noise", choices=("none", "gaussian", "laplace"), default="none",
                   help="input noise (default none)")
    p.add_argument("--sigma2", type=float, default=None, help="Gaussian noise variance sigma^2")
    p.add_argument("--b", type=float, default=None, help="Laplace noise scale b (variance 2 b^2)")
    p.add_argument("--marginalised", action="store_true",
                   help="train on the expected loss over the noise (linear networks) instead of "
                   "sampling it every epoch")
    p.add_argument("--gamma", type=float, default=0.0, help="weight decay gamma (default 0)")
    p.add_argument("--alpha", type=float, default=0.01, help="learning rate (default 0.01)")
    p.add_argument("--epochs", type=int, default=1000, help="epochs of full-batch GD (default 1000)")
    p.add_argument("--record-every", type=int, default=100, metavar="K",
                   help="record the observables every K epochs (default 100)")
    p.add_argument("--batch-size", type=int, default=None, help="minibatch size (default full batch)")
    p.add_argument("--init-scale", type=float, default=1e-4,
                   help="std of the initial weights (default 1e-4, Figure 5; Figure 6 uses 1e-3)")
    p.add_argument("--loss-scale", choices=("paper", "mse"), default="paper",
                   help="paper: 1/(2N) sum of squared errors (tau = N / alpha); mse: mean over N x D "
                   "entries (Figure 6)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (initial weights, noise, split)")
    p.add_argument("--seeds", type=int, default=1,
                   help="number of seeds trained together in one vmapped run (default 1)")
    p.add_argument("--top", type=int, default=5, help="directions to report (default 5)")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="plot the mapping over epochs")
    p.add_argument("--out", default=None, metavar="FILE.npz", help="save the recorded observables")
    p.add_argument("--checkpoint", default=None, metavar="FILE.npz",
                   help="save the run's state there as it goes; rerunning the same command resumes "
                   "an interrupted run from it (a checkpoint of different settings is refused)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_common_options(p)
    p.set_defaults(func=run)


def _noise(args):
    from daedyn import noise
    from daedyn._checks import check_range

    if args.noise == "none":
        if args.sigma2 is not None or args.b is not None:
            raise ValueError("--sigma2/--b need --noise gaussian/laplace")
        if args.marginalised:
            raise ValueError("--marginalised needs --noise gaussian or laplace")
        return None
    if args.noise == "gaussian":
        if args.b is not None:
            raise ValueError("--b is the Laplace scale; use --sigma2 with --noise gaussian")
        check_range("--sigma2", 0.0 if args.sigma2 is None else args.sigma2, 0.0)
        return noise.gaussian(0.0 if args.sigma2 is None else args.sigma2)
    if args.sigma2 is not None:
        raise ValueError("--sigma2 is the Gaussian variance; use --b with --noise laplace")
    check_range("--b", 0.0 if args.b is None else args.b, 0.0)
    return noise.laplace(0.0 if args.b is None else args.b)


def _check(args):
    from daedyn import models
    from daedyn._checks import check_range

    check_range("--hidden", args.hidden, 1)
    check_range("--alpha", args.alpha, 0.0, lo_open=True)
    check_range("--gamma", args.gamma, 0.0)
    check_range("--epochs", args.epochs, 1)
    check_range("--record-every", args.record_every, 1)
    check_range("--seeds", args.seeds, 1)
    check_range("--top", args.top, 1)
    check_range("--heldout", args.heldout, 0)
    check_range("--init-scale", args.init_scale, 0.0)
    if args.n is not None:
        check_range("--n", args.n, 2)
    if args.epochs % args.record_every:
        raise ValueError(f"--epochs ({args.epochs}) must be a multiple of --record-every "
                         f"({args.record_every})")
    try:
        models.get_activation(None if args.activation == "linear" else args.activation)
    except ValueError:
        raise ValueError(f"--activation must be 'linear' or a function name in jax.nn (relu, tanh, "
                         f"sigmoid, gelu, ...); got {args.activation!r}") from None


def run(args) -> int:
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    from daedyn import data, models, spectrum, theory, train
    from daedyn.data import DatasetUnavailable

    _check(args)
    nz = _noise(args)
    activation = None if args.activation == "linear" else args.activation
    linear = models.is_linear(activation)
    if args.marginalised and not linear:
        raise ValueError("--marginalised needs --activation linear (the expected loss over the noise "
                         "has a closed form only for linear networks)")
    try:
        x, name = load_dataset(args)
    except DatasetUnavailable as err:
        print(f"daedyn train: dataset not available: {err}", file=sys.stderr)
        return 1
    x = np.asarray(x)
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
    dt = jnp.result_type(float)
    x_train = jnp.asarray(x_train, dt)
    n_records = args.epochs // args.record_every
    progress = None
    chunk = None
    if not quiet:
        chunk = max(1, n_records // 20)
        progress = progress_reporter("epoch")

    kw = dict(hidden=args.hidden, epochs=args.epochs, alpha=args.alpha, activation=activation,
              noise=nz, marginalised=args.marginalised, gamma=args.gamma, spectrum=spec,
              x_heldout=x_held, record_every=args.record_every, init_scale=args.init_scale,
              batch_size=args.batch_size, loss_scale=args.loss_scale, precision="highest",
              progress=progress, chunk_records=chunk, checkpoint=args.checkpoint)
    say(f"training {args.seeds} {'linear' if linear else args.activation} network(s), H = {args.hidden}, "
        f"{args.epochs} epochs ...")
    key = jr.key(args.seed)
    if args.seeds > 1:
        r = train.train_batch(x_train, key=jr.split(key, args.seeds), **kw)
    else:
        r = train.train(x_train, key=key, **kw)
        r = r._replace(**{f: (None if getattr(r, f) is None else getattr(r, f)[None])
                          for f in ("mapping", "singular_values", "weight_norm", "train_loss",
                                    "heldout_loss", "tau", "eps", "gamma")},
                       init_params=jax.tree_util.tree_map(lambda a: a[None], r.init_params))
    seconds = time.perf_counter() - start
    top = min(args.top, d)
    lam = np.asarray(r.eigvals)
    epochs = np.asarray(r.epochs)
    mapping = np.asarray(r.mapping)  # (S, T, D)
    tau, eps, gamma = float(np.ravel(r.tau)[0]), float(np.ravel(r.eps)[0]), float(np.ravel(r.gamma)[0])
    pred = None
    if linear and args.batch_size is None:
        # Balanced small-init theory per direction, each seed's own w0 (train.initial_w0).
        w0 = np.asarray(train.initial_w0(r.init_params, spec.eigvecs))[:, :top]  # (S, top)
        pred = np.asarray(theory.small_init_trajectory(
            epochs[None, :, None], lam[None, None, :top], eps, gamma, w0=w0[:, None, :], tau=tau, n=n))
        pred = np.where(np.arange(top) < args.hidden, pred, 0.0)  # directions >= H are not learned
    fixed = np.asarray(theory.fixed_point(lam[:top], eps, gamma, n))
    fixed = np.where(np.arange(top) < args.hidden, fixed, 0.0) if linear else None
    finite = bool(np.all(np.isfinite(mapping[..., :top])) and np.all(np.isfinite(np.asarray(r.train_loss))))
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
    loss = np.asarray(r.train_loss)
    report = {
        "dataset": name, "n_train": n, "n_heldout": 0 if x_held is None else int(x_held.shape[0]),
        "dim": d, "hidden": args.hidden, "activation": args.activation, "noise": args.noise,
        "s2": eps / n, "eps": eps, "marginalised": args.marginalised, "gamma": gamma,
        "alpha": args.alpha, "tau": tau, "loss_scale": args.loss_scale, "epochs": args.epochs,
        "record_every": args.record_every, "batch_size": args.batch_size, "seeds": args.seeds,
        "seed": args.seed, "dtype": str(mapping.dtype), "directions": directions,
        "train_loss_initial": float(loss[:, 0].mean()), "train_loss_final": float(loss[:, -1].mean()),
        "seconds": round(seconds, 3), "finite": finite,
    }
    if r.heldout_loss is not None:
        report["heldout_loss_final"] = float(np.asarray(r.heldout_loss)[:, -1].mean())
    if args.out:
        arrays = {"epochs": epochs, "mapping": mapping, "eigvals": lam, "tau": np.asarray(r.tau),
                  "eps": np.asarray(r.eps), "gamma": np.asarray(r.gamma),
                  "settings": np.asarray(json.dumps({k: v for k, v in report.items()
                                                     if k != "directions"}))}
        for f in ("singular_values", "weight_norm", "train_loss", "heldout_loss"):
            if getattr(r, f) is not None:
                arrays[f] = np.asarray(getattr(r, f))
        if pred is not None:
            arrays["theory"] = pred
        np.savez(args.out, **arrays)
        report["out"] = args.out
    if args.plot:
        _plot(args.plot, epochs, mapping, pred, lam, n, tau, eps, gamma, r, spec, top, linear,
              title=f"{name}: {args.activation}, H = {args.hidden}, eps = {eps:.3g}, gamma = {gamma:g}")
        report["plot"] = args.plot
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        _print_report(report, linear)
    if not finite:
        print("daedyn train: training diverged (NaN/inf in the recorded mapping or loss); lower --alpha",
              file=sys.stderr)
        return 1
    return 0


def _plot(path, epochs, mapping, pred, lam, n, tau, eps, gamma, r, spec, top, linear, title):
    import numpy as np

    from daedyn import theory, train
    from daedyn.figures._common import new_figure
    from daedyn.figures.real_data import plot_strengths

    fig, axes = new_figure(1, 1, width=5.0, height=3.4)
    ax = axes[0, 0]
    colors = [f"C{j % 10}" for j in range(top)]
    th = None
    if pred is not None:  # smooth theory lines on a fine grid, seed 0's w0
        t = np.linspace(float(epochs[0]), float(epochs[-1]), 400)
        w0 = np.asarray(train.initial_w0(
            {k: v[0] for k, v in r.init_params.items()}, spec.eigvecs))[:top]
        th = (t, np.asarray(theory.small_init_trajectory(t[:, None], lam[None, :top], eps, gamma,
                                                         w0=w0[None, :], tau=tau, n=n)))
        th = (t, np.where(np.arange(top) < pred.shape[-1], th[1], 0.0))
    for j in range(top):
        plot_strengths(epochs, mapping[0][:, : top], None if th is None else (th[0], th[1]),
                       directions=[j], color=colors[j], label=f"j = {j}", ax=ax, ylabel="mapping")
    ax.set_title(title, fontsize=8)
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    fig.savefig(path, dpi=120)


def _print_report(rep: dict, linear: bool) -> None:
    print(f"{rep['dataset']}: N = {rep['n_train']} train, M = {rep['n_heldout']} held-out, D = {rep['dim']}; "
          f"{rep['activation']} H = {rep['hidden']}, noise {rep['noise']} (s^2 = {rep['s2']:.4g}, "
          f"eps = N s^2 = {rep['eps']:.4g}{', marginalised' if rep['marginalised'] else ''}), "
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
    print(f"{loss}; {rep['seconds']:.2f} s")
    for key in ("out", "plot"):
        if key in rep:
            print(f"wrote {rep[key]}")
