"""The ``daedyn`` command: one subcommand per capability, no logic of its own.

Each subcommand lives in its own module ``daedyn/cli/<name>.py`` exposing
``register(subparsers) -> None``, which adds a parser whose ``func`` default takes the parsed
namespace and returns an exit code. Exit codes: 0 ok, 1 failure, 2 bad usage.

A subcommand parses its arguments, calls one library function and formats its output: datasets
come from :func:`daedyn.data.load_dataset`, progress bars from :mod:`daedyn._progress`, plots from
:mod:`daedyn.figures`, and range errors from the library's own checks. Output paths are checked
before any work (``daedyn.cli._files``).

:func:`main` is the one place where failures become messages: one line on stderr, never a
traceback. A ``ValueError`` (a bad value, a corrupt input file, an output path that cannot be
written) exits 2; a missing dataset, a file-system error (missing input, permission, disk full),
a missing optional extra, a runtime error of the backend or anything unexpected exits 1
(``DAEDYN_TRACEBACK=1`` re-raises the latter for debugging); Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import sys
import warnings

__all__ = ["main", "build_parser"]

_SUBCOMMANDS = ("theory", "simulate", "plan", "train", "tune", "sweep", "figures", "crosscheck", "bench",
                "cache", "diffusion")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``daedyn`` parser; with ``only`` (a subcommand name), just that subcommand is imported and
    registered (how :func:`main` starts: the other subcommand modules are never imported). Building
    it imports no jax, numpy or matplotlib: subcommands import what they need when they run."""
    from daedyn import __version__

    parser = argparse.ArgumentParser(
        prog="daedyn",
        description="Learning dynamics of (linear) denoising autoencoders: closed forms, "
        "batched integration, training on real data, noise tuning and sweeps.",
    )
    parser.add_argument("--version", action="version", version=f"daedyn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (only,) if only in _SUBCOMMANDS else _SUBCOMMANDS:
        try:
            module = importlib.import_module(f"daedyn.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"daedyn.cli.{name}":
                raise
            continue
        module.register(sub)
    parser.subcommands = sub.choices  # name -> subparser (for --config)
    return parser


def _import_message(err: ImportError) -> str:
    from daedyn._extras import MissingExtra, extra_of, missing_message

    if isinstance(err, MissingExtra):
        return str(err)
    name = (err.name or "").split(".")[0]
    if extra_of(name) is not None:
        return missing_message("this command", [name])
    if name == "yaml":
        return "YAML specs need PyYAML: pip install pyyaml (or use TOML or JSON)"
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text if "pip install" in text else f"{text} (a dependency is missing or broken)"


def _os_message(err: OSError) -> str:
    reason = err.strerror or str(err) or type(err).__name__
    where = f"{err.filename}: " if err.filename is not None else ""
    text = f"{where}{reason}"
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        text += " (free some space and rerun: checkpoints and sweep stores resume)"
    return text


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


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
    """Run ``daedyn <argv>``; returns the exit code (argparse's own usage errors raise SystemExit 2)."""
    import time

    started = time.perf_counter()  # reported times are the whole command's wall time from here
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(next((w for w in words if not w.startswith("-")), None))
    args, extra = parser.parse_known_args(words)
    if extra:  # named by the subcommand's own parser: "daedyn tune: error: unrecognized arguments: ..."
        sub = parser.subcommands.get(getattr(args, "command", None) or "")
        (sub or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    prog = f"daedyn {args.command}"

    def fail(message: str, code: int) -> int:
        print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
        return code

    if getattr(args, "config", None) or getattr(args, "print_config", False):
        from daedyn.cli import _config

        try:
            args = _config.resolve(parser.subcommands[args.command], args, words)
        except (ValueError, OSError) as err:
            return fail(_os_message(err) if isinstance(err, OSError) else str(err),
                        1 if isinstance(err, OSError) else 2)
        if args.print_config:
            if getattr(args, "resolve_defaults", None):  # defaults that follow other options
                args.resolve_defaults(args)
            sub = parser.subcommands[args.command]  # positionals are not options: not in a config
            print(_config.to_toml(args, skip={a.dest for a in sub._actions if not a.option_strings}),
                  end="")
            return 0
    args.started = started
    try:
        from daedyn._cache import caching
        from daedyn.cli._options import apply_common_options

        apply_common_options(args)
        from daedyn.cli._files import check_outputs_not_inputs

        check_outputs_not_inputs(args)  # an output naming an input file: refused before any work

        use_cache = not getattr(args, "no_cache", False)
        if use_cache:  # compiled programs kept on disk too (a command run again does not recompile)
            from daedyn._cache import use_compilation_cache

            use_compilation_cache()
        with _one_line_warnings(prog), caching(use_cache):
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except ValueError as err:
        from daedyn.data import DatasetUnavailable

        if isinstance(err, DatasetUnavailable):  # the data are absent: a runtime failure
            print(f"{prog}: dataset not available: {err}", file=sys.stderr)
            return 1
        from daedyn import _checks

        hint = getattr(_checks, "FLOAT64_HINT", None)  # the library's advice, in CLI terms
        text = str(err).replace(hint, "rerun with --x64 (float64)") if hint else str(err)
        return fail(text, 2)  # a bad value, found by the CLI or the library: usage error
    except OSError as err:  # missing input, permission, disk full, ...
        return fail(_os_message(err), 1)
    except ImportError as err:
        return fail(_import_message(err), 1)
    except MemoryError:
        sub = getattr(parser, "subcommands", {}).get(args.command)
        have = [o for o in ("--n", "--hidden", "--epochs", "--pieces", "--points", "--max-memory")
                if sub is not None and o in sub._option_string_actions]  # only options this command has
        return fail("out of memory (lower the problem size" + (f", e.g. {', '.join(have)}" if have else "")
                    + ")", 1)
    except Exception as err:  # the backend (XlaRuntimeError is a RuntimeError) or a bug
        if os.environ.get("DAEDYN_TRACEBACK"):
            raise
        kind = "" if isinstance(err, RuntimeError) else f"internal error, {type(err).__name__}: "
        hint = "" if not kind else " (set DAEDYN_TRACEBACK=1 for the traceback and please report it)"
        return fail(f"{kind}{_first_line(err)}{hint}", 1)
