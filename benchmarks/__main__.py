"""Run every benchmark and print one table: ``python -m benchmarks [--full] [--only NAME,...]``;
or the prepared GPU check: ``python -m benchmarks --gpu-check [--dry-run]`` (benchmarks/_gpu_check.py).

Each benchmark module exposes ``run(quick: bool = True) -> list[dict]`` with the keys
``workload, ours, baseline, ratio, unit`` (and optionally ``hw_fraction``, ``notes``), and runs in
a process of its own (``benchmarks/_one.py``: no benchmark changes another's baseline). The table
is also written as JSON (``--json-out``, default ``benchmarks/results-<platform>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import jax

from benchmarks import _gpu_check, _hw

HERE = pathlib.Path(__file__).parent
# benchmark modules define run(quick); stand-alone scripts (corruption_diagonal_error: its own main)
# are run directly and are not part of the table
MODULES = sorted(p.stem for p in HERE.glob("*.py")
                 if not p.stem.startswith("_") and "\ndef run(" in p.read_text())


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


def format_table(rows: list[dict]) -> str:
    cols = ["benchmark", "workload", "ours", "baseline", "ratio", "unit", "hw_fraction"]
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def run_standalone(name: str, run) -> None:
    """``python benchmarks/<name>.py [--full]``: one module's rows as a table, then each row's notes."""
    import sys

    from benchmarks import _hw

    print(f"device {_hw.device_description()}")
    rows = run(quick="--full" not in sys.argv)
    print(format_table([{"benchmark": name, **r} for r in rows]))
    for r in rows:
        print(f"{r['workload']}: {r['notes']}")


def _run_one(name: str, quick: bool) -> dict:
    """Benchmark ``name`` in a fresh Python process (``benchmarks/_one.py``): ``{"rows": [...]}``
    or ``{"error": ...}``; its progress and tracebacks go to this process's stderr."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(HERE.parent), os.environ.get("PYTHONPATH", "")) if p)}
    fd, out = tempfile.mkstemp(prefix=f"daedyn-bench-{name}-", suffix=".json")
    os.close(fd)
    try:
        size = "quick" if quick else "full"
        code = subprocess.run([sys.executable, "-m", "benchmarks._one", name, size, out], env=env,
                              stdout=sys.stderr).returncode
        try:
            with open(out) as f:
                return json.load(f)
        except ValueError:  # killed (out of memory, a signal) before writing its result
            return {"error": f"the benchmark process exited with code {code} before writing its results"}
    finally:
        os.remove(out)


