"""Running ``daedyn`` in-process in tests, and the small data files the CLI tests read."""

import hashlib
import os

import numpy as np

from daedyn.cli import main


def run_cli(argv, capsys):
    """(exit code, stdout, stderr) of ``daedyn <argv>``; argparse's SystemExit becomes the code."""
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse: --help (0) and usage errors (2)
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def graded_npy(factory, n: int, d: int, kind: str = "uniform") -> str:
    """Path of an (n, d) float32 ``.npy`` data set, columns scaled from 1.5 (normal) or 1.0
    (uniform) down to 0.3 or 0.2: a spread-out spectrum. ``factory``: pytest's tmp_path_factory."""
    rng = np.random.default_rng(0)
    if kind == "normal":
        x = rng.normal(size=(n, d)) * np.linspace(1.5, 0.3, d)[None, :]
    else:
        x = rng.uniform(size=(n, d)) * np.linspace(1.0, 0.2, d)[None, :]
    path = factory.mktemp("data") / "x.npy"
    np.save(path, x.astype(np.float32))
    return str(path)


def snapshot(folder) -> dict:
    """Every file and folder under ``folder``: a file with the sha1 of its bytes, a folder as "dir" (a
    refused command must leave this unchanged)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    out[os.path.relpath(p, folder)] = hashlib.sha1(f.read()).hexdigest()
            else:
                out[os.path.relpath(p, folder)] = "dir"
    return out
