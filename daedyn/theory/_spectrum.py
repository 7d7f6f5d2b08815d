"""Predictions for a whole spectrum: the per-direction mapping of a linear DAE trained from a small
balanced start, and the reconstruction loss it predicts on a training or held-out set (section 6).
"""

from __future__ import annotations

import functools as ft

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import check_broadcastable, check_int, check_output, check_range
from daedyn.theory._balanced import small_init_trajectory

__all__ = ["spectrum_mapping", "predicted_loss"]


def _batch_last(x):
    """Give a batch argument a trailing axis for the directions (NumPy, so nothing is dispatched)."""
    x = x if isinstance(x, jax.Array) else np.asarray(x)
    return x[..., None]


def spectrum_mapping(t: ArrayLike, eigvals: ArrayLike, eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0, *,
                     w0: ArrayLike, tau: ArrayLike, n: ArrayLike, hidden: int | None = None) -> Array:
    """Predicted per-direction mapping ``w_j(t)`` for a whole spectrum (small balanced start).

    Applies :func:`small_init_trajectory` to every eigenvalue; with ``hidden = H < D`` only the
    ``H`` leading directions (eigenvalues sorted descending) are learned and the others stay 0.

    Args:
      t, eps, gamma, tau: batch arguments; they broadcast together to a batch shape ``B``.
      eigvals: eigenvalues of Sigma, shape (..., D), sorted descending, >= 0.
      w0: initial mapping, scalar or per direction; broadcasts against the output ``B + (D,)``.
      n: number of training samples N.
      hidden: number of hidden units H (static int) or None for all D directions.
    Returns:
      array of shape ``B + (D,)`` (batch shape broadcast with eigvals' leading dims).
    Raises:
      ValueError: if ``hidden`` is not an int >= 0, ``eigvals`` has no direction axis, or the batch
        arguments or concrete values are out of range (as :func:`small_init_trajectory`).
    Example:
      >>> import numpy as np
      >>> w = spectrum_mapping([0.0, 1e5], [2.0, 1.0, 0.5], 1.0, w0=0.01, tau=1.0, n=1, hidden=2)
      >>> np.round(np.asarray(w, np.float64), 4).tolist()  # rows: t = 0 and t -> inf; H = 2 of D = 3
      [[0.01, 0.01, 0.0], [0.6667, 0.5, 0.0]]
    """
    hidden = None if hidden is None else check_int("hidden", hidden, 0)
    eigvals = jnp.asarray(eigvals)
    if eigvals.ndim < 1 or eigvals.shape[-1] == 0:
        raise ValueError(f"eigvals must have a trailing direction axis (..., D), D >= 1; got shape "
                         f"{eigvals.shape}")
    check_broadcastable(t=t, eps=eps, gamma=gamma, tau=tau)
    w = small_init_trajectory(_batch_last(t), eigvals, _batch_last(eps), _batch_last(gamma),
                              w0=w0, tau=_batch_last(tau), n=n)
    return w if hidden is None else _keep_leading(w, hidden)


@ft.partial(jax.jit, static_argnames=("hidden",))
def _keep_leading(w, hidden):
    learned = jnp.arange(w.shape[-1]) < hidden
    return jnp.where(learned, w, jnp.zeros_like(w))


def predicted_loss(t: ArrayLike, eigvals: ArrayLike, projected: ArrayLike, n_eval: ArrayLike, *,
                   eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0, w0: ArrayLike, tau: ArrayLike,
                   n: ArrayLike, hidden: int | None = None) -> Array:
    """Predicted reconstruction loss ``1/(2 n_eval) sum_j (1 - w_j(t))^2 projected_j`` over time.

    ``w_j`` from :func:`spectrum_mapping` (trained on the set with eigenvalues ``eigvals``);
    ``projected_j = [V^T Sigma_eval V]_jj`` for the evaluation set, in the training eigenbasis ``V``
    (``projected = eigvals`` and ``n_eval = n`` for the training set itself). No noise term: this is
    the plain reconstruction error of the learned map.

    Args:
      t, eigvals, eps, gamma, w0, tau, n, hidden: as :func:`spectrum_mapping`.
      projected: shape (..., D), >= 0.
      n_eval: number of evaluation samples, > 0.
    Returns:
      the loss, shape ``B`` (the batch shape of :func:`spectrum_mapping` without D).
    Example:
      >>> float(predicted_loss(0.0, [2.0, 1.0], [2.0, 1.0], 1, w0=0.0, tau=1.0, n=1))  # (2 + 1) / 2
      1.5
    """
    check_range("projected", projected, 0.0)
    check_range("n_eval", n_eval, 0.0, lo_open=True)
    w = spectrum_mapping(t, eigvals, eps, gamma, w0=w0, tau=tau, n=n, hidden=hidden)
    return check_output("predicted_loss", _loss_from_mapping(w, projected, n_eval))


@jax.jit
def _loss_from_mapping(w, projected, n_eval):
    projected = jnp.asarray(projected, w.dtype)
    shape = check_broadcastable(mapping=w, projected=projected)
    w = jnp.broadcast_to(w, shape)
    projected = jnp.broadcast_to(projected, shape)
    n_eval = jnp.asarray(n_eval, w.dtype)
    return jnp.sum((1.0 - w) ** 2 * projected, axis=-1) * (0.5 / n_eval)


