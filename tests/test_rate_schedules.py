"""Learning-rate (alpha / tau) schedules in the full-matrix engines (daedyn/dynamics/_matrix_scheduled.py),
alpha and gamma schedules in train.train_batch, and compare_with_theory of a scheduled run: each is
checked against the scheduled scalar dynamics per direction, and a one-piece schedule against the
constant."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from daedyn import dynamics, schedules

LAM = [5.0, 3.0, 1.5, 0.5]
D1, D2 = [0.1, 0.2, 0.05, 0.3], [0.2, 0.1, 0.3, 0.1]
SCALAR_FIELDS = ("w1", "w2", "w", "weight_norm", "loss")  # asked for explicitly (scalar_gd's defaults)


def matrix_setup():
    """Built inside each test so that the arrays take the test's dtype; a random rotation of the hidden
    space keeps Wb2 Wb1 diagonal but not the factors."""
    lam = jnp.asarray(LAM)
    eps = schedules.piecewise_constant([20.0, 50.0], [2.0, 0.1, 4.0])
    gamma = schedules.piecewise_constant([30.0], [0.01, 0.05])
    alpha = schedules.piecewise_constant([40.0], [0.1, 0.25])
    w1, w2 = dynamics.orthogonal_init(4, 4, jnp.asarray(D1), jnp.asarray(D2), key=jax.random.key(1))
    return lam, eps, gamma, alpha, w1, w2


def test_matrix_gd_alpha_schedule_equals_scalar_gd_per_direction(x64):
    lam, eps, gamma, alpha, w1, w2 = matrix_setup()
    kw = dict(n=2, epochs=100, save_every=10)
    m = dynamics.matrix_gd(lam, w1, w2, eps=eps, gamma=gamma, alpha=alpha, **kw)
    s = dynamics.scalar_gd(lam, eps, jnp.asarray(D1), jnp.asarray(D2), gamma=gamma, alpha=alpha,
                           observables=SCALAR_FIELDS, **kw)
    # step k uses alpha(k), eps(k), gamma(k) in both; the matrix step is the same scalar recursion
    # rotated by the hidden-space rotation, so only rounding differs: measured 4.4e-16 absolute (the
    # mapping is <= 1); bound 1e-12, three orders above float64 rounding over 100 steps
    np.testing.assert_allclose(m.mapping, s.w.T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.weight_norm, s.weight_norm.sum(0), rtol=1e-12)
    # the matrix loss is the expected loss L (no rate in it); the scalar one is scaled by alpha(t)
    np.testing.assert_allclose(m.loss, (s.loss / alpha(s.t)[None, :]).sum(0), rtol=1e-12)


def test_matrix_gd_one_piece_alpha_is_the_constant(x64):
    lam, _, _, _, w1, w2 = matrix_setup()
    kw = dict(eps=2.0, gamma=0.01, n=2, epochs=50, save_every=10)
    a = dynamics.matrix_gd(lam, w1, w2, alpha=schedules.piecewise_constant([], [0.1]), **kw)
    b = dynamics.matrix_gd(lam, w1, w2, alpha=0.1, **kw)
    for x, y in zip(a, b, strict=True):  # measured bit-identical: the same gd_step on the same values
        np.testing.assert_array_equal(x, y)


def test_matrix_gd_alpha_schedule_stability_and_bad_input():
    lam, w1, w2 = np.asarray(LAM), np.full((4, 4), 0.1), np.full((4, 4), 0.1)
    # the check takes the largest piece: 0.1 is stable, 0.9 is not (alpha < 0.39 for lam = 5)
    with pytest.warns(dynamics.UnstableStepWarning, match="alpha=0.9"):
        dynamics.matrix_gd(lam, w1, w2, eps=2.0, alpha=schedules.piecewise_constant([4.0], [0.1, 0.9]),
                           n=2, epochs=0)
    with pytest.raises(ValueError, match="alpha schedule values must lie in"):
        dynamics.matrix_gd(lam, w1, w2, alpha=schedules.piecewise_constant([4.0], [0.1, 0.0]), n=2, epochs=10)
    with pytest.raises(ValueError, match="tau schedule values must lie in"):
        dynamics.matrix_flow(jnp.array([0.0, 1.0]), lam, w1, w2, tau=schedules.linear(1.0, 0.0, 5.0), n=2,
                             dt=0.1)


@pytest.mark.slow  # ~4 s on the loaded 2-core CPU (two RK4 compilations)
def test_matrix_flow_tau_schedule_equals_scalar_flow_and_a_change_of_clock(x64):
    lam, eps, gamma, _, w1, w2 = matrix_setup()
    tau = schedules.piecewise_constant([40.0], [20.0, 8.0])  # N / alpha(t), alpha 0.1 then 0.25 (N = 2)
    ts = jnp.array([0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 80.0])  # every jump is a save time
    m = dynamics.matrix_flow(ts, lam, w1, w2, eps=eps, gamma=gamma, tau=tau, n=2, dt=0.5)
    s = dynamics.scalar_flow(ts, lam, eps, jnp.asarray(D1), jnp.asarray(D2), tau=tau, gamma=gamma, n=2,
                             dt=0.5)
    # the same RK4 stages (t, t + h/2, left limit at t + h) per direction: measured 2.2e-16; bound 1e-12
    np.testing.assert_allclose(m.mapping, s.w.T, rtol=0, atol=1e-12)
    # with eps and gamma constant, a tau schedule is a change of clock: W(t) = W_1(s(t)), W_1 the tau = 1
    # flow and s(t) = int_0^t dt' / tau(t') (t / 20 to t = 40, then 2 + (t - 40) / 8)
    c = dynamics.matrix_flow(ts, lam, w1, w2, eps=1.0, tau=tau, n=2, dt=0.2)
    s_t = jnp.where(ts <= 40.0, ts / 20.0, 2.0 + (ts - 40.0) / 8.0)
    u = dynamics.matrix_flow(s_t, lam, w1, w2, eps=1.0, tau=1.0, n=2, dt=0.01)
    # two RK4 runs on different grids (steps in s of dt / tau: 0.01 then 0.025, against 0.01): their
    # O(h^4) errors, measured 6.2e-10; bound 1e-8
    np.testing.assert_allclose(c.mapping, u.mapping, rtol=0, atol=1e-8)


def test_train_batch_alpha_and_gamma_schedules_equal_train_per_run(x64):
    """train_batch with alpha and gamma schedules whose values (K + 1, 2) give two runs (and one eps
    schedule shared by both): each run is train() with its own schedules."""
    from daedyn import train as tr

    x = jax.random.uniform(jax.random.key(0), (32, 5), dtype=jnp.float64)
    alpha = schedules.piecewise_constant([30.0], jnp.asarray([[0.1, 0.3], [0.2, 0.05]]))
    gamma = schedules.piecewise_constant([20.0, 50.0], jnp.asarray([[0.0, 0.02], [0.01, 0.0], [0.03, 0.0]]))
    eps = schedules.piecewise_constant([40.0], [2.0, 0.5])
    kw = dict(hidden=3, epochs=60, save_every=20, marginalised=True, init_scale=1e-2, eps=eps,
              observables=("mapping",))  # one observable: less to compile
    rb = tr.train_batch(x, key=jax.random.key(1), alpha=alpha, gamma=gamma, **kw)
    assert rb.mapping.shape == (2, 4, 5) and rb.tau.values.shape == (2, 2) and rb.gamma.values.shape == (3, 2)
    keys = jax.random.split(jax.random.key(1), 2)  # train_batch splits one key into one per run
    for b in range(2):
        one = lambda s: schedules.piecewise_constant(s.boundaries, s.values[:, b])
        r = tr.train(x, key=keys[b], alpha=one(alpha), gamma=one(gamma), **kw)
        # the same float64 steps (epoch k: alpha(k), gamma(k), eps(k)), vmapped or not: measured
        # 1.1e-16 absolute (the mapping is <= 1); bound 1e-12, rounding of a 60-step recursion
        np.testing.assert_allclose(rb.mapping[b], r.mapping, rtol=0, atol=1e-12)
        np.testing.assert_allclose(rb.tau.values[:, b], r.tau.values, rtol=1e-15)
        np.testing.assert_array_equal(rb.gamma.values[:, b], r.gamma.values)
    with pytest.raises(ValueError, match="alpha must be a piecewise-constant schedule in train_batch"):
        tr.train_batch(x, key=jax.random.key(1), alpha=schedules.linear(0.1, 0.05, 10.0), **kw)
