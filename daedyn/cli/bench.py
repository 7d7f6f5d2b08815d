"""``daedyn bench``: run the benchmark suite in ``benchmarks/`` (needs a source checkout)."""

from __future__ import annotations

import pathlib
import sys


def _run(args) -> int:
    root = pathlib.Path(__file__).resolve().parents[2]
    if not (root / "benchmarks" / "__main__.py").exists():
        print("daedyn bench: the benchmarks/ folder ships with the source checkout, not the wheel; "
              "run it from a clone of the repository", file=sys.stderr)
        return 1
    if args.out is not None:
        from daedyn.cli._files import check_out

        check_out("--out", args.out, (".json",))
    sys.path.insert(0, str(root))
    from benchmarks.__main__ import main as bench_main

    argv = (["--full"] if args.full else []) + (["--only", args.only] if args.only else [])
    argv += ["--json-out", args.out] if args.out else []
    argv += ["--json"] if args.json else []
    argv += ["--quiet"] if args.quiet else []
    return bench_main(argv, prog="daedyn bench")


def register(subparsers) -> None:
    from daedyn.cli._options import add_common_options, add_config_options, add_deprecated

    p = subparsers.add_parser("bench", help="run the benchmarks and print a table (see benchmarks/README.md)",
                              description="Run every benchmark (or --only some) and print workload, ours, "
                              "baseline, ratio and fraction of the measured hardware limit.")
    p.add_argument("--full", action="store_true", help="full (GPU) sizes instead of quick CPU sizes")
    p.add_argument("--only", default="", help="comma-separated benchmark names")
    p.add_argument("--out", default=None, metavar="FILE.json",
                   help="where to write the JSON table (default benchmarks/results-<platform>.json)")
    add_deprecated(p, "--json-out", "--out")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_common_options(p)
    add_config_options(p)
    p.set_defaults(func=_run)
