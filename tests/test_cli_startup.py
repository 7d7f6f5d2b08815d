"""`daedyn --help` and `daedyn SUB --help` start fast: building the parser imports no jax, numpy,
matplotlib or daedyn.figures, and only the subcommand asked for is imported. (The time itself is
measured by benchmarks/cli_startup.py, not here.)"""

import json
import os
import subprocess
import sys
from pathlib import Path

from daedyn.cli import _SUBCOMMANDS as SUBCOMMANDS

ROOT = str(Path(__file__).resolve().parent.parent)
HEAVY = ("jax", "numpy", "matplotlib", "daedyn.figures", "daedyn._checkpoint")

_PROBE = """
import json, sys
from daedyn.cli import main
seen = {}
for argv in %r:
    try:
        main(argv)
    except SystemExit:
        pass
    seen[" ".join(argv)] = sorted(m for m in sys.modules if m in %r or m.startswith("daedyn.cli."))
print(json.dumps(seen))
"""


def _probe(argvs):
    code = _PROBE % (argvs, HEAVY)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_imports_nothing_heavy():
    seen = _probe([["--help"]])
    assert not set(seen["--help"]) & set(HEAVY), seen


def test_subcommand_help_imports_only_that_subcommand():
    for sub in SUBCOMMANDS:  # one fresh process each: nothing carried over from another command
        seen = _probe([[sub, "--help"]])[f"{sub} --help"]
        assert not set(seen) & set(HEAVY), (sub, seen)
        others = {f"daedyn.cli.{s}" for s in SUBCOMMANDS if s != sub}
        assert not set(seen) & others, (sub, seen)


def test_figure_names_match_the_library():
    from daedyn import figures
    from daedyn.cli.figures import FIGURE_NAMES

    assert list(FIGURE_NAMES) == list(figures.FIGURES)
