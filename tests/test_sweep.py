"""daedyn.sweep in one process: grid values, one compilation, bad points, bad specs, Ctrl-C resume,
spec files, memory plan, CLI. Multi-process tests (4 devices, SIGKILL, peak memory) are in
test_sweep_processes.py."""

import json
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import daedyn.sweep as sweep
from daedyn.cli import main as cli_main
from daedyn.sweep._store import read_log

TS = np.linspace(0.0, 3.0, 5)
AXES = {"lam": {"geomspace": [0.5, 4.0, 7]}, "eps": [0.0, 0.5, 2.0], "w0": 0.1}
CALLS = {"n": 0}


def logistic(lam, eps, w0, *, t, tau=1.0):
    """Balanced small-init solution written for one grid point (trailing time axis)."""
    CALLS["n"] += 1
    fp = lam / (lam + eps)
    return {"w": fp / (1.0 + (fp / w0 - 1.0) * jnp.exp(-2.0 * (lam + eps) * fp * t / tau)),
            "fp": fp}


def logistic_np(lam, eps, w0, t, tau=1.0):
    fp = lam / (lam + eps)
    return fp / (1.0 + (fp / w0 - 1.0) * np.exp(-2.0 * (lam + eps) * fp * t / tau))


def spec(**kw):
    base = dict(function=logistic, axes=AXES, constants={"t": TS, "tau": 2.0}, dims={"w": ["t"]},
                chunk_size=4)
    base.update(kw)
    return sweep.SweepSpec(**base)


def test_grid_matches_direct_evaluation(tmp_path):
    s = spec()
    summary = sweep.run(s, path=tmp_path / "a.zarr")
    ds = sweep.open_results(tmp_path / "a.zarr")
    # 21 points, blocks of 1 lam x 3 eps (4 points do not hold a whole trailing row pair): 7 chunks
    assert summary.plan.chunk_shape == (1, 3) and summary.n_chunks == 7 == summary.chunks_computed
    assert ds.w.dims == ("lam", "eps", "t") and ds.fp.dims == ("lam", "eps")
    np.testing.assert_array_equal(ds.lam.values, np.geomspace(0.5, 4.0, 7))
    np.testing.assert_array_equal(ds.t.values, TS)  # trailing dim named after the constant t
    assert float(ds.w0) == 0.1 and float(ds.tau) == 2.0  # scalar constants as scalar coords
    lam = np.geomspace(0.5, 4.0, 7).astype(np.float32)[:, None, None]
    eps = np.array([0.0, 0.5, 2.0], np.float32)[None, :, None]
    want = logistic_np(lam.astype(np.float64), eps.astype(np.float64), 0.1, TS[None, None, :], 2.0)
    assert ds.w.dtype == np.float32
    # float32 evaluation of a smooth closed form vs float64 NumPy on float32-rounded inputs: a few
    # ulps of error in exp and the divisions; rtol 1e-5 is ~80 ulps of margin.
    np.testing.assert_allclose(ds.w.values, want, rtol=1e-5)
    assert (ds.status.values == 0).all() and ds.attrs["sweep_complete"]
    assert json.loads(ds.attrs["sweep_spec"])["function"].endswith(":logistic")


def test_compiles_once_for_many_chunks(tmp_path):
    from daedyn.sweep import _run

    _run._PROGRAMS.clear()  # another test of this process may have run this spec
    CALLS["n"] = 0
    summary = sweep.run(spec(chunk_size=2), path=tmp_path / "b.zarr")
    assert summary.n_chunks == 14  # 2-point target: eps (3 values) cut into blocks of 2 + 1, per lam
    # one trace for eval_shape (planning) and one for the compiled chunk function, not one per chunk
    assert CALLS["n"] == 2


