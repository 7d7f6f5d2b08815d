"""Every ``--out`` of the ``daedyn`` command is written, or refused before any work.

The seams: ``simulate --depth L`` (scalar and matrix mode), ``tune --pieces`` / ``--noise
masking`` / ``--noise variances``, ``train --depth L`` (factor matrices of different shapes), and the
new ``theory --out`` / ``crosscheck --out``. Each test runs the CLI in-process, opens the file with
xarray and checks its numbers against an independent NumPy computation; a failed conversion after
the work falls back to ``<out>.npz`` (exit 1); a bad ``--out`` is refused before any work (exit 2,
fast, nothing written).
"""

import json
import os
import time

import numpy as np
import pytest
import xarray as xr  # the test extra installs xarray, zarr and diffrax: a missing one must fail, not skip
from cli_helpers import graded_npy, run_cli


@pytest.fixture(scope="module")
def small_npy(tmp_path_factory):
    return graded_npy(tmp_path_factory, 40, 6)


@pytest.fixture(scope="module")
def tune_npy(tmp_path_factory):
    return graded_npy(tmp_path_factory, 200, 6)


def _deep_gd(lam, eps, gamma, alpha, n, a0, epochs):
    """The depth-L recursion in NumPy (float64): every epoch, simultaneously for every factor,
    a_l <- a_l + (alpha / n) [(lam - (lam + eps) u) prod_{m != l} a_m - n gamma a_l], u = prod a."""
    a = np.asarray(a0, np.float64).copy()
    out = [a.copy()]
    for _ in range(epochs):
        u = np.prod(a)
        others = np.array([np.prod(np.delete(a, l)) for l in range(a.size)])
        a = a + (alpha / n) * ((lam - (lam + eps) * u) * others - n * gamma * a)
        out.append(a.copy())
    return np.asarray(out)  # (epochs + 1, L)


def _logistic(t, lam, eps, w0, tau):
    """The balanced depth-2 flow (Eq. 7, gamma = 0): dw/dt = (2 / tau) w (lam - (lam + eps) w)."""
    k = lam / (lam + eps)
    return k / (1.0 + (k / w0 - 1.0) * np.exp(-2.0 * lam * np.asarray(t) / tau))


def _eigh_desc(sigma):
    lam, v = np.linalg.eigh(np.asarray(sigma, np.float64))
    order = np.argsort(lam)[::-1]
    return np.maximum(lam[order], 0.0), v[:, order]


# ------------------------------------------------------------------------------------------------
# simulate --depth 3


def test_simulate_depth3_scalar_out_is_the_recursion(tmp_path, capsys):
    out = tmp_path / "s.nc"
    lam, eps, gamma, alpha, n, w1, w2 = [1.0, 2.0], [0.0, 0.5], 0.01, 0.05, 2.0, 0.3, 0.5
    rc, stdout, err = run_cli(["simulate", "--depth", "3", "--lam", "1,2", "--eps", "0,0.5", "--gamma",
                               "0.01", "--alpha", "0.05", "--n", "2", "--w1", "0.3", "--w2", "0.5",
                               "--epochs", "60", "--save-every", "20", "--x64", "--quiet", "--out", str(out)],
                              capsys)
    assert rc == 0, err
    assert f"wrote {out}" in stdout
    ds = xr.open_dataset(out)
    assert ds.w.dims == ("lam", "eps", "gamma", "alpha", "epoch")
    # the same variables at every depth: w1 the common value of the first L - 1 factors, w2 the last
    assert ds.w1.dims == ds.w2.dims == ds.w.dims
    np.testing.assert_array_equal(ds.epoch, [0, 20, 40, 60])
    for la in lam:
        for ep in eps:
            ref = _deep_gd(la, ep, gamma, alpha, n, [w1, w1, w2], 60)[::20]  # (4, 3)
            point = dict(lam=la, eps=ep, gamma=gamma, alpha=alpha)
            np.testing.assert_allclose(ds.w1.sel(**point).values, ref[:, 0], rtol=1e-10)
            np.testing.assert_allclose(ds.w1.sel(**point).values, ref[:, 1], rtol=1e-10)
            np.testing.assert_allclose(ds.w2.sel(**point).values, ref[:, 2], rtol=1e-10)
            np.testing.assert_allclose(ds.w.sel(**point).values, np.prod(ref, axis=1), rtol=1e-10)
            assert float(ds.w.sel(**point)[-1]) > w1 * w1 * w2  # it moved: the check is not of the start
    assert ds.attrs["depth"] == 3 and json.loads(ds.attrs["settings"])["depth"] == 3


