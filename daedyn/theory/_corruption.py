"""Per-direction theory for a general corruption term, and how far it is from the coupled flow.

A corruption with marginalised term C (summed over the n samples like Sigma; ``daedyn.noise``)
enters the eigenbasis flow as V^T C V. When that matrix is diagonal the directions decouple and
every closed form of :mod:`daedyn.theory` holds with eps replaced by eps_j = [V^T C V]_jj (the
closed forms broadcast over eps arrays). When it is not (masking: C = p / (1 - p) diag(Sigma), whose
rotation is dense unless the eigenvectors are pixel-aligned), the off-diagonal entries couple the
directions and the per-direction theory is an approximation. :func:`diagonal_approximation_error`
measures it: the diagonal theory against the full-matrix flow with the whole V^T C V, per direction.

For masking, eps_j = ``diagonal_eps(daedyn.noise.masking(p).marginal_term(spectrum))``, differentiable
in p for tuning:

    eps_j(p) = p / (1 - p) sum_k V_kj^2 diag(Sigma)_k,   diag(Sigma)_k = sum_i V_ki^2 lam_i.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import check_int, check_range, float_dtype
from daedyn.theory._balanced import small_init_trajectory

__all__ = ["diagonal_eps", "DiagonalApproximation", "diagonal_approximation_error"]


def diagonal_eps(c: ArrayLike, c_dims: int = 2) -> Array:
    """eps_j: the diagonal of a corruption term in the eigenbasis.

    Args:
      c: scalar eps (``c_dims=0``), (..., D) per-direction terms (``c_dims=1``) or (..., D, D)
        matrices V^T C V (``c_dims=2``, the default).
      c_dims: number of trailing core dimensions of ``c``.
    Returns:
      ``c`` for c_dims 0 and 1; the diagonal (..., D) for c_dims 2.
    Example:
      >>> diagonal_eps(jnp.array([[2.0, 0.5], [0.5, 1.0]])).tolist()
      [2.0, 1.0]
    """
    if c_dims not in (0, 1, 2):
        raise ValueError(f"c_dims must be 0, 1 or 2; got {c_dims!r}")
    c = jnp.asarray(c)
    return jnp.diagonal(c, axis1=-2, axis2=-1) if c_dims == 2 else c


class DiagonalApproximation(NamedTuple):
    """The per-direction theory against the coupled flow (:func:`diagonal_approximation_error`).

    Attributes:
      t: (T,) times in epochs.
      eps: (D,) the diagonal eps_j the theory used.
      theory: (T, D) mapping of the diagonal theory (directions beyond H are 0).
      flow: (T, D) diagonal of V^T W V under the coupled full-matrix flow.
      rmse: (D,) root mean square over t of theory - flow, per direction.
      final_error: (D,) theory - flow at the last time.
    """

    t: Array
    eps: Array
    theory: Array
    flow: Array
    rmse: Array
    final_error: Array


def diagonal_approximation_error(ts: ArrayLike, eigvals: ArrayLike, c: ArrayLike, *, hidden: int,
                                 w0: ArrayLike, tau: ArrayLike, n: ArrayLike, gamma: ArrayLike = 0.0,
                                 dt: float, precision="highest") -> DiagonalApproximation:
    """How far the per-direction theory with eps_j = [V^T C V]_jj is from the coupled flow.

    Both start from the same small balanced, decoupled state (mapping ``w0`` in each of the H
    leading directions: :func:`daedyn.dynamics.orthogonal_init` with d1 = d2 = sqrt(w0)). The theory
    is :func:`small_init_trajectory` per direction; the flow is :func:`daedyn.dynamics.matrix_flow`
    with the whole matrix (RK4, step ``dt``). One run (no batch axes).

    Args:
      ts: (T,) save times (epochs), non-decreasing, >= 0.
      eigvals: (D,) eigenvalues of Sigma, descending.
      c: (D, D) corruption term in the eigenbasis (e.g. ``noise.masking(p).marginal_term(spectrum)``).
      hidden: H, the hidden units (>= 1).
      w0: initial mapping per learned direction, > 0. tau: n / alpha, > 0. n: samples, > 0.
      gamma: weight decay, >= 0. dt: RK4 step of the flow. precision: its matmul precision.
    Returns:
      :class:`DiagonalApproximation`.
    Raises:
      ValueError: as :func:`daedyn.dynamics.matrix_flow` and :func:`small_init_trajectory`, or a c
        that is not (D, D).
    Example:
      >>> lam = jnp.array([2.0, 1.0])
      >>> c = jnp.array([[0.5, 0.0], [0.0, 0.5]])  # diagonal: no coupling, the theory is exact
      >>> r = diagonal_approximation_error(jnp.array([0.0, 5.0]), lam, c, hidden=2, w0=0.01, tau=1.0,
      ...                                  n=1, dt=0.01)
      >>> bool(r.rmse.max() < 1e-6)
      True
    """
    from daedyn.dynamics import matrix_flow, orthogonal_init  # theory does not import dynamics at load

    hidden = check_int("hidden", hidden, 1)
    check_range("w0", w0, 0.0, lo_open=True)
    lam, c = jnp.asarray(eigvals), jnp.asarray(c)
    d = lam.shape[-1]
    if lam.ndim != 1 or c.shape != (d, d):
        raise ValueError(f"eigvals must be (D,) and c (D, D); got {lam.shape} and {c.shape}")
    dtype = float_dtype(lam, c, ts, w0, tau)
    ts = jnp.asarray(ts, dtype)
    root = jnp.sqrt(jnp.asarray(w0, dtype))
    w1, w2 = orthogonal_init(d, hidden, root, root, dtype=dtype)
    flow = matrix_flow(ts, lam.astype(dtype), w1, w2, eps=c.astype(dtype), eps_dims=2, gamma=gamma,
                       tau=tau, n=n, dt=dt, precision=precision).mapping
    eps = diagonal_eps(c.astype(dtype))
    theory = small_init_trajectory(ts[:, None], lam.astype(dtype), eps, gamma, w0=w0, tau=tau, n=n)
    theory = jnp.where(jnp.arange(d) < hidden, theory, jnp.zeros((), dtype))
    err = theory - flow
    return DiagonalApproximation(ts, eps, theory, flow, jnp.sqrt(jnp.mean(err * err, axis=0)), err[-1])
