"""Schedule piece values as sweep axes: the built-in entry points "theory.scheduled_trajectory" and
"dynamics.scheduled_gd" (daedyn/sweep/_builtins.py) against direct calls, and bad specs."""

import numpy as np
import pytest

from daedyn import dynamics, schedules, sweep, theory


@pytest.mark.slow  # ~7 s on the loaded 2-core CPU (the default suite keeps the fast spec checks below)
def test_schedule_pieces_as_axes_closed_form(tmp_path):
    spec = {"function": "theory.scheduled_trajectory",
            "axes": {"eps_0": [0.0, 1.0, 4.0], "eps_1": [0.5, 2.0], "lam": [0.5, 2.0]},
            "constants": {"t": [0.0, 50.0, 100.0, 200.0], "boundaries": [100.0], "w0": 1e-3, "tau": 10.0}}
    sweep.run(spec, path=tmp_path / "s.zarr")
    ds = sweep.open_results(tmp_path / "s.zarr")
    assert ds.w.dims == ("eps_0", "eps_1", "lam", "t") and int((ds.status != 0).sum()) == 0
    ts = np.array([0.0, 50.0, 100.0, 200.0])
    for e0, e1, lam in [(4.0, 0.5, 2.0), (0.0, 2.0, 0.5), (1.0, 0.5, 0.5)]:
        ref = theory.small_init_trajectory(ts, lam, schedules.piecewise_constant([100.0], [e0, e1]), w0=1e-3,
                                           tau=10.0)
        # the same float32 closed form, vmapped or not: measured 1e-7 relative; bound 1e-5
        np.testing.assert_allclose(ds.w.sel(eps_0=e0, eps_1=e1, lam=lam), ref, rtol=1e-5)


@pytest.mark.slow  # ~5 s on the loaded 2-core CPU
def test_schedule_pieces_as_axes_gd(tmp_path):
    spec = {"function": "dynamics.scheduled_gd",
            "axes": {"eps_0": [0.0, 4.0], "alpha_1": [0.05, 0.1], "lam": [0.5, 2.0]},
            "constants": {"epochs": 200, "save_every": 50, "boundaries": [100.0], "w1": 0.03, "w2": 0.03,
                          "eps_1": 0.5, "alpha_0": 0.1}}
    sweep.run(spec, path=tmp_path / "g.zarr")
    g = sweep.open_results(tmp_path / "g.zarr")
    assert g.w.dims == ("eps_0", "alpha_1", "lam", "epoch")
    assert g.epoch.values.tolist() == [0, 50, 100, 150, 200]
    alpha = schedules.piecewise_constant([100.0], [0.1, 0.05])
    ref = dynamics.scalar_gd(2.0, schedules.piecewise_constant([100.0], [4.0, 0.5]), 0.03, 0.03, alpha=alpha,
                             epochs=200, save_every=50)
    # the same float32 recursion batched by broadcasting: measured equal; bound 1e-5
    np.testing.assert_allclose(g.w.sel(eps_0=4.0, alpha_1=0.05, lam=2.0), ref.w, rtol=1e-5)


@pytest.mark.parametrize("axes, constants, match", [
    ({"eps_0": [1.0], "eps_2": [1.0]}, {}, r"unknown parameters \['eps_2'\]"),
    ({"eps_0": [1.0]}, {}, r"needs all 2 pieces eps_0..eps_1; missing \['eps_1'\]"),
    ({"eps_0": [1.0, -1.0], "eps_1": [1.0]}, {}, r"axis 'eps_0'.*\[0, inf\)"),  # a piece has eps's range
    ({"eps_0": [1.0], "eps_1": [1.0]}, {"boundaries": [0.0]}, r"'boundaries'.*\(0, inf\)"),
])
def test_bad_schedule_specs(tmp_path, axes, constants, match):
    spec = {"function": "theory.scheduled_trajectory", "axes": {"lam": [1.0], **axes},
            "constants": {"t": 10.0, "boundaries": [5.0], "w0": 1e-3, **constants}}
    with pytest.raises(ValueError, match=match):
        sweep.run(spec, path=tmp_path / "b.zarr")
