"""Diffusion predictions at sweep scale (issue 30): the sweep entry "diffusion.predict" computes each
(p_mean, p_std, sigma_data)'s quadrature once and looks it up per point. Checked against SciPy
quadrature of the (A, B) definitions with the logistic written out in NumPy, against direct
``diffusion.predict`` calls (each its own quadrature), and ``predict(moments=...)`` against the plain
call and its refusals."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from daedyn import diffusion, sweep

N, ALPHA, W0, SD, SMIN, SMAX = 100.0, 0.05, 1e-3, 0.5, 0.002, 80.0
# lam / N = 0.1 (B < 0 under "edm": decays) and 4 (learned); t through the transition (tau = 2000)
AXES = {"p_mean": [-1.2, 0.5], "p_std": [0.6, 2.0], "lam": [10.0, 400.0], "t": [0.0, 300.0, 3000.0, 1e5]}
CONSTS = {"n": N, "alpha": ALPHA, "w0": W0}


def _run(tmp_path, dtype="float32"):
    for module in ("xarray", "zarr"):  # the sweep extra; the test extra installs both, so CI runs this
        pytest.importorskip(module, reason=f"a sweep's zarr store needs {module} (the sweep extra)")
    path = tmp_path / f"{dtype}.zarr"
    sweep.run({"function": "diffusion.predict", "axes": AXES, "constants": CONSTS, "dtype": dtype}, path=path)
    return sweep.open_results(path)


def _oracle(p_mean, p_std, lam, t):
    """(u, variance) from the definitions: A = E[w a^2 (lam + N s^2)], B = E[w a ((1 - c_skip) lam -
    c_skip N s^2)] with EDM's scalings and w = 1 / c_out^2 by quad over ln s ~ N(p_mean, p_std^2); u of
    tau du/dt = 2 u (B - A u) (the logistic, each sign of B in its non-overflowing form); the variance
    by quad of s_max^2 exp(-2 int (1 - c_skip - c_out c_in u) d ln s)."""
    def scalings(s):
        r = s * s + SD * SD
        return SD * SD / r, s * s / r, s * SD / math.sqrt(r), 1.0 / math.sqrt(r)

    def expect(f):
        g = lambda y: f(math.exp(p_mean + p_std * y)) * math.exp(-0.5 * y * y) / math.sqrt(2 * math.pi)
        return integrate.quad(g, -14, 14, epsabs=0, epsrel=1e-13, limit=400)[0]

    def a_term(s):
        c_skip, _, c_out, c_in = scalings(s)
        return (c_out * c_in) ** 2 / c_out**2 * (lam + N * s * s)

    def b_term(s):
        c_skip, one_minus, c_out, c_in = scalings(s)
        return c_out * c_in / c_out**2 * (one_minus * lam - c_skip * N * s * s)

    a, b = expect(a_term), expect(b_term)
    x = 2.0 * b * t / (N / ALPHA)
    if b > 0:
        u = b / (a + (b / W0 - a) * math.exp(-x))
    else:
        u = b * W0 * math.exp(x) / (b + a * W0 * math.expm1(x))

    def flow(y):
        _, one_minus, c_out, c_in = scalings(math.exp(y))
        return one_minus - c_out * c_in * u
    i = integrate.quad(flow, math.log(SMIN), math.log(SMAX), epsabs=0, epsrel=1e-13, limit=400)[0]
    return u, SMAX**2 * math.exp(-2.0 * i)


def test_sweep_over_the_four_axes_equals_direct_predict_calls_and_scipy(tmp_path):
    # float64 (float32 through the table: tests/test_sweep_diffusion.py against quad at 1e-5)
    dtype = "float64"
    ds = _run(tmp_path, dtype)
    assert ds.w.dims == ("p_mean", "p_std", "lam", "t") and int(ds.status.max()) == 0
    with jax.enable_x64(True):
        t = jnp.asarray(AXES["t"], dtype)
        lam = jnp.asarray(AXES["lam"], dtype)
        for pm in AXES["p_mean"]:
            for ps in AXES["p_std"]:
                sigma = diffusion.LogNormal(jnp.asarray(pm, dtype), jnp.asarray(ps, dtype))
                r = diffusion.predict(t, lam, n=N, alpha=ALPHA, w0=W0, sigma=sigma)  # its own quadrature
                got = ds.sel(p_mean=pm, p_std=ps)
                # the same sums in another program (a table of moments, then a lookup): measured 4e-14
                np.testing.assert_allclose(got.w.values, np.asarray(r.w).T, rtol=1e-12, atol=1e-30)
                np.testing.assert_allclose(got.variance.values, np.asarray(r.variance).T, rtol=1e-12)
    for pm, ps, lam, t in [(-1.2, 0.6, 400.0, 3000.0), (0.5, 2.0, 400.0, 300.0), (0.5, 0.6, 10.0, 1e5),
                           (-1.2, 2.0, 10.0, 3000.0), (0.5, 2.0, 400.0, 1e5)]:
        u, v = _oracle(pm, ps, lam, t)
        point = ds.sel(p_mean=pm, p_std=ps, lam=lam, t=t)
        # float64 against quad at epsrel 1e-13: the trapezoid's error is ~1e-13 (docs/diffusion.md), and
        # the logistic's exponent 2 B t / tau (up to ~40) could amplify it; measured worst 1.4e-14
        assert float(point.w) == pytest.approx(u, rel=1e-10, abs=1e-300)
        assert float(point.variance) == pytest.approx(v, rel=1e-10)


def test_predict_with_given_moments_equals_the_plain_call_and_refuses_others(x64):
    t, lam = jnp.array([0.0, 500.0, 5e4]), jnp.array([10.0, 400.0])
    obj = diffusion.Objective(diffusion.LogNormal(0.3, 1.5))
    plain = diffusion.predict(t, lam, n=N, alpha=ALPHA, w0=W0, sigma=obj.sigma)
    given = diffusion.predict(t, lam, n=N, alpha=ALPHA, w0=W0, sigma=obj.sigma, moments=obj.moments())
    # the same numbers: the given moments were summed outside the compiled call (measured 3e-15)
    np.testing.assert_allclose(np.asarray(given.w), np.asarray(plain.w), rtol=1e-13, atol=0)
    np.testing.assert_allclose(np.asarray(given.a), np.asarray(plain.a), rtol=1e-13, atol=0)
    other = diffusion.Objective(diffusion.LogNormal(0.3, 1.6)).moments()
    with pytest.raises(ValueError, match="moments are not this objective's"):
        diffusion.predict(t, lam, n=N, alpha=ALPHA, sigma=obj.sigma, moments=other)
    with pytest.raises(ValueError, match="moments must"):
        diffusion.predict(t, lam, n=N, alpha=ALPHA, sigma=obj.sigma, moments=obj.moments()[:3])
    with pytest.raises(ValueError, match="moments must have the shape"):
        diffusion.predict(t, lam, n=N, alpha=ALPHA, sigma=obj.sigma, moments=(jnp.ones(2),) * 4)


def test_given_moments_are_checked_once_per_objective(monkeypatch):
    # the check of moments= needs the objective's own moments (the quadrature the keyword saves): once
    # per objective, not once per call; a changed objective is checked again (and refused)
    t, lam = jnp.array([0.0, 500.0]), jnp.array([10.0, 400.0])
    obj = diffusion.Objective(diffusion.LogNormal(0.25, 1.25))
    given = obj.moments()
    calls = []
    own = diffusion.Objective.moments
    monkeypatch.setattr(diffusion.Objective, "moments", lambda self, *a: calls.append(1) or own(self, *a))
    for _ in range(4):
        diffusion.predict(t, lam, n=N, alpha=ALPHA, sigma=obj.sigma, moments=given)
    assert len(calls) == 1
    with pytest.raises(ValueError, match="moments are not this objective's"):
        diffusion.predict(t, lam, n=N, alpha=ALPHA, sigma=diffusion.LogNormal(0.25, 1.5), moments=given)
    assert len(calls) == 2


def test_moments_table_is_not_a_parameter_to_give(tmp_path):
    with pytest.raises(ValueError, match="moments_table"):
        sweep.run({"function": "diffusion.predict", "axes": {"lam": [1.0, 2.0]},
                   "constants": {"t": 1.0, "n": N, "alpha": ALPHA, "moments_table": 1.0}},
                  path=tmp_path / "m.zarr")


def test_moments_table_holds_each_values_moments_and_marks_a_missing_value(x64):
    from daedyn.sweep._builtins import ENTRY_POINTS, _diffusion_moments

    table = _diffusion_moments({"p_mean": np.array([-1.0, 0.0]), "sigma_data": np.array([0.5, 1.0])},
                               {"p_std": 1.5})["moments_table"]
    for i, pm in enumerate([-1.0, 0.0]):
        for j, sd in enumerate([0.5, 1.0]):
            own = diffusion.Objective(diffusion.LogNormal(pm, 1.5), sigma_data=sd).moments()
            # the same quadrature, vmapped: equal to the rounding of the sums (measured 0)
            np.testing.assert_allclose([v[2 * i + j] for v in table.values], own, rtol=1e-14)
    entry = ENTRY_POINTS["diffusion.predict"]
    w = jax.jit(lambda pm: entry(t=500.0, lam=400.0, n=N, alpha=ALPHA, p_mean=pm, p_std=1.5, sigma_data=1.0,
                                 moments_table=table)["w"])  # traced, as in a sweep
    assert np.isnan(float(w(0.5))) and np.isfinite(float(w(0.0)))  # 0.5: not in the table, a bad point
