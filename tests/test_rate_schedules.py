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


@pytest.mark.slow  # ~3 s on the loaded 2-core CPU (the constant route's compilation)
def test_matrix_gd_one_piece_alpha_is_the_constant(x64):
    lam, _, _, _, w1, w2 = matrix_setup()
    kw = dict(eps=2.0, gamma=0.01, n=2, epochs=50, save_every=10)
    a = dynamics.matrix_gd(lam, w1, w2, alpha=schedules.piecewise_constant([], [0.1]), **kw)
    b = dynamics.matrix_gd(lam, w1, w2, alpha=0.1, **kw)
    for x, y in zip(a, b, strict=True):  # measured bit-identical: the same gd_step on the same values
        np.testing.assert_array_equal(x, y)


def test_matrix_gd_alpha_schedule_stability_and_bad_input():
    lam, w1, w2 = np.asarray(LAM), np.full((4, 4), 0.1), np.full((4, 4), 0.1)
    # each piece is checked: 0.1 is stable, 0.9 (from epoch 4) is not (alpha < 0.39 for lam = 5)
    with pytest.warns(dynamics.UnstableStepWarning, match="from epoch 4 .*alpha=0.9"):
        dynamics.matrix_gd(lam, w1, w2, eps=2.0, alpha=schedules.piecewise_constant([4.0], [0.1, 0.9]),
                           n=2, epochs=5)
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


@pytest.mark.slow  # ~5 s on the loaded 2-core CPU (a batched and an unbatched training compilation)
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


def compare_setup():
    """D = 6 synthetic data (N = 40, centred, spread spectrum) and the decoupling start: W1 = u V^T,
    W2 = u V (V the eigenvectors of Sigma), so every direction of W2 W1 starts at w0 = u^2 = 1e-3,
    balanced. NumPy throughout: nothing to compile before the run."""
    x = np.asarray(jax.random.uniform(jax.random.key(0), (40, 6), dtype=jnp.float64))
    x = x * np.array([1.0, 0.8, 0.6, 0.45, 0.3, 0.2])
    x = x - x.mean(0)
    n, d = x.shape
    lam, v = np.linalg.eigh(x.T @ x)
    lam, v = lam[::-1], v[:, ::-1]
    u = 1e-3**0.5
    kw = dict(hidden=d, key=jax.random.key(0), epochs=600, save_every=50, marginalised=True,
              params={"w1": u * v.T, "w2": u * v}, precision="highest", observables=("mapping",))
    return x, n, lam, v, kw


def test_compare_with_theory_of_a_scheduled_run(x64):
    from daedyn import train as tr

    x, n, lam, v, kw = compare_setup()
    a0 = 0.1 * n / lam[0]  # alpha lam_0 / N = 0.1, then 0.2
    alpha = schedules.piecewise_constant([200.0], [a0, 2 * a0])
    gamma = schedules.piecewise_constant([300.0], [0.0, 0.01])
    eps = schedules.piecewise_constant([100.0, 400.0], [0.5, 0.05, 0.3])
    r = tr.train(x, alpha=alpha, gamma=gamma, eps=eps, **kw)
    c = tr.compare_with_theory(r, eigvecs=v)
    # the discrete prediction is the scheduled recursion (epoch k: eps(k), gamma(k), alpha(k)), which a
    # marginalised run from the decoupling start follows exactly: measured 4.4e-16 absolute; bound 1e-12
    np.testing.assert_allclose(c.discrete, c.measured, rtol=0, atol=1e-12)
    # the continuous one is the chained closed form of the flow: it differs from gradient descent by
    # O(alpha lam / N) (up to 0.2 here) in learning time; measured 0.032 absolute; bound 0.05
    np.testing.assert_allclose(c.continuous, c.measured, rtol=0, atol=0.05)
    np.testing.assert_allclose(c.alpha_lam_over_n[0], 0.2, rtol=1e-12)  # the largest alpha
    # the fixed point in force at the end: eps = 0.3, gamma = 0.01 (lam - N gamma) / (lam + eps)
    np.testing.assert_allclose(c.fixed_point, np.maximum(lam - n * 0.01, 0) / (lam + 0.3), rtol=1e-12)
    # depth 3 under the same schedules (once refused): the decoupling start W1 = u V^T, W2 = u I,
    # W3 = u V keeps every direction balanced, so the marginalised run is the depth-3 scheduled
    # recursion: the discrete prediction equals it to rounding (bound 1e-12, as above)
    u = 0.1
    deep = dict(kw, hidden=(6, 6), params={"w1": u * v.T, "w2": u * np.eye(6), "w3": u * v})
    r3 = tr.train(x, alpha=alpha, gamma=gamma, eps=eps, **deep)
    c3 = tr.compare_with_theory(r3, eigvecs=v, w0=u**3)
    np.testing.assert_allclose(c3.discrete, c3.measured, rtol=0, atol=1e-12)
    assert float(np.max(np.abs(c3.measured[-1] - c3.measured[0]))) > 0.1  # it learned: the check bites
    # the chained depth-3 closed form of the flow: O(alpha lam / N) from GD, as at depth 2
    np.testing.assert_allclose(c3.continuous, c3.measured, rtol=0, atol=0.05)


