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
