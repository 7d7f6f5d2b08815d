"""``daedyn diffusion predict|tune|train``: a linear denoiser trained across noise levels (daedyn.diffusion).

One parser with the action as its first word (so ``--config`` reads every option, as for the other
subcommands); options are the Python keywords with dashes (``sigma_data`` -> ``--sigma-data``).
"""

from __future__ import annotations

import json
import math

from daedyn.cli._files import check_out, print_written, raw_arrays
from daedyn.cli._options import add_common_options, add_config_options, add_deprecated, float_list, seed_int
from daedyn.cli._results import RESULT_FORMATS, write_out

HELP = "predict, tune or train a linear denoiser trained across noise levels (diffusion)"
ACTIONS = ("predict", "tune", "train")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "diffusion", help=HELP, description=HELP + " (daedyn.diffusion, docs/diffusion.md). predict: each "
        "direction's F value u(t) and generated variance over training (closed form); tune: the "
        "noise-level distribution that minimises the KL (or Frechet) distance to held-out variances "
        "after --budget epochs; train: gradient descent on Gaussian data with the spectrum --lam "
        "(per-sample variances lam / N), against the prediction. Conventions: lam are eigenvalues of "
        "Sigma = X^T X (sums over the N samples), tau = N / alpha, t in epochs.",
        epilog="Exit codes: 0 ok, 1 --out could not be written, 2 bad usage (the option is named).")
    p.add_argument("action", choices=ACTIONS, help="predict, tune or train")
    p.add_argument("--lam", type=float_list, default=[400.0, 100.0, 25.0, 4.0], metavar="LIST",
                   help="eigenvalues of Sigma, >= 0 (default 400,100,25,4)")
    p.add_argument("--n", type=int, default=100, help="number of training samples N (default 100)")
    p.add_argument("--alpha", type=float, default=0.05, help="learning rate alpha > 0 (default 0.05)")
    p.add_argument("--w0", type=float, default=1e-6, help="initial product of the factors (default 1e-6)")
    p.add_argument("--depth", type=int, default=2, metavar="L", help="number of factors L >= 1 (default 2)")
    p.add_argument("--precond", choices=("edm", "none"), default="edm", help="preconditioning (default edm)")
    p.add_argument("--sigma-data", type=float, default=0.5, help="EDM's sigma_data > 0 (default 0.5)")
    p.add_argument("--weighting", choices=("edm", "uniform", "s2"), default=None,
                   help="loss weighting (default: the preconditioning's own)")
    p.add_argument("--sigma", choices=("lognormal", "loguniform", "ladder"), default="lognormal",
                   help="noise-level distribution (default lognormal)")
    p.add_argument("--p-mean", type=float, default=-1.2, help="lognormal: mean of ln s (default -1.2)")
    p.add_argument("--p-std", type=float, default=1.2, help="lognormal: std of ln s, in (0, 5] (default 1.2)")
    p.add_argument("--s-min", type=float, default=0.002, help="loguniform: smallest s (default 0.002)")
    p.add_argument("--s-max", type=float, default=80.0, help="loguniform: largest s (default 80)")
    p.add_argument("--sigmas", type=float_list, default=None, metavar="LIST", help="ladder: the levels")
    p.add_argument("--probs", type=float_list, default=None, metavar="LIST",
                   help="ladder: their probabilities (default uniform)")
    p.add_argument("--sigma-min", type=float, default=0.002, help="generation: lowest s (default 0.002)")
    p.add_argument("--sigma-max", type=float, default=80.0, help="generation: highest s (default 80)")
    p.add_argument("--times", type=float_list, default=None, metavar="LIST",
                   help="predict: times in epochs (default 0, T/10, ..., T with T = --budget)")
    p.add_argument("--budget", type=float, default=400.0,
                   help="training time T in epochs (tune: the budget; predict, train: the last time; 400)")
    p.add_argument("--heldout", type=float_list, default=None, metavar="LIST",
                   help="tune: the held-out per-sample variances per direction (default lam / N)")
    p.add_argument("--over", default="p_mean,p_std", metavar="LIST",
                   help="tune: what to tune (p_mean,p_std | s_min,s_max | sigmas,probs, and sigma_data)")
    p.add_argument("--distance", choices=("kl", "frechet"), default="kl", help="tune: the distance (kl)")
    p.add_argument("--max-steps", type=int, default=100, help="tune: optimiser iterations at most (100)")
    add_deprecated(p, "--steps", "--max-steps", type=int)
    p.add_argument("--records", type=int, default=10, help="train: records over the budget (default 10)")
    p.add_argument("--samples", type=int, default=16, help="train: (s, n) draws per example and step (16)")
    p.add_argument("--seed", type=seed_int, default=0, help="train: seed of the data and the run (0)")
    p.add_argument("--out", default=None, metavar="FILE.nc|.zarr|.npz|.json",
                   help="write the result as a labelled dataset (the sweep extra)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_config_options(p)
    add_common_options(p)
    p.set_defaults(func=run)


def _check(name: str, value, lo: float, hi: float = math.inf, *, lo_open: bool = False) -> None:
    from daedyn._checks import check_range

    for v in value if isinstance(value, list) else [value]:
        check_range(name, v, lo, hi, lo_open=lo_open, hi_open=hi == math.inf)


def _validate(args) -> None:
    from daedyn._checks import check_int

    _check("--lam", args.lam, 0.0)
    check_int("--n", args.n, 1)
    check_int("--depth", args.depth, 1)
    _check("--alpha", args.alpha, 0.0, lo_open=True)
    _check("--sigma-data", args.sigma_data, 0.0, lo_open=True)
    _check("--p-std", args.p_std, 0.0, 5.0, lo_open=True)
    _check("--p-mean", args.p_mean, -math.inf)
    _check("--budget", args.budget, 0.0, lo_open=True)
    _check("--sigma-min", args.sigma_min, 0.0, lo_open=True)
    _check("--sigma-max", args.sigma_max, 0.0, lo_open=True)
    if args.sigma == "ladder" and not args.sigmas:
        raise ValueError("--sigma ladder needs --sigmas (the levels)")
    if args.times is not None:
        _check("--times", args.times, 0.0)
    if args.heldout is not None:
        _check("--heldout", args.heldout, 0.0, lo_open=True)
        if len(args.heldout) != len(args.lam):
            raise ValueError(f"--heldout needs one variance per direction of --lam ({len(args.lam)}); "
                             f"got {len(args.heldout)}")
    check_int("--max-steps", args.max_steps, 1)
    check_int("--records", args.records, 1)
    check_int("--samples", args.samples, 1)
    check_out("--out", args.out, RESULT_FORMATS)


def _sigma(args):
    import jax.numpy as jnp

    from daedyn import diffusion

    if args.sigma == "lognormal":
        return diffusion.LogNormal(args.p_mean, args.p_std)
    if args.sigma == "loguniform":
        return diffusion.LogUniform(args.s_min, args.s_max)
    return diffusion.Ladder(jnp.asarray(args.sigmas), None if args.probs is None else jnp.asarray(args.probs))


def _objective(args):
    from daedyn import diffusion

    return diffusion.Objective(_sigma(args), args.precond, args.sigma_data, args.weighting)


def _times(args):
    import numpy as np

    return np.asarray(args.times if args.times is not None else np.linspace(0.0, args.budget, 11), np.float64)


def _predict(args) -> tuple[dict, object]:
    import jax.numpy as jnp
    import numpy as np

    from daedyn import diffusion

    obj = _objective(args)
    t, lam = _times(args), np.asarray(args.lam, np.float64)
    r = diffusion.predict(jnp.asarray(t), jnp.asarray(lam), n=args.n, alpha=args.alpha, w0=args.w0,
                          sigma=obj.sigma, precond=obj.precond, sigma_data=args.sigma_data, depth=args.depth,
                          sigma_min=args.sigma_min, sigma_max=args.sigma_max, weighting=args.weighting)
    kl = r.kl_divergence(jnp.asarray(lam / args.n))
    report = {"action": "predict", "n": args.n, "alpha": args.alpha, "depth": args.depth,
              "t": t.tolist(), "lam": lam.tolist(), "a": np.asarray(r.a).tolist(),
              "b": np.asarray(r.b).tolist(),
              "w": np.asarray(r.w).tolist(), "variance": np.asarray(r.variance).tolist(),
              "kl_train": np.asarray(kl).tolist()}
    return report, r


def _tune(args) -> tuple[dict, object]:
    import numpy as np

    from daedyn import diffusion

    lam = np.asarray(args.lam, np.float64)
    heldout = np.asarray(args.heldout if args.heldout is not None else lam / args.n, np.float64)
    over = tuple(v.strip() for v in args.over.split(",") if v.strip())
    try:
        r = diffusion.tune(lam, heldout, n=args.n, alpha=args.alpha, budget=args.budget,
                           objective=_objective(args), over=over, distance=args.distance, depth=args.depth,
                           w0=args.w0, sigma_min=args.sigma_min, sigma_max=args.sigma_max,
                           max_steps=args.max_steps)
    except ValueError as err:
        if str(err).startswith("over"):
            raise ValueError(f"--{err}") from None
        raise
    report = {"action": "tune", **r.summary(), "lam": lam.tolist(), "heldout": heldout.tolist()}
    return report, r


def _train(args) -> tuple[dict, object]:
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    from daedyn import diffusion

    lam = np.asarray(args.lam, np.float64)
    k_data, k_run = jr.split(jr.key(args.seed))
    x = jr.normal(k_data, (args.n, lam.size)) * jnp.sqrt(jnp.asarray(lam / args.n, jnp.float32))[None, :]
    epochs = int(round(args.budget))
    if epochs < args.records or epochs % args.records:
        raise ValueError(f"--budget ({epochs} epochs) must be a positive multiple of --records "
                         f"({args.records})")
    obj = _objective(args)
    scale = abs(args.w0) ** (1.0 / args.depth) / math.sqrt(lam.size)  # entries: factors of about w0
    run = diffusion.train(x, obj, key=k_run, alpha=args.alpha, epochs=epochs,
                          save_every=epochs // args.records, depth=args.depth, samples=args.samples,
                          init_scale=scale, sigma_min=args.sigma_min, sigma_max=args.sigma_max)
    pred = diffusion.predict(run.t.astype(jnp.float32), run.lam, n=args.n, alpha=args.alpha,
                             w0=run.w[0] if args.depth == 1 else jnp.abs(run.w[0]), sigma=obj.sigma,
                             precond=obj.precond,
                             sigma_data=args.sigma_data, depth=args.depth, sigma_min=args.sigma_min,
                             sigma_max=args.sigma_max, weighting=args.weighting)
    report = {"action": "train", "n": args.n, "alpha": args.alpha, "depth": args.depth,
              "samples": args.samples,
              "t": np.asarray(run.t).tolist(), "lam": np.asarray(run.lam).tolist(),
              "w": np.asarray(run.w).tolist(), "variance": np.asarray(run.variance_exact).tolist(),
              "w_predicted": np.asarray(pred.w).tolist(),
              "variance_predicted": np.asarray(pred.variance).tolist()}
    return report, run


def _dataset(report: dict, result):
    import numpy as np

    if report["action"] == "predict":
        return result.to_xarray()
    if report["action"] == "tune":
        return result.to_xarray()
    from daedyn import _xarray

    fields = {k: (np.asarray(report[k]), ("t", "direction"))
              for k in ("w", "variance", "w_predicted", "variance_predicted")}
    fields["lam"] = (np.asarray(report["lam"]), ("direction",))
    attrs = {k: report[k] for k in ("n", "alpha", "depth", "samples")}
    return _xarray.dataset(fields, time=("t", np.asarray(report["t"])), attrs=attrs,
                           what="daedyn diffusion train --out")


def run(args) -> int:
    from daedyn._progress import spinner

    _validate(args)
    prog = f"daedyn diffusion {args.action}"
    with spinner(prog, quiet=args.quiet or args.json):  # compiling and running: seconds
        report, result = {"predict": _predict, "tune": _tune, "train": _train}[args.action](args)
    lost = write_out(prog, args.out, report, lambda: _dataset(report, result),
                    lambda: raw_arrays({k: v for k, v in report.items() if isinstance(v, list)}))
    if args.json:
        print(json.dumps(report, indent=1))
        return lost
    if args.action == "tune":
        print(f"tuned {args.over} for {args.distance} at T = {args.budget:g} epochs "
              f"({report['status']}: {report['message']})")
        print(f"  {args.distance}: {report['initial_value']:.6g} at the start -> {report['value']:.6g}")
        for k in args.over.split(","):
            print(f"  {k.strip()} = {report[k.strip()]}")
    else:
        cols = len(report["lam"])
        head = "predicted" if args.action == "predict" else "trained (predicted)"
        print(f"{prog}: u and generated variance per direction, {head}; lam/N = "
              + ", ".join(f"{v / args.n:.4g}" for v in report["lam"]))
        print(f"{'t':>9}  " + "  ".join(f"{'u_' + str(j):>10} {'var_' + str(j):>10}" for j in range(cols)))
        for i, t in enumerate(report["t"]):
            row = []
            for j in range(cols):
                u, v = report["w"][i][j], report["variance"][i][j]
                row.append(f"{u:>10.4g} {v:>10.4g}")
            print(f"{t:>9.4g}  " + "  ".join(row))
        if args.action == "predict":
            print("KL(training data || generated): " + ", ".join(f"{v:.4g}" for v in report["kl_train"]))
        else:
            pred = report["variance_predicted"][-1]
            print("predicted variance at the end: " + ", ".join(f"{v:.4g}" for v in pred))
    print_written(report)
    return lost
