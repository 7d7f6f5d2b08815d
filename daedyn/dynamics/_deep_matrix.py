"""Full-matrix dynamics of deep linear DAEs (L >= 2 factor matrices) in the eigenbasis of Sigma.

The state is a tuple ``ws = (Wb_1 (H_1 x D), W_2 (H_2 x H_1), ..., Wb_L (D x H_{L-1}))`` with
``Wb_1 = W_1 V`` and ``Wb_L = V^T W_L`` (inner factors are unchanged by the rotation); the expected loss
(authors' scaling) and its closed-form gradient for any depth come from :mod:`daedyn._linear`, so a
step needs the spectrum only. Batched (vmap) over the leading axes of ``eigvals``, of every factor and
of eps, gamma, alpha / tau and n.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn import _linear as core
from daedyn import models
from daedyn._checks import check_finite, check_fit, check_int, check_precision, check_range, float_dtype
from daedyn.dynamics._integrate import fixed_step_loop, gd_loop, step_grid
from daedyn.dynamics._matrix import _flat
from daedyn.dynamics._scalar import warn_nonfinite

__all__ = [
    "DeepMatrixTrajectory",
    "deep_matrix_gd",
    "deep_matrix_flow",
    "deep_orthogonal_init",
    "deep_random_init",
    "check_widths",
]


class DeepMatrixTrajectory(NamedTuple):
    """Observables of a batch of deep full-matrix runs at the save times, plus the final factors.

    Attributes:
      t: (T,) save times. mapping: (*batch, T, D) diag(Wb_L ... Wb_1), the per-direction mapping.
      singular_values: (*batch, T, min(H_{L-1}, D)) of the end-to-end map, descending.
      weight_norm: (*batch, T) sum_l |W_l|_F^2. loss: (*batch, T) expected loss with weight decay.
      ws: tuple of the final factors, each (*batch, rows, cols), in the eigenbasis.
    """

    t: Array
    mapping: Array
    singular_values: Array
    weight_norm: Array
    loss: Array
    ws: tuple


def check_widths(d: int, hidden: Sequence[int]) -> tuple[int, ...]:
    """``hidden`` as a tuple of ints >= 1 (one per hidden layer, depth = len(hidden) + 1 >= 2): the
    models' own check (:func:`daedyn.models.widths`), and ``d`` >= 1."""
    check_int("d", d, 1)
    return models.widths(hidden)


def _check_factors(d: int, ws) -> tuple[int, ...]:
    if not isinstance(ws, tuple | list) or len(ws) < 2:
        raise ValueError("ws must be a tuple of L >= 2 factor matrices (Wb_1, ..., Wb_L)")
    prev = d
    for i, w in enumerate(ws):
        shape = np.shape(w)
        if len(shape) < 2 or shape[-1] != prev:
            raise ValueError(
                f"ws[{i}] must have shape (..., H_{i + 1}, {prev}) (its input width is the "
                f"previous output width); got {shape}"
            )
        check_finite(f"ws[{i}]", w)
        prev = shape[-2]
    if prev != d:
        raise ValueError(f"the last factor ws[{len(ws) - 1}] must map back to D = {d} rows; got {prev}")
    return tuple(np.shape(w)[-2] for w in ws[:-1])


def _prepare(eigvals, ws, eps, gamma, n, precision, **rate):
    precision = check_precision(precision)
    if np.ndim(eigvals) < 1 or np.shape(eigvals)[-1] < 1:
        raise ValueError("eigvals must have shape (..., D) with D >= 1")
    check_range("eigvals", eigvals, 0.0)
    d = int(np.shape(eigvals)[-1])
    _check_factors(d, ws)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    check_range("n", n, 0.0, lo_open=True)
    for name, value in rate.items():
        check_range(name, value, 0.0, lo_open=True)
    shapes = [np.shape(eigvals)[:-1]] + [np.shape(w)[:-2] for w in ws]
    shapes += [np.shape(x) for x in (eps, gamma, n, *rate.values())]
    try:
        bshape = np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"the batch axes of eigvals, ws and the hyperparameters do not broadcast: {shapes}"
        ) from None
    dtype = float_dtype(eigvals, *ws, eps, gamma, *rate.values())
    check_fit(dtype, eigvals=eigvals, eps=eps, gamma=gamma, n=n, **rate)
    flat = dict(
        lam=_flat(jnp.asarray(eigvals, dtype), bshape, 1),
        ws=tuple(_flat(jnp.asarray(w, dtype), bshape, 2) for w in ws),
        hyper=[_flat(jnp.asarray(x, dtype), bshape, 0) for x in (eps, gamma, n, *rate.values())],
    )
    return precision, bshape, flat


