"""Depth (and any parameter that switches code) as a sweep axis: one compiled branch per value,
one value per chunk, results identical to direct calls at each depth."""

import numpy as np
import pytest

import daedyn.sweep as sweep
from daedyn import dynamics, theory
from daedyn.dynamics._deep import balanced_factors
from daedyn.sweep import entry_point

GAMMA = [0.0, 0.1, 0.3, 0.5]


def test_fixed_point_and_threshold_over_depth(tmp_path):
    for fn, ref in (("theory.fixed_point", theory.fixed_point),
                    ("theory.learning_threshold", theory.learning_threshold)):
        path = tmp_path / f"{fn}.zarr"
        summary = sweep.run({"function": fn, "axes": {"depth": [2, 3, 4], "gamma": GAMMA},
                             "constants": {"lam": 1.0, "eps": 0.5}}, path=path)
        ds = sweep.open_results(path)
        assert ds.w.dims == ("depth", "gamma") and ds.depth.values.tolist() == [2, 3, 4]
        assert summary.n_chunks == 3  # one depth per chunk, whatever the memory would allow
        for i, depth in enumerate((2, 3, 4)):
            want = np.asarray(ref(np.float32(1.0), np.float32(0.5), np.asarray(GAMMA, np.float32),
                                  depth=depth))
            # no threshold (nothing is learned) is inf; the sweep stores non-finite values as NaN
            # and flags them in `status`
            np.testing.assert_array_equal(ds.status.values[i] != 0, ~np.isfinite(want))
            # the same float32 function per point (vmapped) vs broadcast: measured max |diff| 0
            # to 6e-8 (1 ulp of values <= 1); 3e-7 leaves margin for the root finder's last step
            finite = np.where(np.isfinite(want), want, np.nan)
            np.testing.assert_allclose(ds.w.values[i], finite, rtol=0, atol=3e-7)
    # depth 3 and 4 with weight decay 0.5 learn nothing (threshold above 1, fixed point 0)
    assert sweep.open_results(tmp_path / "theory.fixed_point.zarr").w.values[1:, -1].tolist() == [0.0, 0.0]


def test_deep_scalar_gd_depth_axis_last_and_chunked(tmp_path):
    """Depth as the LAST axis (blocks of one point) and as the first axis with small chunks give
    the same numbers as direct scalar_gd(factors=) calls (the L-factor float32 recursion; the entry runs
    scalar_gd(depth=L), the same recursion on the two-value state, products in another order: measured
    max relative difference 7.7e-7 after 200 float32 steps, bound 2e-6)."""
    consts = {"lam": 1.0, "w0": 0.01, "alpha": 0.05, "epochs": 200, "save_every": 50}
    eps = [0.0, 0.5, 2.0]
    sweep.run({"function": "dynamics.deep_scalar_gd", "axes": {"eps": eps, "depth": [2, 3]},
               "constants": consts}, path=tmp_path / "last.zarr")
    sweep.run({"function": "dynamics.deep_scalar_gd", "axes": {"depth": [2, 3], "eps": eps},
               "constants": consts, "chunk_size": 2}, path=tmp_path / "first.zarr")
    last, first = (sweep.open_results(tmp_path / f"{k}.zarr") for k in ("last", "first"))
    assert last.attrs["sweep_chunk_shape"] == [1, 1] and first.attrs["sweep_chunk_shape"] == [1, 2]
    np.testing.assert_array_equal(last.epoch.values, [0, 50, 100, 150, 200])
    for j, depth in enumerate((2, 3)):
        a = balanced_factors(np.full(3, 0.01, np.float32), depth)
        want = dynamics.scalar_gd(np.float32(1.0), np.asarray(eps, np.float32), factors=a,
                                  alpha=np.float32(0.05), epochs=200, save_every=50, observables="all")
        for got in (last.w.values[:, j], first.w.values[j]):
            np.testing.assert_allclose(got, np.asarray(want.w), rtol=2e-6, atol=0)
        # the loss falls from 0.025 to ~1e-14 by cancellation of terms of size ~0.025: float32 rounding
        # of those terms (0.025 x 6e-8 each) bounds its absolute error, not its relative one (measured
        # 6.2e-10 when XLA rounded the terms differently); bound 1e-8
        np.testing.assert_allclose(first.loss.values[j], np.asarray(want.loss), rtol=2e-6, atol=1e-8)


def test_depth_axis_is_range_checked_and_user_switches_work(tmp_path):
    with pytest.raises(ValueError, match="depth"):
        sweep.plan({"function": "theory.fixed_point", "axes": {"depth": [1, 2]}, "constants": {"lam": 1.0}})
    calls = []

    @entry_point(switch=("k",))
    def power(*, x, k):
        calls.append(k)  # traced once per branch: k is a Python int here
        assert isinstance(k, int)
        return {"y": x ** k}

    sweep.run({"function": power, "axes": {"k": [1, 2, 3], "x": [2.0, 3.0]}}, path=tmp_path / "p.zarr")
    ds = sweep.open_results(tmp_path / "p.zarr")
    np.testing.assert_array_equal(ds.y.values, [[2.0, 3.0], [4.0, 9.0], [8.0, 27.0]])
    assert {1, 2, 3} <= set(calls)
    # a parameter that is neither switch nor vmappable stays refused as an axis
    with pytest.raises(ValueError, match="cannot be a sweep axis"):
        sweep.plan({"function": "dynamics.deep_scalar_gd", "axes": {"epochs": [10, 20]},
                    "constants": {"lam": 1.0, "eps": 0.0, "w0": 0.1, "alpha": 0.1}})


def test_chunk_shape_with_several_switched_values_is_refused():
    @entry_point(switch=("k",))
    def power(*, x, k):
        return {"y": x ** k}

    spec = sweep._spec.as_spec({"function": power, "axes": {"k": [1, 2], "x": GAMMA}})
    prepared = sweep._plan.prepare(spec)
    with pytest.raises(ValueError, match="switched axis"):
        sweep._plan.make_plan(prepared, chunk_shape=(2, 4))
