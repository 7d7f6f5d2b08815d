"""``daedyn diffusion predict|tune|train``: JSON keys and values against the library, --out, --config and
usage errors (exit 2 naming the option). The library's values are tested against independent oracles
in tests/test_diffusion*.py; here the CLI must pass them through unchanged."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from daedyn import diffusion
from daedyn.cli import main


def _json(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_predict_json_matches_the_library(capsys):
    rep = _json(capsys, ["diffusion", "predict", "--lam", "400,10", "--times", "0,50,400", "--p-mean", "-1",
                         "--sigma-data", "0.6", "--json"])
    assert {"t", "lam", "w", "variance", "a", "b", "kl_train"} <= set(rep)
    r = diffusion.predict(jnp.array([0.0, 50.0, 400.0]), jnp.array([400.0, 10.0]), n=100, alpha=0.05,
                          w0=1e-6, sigma=diffusion.LogNormal(-1.0, 1.2), sigma_data=0.6)
    # the same float32 computation: equal to rounding
    np.testing.assert_allclose(rep["w"], np.asarray(r.w), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(rep["variance"], np.asarray(r.variance), rtol=1e-6)
    np.testing.assert_allclose(rep["kl_train"], np.asarray(r.kl_divergence(jnp.array([4.0, 0.1]))), rtol=1e-6)
    assert rep["t"] == [0.0, 50.0, 400.0]


def test_predict_table_and_out(capsys, tmp_path):
    pytest.importorskip("xarray", reason="xarray results: the sweep extra (in the test extra)")
    out = tmp_path / "p.nc"
    assert main(["diffusion", "predict", "--lam", "400,10", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "u_0" in text and "KL(training data || generated)" in text and f"wrote {out}" in text
    import xarray as xr

    with xr.open_dataset(out) as ds:
        assert ds["variance"].shape == (11, 2)  # 11 default times from 0 to --budget


@pytest.mark.slow  # L-BFGS compiles the distance twice (~30 s on the loaded 2-core VM)
def test_tune_json_and_config(capsys, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('lam = [400.0, 100.0, 4.0]\nsteps = 3\nover = "p_mean"\n')
    rep = _json(capsys, ["diffusion", "tune", "--config", str(cfg), "--json"])
    assert rep["lam"] == [400.0, 100.0, 4.0] and set(rep) >= {"value", "initial_value", "p_mean", "status"}
    assert "p_std" not in rep  # only --over's numbers were tuned
    assert rep["value"] <= rep["initial_value"]
    # the starting distance is the library's at EDM's default
    f = diffusion.tune(np.array([400.0, 100.0, 4.0]), np.array([4.0, 1.0, 0.04]), n=100, alpha=0.05,
                       budget=400.0, over="p_mean", steps=1)
    assert rep["initial_value"] == pytest.approx(f.initial_value, rel=1e-6)


@pytest.mark.parametrize("argv, option", [
    (["predict", "--alpha", "0"], "--alpha"),
    (["predict", "--p-std", "7"], "--p-std"),
    (["predict", "--lam", "-1"], "--lam"),
    (["tune", "--heldout", "1,2"], "--heldout"),
    (["tune", "--over", "s_min"], "--over"),
    (["predict", "--sigma", "ladder"], "--sigmas"),
    (["predict", "--out", "/no/such/folder/x.nc"], "--out"),
])
def test_usage_errors_exit_2_naming_the_option(capsys, argv, option):
    assert main(["diffusion", *argv]) == 2
    err = capsys.readouterr().err
    assert option in err, err


def test_unknown_action_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["diffusion", "sample"])
    assert e.value.code == 2


@pytest.mark.slow
def test_train_json_against_prediction(capsys):
    rep = _json(capsys, ["diffusion", "train", "--budget", "200", "--records", "2", "--depth", "1",
                         "--samples", "16", "--json"])
    v, p = np.asarray(rep["variance"])[-1], np.asarray(rep["variance_predicted"])[-1]
    # sampled gradients (N = 100, 16 draws): the learned variance fluctuates by a few percent
    np.testing.assert_allclose(v, p, rtol=0.1)