def run_all(names: list[str], quick: bool, progress=print) -> dict:
    hw = {
        "device": _hw.device_description(),
        "write_bandwidth_GBps": _hw.write_bandwidth() / 1e9,
        "copy_bandwidth_GBps": _hw.copy_bandwidth() / 1e9,
        "matmul_peak_TFLOPs_highest": _hw.matmul_peak("highest") / 1e12,
        "matmul_peak_TFLOPs_default": _hw.matmul_peak(None) / 1e12,
    }
    progress(f"device {hw['device']}; measured limits: " + ", ".join(
        f"{k}={v:.4g}" for k, v in hw.items() if k != "device"))
    rows, failures = [], {}
    for name in names:
        t0 = time.perf_counter()
        progress(f"[{name}] running ({'quick' if quick else 'full'}) ...")
        result = _run_one(name, quick)
        if "rows" in result:
            rows += [{"benchmark": name, **row} for row in result["rows"]]
        else:  # one broken benchmark must not hide the others
            failures[name] = result["error"]
            progress(f"[{name}] FAILED: {failures[name]}")
        progress(f"[{name}] done in {time.perf_counter() - t0:.1f} s")
    return {
        "hardware": hw,
        "rows": rows,
        "failures": failures,
        "quick": quick,
        "jax": jax.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def merge_results(old: dict | None, new: dict, names: list[str]) -> dict:
    """``new`` (a run of the benchmarks ``names``) merged into the results file ``old``: the rows and
    failures of the benchmarks that ran are replaced, every other benchmark's are kept (a partial
    run, ``--only``, must not erase the others); those of names that are no longer benchmark modules
    are dropped. ``hardware``, ``date`` etc. are the new run's; the
    ``dates`` map says when each benchmark's rows were measured. Nothing is merged when ``old`` is
    None or was run at the other size (quick vs full)."""
    stamp = {name: new["date"] for name in names}
    if not old or old.get("quick") != new["quick"]:
        return {**new, "dates": stamp}
    rerun = set(names)
    # rows and failures of modules that are no longer benchmarks (renamed, removed, made stand-alone
    # scripts) go: a full run must not carry them forever
    keep = set(MODULES) - rerun
    kept = [r for r in old.get("rows", []) if r.get("benchmark") in keep]
    failures = {k: v for k, v in old.get("failures", {}).items() if k in keep}
    dates = {**{r.get("benchmark"): old.get("date") for r in kept}, **old.get("dates", {}), **stamp}
    dates = {k: v for k, v in dates.items() if k in {r.get("benchmark") for r in kept} | rerun}
    order = {name: i for i, name in enumerate(MODULES)}
    rows = sorted(kept + new["rows"], key=lambda r: order.get(r.get("benchmark"), len(order)))
    return {**new, "rows": rows, "failures": {**failures, **new["failures"]}, "dates": dates}


def main(argv: list[str] | None = None, prog: str = "python -m benchmarks") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="--gpu-check:\n" + _gpu_check.__doc__.split("\n", 1)[1].strip())
    p.add_argument("--full", action="store_true", help="full sizes (for a GPU); default: quick CPU sizes")
    p.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(MODULES)}")
    p.add_argument("--json-out", default=None, help="where to write the JSON results")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--gpu-check", action="store_true",
                   help="the prepared GPU check (< 8 min on one H100/H200): gpu-marked tests and the "
                   "full-size GPU benchmarks -> benchmarks/results-gpu.json; refuses (exit 3) without a GPU")
    p.add_argument("--dry-run", action="store_true",
                   help="with --gpu-check: every step at tiny sizes on any device (seconds on a CPU)")
    args = p.parse_args(argv)
    if args.dry_run and not args.gpu_check:
        p.error("--dry-run goes with --gpu-check")
    if args.json_out is not None:  # checked before any step: a long run must not end in a lost write
        from daedyn._checkpoint import check_writable

        try:
            check_writable("--json-out", args.json_out)
        except ValueError as err:
            p.error(str(err))
    if args.gpu_check:
        if args.full or args.only or args.json:
            p.error("--gpu-check runs its own fixed steps: drop --full/--only/--json")
        return _gpu_check.run_check(dry_run=args.dry_run, json_out=args.json_out,
                                    progress=lambda s: print(s, file=sys.stderr, flush=True))
    names = [n.strip() for n in args.only.split(",") if n.strip()] or MODULES
    unknown = sorted(set(names) - set(MODULES))
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; choose from {MODULES}")
    say = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    result = run_all(names, quick=not args.full, progress=say)
    print(json.dumps(result, indent=1, default=float) if args.json else format_table(result["rows"]))
    out = pathlib.Path(args.json_out or HERE / f"results-{jax.devices()[0].platform}.json")
    previous = None
    if out.exists():
        try:
            previous = json.loads(out.read_text())
        except ValueError:  # not ours to merge into: keep it beside the new file
            out.replace(out.with_suffix(".json.bak"))
    from daedyn._checkpoint import atomic_write

    with atomic_write(out, "benchmark results") as tmp:
        pathlib.Path(tmp).write_text(json.dumps(merge_results(previous, result, names), indent=2,
                                                default=float))
    print(f"\nwrote {out} ({len(names)} of {len(MODULES)} benchmarks rerun; the others' rows kept)"
          if previous is not None and len(names) < len(MODULES) else f"\nwrote {out}", file=sys.stderr)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
