"""daedyn.diffusion.tune: the distance after a training budget as a function of the noise levels, its
gradient, and the optimum, against an independent NumPy/SciPy evaluation of the same closed form.

The oracle below recomputes everything from the issue's conventions with ``scipy.integrate.quad``:
the coefficients A = E[w c_out^2 c_in^2 (lam + N s^2)], B = E[w c_out c_in ((1 - c_skip) lam - c_skip
N s^2)] over ln s ~ N(p_mean, p_std^2), the depth-2 balanced logistic u(T) (tau du/dt = 2 u (B - A u))
or the depth-1 exponential, the generated variance s_max^2 exp(-2 int (1 - g) / s ds) and the KL /
Frechet distance to the held-out per-direction variances. It shares no code with daedyn.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import integrate

from daedyn import diffusion
from daedyn.diffusion import Ladder, LogNormal, Objective
from daedyn.diffusion._tune import distance_fn

N, ALPHA, BUDGET, SD, SMIN, SMAX = 100.0, 0.5, 400.0, 0.5, 0.002, 80.0
# per-sample variances 4 ... 0.04 (two directions above sigma_data^2 = 0.25, one at it, one below)
LAM = N * np.array([4.0, 1.0, 0.25, 0.04])
HELDOUT = np.array([3.5, 1.2, 0.2, 0.05])  # a held-out split's variances: near, not equal to, lam / N


def _edm(s):
    r = s * s + SD * SD
    # c_skip, 1 - c_skip (without the cancellation at small s), c_out, c_in, w
    return SD * SD / r, s * s / r, s * SD / math.sqrt(r), 1.0 / math.sqrt(r), r / (s * SD) ** 2


def _expect(f, p_mean, p_std):
    """E[f(s)] for ln s ~ N(p_mean, p_std^2), by adaptive quadrature in the standard normal y."""
    g = lambda y: f(math.exp(p_mean + p_std * y)) * math.exp(-0.5 * y * y) / math.sqrt(2 * math.pi)
    return integrate.quad(g, -12.0, 12.0, epsabs=1e-14, epsrel=1e-11, limit=400)[0]


def oracle(p_mean, p_std, *, depth=2, distance="kl", lam=LAM, heldout=HELDOUT, w0=1e-6):
    def a_term(s, lam_j):
        skip, rest, out, inn, w = _edm(s)
        return w * out**2 * inn**2 * (lam_j + N * s * s)

    def b_term(s, lam_j):
        skip, rest, out, inn, w = _edm(s)
        return w * out * inn * (rest * lam_j - skip * N * s * s)

    tau = N / ALPHA
    v = []
    for lam_j in lam:
        a = _expect(lambda s: a_term(s, lam_j), p_mean, p_std)
        b = _expect(lambda s: b_term(s, lam_j), p_mean, p_std)
        if depth == 1:
            u = b / a + (w0 - b / a) * math.exp(-a * BUDGET / tau)
        else:  # the logistic: tau du/dt = 2 u (B - A u), u(0) = w0
            u = b / (a + (b / w0 - a) * math.exp(-2.0 * b * BUDGET / tau))

        def flow(x, u=u):
            s = math.exp(x)
            skip, rest, out, inn, _ = _edm(s)
            return rest - out * inn * u  # (1 - g(s)) / s ds = (1 - g) d ln s

        i = integrate.quad(flow, math.log(SMIN), math.log(SMAX), epsabs=1e-14, epsrel=1e-11, limit=400)[0]
        v.append(SMAX**2 * math.exp(-2.0 * i))
    v, c = np.asarray(v), np.asarray(heldout)
    if distance == "kl":
        return 0.5 * float(np.sum(c / v + np.log(v) - 1.0 - np.log(c)))
    return float(np.sum((np.sqrt(v) - np.sqrt(c)) ** 2))


@pytest.fixture(scope="module")
def f64():
    """The distance and its gradient in (p_mean, p_std), float64, depth 2, one compilation."""
    with jax.enable_x64(True):
        f = distance_fn(jnp.asarray(LAM), jnp.asarray(HELDOUT), n=N, alpha=ALPHA, budget=BUDGET)
        vg = jax.jit(jax.value_and_grad(lambda pm, ps: f({"p_mean": pm, "p_std": ps}), argnums=(0, 1)))

        def call(pm, ps):
            with jax.enable_x64(True):
                value, grad = vg(jnp.float64(pm), jnp.float64(ps))
                return float(value), (float(grad[0]), float(grad[1]))

        yield call


@pytest.mark.parametrize("pm, ps", [(-1.2, 1.2), (0.3, 0.6), (-2.0, 2.0)])
def test_distance_matches_quadrature(f64, pm, ps):
    # the library's nodes are accurate to ~1e-12 (docs/diffusion.md); the oracle's quad to 1e-12; the
    # logistic's exponentials lose a few digits at large B T / tau: 1e-8 relative is the float64 margin
    value, _ = f64(pm, ps)
    assert value == pytest.approx(oracle(pm, ps), rel=1e-8)


@pytest.mark.parametrize("pm, ps", [(-1.2, 1.2), (0.3, 0.6)])
def test_gradient_against_central_differences(f64, pm, ps):
    _, (g_mean, g_std) = f64(pm, ps)
    h = 1e-5  # central differences: error ~ h^2 f''' ~ 1e-10, roundoff ~ 1e-16 / h ~ 1e-11
    # of the code itself, and of the independent oracle (quad at 1e-12: its differences carry ~1e-7)
    fd_self = [(f64(pm + h, ps)[0] - f64(pm - h, ps)[0]) / (2 * h),
               (f64(pm, ps + h)[0] - f64(pm, ps - h)[0]) / (2 * h)]
    assert g_mean == pytest.approx(fd_self[0], rel=1e-6, abs=1e-9)
    assert g_std == pytest.approx(fd_self[1], rel=1e-6, abs=1e-9)
    h = 1e-4
    fd_oracle = [(oracle(pm + h, ps) - oracle(pm - h, ps)) / (2 * h),
                 (oracle(pm, ps + h) - oracle(pm, ps - h)) / (2 * h)]
    assert g_mean == pytest.approx(fd_oracle[0], rel=1e-5, abs=1e-7)
    assert g_std == pytest.approx(fd_oracle[1], rel=1e-5, abs=1e-7)


@pytest.fixture(scope="module")
def tuned():
    """EDM's default tuned in float32 (L-BFGS, the default: Adam crawls along this valley)."""
    return diffusion.tune(LAM, HELDOUT, n=N, alpha=ALPHA, budget=BUDGET, max_steps=100)


