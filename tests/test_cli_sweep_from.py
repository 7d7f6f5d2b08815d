"""``daedyn sweep --from run.toml NAME=V1,V2,...`` (issue 28, deliverable 3): a training or tuning run's
options swept, each point the run itself, kept as it finishes (rerunning resumes), gathered into one
labelled dataset with a dimension per swept option."""

import json

import numpy as np
import pytest

from daedyn.cli import _sweep_from, main
from daedyn.cli._sweep_from import parse_assignments

xr = pytest.importorskip("xarray", reason="xarray: the sweep extra (in the test extra)")


@pytest.fixture
def run_toml(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((30, 4)).astype(np.float32))
    assert main(["train", "--dataset", str(tmp_path / "x.npy"), "--hidden", "2", "--epochs", "100",
                 "--alpha", "0.3", "--print-config"]) == 0
    (tmp_path / "run.toml").write_text(capsys.readouterr().out)
    return str(tmp_path / "run.toml")


def _fake(calls):
    """A stand-in for one training run: its report's numbers are a known function of the options."""
    def run(argv):
        calls.append(argv)
        opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
        loss = float(opts["gamma"]) * 100 + float(opts["alpha"])
        rows = [{"index": j, "lam": 2.0 - j, "mapping": loss + j} for j in range(2)]
        return 0, json.dumps({"train_loss_final": loss, "gamma": float(opts["gamma"]), "directions": rows})
    return run


def test_points_are_gathered_on_the_grid_and_resumed(run_toml, tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(_sweep_from, "_run_point", _fake(calls))
    out = str(tmp_path / "s.nc")
    argv = ["sweep", "--from", run_toml, "gamma=0,0.01,0.1", "alpha=0.1,0.2", "--out", out, "--quiet"]
    assert main(argv) == 0
    assert len(calls) == 6 and all("--config" in c and "--json" in c for c in calls)
    ds = xr.open_dataset(out)
    assert ds.train_loss_final.dims == ("gamma", "alpha")
    assert ds.mapping.dims == ("gamma", "alpha", "direction")
    # the oracle: the fake's own formula at each coordinate (exact: one multiply-add in float64)
    expect = np.array([0.0, 0.01, 0.1])[:, None] * 100 + np.array([0.1, 0.2])[None, :]
    np.testing.assert_allclose(ds.train_loss_final, expect, rtol=1e-12)
    np.testing.assert_allclose(ds.mapping.sel(gamma=0.1, alpha=0.2), [10.2, 11.2], rtol=1e-12)
    ds.close()
    assert main(argv) == 0 and len(calls) == 6  # rerun: every point kept, nothing recomputed
    capsys.readouterr()


def test_usage_errors(run_toml, tmp_path, capsys):
    assert main(["sweep", "--from", run_toml]) == 2
    assert "needs at least one NAME=V1,V2" in capsys.readouterr().err
    assert main(["sweep", "--from", run_toml, "gamma"]) == 2
    assert "expected NAME=V1,V2" in capsys.readouterr().err
    (tmp_path / "spec.toml").write_text('function = "theory.fixed_point"\n')
    assert main(["sweep", "--from", str(tmp_path / "spec.toml"), "gamma=0"]) == 2
    assert "its first line must name the run" in capsys.readouterr().err
    assert main(["sweep", "--from", run_toml, "gamma=0", "--out", str(tmp_path / "s.txt")]) == 2
    assert parse_assignments(["save-every=10,20"]) == {"save_every": ["10", "20"]}


@pytest.mark.slow  # two real training runs (about 10 s of compilation on the 2-core CPU)
def test_a_real_sweep_of_train(run_toml, tmp_path, capsys):
    out = str(tmp_path / "s.nc")
    assert main(["sweep", "--from", run_toml, "gamma=0,2", "--out", out, "--quiet"]) == 0
    capsys.readouterr()
    ds = xr.open_dataset(out)
    # weight decay N gamma = 60 above the top eigenvalue (37.8, NumPy): learned without it, not with it
    assert float(ds.mapping.sel(gamma=0.0)[0]) > 0.9 and abs(float(ds.mapping.sel(gamma=2.0)[0])) < 0.01
    assert (tmp_path / "s.nc.points" / "1.json").is_file()
