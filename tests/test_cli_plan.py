"""Tests of ``daedyn plan`` (daedyn/cli/plan.py) and of the plan's warning before ``daedyn train``."""

import json

import numpy as np
import pytest
from cli_helpers import graded_npy, run_cli

SPEC = ["plan", "--eigvals", "4,2,1", "--n", "4", "--hidden", "2", "--alpha", "0.1", "--epochs", "500"]


@pytest.fixture(scope="module")
def npy(tmp_path_factory):
    """A generated data set (N = 48, D = 6) in [0, 1] with a spread-out spectrum."""
    return graded_npy(tmp_path_factory, 48, 6)


def test_help_lists_the_options(capsys):
    rc, out, _ = run_cli(["plan", "--help"], capsys)
    assert rc == 0
    for opt in ("--dataset", "--eigvals", "--hidden", "--depth", "--noise", "--sigma2", "--p", "--eps",
                "--gamma", "--alpha", "--epochs", "--init-scale", "--fraction", "--out", "--json",
                "--config"):
        assert opt in out, opt


def test_json_keys_and_values_of_a_spectrum(capsys):
    rc, out, err = run_cli([*SPEC, "--json"], capsys)
    assert rc == 0 and err == ""
    rep = json.loads(out)
    assert {"alpha_max", "learning_time", "directions_learned", "suggested_alpha", "suggested_epochs",
            "crosscheck", "settings"} <= set(rep)
    # alpha_max = 2 / (2 lam_1 / N) = N / lam_1 = 1 (depth 2, eps = gamma = 0; supplement D)
    assert rep["alpha_max"] == pytest.approx(1.0, rel=1e-6)
    # gradient descent on the balanced factor u of each direction from w0 = H s^2 / 2 = 1e-8 (NumPy):
    # u <- u + (alpha / N) u (lam - lam u^2), first step with u^2 >= 0.9
    lam, u, want = np.array([4.0, 2.0]), np.full(2, 1e-4), np.full(2, np.inf)
    for k in range(1, 1000):
        u = u + 0.1 / 4 * u * (lam - lam * u * u)
        want = np.where(np.isinf(want) & (u * u >= 0.9), k, want)
    assert np.all(np.abs(np.array(rep["learning_time"]) - want) <= 1.0 + 0.01 * want)  # a step, 1%
    assert rep["directions_learned"] == sum(t <= 500 for t in want) == 2
    assert rep["suggested_alpha"] == pytest.approx(0.5) and rep["settings"]["hidden"] == 2


def test_dataset_file_and_outputs(npy, tmp_path, capsys):
    pytest.importorskip("xarray", reason="xarray results: the sweep extra (in the test extra)")
    import xarray as xr

    x = np.load(npy).astype(np.float64)
    lam = np.linalg.eigvalsh(x.T @ x)[::-1]
    out_nc, out_json = tmp_path / "plan.nc", tmp_path / "plan.json"
    base = ["plan", "--dataset", npy, "--hidden", "3", "--alpha", "0.01", "--epochs", "100"]
    rc, out, err = run_cli([*base, "--out", str(out_nc)], capsys)
    assert rc == 0 and "alpha_max" in out and f"wrote {out_nc}" in out
    assert "computing the spectrum" in err  # progress on stderr
    ds = xr.open_dataset(out_nc)
    np.testing.assert_allclose(ds["lam"].values, lam[:3], rtol=1e-5)
    assert all(dim in ds.coords for dim in ds.dims)
    assert float(ds["alpha_max"]) == pytest.approx(48 / lam[0], rel=1e-5)  # N / lam_1
    ds.close()
    rc, out, err = run_cli([*base, "--out", str(out_json), "--json"], capsys)
    assert rc == 0 and err == ""  # --json: no progress lines
    assert json.loads(out_json.read_text())["alpha_max"] == json.loads(out)["alpha_max"]