def test_simulate_depth3_matrix_out_factors_and_mapping(tmp_path, capsys):
    out = tmp_path / "m.nc"
    rc, _, err = run_cli(["simulate", "--depth", "3", "--matrix", "--dim", "3", "--hidden", "2", "--lam", "2",
                          "--alpha", "0.1", "--w1", "0.4", "--w2", "0.6", "--epochs", "40", "--save-every",
                          "20", "--x64", "--quiet", "--out", str(out)], capsys)
    assert rc == 0, err
    ds = xr.open_dataset(out)
    assert ds.w1.dims == ("hidden_1", "input") and ds.w1.shape == (2, 3)
    assert ds.w2.dims == ("hidden_2", "hidden_1") and ds.w2.shape == (2, 2)
    assert ds.w3.dims == ("input", "hidden_2") and ds.w3.shape == (3, 2)
    lam = 2.0 * 100.0 ** (-np.arange(3) / 2)  # the default spectrum
    np.testing.assert_allclose(ds.lam.values, lam, rtol=1e-12)
    np.testing.assert_array_equal(ds.direction, [0, 1, 2])
    product = ds.w3.values @ ds.w2.values @ ds.w1.values  # the final map, in the eigenbasis
    np.testing.assert_allclose(np.diag(product), ds.mapping.isel(epoch=-1).values, rtol=1e-10, atol=1e-14)
    # orthogonal init decouples the directions: each of the first H follows the scalar recursion
    for j in range(2):
        ref = np.prod(_deep_gd(lam[j], 0.0, 0.0, 0.1, 1.0, [0.4, 0.4, 0.6], 40)[::20], axis=1)
        np.testing.assert_allclose(ds.mapping.sel(direction=j).values, ref, rtol=1e-9)
    np.testing.assert_allclose(ds.mapping.sel(direction=2).values, 0.0, atol=1e-14)  # j >= H


# ------------------------------------------------------------------------------------------------
# train --depth 3, and a conversion that fails after the work


# --batch-size 40 (= N: full-batch gradient descent) skips the theory curves, whose depth-3 solver
# would be most of the run's compile time; the two runs share one compiled loop.
TRAIN = ["train", "--depth", "3", "--hidden", "3", "--epochs", "40", "--save-every", "20", "--alpha", "0.05",
         "--init-scale", "0.5", "--batch-size", "40", "--quiet"]


def test_train_depth3_out_stores_every_factor(small_npy, tmp_path, capsys):
    out = tmp_path / "r.nc"
    rc, _, err = run_cli([*TRAIN, "--dataset", small_npy, "--out", str(out)], capsys)
    assert rc == 0, err
    ds = xr.open_dataset(out)
    assert ds.attrs["depth"] == 3
    assert (ds.w1.dims, ds.w1.shape) == (("hidden_1", "input"), (3, 6))
    assert (ds.w2.dims, ds.w2.shape) == (("hidden_2", "hidden_1"), (3, 3))
    assert (ds.w3.dims, ds.w3.shape) == (("input", "hidden_2"), (6, 3))
    x = np.load(small_npy).astype(np.float64)
    lam, v = _eigh_desc(x.T @ x)
    np.testing.assert_allclose(ds.lam.values, lam, rtol=1e-4)
    w = ds.w3.values.astype(np.float64) @ ds.w2.values @ ds.w1.values  # the end-to-end map, input basis
    mapping = np.einsum("ij,ik,kj->j", v, w, v)  # diag(V^T W V)
    np.testing.assert_allclose(mapping, ds.mapping.isel(epoch=-1).values, rtol=1e-3, atol=1e-5)
    assert np.max(np.abs(mapping)) > 1e-2  # a real map, not a vanishing one


