"""Distances between the generated Gaussian and the data's: KL divergence and Frechet distance.

The linear denoiser generates ``N(0, V diag(v) V^T)`` (V: the eigenvectors of ``Sigma = X^T X``, v the
per-direction variances of :func:`predict`). The data's Gaussian is ``N(0, C)`` with C its per-sample
second moment: ``Sigma / N`` for the training set (diagonal in V: pass ``lam / N``), or a held-out
set's ``X_test^T X_test / N_test`` (a full matrix: pass it with ``basis=V``); a training set that is
small against the dimension is memorised (generated variance collapses outside its span) and the
held-out distance shows it. Both are differentiable in v (and so in the objective's parameters
through :func:`predict`).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import float_dtype

__all__ = ["kl_divergence", "frechet_distance"]


def _in_basis(variance, cov, basis):
    """``(v, C in the eigenbasis or None, diag of it, log det C)``; C given as (D,) is diagonal."""
    dtype = float_dtype(variance, cov, basis if basis is not None else 0.0)
    v = jnp.asarray(variance, dtype)
    c = jnp.asarray(cov, dtype)
    d = v.shape[-1] if v.ndim else 1
    if c.ndim == 1:
        if basis is not None:
            raise ValueError("basis is for a full (D, D) cov; a (D,) cov is already per direction")
        if c.shape[0] != d:
            raise ValueError(f"cov has {c.shape[0]} directions; variance has {d}")
        return v, None, c, jnp.sum(jnp.log(c))
    if c.ndim != 2 or c.shape != (d, d):
        raise ValueError(f"cov must have shape ({d},) or ({d}, {d}); got {c.shape}")
    if basis is not None:
        vb = jnp.asarray(basis, dtype)
        if vb.shape != (d, d):
            raise ValueError(f"basis must be the ({d}, {d}) eigenvectors (columns); got {vb.shape}")
        c_b = vb.T @ c @ vb
    else:
        c_b = c
    c_b = 0.5 * (c_b + c_b.T)
    return v, c_b, jnp.diagonal(c_b), jnp.linalg.slogdet(c)[1]


def kl_divergence(variance: ArrayLike, cov: ArrayLike, *, basis: ArrayLike | None = None,
                  reverse: bool = False) -> Array:
    """``KL(data || generated)`` between ``N(0, C)`` and ``N(0, V diag(v) V^T)`` (nats).

    ``1/2 [sum_j C'_jj / v_j - D + sum_j ln v_j - ln det C]`` with ``C' = V^T C V``: the data's expected
    negative log-likelihood under the generated Gaussian, less its entropy. ``reverse=True``:
    ``KL(generated || data) = 1/2 [sum_j v_j (C'^-1)_jj - D + ln det C - sum_j ln v_j]``.

    Args:
      variance: generated variances v, shape (..., D) (leading axes: e.g. times).
      cov: the data's second moment C: (D,) per direction (training: ``lam / N``) or (D, D).
      basis: for a (D, D) cov in the data's coordinates, the eigenvectors V as columns; None when
        cov is already in the eigenbasis.
      reverse: the other direction of the divergence.
    Returns:
      shape (...,); inf where C is singular (forward) or where a v is 0.
    Example:
      >>> round(float(kl_divergence(jnp.array([2.0, 1.0]), jnp.array([1.0, 1.0]))), 6)  # (1/2-1+ln 2)/2
      0.096574
    """
    v, c_b, c_diag, logdet = _in_basis(variance, cov, basis)
    d = v.shape[-1]
    lead = lambda x: x.reshape((1,) * (v.ndim - 1) + x.shape)  # explicit ranks against v's (..., D)
    if not reverse:
        return 0.5 * (jnp.sum(lead(c_diag) / v + jnp.log(v), axis=-1) - d - logdet)
    inv_diag = 1.0 / c_diag if c_b is None else jnp.diagonal(jnp.linalg.inv(c_b))
    return 0.5 * (jnp.sum(v * lead(inv_diag) - jnp.log(v), axis=-1) - d + logdet)


def _sqrt_pos(x):
    """sqrt of max(x, 0) with a finite derivative at 0 (where the eigenvalue is a rounding 0)."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


def frechet_distance(variance: ArrayLike, cov: ArrayLike, *, basis: ArrayLike | None = None) -> Array:
    """Frechet (2-Wasserstein squared) distance between ``N(0, V diag(v) V^T)`` and ``N(0, C)``.

    ``tr S + tr C - 2 tr (S^(1/2) C S^(1/2))^(1/2)``; with ``S = V diag(v) V^T`` the last trace is
    ``sum sqrt(eig(diag(sqrt v) C' diag(sqrt v)))``, ``C' = V^T C V``; for a diagonal C it is
    ``sum_j (sqrt v_j - sqrt c_j)^2``. Args as :func:`kl_divergence`.

    Example:
      >>> float(frechet_distance(jnp.array([4.0, 1.0]), jnp.array([1.0, 1.0])))  # (2 - 1)^2
      1.0
    """
    v, c_b, c_diag, _ = _in_basis(variance, cov, basis)
    lead = lambda x: x.reshape((1,) * (v.ndim - 1) + x.shape)  # explicit ranks against v's (..., D)
    if c_b is None:
        return jnp.sum((_sqrt_pos(v) - lead(_sqrt_pos(c_diag))) ** 2, axis=-1)
    r = _sqrt_pos(v)
    m = r[..., :, None] * lead(c_b) * r[..., None, :]
    eig = jnp.linalg.eigvalsh(m)
    return jnp.sum(v, axis=-1) + jnp.sum(c_diag) - 2.0 * jnp.sum(_sqrt_pos(eig), axis=-1)
