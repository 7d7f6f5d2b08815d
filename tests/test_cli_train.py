"""Tests for ``daedyn train`` (daedyn/cli/train.py): help, a tiny run, JSON, files, exit codes."""

import json

import numpy as np
import pytest
from cli_helpers import graded_npy

from daedyn.cli import main


@pytest.fixture(scope="module")
def npy(tmp_path_factory):
    """A generated data set (N = 48, D = 6) in [0, 1] with a spread-out spectrum."""
    return graded_npy(tmp_path_factory, 48, 6)


BASE = ["--hidden", "3", "--noise", "gaussian", "--sigma2", "0.05", "--marginalised", "--alpha", "0.2",
        "--epochs", "200", "--save-every", "20", "--init-scale", "0.01", "--top", "4"]


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--dataset", "--hidden", "--activation", "--noise", "--sigma2", "--b", "--marginalised",
                "--gamma", "--alpha", "--epochs", "--save-every", "--seeds", "--heldout", "--plot",
                "--out", "--json"):
        assert opt in out, opt


def test_tiny_run_json_files(npy, tmp_path, capsys):
    out, plot = tmp_path / "run.npz", tmp_path / "run.png"
    code = main(["train", "--dataset", npy, *BASE, "--heldout", "8", "--json", "--out", str(out),
                 "--plot", str(plot)])
    assert code == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["n_train"] == 40 and rep["n_heldout"] == 8 and rep["dim"] == 6
    np.testing.assert_allclose(rep["eps"], 40 * 0.05, rtol=1e-6)  # eps = N s^2
    np.testing.assert_allclose(rep["tau"], 40 / 0.2, rtol=1e-6)  # tau = N / alpha
    top = rep["directions"][0]
    # 200 epochs at alpha lam_0 / N ~ 0.6: the top direction sits at the theory's fixed point
    # lam / (lam + eps); the balanced small-init theory tracks it (random start: measured rmse 0.03).
    np.testing.assert_allclose(top["mapping"], top["fixed_point"], rtol=1e-3)
    assert abs(top["theory"] - top["mapping"]) < 1e-2 and top["rmse_vs_theory"] < 0.1
    assert rep["directions"][3]["fixed_point"] == 0.0  # j >= H is not learned
    assert rep["train_loss_final"] < rep["train_loss_initial"] and rep["finite"]
    with np.load(out) as z:
        assert z["mapping"].shape == (1, 11, 6) and z["theory"].shape == (1, 11, 4)
        assert z["singular_values"].shape == (1, 11, 3) and z["heldout_loss"].shape == (1, 11)
        np.testing.assert_array_equal(z["t"], np.arange(0, 201, 20))
        assert json.loads(str(z["settings"]))["hidden"] == 3
    assert plot.stat().st_size > 1000


def test_text_summary_seeds_and_nonlinear(npy, capsys):
    # --noise gaussian needs an explicit level (a missing one used to mean s^2 = 0 silently).
    code = main(["train", "--dataset", npy, *BASE[:4], "--sigma2", "0", "--alpha", "0.2", "--epochs", "40",
                 "--save-every", "20", "--seeds", "2", "--activation", "tanh", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "tanh H = 3" in out and "2 seed(s)" in out and "(std)" in out and "theory" not in out
    assert "train loss" in out


@pytest.mark.parametrize("argv, match", [
    (["--alpha", "-1"], "--alpha must lie in"),
    (["--hidden", "0"], "--hidden must lie in"),
    (["--epochs", "30", "--save-every", "20"], "multiple of --save-every"),
    (["--activation", "nope"], "--activation must be"),
    (["--noise", "gaussian", "--sigma2", "-0.1"], "--sigma2 must lie in"),
    (["--marginalised"], "--marginalised needs"),
    (["--noise", "gaussian"], "--noise gaussian needs its variance: give --sigma2"),
    (["--noise", "laplace"], "--noise laplace needs its scale: give --b"),
    (["--activation", "relu", "--noise", "gaussian", "--sigma2", "0.1", "--marginalised"], "linear"),
])
def test_bad_values_exit_2(npy, capsys, argv, match):
    assert main(["train", "--dataset", npy, *argv]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1


def test_missing_dataset_exit_1(tmp_path, capsys):
    assert main(["train", "--dataset", str(tmp_path / "missing.npy")]) == 1
    assert "dataset not available" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["train", "--dataset", "cifar10", "--data-dir", str(empty), "--epochs", "1",
                 "--save-every", "1"])
    if code == 0:
        pytest.skip("CIFAR-10 is installed on this machine")
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("daedyn train: dataset not available") and "cifar" in err.lower()


def test_checkpoint_resume_and_refusal(npy, tmp_path, capsys):
    ck = tmp_path / "ck.npz"
    assert main(["train", "--dataset", npy, *BASE, "--json", "--checkpoint", str(ck)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert ck.exists()
    # Same command again: resumes from the finished checkpoint, same numbers.
    assert main(["train", "--dataset", npy, *BASE, "--json", "--checkpoint", str(ck)]) == 0
    assert json.loads(capsys.readouterr().out)["directions"] == first["directions"]
    before = ck.read_bytes()
    code = main(["train", "--dataset", npy, *BASE, "--gamma", "0.1", "--checkpoint", str(ck)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "belongs to a different run" in err[-1]
    assert ck.read_bytes() == before  # nothing already saved is lost
