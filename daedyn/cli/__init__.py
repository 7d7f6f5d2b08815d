"""The ``daedyn`` command: one subcommand per capability, no logic of its own.

Each subcommand lives in its own module ``daedyn/cli/<name>.py`` exposing
``register(subparsers) -> None``, which adds a parser whose ``func`` default takes the parsed
namespace and returns an exit code. Exit codes: 0 ok, 1 failure, 2 bad usage.

A subcommand parses its arguments, calls one library function and formats its output: datasets
come from :func:`daedyn.data.load_dataset`, progress bars from :mod:`daedyn._progress`, plots from
:mod:`daedyn.figures`, and range errors from the library's own checks (a ``ValueError`` exits 2).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import warnings

__all__ = ["main", "build_parser", "add_common_options", "add_dataset_options", "float_list",
           "apply_common_options", "SUBCOMMANDS"]

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
    """--dataset NAME|FILE.npy, --data-dir, --n: the arguments of :func:`daedyn.data.load_dataset`."""
    p.add_argument("--dataset", default="mnist5k", metavar="NAME|FILE.npy",
                   help="dataset name for daedyn.data.load (mnist5k, mnist, fashion_mnist, cifar10) "
                   "or a local .npy file of shape (N, D) (default mnist5k)")
    p.add_argument("--data-dir", default=None, metavar="DIR", help="folder with local dataset files")
    p.add_argument("--n", type=int, default=None, help="samples to load (default all)")


def apply_common_options(args) -> None:
    import jax

    if getattr(args, "device", None):
        jax.config.update("jax_platforms", args.device)
    if getattr(args, "x64", False):
        jax.config.update("jax_enable_x64", True)


@contextlib.contextmanager
def _one_line_warnings(prog: str):
    """Within the block, warnings show as ``prog: warning: message`` on stderr, and daedyn's own
    (e.g. an unstable learning rate) every time they are raised (filters and hook restored after)."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {message}", file=file or sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.filterwarnings("always", module=r"daedyn(\.|$)")
        warnings.showwarning = show
        yield


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
