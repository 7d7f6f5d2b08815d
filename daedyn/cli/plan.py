"""``daedyn plan``: what a training run will learn, from the data's spectrum alone (``daedyn.plan``)."""

from __future__ import annotations

import json
import sys

from daedyn.cli._corruption import add_corruption_options, check_cov_dim
from daedyn.cli._files import check_out, out_extension, print_written, raw_arrays, save_npz, save_out
from daedyn.cli._options import (
    add_common_options,
    add_config_options,
    add_dataset_options,
    eigvals_arg,
    load_eigvals,
    seed_int,
)

HELP = "plan a training run from the data's spectrum: stability limit, learning times, what is learned"

_FORMATS = (".nc", ".zarr", ".npz", ".json")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "plan", help=HELP, description=HELP + " (daedyn.plan), before any training: alpha_max (gradient "
        "descent is stable while alpha < alpha_max), each direction's learning time (the balanced "
        "closed form from the start the training's random init gives), how many of the H directions "
        "are learned by --epochs, a suggested alpha (alpha_max / 2) and epochs (90% of the learnable "
        "directions learned at that alpha), and whether `daedyn crosscheck` is expected to agree. "
        "The options are daedyn train's (docs/workflow.md).",
        epilog="Exit codes: 0 ok, 1 dataset not available or --out could not be written, 2 bad usage.")
    add_dataset_options(p)
    p.add_argument("--eigvals", type=eigvals_arg, default=None, metavar="LIST|FILE.npy",
                   help="a spectrum of Sigma = X^T X instead of data, a comma list or a .npy file (--n is "
                   "then the sample count N)")
    p.add_argument("--heldout", type=int, default=0, metavar="M",
                   help="plan on the training part of daedyn train --heldout M (same --seed split; "
                   "default 0)")
    p.add_argument("--hidden", type=int, default=32, help="hidden units H (default 32, as train)")
    p.add_argument("--depth", type=int, default=2, metavar="L",
                   help="number of weight matrices L >= 2 (default 2; depth >= 3: the deep closed forms "
                   "compile once, about 10 s)")
    p.add_argument("--noise", choices=("none", "gaussian", "laplace", "masking", "salt-and-pepper"),
                   default="none", help="input noise, as daedyn train (salt-and-pepper has no closed form)")
    p.add_argument("--sigma2", type=float, default=None, help="Gaussian noise variance sigma^2")
    p.add_argument("--b", type=float, default=None, help="Laplace noise scale b (variance 2 b^2)")
    p.add_argument("--p", type=float, default=None, help="masking drop rate in [0, 1) (inverted dropout)")
    add_corruption_options(p)
    p.add_argument("--eps", type=float, default=None,
                   help="noise level eps = N s^2 directly (instead of --noise gaussian --sigma2)")
    p.add_argument("--gamma", type=float, default=0.0, help="weight decay gamma (default 0)")
    p.add_argument("--alpha", type=float, default=0.01, help="learning rate (default 0.01, as train)")
    p.add_argument("--epochs", type=int, default=1000, help="epochs of full-batch GD (default 1000)")
    p.add_argument("--init-scale", type=float, default=1e-4,
                   help="std of the initial weights (default 1e-4, as train): the start w0 is the mean "
                   "of train.initial_w0 over such random starts")
    p.add_argument("--fraction", type=float, default=0.9,
                   help="a direction is learned once it reaches this fraction of its fixed point (0.9)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the --heldout split (as train)")
    p.add_argument("--out", default=None, metavar="FILE.nc|.zarr|.npz|.json",
                   help="write the plan: .nc/.zarr a labelled dataset (direction, with lam along it; the "
                   "sweep extra), .npz its arrays, .json what --json prints")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_common_options(p)
    add_config_options(p)
    p.set_defaults(func=run)


def _inputs(args):
    """(x or None, eigvals or None, n, noise value or None, eps) from the options."""
    import argparse

    import numpy as np

    from daedyn import data
    from daedyn._checks import check_range
    from daedyn.cli.train import _noise  # train's own parsing of --noise/--sigma2/--b/--p/--cov/--raw

    if args.eps is not None and (args.noise != "none" or args.cov is not None):
        raise ValueError("give --eps (eps = N s^2) or --noise with its level, not both")
    nz = _noise(argparse.Namespace(**vars(args), marginalised=False, eps_schedule=None))  # train's, unsampled
    if args.eigvals is not None:
        if args.heldout:
            raise ValueError("--heldout splits data; with --eigvals, --n is the training sample count")
        if args.n is None:
            raise ValueError("--eigvals needs --n, the number of samples N the eigenvalues are summed over")
        return None, load_eigvals("--eigvals", args.eigvals).tolist(), args.n, nz, args.eps or 0.0
    if args.n is not None:
        check_range("--n", args.n, 1)
    ds, _ = data.load_dataset(args.dataset, n=args.n, data_dir=args.data_dir, subset=args.subset,
                              seed=args.subset_seed)
    x = np.asarray(ds.x)
    if args.heldout:
        if not 1 <= args.heldout < x.shape[0] - 1:
            raise ValueError(f"--heldout must lie in [0, {x.shape[0] - 2}] for {x.shape[0]} samples; "
                             f"got {args.heldout}")
        x, _ = data.train_heldout_split(x, args.heldout, seed=args.seed)
    if args.cov is not None:
        check_cov_dim(nz, x.shape[1])
    return (x, ds.name), None, None, nz, args.eps or 0.0


def run(args) -> int:
    import numpy as np

    import daedyn
    from daedyn._checks import check_range

    check_out("--out", args.out, _FORMATS)
    check_range("--heldout", args.heldout, 0)
    quiet = args.quiet or args.json
    say = (lambda m: None) if quiet else (lambda m: print(f"daedyn plan: {m}", file=sys.stderr, flush=True))
    data, eigvals, n, nz, eps = _inputs(args)
    if data is not None:
        say(f"{data[1]}: N = {data[0].shape[0]}, D = {data[0].shape[1]}; computing the spectrum of X^T X ...")
    if args.depth >= 3:
        say(f"depth {args.depth}: the deep closed forms compile once (about 10 s) ...")
    p = daedyn.plan(None if data is None else data[0], eigvals=eigvals, n=n, hidden=args.hidden,
                    alpha=args.alpha, epochs=args.epochs, depth=args.depth, eps=eps, noise=nz,
                    gamma=args.gamma, init_scale=args.init_scale, fraction=args.fraction)
    if data is not None:
        p = p._replace(settings={**p.settings, "name": data[1]})
    report = p.to_dict()
    lost = 0
    if args.out:
        ext = out_extension(args.out)
        if ext == ".json":
            from daedyn._checkpoint import atomic_write

            with atomic_write(args.out, "plan") as tmp, open(tmp, "w") as f:
                json.dump(report, f, indent=1)
            report["out"] = args.out
        elif ext == ".npz":
            report["out"] = save_npz(args.out, {**raw_arrays(p._replace(settings=None)),
                                                "settings": np.asarray(json.dumps(p.settings))})
        else:
            lost = save_out("daedyn plan", args.out, report, p.to_xarray, lambda: raw_arrays(p))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(p)
        print_written(report)
    return lost
