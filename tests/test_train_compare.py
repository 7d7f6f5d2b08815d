"""Tests of the theory comparison (daedyn.train._compare): compare_with_theory and initial_w0."""


import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import models, noise
from daedyn import train as tr


@pytest.fixture(scope="module")
def tiny():
    """Small synthetic data (N = 32, D = 5) with a spread-out spectrum."""
    x = jr.uniform(jr.key(0), (32, 5)) * jnp.array([1.0, 0.8, 0.6, 0.4, 0.2])[None, :]
    return np.asarray(x)


# One static run shape shared by several tests (alpha, gamma, s^2 and init_scale are traced), so they
# reuse one compilation.
S1 = dict(hidden=3, epochs=40, save_every=20)


def test_compare_with_theory_options(tiny):
    r = tr.train(tiny, key=jr.key(10), alpha=0.5, init_scale=0.05, **S1)
    v = np.linalg.eigh(tiny.T @ tiny)[1][:, ::-1]
    c = tr.compare_with_theory(r, eigvecs=v, measure="strength", w0="mean")
    assert c.measured.shape == (3, 3) and c.continuous.shape == (3, 3) and c.rmse_discrete.shape == (3,)
    sv0 = np.linalg.svd(np.asarray(r.init_params["w2"] @ r.init_params["w1"]), compute_uv=False)[:3]
    np.testing.assert_allclose(c.w0, np.full(3, sv0.mean()), rtol=1e-4)  # float32 SVD of a tiny product
    np.testing.assert_allclose(c.continuous[0], c.w0, rtol=1e-5)  # t = 0 gives the start
    c2 = tr.compare_with_theory(r, eigvecs=v, w0=1e-3)
    assert c2.continuous.shape == (3, 5)


def _balanced_gd_reference(lam, eps, gamma, n, tau, w0, epochs, every):
    """The balanced recursion compare_with_theory iterated before it called dynamics.scalar_gd:
    u <- u + (1/tau)(u lam (1 - u^2) - eps u^3 - N gamma u), w = u^2, saved every ``every`` epochs."""
    u = np.sqrt(np.asarray(w0, np.float64))
    out = [u * u]
    for e in range(1, epochs + 1):
        u = u + (u * lam * (1 - u * u) - eps * u**3 - n * gamma * u) / tau
        if e % every == 0:
            out.append(u * u)
    return np.stack(out)


@pytest.mark.parametrize("measure, w0", [("mapping", "balanced"), ("strength", "mean"),
                                         ("strength", "authors")])
