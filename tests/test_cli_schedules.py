"""CLI schedule options: ``daedyn theory --eps-schedule`` and ``daedyn tune --schedule piecewise:K``
(daedyn/cli/_schedule.py). In-process, float32."""

import json

import numpy as np
import pytest
from cli_helpers import graded_npy
from cli_helpers import run_cli as _cli

from daedyn import schedules, theory


def test_theory_eps_schedule_prints_the_chained_closed_form(capsys):
    rc, out, _ = _cli(["theory", "--lam", "1,2", "--eps-schedule", "piecewise:100,300:4,0.5,2", "--tau", "50",
                       "--times", "0,120,240,600", "--json"], capsys)
    assert rc == 0
    rep = json.loads(out)
    s = schedules.piecewise_constant([100.0, 300.0], [4.0, 0.5, 2.0])
    ref = theory.small_init_trajectory(np.array([0.0, 120.0, 240.0, 600.0])[:, None], np.array([1.0, 2.0]), s,
                                       w0=1e-3, tau=50.0)
    got = np.array([c["w"] for c in rep["curves"]]).T
    np.testing.assert_allclose(got, ref, rtol=1e-6)  # the library's float32 numbers, printed in full
    assert [c["eps"] for c in rep["curves"]] == [2.0, 2.0]  # the last piece's eps in the table


@pytest.mark.parametrize("argv, message", [
    (["theory", "--eps-schedule", "piecewise:100:1,2,3"], "values must have K + 1"),
    (["theory", "--eps-schedule", "linear:1,0,100"], "piecewise-constant schedules only"),
    (["tune", "--pieces", "x"], "--pieces: invalid int value"),
    (["tune", "--pieces", "0"], "--pieces must be"),
    (["tune", "--schedule", "piecewise:0"], "--schedule must be 'piecewise:K'"),  # the old spelling
    (["tune", "--schedule-also", "gamma"], "--schedule-also needs --pieces"),
    (["tune", "--pieces", "2", "--schedule-also", "beta"], "--schedule-also must be a comma"),
    (["tune", "--pieces", "2", "--alpha-max", "1"], "--alpha-max bounds the learning rate"),
])
def test_bad_schedule_usage_is_exit_2(argv, message, capsys):
    rc, _, err = _cli(argv, capsys)
    assert rc == 2 and message in err


@pytest.mark.slow  # about 30 s on the 2-core CPU (compiling the grid and two L-BFGS loops)
def test_tune_schedule_run(capsys):
    rc, out, _ = _cli(["tune", "--dataset", "mnist5k", "--n", "600", "--heldout", "200", "--pieces",
                       "4", "--max-steps", "20", "--json"], capsys)
    assert rc == 0
    rep = json.loads(out)
    assert rep["pieces"] == 4 and len(rep["eps"]) == 4 and len(rep["boundaries"]) == 3
    assert rep["objective"] <= rep["constant_objective"] and rep["improvement"] >= 0


def test_simulate_eps_schedule_runs_the_scheduled_recursion(capsys):
    from daedyn import dynamics

    rc, out, _ = _cli(["simulate", "--lam", "1,2", "--eps-schedule", "piecewise:300,600:4,0.5,2", "--alpha",
                       "0.01", "--epochs", "1000", "--save-every", "500", "--json", "--quiet"], capsys)
    assert rc == 0
    rep = json.loads(out)
    s = schedules.piecewise_constant([300.0, 600.0], [4.0, 0.5, 2.0])
    ref = dynamics.scalar_gd(np.array([1.0, 2.0]), s, 0.01, 0.01, alpha=0.01, epochs=1000, save_every=500)
    got = [r["w_final"] for r in rep["settings"]]
    np.testing.assert_allclose(got, ref.w[:, -1], rtol=1e-6)  # the same float32 run
    # a piecewise schedule reaches the fused kernel as a table (sparse saves on the CPU: "jnp")
    assert rep["backend"] == "jnp" and [r["eps"] for r in rep["settings"]] == [2.0, 2.0]
    # GD vs the chained closed form (flow): O(alpha lam / N); measured 4e-3 and 5e-3
    assert all(r["max_dev_closed_form"] < 0.02 for r in rep["settings"])


@pytest.mark.slow  # about 40 s on the loaded 2-core CPU (the joint tuning compiles two stages)
def test_tune_schedule_also_joint_run(capsys):
    rc, out, _ = _cli(["tune", "--dataset", "mnist5k", "--n", "600", "--heldout", "200", "--pieces",
                       "2", "--schedule-also", "gamma,alpha", "--alpha-max", "0.05", "--max-steps",
                       "10", "--route", "dynamics", "--epochs", "200", "--json"], capsys)
    rep = json.loads(out)
    assert rc == 0 and len(rep["gamma"]) == 2 and len(rep["alpha_schedule"]) == 2
    assert all(0 < a < 0.05 for a in rep["alpha_schedule"]) and rep["tuned_epochs"] is None
    assert rep["objective"] <= rep["constant_objective"]  # never worse than the best constant


