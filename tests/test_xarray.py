"""Results as labelled xarray datasets (the sweeps' dimension names) and TrainResult as a clean pytree."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import dynamics, train, tune
from daedyn.cli import main

xr = pytest.importorskip("xarray", reason="the sweep extra (xarray) is not installed")


@pytest.fixture(scope="module")
def tiny():
    return np.asarray(jr.uniform(jr.key(0), (32, 5)) * jnp.array([1.0, 0.8, 0.6, 0.4, 0.2])[None, :])


def test_scalar_trajectory_dims_coords_and_values():
    eps = jnp.array([0.0, 1.0, 4.0])
    tr = dynamics.scalar_gd(1.0, eps, 0.1, 0.1, alpha=0.1, epochs=50, save_every=10, observables="all")
    ds = tr.to_xarray(batch_dims=("eps",), coords={"eps": eps})
    assert ds.w.dims == ("eps", "epoch") and dict(ds.sizes) == {"eps": 3, "epoch": 6}
    np.testing.assert_array_equal(ds.epoch, tr.t)
    np.testing.assert_array_equal(ds.w.sel(eps=1.0), tr.w[1])  # exact copies, no arithmetic
    assert set(ds.data_vars) == {"w1", "w2", "w", "weight_norm", "loss"}
    default = dynamics.scalar_gd(1.0, eps, 0.1, 0.1, alpha=0.1, epochs=50, save_every=10)
    assert set(default.to_xarray().data_vars) == {"w"}  # only the saved fields
    assert tr.to_xarray(time_dim="t").w.dims == ("batch", "t")  # unnamed batch axis, flow-sweep time name
    with pytest.raises(ValueError, match="batch_dims"):
        tr.to_xarray(batch_dims=("eps", "gamma"))


def test_matrix_trajectory_dims():
    # labelling only: a hand-made result (T = 3, D = 4, H = 2) spares a matrix_gd compilation
    r = np.random.default_rng(0)
    w1, w2 = r.random((2, 4)), r.random((4, 2))
    factors = ({"ws": (w1, w2)} if "ws" in dynamics.MatrixTrajectory._fields  # the factors of any depth
               else {"w1": w1, "w2": w2})
    tr = dynamics.MatrixTrajectory(t=np.array([0, 10, 20]), mapping=r.random((3, 4)),
                                   singular_values=r.random((3, 2)), weight_norm=r.random(3),
                                   loss=r.random(3), **factors)
    ds = tr.to_xarray()
    assert ds.mapping.dims == ("epoch", "direction") and ds.singular_values.dims == ("epoch", "component")
    assert ds.w1.dims == ("hidden", "input") and ds.w2.dims == ("input", "hidden")
    np.testing.assert_array_equal(ds.mapping.values, tr.mapping)


def _result(batch=(), t=3, d=5, h=2, nonlinear=False):
    """A hand-made TrainResult (labelling and pytree structure need no training run)."""
    r = np.random.default_rng(0)
    a = lambda *shape: jnp.asarray(r.random(batch + shape), jnp.float32)
    params = {"w1": a(h, d), "w2": a(d, h)}
    return train.TrainResult(t=jnp.arange(t) * 10, mapping=a(t, d), singular_values=None if nonlinear
                             else a(t, h), weight_norm=a(t), train_loss=a(t), heldout_loss=None,
                             params=params, init_params=params, eigvals=jnp.linspace(5.0, 1.0, d), n=32,
                             tau=a(), eps=a(), gamma=a())


def test_train_result_is_a_clean_pytree():
    r = _result(nonlinear=True)
    leaves = jax.tree.leaves(r)
    assert leaves and all(isinstance(a, jax.Array) for a in leaves)  # no int, no None
    last = jax.tree.map(lambda a: a[-1:] if a.ndim else a, r)  # failed before on the int leaf
    assert isinstance(last, train.TrainResult) and last.n == 32
    assert last.heldout_loss is None and last.singular_values is None
    np.testing.assert_array_equal(last.t, [20])
    doubled = jax.jit(lambda r: jax.tree.map(lambda a: 2 * a, r))(r)
    np.testing.assert_array_equal(doubled.mapping, 2 * r.mapping)
    assert doubled.n == 32
    ds = r.to_xarray()
    assert ds.mapping.dims == ("epoch", "direction") and ds.lam.dims == ("direction",)
    assert ds.attrs["n"] == 32 and "heldout_loss" not in ds and "singular_values" not in ds


def test_train_batch_to_xarray_and_files(tmp_path):
    from daedyn import _xarray

    ds = _result(batch=(2,)).to_xarray(batch_dims=("seed",), coords={"seed": [0, 1]})
    assert ds.mapping.dims == ("seed", "epoch", "direction") and ds.eps.dims == ("seed",)
    assert ds.lam.dims == ("direction",)  # shared by the batch
    for name in ("r.nc", "r.zarr"):
        back = (xr.open_dataset if name.endswith(".nc") else xr.open_zarr)(_xarray.write(ds, tmp_path / name))
        np.testing.assert_array_equal(back.mapping.values, ds.mapping.values)
    with pytest.raises(ValueError, match=r"\.nc \(netCDF\) or \.zarr"):
        _xarray.write(ds, tmp_path / "r.h5")


def test_tuning_history_to_xarray():
    import optax

    f = lambda p: (jnp.log(p["eps"]) - 1.0) ** 2  # optimum eps = e
    iso = tune.tune(f, {"eps": 1.0}, optimizer=optax.sgd(0.4), max_steps=5)
    r = tune.NoiseTuning(iso, None, 1.0, f, None)
    ds = r.to_xarray()
    assert ds.eps.dims == ("step",) and ds.sizes["step"] == len(r.isotropic.history.objective)
    np.testing.assert_array_equal(ds.objective.values, r.isotropic.history.objective)
    assert ds.attrs["stage"] == "isotropic" and ds.attrs["status"] == r.isotropic.status
    with pytest.raises(ValueError, match="anisotropic stage did not run"):
        r.to_xarray("anisotropic")


@pytest.mark.slow  # a real training run through the CLI: ~9 s on 2 cores
def test_cli_train_out_netcdf(tiny, tmp_path, capsys):
    data = tmp_path / "x.npy"
    np.save(data, tiny)
    out = tmp_path / "run.nc"
    rc = main(["train", "--dataset", str(data), "--hidden", "2", "--epochs", "20", "--save-every", "10",
               "--alpha", "0.3", "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    ds = xr.open_dataset(out)
    assert ds.mapping.dims == ("epoch", "direction") and ds.theory.dims == ("epoch", "direction")
    assert json.loads(ds.attrs["settings"])["hidden"] == 2
    assert not os.path.exists(str(out) + ".npz")


def test_to_xarray_without_xarray_names_the_extra(monkeypatch):
    tr = dynamics.scalar_gd(1.0, 0.5, 0.1, 0.1, alpha=0.1, epochs=10)
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match=r"^ScalarTrajectory.to_xarray needs xarray: "
                                          r"pip install 'daedyn\[sweep\]'$"):
        tr.to_xarray()


def test_figure_numbers_to_xarray(tmp_path):
    from daedyn import _xarray
    from daedyn.figures import FigureResult

    numbers = {"eps": np.array([0.0, 1.0, 5.0]), "t": np.arange(4.0), "runs": 2, "lam": 1.0,
               "w_sim": np.zeros((3, 2, 4)), "eigvals": np.arange(5.0), "mapping": np.ones((4, 5)),
               "ambiguous": np.zeros(3), "gamma": np.array([0.0, 0.1, 0.2]),
               "conventions": {"theory": "Eq. 5"}}
    ds = FigureResult("figure_x", None, numbers).to_xarray()
    assert ds.w_sim.dims == ("w_sim_dim_0", "run", "t")  # eps and gamma both have length 3: not guessed
    assert ds.mapping.dims == ("t", "direction") and ds.eigvals.dims == ("direction",)
    assert ds.attrs["figure"] == "figure_x" and ds.attrs["lam"] == 1.0 and "Eq. 5" in ds.attrs["conventions"]
    del numbers["gamma"]
    ds = _xarray.figure_dataset(numbers)
    assert ds.w_sim.dims == ("eps", "run", "t") and ds.ambiguous.dims == ("eps",)
    np.testing.assert_array_equal(ds.eps, numbers["eps"])
    back = xr.open_dataset(_xarray.write(ds, tmp_path / "f.nc"))
    np.testing.assert_array_equal(back.w_sim.values, numbers["w_sim"])


def test_cli_tune_out_needs_a_dataset_extension(tmp_path, capsys):
    rc, err = main(["tune", "--out", str(tmp_path / "h.h5")]), capsys.readouterr().err
    assert rc == 2 and "--out must end in .nc (netCDF) or .zarr" in err


@pytest.mark.slow  # a tuning run through the CLI: ~10 s on 2 cores
def test_cli_tune_out_netcdf(tiny, tmp_path, capsys):
    data = tmp_path / "x.npy"
    np.save(data, np.tile(tiny, (4, 1)))
    out = tmp_path / "tune.nc"
    rc = main(["tune", "--dataset", str(data), "--heldout", "32", "--epochs", "100", "--max-steps", "3",
               "--out", str(out)])
    assert rc in (0, 1), capsys.readouterr().err
    ds = xr.open_dataset(out)
    assert ds.eps.dims == ("step",) and json.loads(ds.attrs["settings"])["route"] == "closed_form"


def test_cli_simulate_out_is_labelled_by_the_grid(tmp_path, capsys):
    out = tmp_path / "s.nc"
    rc = main(["simulate", "--lam", "1,2", "--eps", "0,0.5,1", "--epochs", "20", "--save-every", "10",
               "--alpha", "0.1", "--out", str(out), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0
    ds = xr.open_dataset(out)
    assert ds.w.dims == ("lam", "eps", "gamma", "alpha", "epoch") and ds.closed_form.dims == ds.w.dims
    for row in report["settings"]:  # every grid point holds its own run: the same float32 numbers
        sel = ds.w.sel(lam=row["lam"], eps=row["eps"], gamma=row["gamma"], alpha=row["alpha"])
        assert float(sel.isel(epoch=-1)) == pytest.approx(row["w_final"], rel=1e-6)
    rc = main(["simulate", "--matrix", "--dim", "3", "--epochs", "20", "--save-every", "10", "--quiet",
               "--out", str(tmp_path / "m.nc")])
    assert rc == 0, capsys.readouterr().err  # matrix mode writes too (tests/test_cli_seams.py)
    ds = xr.open_dataset(tmp_path / "m.nc")
    assert ds.mapping.dims == ("epoch", "direction") and ds.lam.dims == ("direction",)
    assert ds.w1.dims == ("hidden", "input") and ds.w2.dims == ("input", "hidden")