def test_train_out_that_fails_after_the_run_falls_back_to_npz(small_npy, tmp_path, capsys, monkeypatch):
    from daedyn import _xarray

    def broken(ds, path):
        raise RuntimeError("the disk said no")

    monkeypatch.setattr(_xarray, "write", broken)
    out = tmp_path / "r.nc"
    rc, _, err = run_cli([*TRAIN, "--dataset", small_npy, "--out", str(out)], capsys)
    assert rc == 1
    fallback = str(out) + ".npz"
    assert "--out" in err and "the disk said no" in err and fallback in err and "Traceback" not in err
    assert not out.exists()
    with np.load(fallback) as z:
        assert z["mapping"].shape == (1, 3, 6)
        assert z["params_w1"].shape == (1, 3, 6) and z["params_w3"].shape == (1, 6, 3)
        assert json.loads(str(z["settings"]))["depth"] == 3
        w = z["params_w3"][0].astype(np.float64) @ z["params_w2"][0] @ z["params_w1"][0]
        mapping = z["mapping"][0, -1]
    x = np.load(small_npy).astype(np.float64)
    _, v = _eigh_desc(x.T @ x)
    np.testing.assert_allclose(np.einsum("ij,ik,kj->j", v, w, v), mapping, rtol=1e-3, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# tune --pieces, --noise masking, --noise variances


def _split(path, n_heldout):
    from daedyn import data

    x = np.load(path)
    xt, xh = data.train_heldout_split(x, n_heldout, seed=0)
    xt, xh = np.asarray(xt, np.float64), np.asarray(xh, np.float64)
    lam, v = _eigh_desc(xt.T @ xt)
    return xt, xh, lam, v, np.sum((xh @ v) ** 2, axis=0)  # projected_j = sum_i (v_j . x_i)^2


def _heldout_loss(w, projected, m, eval_sigma2):
    """1/(2M) [sum_j (1 - w_j)^2 p_j + M s_eval^2 sum_j w_j^2]."""
    return (np.sum((1 - w) ** 2 * projected) + m * eval_sigma2 * np.sum(w * w)) / (2 * m)


@pytest.mark.slow  # ~12 s of CPU: compiles the constant grid and two L-BFGS loops, and the plot's curves
def test_tune_schedule_out_and_plot(tune_npy, tmp_path, capsys):
    out, plot = tmp_path / "t.nc", tmp_path / "t.png"
    rc, stdout, err = run_cli(["tune", "--dataset", tune_npy, "--heldout", "50", "--epochs", "600",
                               "--alpha", "0.2", "--eval-sigma2", "0.05", "--max-steps", "4", "--pieces",
                               "2", "--out", str(out), "--plot", str(plot)], capsys)
    assert rc in (0, 1), err  # 1: the optimiser stopped early (the file is written either way)
    assert f"wrote {out}" in stdout and plot.stat().st_size > 1000
    ds = xr.open_dataset(out)
    np.testing.assert_array_equal(ds.piece_start, [0.0, 300.0])
    np.testing.assert_array_equal(ds.piece_end, [300.0, 600.0])
    assert ds.schedule_eps.dims == ("piece",) and ds.eps.dims == ("step", "piece")
    xt, xh, lam, _, projected = _split(tune_npy, 50)
    n, m, tau, w0 = xt.shape[0], xh.shape[0], xt.shape[0] / 0.2, 1e-6
    e1, e2 = ds.schedule_eps.values.astype(np.float64)
    w_mid = _logistic(300.0, lam, e1, w0, tau)  # the exact chained closed form, piece by piece
    w_end = _logistic(300.0, lam, e2, w_mid, tau)
    np.testing.assert_allclose(ds.attrs["objective"], _heldout_loss(w_end, projected, m, 0.05), rtol=2e-4)
    w_const = _logistic(600.0, lam, ds.attrs["best_constant_eps"], w0, tau)
    np.testing.assert_allclose(ds.attrs["best_constant_objective"],
                               _heldout_loss(w_const, projected, m, 0.05), rtol=2e-4)
    assert ds.attrs["objective"] <= ds.attrs["best_constant_objective"] * (1 + 1e-6) and n == 150


def _masking_eps(xt, v, p):
    """eps_j of inverted-dropout masking at rate p: p / (1 - p) [V^T diag(Sigma) V]_jj."""
    diag = np.sum(xt * xt, axis=0)
    return p / (1 - p) * np.einsum("ij,i,ij->j", v, diag, v)


def test_tune_masking_out_and_plot(tune_npy, tmp_path, capsys):
    out, plot = tmp_path / "m.nc", tmp_path / "m.png"
    rc, stdout, err = run_cli(["tune", "--dataset", tune_npy, "--heldout", "50", "--epochs", "300",
                               "--alpha", "0.05", "--max-steps", "4", "--noise", "masking", "--grid", "4",
                               "--out", str(out), "--plot", str(plot)], capsys)
    assert rc in (0, 1), err
    assert f"wrote {out}" in stdout and plot.stat().st_size > 1000
    ds = xr.open_dataset(out)
    np.testing.assert_allclose(ds.grid_p, [0.2, 0.4, 0.6, 0.8], rtol=1e-6)
    assert ds.p.dims == ("step",) and ds.p.values[0] == pytest.approx(0.2)
    xt, xh, lam, v, projected = _split(tune_npy, 50)
    tau = xt.shape[0] / 0.05
    for p in (0.2, 0.6):
        w = _logistic(300.0, lam, _masking_eps(xt, v, p), 1e-4, tau)
        np.testing.assert_allclose(float(ds.grid_objective.sel(grid_p=p, method="nearest")),
                                   _heldout_loss(w, projected, xh.shape[0], 0.05), rtol=2e-4)
    w = _logistic(300.0, lam, _masking_eps(xt, v, ds.attrs["p"]), 1e-4, tau)
    np.testing.assert_allclose(ds.attrs["objective"], _heldout_loss(w, projected, xh.shape[0], 0.05),
                               rtol=2e-4)


@pytest.mark.slow  # ~7 s of CPU: compiles two L-BFGS stages
def test_tune_variances_out(tune_npy, tmp_path, capsys):
    out = tmp_path / "v.nc"
    rc, _, err = run_cli(["tune", "--dataset", tune_npy, "--heldout", "50", "--epochs", "300", "--alpha",
                          "0.05", "--max-steps", "3", "--noise", "variances", "--out", str(out), "--json"],
                         capsys)
    assert rc in (0, 1), err
    ds = xr.open_dataset(out)
    assert ds.variances.dims == ("input",) and ds.variances.shape == (6,)
    xt, xh, lam, v, projected = _split(tune_npy, 50)
    var = ds.variances.values.astype(np.float64)
    eps_j = xt.shape[0] * np.einsum("ij,i,ij->j", v, var, v)  # the diagonal of N V^T diag(var) V
    w = _logistic(300.0, lam, eps_j, 1e-4, xt.shape[0] / 0.05)
    np.testing.assert_allclose(ds.attrs["objective"], _heldout_loss(w, projected, xh.shape[0], 0.05),
                               rtol=2e-4)
    assert ds.attrs["objective"] <= ds.attrs["isotropic_objective"] * (1 + 1e-6)


# ------------------------------------------------------------------------------------------------
# theory --out, crosscheck --out


def test_theory_out_is_the_closed_form(tmp_path, capsys):
    out = tmp_path / "th.nc"
    rc, _, err = run_cli(["theory", "--lam", "1,2", "--eps", "0,0.5", "--w0", "0.001", "--tau", "2",
                          "--times", "0,1,5,20", "--out", str(out)], capsys)
    assert rc == 0, err
    ds = xr.open_dataset(out)
    assert ds.w.dims == ("lam", "eps", "gamma", "t")
    for la in (1.0, 2.0):
        for ep in (0.0, 0.5):
            sel = dict(lam=la, eps=ep, gamma=0.0)
            np.testing.assert_allclose(ds.w.sel(**sel), _logistic(ds.t.values, la, ep, 1e-3, 2.0), rtol=1e-6)
            k = la / (la + ep)
            np.testing.assert_allclose(float(ds.fixed_point.sel(**sel)), k, rtol=1e-6)
            t90 = 2.0 / (2 * la) * np.log((k / 1e-3 - 1) / (1 / 0.9 - 1))  # time to 0.9 w*
            np.testing.assert_allclose(float(ds.learning_time.sel(**sel)), t90, rtol=1e-6)


def test_crosscheck_out(tmp_path, capsys):
    out = tmp_path / "cc.nc"
    rc, stdout, err = run_cli(["crosscheck", "--eigvals", "4,2,1", "--n", "8", "--hidden", "3", "--epochs",
                               "60", "--alpha", "0.1", "--init-scale", "0.1", "--json", "--out", str(out)],
                              capsys)
    assert rc in (0, 1), err
    report = json.loads(stdout)
    ds = xr.open_dataset(out)
    assert list(ds.way.values) == ["closed", "scalar", "matrix", "train"]
    np.testing.assert_allclose(ds.lam.values, [4.0, 2.0, 1.0], rtol=1e-6)
    assert ds.lam.dims == ("direction",) and ds.mapping.dims == ("way", "epoch", "direction")
    closed = ds.mapping.sel(way="closed")
    w0 = closed.isel(epoch=0).values
    for j, la in enumerate((4.0, 2.0, 1.0)):  # the flow from each direction's own start, tau = N / alpha
        np.testing.assert_allclose(closed.sel(direction=j), _logistic(ds.epoch.values, la, 0.0, w0[j], 80.0),
                                   rtol=1e-5)
    d = ds.mapping.sel(way="closed").values - ds.mapping.sel(way="scalar").values
    np.testing.assert_allclose(ds.diff_rmse.sel(pair="closed-scalar"), np.sqrt(np.mean(d * d, axis=0)),
                               rtol=1e-6)
    assert ds.attrs["verdict"] == report["verdict"]
    np.testing.assert_allclose(ds.learning_time.sel(way="train"),
                               np.asarray(report["learning_times"]["train"], float), rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# a bad --out is refused before any work


NO_DATA = "/no/such/data.npy"  # a command that reached its data would fail on this instead
BAD_OUT = [
    ["simulate", "--epochs", "1000000000"],
    ["simulate", "--depth", "3", "--epochs", "1000000000"],
    ["simulate", "--depth", "3", "--matrix", "--epochs", "1000000000"],
    ["simulate", "--matrix", "--epochs", "1000000000"],
    ["train", "--dataset", NO_DATA, "--depth", "3"],
    ["tune", "--dataset", NO_DATA],
    ["tune", "--dataset", NO_DATA, "--pieces", "2"],
    ["tune", "--dataset", NO_DATA, "--noise", "masking"],
    ["tune", "--dataset", NO_DATA, "--noise", "variances"],
    ["theory", "--points", "100000"],
    ["crosscheck", "--dataset", NO_DATA],
]


@pytest.mark.parametrize("argv", BAD_OUT, ids=lambda a: "-".join(w.strip("-") for w in a[:3]))
@pytest.mark.parametrize("bad, message", [("missing/x.nc", "does not exist"),
                                          ("x.txt", "--out must end in .nc (netCDF) or .zarr")])
def test_bad_out_is_refused_before_any_work(argv, bad, message, tmp_path, capsys):
    if argv[0] == "train" and bad == "x.txt":
        bad, message = "missing/x.npz", "does not exist"  # train writes any other extension as .npz
    start = time.perf_counter()
    rc, _, err = run_cli([*argv, "--out", str(tmp_path / bad)], capsys)
    assert rc == 2 and "--out" in err and message in err, err
    assert "data.npy" not in err  # refused before loading data
    assert time.perf_counter() - start < 5.0 and os.listdir(tmp_path) == []


def test_out_refusals_that_protect_files(tmp_path, capsys):
    folder = tmp_path / "mine.zarr"  # a folder of the user's, not a zarr store: never overwritten
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    rc, _, err = run_cli(["theory", "--out", str(folder)], capsys)
    assert rc == 2 and "--out" in err and "not a zarr store" in err
    (tmp_path / "file.zarr").write_text("not a folder")
    rc, _, err = run_cli(["theory", "--out", str(tmp_path / "file.zarr")], capsys)
    assert rc == 2 and "--out" in err and "is not a folder" in err
    assert sorted(os.listdir(tmp_path)) == ["file.zarr", "mine.zarr"]
    assert (folder / "notes.txt").read_text() == "keep"


def test_zarr_out_is_replaced_whole(tmp_path, capsys):
    out = tmp_path / "th.zarr"
    for lam in ("1,2", "3"):
        rc, _, err = run_cli(["theory", "--lam", lam, "--times", "0,1", "--out", str(out)], capsys)
        assert rc == 0, err
    ds = xr.open_zarr(out)
    np.testing.assert_array_equal(ds.lam, [3.0])
    assert sorted(os.listdir(tmp_path)) == ["th.zarr"]  # no temporary folder left behind


def test_simulate_depth3_eps_schedule_scalar_and_matrix_are_the_recursion(tmp_path, capsys):
    # once refused ("the depth-L schedules are not built"): a piecewise eps schedule at depth 3, scalar
    # and matrix mode (orthogonal start: every direction follows the scalar recursion), against the
    # NumPy recursion of the L factors with eps(k) at epoch k
    common = ["--depth", "3", "--eps-schedule", "piecewise:20:0.2,2", "--gamma", "0.01", "--alpha", "0.05",
              "--n", "2", "--w1", "0.3", "--w2", "0.5", "--epochs", "40", "--save-every", "20", "--x64",
              "--quiet", "--json"]
    rc, out, err = run_cli(["simulate", "--lam", "1,2", *common], capsys)
    assert rc == 0, err
    rep = json.loads(out)

    def ref(lam):
        a = np.array([0.3, 0.3, 0.5])
        for k in range(40):
            eps = 0.2 if k < 20 else 2.0
            u = np.prod(a)
            others = np.array([np.prod(np.delete(a, l)) for l in range(3)])
            a = a + (0.05 / 2) * ((lam - (lam + eps) * u) * others - 2 * 0.01 * a)
        return np.prod(a)

    # float64, the same recursion: rounding only
    np.testing.assert_allclose([r["w_final"] for r in rep["settings"]], [ref(1.0), ref(2.0)], rtol=1e-10)
    rc, out, err = run_cli(["simulate", "--matrix", "--dim", "2", "--hidden", "2", "--lam", "1", *common],
                           capsys)
    assert rc == 0, err
    mapping = json.loads(out)["directions"][0]["mapping"]
    np.testing.assert_allclose(mapping, ref(1.0), rtol=1e-10)


@pytest.mark.slow  # ~40 s: the diffrax depth-3 compile and a masking matrix run
def test_simulate_depth3_diffrax_and_masking_run(tmp_path, capsys):
    # once refused at depth >= 3: the diffrax flow (scalar) and a coupled masking term (matrix mode)
    rc, out, err = run_cli(["simulate", "--depth", "3", "--method", "diffrax", "--lam", "1", "--eps", "0.5",
                            "--w1", "0.5", "--w2", "0.5", "--alpha", "0.1", "--epochs", "400", "--save-every",
                            "200", "--x64", "--quiet", "--json"], capsys)
    assert rc == 0, err
    row = json.loads(out)["settings"][0]
    # the balanced start follows the depth-3 closed form to the solver's tolerance (rtol 1e-8)
    assert row["max_dev_closed_form"] < 1e-6 and abs(row["w_final"] - row["fixed_point"]) < 1e-3
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).uniform(0, 1, (40, 4)))
    rc, out, err = run_cli(["simulate", "--depth", "3", "--matrix", "--noise", "masking", "--p", "0.2",
                            "--dataset", str(x), "--hidden", "3", "--alpha", "0.2", "--epochs", "20",
                            "--save-every", "10", "--quiet", "--json"], capsys)
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["depth"] == 3 and rep["noise"] == "masking" and np.isfinite(rep["loss_final"])