@pytest.mark.slow  # L-BFGS compiles the distance twice (~20 s on the 2-core VM)
def test_tuned_is_better_than_the_start_by_the_oracle(tuned):
    pm, ps = float(tuned.params["p_mean"]), float(tuned.params["p_std"])
    assert tuned.value <= tuned.initial_value
    # float32 distance (~1e-6 relative) against the float64 oracle
    assert tuned.initial_value == pytest.approx(oracle(-1.2, 1.2), rel=1e-4)
    assert tuned.value == pytest.approx(oracle(pm, ps), rel=1e-4)
    assert oracle(pm, ps) < oracle(-1.2, 1.2) - 0.1  # a real gain, judged by the oracle alone
    assert isinstance(tuned.objective.sigma, LogNormal)
    assert float(tuned.objective.sigma.p_mean) == pytest.approx(pm)


@pytest.mark.slow  # L-BFGS compiles the distance twice (~20 s on the 2-core VM)
def test_tuned_optimum_is_near_the_grid_minimum(tuned):
    # the oracle on a grid (spacing 0.1 in p_mean, 0.05 in p_std) around the tuned point: the tuned
    # value may not be worse than the grid's best by more than the float32 noise of the distance
    pm, ps = float(tuned.params["p_mean"]), float(tuned.params["p_std"])
    grid_m, grid_s = pm + 0.1 * np.arange(-4, 5), ps + 0.05 * np.arange(-4, 5)
    values = np.array([[oracle(m, s) for s in grid_s] for m in grid_m])
    i, j = np.unravel_index(np.argmin(values), values.shape)
    assert oracle(pm, ps) <= values[i, j] + 1e-4
    # the grid's minimum is at (or next to) the centre: the tuned point is the minimum to a grid step
    assert abs(i - 4) <= 1 and abs(j - 4) <= 1


@pytest.mark.slow  # L-BFGS compiles the distance twice (~20 s on the 2-core VM)
def test_to_xarray_history_in_own_terms(tuned):
    pytest.importorskip("xarray", reason="xarray results: the sweep extra (in the test extra)")
    ds = tuned.to_xarray()
    assert float(ds["p_mean"][0]) == pytest.approx(-1.2, rel=1e-6)  # log of the optimiser's exp(p_mean)
    assert float(ds["objective"][0]) == pytest.approx(tuned.initial_value)
    assert float(ds["best_p_std"]) == pytest.approx(float(tuned.params["p_std"]))
    assert ds.attrs["status"] == tuned.result.status


@pytest.mark.slow
def test_ladder_probs_stay_a_distribution_and_improve():
    # depth 1 and the Frechet distance: the oracle's other branches; a two-level ladder's exact sums
    obj = Objective(Ladder(jnp.array([3.0, 0.3])))
    r = diffusion.tune(LAM, HELDOUT, n=N, alpha=ALPHA, budget=BUDGET, objective=obj, over=("sigmas", "probs"),
                       distance="frechet", depth=1, max_steps=30, optimizer=optax.adam(0.05))
    p = np.asarray(r.params["probs"])
    assert np.all(p > 0) and p.sum() == pytest.approx(1.0, abs=1e-6)
    assert r.value < r.initial_value
    assert isinstance(r.objective.sigma, Ladder)


@pytest.mark.parametrize("kwargs, match", [
    (dict(over=("s_min",)), "over: 's_min'"),
    (dict(distance="w2"), "distance"),
    (dict(heldout=np.ones(3)), "heldout"),
    (dict(budget=0.0), "budget"),
    (dict(max_steps=0), "max_steps"),
])
def test_refusals_name_the_parameter(kwargs, match):
    args = dict(heldout=HELDOUT)
    args.update(kwargs)
    heldout = args.pop("heldout")
    with pytest.raises(ValueError, match=match):
        diffusion.tune(LAM, heldout, n=N, alpha=ALPHA, **{"budget": BUDGET, **args})
