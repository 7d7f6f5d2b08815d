"""Initial factors for the full-matrix dynamics at any depth, and rotations between the data's basis
and the eigenbasis of Sigma (the shared core's rotation, :mod:`daedyn._linear`).

A network of depth L has the factors (W_1 (H_1 x D), W_2 (H_2 x H_1), ..., W_L (D x H_{L-1})). Both
inits take the hidden widths as ``h``: an int (every hidden layer that wide; the depth from
``depth=``, or from the number of diagonal values of :func:`orthogonal_init`, else 2) or a sequence
of L - 1 widths (the depth is its length + 1). Both return the tuple of the L factors, so depth 2 is
``w1, w2 = orthogonal_init(d, h, d1, d2)`` as ever.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn import _linear as core
from daedyn import models
from daedyn._checks import check_finite, check_int, check_range, float_dtype, renamed

__all__ = ["orthogonal_init", "random_init", "to_eigenbasis", "from_eigenbasis"]


def _sizes(d, h, depth=None, values: int = 0) -> tuple[int, ...]:
    """(D, H_1, ..., H_{L-1}, D) from the input size, the widths and the depth (module docstring);
    ``values``: how many per-factor values the caller was given (1: one for every factor)."""
    for name, v in (("d", d),) + ((("h", h),) if not isinstance(h, list | tuple) else ()):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {v!r}")
    if depth is not None:
        depth = check_int("depth", depth, 2)
    if isinstance(h, list | tuple):
        hidden = models.widths(list(h))
        if depth is not None and depth != len(hidden) + 1:
            raise ValueError(f"depth={depth} contradicts h={list(h)} ({len(hidden)} hidden widths: depth "
                             f"{len(hidden) + 1}); give one of them")
    else:
        depth = depth if depth is not None else (values if values >= 2 else 2)
        hidden = (int(h),) * (depth - 1)
    if values >= 2 and values != len(hidden) + 1:
        raise ValueError(f"d1, d2, ...: give one diagonal for every factor ({len(hidden) + 1} for depth "
                         f"{len(hidden) + 1}) or one for all of them; got {values}")
    return (int(d),) + hidden + (int(d),)


def orthogonal_init(d: int, h: int | Sequence[int], *diagonals: ArrayLike, key: Array | None = None,
                    dtype=None, depth: int | None = None) -> tuple[Array, ...]:
    """The decoupling initialisation of section 3.2 at any depth, in the eigenbasis.

    Depth 2: Wb1 = R D1, Wb2 = D2 R^T with D1 (H x D) and D2 (D x H) 'diagonal' (entries d1, d2 on
    their first k = min(H, D) diagonal positions) and R an H x H orthogonal matrix (Haar-random from
    ``key``, or the identity when ``key`` is None). Then Wb2 Wb1 = D2 D1 is diagonal and each
    direction j < k follows the scalar dynamics (2)-(3) from (d1_j, d2_j); directions j >= k stay at
    0. In the data's basis this is W1 = R D1 V^T, W2 = V D2 R^T (:func:`from_eigenbasis`).

    Depth L: Wb_1 = Q_1 D_1, W_l = Q_l D_l Q_{l-1}^T, Wb_L = D_L Q_{L-1}^T with orthogonal Q_l
    (Haar-random from ``jr.split(key, L - 1)``, identities without a key) and D_l diagonal with d_l
    on its first k = min(D, H_1, ..., H_{L-1}) positions: the product is diag(d_1 ... d_L) and every
    direction follows :func:`scalar_gd` (``depth=L``; with all factors equal, or the first L - 1).

    Args:
      d: input size (>= 1).
      h: hidden width(s): an int (every hidden layer) or a sequence (H_1, ..., H_{L-1}).
      *diagonals: one value per factor (d1, ..., dL: each a scalar or (*batch, k)), or a single value
        for every factor (the balanced start: a mapping w0 is ``w0 ** (1 / L)`` per factor).
      key: optional PRNG key for the rotations. dtype: of the result (default: of the values).
      depth: the number of factors, when ``h`` is an int and one value is given (default: the number
        of values, or 2).
    Returns:
      the L factors (Wb_1 (*batch, H_1, D), ..., Wb_L (*batch, D, H_{L-1})).
    Raises:
      ValueError: naming ``d``, ``h``, ``hidden[i]``, ``depth`` or ``d1`` ... (not finite, too many or
        too few values, widths that contradict ``depth``).
    Example:
      >>> w1, w2 = orthogonal_init(3, 2, jnp.array([1.0, 2.0]), 0.5, key=jr.key(0))
      >>> np.round(np.asarray(w2 @ w1), 6).tolist()
      [[0.5, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
      >>> ws = orthogonal_init(3, (2, 4), 0.5, key=jr.key(0))  # depth 3: 0.5 in every factor
      >>> [w.shape for w in ws], (np.round(np.diag(ws[2] @ ws[1] @ ws[0]), 6) + 0.0).tolist()
      ([(2, 3), (4, 2), (3, 4)], [0.125, 0.125, 0.0])
    """
    if not diagonals:
        raise ValueError("orthogonal_init needs the diagonal values: d1, ..., dL (one per factor) or "
                         "one value for every factor")
    sizes = _sizes(d, h, depth, len(diagonals))
    for i, a in enumerate(diagonals):
        check_finite(f"d{i + 1}", a)
    dtype = dtype or float_dtype(*diagonals)
    return _orthogonal_init_core(tuple(jnp.asarray(a, dtype) for a in diagonals), key, sizes=sizes)


def _haar(key, h, dtype):
    """An h x h orthogonal matrix from the Haar measure (QR of a Gaussian matrix, signs fixed)."""
    q, r = jnp.linalg.qr(jr.normal(key, (h, h), dtype))
    return q * jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0).astype(dtype)[None, :]


@functools.partial(jax.jit, static_argnames=("sizes",))
def _orthogonal_init_core(diagonals, key, *, sizes):
    depth, k = len(sizes) - 1, min(sizes)
    dtype = diagonals[0].dtype
    bshape = jnp.broadcast_shapes(*(a.shape for a in diagonals), (k,))[:-1]
    diagonals = [jnp.broadcast_to(a, bshape + (k,)) for a in diagonals]
    diagonals = diagonals * depth if len(diagonals) == 1 else diagonals  # one value: every factor's
    idx = jnp.arange(k)
    out = [jnp.zeros(bshape + (sizes[l + 1], sizes[l]), dtype).at[..., idx, idx].set(diagonals[l])
           for l in range(depth)]
    if key is None:
        return tuple(out)
    keys = [key] if depth == 2 else list(jr.split(key, depth - 1))  # depth 2: R from the key itself
    qs = [_haar(kk, h, dtype) for kk, h in zip(keys, sizes[1:-1], strict=True)]
    for l in range(depth):
        if l < depth - 1:
            out[l] = jnp.matmul(qs[l], out[l], precision="highest")
        if l > 0:
            out[l] = jnp.matmul(out[l], qs[l - 1].T, precision="highest")
    return tuple(out)


@renamed(scale="init_scale")
def random_init(d: int, h: int | Sequence[int], *, init_scale: ArrayLike, key: Array, dtype=None,
                depth: int | None = None) -> tuple[Array, ...]:
    """Small Gaussian initialisation of L factors: every entry i.i.d. N(0, init_scale^2).

    Because V is orthogonal, Gaussian factors are also i.i.d. Gaussian in the eigenbasis
    (W_1 V, ..., V^T W_L), so this draws them there directly. To follow a particular draw made in the
    data's basis (e.g. by ``daedyn.models``), rotate it with :func:`to_eigenbasis` instead.

    Args:
      d: input size (>= 1). h: hidden width(s): an int (every hidden layer) or a sequence
        (H_1, ..., H_{L-1}). depth: the number of factors when ``h`` is an int (default 2).
      init_scale: standard deviation (Figure 5: 1e-4), >= 0 (the keyword ``scale`` is deprecated).
      key: PRNG key (``jr.key``/``jr.PRNGKey``); a batch of keys (e.g. ``jr.split(key, S)``) gives
        a batch of S initialisations. Factor l of a key's draw uses ``jr.split(key, L)[l]``.
    Returns:
      the L factors (Wb_1 (*keys, H_1, D), ..., Wb_L (*keys, D, H_{L-1})).
    Example:
      >>> w1, w2 = random_init(5, 3, init_scale=1e-4, key=jr.split(jr.key(0), 4))
      >>> w1.shape, w2.shape
      ((4, 3, 5), (4, 5, 3))
      >>> [w.shape for w in random_init(5, 3, init_scale=1e-4, key=jr.key(0), depth=3)]
      [(3, 5), (3, 3), (5, 3)]
    """
    sizes, scale = _sizes(d, h, depth), init_scale
    check_range("init_scale", scale, 0.0)
    if key is None:
        raise ValueError("key is required (an explicit PRNG key)")
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jr.wrap_key_data(key)
    dtype = dtype or float_dtype(scale)
    return _random_init_core(key, jnp.asarray(scale, dtype), sizes=sizes)


@functools.partial(jax.jit, static_argnames=("sizes",))
def _random_init_core(key, scale, *, sizes):
    depth = len(sizes) - 1

    def draw(k):
        ks = jr.split(k, depth)  # depth 2: the two keys of jr.split(k), as ever
        return tuple(scale * jr.normal(ks[l], (sizes[l + 1], sizes[l]), scale.dtype) for l in range(depth))

    ws = jax.vmap(draw)(key.reshape(-1))
    return tuple(w.reshape(key.shape + w.shape[1:]) for w in ws)


def to_eigenbasis(w1: ArrayLike, w2: ArrayLike, eigvecs: ArrayLike, *, precision="highest"):
    """(W1 V, V^T W2): data-basis weights to the eigenbasis (eigvecs are the columns of V). For a deep
    network rotate the first and the last factor (the inner ones are unchanged)."""
    return core.to_eigenbasis((jnp.asarray(w1), jnp.asarray(w2)), jnp.asarray(eigvecs),
                              core.matmul_fn(precision))


def from_eigenbasis(w1: ArrayLike, w2: ArrayLike, eigvecs: ArrayLike, *, precision="highest"):
    """(Wb1 V^T, V Wb2): eigenbasis weights back to the data's basis (deep: the first and last factor)."""
    return core.from_eigenbasis((jnp.asarray(w1), jnp.asarray(w2)), jnp.asarray(eigvecs),
                                core.matmul_fn(precision))