def _pack(t, obs, ws, bshape):
    un = lambda a: a.reshape(tuple(bshape) + a.shape[1:])
    mapping, svals, norm, loss = (un(o) for o in obs)
    return DeepMatrixTrajectory(t, mapping, svals, norm, loss, tuple(un(w) for w in ws))


@functools.partial(jax.jit, static_argnames=("n_saves", "save_every", "precision", "bshape"))
def _gd_core(lam, ws, eps, gamma, n, alpha, *, n_saves, save_every, precision, bshape):
    mm = core.matmul_fn(precision)

    def one(lam, ws, eps, gamma, n, alpha):
        step = lambda y: core.gd_step(y, lam, eps, n=n, gamma=gamma, alpha=alpha, mm=mm)
        observe = lambda y: core.observe(y, lam, eps, n=n, gamma=gamma, mm=mm)
        return gd_loop(step, ws, observe, n_saves=n_saves, save_every=save_every)

    y, obs = jax.vmap(one)(lam, ws, eps, gamma, n, alpha)
    t = jnp.arange(n_saves + 1, dtype=lam.dtype) * save_every
    return _pack(t, obs, y, bshape)


def deep_matrix_gd(
    eigvals: ArrayLike,
    ws: Sequence[ArrayLike],
    *,
    eps: ArrayLike = 0.0,
    gamma: ArrayLike = 0.0,
    alpha: ArrayLike,
    n: ArrayLike,
    epochs: int,
    save_every: int = 1,
    precision=None,
) -> DeepMatrixTrajectory:
    """Full-batch gradient descent of L >= 2 factor matrices on the expected loss, in the eigenbasis.

    With two factors it is :func:`daedyn.dynamics.matrix_gd` (form "gram"). From
    :func:`deep_orthogonal_init` every direction follows :func:`daedyn.dynamics.deep_scalar_gd`.

    Args:
      eigvals: (*batch, D) eigenvalues of Sigma (a sum), >= 0.
      ws: the factors (Wb_1 (*batch, H_1, D), ..., Wb_L (*batch, D, H_{L-1})).
      eps, gamma, alpha, n: as :func:`daedyn.dynamics.matrix_gd` (any batch shape).
      epochs, save_every: steps and save spacing. precision: matmul precision.
    Example:
      >>> ws = deep_orthogonal_init(3, (2, 2), jnp.array([0.3, 0.3]))
      >>> traj = deep_matrix_gd(jnp.array([3.0, 2.0, 1.0]), ws, eps=1.0, alpha=0.1, n=1, epochs=600,
      ...                       save_every=300)
      >>> np.round(np.asarray(traj.mapping[-1], np.float64), 3).tolist()  # lam / (lam + eps), 2 learned
      [0.75, 0.667, 0.0]
    """
    epochs = check_int("epochs", epochs, 0)
    save_every = check_int("save_every", save_every, 1)
    if epochs % save_every:
        raise ValueError(f"epochs ({epochs}) must be a multiple of save_every ({save_every})")
    precision, bshape, flat = _prepare(eigvals, ws, eps, gamma, n, precision, alpha=alpha)
    traj = _gd_core(
        flat["lam"],
        flat["ws"],
        *flat["hyper"],
        n_saves=epochs // save_every,
        save_every=save_every,
        precision=precision,
        bshape=tuple(bshape),
    )
    return warn_nonfinite("deep_matrix_gd", traj)


@functools.partial(jax.jit, static_argnames=("m_static", "precision", "bshape"))
def _flow_core(ts, hs, ms, lam, ws, eps, gamma, n, tau, *, m_static, precision, bshape):
    mm = core.matmul_fn(precision)

    def one(lam, ws, eps, gamma, n, tau):
        f = lambda y: tuple(d / tau for d in core.rhs(y, lam, eps, ng=n * gamma, mm=mm))
        observe = lambda y: core.observe(y, lam, eps, n=n, gamma=gamma, mm=mm)
        return fixed_step_loop(f, ws, observe, hs, ms, m_static)

    y, obs = jax.vmap(one)(lam, ws, eps, gamma, n, tau)
    return _pack(ts, obs, y, bshape)


