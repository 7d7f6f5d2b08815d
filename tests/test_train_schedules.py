"""train.train(eps=schedule) (daedyn/train/_schedule.py): marginalised linear training under a
piecewise-constant eps schedule from the decoupling start equals the scheduled scalar dynamics."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import dynamics, noise, schedules
from daedyn import train as tr


@pytest.fixture(scope="module")
def tiny():
    """Small synthetic data (N = 32, D = 5) with a spread-out spectrum."""
    x = jr.uniform(jr.key(0), (32, 5)) * jnp.array([1.0, 0.8, 0.6, 0.4, 0.2])[None, :]
    return np.asarray(x)


def test_scheduled_training_equals_scheduled_dynamics(tiny, x64):
    x = np.asarray(tiny, np.float64)
    n, d, h = x.shape[0], x.shape[1], 3
    spec = tr.prepare_data(x)
    lam, v = np.asarray(spec.eigvals), np.asarray(spec.eigvecs)
    alpha, w0, gamma = 0.05 * n / lam[0], 1e-3, 0.002
    eps = schedules.piecewise_constant([300.0, 700.0], [5.0, 0.2, 2.0])  # eps = N s^2, epochs
    wb1, wb2 = dynamics.orthogonal_init(d, h, np.sqrt(w0), np.sqrt(w0), key=jr.key(1))
    w1, w2 = dynamics.from_eigenbasis(wb1, wb2, v)
    r = tr.train(x, hidden=h, key=jr.key(0), epochs=1200, alpha=alpha, save_every=100, eps=eps,
                 marginalised=True, gamma=gamma, params={"w1": w1, "w2": w2}, precision="highest")
    u = np.sqrt(w0) * (np.arange(d) < h)
    gd = dynamics.scalar_gd(lam, eps, u, u, alpha=alpha, epochs=1200, gamma=gamma, n=n, save_every=100)
    # epoch k uses eps(k) in both: the same arithmetic in another order; measured 1.1e-15 absolute
    # (mapping <= 1), bound 1e-11 as the constant-eps test of test_train_loop.py
    np.testing.assert_allclose(r.mapping, np.asarray(gd.w).T, rtol=0, atol=1e-11)
    assert schedules.is_schedule(r.eps)


def test_alpha_and_gamma_schedules_in_training_equal_the_scheduled_recursion(tiny, x64):
    """train(alpha=schedule, gamma=schedule): epoch k steps with alpha(k) and decays with gamma(k), as
    dynamics.scalar_gd with the same schedules; the result reports tau and gamma as schedules."""
    x = np.asarray(tiny, np.float64)
    n, d = x.shape
    spec = tr.prepare_data(x)
    lam, v = np.asarray(spec.eigvals), np.asarray(spec.eigvecs)
    a0 = 0.05 * n / lam[0]
    alpha = schedules.piecewise_constant([100.0], [a0, 3 * a0])
    gamma = schedules.piecewise_constant([250.0], [0.0, 0.01])
    eps = schedules.piecewise_constant([150.0], [0.5, 3.0])
    wb1, wb2 = dynamics.orthogonal_init(d, d, 0.05, 0.05, key=jr.key(1))
    w1, w2 = dynamics.from_eigenbasis(wb1, wb2, v)
    r = tr.train(x, hidden=d, key=jr.key(0), epochs=400, alpha=alpha, gamma=gamma, eps=eps, save_every=100,
                 marginalised=True, params={"w1": w1, "w2": w2}, precision="highest")
    gd = dynamics.scalar_gd(lam, eps, 0.05, 0.05, alpha=alpha, gamma=gamma, n=n, epochs=400, save_every=100)
    # the same recursion in another order of operations: rounding only (as the test above)
    np.testing.assert_allclose(r.mapping, np.asarray(gd.w).T, rtol=0, atol=1e-11)
    np.testing.assert_allclose(r.tau.values, [n / a0, n / (3 * a0)], rtol=1e-15)
    np.testing.assert_array_equal(r.gamma.values, [0.0, 0.01])
    with pytest.raises(ValueError, match="alpha schedule values must lie in"):
        tr.train(x, hidden=2, key=jr.key(0), epochs=10, alpha=schedules.piecewise_constant([5.0], [0.1, 0.0]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=1.0), "eps must be a daedyn.schedules schedule"),
    (dict(eps=schedules.piecewise_constant([], [1.0]), noise=noise.gaussian(0.1)), "noise must be None"),
    (dict(eps=schedules.piecewise_constant([], [1.0]), checkpoint="/tmp/x.npz"), "checkpoint is not"),
])
def test_bad_input(tiny, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tr.train(tiny, hidden=2, key=jr.key(0), epochs=10, alpha=0.1, marginalised=True, **kwargs)


@pytest.mark.slow  # 6 s on the 2-core CPU (compiling two data-path runs)
def test_sampled_noise_follows_the_schedule(tiny):
    # eps = 0 until epoch 50: the run is identical to a noiseless one up to there (the same keys,
    # noise scaled by sqrt(eps(k) / N) = 0), then the noise shrinks the learned top direction's mapping
    # (measured 0.79 against 1.00; the unlearned directions only fluctuate)
    s = schedules.piecewise_constant([50.0], [0.0, 6.4])
    kw = dict(hidden=3, key=jr.key(1), epochs=100, alpha=0.5, save_every=50, init_scale=1e-2, path="data")
    r, r0 = tr.train(tiny, eps=s, **kw), tr.train(tiny, **kw)
    np.testing.assert_array_equal(r.mapping[:2], r0.mapping[:2])
    assert float(r.mapping[2, 0]) < 0.9 < float(r0.mapping[2, 0])


@pytest.mark.slow  # ~10 s on the loaded 2-core CPU (three compilations)
def test_train_batch_with_a_schedule_per_run(x64):
    # values (K + 1, 2): two runs, each its own schedule, batched with gamma; equal to two train() runs
    x = jr.uniform(jr.key(0), (64, 6), dtype=jnp.float64)
    eps = schedules.piecewise_constant([20.0], jnp.asarray([[3.0, 0.0], [0.5, 5.0]]))
    kw = dict(hidden=6, epochs=60, save_every=20, alpha=0.5, marginalised=True, init_scale=1e-2)
    rb = tr.train_batch(x, key=jr.key(1), eps=eps, gamma=jnp.array([0.0, 0.01]), **kw)
    assert rb.mapping.shape == (2, 4, 6) and schedules.is_schedule(rb.eps)
    keys = jr.split(jr.key(1), 2)  # train_batch splits one key into one per run
    for b, g in enumerate((0.0, 0.01)):
        one = schedules.piecewise_constant([20.0], eps.values[:, b])
        r = tr.train(x, key=keys[b], eps=one, gamma=g, **kw)
        # the same float64 steps, vmapped or not: measured 2.2e-16; bound 1e-12
        np.testing.assert_allclose(rb.mapping[b], r.mapping, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="eps must be a piecewise-constant schedule in train_batch"):
        tr.train_batch(x, key=jr.key(1), eps=schedules.linear(1.0, 0.0, 10.0), **kw)
