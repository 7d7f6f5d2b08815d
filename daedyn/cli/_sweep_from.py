"""``daedyn sweep --from run.toml eps=0,1,5 gamma=0,0.01``: sweep a training or tuning run's options.

``run.toml`` is a run config as ``daedyn train|tune --print-config`` writes it (its first line names
the command). Each ``NAME=V1,V2,...`` is an option of that command swept over its values; the grid is
their outer product, in the order given. Every point is the command itself, run with the config,
the point's options and ``--json --quiet`` (so each value is validated exactly as if typed), and its
JSON report is kept in ``<out>.points/<i>.json`` (with its own ``--out`` dataset ``<i>.nc`` when
xarray is installed) as soon as it finishes: rerunning the same command skips the points already
done. The sweep's ``--out`` (``.nc``, ``.zarr`` or ``.json``) gathers the numbers of every report into
one labelled dataset, one dimension per swept option with its values as coordinate: each numeric
entry of the report (``train_loss_final``, ``eps``, ``seconds``, ...) and, for ``train``, the
per-direction table (``mapping``, ``theory``, ``lam`` over ``direction``).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
import sys

__all__ = ["COMMANDS", "parse_assignments", "run_from"]

COMMANDS = ("train", "tune")


def _command_of(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        first = f.readline()
    m = re.match(r"#\s*daedyn (\w+):", first)
    if not m or m.group(1) not in COMMANDS:
        raise ValueError(f"--from {path}: its first line must name the run, as `daedyn train|tune "
                         "--print-config` writes it ('# daedyn train: resolved options ...'); got "
                         f"{first.strip()!r}")
    return m.group(1)


def parse_assignments(words: list[str]) -> dict[str, list[str]]:
    """``["eps=0,1", "gamma=0.01"]`` -> ``{"eps": ["0", "1"], "gamma": ["0.01"]}`` (option names with
    ``-`` or ``_``; values kept as text for the command's own parser).

    Example:
      >>> parse_assignments(["sigma2=0.1,0.5", "save-every=10"])
      {'sigma2': ['0.1', '0.5'], 'save_every': ['10']}
    """
    out: dict[str, list[str]] = {}
    for word in words:
        name, eq, values = word.partition("=")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not eq or not re.fullmatch(r"[A-Za-z][\w-]*", name) or not items:
            raise ValueError(f"sweep --from: expected NAME=V1,V2,... (an option of the run and its values); "
                             f"got {word!r}")
        key = name.replace("-", "_")
        if key in out:
            raise ValueError(f"sweep --from: {name} is given twice")
        out[key] = items
    if not out:
        raise ValueError("sweep --from needs at least one NAME=V1,V2,... to sweep")
    return out


def _point_argv(command: str, config: str, point: dict[str, str], out: str | None) -> list[str]:
    argv = [command, "--config", config, "--json", "--quiet"]
    argv += [f"--{k.replace('_', '-')}={v}" for k, v in point.items()]
    return argv + ([] if out is None else ["--out", out])


def _run_point(argv: list[str]) -> tuple[int, str]:
    """One point: ``daedyn <argv>`` in this process (compilations are shared between points);
    returns its exit code and stdout."""
    from daedyn.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        rc = main(argv)
    return rc, buffer.getvalue()


def _numbers(report: dict) -> dict:
    """The numeric entries of a report (scalars), and train's per-direction table as arrays."""
    out = {k: float(v) for k, v in report.items()
           if isinstance(v, int | float) and not isinstance(v, bool)}
    rows = report.get("directions")
    if isinstance(rows, list) and rows:
        for key in ("lam", "mapping", "theory", "fixed_point"):
            if all(key in r for r in rows):
                out[key] = [float(r[key]) for r in rows]
    return out


def run_from(args, words: list[str]) -> int:
    """The ``daedyn sweep --from`` command (``words``: the ``NAME=VALUES`` assignments)."""
    import numpy as np

    from daedyn._checkpoint import atomic_write
    from daedyn.cli._files import check_out, save_out

    command = _command_of(args.from_)
    axes = parse_assignments(words)
    check_out("--out", args.out, (".nc", ".zarr", ".json"))
    grid = list(itertools.product(*axes.values()))
    folder = ((args.out.rstrip("/") if args.out else f"daedyn-sweep-{command}") + ".points")
    os.makedirs(folder, exist_ok=True)
    try:
        import xarray  # noqa: F401  (each point's own dataset when it can be written)
        point_ext = ".nc"
    except ImportError:
        point_ext = None
    reports: list[dict | None] = []
    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    done = 0
    try:
        for i, values in enumerate(grid):
            point = dict(zip(axes, values, strict=True))
            kept = os.path.join(folder, f"{i}.json")
            label = ", ".join(f"{k}={v}" for k, v in point.items())
            if os.path.exists(kept):
                with open(kept, encoding="utf-8") as f:
                    reports.append(json.load(f))
                done += 1
                say(f"sweep --from: point {i + 1}/{len(grid)} ({label}) kept from an earlier run")
                continue
            say(f"sweep --from: point {i + 1}/{len(grid)}: daedyn {command} {label} ...")
            out = None if point_ext is None else os.path.join(folder, f"{i}{point_ext}")
            rc, text = _run_point(_point_argv(command, args.from_, point, out))
            if rc == 2:  # a usage error is the sweep's: the same for every point
                raise ValueError(f"sweep --from: daedyn {command} {label} is refused (see the line above)")
            report = json.loads(text[text.index("{"):]) if "{" in text else {}
            report["exit_code"] = rc
            with atomic_write(kept, "sweep point") as tmp, open(tmp, "w", encoding="utf-8") as f:
                json.dump(report, f)  # a point is kept whole or not at all
            reports.append(report)
            done += 1
    except KeyboardInterrupt:
        print(f"daedyn sweep: interrupted; {done} of {len(grid)} points are kept in {folder}. Rerun the "
              "same command to resume: finished points are not recomputed.", file=sys.stderr, flush=True)
        raise
    numbers = [_numbers(r) for r in reports]
    keys = [k for k in numbers[0] if all(k in n for n in numbers) and k not in axes]  # axes: coordinates
    shape = tuple(len(v) for v in axes.values())
    summary = {"command": command, "from": args.from_, "axes": axes, "points": len(grid), "kept": folder,
               "failed": [i for i, r in enumerate(reports) if r.get("exit_code")]}

    def dataset():
        from daedyn._xarray import dataset as labelled

        fields = {}
        for k in keys:
            a = np.asarray([n[k] for n in numbers], np.float64)
            fields[k] = (a.reshape(shape + a.shape[1:]), tuple(axes) + (("direction",) if a.ndim > 1 else ()))
        coords = {k: _as_numbers(v) for k, v in axes.items()}
        return labelled(fields, coords=coords, attrs={"settings": json.dumps(summary)},
                        what="daedyn sweep --from --out")

    if args.out and args.out.lower().endswith(".json"):
        with atomic_write(args.out, "sweep results") as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump({**summary, "reports": reports}, f, indent=1)
        summary["out"] = args.out
        lost = 0
    else:
        lost = save_out("daedyn sweep", args.out, summary, dataset,
                        lambda: {k: np.asarray([n[k] for n in numbers]) for k in keys})
    if args.json:
        print(json.dumps({**summary, "reports": reports}, indent=1, default=str))
    else:
        print(f"daedyn sweep --from {args.from_}: {len(grid)} runs of daedyn {command} over "
              + " x ".join(f"{k} ({len(v)})" for k, v in axes.items()))
        for n, values in zip(numbers, grid, strict=True):
            main_value = next((f"{k} = {n[k]:.5g}" for k in ("train_loss_final", "objective_after", "eps")
                               if k in n), "")
            print("  " + ", ".join(f"{k}={v}" for k, v in zip(axes, values, strict=True)) + f": {main_value}")
        if "out" in summary and "out_error" not in summary:
            print(f"wrote {summary['out']}")
    return lost or (1 if summary["failed"] else 0)


def _as_numbers(values: list[str]):
    try:
        return [float(v) for v in values]
    except ValueError:
        return list(values)
