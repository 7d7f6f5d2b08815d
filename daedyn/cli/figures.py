"""``daedyn figures``: regenerate the paper's figures (PNG, PDF and the numbers behind them)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from daedyn.cli._options import add_common_options, add_config_options, seed_int

HELP = "regenerate the paper's figures (and two beyond it) as PNG/PDF plus their numbers"


# The keys of daedyn.figures.FIGURES, spelled out so that `daedyn figures --help` does not import
# matplotlib and jax (tests/test_cli_startup.py checks that the two agree).
FIGURE_NAMES = ("1", "2", "3", "4", "5", "6", "s1", "learning_time", "tuning", "corruption", "depth",
                "schedules", "diffusion")


def _names():
    return list(FIGURE_NAMES)


def _parse_only(text: str) -> list[str]:
    names = _names()
    aliases = {f"figure_{n}": n for n in names} | {"S1": "s1", "supp": "s1"}
    chosen = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        item = aliases.get(item, item)
        if item not in names:
            raise argparse.ArgumentTypeError(
                f"unknown figure {raw.strip()!r}; choose from {', '.join(names)}")
        if item not in chosen:
            chosen.append(item)
    if not chosen:
        raise argparse.ArgumentTypeError("--only needs at least one figure name")
    return chosen


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "figures", help=HELP, description=HELP + ". Datasets that are not available are "
        "reported and their figure or panel skipped; the other figures are still produced.",
        epilog="figures: " + ", ".join(_names()) + ". Exit codes: 0 ok (skipped datasets "
        "included), 1 a figure failed, 2 bad usage.")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output directory (created; required, on the command line or in --config)")
    p.add_argument("--only", type=_parse_only, default=None, metavar="LIST",
                   help="comma-separated figures to make, e.g. 1,2,s1 (default: all)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="quick", action="store_true", default=None,
                      help="reduced sizes, a few minutes on a 2-core CPU (default on CPU)")
    mode.add_argument("--full", dest="quick", action="store_false",
                      help="the paper's settings (default on GPU/TPU)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="directory with local dataset files (MNIST IDX, CIFAR-10 batches) or "
                   "a tfds data_dir")
    p.add_argument("--seed", type=seed_int, default=0, help="PRNG seed for initial weights and noise")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--wdae-rate", choices=("supplement", "authors"), default="supplement",
                   help="Figure 3 WDAE learning rate: the supplement's optimal rate (paper text, "
                   "default) or the rate of the authors' experiment")
    add_common_options(p)
    add_config_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import jax.random as jr

    from daedyn import figures
    from daedyn._progress import progress_bar
    from daedyn.cli._files import check_file
    from daedyn.data import DatasetUnavailable

    if args.out is None:
        raise ValueError("--out DIR is required: the folder the figures are written to")
    check_file("--out", args.out, folder=True)  # created by the first figure: refused now if it cannot be
    names = args.only or _names()
    quick = _quick_default() if args.quick is None else args.quick
    key = jr.key(args.seed)
    report = {"out": args.out, "quick": quick, "seed": args.seed, "figures": {}}
    failed = False
    for i, name in enumerate(names, 1):
        fn = figures.FIGURES[name]
        kwargs = dict(quick=quick, out_dir=args.out, key=jr.fold_in(key, i), data_dir=args.data_dir)
        if name == "3":
            kwargs["wdae_rate"] = args.wdae_rate
        if not (args.json or args.quiet):
            print(f"[{i}/{len(names)}] {fn.__name__} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        entry = {}
        quiet = args.json or args.quiet
        say = (lambda m: None) if quiet else (lambda m: print(f"  {m}", file=sys.stderr, flush=True))
        try:
            with figures.reporting(say, progress=None if quiet else progress_bar):
                result = fn(**kwargs)
        except DatasetUnavailable as err:
            entry = {"status": "skipped", "reason": f"dataset not available: {err}"}
        except Exception as err:  # one figure failing must not lose the others
            failed = True
            entry = {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
        else:
            notes = [v for k, v in result.numbers.items()
                     if (k == "note" or k.endswith("_note")) and isinstance(v, str) and v]
            entry = {"status": "ok", "files": [str(p) for p in result.paths],
                     "skipped_panels": dict(result.skipped), "notes": notes}
        entry["seconds"] = round(time.perf_counter() - start, 2)
        report["figures"][fn.__name__] = entry
        if not args.json:
            _print_entry(fn.__name__, entry)
    if args.json:
        print(json.dumps(report, indent=1))
    return 1 if failed else 0


def _quick_default() -> bool:
    """Reduced settings unless an accelerator is the default backend (or DAEDYN_QUICK says)."""
    env = os.environ.get("DAEDYN_QUICK")
    if env is not None:
        return env not in ("0", "", "false", "False")
    import jax

    return jax.default_backend() == "cpu"


def _print_entry(name: str, entry: dict) -> None:
    secs = entry["seconds"]
    if entry["status"] == "ok":
        files = ", ".join(p.rsplit("/", 1)[-1] for p in entry["files"])
        print(f"{name}: wrote {files} ({secs:.1f} s)")
        for note in entry["notes"]:
            print(f"{name}: note: {note}")
        for panel, reason in entry["skipped_panels"].items():
            print(f"{name}: panel {panel} skipped: {_short(reason)}")
    elif entry["status"] == "skipped":
        print(f"{name}: SKIPPED, {_short(entry['reason'])}")
    else:
        print(f"{name}: FAILED, {entry['reason']}", file=sys.stderr)


def _short(reason: str) -> str:
    """First sentence of a dataset error plus its "To provide it" hint (the JSON has it all)."""
    first = reason.split(". ")[0]
    hint = reason[reason.find("To provide it"):] if "To provide it" in reason else ""
    return f"{first}. {hint}".strip()
