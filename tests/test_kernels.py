"""The fused scalar-GD kernel equals the lax.scan path and a plain NumPy loop of the same updates."""

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
    return lam, eps, jnp.full((B,), 0.01, dtype), jnp.full((B,), 0.05, dtype), w1, -0.5 * w1 + 0.1


def _numpy_loop(lam, eps, ng, it, w1, w2):
    lam, eps, ng, it, w1, w2 = (np.asarray(a, np.float64) for a in (lam, eps, ng, it, w1, w2))
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