@pytest.mark.slow  # ~5 s on the loaded 2-core CPU (the constant route's compilations)
def test_compare_with_theory_one_piece_is_the_constant(x64):
    from daedyn import train as tr

    x, n, lam, v, kw = compare_setup()
    a0 = 0.1 * n / lam[0]
    r = tr.train(x, alpha=schedules.piecewise_constant([200.0], [a0, 2 * a0]),
                 eps=schedules.piecewise_constant([100.0], [0.5, 0.3]), **kw)
    # a one-piece schedule is compared as its constant, bit for bit (measured identical); the constant
    # (the last pieces' values) does not track this scheduled run (measured 0.72 absolute, against
    # 4.4e-16 for the scheduled comparison): the schedule is not read as a constant
    one = lambda s: schedules.piecewise_constant([], [s])
    c1 = tr.compare_with_theory(r._replace(eps=one(0.3), gamma=one(0.0), tau=one(n / (2 * a0))), eigvecs=v)
    cc = tr.compare_with_theory(r._replace(eps=jnp.asarray(0.3), gamma=jnp.asarray(0.0),
                                           tau=jnp.asarray(n / (2 * a0))), eigvecs=v)
    for f in c1._fields:
        np.testing.assert_array_equal(getattr(c1, f), getattr(cc, f))
    assert np.max(np.abs(cc.discrete - cc.measured)) > 0.1
    assert np.max(np.abs(tr.compare_with_theory(r, eigvecs=v).discrete - cc.measured)) < 1e-12


@pytest.mark.slow  # ~8 s on the loaded 2-core CPU (a training, a scalar_gd and an RK4 compilation)
def test_continuous_alpha_gamma_and_eps_schedules_in_train(x64):
    """train(alpha=linear ramp, gamma=function, eps=exponential ramp): epoch k uses alpha(k), gamma(k),
    eps(k), as scalar_gd with the same schedules; the result's tau is N / alpha(t); compare_with_theory
    follows the schedules (the RK4 flow for the continuous form)."""
    from daedyn import train as tr

    x, n, lam, v, kw = compare_setup()
    a0 = 0.1 * n / lam[0]
    alpha = schedules.linear(a0, 2 * a0, 300.0)
    gamma = schedules.function(lambda t, g: g * (1 - jnp.exp(-t / 100.0)), 0.01)
    eps = schedules.exponential(0.5, 0.05, 400.0)
    r = tr.train(x, alpha=alpha, gamma=gamma, eps=eps, **kw)
    u = 1e-3**0.5
    gd = dynamics.scalar_gd(lam, eps, u, u, alpha=alpha, gamma=gamma, n=n, epochs=600, save_every=50,
                            observables=("w",))
    # the same recursion in another order of operations: measured 2.1e-15 absolute; bound 1e-12
    np.testing.assert_allclose(r.mapping, np.asarray(gd.w).T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.tau(jnp.array([0.0, 150.0, 500.0])), [n / a0, n / (1.5 * a0), n / (2 * a0)],
                               rtol=1e-14)
    np.testing.assert_allclose(r.gamma(jnp.asarray(100.0)), 0.01 * (1 - np.exp(-1.0)), rtol=1e-14)
    c = tr.compare_with_theory(r, eigvecs=v)
    np.testing.assert_allclose(c.discrete, c.measured, rtol=0, atol=1e-12)  # measured 2.2e-16, as above
    # the scheduled RK4 flow against gradient descent: O(alpha lam / N) as in the piecewise test;
    # measured 0.030; bound 0.05
    np.testing.assert_allclose(c.continuous, c.measured, rtol=0, atol=0.05)
    np.testing.assert_allclose(c.alpha_lam_over_n[0], 0.2, rtol=1e-12)  # the largest alpha, 2 a0
    with pytest.raises(ValueError, match="alpha schedule values must lie in"):
        tr.train(x, alpha=schedules.linear(a0, 0.0, 10.0), **kw)  # alpha(k) reaches 0 at k = 10


