"""The sweep entry point "diffusion.predict": noise-level parameters as axes, against SciPy quadrature."""

import math

import pytest
from scipy import integrate

from daedyn import sweep

N, LAM, SMIN, SMAX = 100.0, 400.0, 0.002, 80.0  # per-sample variance 4, above every sigma_data here


def _oracle(p_mean, p_std, sd):
    """EDM: A = E[(lam + N s^2) / (s^2 + sd^2)], B = (lam - N sd^2) E[s / (sd (s^2 + sd^2))] over
    ln s ~ N(p_mean, p_std^2) by quad; u = B / A (depth 2, long after learning); the variance by quad of
    the flow integral s_max^2 exp(-2 int (1 - c_skip - c_out c_in u) d ln s)."""
    def expect(f):
        g = lambda y: f(math.exp(p_mean + p_std * y)) * math.exp(-0.5 * y * y) / math.sqrt(2 * math.pi)
        return integrate.quad(g, -12, 12, epsabs=1e-14, epsrel=1e-11, limit=400)[0]

    a = expect(lambda s: (LAM + N * s * s) / (s * s + sd * sd))
    b = (LAM - N * sd * sd) * expect(lambda s: s / (sd * (s * s + sd * sd)))
    u = b / a
    flow = lambda x: (math.exp(2 * x) - u * math.exp(x) * sd) / (math.exp(2 * x) + sd * sd)
    i = integrate.quad(flow, math.log(SMIN), math.log(SMAX), epsabs=1e-14, epsrel=1e-11, limit=400)[0]
    return u, SMAX**2 * math.exp(-2 * i)


def test_predict_sweep_over_noise_levels(tmp_path):
    pytest.importorskip("xarray", reason="xarray results: the sweep extra (in the test extra)")
    axes = {"p_mean": [-1.2, 0.0], "sigma_data": [0.5, 1.0]}
    sweep.run({"function": "diffusion.predict", "axes": axes,
               "constants": {"t": [0.0, 1e6], "lam": LAM, "n": N, "alpha": 0.05, "w0": 1e-3, "p_std": 1.2}},
              path=tmp_path / "d.zarr")
    ds = sweep.open_results(tmp_path / "d.zarr")
    assert ds.w.dims[-1] == "t" and ds.variance.shape[-1] == 2
    for pm in axes["p_mean"]:
        for sd in axes["sigma_data"]:
            u, v = _oracle(pm, 1.2, sd)
            point = ds.sel(p_mean=pm, sigma_data=sd, t=1e6)
            # float32 against float64 quadrature: a few ulps of the coefficients and the exponential
            assert float(point.w) == pytest.approx(u, rel=1e-5)
            assert float(point.variance) == pytest.approx(v, rel=1e-4)


def test_p_std_out_of_range_is_refused(tmp_path):
    with pytest.raises(ValueError, match="p_std"):
        sweep.run({"function": "diffusion.predict", "axes": {"p_std": [1.0, 6.0]},
                   "constants": {"t": [0.0], "lam": LAM, "n": N, "alpha": 0.05}}, path=tmp_path / "e.zarr")
