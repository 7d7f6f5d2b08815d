"""The ``daedyn`` command: one subcommand per capability, no logic of its own.

Each subcommand lives in its own module ``daedyn/cli/<name>.py`` exposing
``register(subparsers) -> None``, which adds a parser whose ``func`` default takes the parsed
namespace and returns an exit code. Exit codes: 0 ok, 1 failure, 2 bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import warnings

SUBCOMMANDS = ("theory", "simulate", "train", "tune", "sweep", "figures", "bench")


def build_parser() -> argparse.ArgumentParser:
    from daedyn import __version__

    parser = argparse.ArgumentParser(
        prog="daedyn",
        description="Learning dynamics of (linear) denoising autoencoders: closed forms, "
        "batched integration, training on real data, noise tuning and sweeps.",
    )
    parser.add_argument("--version", action="version", version=f"daedyn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"daedyn.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"daedyn.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def add_common_options(p: argparse.ArgumentParser) -> None:
    """Options every subcommand shares: --json, --device, --x64."""
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument("--device", choices=("cpu", "gpu", "tpu"), default=None,
                   help="JAX platform to run on (default: JAX's default backend)")
    p.add_argument("--x64", action="store_true", help="compute in float64")


def float_list(text: str) -> list[float]:
    """``"0,1,5"`` -> [0.0, 1.0, 5.0] (an argparse ``type=``; errors become one-line usage errors)."""
    items = [v.strip() for v in text.split(",") if v.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected at least one number; got {text!r}")
    try:
        return [float(v) for v in items]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers; got {text!r}") from None


def add_dataset_options(p: argparse.ArgumentParser) -> None:
    """--dataset NAME|FILE.npy, --data-dir, --n: what :func:`load_dataset` reads."""
    p.add_argument("--dataset", default="mnist5k", metavar="NAME|FILE.npy",
                   help="dataset name for daedyn.data.load (mnist5k, mnist, fashion_mnist, cifar10) "
                   "or a local .npy file of shape (N, D) (default mnist5k)")
    p.add_argument("--data-dir", default=None, metavar="DIR", help="folder with local dataset files")
    p.add_argument("--n", type=int, default=None, help="samples to load (default all)")


def load_dataset(args):
    """(x (N, D), name) from --dataset (a name for ``daedyn.data.load`` or a ``.npy`` file)."""
    import os

    import numpy as np

    from daedyn import data

    if args.dataset.endswith(".npy") or os.path.isfile(args.dataset):
        if not os.path.isfile(args.dataset):
            raise data.DatasetUnavailable(f"no such file: {args.dataset}")
        x = np.load(args.dataset)
        if x.ndim != 2:
            raise ValueError(f"--dataset file must hold a 2-D array (N, D); got shape {x.shape}")
        return (x if args.n is None else x[: args.n]), os.path.basename(args.dataset)
    ds = data.load(args.dataset, n=args.n, data_dir=args.data_dir)
    return ds.x, ds.name


def progress_reporter(unit: str = "epoch", stream=None, min_interval: float = 1.0):
    """A ``progress(done, total)`` callback drawing ``[#####---] unit done/total (40%)  elapsed  ETA``.

    On a terminal the bar is redrawn in place; otherwise (logs, pipes, tests) one line is printed
    per call, at most one per ``min_interval`` seconds, plus the last.
    """
    import time

    stream = stream or sys.stderr
    tty = stream.isatty()
    start, last, first = time.perf_counter(), [-float("inf")], []

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        if not first:  # the rate is measured from the first report on (it excludes compilation)
            first.extend((now, done))
        final = done >= total
        if not (final or tty or now - last[0] >= min_interval):
            return
        last[0] = now
        frac = done / max(total, 1)
        elapsed = now - start
        rate = (done - first[1]) / (now - first[0]) if now > first[0] and done > first[1] else 0.0
        eta = "done" if final else (f"ETA {(total - done) / rate:.0f} s" if rate else "ETA ?")
        bar = "#" * int(20 * frac) + "-" * (20 - int(20 * frac))
        line = f"  [{bar}] {unit} {done}/{total} ({100 * frac:.0f}%)  {elapsed:.1f} s  {eta}"
        stream.write(("\r" if tty else "") + line + ("\n" if final or not tty else ""))
        stream.flush()

    return report


def apply_common_options(args) -> None:
    import jax

    if getattr(args, "device", None):
        jax.config.update("jax_platforms", args.device)
    if getattr(args, "x64", False):
        jax.config.update("jax_enable_x64", True)


@contextlib.contextmanager
def _one_line_warnings(prog: str):
    """Within the block, library warnings show as ``prog: warning: message`` on stderr."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {message}", file=file or sys.stderr)

    saved, warnings.showwarning = warnings.showwarning, show
    try:
        yield
    finally:
        warnings.showwarning = saved


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    apply_common_options(args)
    try:
        with _one_line_warnings(f"daedyn {args.command}"):
            return int(args.func(args) or 0)
    except ValueError as err:  # bad values found by the library: usage error
        print(f"daedyn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"daedyn {args.command}: interrupted", file=sys.stderr)
        return 130