@pytest.mark.slow  # ~8 s on the loaded 2-core CPU (float32 compilations of the matrix GD, training, theory)
def test_rate_schedules_in_float32():
    lam, eps, gamma, alpha, w1, w2 = matrix_setup()
    kw = dict(n=2, epochs=100, save_every=10)
    m32 = dynamics.matrix_gd(lam, w1, w2, eps=eps, gamma=gamma, alpha=alpha, **kw)
    with jax.enable_x64(True):
        lam, eps, gamma, alpha, w1, w2 = matrix_setup()
        m64 = dynamics.matrix_gd(lam, w1, w2, eps=eps, gamma=gamma, alpha=alpha, **kw)
        x, n, lam, v, kw = compare_setup()
    assert m32.mapping.dtype == jnp.float32
    # float32 rounding over 100 steps: measured 8.6e-8 absolute; bound 1e-5
    np.testing.assert_allclose(np.asarray(m32.mapping, np.float64), m64.mapping, rtol=0, atol=1e-5)
    from daedyn import train as tr

    x, v = x.astype(np.float32), v.astype(np.float32)
    kw["params"] = {k: np.asarray(p, np.float32) for k, p in kw["params"].items()}
    a0 = 0.1 * n / lam[0]
    eps = schedules.piecewise_constant([100.0], [0.5, 0.3])
    r = tr.train(x, alpha=schedules.linear(a0, 2 * a0, 300.0), eps=eps, **kw)
    c = tr.compare_with_theory(r, eigvecs=v)
    assert c.discrete.dtype == c.continuous.dtype == jnp.float32
    # the same recursion in float32: measured 1.2e-7 absolute; bound 1e-5. The flow: O(alpha lam / N) as
    # in float64; measured 0.019; bound 0.05
    np.testing.assert_allclose(c.discrete, c.measured, rtol=0, atol=1e-5)
    np.testing.assert_allclose(c.continuous, c.measured, rtol=0, atol=0.05)


@pytest.mark.slow  # ~13 s on the loaded 2-core CPU (forward and reverse mode through both engines)
def test_matrix_rate_schedule_gradients_and_vmap(x64):
    from jax.test_util import check_grads

    lam, eps, gamma, alpha, w1, w2 = matrix_setup()

    def gd(values):
        a = schedules.PiecewiseConstant(alpha.boundaries, values)
        return dynamics.matrix_gd(lam, w1, w2, eps=eps, gamma=gamma, alpha=a, n=2, epochs=60,
                                  save_every=60).mapping[-1]

    tau = schedules.piecewise_constant([40.0], [20.0, 8.0])
    ts = jnp.array([0.0, 20.0, 40.0, 60.0])  # equal intervals: a static step count (reverse mode)

    def flow(values):
        t = schedules.PiecewiseConstant(tau.boundaries, values)
        return dynamics.matrix_flow(ts, lam, w1, w2, eps=eps, gamma=gamma, tau=t, n=2, dt=1.0).mapping[-1]

    # d mapping / d piece values against central differences (float64; check_grads' default tolerance)
    check_grads(gd, (alpha.values,), order=1, modes=["fwd", "rev"])
    check_grads(flow, (tau.values,), order=1, modes=["fwd", "rev"])
    # traced values under vmap: one schedule per batch element, each its own run (measured 0)
    both = jax.vmap(gd)(jnp.stack([alpha.values, 0.5 * alpha.values]))
    np.testing.assert_allclose(both[1], gd(0.5 * alpha.values), rtol=0, atol=1e-15)


def test_simulate_rk4_with_a_learning_rate_schedule_is_the_flow_of_its_tau_schedule(x64):
    """simulate_scalar / simulate_matrix(method="rk4", alpha=schedule): the flow with tau = n / alpha(t)
    piece by piece (the same call: bit for bit), and the matrix flow from the orthogonal start is
    the scalar flow per direction."""
    lam = jnp.array([2.0, 1.0])
    alpha = schedules.piecewise_constant([300.0], [0.01, 0.03])
    kw = dict(n=1, epochs=600, save_every=100, method="rk4", dt=0.5)
    r = dynamics.simulate_scalar(lam, 0.5, 0.1, 0.1, alpha=alpha, **kw)
    tau = schedules.piecewise_constant([300.0], [100.0, 1.0 / 0.03])
    f = dynamics.scalar_flow(jnp.arange(0.0, 601.0, 100.0), lam, 0.5, 0.1, 0.1, tau=tau, n=1, dt=0.5)
    np.testing.assert_array_equal(r.w, f.w)
    w1, w2 = dynamics.orthogonal_init(2, 2, jnp.array([0.1, 0.1]), jnp.array([0.1, 0.1]))
    m = dynamics.simulate_matrix(lam, w1, w2, eps=0.5, alpha=alpha, **kw)
    # the same RK4 stages per direction: measured 2.2e-16; bound 1e-13
    np.testing.assert_allclose(m.mapping, np.asarray(r.w).T, rtol=0, atol=1e-13)
