"""Bases and observables of a linear autoencoder given as a product of factors.

A network is a tuple of factors ``ws = (W_1, ..., W_L)``, L >= 2, with W_1 the encoder (H_1 x D),
W_L the decoder (D x H_{L-1}) and the map W = W_L ... W_1 (column-vector convention of the paper;
L = 2 is the paper's (W1, W2)). Everything here acts on one network; drivers vmap it.

The eigenbasis of Sigma = V diag(lam) V^T is reached by rotating only the outer factors:
(W_1 V, W_2, ..., V^T W_L); inner factors are unchanged, so the product becomes V^T W V.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = ["Factors", "matmul_fn", "eigh_desc", "eigh_desc_float64", "to_eigenbasis", "from_eigenbasis",
           "inner_product", "product", "mapping", "svdvals", "weight_norm", "times"]

Factors = Sequence[Array]
MatMul = Callable[[Array, Array], Array]


def matmul_fn(precision=None) -> MatMul:
    """``lambda a, b: a @ b`` with a fixed matmul ``precision``: the one matmul helper of daedyn."""
    return lambda a, b: jnp.matmul(a, b, precision=precision)


@jax.jit
def eigh_desc(sigma: Array) -> tuple[Array, Array]:
    """Eigendecomposition of a symmetric PSD matrix: eigenvalues descending and clipped at 0
    (negatives are round-off), eigenvectors as columns with each one's largest-magnitude entry
    positive (a deterministic sign).

    Example:
      >>> lam, v = eigh_desc(jnp.array([[1.0, 0.0], [0.0, 3.0]]))
      >>> lam.tolist(), v.tolist()
      ([3.0, 1.0], [[0.0, 1.0], [1.0, 0.0]])
    """
    sigma = (sigma + sigma.T) / 2  # exact symmetry for eigh
    w, v = jnp.linalg.eigh(sigma)
    w, v = w[::-1], v[:, ::-1]
    w = jnp.maximum(w, jnp.zeros((), w.dtype))
    pivot = jnp.argmax(jnp.abs(v), axis=0)
    sign = jnp.where(v[pivot, jnp.arange(v.shape[1])] < 0, -1, 1).astype(v.dtype)
    return w, v * sign[None, :]


def eigh_desc_float64(sigma) -> tuple[np.ndarray, np.ndarray]:
    """:func:`eigh_desc` computed in float64 whatever JAX's 64-bit mode; NumPy float64 results.

    For reference paths that want the eigenbasis of a concrete Sigma as accurately as possible.
    """
    with jax.enable_x64(True):
        lam, v = eigh_desc(jnp.asarray(np.asarray(sigma, np.float64)))
        return np.asarray(lam), np.asarray(v)


def to_eigenbasis(ws: Factors, v: Array, mm: MatMul) -> tuple[Array, ...]:
    """(W_1 V, W_2, ..., V^T W_L): the factors with W replaced by V^T W V."""
    ws = tuple(ws)
    return (mm(ws[0], v),) + ws[1:-1] + (mm(v.T, ws[-1]),)


def from_eigenbasis(ws: Factors, v: Array, mm: MatMul) -> tuple[Array, ...]:
    """(Wb_1 V^T, ..., V Wb_L): back to the data's basis (inverse of :func:`to_eigenbasis`)."""
    ws = tuple(ws)
    return (mm(ws[0], v.T),) + ws[1:-1] + (mm(v, ws[-1]),)


def inner_product(ws: Factors, mm: MatMul) -> Array:
    """P = W_{L-1} ... W_1 (H_{L-1} x D): everything but the decoder (W_1 itself for L = 2)."""
    p = ws[0]
    for w in ws[1:-1]:
        p = mm(w, p)
    return p


def product(ws: Factors, mm: MatMul) -> Array:
    """The map W = W_L ... W_1 (D x D)."""
    return mm(ws[-1], inner_product(ws, mm))


def mapping(ws: Factors, mm: MatMul) -> Array:
    """diag(W) without forming W: (D,). In the eigenbasis this is the per-direction mapping."""
    return jnp.sum(ws[-1] * inner_product(ws, mm).T, axis=1)


def svdvals(ws: Factors, mm: MatMul) -> Array:
    """Singular values of W = W_L P (P = :func:`inner_product`), descending, min(H_{L-1}, D) of them.

    With H_{L-1} < D the R factors of W_L = Q_L R_L and P^T = Q_P R_P give W = Q_L (R_L R_P^T) Q_P^T,
    so the singular values are those of the small R_L R_P^T (O(D H^2)); otherwise W is formed.
    """
    p = inner_product(ws, mm)
    h, d = p.shape
    if h >= d:
        return jnp.linalg.svd(mm(ws[-1], p), compute_uv=False)
    r_l = jnp.linalg.qr(ws[-1], mode="r")
    r_p = jnp.linalg.qr(p.T, mode="r")
    return jnp.linalg.svd(mm(r_l, r_p.T), compute_uv=False)


def weight_norm(ws: Factors) -> Array:
    """sum_l ||W_l||_F^2 (rotation-invariant)."""
    return sum(jnp.sum(w * w) for w in ws)


def times(w: Array, a: Array, mm: MatMul) -> Array:
    """w A for A given as a scalar (A = a I), a vector (A = diag(a)) or a (D, D) matrix.

    The representation decides the cost: a scalar or diagonal A is a column scaling, a matrix a
    matmul. The choice is static (by ``ndim``), so it is free under jit.
    """
    if a.ndim == 0:
        return a * w
    if a.ndim == 1:
        return w * a[None, :]
    return mm(w, a)