def deep_matrix_flow(
    ts: ArrayLike,
    eigvals: ArrayLike,
    ws: Sequence[ArrayLike],
    *,
    eps: ArrayLike = 0.0,
    gamma: ArrayLike = 0.0,
    tau: ArrayLike,
    n: ArrayLike,
    dt: float,
    precision=None,
) -> DeepMatrixTrajectory:
    """The continuous gradient flow of the L factor matrices (fixed-step RK4 landing on the save times);
    arguments as :func:`deep_matrix_gd` with ``tau = n / alpha`` and the largest step ``dt``."""
    check_range("dt", dt, 0.0, lo_open=True)
    precision, bshape, flat = _prepare(eigvals, ws, eps, gamma, n, precision, tau=tau)
    ts, hs, ms, m_static = step_grid(ts, float(dt))
    dtype = flat["lam"].dtype
    traj = _flow_core(
        jnp.asarray(ts, dtype),
        jnp.asarray(hs, dtype),
        jnp.asarray(ms, jnp.int32),
        flat["lam"],
        flat["ws"],
        *flat["hyper"],
        m_static=m_static,
        precision=precision,
        bshape=tuple(bshape),
    )
    return warn_nonfinite("deep_matrix_flow", traj)


def _haar(key, h, dtype):
    q, r = jnp.linalg.qr(jr.normal(key, (h, h), dtype))
    return q * jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0).astype(dtype)[None, :]


def deep_orthogonal_init(
    d: int, hidden: Sequence[int], a: ArrayLike, *, key: Array | None = None, dtype=None
) -> tuple[Array, ...]:
    """The decoupled start of L = len(hidden) + 1 factors in the eigenbasis (section 3.2 generalised).

    Direction j < k = min(D, *hidden) gets the value ``a[l, j]`` in factor l: with orthogonal Q_l
    (Haar-random from ``key``, identity without), Wb_1 = Q_1 E diag(a_1), W_l = Q_l E diag(a_l) Q_{l-1}^T
    and Wb_L = E diag(a_L) Q_{L-1}^T (E: the identity in the top-left k x k corner), so the product is
    diag(prod_l a_l) and each direction follows the per-direction dynamics.

    Args:
      d: input size. hidden: hidden widths (H_1, ..., H_{L-1}).
      a: values broadcasting to (*batch, L, k): a scalar or (k,) vector is the balanced start (the same
        value in every factor); :func:`daedyn.dynamics.balanced_factors` gives per-direction values for
        a mapping w0 (its last axis is L: pass ``balanced_factors(w0, L).swapaxes(-1, -2)``).
      key: PRNG key for the rotations (None: identities).
    Returns:
      the tuple of L factors, each (*batch, rows, cols).
    """
    hidden = check_widths(d, hidden)
    check_finite("a", a)
    depth, k = len(hidden) + 1, min((d,) + hidden)
    dtype = dtype or float_dtype(a)
    a = jnp.asarray(a, dtype)
    a = a.reshape((1, 1)) if a.ndim == 0 else (a[None, :] if a.ndim == 1 else a)
    if a.shape[-2] not in (1, depth) or a.shape[-1] not in (1, k):
        raise ValueError(f"a must broadcast to (..., L={depth}, k={k}); got shape {a.shape}")
    a = jnp.broadcast_to(a, a.shape[:-2] + (depth, k))
    sizes = (d,) + hidden + (d,)
    qs = [None] * (depth - 1)
    if key is not None:
        qs = [_haar(kk, h, dtype) for kk, h in zip(jr.split(key, depth - 1), hidden, strict=True)]
    idx = jnp.arange(k)
    out = []
    for l in range(depth):
        rows, cols = sizes[l + 1], sizes[l]
        w = jnp.zeros(a.shape[:-2] + (rows, cols), dtype).at[..., idx, idx].set(a[..., l, :])
        if l < depth - 1 and qs[l] is not None:
            w = jnp.matmul(qs[l], w, precision="highest")
        if l > 0 and qs[l - 1] is not None:
            w = jnp.matmul(w, qs[l - 1].T, precision="highest")
        out.append(w)
    return tuple(out)


def deep_random_init(
    d: int, hidden: Sequence[int], *, scale: ArrayLike, key: Array, dtype=None
) -> tuple[Array, ...]:
    """Small Gaussian start: every factor with i.i.d. N(0, scale^2) entries (in the eigenbasis too, V
    being orthogonal). A batch of keys gives a batch of starts."""
    hidden = check_widths(d, hidden)
    check_range("scale", scale, 0.0)
    if key is None:
        raise ValueError("key is required (an explicit PRNG key)")
    dtype = dtype or float_dtype(scale)
    sizes = (d,) + hidden + (d,)
    keys = key if isinstance(key, jax.Array) else jnp.asarray(key)
    if not jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
        keys = jr.wrap_key_data(keys)

    def draw(k):
        ks = jr.split(k, len(sizes) - 1)
        return tuple(
            jnp.asarray(scale, dtype) * jr.normal(kk, (sizes[i + 1], sizes[i]), dtype)
            for i, kk in enumerate(ks)
        )

    out = jax.vmap(draw)(keys.reshape(-1))
    return tuple(w.reshape(keys.shape + w.shape[1:]) for w in out)
