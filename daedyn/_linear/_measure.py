"""Choosing the gradient form by measurement: a one-time micro-benchmark per problem.

The flop count (4 D H^2 for "gram", 3 D^2 H for "square") does not decide which form is fastest:
the matmul shapes, transposes and the backend's kernels do (on the 2-core CPU, D 784 x H 256 x 8
settings, "gram_t" measured 1.02-1.09x faster than the "gram" form the count picks). So, for
problems large enough that it pays, :func:`fastest_form` times one step of every candidate form on
random data of the caller's shape, dtype, batch and precision, on the default device, and caches
the winner per (shape, depth, dtype, batch, precision, device) for the life of the process.

Determinism: every form computes the same gradient (tests: equal up to rounding), but a different
form rounds differently, and a measurement can pick differently on another machine or under load.
For bit-reproducible runs pass an explicit ``form=``, or set ``DAEDYN_MEASURE_FORMS=0`` to use the
flop count everywhere.
"""

from __future__ import annotations

import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from daedyn._linear._basis import matmul_fn

__all__ = ["fastest_form", "flop_form", "MEASURE_MIN_FLOPS", "measured_forms"]

# Below this many multiply-adds per step (all settings), a step takes microseconds: the flop rule
# is used and nothing is timed (a measurement costs ~3 compilations).
MEASURE_MIN_FLOPS = 2e8
_MAX_BATCH = 8  # settings timed at once: enough to fill the device's matmul units on a CPU


def flop_form(d: int, h: int) -> str:
    """The cheaper form by matmul multiply-adds: 4 D H^2 (gram) vs 3 D^2 H (square)."""
    return "gram" if 4 * h <= 3 * d else "square"


def _enabled() -> bool:
    return os.environ.get("DAEDYN_MEASURE_FORMS", "1").strip().lower() not in ("0", "false", "no", "off")


def fastest_form(rhs, d: int, h: int, *, depth: int = 2, dtype=jnp.float32, batch: int = 1,
                 precision=None, transposed_ok: bool = False) -> str:
    """The fastest gradient form for this problem: measured once per process when a step is large
    (>= ``MEASURE_MIN_FLOPS`` multiply-adds over the batch), else the flop count.

    Args:
      rhs: ``daedyn._linear.rhs`` (the forms themselves; passed in to keep imports one-way).
      d, h: inputs D and hidden units H. depth: factors L ("gram_t" needs L = 2).
      dtype, precision: those of the run. batch: settings advanced together (vmapped).
      transposed_ok: whether the caller keeps the state (W_1, W_2^T) for "gram_t".
    """
    forms = ("gram", "square") + (("gram_t",) if transposed_ok and depth == 2 else ())
    flops = min(4 * d * h * h, 3 * d * d * h) * max(int(batch), 1) * (depth - 1)
    if not _enabled() or flops < MEASURE_MIN_FLOPS:
        return flop_form(d, h)
    dev = jax.devices()[0]
    key = (int(d), int(h), int(depth), jnp.dtype(dtype).name, min(max(int(batch), 1), _MAX_BATCH),
           None if precision is None else str(precision), dev.platform, getattr(dev, "device_kind", ""),
           forms)
    return _measure(rhs, *key)[0]


def measured_forms() -> dict:
    """Every measurement of this process: key -> (winner, {form: seconds per step})."""
    return dict(_CACHE)


_CACHE: dict = {}


def _measure(rhs, d, h, depth, dtype, batch, precision, platform, kind, forms):
    key = (d, h, depth, dtype, batch, precision, platform, kind, forms)
    if key in _CACHE:
        return _CACHE[key]
    mm = matmul_fn(precision)
    rng = np.random.default_rng(0)
    lam = jnp.asarray(np.geomspace(1e3, 1.0, d), dtype)
    ws = [jnp.asarray(rng.standard_normal((batch, h, d)) * 1e-2, dtype)]
    ws += [jnp.asarray(rng.standard_normal((batch, h, h)) * 1e-2, dtype) for _ in range(depth - 2)]
    ws += [jnp.asarray(rng.standard_normal((batch, d, h)) * 1e-2, dtype)]
    eps = jnp.asarray(0.5, dtype)
    seconds = {}
    for form in forms:
        state = (ws[0], jnp.swapaxes(ws[1], -1, -2)) if form == "gram_t" else tuple(ws)
        step = jax.jit(jax.vmap(functools.partial(rhs, sigma=lam, c=eps, ng=0.0, mm=mm, form=form)))
        jax.block_until_ready(step(state))  # compile
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            jax.block_until_ready(step(state))
            best = min(best, time.perf_counter() - t0)
        seconds[form] = best
    winner = min(forms, key=lambda f: (seconds[f], forms.index(f)))
    _CACHE[key] = (winner, seconds)
    return _CACHE[key]