@pytest.mark.slow  # trains 61 + ~20 small networks (the constant grid and the schedule stage)
def test_tune_schedule_train_route_run(capsys, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "x.npy"
    np.save(path, (rng.random((120, 6)) * np.linspace(1.0, 0.2, 6)).astype(np.float32))
    rc, out, _ = _cli(["tune", "--dataset", str(path), "--heldout", "40", "--pieces", "3",
                       "--route", "train", "--epochs", "300", "--alpha", "0.5", "--max-steps", "10",
                       "--json"], capsys)
    rep = json.loads(out)
    assert rc == 0 and rep["route"] == "train" and len(rep["eps"]) == 3
    assert rep["objective"] <= rep["constant_objective"]  # never worse than the best constant


@pytest.mark.slow  # compiles the matrix RK4 flow and the chained closed forms (~4 s)
def test_simulate_matrix_eps_schedule_flow_matches_the_chained_closed_form(capsys):
    rc, out, _ = _cli(["simulate", "--matrix", "--dim", "5", "--hidden", "3", "--eps-schedule",
                       "piecewise:100:0.5,3", "--alpha", "0.05", "--epochs", "400", "--x64", "--method",
                       "rk4", "--dt", "0.05", "--json"], capsys)
    rep = json.loads(out)
    # RK4 (dt 0.05, the jump on a save time) vs the exact chained closed form: measured 3.2e-12
    assert rc == 0 and rep["eps"] == 3.0 and rep["max_dev_closed_form"] < 1e-9
    rc, _, err = _cli(["simulate", "--matrix", "--eps-schedule", "piecewise:100:0.5,3", "--noise", "masking",
                       "--p", "0.2", "--dataset", "mnist5k"], capsys)
    assert rc == 2 and "drop --noise" in err


@pytest.fixture(scope="module")
def npy(tmp_path_factory):
    return graded_npy(tmp_path_factory, 60, 5, "normal")


@pytest.mark.slow  # two whole CLI training runs: ~15 s on the loaded 2-core CPU
def test_train_eps_schedule_marginalised_json(npy, capsys, tmp_path):
    """``daedyn train --eps-schedule``: the trained network follows the scheduled theory, and a
    one-piece schedule reports the same as the constant --noise gaussian run."""
    base = ["train", "--dataset", npy, "--hidden", "3", "--marginalised", "--alpha", "0.05", "--epochs",
            "400", "--save-every", "50", "--init-scale", "0.001", "--top", "3", "--json"]
    out_npz = str(tmp_path / "run.npz")
    rc, out, _ = _cli(base + ["--eps-schedule", "piecewise:200:60,3", "--out", out_npz], capsys)
    assert rc == 0
    rep = json.loads(out)
    assert rep["eps_schedule"] == "piecewise:200:60,3" and rep["eps"] == 3.0  # the last epoch's value
    for row in rep["directions"]:
        # small decoupled start: the per-direction scheduled theory tracks training (docs/schedules.md);
        # 0.02 bounds what an init scale of 1e-3 leaves of the coupling
        assert row["rmse_vs_theory"] < 0.02
    saved = np.load(out_npz)
    np.testing.assert_array_equal(saved["eps"][0], np.where(saved["t"] < 200, 60.0, 3.0))  # eps(t) saved
    n = 60
    rc, out1, _ = _cli(base + ["--eps-schedule", "piecewise::3"], capsys)
    rc2, out2, _ = _cli(base + ["--noise", "gaussian", "--sigma2", str(3.0 / n)], capsys)
    a, b = json.loads(out1), json.loads(out2)
    assert rc == rc2 == 0
    for ra, rb in zip(a["directions"], b["directions"], strict=True):
        # the same float32 training: a constant schedule is the constant (bit for bit in the library)
        assert ra["mapping"] == pytest.approx(rb["mapping"], rel=1e-6)


@pytest.mark.parametrize("extra, message", [
    (["--eps-schedule", "piecewise:100:1"], "values must have K + 1"),
    (["--eps-schedule", "piecewise:100:1,2", "--noise", "gaussian", "--sigma2", "0.1"], "drop --noise"),
    (["--eps-schedule", "ramp:1,2"], "schedule must be"),
])
def test_train_eps_schedule_usage_errors(npy, capsys, extra, message):
    rc, _, err = _cli(["train", "--dataset", npy, "--epochs", "2", "--save-every", "1"] + extra, capsys)
    assert rc == 2 and message in err
