"""``daedyn cache info|clear``: the on-disk spectrum cache (where it is, what it holds; empty it)."""

from __future__ import annotations

import json

HELP = ("show or clear the on-disk cache of dataset spectra and compiled programs ($DAEDYN_CACHE, else "
        "~/.cache/daedyn)")


def run(args) -> int:
    from daedyn import _cache

    if args.action == "clear":
        report = {"path": _cache.cache_dir(), **_cache.clear()}
        text = (f"removed {report['removed']} cached spectra and {report['removed_programs']} compiled "
                f"programs from {report['path']}")
    else:
        report = _cache.info()
        text = (f"{report['path']}: {report['spectra']} cached spectra, {report['bytes'] / 1e6:.1f} MB; "
                f"{report['programs']} compiled programs, {report['program_bytes'] / 1e6:.1f} MB")
    print(json.dumps(report) if args.json else text)
    return 0


def register(subparsers) -> None:
    from daedyn.cli._options import add_common_options

    p = subparsers.add_parser(
        "cache", help=HELP, description=HELP + ". Every subcommand that computes the spectrum of a "
        "dataset (train, tune, figures, crosscheck, sweeps of training runs) reads it from there when "
        "it was computed before with the same data and options, and every subcommand keeps XLA's compiled "
        "programs there (a command run again does not compile them again); --no-cache skips the cache.")
    p.add_argument("action", choices=("info", "clear"), nargs="?", default="info",
                   help="info (default): where and how much; clear: delete every cached spectrum and "
                   "compiled program")
    add_common_options(p)
    p.set_defaults(func=run)
