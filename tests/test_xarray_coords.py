"""Every result type has ``.to_xarray()`` with a coordinate on every dimension (issue 28, deliverable 1):
``direction`` is labelled 0 .. D-1 with ``lam`` a coordinate along it, and the spectrum, the grid
baseline and a diffusion denoiser's run are datasets too."""

import importlib

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import spectrum, train, tune

xr = pytest.importorskip("xarray", reason="the sweep extra (xarray) is not installed")

# result types by module: every public class a computation returns (plans, trajectories, runs,
# comparisons, tunings, predictions); a new one must be added here with its to_xarray
_RESULTS = {
    "daedyn.spectrum": ["Spectrum"],
    "daedyn.dynamics": ["ScalarTrajectory", "MatrixTrajectory"],
    "daedyn.train": ["TrainResult", "TheoryComparison"],
    "daedyn.tune": ["TuneResult", "GridResult", "NoiseTuning", "ScheduleTuning", "CorruptionTuning"],
    "daedyn.crosscheck": ["CrossCheck"],
    "daedyn.figures": ["FigureResult"],
    "daedyn._plan": ["Plan"],
    "daedyn.diffusion._predict": ["Prediction"],
    "daedyn.diffusion._train": ["DenoiserRun"],
    "daedyn.diffusion._tune": ["DiffusionTuning"],
}


def _unlabelled(ds) -> list[str]:
    return [d for d in ds.dims if d not in ds.coords]


def test_every_result_type_has_to_xarray():
    missing = [f"{m}.{c}" for m, names in _RESULTS.items() for c in names
               if not callable(getattr(getattr(importlib.import_module(m), c), "to_xarray", None))]
    assert not missing, missing


@pytest.fixture(scope="module")
def tiny():
    return np.asarray(jr.uniform(jr.key(0), (32, 5)) * jnp.array([1.0, 0.8, 0.6, 0.4, 0.2])[None, :])


def test_train_result_and_comparison_label_every_dimension(tiny):
    r = train.train(tiny, hidden=3, key=jr.key(1), alpha=0.5, epochs=20, save_every=10)
    ds = r.to_xarray()
    assert _unlabelled(ds) == []
    assert "lam" in ds.coords and "lam" not in ds.data_vars and ds.lam.dims == ("direction",)
    np.testing.assert_array_equal(ds.direction, np.arange(5))
    # lam from NumPy's own eigensolver (not daedyn.spectrum): float32 data, relative 1e-5
    lam = np.linalg.eigvalsh(np.asarray(tiny, np.float64).T @ tiny)[::-1]
    np.testing.assert_allclose(ds.lam, lam, rtol=1e-5)


@pytest.mark.slow  # compare_with_theory compiles its closed form and recursion: 15 s on a 2-core CPU
def test_measured_and_theory_merge_into_one_dataset(tiny):
    r = train.train(tiny, hidden=3, key=jr.key(1), alpha=0.5, epochs=20, save_every=10)
    ds = r.to_xarray()
    c = train.compare_with_theory(r, eigvecs=spectrum.compute_spectrum(tiny).eigvecs)
    # measured and theory in one dataset
    both = xr.merge([ds, c.to_xarray(r.t, r.eigvals)], compat="no_conflicts", join="exact")
    assert _unlabelled(both) == [] and {"mapping", "continuous", "discrete"} <= set(both.data_vars)


def test_spectrum_to_xarray(tiny):
    s = spectrum.compute_spectrum(tiny)
    ds = s.to_xarray()
    assert _unlabelled(ds) == [] and ds.attrs["n"] == 32
    x = np.asarray(tiny, np.float64)
    lam = np.linalg.eigvalsh(x.T @ x)[::-1]  # oracle: NumPy's eigensolver, float32 data -> rtol 1e-5
    np.testing.assert_allclose(ds.lam, lam, rtol=1e-5)
    np.testing.assert_allclose(ds.lam_per_sample, lam / 32, rtol=1e-5)
    v = ds.eigvecs.transpose("input", "direction").values  # columns are directions: Sigma v = lam v
    np.testing.assert_allclose(x.T @ x @ v, v * lam, atol=2e-4 * lam[0])


def test_grid_result_to_xarray():
    f = lambda p: (jnp.log(p["eps"]) - 1.0) ** 2 + p["gamma"]
    grid = {"eps": np.array([0.5, 1.0, 3.0]), "gamma": np.array([0.0, 0.1])}
    g = tune.grid_search(f, grid)
    ds = g.to_xarray()
    assert ds.objective.dims == ("eps", "gamma") and _unlabelled(ds) == []
    # oracle: the function evaluated by NumPy at the coordinates (float32 objective: 1e-6)
    expect = (np.log(grid["eps"])[:, None] - 1.0) ** 2 + grid["gamma"][None, :]
    np.testing.assert_allclose(ds.objective.sel(eps=3.0, gamma=0.1), expect[2, 1], rtol=1e-6)
    np.testing.assert_allclose(ds.objective, expect, rtol=1e-6)
    assert float(ds.best_eps) == 3.0 and float(ds.best_gamma) == 0.0 and ds.attrs["n_evals"] == 6


def test_denoiser_run_to_xarray():
    # labelling only: a hand-made run (T = 3, D = 2) spares a training compilation
    from daedyn.diffusion import Objective
    from daedyn.diffusion._train import DenoiserRun

    r = np.random.default_rng(0)
    run = DenoiserRun(t=np.array([0, 5, 10]), params={"w1": r.random((3, 2, 2))}, w=r.random((3, 2)),
                      variance=r.random((3, 2)), variance_exact=r.random((3, 2)), lam=np.array([2.0, 1.0]),
                      basis=np.eye(2), n=10, tau=np.array(100.0), objective=Objective(), activation=None,
                      sigma_min=0.002, sigma_max=80.0)
    pred = type("P", (), {"w": r.random((3, 2)), "variance": r.random((3, 2))})()
    ds = run.to_xarray(pred)
    assert _unlabelled(ds) == [] and ds.w.dims == ("epoch", "direction")
    np.testing.assert_array_equal(ds.lam, [2.0, 1.0])
    np.testing.assert_array_equal(ds.w_theory, pred.w)
    np.testing.assert_array_equal(ds.params_w1.sel(epoch=10), run.params["w1"][2])
