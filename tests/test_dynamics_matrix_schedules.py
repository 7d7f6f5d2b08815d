"""daedyn.dynamics.matrix_gd / matrix_flow with schedules (daedyn/dynamics/_matrix.py), beyond the
depth x kind x engine block of tests/test_combinations.py (which checks the scheduled values of GD and
the flow at depths 2-4 against NumPy): schedule values with a batch axis, a one-piece schedule is the
constant, a scheduled (D, D) corruption term equals chained constant runs and is stability-checked per
piece, long runs in pieces, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from daedyn import dynamics, schedules

LAM = [5.0, 3.0, 1.5, 0.5]
D1, D2 = [0.1, 0.2, 0.05, 0.3], [0.2, 0.1, 0.3, 0.1]


def setup(h=4):
    """Built inside each test so that the arrays take the test's dtype."""
    lam = jnp.asarray(LAM)
    eps = schedules.piecewise_constant([20.0, 50.0], [2.0, 0.1, 4.0])
    gamma = schedules.piecewise_constant([30.0], [0.01, 0.05])
    # a random rotation R of the hidden space: Wb2 Wb1 stays diagonal, the factors are not
    w1, w2 = dynamics.orthogonal_init(4, h, jnp.asarray(D1[:h]), jnp.asarray(D2[:h]), key=jax.random.key(1))
    return lam, eps, gamma, w1, w2


@pytest.mark.slow  # ~4 s on the loaded 2-core CPU
def test_matrix_gd_schedule_batch_and_float32():
    # a schedule whose values carry a batch axis: values (K + 1, 2) -> two runs; float32
    lam, _, _, w1, w2 = setup()
    eps = schedules.piecewise_constant([20.0], jnp.asarray([[2.0, 0.0], [0.5, 3.0]]))
    kw = dict(alpha=0.1, n=2, epochs=60, save_every=20)
    m = dynamics.matrix_gd(lam, w1, w2, eps=eps, **kw)
    assert m.mapping.shape == (2, 4, 4) and m.mapping.dtype == jnp.float32
    for b in range(2):
        one_eps = schedules.piecewise_constant([20.0], eps.values[:, b])
        one = dynamics.matrix_gd(lam, w1, w2, eps=one_eps, **kw)
        # the same float32 operations batched or not: measured 0; bound 1e-6 (fusion-order rounding)
        np.testing.assert_allclose(m.mapping[b], one.mapping, rtol=0, atol=1e-6)


