"""Losses: the per-direction loss of Eq. (4) and the expected loss of a linear DAE from ``Sigma``.

Both use the authors' scaling (docs/CONTRACTS.md), whose gradient flow is Eqs. (2)-(3) plus weight
decay: ``(tau / n) * scalar_loss`` summed over the eigen-directions is :func:`expected_loss` of
weights that are decoupled in the eigenbasis.
"""

from __future__ import annotations

import functools as ft

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn import _linear as core
from daedyn._checks import check_finite, check_range
from daedyn.theory._args import check_fits, finite_result, mark_invalid, prepare

__all__ = ["scalar_loss", "expected_loss"]


@jax.jit
def _scalar_loss_impl(w1, w2, lam, eps, gamma, tau, n):
    w1, w2, lam, eps, gamma, tau, n = prepare(w1=w1, w2=w2, lam=lam, eps=eps, gamma=gamma, tau=tau, n=n)
    w = w1 * w2
    loss = 0.5 * (lam * (1.0 - w) ** 2 + eps * w * w + n * gamma * (w1 * w1 + w2 * w2)) / tau
    return mark_invalid(loss, (lam >= 0) & (eps >= 0) & (gamma >= 0) & (tau > 0) & (n > 0))


def scalar_loss(w1: ArrayLike, w2: ArrayLike, lam: ArrayLike, eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0,
                tau: ArrayLike = 1.0, n: ArrayLike = 1) -> Array:
    """Per-direction loss, Eq. (4) plus weight decay (the loss surface of Figure 4).

    ``l = [lam/2 (1 - w2 w1)^2 + eps/2 (w2 w1)^2 + n gamma/2 (w1^2 + w2^2)] / tau``; the flow of
    Eqs. (2)-(3) is ``dw/dt = -grad l``. With ``tau = 1``, ``n = 1`` it is the surface plotted in
    Figures 1 and 4. ``(tau / n) * l`` summed over directions is :func:`expected_loss`.

    Example:
      >>> float(scalar_loss(1.0, 1.0, 1.0, 1.0))  # eps/2 at w = 1
      0.5
    """
    check_range("lam", lam, 0.0)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    check_range("tau", tau, 0.0, lo_open=True)
    check_range("n", n, 0.0, lo_open=True)
    check_finite("w1", w1)
    check_finite("w2", w2)
    check_fits(w1=w1, w2=w2, lam=lam, eps=eps, gamma=gamma, tau=tau, n=n)
    return finite_result("scalar_loss", _scalar_loss_impl(w1, w2, lam, eps, gamma, tau, n))


def expected_loss(w1_mat: ArrayLike, w2_mat: ArrayLike, sigma: ArrayLike, n: ArrayLike,
                  eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0, *, precision=None) -> Array:
    """Expected (noise-marginalised) loss of a linear DAE/WDAE from ``Sigma`` alone.

    ``L = 1/(2n) [tr((I - W) Sigma (I - W)^T) + eps tr(W W^T)] + gamma/2 (||W1||^2 + ||W2||^2)``,
    ``W = W2 W1`` (docs/CONTRACTS.md: the authors' scaling of Eq. (1), whose gradient flow is
    Eqs. (2)-(3)). ``I - W`` is formed first, so the value stays accurate near ``W = I``.

    Args:
      w1_mat: ``W1``, shape (..., H, D).
      w2_mat: ``W2``, shape (..., D, H).
      sigma: summed second moment ``X^T X``, shape (..., D, D).
      n: number of samples N, > 0.
      eps: ``n s^2``, >= 0 (broadcasts over the batch dimensions).
      gamma: weight decay, >= 0.
      precision: ``jax.lax.Precision`` for the matrix products (``"highest"`` for validation on GPUs).
    Returns:
      the loss, shape of the batch dimensions.
    Example:
      >>> import numpy as np
      >>> float(expected_loss(np.eye(2), np.eye(2), np.diag([3.0, 1.0]), n=2, eps=0.5))  # eps*2/(2*2)
      0.25
    """
    check_range("n", n, 0.0, lo_open=True)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    check_finite("w1_mat", w1_mat)
    check_finite("w2_mat", w2_mat)
    check_finite("sigma", sigma)
    for name, m in (("w1_mat", w1_mat), ("w2_mat", w2_mat), ("sigma", sigma)):
        if 0 in np.shape(m)[-2:]:
            raise ValueError(f"{name} must have non-empty matrix dimensions; got shape {np.shape(m)}")
    return finite_result("expected_loss",
                         _expected_loss_impl(w1_mat, w2_mat, sigma, n, eps, gamma, precision))


@ft.partial(jax.jit, static_argnames=("precision",))
def _expected_loss_impl(w1_mat, w2_mat, sigma, n, eps, gamma, precision):
    w1_mat = jnp.asarray(w1_mat)
    w2_mat = jnp.asarray(w2_mat)
    sigma = jnp.asarray(sigma)
    if w1_mat.ndim < 2 or w2_mat.ndim < 2 or sigma.ndim < 2:
        raise ValueError("w1_mat, w2_mat and sigma must be at least 2-d: "
                         "(..., H, D), (..., D, H), (..., D, D)")
    h, d = w1_mat.shape[-2:]
    if w2_mat.shape[-2:] != (d, h) or sigma.shape[-2:] != (d, d):
        raise ValueError(f"shapes do not match: w1_mat (..., H, D) = {w1_mat.shape}, "
                         f"w2_mat (..., D, H) = {w2_mat.shape}, sigma (..., D, D) = {sigma.shape}")
    batch = _broadcast_shapes(w1_mat=w1_mat.shape[:-2], w2_mat=w2_mat.shape[:-2], sigma=sigma.shape[:-2],
                              n=np.shape(n), eps=np.shape(eps), gamma=np.shape(gamma))
    dtype = jnp.result_type(w1_mat, w2_mat, sigma, 0.0)
    w1_mat = jnp.broadcast_to(w1_mat.astype(dtype), batch + (h, d))
    w2_mat = jnp.broadcast_to(w2_mat.astype(dtype), batch + (d, h))
    sigma = jnp.broadcast_to(sigma.astype(dtype), batch + (d, d))
    n, eps, gamma = (jnp.broadcast_to(jnp.asarray(v, dtype), batch) for v in (n, eps, gamma))
    mm = core.matmul_fn(precision)
    one = lambda w1, w2, sigma, n, eps, gamma: core.loss((w1, w2), sigma, eps, n=n, gamma=gamma, mm=mm,
                                                         form="residual")
    flat = lambda a, core_shape: a.reshape((-1,) + core_shape)
    loss = jax.vmap(one)(flat(w1_mat, (h, d)), flat(w2_mat, (d, h)), flat(sigma, (d, d)), flat(n, ()),
                         flat(eps, ()), flat(gamma, ())).reshape(batch)
    return mark_invalid(loss, (n > 0) & (eps >= 0) & (gamma >= 0))


def _broadcast_shapes(**shapes) -> tuple[int, ...]:
    """Broadcast shapes given as tuples (the batch shapes of matrices); ValueError naming them."""
    try:
        return np.broadcast_shapes(*shapes.values())
    except ValueError:
        desc = ", ".join(f"{k}{tuple(v)}" for k, v in shapes.items())
        raise ValueError(f"shapes do not broadcast together: {desc}") from None