def test_bad_points_become_nan_with_status(tmp_path):
    def risky(a, b):
        return {"y": jnp.log(a - b) * jnp.ones(3), "z": a + b}

    s = sweep.SweepSpec(function=risky, axes={"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0, 2.5]}, chunk_size=4)
    summary = sweep.run(s, path=tmp_path / "nan.zarr")
    ds = sweep.open_results(tmp_path / "nan.zarr")
    a, b = np.meshgrid([1.0, 2.0, 3.0], [0.0, 1.0, 2.5], indexing="ij")
    bad = a <= b  # log of 0 (-inf) or of a negative number (NaN)
    assert summary.bad_points == bad.sum() == 3
    np.testing.assert_array_equal(ds.status.values, bad.astype(np.int8))
    assert np.isnan(ds.y.values[bad]).all() and np.isnan(ds.z.values[bad]).all()  # whole point NaN
    # float32 log vs float64 NumPy: rtol 1e-6 (a few ulps)
    np.testing.assert_allclose(ds.y.values[~bad][:, 0], np.log((a - b)[~bad]), rtol=1e-6)
    keep = s.replace(bad_points="keep")
    sweep.run(keep, path=tmp_path / "keep.zarr")
    dk = sweep.open_results(tmp_path / "keep.zarr")
    assert np.isneginf(dk.y.values[0, 1]).all() and dk.z.values[0, 1] == 2.0  # kept, still flagged
    np.testing.assert_array_equal(dk.status.values, bad.astype(np.int8))


def _refused(tmp_path, match, **kw):
    CALLS["n"] = 0
    with pytest.raises(ValueError, match=match):
        sweep.run(spec(**kw), path=tmp_path / "bad.zarr")
    return CALLS["n"]


def test_bad_specs_are_refused_before_compute(tmp_path):
    assert _refused(tmp_path, "unknown axis 'lr'", axes={**AXES, "lr": [1.0]}) == 0
    assert _refused(tmp_path, "axis 'eps' is empty", axes={**AXES, "eps": []}) == 0
    assert _refused(tmp_path, r"axis 'eps'.*\[0, inf\)", axes={**AXES, "eps": [-0.5, 1.0]}) == 0
    assert _refused(tmp_path, "constant 'tau'", constants={"t": TS, "tau": 0.0}) == 0
    assert _refused(tmp_path, "unknown output", outputs=["loss"]) == 1  # traced once by eval_shape
    assert _refused(tmp_path, "dims for output 'w'", dims={"w": ["t", "extra"]}) == 1
    assert _refused(tmp_path, "too small", max_memory="20B") == 1
    assert _refused(tmp_path, r"coords given for \['time'\]", coords={"time": [1.0, 2.0]}) == 1
    assert not os.path.exists(tmp_path / "bad.zarr")

    def mismatch(a, *, u, v):
        return {"y": a * u + v}  # u (3,) + v (4,) do not broadcast

    with pytest.raises(ValueError, match="cannot run on this spec's shapes"):
        sweep.run(sweep.SweepSpec(mismatch, {"a": [1.0, 2.0]}, {"u": np.ones(3), "v": np.ones(4)}),
                  path=tmp_path / "bad.zarr")
    with pytest.raises(ValueError, match="both as an axis and as a constant"):
        spec(constants={"t": TS, "eps": 1.0})
    with pytest.raises(ValueError, match="'epochs' fixes array shapes"):
        sweep.run({"function": "dynamics.scalar_gd", "axes": {"epochs": [1, 2]},
                   "constants": {"lam": 1.0, "eps": 0.0, "w1": 0.1, "w2": 0.1, "alpha": 0.1}},
                  path=tmp_path / "bad.zarr")
    assert not os.path.exists(tmp_path / "bad.zarr")


def test_existing_path_with_other_spec_is_refused(tmp_path):
    path = tmp_path / "s.zarr"
    sweep.run(spec(), path=path)
    log = read_log(path)
    other = spec(axes={**AXES, "eps": [0.0, 0.5, 3.0]})
    CALLS["n"] = 0
    with pytest.raises(ValueError, match=r"different spec \(differs in: axes.eps\)"):
        sweep.run(other, path=path)
    assert CALLS["n"] == 1 and read_log(path) == log  # planning only; nothing written
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a daedyn sweep store"):
        sweep.run(spec(), path=tmp_path / "plain")
    with pytest.raises(ValueError, match="refusing to overwrite"):
        sweep.run(spec(), path=tmp_path / "plain", overwrite=True)
    summary = sweep.run(other, path=path, overwrite=True)  # explicit replacement
    assert summary.chunks_computed == summary.n_chunks


def test_ctrl_c_leaves_consistent_store_and_resume_matches(tmp_path):
    full = sweep.run(spec(), path=tmp_path / "full.zarr")
    path = tmp_path / "part.zarr"

    def interrupt(p):
        if p.chunks_computed == 2 and not p.final:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered between chunks

    with pytest.raises(KeyboardInterrupt):
        sweep.run(spec(), path=path, progress=interrupt)
    part = sweep.open_results(path)
    n_done = part.attrs["sweep_chunks_done"]
    # the chunk in flight when Ctrl-C came is finished and recorded; nothing is half-recorded
    assert 2 <= n_done < full.n_chunks and not part.attrs["sweep_complete"]
    assert (part.status.values >= 0).sum() == 3 * n_done  # 3 points per chunk written, rest -1
    seen = []
    resumed = sweep.run(spec(), path=path, progress=seen.append)
    assert resumed.chunks_skipped == n_done and resumed.chunks_computed == full.n_chunks - n_done
    assert seen[-1].final and seen[-1].chunks_done == full.n_chunks
    a, b = sweep.open_results(tmp_path / "full.zarr"), sweep.open_results(path)
    for v in ("w", "fp", "status"):
        np.testing.assert_array_equal(a[v].values, b[v].values)  # bitwise: same compiled function
    chunks = [r["chunk"] for r in read_log(path)]
    assert sorted(chunks) == list(range(full.n_chunks))  # each chunk computed exactly once


def test_float64_spec(tmp_path):
    s = spec(dtype="float64")
    sweep.run(s, path=tmp_path / "f64.zarr")
    ds = sweep.open_results(tmp_path / "f64.zarr")
    assert ds.w.dtype == np.float64 and not jax.config.jax_enable_x64  # x64 scoped to the run
    want = logistic_np(np.geomspace(0.5, 4.0, 7)[:, None, None], np.array([0.0, 0.5, 2.0])[None, :, None],
                       0.1, TS, 2.0)
    # same formula in float64 on both sides: rounding only, rtol 1e-13
    np.testing.assert_allclose(ds.w.values, want, rtol=1e-13)


def test_spec_files_toml_json_yaml(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('function = "theory.fixed_point"\npath = "out.zarr"\nmax_memory = "1MB"\n'
                    '[axes]\nlam = {logspace = [-1, 1, 5]}\neps = [0.0, 1.0]\ngamma = 0.1\n')
    data = {"function": "theory.fixed_point", "path": "out.zarr", "max_memory": "1MB",
            "axes": {"lam": {"logspace": [-1, 1, 5]}, "eps": [0.0, 1.0], "gamma": 0.1}}
    (tmp_path / "s.json").write_text(json.dumps(data))
    yaml = pytest.importorskip("yaml", reason="PyYAML is optional: only YAML sweep specs need it")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    specs = [sweep.load_spec(tmp_path / f"s.{e}") for e in ("toml", "json", "yaml")]
    assert len({s.hash for s in specs}) == 1
    assert specs[0].path == str(tmp_path / "out.zarr")  # relative to the spec file
    np.testing.assert_allclose(specs[0].axes["lam"], np.logspace(-1, 1, 5), rtol=0)
    assert specs[0].constants == {"gamma": 0.1}
    assert specs[0].replace(max_memory="2GB").hash == specs[0].hash  # execution settings: not hashed
    assert specs[0].replace(axes={"lam": [1.0], "eps": [0.0, 1.0]}).hash != specs[0].hash
    (tmp_path / "u.toml").write_text('function = "theory.fixed_point"\nlr = 1\n[axes]\nlam = [1.0]\n')
    with pytest.raises(ValueError, match=r"unknown spec key\(s\) \['lr'\]"):
        sweep.load_spec(tmp_path / "u.toml")


def test_planner_cuts_an_axis_without_padding_when_that_is_cheaper():
    # The quick closed-form benchmark's grid: a 12-value target run over 100 values used to give
    # 9 blocks of 12 (the last one 4 values + 8 of padding: 8% of all points computed for
    # nothing); blocks of 10 divide the axis. The cost model (blocks x (points + target / 8))
    # must pick them, and never exceed the memory's limit.
    from daedyn.sweep._plan import _layout
    assert _layout((100, 100, 10, 10), 125_000, 196_923) == (10, 100, 10, 10)
    assert _layout((50, 20, 10, 10), 18_978, 63_681) == (10, 20, 10, 10)  # an eighth above the target
    assert _layout((100, 100, 10, 10), 125_000, 100_000) == (10, 100, 10, 10)  # the limit binds
    assert _layout((100, 100, 10, 10), 125_000, 110_000)[0] <= 11
    # a prime length: no divisor near the target; padding of 1 run in 7 blocks beats 9 of 11 + 8
    assert _layout((97, 100, 10, 10), 125_000, 196_923) == (14, 100, 10, 10)
    # a chunk size the user chose is a maximum, evened out as before (no cost model)
    assert _layout((100, 100, 10, 10), 125_000) == (12, 100, 10, 10)
    n = dict(lam=100, eps=100, w1=10, w2=10)  # the benchmark's grid, through make_plan
    s = {"function": "theory.dae_trajectory", "axes": {k: np.linspace(0.1, 2.0, v) for k, v in n.items()},
         "constants": {"t": np.linspace(0.0, 1.0, 16), "tau": 1.0}, "max_memory": "64MB"}
    p = sweep.plan(s, n_devices=1)
    assert p.n_chunks * p.batch_size == p.n_points and p.chunk_shape == (10, 100, 10, 10)


def test_plan_respects_memory_limit():
    s = spec(chunk_size=None)
    per_point = 5 * 4 + 4 + 1  # w (5 float32) + fp + status byte
    for limit in (2_000, 1_000, 400):
        p = sweep.plan(s, max_memory=limit, n_devices=2)
        assert p.bytes_per_point == per_point and p.memory_estimate <= limit
        assert p.batch_size % 2 == 0 and p.batch_size >= p.chunk_points
        assert p.n_chunks * p.chunk_points >= p.n_points
    assert sweep.plan(s, max_memory="1GB", n_devices=1).n_chunks == 1
    with pytest.raises(ValueError, match="chunk_size 20 needs"):
        sweep.plan(s, max_memory=1_000, chunk_size=20, n_devices=1)
    assert sweep.parse_memory("2GB") == 2 * 10**9 and sweep.parse_memory("1KiB") == 1024
    with pytest.raises(ValueError, match="max_memory"):
        sweep.parse_memory("lots")


def test_cli_dry_run_and_run(tmp_path, capsys):
    spec_file = tmp_path / "s.json"
    spec_file.write_text(json.dumps({
        "function": "tests_sweep_fn:halve", "axes": {"x": {"linspace": [0, 1, 11]}}}))
    (tmp_path / "tests_sweep_fn.py").write_text(
        "def halve(x, scale=0.5):\n    return {'y': scale * x}\n")
    import sys
    sys.path.insert(0, str(tmp_path))
    try:
        assert cli_main(["sweep", str(spec_file), "--dry-run"]) == 2  # its module is not allowed
        assert "--allow-import tests_sweep_fn" in capsys.readouterr().err
        allow = ["--allow-import", "tests_sweep_fn"]
        assert cli_main(["sweep", str(spec_file), "--dry-run", "--max-memory", "200B", *allow]) == 0
        out = capsys.readouterr().out
        assert "11 points" in out and "chunks      2 of 6 points" in out
        assert cli_main(["sweep", str(spec_file), "--dry-run", "--json", *allow]) == 0
        assert json.loads(capsys.readouterr().out)["plan"]["n_chunks"] == 1
        assert cli_main(["sweep", str(spec_file)]) == 2  # no output path
        assert "no output path" in capsys.readouterr().err
        out_path = tmp_path / "cli.zarr"
        assert cli_main(["sweep", str(spec_file), "--out", str(out_path), "--json",
                         "--max-memory", "200B", *allow]) == 0
        captured = capsys.readouterr()
        assert json.loads(captured.out)["chunks_computed"] == 2
        assert "sweep: 100%" in captured.err and " 2/2 [" in captured.err  # progress (tqdm) on stderr
        ds = sweep.open_results(out_path)
        np.testing.assert_allclose(ds.y.values, 0.5 * np.linspace(0, 1, 11).astype(np.float32), rtol=0)
    finally:
        sys.path.remove(str(tmp_path))


def test_edited_function_or_versions_at_same_path(tmp_path):
    path = tmp_path / "edit.zarr"
    sweep.run({"function": lambda a: {"y": 2 * a}, "axes": {"a": [1.0, 2.0]}}, path=path)
    with pytest.raises(ValueError, match="differs in: function_code"):  # same name, new body
        sweep.run({"function": lambda a: {"y": 3 * a}, "axes": {"a": [1.0, 2.0]}}, path=path)
    with pytest.raises(ValueError, match="axis name 'status'"):
        sweep.SweepSpec(lambda status: status, {"status": [1.0]})
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["jax_version"] = "0.0.1"
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.warns(RuntimeWarning, match=r"jax 0.0.1 -> "):
        summary = sweep.run({"function": lambda a: {"y": 2 * a}, "axes": {"a": [1.0, 2.0]}}, path=path)
    assert summary.chunks_skipped == 1 and summary.chunks_computed == 0
    # nothing compiled, but the planning trace (jax.eval_shape of the function) is counted there,
    # not in the run phase whose rate points_per_s is
    assert 0.0 < summary.compile_s < summary.wall_s


def test_the_same_sweep_again_reuses_its_compiled_programs(tmp_path):
    # programs are kept per process by what defines them: the same spec at another path neither traces
    # nor compiles again; another constant, or another function object with the same code, does
    def scaled(c):
        def fn(lam, eps, w0, *, t, tau=1.0):
            return {k: c * v for k, v in logistic(lam, eps, w0, t=t, tau=tau).items()}
        return fn

    from daedyn.sweep import _run

    _run._PROGRAMS.clear()  # another test of this process may have run this spec
    CALLS["n"] = 0
    s = spec(chunk_size=5)
    sweep.run(s, path=tmp_path / "a.zarr")
    assert CALLS["n"] == 2  # planning (eval_shape) and the chunk program
    sweep.run(s, path=tmp_path / "b.zarr")
    assert CALLS["n"] == 3  # planning only
    a, b = sweep.open_results(tmp_path / "a.zarr"), sweep.open_results(tmp_path / "b.zarr")
    np.testing.assert_array_equal(a.w.values, b.w.values)  # the same program: the same bits
    sweep.run(spec(chunk_size=5, constants={"t": TS, "tau": 3.0}), path=tmp_path / "c.zarr")
    assert CALLS["n"] == 5  # a constant is part of the program: traced and compiled again
    c = sweep.open_results(tmp_path / "c.zarr")
    lam = np.geomspace(0.5, 4.0, 7)[:, None, None]
    eps = np.array([0.0, 0.5, 2.0])[None, :, None]
    # float32 vs float64 NumPy, as test_grid_matches_direct_evaluation
    np.testing.assert_allclose(c.w.values, logistic_np(lam, eps, 0.1, TS[None, None, :], 3.0), rtol=1e-5)
    for factor, name in ((2.0, "d"), (3.0, "e")):  # the same bytecode, another captured value
        sweep.run(spec(chunk_size=5, function=scaled(factor)), path=tmp_path / f"{name}.zarr")
        got = sweep.open_results(tmp_path / f"{name}.zarr")
        np.testing.assert_allclose(got.w.values, factor * a.w.values, rtol=1e-6)
