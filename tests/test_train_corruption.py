"""Training with masking / salt-and-pepper / covariance noise: sampled updates average to the
marginalised one, marginalised training equals the coupled matrix GD, nonlinear and batched runs."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import models, noise, train
from daedyn.dynamics import from_eigenbasis, matrix_gd, orthogonal_init
from daedyn.spectrum import compute_spectrum


def _x(n=24, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, (n, d)) * np.linspace(1.0, 0.4, d)


@pytest.mark.parametrize("corruption", [noise.masking(0.3), pytest.param(noise.gaussian_covariance(
    np.array([0.02, 0.05, 0.01, 0.0, 0.03])), marks=pytest.mark.slow)])
def test_sampled_update_averages_to_the_marginalised_update(corruption, x64):
    x = jnp.asarray(_x())
    data = train.prepare_data(x, path="sigma")  # Sigma for the marginalised run, x for the sampled
    p0 = models.init_autoencoder(5, 3, key=jr.key(1), init_scale=0.3, dtype=jnp.float64)
    hyper = train.Hyper(alpha=0.05, gamma=0.0, eps=0.0, corruption=corruption)
    sampled = train.train_fn(epochs=1, noise=corruption, path="data", remat=False)
    marg = train.train_fn(epochs=1, noise=corruption, marginalised=True, path="sigma", remat=False)
    k = 400
    runs = jax.jit(jax.vmap(lambda key: sampled(p0, data, hyper, key)[0]))(jr.split(jr.key(2), k))
    ref, _ = marg(p0, data, hyper, jr.key(3))
    for name in ("w1", "w2"):
        # one GD step is linear in the gradient, so the mean over k keys of the sampled step is the
        # marginalised step up to Monte Carlo error: 5 standard errors per entry (false-failure
        # probability < 1e-6 per entry; 30 entries). k = 400 keeps it fast; any k is valid.
        mean, se = np.mean(runs[name], axis=0), np.std(runs[name], axis=0) / np.sqrt(k)
        assert np.all(np.abs(mean - np.asarray(ref[name])) <= 5 * se + 1e-12), name
        assert np.max(se) > 0  # the steps did sample


def test_marginalised_masking_training_equals_coupled_matrix_gd(x64):
    x = _x(n=30, d=6, seed=1)
    spec = compute_spectrum(jnp.asarray(x))
    mk = noise.masking(0.4)
    w1, w2 = orthogonal_init(6, 3, 0.1, 0.1, dtype=jnp.float64)
    traj = matrix_gd(spec.eigvals, w1, w2, eps=mk.marginal_term(spec), eps_dims=2, alpha=0.02, n=30,
                     epochs=200, save_every=50)
    p1, p2 = from_eigenbasis(w1, w2, spec.eigvecs)
    for path in ("eigen", "sigma"):
        r = train.train(x, key=jr.key(0), alpha=0.02, noise=mk, marginalised=True, path=path, hidden=3,
                        epochs=200, save_every=50, params={"w1": p1, "w2": p2}, spectrum=spec)
        # same GD recursion, different bases / matmul order: float64 rounding over 200 steps, ~1e-14.
        np.testing.assert_allclose(r.mapping, traj.mapping, rtol=1e-10, atol=1e-13)


@pytest.mark.slow  # three compiled runs: ~20 s on a loaded 2-core CPU
def test_sampled_corruptions_train_nonlinear_and_minibatched():
    x = jnp.asarray(_x(n=32, d=5, seed=2), jnp.float32)
    for corruption in (noise.masking(0.3, rescale=False), noise.salt_and_pepper(0.2)):
        r = train.train(x, key=jr.key(0), alpha=0.05, noise=corruption, activation="relu", hidden=3,
                        epochs=4, save_every=2, batch_size=8, init_scale=0.1)
        assert r.mapping.shape == (3, 5) and np.all(np.isfinite(r.train_loss))
    b = train.train_batch(x, key=jr.key(1), alpha=0.05, noise=noise.masking(jnp.array([0.1, 0.5])),
                          marginalised=True, hidden=2, epochs=4, save_every=2, init_scale=0.1)
    assert b.mapping.shape == (2, 3, 5)
    assert not np.allclose(b.mapping[0, -1], b.mapping[1, -1])  # the two rates differ


@pytest.mark.parametrize(("corruption", "match"), [
    (noise.salt_and_pepper(0.1), "salt_and_pepper' cannot be marginalised"),
])
def test_unmarginalisable_corruptions_are_refused(corruption, match):
    with pytest.raises(ValueError, match=match):
        train.train(_x(), key=jr.key(0), alpha=0.05, noise=corruption, marginalised=True, hidden=2,
                    epochs=2, save_every=1)


@pytest.mark.slow  # reverse mode through 20 epochs: ~6 s idle
def test_training_is_differentiable_in_the_masking_rate(x64):
    # p is a traced leaf of Hyper.corruption: the held-out loss after marginalised training is a
    # smooth function of p (tuning p through training), and jax.grad agrees with central differences.
    from jax.test_util import check_grads

    x = jnp.asarray(_x(n=20, d=4, seed=3))
    data = train.prepare_data(x[:16], x_heldout=x[16:])
    p0 = models.init_autoencoder(4, 2, key=jr.key(0), init_scale=0.3, dtype=jnp.float64)
    run = train.train_fn(epochs=20, save_every=20, noise=noise.masking(0.3), marginalised=True)

    def heldout(p):
        hyper = train.Hyper(alpha=0.05, corruption=noise.masking(p))
        return run(p0, data, hyper, jr.key(1))[1]["heldout_loss"][-1]

    check_grads(heldout, (0.3,), order=1, modes=("rev",))  # float64 central differences: 1e-5-ish
    assert float(jax.grad(heldout)(0.3)) != 0.0


# ---------------------------------------------------------------------------------------------
# Raw masking marginalised: one more quadratic form (M, K) of the core


def _raw_moments(x, p):
    """M = E[x~ x~^T] and K = E[x x~^T] summed over samples for x~ = m x, m ~ Bernoulli(1 - p) per
    entry, derived here: E[m_i m_j] = (1 - p)^2 (i != j), 1 - p (i = j)."""
    s = x.T @ x
    return (1 - p) ** 2 * s + p * (1 - p) * np.diag(np.diag(s)), (1 - p) * s


def test_raw_masking_moments_match_monte_carlo():
    # the derivation behind the oracle, checked by sampling: 20000 masks of 5 samples
    rng = np.random.default_rng(1)
    x, p = rng.uniform(0, 1, (5, 4)), 0.3
    m, k = _raw_moments(x, p)
    masks = rng.random((20000,) + x.shape) >= p
    xt = masks * x
    m_mc = np.einsum("rni,rnj->ij", xt, xt) / masks.shape[0]
    k_mc = np.einsum("ni,rnj->ij", x, xt) / masks.shape[0]
    # standard error of a mean of 20000 draws of entries <= 1: ~5e-3 x sqrt(5 samples); 0.05 is ~4 SE
    np.testing.assert_allclose(m_mc, m, atol=0.05)
    np.testing.assert_allclose(k_mc, k, atol=0.05)


def _raw_numpy_gd(x, ws, alpha, epochs, p_at, gamma=0.0):
    """GD on the L factors with G = (W M_k - K_k) / N (the expected loss of the raw mask at epoch k)."""
    ws = [np.array(w, np.float64) for w in ws]
    n = x.shape[0]
    for k in range(epochs):
        m, kk = _raw_moments(x, p_at(k))
        w = ws[0]
        for f in ws[1:]:
            w = f @ w
        g = (w @ m - kk) / n
        new = []
        for l in range(len(ws)):
            q = np.eye(ws[-1].shape[0])
            for f in reversed(ws[l + 1:]):
                q = q @ f
            s_ = np.eye(ws[0].shape[1])
            for f in ws[:l]:
                s_ = f @ s_
            new.append(ws[l] - alpha * (q.T @ g @ s_.T + gamma * ws[l]))
        ws = new
    return ws


@pytest.mark.parametrize("path, depth, scheduled",
                         [("eigen", 2, False), ("sigma", 2, True), ("data", 2, False), ("eigen", 3, True)])
def test_raw_masking_marginalised_matches_numpy_gd(path, depth, scheduled, x64):
    from daedyn import schedules

    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, (30, 5)) * np.linspace(1.0, 0.4, 5)
    p = schedules.piecewise_constant([15.0], [0.3, 0.1]) if scheduled else 0.25
    p_at = (lambda k: 0.3 if k < 15 else 0.1) if scheduled else (lambda k: 0.25)
    alpha, epochs = 0.4, 30
    r = train.train(x, key=jr.key(0), alpha=alpha, gamma=0.01, hidden=3, depth=depth, epochs=epochs,
                    save_every=epochs, init_scale=0.3, marginalised=True, path=path,
                    noise=noise.masking(p, rescale=False))
    names = [f"w{i + 1}" for i in range(depth)]
    want = _raw_numpy_gd(x, [r.init_params[k] for k in names], alpha, epochs, p_at, gamma=0.01)
    # float64, the same recursion in another basis / order: rounding only (measured ~1e-15)
    for k, w in zip(names, want, strict=True):
        np.testing.assert_allclose(r.params[k], w, rtol=0, atol=1e-11, err_msg=k)
    # and the inverted-dropout reading (K = Sigma) would be far off: the test can fail
    inv = _raw_numpy_gd(x, [r.init_params[k] for k in names], alpha, epochs,
                        lambda k: 0.0, gamma=0.01)
    assert max(np.max(np.abs(a - b)) for a, b in zip(inv, want)) > 1e-3