@pytest.mark.slow  # ~7 s on the loaded 2-core CPU
def test_matrix_gd_one_piece_is_the_constant(x64):
    lam, _, _, w1, w2 = setup()
    kw = dict(gamma=0.01, alpha=0.1, n=2, epochs=50, save_every=10)
    a = dynamics.matrix_gd(lam, w1, w2, eps=schedules.piecewise_constant([], [2.0]), **kw)
    b = dynamics.matrix_gd(lam, w1, w2, eps=2.0, **kw)
    for x, y in zip(a, b, strict=True):
        # one core: a schedule and a constant differ in the lookup only; measured bit-identical,
        # bound 1e-14 (XLA may fuse a constant's products differently)
        np.testing.assert_allclose(x, y, rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("kwargs, match", [
    # a (D, D) schedule whose second piece is not symmetric: named like a constant term
    (dict(eps=schedules.PiecewiseConstant(
        jnp.asarray([10.0]), jnp.asarray(np.stack([np.eye(4), np.triu(np.ones((4, 4)))]))),
          eps_dims=2), "must be symmetric"),
    (dict(eps=schedules.piecewise_constant([10.0], [1.0, 2.0]), eps_dims=2), "eps"),  # not (D, D)
    (dict(gamma=schedules.function(lambda t: -1.0 + 0 * t)), "gamma schedule values must lie in"),
])
def test_matrix_schedule_bad_input(kwargs, match):
    w1, w2 = np.full((4, 4), 0.1), np.full((4, 4), 0.1)  # refused before anything compiles
    with pytest.raises(ValueError, match=match):
        dynamics.matrix_gd(np.asarray(LAM), w1, w2, alpha=0.1, n=2, epochs=10, **kwargs)


def test_simulate_matrix_in_pieces_follows_the_schedules_of_the_whole_run():
    """Each piece of a long run sees the schedules from its own start (schedules.shift): the same
    recursion as one matrix_gd call, bit for bit (float64)."""
    with jax.enable_x64(True):
        lam = jnp.array([3.0, 1.0, 0.3])
        w1, w2 = dynamics.random_init(3, 2, init_scale=0.2, key=jax.random.key(0), dtype=jnp.float64)
        eps = schedules.piecewise_constant([70.0, 130.0], jnp.array([0.5, 3.0, 1.0]))
        gamma = schedules.piecewise_constant([90.0], jnp.array([0.0, 0.02]))
        alpha = schedules.piecewise_constant([50.0], jnp.array([0.1, 0.2]))  # a learning-rate schedule too
        seen = []
        a = dynamics.simulate_matrix(lam, w1, w2, eps=eps, gamma=gamma, alpha=alpha, n=1, epochs=200,
                                     save_every=20, chunk_work=6 * 40, progress=lambda d, t: seen.append(d))
        b = dynamics.matrix_gd(lam, w1, w2, eps=eps, gamma=gamma, alpha=alpha, n=1, epochs=200, save_every=20)
    assert seen == [40, 80, 120, 160, 200]  # 3 x 2 weights x 40 epochs = 240 per piece
    np.testing.assert_array_equal(a.mapping, b.mapping)
    np.testing.assert_array_equal(a.loss, b.loss)


def _coupled_pieces(d=4):
    """Two symmetric PSD (D, D) corruption terms (a masking-like term and a correlated one)."""
    a = np.random.default_rng(3).normal(size=(d, d))
    c1 = 0.5 * np.eye(d) + 0.1 * np.ones((d, d))
    c2 = a @ a.T / d
    return np.stack([c1, c2, 0.2 * c1])


@pytest.mark.slow  # ~9 s on the loaded 2-core CPU (four compilations)
def test_matrix_gd_scheduled_coupled_term_equals_chained_constant_runs(x64):
    """A (D, D) corruption term that changes at epochs 30 and 60 (eps_dims=2): the same as three
    constant-term runs, each started from the weights the previous one ended with."""
    lam = jnp.asarray(LAM)
    w1, w2 = dynamics.random_init(4, 3, init_scale=0.3, key=jax.random.key(2), dtype=jnp.float64)
    c = _coupled_pieces()
    sched = schedules.piecewise_constant([30.0, 60.0], jnp.asarray(c), matrix=True)
    kw = dict(alpha=0.05, n=2, gamma=0.01, eps_dims=2)
    m = dynamics.matrix_gd(lam, w1, w2, eps=sched, epochs=90, save_every=30, **kw)
    a, b = w1, w2
    for i in range(3):
        piece = dynamics.matrix_gd(lam, a, b, eps=jnp.asarray(c[i]), epochs=30, save_every=30, **kw)
        a, b = piece.w1, piece.w2  # the final weights start the next piece
        # the same update in the same order: measured 0 to 1e-16; bound 1e-13 (float64 rounding)
        np.testing.assert_allclose(m.mapping[i + 1], piece.mapping[-1], rtol=0, atol=1e-13)
    np.testing.assert_allclose(m.w1, a, rtol=0, atol=1e-13)


def test_matrix_scheduled_coupled_term_stability_is_checked_per_piece(x64):
    """The first piece is harmless, the second makes the step too large: the check sees it."""
    from daedyn.dynamics import UnstableStepWarning

    lam = jnp.asarray([1.0, 0.5, 0.2, 0.1])
    w1, w2 = np.full((3, 4), 0.1), np.full((4, 3), 0.1)
    big = 400.0 * np.eye(4) + 50.0 * np.ones((4, 4))
    sched = schedules.piecewise_constant([5.0], jnp.asarray(np.stack([0.1 * np.eye(4), big])), matrix=True)
    with pytest.warns(UnstableStepWarning):
        dynamics.matrix_gd(lam, w1, w2, eps=sched, eps_dims=2, alpha=0.1, n=1, epochs=10, save_every=10)


@pytest.mark.slow  # ~8 s on the loaded 2-core CPU
def test_matrix_flow_scheduled_coupled_term_equals_chained_constant_flows(x64):
    """The RK4 flow with a (D, D) term that jumps at t = 20 (a save time): the same as two constant
    flows, the second started where the first ended."""
    lam = jnp.asarray(LAM)
    w1, w2 = dynamics.random_init(4, 3, init_scale=0.3, key=jax.random.key(4), dtype=jnp.float64)
    c = _coupled_pieces()[:2]
    sched = schedules.piecewise_constant([20.0], jnp.asarray(c), matrix=True)
    kw = dict(tau=10.0, n=2, dt=0.5, eps_dims=2)
    # equal save intervals: the same RK4 step grid (h = 0.5) in the scheduled and the chained runs
    m = dynamics.matrix_flow(jnp.array([0.0, 20.0, 40.0]), lam, w1, w2, eps=sched, **kw)
    a = dynamics.matrix_flow(jnp.array([0.0, 20.0]), lam, w1, w2, eps=jnp.asarray(c[0]), **kw)
    b = dynamics.matrix_flow(jnp.array([0.0, 20.0]), lam, a.w1, a.w2, eps=jnp.asarray(c[1]), **kw)
    # identical RK4 steps (the stages of a step never straddle the jump): measured ~1e-16; bound 1e-12
    np.testing.assert_allclose(m.mapping[1], a.mapping[-1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.mapping[2], b.mapping[-1], rtol=0, atol=1e-12)
