"""Initial weights for the full-matrix dynamics, and rotations between the data's basis and the
eigenbasis of Sigma (the shared core's rotation, :mod:`daedyn._linear`)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn import _linear as core
from daedyn._checks import check_finite, check_range, float_dtype

__all__ = ["orthogonal_init", "random_init", "to_eigenbasis", "from_eigenbasis"]


def _check_dims(d, h):
    for name, v in (("d", d), ("h", h)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {v!r}")
    return int(d), int(h)


def orthogonal_init(d: int, h: int, d1: ArrayLike, d2: ArrayLike, *, key: Array | None = None,
                    dtype=None) -> tuple[Array, Array]:
    """The decoupling initialisation of section 3.2, in the eigenbasis: Wb1 = R D1, Wb2 = D2 R^T.

    D1 (H x D) and D2 (D x H) are 'diagonal' with entries d1, d2 on their first k = min(H, D)
    diagonal positions, R is an H x H orthogonal matrix (Haar-random from ``key``, or the identity
    when ``key`` is None). Then Wb2 Wb1 = D2 D1 is diagonal and each direction j < k follows the
    scalar dynamics (2)-(3) from (d1_j, d2_j); directions j >= k stay at 0. In the data's basis this
    is W1 = R D1 V^T, W2 = V D2 R^T (:func:`from_eigenbasis`).

    Args:
      d, h: input and hidden sizes (>= 1).
      d1, d2: (*batch, k) or scalars: the diagonal entries.
      key: optional PRNG key for R.
    Returns:
      (Wb1 (*batch, H, D), Wb2 (*batch, D, H)).
    Example:
      >>> w1, w2 = orthogonal_init(3, 2, jnp.array([1.0, 2.0]), 0.5, key=jr.key(0))
      >>> np.round(np.asarray(w2 @ w1), 6).tolist()
      [[0.5, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """
    d, h = _check_dims(d, h)
    check_finite("d1", d1)
    check_finite("d2", d2)
    dtype = dtype or float_dtype(d1, d2)
    return _orthogonal_init_core(jnp.asarray(d1, dtype), jnp.asarray(d2, dtype), key, d=d, h=h)


@functools.partial(jax.jit, static_argnames=("d", "h"))
def _orthogonal_init_core(d1, d2, key, *, d, h):
    k = min(d, h)
    dtype = d1.dtype
    bshape = jnp.broadcast_shapes(d1.shape, d2.shape, (k,))[:-1]
    d1 = jnp.broadcast_to(d1, bshape + (k,))
    d2 = jnp.broadcast_to(d2, bshape + (k,))
    idx = jnp.arange(k)
    big1 = jnp.zeros(bshape + (h, d), dtype).at[..., idx, idx].set(d1)
    big2 = jnp.zeros(bshape + (d, h), dtype).at[..., idx, idx].set(d2)
    if key is None:
        return big1, big2
    g = jr.normal(key, (h, h), dtype)
    q, r = jnp.linalg.qr(g)
    q = q * jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0).astype(dtype)[None, :]  # Haar measure
    q = jnp.broadcast_to(q, bshape + (h, h))
    return (jnp.matmul(q, big1, precision="highest"),
            jnp.matmul(big2, jnp.swapaxes(q, -1, -2), precision="highest"))


def random_init(d: int, h: int, *, scale: ArrayLike, key: Array, dtype=None) -> tuple[Array, Array]:
    """Small Gaussian initialisation: W1, W2 with i.i.d. N(0, scale^2) entries.

    Because V is orthogonal, Gaussian W1 and W2 are also i.i.d. Gaussian in the eigenbasis
    (W1 V, V^T W2), so this draws them there directly. To follow a particular draw made in the
    data's basis (e.g. by ``daedyn.models``), rotate it with :func:`to_eigenbasis` instead.

    Args:
      d, h: input and hidden sizes (>= 1).
      scale: standard deviation (Figure 5: 1e-4), >= 0.
      key: PRNG key (``jr.key``/``jr.PRNGKey``); a batch of keys (e.g. ``jr.split(key, S)``) gives
        a batch of S initialisations.
    Returns:
      (Wb1 (*keys, H, D), Wb2 (*keys, D, H)).
    Example:
      >>> w1, w2 = random_init(5, 3, scale=1e-4, key=jr.split(jr.key(0), 4))
      >>> w1.shape, w2.shape
      ((4, 3, 5), (4, 5, 3))
    """
    d, h = _check_dims(d, h)
    check_range("scale", scale, 0.0)
    if key is None:
        raise ValueError("key is required (an explicit PRNG key)")
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jr.wrap_key_data(key)
    dtype = dtype or float_dtype(scale)
    return _random_init_core(key, jnp.asarray(scale, dtype), d=d, h=h)


@functools.partial(jax.jit, static_argnames=("d", "h"))
def _random_init_core(key, scale, *, d, h):
    def draw(k):
        k1, k2 = jr.split(k)
        return scale * jr.normal(k1, (h, d), scale.dtype), scale * jr.normal(k2, (d, h), scale.dtype)

    w1, w2 = jax.vmap(draw)(key.reshape(-1))
    return w1.reshape(key.shape + (h, d)), w2.reshape(key.shape + (d, h))


def to_eigenbasis(w1: ArrayLike, w2: ArrayLike, eigvecs: ArrayLike, *, precision="highest"):
    """(W1 V, V^T W2): data-basis weights to the eigenbasis (eigvecs are the columns of V)."""
    return core.to_eigenbasis((jnp.asarray(w1), jnp.asarray(w2)), jnp.asarray(eigvecs),
                              core.matmul_fn(precision))


def from_eigenbasis(w1: ArrayLike, w2: ArrayLike, eigvecs: ArrayLike, *, precision="highest"):
    """(Wb1 V^T, V Wb2): eigenbasis weights back to the data's basis."""
    return core.from_eigenbasis((jnp.asarray(w1), jnp.asarray(w2)), jnp.asarray(eigvecs),
                                core.matmul_fn(precision))