def test_noise_spelling_is_trains(npy, capsys):
    base = ["plan", "--dataset", npy, "--hidden", "3", "--epochs", "100", "--json"]
    rc, out, _ = run_cli([*base, "--noise", "gaussian", "--sigma2", "0.05"], capsys)
    assert rc == 0
    np.testing.assert_allclose(json.loads(out)["eps"], 48 * 0.05, rtol=1e-6)  # eps = N s^2
    rc, out2, _ = run_cli([*base, "--eps", "2.4"], capsys)
    np.testing.assert_allclose(json.loads(out2)["eps"], json.loads(out)["eps"], rtol=1e-6)
    rc, out, _ = run_cli([*base, "--noise", "masking", "--p", "0.2"], capsys)
    assert rc == 0 and all(e > 0 for e in json.loads(out)["eps"])


def test_print_config_is_a_config(npy, tmp_path, capsys):
    rc, out, _ = run_cli([*SPEC, "--print-config"], capsys)
    assert rc == 0 and "hidden = 2" in out
    cfg = tmp_path / "resolved.toml"
    cfg.write_text(out)
    rc, again, _ = run_cli(["plan", "--config", str(cfg), "--print-config"], capsys)
    assert rc == 0 and again == out


def test_config_file(npy, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'dataset = "{npy}"\nhidden = 3\nalpha = 0.02\nepochs = 50\n')
    rc, out, _ = run_cli(["plan", "--config", str(cfg), "--json"], capsys)
    assert rc == 0
    s = json.loads(out)["settings"]
    assert (s["hidden"], s["alpha"], s["epochs"]) == (3, 0.02, 50)


@pytest.mark.parametrize("argv,word", [
    (["--alpha", "0"], "alpha"),
    (["--hidden", "0"], "hidden"),
    (["--depth", "1"], "depth"),
    (["--fraction", "1.5"], "fraction"),
    (["--noise", "salt-and-pepper", "--p", "0.1"], "marginalised"),
    (["--noise", "gaussian", "--sigma2", "0.1", "--eps", "1"], "not both"),
    (["--noise", "masking"], "--p"),
    (["--out", "plan.txt"], "--out"),
    (["--heldout", "3"], "--heldout"),
])
def test_bad_input_exits_2_naming_the_option(argv, word, capsys):
    rc, out, err = run_cli([*SPEC, *argv], capsys)
    assert rc == 2 and out == "" and word in err and err.startswith("daedyn plan: error:"), err


def test_eigvals_without_n(capsys):
    rc, _, err = run_cli(["plan", "--eigvals", "4,2", "--hidden", "2"], capsys)
    assert rc == 2 and "--n" in err


def test_train_warning_helper(npy, capsys):
    """train's pre-run check alone (no training): 2 epochs at alpha = 0.01 on N = 48 learn nothing,
    2000 at alpha = 0.05 learn every direction; a nonlinear or deep run is not planned."""
    import argparse

    from daedyn import spectrum
    from daedyn.cli.train import _warn_plan

    spec = spectrum.compute_spectrum(np.load(npy))
    args = argparse.Namespace(activation="linear", depth=2, eps_schedule=None, raw=False, batch_size=None,
                              loss_scale="paper", noise="none", hidden=3, alpha=0.01, epochs=2, gamma=0.0,
                              init_scale=1e-4, quiet=False)
    _warn_plan(args, spec, None)
    assert "daedyn train: warning: the plan predicts that 0 of the 3 directions" in capsys.readouterr().err
    for change in (dict(alpha=0.05, epochs=2000), dict(activation="relu"), dict(depth=3), dict(quiet=True)):
        _warn_plan(argparse.Namespace(**{**vars(args), **change}), spec, None)
        assert capsys.readouterr().err == "", change


@pytest.mark.slow  # two training runs (~30 s on a 2-core CPU)
def test_train_warns_before_a_run_that_learns_nothing(npy, capsys):
    """2 epochs at alpha = 0.01 on N = 48: the plan says no direction is learned; train says so first
    (before its progress lines), and not with --quiet."""
    argv = ["train", "--dataset", npy, "--hidden", "3", "--epochs", "2", "--top", "1"]
    rc, out, err = run_cli(argv, capsys)
    assert rc == 0
    warning = "daedyn train: warning: the plan predicts that 0 of the 3 directions"
    assert warning in err and err.index(warning) < err.index("training 1 linear network")
    rc, out, err = run_cli([*argv, "--quiet"], capsys)
    assert rc == 0 and err == ""
