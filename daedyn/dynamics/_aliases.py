"""Old deep full-matrix names as thin aliases of the one engine (private; docs/migration.md).

The CLI has migrated; these three stay until their last callers move (tests/test_tune_depth.py,
tests/test_train_depth.py, benchmarks/deep_matrix_flow.py). Each is a one-line spelling of the new
API: the factors as positional arguments of :func:`~daedyn.dynamics.matrix_gd`, the depth of the
inits from the widths.
"""

from __future__ import annotations

import jax.numpy as jnp

from daedyn.dynamics._init import orthogonal_init, random_init
from daedyn.dynamics._matrix import MatrixTrajectory, matrix_gd

__all__ = ["deep_matrix_gd", "deep_orthogonal_init", "deep_random_init"]


def deep_matrix_gd(eigvals, ws, **kw) -> MatrixTrajectory:  # removed after its callers migrate
    """``matrix_gd(eigvals, *ws, **kw)``."""
    if not isinstance(ws, tuple | list) or len(ws) < 2:
        raise ValueError("ws must be a tuple of L >= 2 factor matrices (Wb_1, ..., Wb_L)")
    return matrix_gd(eigvals, *ws, **kw)


def deep_orthogonal_init(d, hidden, a, *, key=None, dtype=None):  # removed after its callers migrate
    """``orthogonal_init(d, hidden, *a_l)``: ``a`` broadcasting to (..., L, k) is split into one value
    per factor; a scalar or (k,) value is every factor's."""
    a_arr = jnp.asarray(a)
    if a_arr.ndim < 2:
        return orthogonal_init(d, tuple(hidden), a, key=key, dtype=dtype)
    depth = len(hidden) + 1
    a_arr = jnp.broadcast_to(a_arr, a_arr.shape[:-2] + (depth,) + a_arr.shape[-1:])
    return orthogonal_init(d, tuple(hidden), *jnp.moveaxis(a_arr, -2, 0), key=key, dtype=dtype)


def deep_random_init(d, hidden, *, scale, key, dtype=None):  # removed after its callers migrate
    """``random_init(d, hidden, scale=scale, key=key)`` with a tuple of widths."""
    return random_init(d, tuple(hidden), scale=scale, key=key, dtype=dtype)
