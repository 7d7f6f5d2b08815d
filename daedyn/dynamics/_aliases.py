"""The old deep full-matrix names as thin aliases of the one engine (private; removed after the CLI
migrates: daedyn/cli/_simulate_deep.py still calls them).

Each is a one-line spelling of the new API (docs/migration.md): the factors as positional arguments
of :func:`~daedyn.dynamics.matrix_gd` / :func:`~daedyn.dynamics.matrix_flow` /
:func:`~daedyn.dynamics.simulate_matrix`, the depth of the inits from the widths, and the
per-direction deep simulation as :func:`~daedyn.dynamics.simulate_scalar` with ``depth=L``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from daedyn._checks import concrete
from daedyn.dynamics._deep import DeepScalarTrajectory
from daedyn.dynamics._init import orthogonal_init, random_init
from daedyn.dynamics._matrix import MatrixTrajectory, matrix_flow, matrix_gd
from daedyn.dynamics._simulate import simulate_matrix, simulate_scalar

__all__ = ["DeepMatrixTrajectory", "deep_matrix_gd", "deep_matrix_flow", "deep_orthogonal_init",
           "deep_random_init", "simulate_deep_matrix", "simulate_deep_scalar"]


def _factors(ws) -> tuple:
    if not isinstance(ws, tuple | list) or len(ws) < 2:
        raise ValueError("ws must be a tuple of L >= 2 factor matrices (Wb_1, ..., Wb_L)")
    return tuple(ws)


DeepMatrixTrajectory = MatrixTrajectory  # removed after the CLI migrates


def deep_matrix_gd(eigvals, ws, **kw) -> MatrixTrajectory:  # removed after the CLI migrates
    """``matrix_gd(eigvals, *ws, **kw)``."""
    return matrix_gd(eigvals, *_factors(ws), **kw)


def deep_matrix_flow(ts, eigvals, ws, **kw) -> MatrixTrajectory:  # removed after the CLI migrates
    """``matrix_flow(ts, eigvals, *ws, **kw)``."""
    return matrix_flow(ts, eigvals, *_factors(ws), **kw)


def simulate_deep_matrix(eigvals, ws, **kw) -> MatrixTrajectory:  # removed after the CLI migrates
    """``simulate_matrix(eigvals, *ws, **kw)``."""
    return simulate_matrix(eigvals, *_factors(ws), **kw)


def deep_orthogonal_init(d, hidden, a, *, key=None, dtype=None):  # removed after the CLI migrates
    """``orthogonal_init(d, hidden, *a_l)``: ``a`` broadcasting to (..., L, k) is split into one value
    per factor; a scalar or (k,) value is every factor's."""
    a_arr = jnp.asarray(a)
    if a_arr.ndim < 2:
        return orthogonal_init(d, tuple(hidden), a, key=key, dtype=dtype)
    depth = len(hidden) + 1
    a_arr = jnp.broadcast_to(a_arr, a_arr.shape[:-2] + (depth,) + a_arr.shape[-1:])
    return orthogonal_init(d, tuple(hidden), *jnp.moveaxis(a_arr, -2, 0), key=key, dtype=dtype)


def deep_random_init(d, hidden, *, scale, key, dtype=None):  # removed after the CLI migrates
    """``random_init(d, hidden, scale=scale, key=key)`` with a tuple of widths."""
    return random_init(d, tuple(hidden), scale=scale, key=key, dtype=dtype)


def simulate_deep_scalar(lam, eps, factors, **kw) -> DeepScalarTrajectory:  # removed after the CLI migrates
    """``simulate_scalar(lam, eps, a_1, a_L, depth=L, **kw)`` for starts whose first L - 1 factors are
    equal (what the CLI passes), returned with the old ``factors`` field (*batch, L, T)."""
    depth = int(np.shape(factors)[-1])
    a = jnp.asarray(factors)
    c = concrete(factors)
    if depth < 2 or (c is not None and not np.all(c[..., :-1] == c[..., :1])):
        raise ValueError("factors: simulate_scalar(depth=L) starts the first L - 1 factors at one value "
                         "(w1) and the last at w2; for any other start use dynamics.deep_scalar_gd")
    tr = simulate_scalar(lam, eps, a[..., 0], a[..., -1], depth=depth, **kw)
    w1, w2 = jnp.asarray(tr.w1), jnp.asarray(tr.w2)
    stacked = jnp.stack([w1] * (depth - 1) + [w2], axis=-2)
    return DeepScalarTrajectory(tr.t, stacked, tr.w, tr.weight_norm, tr.loss)
