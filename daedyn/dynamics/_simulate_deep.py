"""Long deep (L >= 2 factor) simulations in chunks, reporting progress: per direction and full matrix.

The depth-L counterparts of :func:`daedyn.dynamics.simulate_scalar` and
:func:`~daedyn.dynamics.simulate_matrix`: the same recursions and flows as
:func:`daedyn.dynamics.deep_scalar_gd` / :func:`~daedyn.dynamics.deep_scalar_flow` and
:func:`~daedyn.dynamics.deep_matrix_gd` / :func:`~daedyn.dynamics.deep_matrix_flow` (they call
them), a long gradient-descent run split into pieces of whole save intervals so that
``progress(done, total)`` hears about it. Each piece starts from the last state of the one before,
so the result is the same recursion as one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from daedyn.dynamics._simulate import CHUNK_WORK, Progress, _check_schedule, _join, run_in_pieces

__all__ = ["simulate_deep_scalar", "simulate_deep_matrix"]


def _check_method(method, allowed):
    if method not in allowed:
        raise ValueError(f"method must be one of {', '.join(map(repr, allowed))}; got {method!r}")


def simulate_deep_scalar(lam: ArrayLike, eps: ArrayLike, factors: ArrayLike, *, alpha: ArrayLike,
                         epochs: int, gamma: ArrayLike = 0.0, n: ArrayLike = 1, save_every: int = 1,
                         method: Literal["gd", "rk4"] = "gd", dt: float | None = None,
                         progress: Progress = None, chunk_work: int = CHUNK_WORK):
    """Per-direction dynamics of L factors for a batch of settings over ``epochs``, reporting progress.

    Args:
      lam, eps, gamma, n, alpha: as in :func:`daedyn.dynamics.deep_scalar_gd`; broadcast.
      factors: (*batch, L) initial factor values (:func:`daedyn.dynamics.balanced_factors`).
      epochs, save_every, progress, chunk_work: as in :func:`daedyn.dynamics.simulate_scalar`.
      method: "gd" (the recursion, in pieces) or "rk4" (the flow with tau = n / alpha, one call).
      dt: largest RK4 step (flow only; default automatic).
    Returns:
      :class:`~daedyn.dynamics.DeepScalarTrajectory` with T = epochs / save_every + 1 saves.
    Example:
      >>> from daedyn.dynamics import balanced_factors
      >>> seen = []
      >>> tr = simulate_deep_scalar(1.0, 1.0, balanced_factors(0.01, 3), alpha=0.1, epochs=4000,
      ...                           save_every=1000, progress=lambda d, t: seen.append(d), chunk_work=6000)
      >>> seen, round(float(tr.w[-1]), 4)  # lam / (lam + eps), as at depth 2
      ([2000, 4000], 0.5)
    """
    from daedyn import dynamics

    epochs, save_every = _check_schedule(epochs, save_every)
    _check_method(method, ("gd", "rk4"))
    if method == "rk4":
        alpha_arr = jnp.asarray(alpha)
        ts = jnp.arange(0, epochs + 1, save_every, dtype=jnp.result_type(alpha_arr, float))
        tr = dynamics.deep_scalar_flow(ts, lam, eps, factors, tau=n / alpha_arr, gamma=gamma, n=n, dt=dt)
        if progress is not None:
            progress(epochs, epochs)
        return tr
    batch = int(np.prod(np.broadcast_shapes(*(np.shape(x) for x in (lam, eps, alpha, gamma, n)),
                                            np.shape(factors)[:-1])))

    def step(a, size, done):
        tr = dynamics.deep_scalar_gd(lam, eps, a, alpha=alpha, gamma=gamma, n=n, epochs=size,
                                     save_every=save_every)
        return tr, tr.factors[..., -1]

    return _join(run_in_pieces(step, factors, epochs=epochs, save_every=save_every,
                               work=batch * np.shape(factors)[-1], chunk_work=chunk_work, progress=progress),
                 {})


def simulate_deep_matrix(eigvals: ArrayLike, ws: Sequence[ArrayLike], *, alpha: ArrayLike, epochs: int,
                         eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0, n: ArrayLike = 1,
                         save_every: int = 1, method: Literal["gd", "rk4"] = "gd", dt: float = 0.1,
                         precision=None, progress: Progress = None, chunk_work: int = CHUNK_WORK):
    """Full-matrix dynamics of L factor matrices in the eigenbasis over ``epochs``, reporting progress.

    Args:
      eigvals, ws, eps, gamma, alpha, n, precision: as in :func:`daedyn.dynamics.deep_matrix_gd`.
      epochs, save_every, progress, chunk_work: as in :func:`daedyn.dynamics.simulate_scalar`
        (a piece holds about ``chunk_work`` weight-epochs).
      method: "gd" or "rk4"; dt: largest RK4 step in epochs (flow only).
    Returns:
      :class:`~daedyn.dynamics.DeepMatrixTrajectory` with T = epochs / save_every + 1 saves and the
      final factors.
    Example:
      >>> from daedyn.dynamics import deep_orthogonal_init
      >>> ws = deep_orthogonal_init(2, (2, 2), jnp.array([0.3, 0.3]))
      >>> tr = simulate_deep_matrix(jnp.array([2.0, 1.0]), ws, eps=1.0, alpha=0.1, n=1, epochs=900,
      ...                           save_every=300, chunk_work=3000)
      >>> tr.mapping.shape, [round(float(m), 3) for m in tr.mapping[-1]]  # lam / (lam + eps)
      ((4, 2), [0.667, 0.5])
    """
    from daedyn import dynamics

    epochs, save_every = _check_schedule(epochs, save_every)
    _check_method(method, ("gd", "rk4"))
    kw = dict(eps=eps, gamma=gamma, n=n, precision=precision)
    if method == "rk4":
        ts = jnp.arange(0, epochs + 1, save_every, dtype=jnp.result_type(ws[0], float))
        tr = dynamics.deep_matrix_flow(ts, eigvals, ws, tau=n / jnp.asarray(alpha), dt=dt, **kw)
        if progress is not None:
            progress(epochs, epochs)
        return tr

    def step(y, size, done):
        tr = dynamics.deep_matrix_gd(eigvals, y, alpha=alpha, epochs=size, save_every=save_every, **kw)
        return tr, tr.ws

    parts = run_in_pieces(step, tuple(ws), epochs=epochs, save_every=save_every,
                          work=sum(int(np.prod(np.shape(w))) for w in ws), chunk_work=chunk_work,
                          progress=progress)
    return _join(parts, {"mapping": -2, "singular_values": -2}, final=("ws",))
