"""``--depth`` on the CLI (theory, train, tune): bad usage in the default suite (exit 2, one line naming
the option), whole runs against the library slow-marked (each compiles the depth-L solver)."""

import json

import numpy as np
import pytest
from cli_helpers import run_cli

from daedyn import theory


@pytest.mark.parametrize(
    "argv, match",
    [
        (["theory", "--depth", "1"], "--depth must be an integer >= 2"),
        (["theory", "--depth", "3", "--w1", "0.1", "--w2", "0.1"], "--depth >= 3 needs the balanced start"),
        (["train", "--depth", "1"], "--depth must be an integer >= 2"),
        (
            ["tune", "--depth", "3", "--noise", "masking"],
            "--depth >= 3 tunes the Gaussian noise level eps",
        ),
    ],
)
def test_depth_bad_usage(capsys, argv, match):
    rc, _, err = run_cli(argv, capsys)
    assert rc == 2 and match in err and "Traceback" not in err


@pytest.mark.slow  # compiles the depth-3 closed form and its learning time
def test_theory_depth_json_matches_library(capsys):
    rc, out, _ = run_cli(
        [
            "theory",
            "--depth",
            "3",
            "--lam",
            "1",
            "--eps",
            "0.5",
            "--gamma",
            "0,0.05,0.5",
            "--w0",
            "1e-3",
            "--points",
            "3",
            "--json",
        ],
        capsys,
    )
    assert rc == 0
    rep = json.loads(out)
    fp = [c["fixed_point"] for c in rep["curves"]]
    th = [c["threshold"] for c in rep["curves"]]
    want = theory.fixed_point(1.0, 0.5, np.array([0.0, 0.05, 0.5]), depth=3)
    np.testing.assert_allclose(fp, want, rtol=1e-6)  # float32 in-process: printed values round-trip
    assert th[0] == 0.0 and th[2] is None and rep["curves"][2]["learning_time"] is None


@pytest.mark.slow  # reverse-mode compilation of the depth-3 closed form inside the tuner
def test_tune_depth_three_runs(capsys, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "x.npy"
    np.save(path, (rng.random((120, 6)) * np.linspace(1.0, 0.2, 6)).astype(np.float32))
    rc, out, _ = run_cli(
        [
            "tune",
            "--dataset",
            str(path),
            "--heldout",
            "40",
            "--depth",
            "3",
            "--epochs",
            "20000",
            "--alpha",
            "0.5",
            "--max-steps",
            "20",
            "--json",
        ],
        capsys,
    )
    rep = json.loads(out)
    # measured: eps 4.0 -> 3.53, objective 0.068168 -> 0.068012 (converged)
    assert rc == 0 and rep["depth"] == 3 and rep["objective_after"] <= rep["objective_before"]


@pytest.mark.slow  # reverse mode through 300 steps of the depth-3 recursion inside the tuner
def test_tune_depth_three_dynamics_route(capsys, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "x.npy"
    np.save(path, (rng.random((120, 6)) * np.linspace(1.0, 0.2, 6)).astype(np.float32))
    rc, out, _ = run_cli(["tune", "--dataset", str(path), "--heldout", "40", "--depth", "3", "--route",
                          "dynamics", "--epochs", "300", "--alpha", "0.5", "--max-steps", "10", "--json"],
                         capsys)
    rep = json.loads(out)
    assert rc == 0 and rep["depth"] == 3 and rep["route"] == "dynamics"
    assert rep["objective_after"] <= rep["objective_before"]
