"""The fused scalar-GD kernel equals the lax.scan path and plain NumPy loops: the depth-2 updates, and
gradient descent on all L factors of a deep direction (each its own array) under piecewise-constant
rate tables."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from daedyn._kernels import scalar_gd_fused

B, N_SAVES, EVERY = 300, 7, 3


def _inputs(dtype):
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    lam = jax.random.uniform(k1, (B,), dtype, 0.1, 2.0)
    eps = jax.random.uniform(k2, (B,), dtype, 0.0, 3.0)
    w1 = jax.random.uniform(k3, (B,), dtype, -2.0, 2.0)
    # the kernel takes the quadratic-form coefficients k = lam, m = lam + eps of Gaussian noise
    return lam, lam + eps, jnp.full((B,), 0.01, dtype), jnp.full((B,), 0.05, dtype), w1, -0.5 * w1 + 0.1


def _numpy_loop(lam, m, ng, it, w1, w2):
    lam, m, ng, it, w1, w2 = (np.asarray(a, np.float64) for a in (lam, m, ng, it, w1, w2))
    eps = m - lam
    saved = []
    for epoch in range(1, N_SAVES * EVERY + 1):
        g = lam - (lam + eps) * (w1 * w2)
        w1, w2 = w1 + it * (w2 * g - ng * w1), w2 + it * (w1 * g - ng * w2)
        if epoch % EVERY == 0:
            saved.append((w1 * w2, w1 * w1 + w2 * w2))
    return np.array([s[0] for s in saved]), np.array([s[1] for s in saved])


@pytest.mark.parametrize("backend", ["jnp", "interpret"])
def test_fused_gd_matches_numpy_loop_float64(backend, x64):
    args = _inputs(jnp.float64)
    w, weight_norm = scalar_gd_fused(*args, n_saves=N_SAVES, save_every=EVERY,
                                     # 300 is not a multiple of 128: padding path
                                     quantities=("w", "weight_norm"), backend=backend, block=128)
    ref_w, ref_n = _numpy_loop(*args)
    # Same operations in the same order in float64: differences are rounding only (~1e-16 x 21 steps).
    np.testing.assert_allclose(w, ref_w, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(weight_norm, ref_n, rtol=1e-12, atol=1e-14)


def test_fused_gd_float32_interpret_equals_scan():
    args = _inputs(jnp.float32)
    a = scalar_gd_fused(*args, n_saves=N_SAVES, save_every=EVERY, quantities=("w1", "w2"), backend="jnp")
    b = scalar_gd_fused(*args, n_saves=N_SAVES, save_every=EVERY, quantities=("w1", "w2"),
                        backend="interpret", block=64)
    for x, y in zip(a, b):
        assert x.dtype == jnp.float32 and x.shape == (N_SAVES, B)
        # Identical float32 operation sequence; allow a few ulps for fused multiply-adds.
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_fused_gd_batch_major_layout_is_the_transpose():
    args = _inputs(jnp.float32)
    a = scalar_gd_fused(*args, n_saves=N_SAVES, save_every=EVERY, backend="interpret", block=64)[0]
    b = scalar_gd_fused(*args, n_saves=N_SAVES, save_every=EVERY, backend="interpret", block=64,
                        time_major=False)[0]
    c = scalar_gd_fused(*args, n_saves=N_SAVES, save_every=EVERY, backend="jnp", time_major=False)[0]
    assert b.shape == (B, N_SAVES)
    np.testing.assert_array_equal(a.T, b)  # same kernel, only the store layout differs: bitwise equal
    np.testing.assert_allclose(b, c, rtol=1e-6, atol=1e-7)  # kernel vs scan: a few float32 ulps


def test_fused_gd_rejects_unknown_quantity():
    with pytest.raises(ValueError, match="quantities"):
        scalar_gd_fused(*_inputs(jnp.float32), n_saves=2, quantities=("loss",))


@pytest.mark.gpu
def test_pallas_gpu_equals_cpu_scan():
    args = _inputs(jnp.float32)
    gpu = scalar_gd_fused(*args, n_saves=50, save_every=2, quantities=("w", "weight_norm"), backend="pallas",
                          time_major=False)
    cpu_args = [jax.device_put(a, jax.devices("cpu")[0]) for a in args]
    with jax.default_device(jax.devices("cpu")[0]):
        cpu = scalar_gd_fused(*cpu_args, n_saves=50, save_every=2, quantities=("w", "weight_norm"),
                              backend="jnp",
                              time_major=False)
    for g, c in zip(gpu, cpu):
        # float32 over 100 steps; GPU may contract multiply-adds into FMAs: relative 1e-5.
        np.testing.assert_allclose(np.asarray(g), np.asarray(c), rtol=1e-5, atol=1e-6)


def _numpy_factors(k, m, ng, it, w1, w2, depth, epochs, bounds=None):
    """Oracle: GD on the L factors of every direction as separate arrays (the first L - 1 start at w1,
    the last at w2); loss per direction (1/2)(-2 k u + m u^2) + (n gamma / 2) sum a_l^2 with rates
    looked up per epoch in the tables (row = #{bounds <= epoch})."""
    a = [np.asarray(w1, np.float64).copy() for _ in range(depth - 1)] + [np.asarray(w2, np.float64).copy()]
    tabs = [np.asarray(x, np.float64) for x in (k, m, ng, it)]
    us = []
    for epoch in range(epochs):
        row = 0 if bounds is None else int(np.sum(np.asarray(bounds) <= epoch))
        kk, mm, gg, tt = (x[row] if x.ndim == 2 else x for x in tabs)
        u = np.prod(a, axis=0)
        grads = [(mm * u - kk) * np.prod([a[j] for j in range(depth) if j != l], axis=0) + gg * a[l]
                 for l in range(depth)]
        a = [a[l] - tt * grads[l] for l in range(depth)]
        us.append(np.prod(a, axis=0))
    return np.array(us), a


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("backend", ["jnp", "interpret"])
def test_fused_gd_deep_with_tables_matches_factor_loop_float64(depth, backend, x64):
    lam, m, ng, it, w1, w2 = _inputs(jnp.float64)
    w1 = jnp.abs(w1) * 0.3 + 0.05  # deep directions from positive, moderate starts (stay bounded)
    w2 = w1 * 1.1
    bounds = jnp.array([4.0, 4.0, 9.5])  # a repeated boundary (empty piece) and a non-integer one
    scale = jnp.array([1.0, 3.0, 0.5, 2.0])[:, None]
    m_tab = m[None] * scale  # (4, B): the input moment changes per piece (an eps schedule)
    it_tab = it[None] * jnp.array([1.0, 0.5, 2.0, 1.0])[:, None]  # and the learning rate
    u, wn, a1, a2 = scalar_gd_fused(lam, m_tab, ng, it_tab, w1, w2, n_saves=N_SAVES, save_every=EVERY,
                                    quantities=("w", "weight_norm", "w1", "w2"), backend=backend, block=128,
                                    depth=depth, boundaries=bounds)
    ref_u, ref_a = _numpy_factors(lam, m_tab, ng, it_tab, w1, w2, depth, N_SAVES * EVERY, bounds)
    # float64, same arithmetic up to order: rounding only (21 steps)
    np.testing.assert_allclose(u, ref_u[EVERY - 1::EVERY], rtol=1e-11, atol=1e-13)
    # every one of the L - 1 equal factors
    np.testing.assert_allclose(a1[-1], ref_a[0], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(a1[-1], ref_a[depth - 2], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(a2[-1], ref_a[-1], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(wn[-1], sum(x**2 for x in ref_a), rtol=1e-11, atol=1e-13)


def test_fused_gd_tables_interpret_equals_scan_float32():
    lam, m, ng, it, w1, w2 = _inputs(jnp.float32)
    bounds = jnp.array([2.0, 7.0])
    m_tab = jnp.stack([m, 2 * m, 0.5 * m])
    kw = dict(n_saves=N_SAVES, save_every=EVERY, quantities=("w",), depth=3, boundaries=bounds)
    a = scalar_gd_fused(lam, m_tab, ng, it, w1, w2, backend="jnp", **kw)[0]
    b = scalar_gd_fused(lam, m_tab, ng, it, w1, w2, backend="interpret", block=64, **kw)[0]
    # identical float32 operations up to FMA contraction
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_fused_gd_tables_need_boundaries_and_rows():
    lam, m, ng, it, w1, w2 = _inputs(jnp.float32)
    with pytest.raises(ValueError, match="boundaries"):
        scalar_gd_fused(lam, jnp.stack([m, m]), ng, it, w1, w2, n_saves=2)
    with pytest.raises(ValueError, match="rows"):
        scalar_gd_fused(lam, jnp.stack([m, m]), ng, it, w1, w2, n_saves=2, boundaries=jnp.array([1.0, 2.0]))
