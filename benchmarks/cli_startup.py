"""How long does ``daedyn --help`` take, above the Python start-up itself?

Workload: ``python -m daedyn --help`` and ``python -m daedyn SUB --help`` for every subcommand, each
in a fresh subprocess (the best of ``repeat`` runs, wall clock). Baseline: ``python -c pass`` in the
same way (the interpreter's own start-up). The target (issue 16) is under 0.5 s above the
baseline; building the parser imports no jax, numpy or matplotlib (tests/test_cli_startup.py checks
that), and the subcommand modules other than the one asked for are not imported at all. For
scale, a last row times ``import jax, matplotlib.pyplot, daedyn.figures``: what ``--help`` cost
when building the parser imported them.

Run alone: ``python -m benchmarks.cli_startup``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)


def _best(argv: list[str], repeat: int) -> float:
    env = dict(os.environ, PYTHONPATH=ROOT)  # this checkout's daedyn
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *argv], check=True, capture_output=True, env=env, cwd=ROOT)
        best = min(best, time.perf_counter() - t0)
    return best


def run(quick: bool = True) -> list[dict]:
    from daedyn.cli import _SUBCOMMANDS as SUBCOMMANDS

    repeat = 5 if quick else 20
    base = _best(["-c", "pass"], repeat)
    rows = []
    for sub in ("", *SUBCOMMANDS):
        argv = ["-m", "daedyn", *([sub] if sub else []), "--help"]
        t = _best(argv, repeat)
        rows.append({"workload": f"daedyn {sub + ' ' if sub else ''}--help", "ours": round(t, 3),
                     "baseline": round(base, 3), "ratio": round(t / base, 2), "unit": "s",
                     "notes": f"{t - base:.3f} s above `python -c pass` (target < 0.5 s)"})
    heavy = _best(["-c", "import jax, matplotlib.pyplot, daedyn.figures"], repeat)
    rows.append({"workload": "import jax, matplotlib.pyplot, daedyn.figures (the old --help cost)",
                 "ours": round(heavy, 3), "baseline": round(base, 3), "ratio": round(heavy / base, 2),
                 "unit": "s", "notes": "for scale"})
    return rows


if __name__ == "__main__":
    for row in run(quick="--full" not in sys.argv):
        print(f"{row['workload']:<72} {row['ours']:7.3f} s  (python -c pass {row['baseline']:.3f} s)  "
              f"{row['notes']}")
