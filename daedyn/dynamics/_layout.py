"""Batch-major results without a transpose: a device layout instead of a data movement.

The GD recursion writes one row per saved epoch, so its results are time-major, (T, *batch) in
memory. :func:`daedyn.dynamics.scalar_gd` returns (*batch, T) by default, and moving the time axis
last used to be a transpose: a second pass over every saved array that cost the 2-core CPU more
than the recursion itself (10^5 x 10^3, w saved every epoch: 0.48 of the raw kernel's rate with the
transpose, 0.87 without).

JAX arrays carry a device layout (``jax.Array.format``): the order in which their dimensions lie in
memory. :func:`batch_major` gives each time-major result the logical shape (*batch, T) with the
time axis still outermost in memory: a jitted ``moveaxis`` whose output layout is the input's, with
the input donated, compiles to a bitcast of the same buffer (no copy, no new memory). The values,
shapes and indexing are those of the transposed arrays (a transpose never changes a value); jnp
operations, ``jit``, ``vmap``, ``numpy.asarray`` and pickling accept such arrays, and compiled
functions read them in their own layout.

Only concrete results on one device get this layout: under a trace (``jit``, ``grad``, ``vmap``)
the caller's program decides the layouts anyway, and arrays sharded over several devices keep the
plain transpose.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental.layout import Format, Layout
from jax.sharding import SingleDeviceSharding

__all__ = ["eligible", "batch_major"]


def eligible(*args) -> bool:
    """Whether results computed from ``args`` can be relaid out: every argument a concrete JAX
    array (not a tracer) on one and the same single device."""
    devices = set()
    for a in args:
        if isinstance(a, jax.core.Tracer) or not isinstance(a, jax.Array):
            return False
        sharding = a.sharding
        if not isinstance(sharding, SingleDeviceSharding):
            return False
        devices |= sharding.device_set
    return len(devices) == 1


@functools.cache
def _relayout(ndim: int, sharding: SingleDeviceSharding):
    """(T, *batch) -> (*batch, T) with T still outermost in memory, donating the input: a bitcast."""
    order = (ndim - 1, *range(ndim - 1))  # major to minor: the time axis (last, logically) first
    out = Format(Layout(major_to_minor=order), sharding)
    return jax.jit(lambda x: jnp.moveaxis(x, 0, -1), donate_argnums=0, out_shardings=out)


def batch_major(x, keep=()):
    """``moveaxis(x, 0, -1)`` of a concrete single-device time-major array ``x`` (consumed: it is
    donated), without moving data; ``None`` and arrays of fewer than 2 dimensions pass through.
    An ``x`` that is one of the arrays in ``keep`` (a result that is an input itself) is not
    donated: it gets the plain transpose."""
    if x is None or x.ndim < 2:
        return x
    if any(x is k for k in keep):
        return jnp.moveaxis(x, 0, -1)
    return _relayout(x.ndim, x.sharding)(x)
