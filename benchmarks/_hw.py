"""Hardware limits measured in the same process as the benchmarks that quote them.

- write bandwidth: a kernel that only writes (fill with a traced scalar), bytes written / time;
- copy bandwidth: y = x + 1, counting bytes read and written;
- matmul peak: a large square float32 matmul at the requested precision, 2 n^3 / time.
"""

from __future__ import annotations

import functools
import timeit

import jax
import jax.numpy as jnp


def best_time(fn, *args, repeat: int = 5) -> float:
    """Seconds of the fastest of ``repeat`` calls after one warm-up (compile) call."""
    jax.block_until_ready(fn(*args))
    return min(timeit.repeat(lambda: jax.block_until_ready(fn(*args)), number=1, repeat=repeat))


def device_description() -> str:
    d = jax.devices()[0]
    return f"{d.platform}:{getattr(d, 'device_kind', d.platform)} x{jax.device_count()}"


def _on_gpu() -> bool:
    return jax.devices()[0].platform in ("gpu", "cuda", "rocm")


@functools.cache
def write_bandwidth(n: int | None = None) -> float:
    """Bytes per second of a write-only float32 kernel of n elements."""
    n = n or (1 << 28 if _on_gpu() else 1 << 24)
    f = jax.jit(lambda s: jnp.full((n,), s, jnp.float32))
    return 4 * n / best_time(f, jnp.float32(1.5))


@functools.cache
def copy_bandwidth(n: int | None = None) -> float:
    """Bytes per second (read + write) of y = x + 1 over n float32 elements."""
    n = n or (1 << 28 if _on_gpu() else 1 << 24)
    x = jnp.ones((n,), jnp.float32)
    f = jax.jit(lambda x: x + 1.0)
    return 8 * n / best_time(f, x)


@functools.cache
def matmul_peak(precision: str | None = None, n: int | None = None) -> float:
    """FLOP/s of an n x n x n float32 matmul at ``precision`` (None = JAX default)."""
    n = n or (8192 if _on_gpu() else 1024)
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    f = jax.jit(lambda a, b: jnp.matmul(a, b, precision=precision))
    return 2 * n**3 / best_time(f, a, b)
