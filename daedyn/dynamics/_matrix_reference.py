"""Reference paths of the full-matrix dynamics: gradient descent in the data's own basis.

:func:`matrix_gd_sigma` steps with the full second moment Sigma (O(D^2 H) per step) and
:func:`matrix_gd_data` differentiates the loss computed from the data matrix itself (O(N D H), the
straightforward baseline); both report their observables in the eigenbasis of Sigma, so they can be
compared with :func:`daedyn.dynamics.matrix_gd` entry by entry. The algebra is the shared core
:mod:`daedyn._linear`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from daedyn import _linear as core
from daedyn._checks import check_finite, check_int, check_nonempty, check_precision, check_range, float_dtype
from daedyn.dynamics._integrate import gd_loop
from daedyn.dynamics._matrix import (
    MatrixTrajectory,
    _batch_shape,
    _check_hyper,
    _check_weights,
    _flat,
    _pack,
)

__all__ = ["matrix_gd_sigma", "matrix_gd_data"]


def _rotated_observe(lam, v, w1, w2, eps, gamma, n, mm):
    return core.observe(core.to_eigenbasis((w1, w2), v, mm), lam, eps, n=n, gamma=gamma, mm=mm)


@functools.partial(jax.jit, static_argnames=("n_saves", "save_every", "precision", "unroll"))
def _matrix_gd_sigma_core(sigma, lam, v, w1, w2, eps, gamma, alpha, n, *, n_saves, save_every, precision,
                          unroll):
    bshape = jnp.broadcast_shapes(w1.shape[:-2], w2.shape[:-2], eps.shape, gamma.shape, alpha.shape)
    mm = core.matmul_fn(precision)

    def one(w1, w2, eps, gamma, alpha):
        def step(y):
            return core.gd_step(y, sigma, eps, n=n, gamma=gamma, alpha=alpha, mm=mm, form="gram")

        observe = lambda y: _rotated_observe(lam, v, y[0], y[1], eps, gamma, n, mm)
        return gd_loop(step, (w1, w2), observe, n_saves=n_saves, save_every=save_every, unroll=unroll)

    flat = [_flat(x, bshape, c) for x, c in ((w1, 2), (w2, 2), (eps, 0), (gamma, 0), (alpha, 0))]
    y, obs = jax.vmap(one)(*flat)
    t = jnp.arange(n_saves + 1, dtype=w1.dtype) * save_every
    return _pack(t, obs, y, bshape)


@functools.partial(jax.jit, static_argnames=("n_saves", "save_every", "precision", "unroll"))
def _matrix_gd_data_core(x, lam, v, w1, w2, eps, gamma, alpha, *, n_saves, save_every, precision, unroll):
    bshape = jnp.broadcast_shapes(w1.shape[:-2], w2.shape[:-2], eps.shape, gamma.shape, alpha.shape)
    mm = core.matmul_fn(precision)
    data_loss = lambda ws, eps, gamma: core.data_loss(ws, x, eps, gamma=gamma, mm=mm)
    grad = jax.grad(data_loss)
    nn = jnp.asarray(x.shape[0], x.dtype)

    def one(w1, w2, eps, gamma, alpha):
        def step(y):
            g1, g2 = grad(y, eps, gamma)
            return y[0] - alpha * g1, y[1] - alpha * g2

        def observe(y):
            mapping, svals, norm, _ = _rotated_observe(lam, v, y[0], y[1], eps, gamma, nn, mm)
            return mapping, svals, norm, data_loss(y, eps, gamma)

        return gd_loop(step, (w1, w2), observe, n_saves=n_saves, save_every=save_every, unroll=unroll)

    flat = [_flat(a, bshape, c) for a, c in ((w1, 2), (w2, 2), (eps, 0), (gamma, 0), (alpha, 0))]
    y, obs = jax.vmap(one)(*flat)
    t = jnp.arange(n_saves + 1, dtype=w1.dtype) * save_every
    return _pack(t, obs, y, bshape)


def _reference_checks(d, w1, w2, eps, gamma, alpha, epochs, save_every, precision):
    epochs = check_int("epochs", epochs, 0)
    save_every = check_int("save_every", save_every, 1)
    if epochs % save_every:
        raise ValueError(f"epochs ({epochs}) must be a multiple of save_every ({save_every})")
    check_nonempty("the data's dimension D", d)
    _check_weights(d, (w1, w2), lead="the data")
    _check_hyper(eps, gamma, 1, alpha=alpha)
    _batch_shape({"w1": (w1, 2), "w2": (w2, 2)}, {"eps": eps, "gamma": gamma, "alpha": alpha})
    return epochs, save_every, check_precision(precision)


def matrix_gd_sigma(sigma: ArrayLike, w1: ArrayLike, w2: ArrayLike, *, n: int, eps: ArrayLike = 0.0,
                    gamma: ArrayLike = 0.0, alpha: ArrayLike, epochs: int, save_every: int = 1,
                    eigvals: ArrayLike | None = None, eigvecs: ArrayLike | None = None, precision=None,
                    unroll: int = 1) -> MatrixTrajectory:
    """Gradient descent on the expected loss from the full second moment Sigma, in the data's basis.

    The same recursion as :func:`matrix_gd` without the rotation: a step costs O(D^2 H) instead of
    O(D H^2). Observables are reported in the eigenbasis (mapping diag(V^T W2 W1 V)).

    Args:
      sigma: (D, D) second moment X^T X (a sum over n samples). w1: (*batch, H, D), w2: (*batch, D, H)
        in the data's basis. n: sample count. eps, gamma, alpha: any batch shape.
      eigvals, eigvecs: the spectrum of sigma (descending); computed with NumPy (float64) if omitted.
    Returns:
      :class:`MatrixTrajectory` (final weights in the data's basis).
    Example:
      >>> sigma = jnp.diag(jnp.array([3.0, 1.0]))
      >>> from daedyn.dynamics import orthogonal_init
      >>> w1, w2 = orthogonal_init(2, 1, 0.1, 0.1)
      >>> traj = matrix_gd_sigma(sigma, w1, w2, n=1, eps=1.0, alpha=0.1, epochs=300, save_every=300)
      >>> np.round(np.asarray(traj.mapping[-1], np.float64), 4).tolist()
      [0.75, 0.0]
    """
    check_finite("sigma", sigma)
    if np.ndim(sigma) != 2 or np.shape(sigma)[0] != np.shape(sigma)[1]:
        raise ValueError(f"sigma must be a square (D, D) matrix; got shape {np.shape(sigma)}")
    d = np.shape(sigma)[0]
    check_range("n", n, 0.0, lo_open=True)
    epochs, save_every, precision = _reference_checks(d, w1, w2, eps, gamma, alpha, epochs, save_every,
                                                      precision)
    if eigvals is None or eigvecs is None:
        eigvals, eigvecs = core.eigh_desc_float64(sigma)
    check_range("eigvals", eigvals, 0.0)
    dtype = float_dtype(sigma, w1, w2, eps, gamma, alpha)
    args = [jnp.asarray(a, dtype) for a in (sigma, eigvals, eigvecs, w1, w2, eps, gamma, alpha, n)]
    return _matrix_gd_sigma_core(*args, n_saves=epochs // save_every, save_every=save_every,
                                 precision=precision, unroll=check_int("unroll", unroll, 1))


def matrix_gd_data(x: ArrayLike, w1: ArrayLike, w2: ArrayLike, *, eps: ArrayLike = 0.0,
                   gamma: ArrayLike = 0.0, alpha: ArrayLike, epochs: int, save_every: int = 1,
                   eigvals: ArrayLike | None = None, eigvecs: ArrayLike | None = None, precision=None,
                   unroll: int = 1) -> MatrixTrajectory:
    """Reference: full-batch gradient descent on the expected loss computed from the data matrix.

    The loss is evaluated from ``x`` itself every step, in the data's basis (row convention,
    reconstruction ``x @ W1.T @ W2.T``), and differentiated with ``jax.grad``:

        L = 1/(2N) |X - X W1^T W2^T|^2 + eps / (2N) |W2 W1|^2 + (gamma/2)(|W1|^2 + |W2|^2),

    with N = len(x); ``W <- W - alpha grad L``. Costs O(N D H) per step: the straightforward baseline
    for :func:`matrix_gd`. The reported loss is this data loss; the other observables are in the
    eigenbasis of X^T X (computed with NumPy in float64 unless given).

    Args:
      x: (N, D) data. w1: (*batch, H, D), w2: (*batch, D, H) in the data's basis.
      eps: noise level N s^2; gamma, alpha as for :func:`matrix_gd`.
    Returns:
      :class:`MatrixTrajectory` (final weights in the data's basis).
    Example:
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # Sigma = diag(2, 1), N = 3
      >>> from daedyn.dynamics import orthogonal_init
      >>> w1, w2 = orthogonal_init(2, 2, 0.1, 0.1)
      >>> traj = matrix_gd_data(x, w1, w2, eps=2.0, alpha=0.3, epochs=1000, save_every=1000)
      >>> np.round(np.asarray(traj.mapping[-1], np.float64), 4).tolist()  # lam / (lam + eps)
      [0.5, 0.3333]
    """
    check_finite("x", x)
    if np.ndim(x) != 2 or 0 in np.shape(x):
        raise ValueError(f"x must be an (N, D) data matrix, N, D >= 1; got shape {np.shape(x)}")
    epochs, save_every, precision = _reference_checks(np.shape(x)[1], w1, w2, eps, gamma, alpha, epochs,
                                                      save_every, precision)
    if eigvals is None or eigvecs is None:
        xn = np.asarray(x, np.float64)
        eigvals, eigvecs = core.eigh_desc_float64(xn.T @ xn)
    dtype = float_dtype(x, w1, w2, eps, gamma, alpha)
    args = [jnp.asarray(a, dtype) for a in (x, eigvals, eigvecs, w1, w2, eps, gamma, alpha)]
    return _matrix_gd_data_core(*args, n_saves=epochs // save_every, save_every=save_every,
                                precision=precision, unroll=check_int("unroll", unroll, 1))