def test_discrete_theory_is_scalar_gd_from_the_balanced_start(tiny, x64, measure, w0):
    """The discrete prediction (dynamics.scalar_gd, w1 = w2 = sqrt(w0)) equals the balanced
    recursion iterated by hand, to float64 round-off, with noise and weight decay."""
    x = np.asarray(tiny, np.float64)
    r = tr.train(x, key=jr.key(10), alpha=0.5, init_scale=0.05, hidden=3, epochs=400, save_every=20,
                 noise=noise.gaussian(0.05), marginalised=True, gamma=0.002)
    v = np.linalg.eigh(x.T @ x)[1][:, ::-1]
    c = tr.compare_with_theory(r, eigvecs=v, measure=measure, w0=w0)
    k = c.measured.shape[-1]
    ref = _balanced_gd_reference(np.asarray(r.eigvals[:k]), float(r.eps), float(r.gamma), r.n,
                                 float(r.tau), np.asarray(c.w0), 400, 20)
    assert c.discrete.shape == ref.shape == c.measured.shape
    # Same arithmetic, grouped differently (scalar_gd folds constants): measured ~1e-16 relative.
    np.testing.assert_allclose(c.discrete, ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(c.rmse_discrete, np.sqrt(np.mean((ref - np.asarray(c.measured)) ** 2, 0)),
                               rtol=1e-9, atol=1e-15)
    # The top direction is decoupled enough that the discrete theory tracks the run.
    assert float(c.rmse_discrete[0]) < 0.05


def test_initial_w0_balanced_is_per_direction_and_batched(tiny):
    """initial_w0: |u_j + v_j|^2 / 4 per direction, computed per run over batch axes."""
    p = models.init_autoencoder(5, 3, key=jr.key(3), init_scale=0.1)
    v = np.linalg.eigh(tiny.T @ tiny)[1][:, ::-1].astype(np.float32)
    u, vv = np.asarray(p["w1"]) @ v, (v.T @ np.asarray(p["w2"])).T
    np.testing.assert_allclose(tr.initial_w0(p, v), np.sum((u + vv) ** 2, axis=0) / 4, rtol=1e-5)
    both = {k: jnp.stack([a, 2 * a]) for k, a in p.items()}
    w0 = tr.initial_w0(both, v)
    assert w0.shape == (2, 5)
    np.testing.assert_allclose(w0[1], 4 * w0[0], rtol=1e-5)  # quadratic in the weights
    with pytest.raises(ValueError, match="kind must be"):
        tr.initial_w0(p, v, kind="median")
    with pytest.raises(ValueError, match="renamed"):
        tr.initial_w0(p, v, kind="shared")



def _authors_w0(w1, w2):
    """The authors' Figure 5 line, transcribed: s_int = singular values of the D x D product
    W1 W2 (row-vector convention; the same as W2 W1 here), ``np.sum(s_int[:100]) / len(s_int)``."""
    s_int = np.linalg.svd(np.asarray(w2, np.float64) @ np.asarray(w1, np.float64), compute_uv=False)
    assert len(s_int) == w2.shape[0]  # len = D
    return np.sum(s_int[:100]) / len(s_int)


@pytest.mark.parametrize("d, h", [(5, 3), (40, 8), (130, 120)])
def test_initial_w0_authors_is_the_authors_formula(x64, d, h):
    """kind="authors": top min(100, H) singular values of W2 W1 summed, divided by D (also H > 100);
    "mean": the mean of the min(H, D) singular values; both shared by every direction."""
    p = models.init_autoencoder(d, h, key=jr.key(d), init_scale=0.1, dtype=jnp.float64)
    v = np.eye(d)
    got = np.asarray(tr.initial_w0(p, v, kind="authors"))
    np.testing.assert_allclose(got, np.full(d, _authors_w0(p["w1"], p["w2"])), rtol=1e-10)
    sv = np.linalg.svd(np.asarray(p["w2"]) @ np.asarray(p["w1"]), compute_uv=False)[:min(h, d)]
    np.testing.assert_allclose(tr.initial_w0(p, v, kind="mean"), np.full(d, sv.mean()), rtol=1e-10)
    if h > 100:  # only the top 100 enter
        assert got[0] < np.sum(sv) / d


def test_compare_reports_learning_times_and_best(tiny, x64):
    """Learning times (time to half w*) of the three curves, their relative errors, alpha lam / N,
    and ``best`` = the discrete recursion; the discrete one tracks the run better than the flow."""
    x = np.asarray(tiny, np.float64)
    r = tr.train(x, key=jr.key(11), alpha=1.0, init_scale=0.01, hidden=3, epochs=600, save_every=2)
    v = np.linalg.eigh(x.T @ x)[1][:, ::-1]
    c = tr.compare_with_theory(r, eigvecs=v, w0="balanced")
    assert c.best is c.discrete
    np.testing.assert_allclose(c.alpha_lam_over_n, np.asarray(r.eigvals) * 1.0 / r.n, rtol=1e-12)
    lt = np.asarray(c.time_measured)
    assert np.isfinite(lt[0]) and 0 < lt[0] < 600
    # By hand: first record at or above w*/2; the balanced gradient descent (NumPy, u = sqrt(w), no
    # noise: u <- u + (alpha / N) lam (u - u^3)) rerun at every epoch from the record before it, and
    # the crossing located between those epochs by interpolating log(w / (w* - w)) (the depth-2
    # flow's time coordinate) linearly: independent of the save spacing (issue 27).
    m, tt, ws = np.asarray(c.measured[:, 0]), np.asarray(r.t), float(c.fixed_point[0])
    i = int(np.argmax(m >= ws / 2))
    lam0, u = float(r.eigvals[0]), [np.sqrt(m[i - 1])]
    for _ in range(int(tt[i] - tt[i - 1])):
        u.append(u[-1] + (1.0 / r.n) * lam0 * (u[-1] - u[-1] ** 3))
    fine = np.square(u)
    j = int(np.argmax(fine >= ws / 2))
    logit = lambda w: np.log(w / (ws - w))
    share = (logit(ws / 2) - logit(fine[j - 1])) / (logit(fine[j]) - logit(fine[j - 1]))
    ref = tt[i - 1] + (j - 1) + share
    np.testing.assert_allclose(lt[0], ref, rtol=1e-12)
    np.testing.assert_allclose(c.time_error_discrete, (np.asarray(c.time_discrete) - lt) / lt, rtol=1e-12)
    assert abs(float(c.time_error_discrete[0])) < abs(float(c.time_error_continuous[0]))
    assert float(c.rmse_discrete[0]) < float(c.rmse_continuous[0])
    # Directions that are not learned (w* < min_fixed_point) or beyond H get NaN.
    assert np.isnan(np.asarray(c.time_measured)[3:]).all()
    with pytest.raises(ValueError, match="fraction"):
        tr.compare_with_theory(r, eigvecs=v, fraction=1.0)


def test_mse_runs_report_gamma_in_the_papers_units_like_tau(tiny, x64):
    """loss_scale="mse" is the paper's loss with alpha -> 2 alpha / D and gamma -> gamma D / 2: the
    result carries both converted, so the theory comparison of an mse run equals that of the
    equivalent paper run."""
    x = np.asarray(tiny, np.float64)  # a float64 run: the comparison below is at float64 rounding
    d = x.shape[1]
    kw = dict(key=jr.key(3), init_scale=0.05, noise=noise.gaussian(0.01), marginalised=True, **S1)
    paper = tr.train(x, alpha=0.5, gamma=0.02, **kw)
    mse = tr.train(x, alpha=0.5 * d / 2, gamma=0.02 * 2 / d, loss_scale="mse", **kw)
    # the conversions are exact up to float64 rounding of 2 / D
    np.testing.assert_allclose([float(mse.tau), float(mse.gamma)], [float(paper.tau), float(paper.gamma)],
                               rtol=1e-12)
    v = np.linalg.eigh(x.T @ x)[1][:, ::-1]
    a, b = (tr.compare_with_theory(r, eigvecs=v) for r in (paper, mse))
    # same recursion in float64 (the two runs differ by the rounding of the rescaled loss): 1e-9
    for field in ("measured", "continuous", "discrete"):
        np.testing.assert_allclose(getattr(b, field), getattr(a, field), rtol=1e-9, atol=1e-12)
