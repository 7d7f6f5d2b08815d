"""The built-in sweep entry points against direct (broadcast) calls of daedyn.theory/dynamics, and
what every built-in promises: a range for each parameter it accepts, time coordinates computed
from the settings, a read-only name table."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import daedyn.sweep as sweep
from daedyn import dynamics, theory
from daedyn.sweep._builtins import resolve
from daedyn.sweep._spec import NOT_RANGED

LAM = np.geomspace(0.1, 10.0, 5)
EPS = np.array([0.0, 1.0, 4.0])
TS = np.linspace(0.0, 50.0, 6)
f32 = lambda x: np.asarray(x, np.float32)


def test_theory_dae_trajectory_grid(tmp_path):
    spec = {"function": "theory.dae_trajectory",
            "axes": {"lam": LAM.tolist(), "eps": EPS.tolist(), "w1": [0.01, 0.3], "w2": 0.2},
            "constants": {"t": TS, "tau": 5.0}, "chunk_size": 7}
    summary = sweep.run(spec, path=tmp_path / "dae.zarr")
    ds = sweep.open_results(tmp_path / "dae.zarr")
    assert ds.w.dims == ("lam", "eps", "w1", "t") and summary.n_chunks == 5  # blocks of 1 lam x 3 eps x 2 w1
    np.testing.assert_array_equal(ds.t.values, TS)
    want = theory.dae_trajectory(f32(TS), f32(LAM)[:, None, None, None], f32(EPS)[None, :, None, None],
                                 f32([0.01, 0.3])[None, None, :, None], np.float32(0.2), tau=np.float32(5.0))
    # same float32 formula, vmapped per point vs broadcast over the grid: measured max |diff| 1.2e-7
    # (1 ulp of values <= 1); atol 1e-6 leaves 8x margin.
    np.testing.assert_allclose(ds.w.values, np.asarray(want), rtol=0, atol=1e-6)
    assert (ds.status.values == 0).all()


def test_theory_fixed_point_and_small_init(tmp_path):
    axes = {"lam": LAM.tolist(), "eps": EPS.tolist(), "gamma": [0.0, 0.5]}
    sweep.run({"function": "theory.fixed_point", "axes": axes}, path=tmp_path / "fp.zarr")
    fp = sweep.open_results(tmp_path / "fp.zarr").w.values
    want = np.maximum(0.0, (LAM[:, None, None] - np.array([0.0, 0.5])) / (LAM[:, None, None] + EPS[:, None]))
    # float32 closed form vs float64: rtol 1e-6 (a few ulps)
    np.testing.assert_allclose(fp, want, rtol=1e-6, atol=1e-7)
    sweep.run({"function": "theory.small_init_trajectory", "axes": axes,
               "constants": {"t": [0.0, 1e4], "w0": 1e-3, "tau": 10.0}}, path=tmp_path / "si.zarr")
    si = sweep.open_results(tmp_path / "si.zarr")
    # t = 0 gives the start w0; t = 1e4 (>> tau / rate) the fixed point: float32 rounding only
    np.testing.assert_allclose(si.w.sel(t=0.0).values, 1e-3, rtol=1e-6)
    np.testing.assert_allclose(si.w.sel(t=1e4).values, want, rtol=1e-5, atol=1e-6)


def test_dynamics_scalar_gd_grid(tmp_path):
    spec = {"function": "dynamics.scalar_gd", "axes": {"lam": LAM.tolist(), "eps": EPS.tolist(),
                                                       "alpha": [0.01, 0.1]},
            "constants": {"w1": 0.1, "w2": 0.1, "epochs": 100, "save_every": 10}, "chunk_size": 5}
    summary = sweep.run(spec, path=tmp_path / "gd.zarr")
    ds = sweep.open_results(tmp_path / "gd.zarr")
    assert summary.n_chunks == 10 and ds.w.dims == ("lam", "eps", "alpha", "epoch")  # 1 x 2|1 x 2 blocks
    traj = dynamics.scalar_gd(f32(LAM)[:, None, None], f32(EPS)[:, None], 0.1, 0.1,
                              alpha=f32([0.01, 0.1]), epochs=100, save_every=10, check_stability=False,
                              observables="all")
    np.testing.assert_array_equal(ds.epoch.values, np.asarray(traj.t))
    for name in ("w1", "w2", "w", "weight_norm", "loss"):
        # the same broadcast recursion on a (B,) batch instead of the grid: measured bitwise equal in
        # the optimised programs, 2.0e-6 relative where XLA fused one multiply-add and not the other
        # (float32, 100 steps); rtol 5e-6 allows only for such rounding.
        np.testing.assert_allclose(ds[name].values, np.asarray(getattr(traj, name)), rtol=5e-6, atol=1e-9)


def test_dynamics_scalar_flow_default_step(tmp_path):
    spec = {"function": "dynamics.scalar_flow", "axes": {"lam": LAM.tolist(), "eps": EPS.tolist()},
            "constants": {"ts": TS, "w1": 0.1, "w2": 0.1, "tau": 5.0}}
    sweep.run(spec, path=tmp_path / "flow.zarr")
    ds = sweep.open_results(tmp_path / "flow.zarr")
    # no dt given: the sweep picks the step dynamics.scalar_flow picks for the same whole grid
    traj = dynamics.scalar_flow(f32(TS), f32(LAM)[:, None], f32(EPS), 0.1, 0.1, tau=5.0)
    np.testing.assert_allclose(ds.w.values, np.asarray(traj.w), rtol=1e-6, atol=1e-9)  # measured equal
    assert ds.w.dims == ("lam", "eps", "t")


def test_dynamics_matrix_gd_and_learning_time(tmp_path):
    ev, w1, w2 = np.array([4.0, 2.0, 1.0]), np.full((2, 3), 0.05), np.full((3, 2), 0.05)
    spec = {"function": "dynamics.matrix_gd", "axes": {"eps": [0.0, 1.0, 2.0], "alpha": [0.01, 0.05]},
            "constants": {"eigvals": ev, "w1": w1, "w2": w2, "n": 1, "epochs": 200, "save_every": 50,
                          "check_stability": False}}
    sweep.run(spec, path=tmp_path / "mgd.zarr")
    ds = sweep.open_results(tmp_path / "mgd.zarr")
    assert ds.mapping.dims == ("eps", "alpha", "epoch", "direction")
    assert ds.singular_values.dims == ("eps", "alpha", "epoch", "component")
    traj = dynamics.matrix_gd(f32(ev), f32(w1), f32(w2), eps=f32([0.0, 1.0, 2.0])[:, None],
                              alpha=f32([0.01, 0.05]), n=1, epochs=200, save_every=50, check_stability=False)
    np.testing.assert_array_equal(ds.epoch.values, np.asarray(traj.t))
    for name in ("mapping", "singular_values", "weight_norm", "loss"):
        # the same broadcast computation on a (B,) batch: measured bitwise equal; rtol 1e-5 allows
        # a different matmul blocking for another batch shape
        np.testing.assert_allclose(ds[name].values, np.asarray(getattr(traj, name)), rtol=1e-5, atol=1e-8)
    sweep.run({"function": "theory.learning_time", "axes": {"lam": LAM.tolist(), "eps": EPS.tolist()},
               "constants": {"fraction": 0.9, "w0": 1e-3, "tau": 10.0}}, path=tmp_path / "lt.zarr")
    lt = sweep.open_results(tmp_path / "lt.zarr")
    want = theory.learning_time(0.9, f32(LAM)[:, None], f32(EPS), w0=1e-3, tau=10.0)
    np.testing.assert_allclose(lt.time.values, np.asarray(want), rtol=1e-6)  # measured equal


def test_train_entry_point_matches_train_fn(tmp_path):
    import jax

    from daedyn import models, train

    x = np.random.default_rng(0).random((64, 6)).astype(np.float32)
    spec = {"function": "train.train", "axes": {"alpha": [0.1, 0.3], "s2": [0.0, 0.1], "seed": [0, 1, 2]},
            "constants": {"x": x, "hidden": 3, "epochs": 60, "save_every": 20, "marginalised": True,
                          "init_scale": 1e-2}}
    sweep.run(spec, path=tmp_path / "train.zarr")
    ds = sweep.open_results(tmp_path / "train.zarr")
    assert ds.mapping.dims == ("alpha", "s2", "seed", "epoch", "direction")
    np.testing.assert_array_equal(ds.epoch.values, [0, 20, 40, 60])
    assert ds.seed.dtype.kind == "i" and (ds.status.values == 0).all()
    k_init, k_run = jax.random.split(jax.random.key(2))
    p0 = models.init_autoencoder(6, 3, key=k_init, init_scale=1e-2)
    _, rec = train.train_fn(epochs=60, save_every=20, marginalised=True)(
        p0, train.prepare_data(x), train.Hyper(alpha=0.3, gamma=0.0, eps=64 * 0.1), k_run)
    got = ds.sel(alpha=0.3, s2=0.1, seed=2)  # alpha * lam_max / N ~ 0.5: stable GD
    # one training run vmapped among 12 vs alone: same float32 ops, measured 1e-14 apart; the
    # tolerance allows a different matmul blocking in the batched program
    for name in ("mapping", "singular_values", "weight_norm", "train_loss"):
        np.testing.assert_allclose(got[name].values, np.asarray(rec[name]), rtol=1e-5, atol=1e-7)
    assert np.ptp(ds.mapping.isel(epoch=-1, direction=0).values) > 1e-3  # the axes matter


@pytest.mark.gpu
def test_gpu_sweep_matches_cpu_sweep(tmp_path):
    import jax

    spec = {"function": "dynamics.scalar_gd",
            "axes": {"lam": LAM.tolist(), "eps": EPS.tolist(), "alpha": [0.01, 0.1], "w1": [0.01, 0.1]},
            "constants": {"w2": 0.1, "epochs": 300, "save_every": 30, "check_stability": False},
            "chunk_size": 16}
    gpu = sweep.run(spec, path=tmp_path / "gpu.zarr", devices=jax.devices("gpu"))
    sweep.run(spec, path=tmp_path / "cpu.zarr", devices=jax.devices("cpu"))
    assert gpu.plan.n_devices == len(jax.devices("gpu"))
    a, b = sweep.open_results(tmp_path / "gpu.zarr"), sweep.open_results(tmp_path / "cpu.zarr")
    for name in ("w", "loss", "status"):
        # 300 float32 GD steps; GPU and CPU round fused multiply-adds differently: rtol 1e-4
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-4, atol=1e-7)


def _accepted(fn):
    """Every keyword a built-in takes: its signature and the options it declares static."""
    names = {p.name for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD}
    return names | set(resolve(fn)[1].static)


@pytest.mark.parametrize("name", sorted(sweep.ENTRY_POINTS))
def test_every_accepted_parameter_has_a_range(name):
    # the one range table must know every name a built-in accepts (or list it as data/choice/flag):
    # a new adapter parameter without a range fails here
    missing = _accepted(sweep.ENTRY_POINTS[name]) - set(sweep.PARAMETER_RANGES) - NOT_RANGED
    assert not missing, f"{name} accepts {sorted(missing)} without a range"
    assert not set(sweep.PARAMETER_RANGES) & NOT_RANGED


def test_noise_variances_share_the_eps_range():
    for var in ("s2", "sigma2", "var"):
        assert sweep.PARAMETER_RANGES[var] == sweep.PARAMETER_RANGES["eps"]


@pytest.mark.parametrize("axes, match", [
    ({"s2": [-0.1, 0.0], "alpha": [0.1]}, r"axis 's2'.*\[0, inf\)"),  # a swept s2 was never checked
    ({"alpha": [0.1], "seed": [0, 1], "init_scale": [-1.0]}, r"axis 'init_scale'"),
    ({"alpha": [0.1, 0.0]}, r"axis 'alpha'.*\(0, inf\)"),
])
def test_swept_train_parameters_are_range_checked(axes, match):
    with pytest.raises(ValueError, match=match):
        sweep.SweepSpec("train.train", axes, {"x": np.ones((4, 2)), "hidden": 1, "epochs": 2})


def test_range_checks_cover_constants_of_every_kind():
    with pytest.raises(ValueError, match=r"constant 'fraction'.*\(0, 1\)"):
        sweep.SweepSpec("theory.learning_time", {"lam": [1.0]}, {"fraction": 1.0, "w0": 1e-3})
    with pytest.raises(ValueError, match=r"constant 'f'.*\(0, 1\)"):  # the deprecated spelling too
        sweep.SweepSpec("theory.learning_time", {"lam": [1.0]}, {"f": 1.0, "w0": 1e-3})
    with pytest.raises(ValueError, match="constant 'save_every'"):
        sweep.SweepSpec("dynamics.scalar_gd", {"lam": [1.0]}, {"epochs": 10, "save_every": 0})
    with pytest.raises(ValueError, match="constant 'w1'"):
        sweep.SweepSpec("theory.dae_trajectory", {"lam": [1.0]}, {"w1": np.inf, "t": 1.0})
    # counts stay integers on an axis; real parameters given as integers become floats
    s = sweep.SweepSpec(lambda seed, lam: {"y": seed * lam}, {"seed": [0, 1], "lam": [1, 2]})
    p = sweep.plan(s, n_devices=1)
    assert p.outputs["y"].dtype == np.float32  # int32 seed x float32 lam


@pytest.mark.parametrize("name, extra", [
    ("dynamics.scalar_gd", {"lam": 1.0, "w1": 0.1, "w2": 0.1}),
    ("dynamics.matrix_gd", {"eigvals": np.array([2.0, 1.0]), "w1": np.full((1, 2), 0.1),
                            "w2": np.full((2, 1), 0.1), "n": 1}),
])
def test_epoch_coordinates_are_computed_not_simulated(monkeypatch, name, extra):
    fn = getattr(dynamics, name.split(".")[1])
    concrete_calls = []

    def spy(*args, **kw):
        values = list(args) + [kw.get(k) for k in ("alpha", "eps")]
        if not any(isinstance(v, jax.core.Tracer) for v in values):
            concrete_calls.append(kw)  # a run only to learn the save times
        return fn(*args, **kw)

    monkeypatch.setattr(dynamics, name.split(".")[1], spy)
    p = sweep.plan({"function": name, "axes": {"eps": [0.0, 1.0], "alpha": [0.01]},
                    "constants": {**extra, "epochs": 40, "save_every": 10, "check_stability": False}},
                   n_devices=1)
    assert concrete_calls == []  # only the abstract evaluation of the shapes
    first = next(iter(p.outputs.values()))
    assert first.dims[0] == "epoch" and first.shape[0] == 5  # epochs 0, 10, 20, 30, 40


def test_entry_points_are_read_only_and_names_resolve():
    with pytest.raises(TypeError):
        sweep.ENTRY_POINTS["mine"] = print  # no global registry to mutate
    assert not hasattr(sweep, "register")
    fn, info = resolve("theory.fixed_point")
    assert fn is sweep.ENTRY_POINTS["theory.fixed_point"] and info.batching == "vmap"
    assert resolve("numpy:add", ["numpy"])[0] is np.add  # a user's own function, by import path
    with pytest.raises(ValueError, match="--allow-import numpy"):  # only when its module is allowed
        resolve("numpy:add")
    with pytest.raises(ValueError, match="not a built-in entry point"):
        resolve("theory.nonsense")
    with pytest.raises(ValueError, match="cannot import module"):
        resolve("no_such_module_xyz:f", ["no_such_module_xyz"])


def test_learning_time_old_spelling_f_warns_and_equals_fraction(tmp_path):
    """The sweep axis of theory.learning_time is 'fraction' (the glossary's name); 'f' still works for one
    release with a DeprecationWarning, giving the same times as theory.learning_time itself."""
    lam = [1.0, 2.0]
    with pytest.warns(DeprecationWarning, match="use fraction="):
        sweep.run({"function": "theory.learning_time", "axes": {"lam": lam},
                   "constants": {"f": 0.5, "w0": 1e-3}}, path=tmp_path / "f.zarr")
    ds = sweep.open_results(tmp_path / "f.zarr")
    want = theory.learning_time(0.5, jnp.asarray(lam, jnp.float32), 0.0, w0=1e-3)
    np.testing.assert_allclose(np.asarray(ds["time"]), np.asarray(want), rtol=1e-6)  # same float32 program
