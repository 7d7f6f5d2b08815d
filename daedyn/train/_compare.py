"""A trained linear network next to the small-initialisation theory, direction by direction."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from daedyn import _linear, dynamics, theory
from daedyn._checks import check_range
from daedyn.train._config import Params
from daedyn.train._driver import TrainResult

__all__ = ["initial_w0", "TheoryComparison", "compare_with_theory"]


def initial_w0(params: Params, eigvecs: ArrayLike, *, kind: Literal["balanced", "shared"] = "balanced",
               precision: Any = "highest") -> Array:
    """Initial value w0 per direction for the small-initialisation theory.

    ``"balanced"``: each direction's own balanced-equivalent start |u_j + v_j|^2 / 4 with
    u_j = (W1 V)[:, j], v_j = (V^T W2)[j, :]: during training u_j + v_j grows like exp(lam t / tau)
    while u_j - v_j decays, so a direction behaves like the balanced solution started from this w0
    (w = ((|u+v|^2 - |u-v|^2) / 4) at all times). ``"shared"``: the authors' choice, one value for
    every direction, the mean of the initial singular values of W2 W1 (figure-settings.md).

    Args:
      params: ``{"w1": (..., H, D), "w2": (..., D, H)}`` in the input basis (batch axes first).
      eigvecs: V of the training Sigma, columns (D, D).
      kind: "balanced" or "shared".
      precision: matmul precision.
    Returns:
      (D,) array (``"shared"`` broadcast to D), with the batch axes of ``params``.
    Raises:
      ValueError: for an unknown ``kind``.
    Example:
      >>> import jax.numpy as jnp
      >>> from daedyn import train
      >>> p = {"w1": jnp.array([[0.2, 0.0]]), "w2": jnp.array([[0.2], [0.0]])}
      >>> [round(w, 6) for w in train.initial_w0(p, jnp.eye(2)).tolist()]  # (0.2 + 0.2)^2 / 4
      [0.04, 0.0]
    """
    if kind not in ("balanced", "shared"):
        raise ValueError(f"kind must be 'balanced' or 'shared'; got {kind!r}")
    mm = _linear.matmul_fn(precision)
    v = jnp.asarray(eigvecs)

    def one(w1, w2):
        u, vv = _linear.to_eigenbasis((w1, w2), v, mm)  # W1 V (H, D), V^T W2 (D, H)
        if kind == "balanced":
            return jnp.sum(jnp.square(u + vv.T), axis=0) / 4
        sv = _linear.svdvals((w1, w2), mm)
        return jnp.full((v.shape[0],), jnp.mean(sv), sv.dtype)

    w1, w2 = jnp.asarray(params["w1"]), jnp.asarray(params["w2"])
    f = one
    for _ in w1.shape[:-2]:
        f = jax.vmap(f)
    return f(w1, w2)


class TheoryComparison(NamedTuple):
    """Measured mapping next to the theory (all (..., T, D) except the RMSEs (..., D)).

    Attributes:
      measured: the recorded per-direction mapping (or sorted singular values for "strength").
      continuous: the continuous-time small-init prediction (daedyn.theory.small_init_trajectory).
      discrete: the same balanced start iterated with gradient descent, one step per epoch
        (daedyn.dynamics.scalar_gd).
      w0: initial value used per direction.
      rmse_continuous, rmse_discrete: RMSE over time per direction.
    """

    measured: Array
    continuous: Array
    discrete: Array
    w0: Array
    rmse_continuous: Array
    rmse_discrete: Array


def compare_with_theory(result: TrainResult, *, eigvecs: ArrayLike,
                        measure: Literal["mapping", "strength"] = "mapping",
                        w0: Literal["balanced", "shared"] | ArrayLike = "balanced") -> TheoryComparison:
    """Per-direction theory next to a linear run's measurements, with RMSE per direction.

    The continuous prediction is :func:`daedyn.theory.small_init_trajectory` with the run's
    (tau, eps, gamma, N); the discrete one is :func:`daedyn.dynamics.scalar_gd` from the balanced
    start w1 = w2 = sqrt(w0) with alpha = N / tau, one step per epoch, saved at the run's records
    (the default optimiser's gradient descent; its stability was checked when the run started).
    ``measure``: "mapping" compares diag(V^T W V) per direction j with lam_j; "strength" compares
    the sorted singular values of W2 W1 with the sorted eigenvalues (Figure 5), directions 0..H-1.

    Args:
      result: from :func:`~daedyn.train.train` (unbatched) with a linear network.
      eigvecs: V of the training Sigma (for ``w0`` read from the initial weights).
      measure: "mapping" or "strength".
      w0: "balanced" (per direction, :func:`initial_w0`), "shared" (authors' mean initial singular
        value) or an explicit array broadcasting to (D,), > 0.
    Returns:
      :class:`TheoryComparison`.
    Raises:
      ValueError: for an unknown ``measure``, "strength" without singular values, or w0 <= 0.
    """
    if measure not in ("mapping", "strength"):
        raise ValueError(f"measure must be 'mapping' or 'strength'; got {measure!r}")
    if result.singular_values is None and measure == "strength":
        raise ValueError("measure='strength' needs a linear run with singular_values recorded")
    if isinstance(w0, str):
        w0_arr = initial_w0(result.init_params, eigvecs, kind=w0)
    else:
        check_range("w0", w0, 0.0, lo_open=True)
        w0_arr = jnp.broadcast_to(jnp.asarray(w0), result.eigvals.shape)
    lam = result.eigvals
    if measure == "strength":
        k = result.singular_values.shape[-1]
        measured = result.singular_values
        lam, w0_arr = lam[:k], w0_arr[:k]
    else:
        measured = result.mapping
    dt = measured.dtype
    w0_dt = jnp.asarray(w0_arr, dt)
    n = jnp.asarray(result.n, dt)
    cont = theory.small_init_trajectory(jnp.asarray(result.t, dt)[:, None], lam[None, :], result.eps,
                                        result.gamma, w0=w0_dt[None, :], tau=result.tau, n=result.n)
    epochs = int(result.t[-1] - result.t[0])
    if epochs:
        every = int(result.t[1] - result.t[0])
        u = jnp.sqrt(w0_dt)
        traj = dynamics.scalar_gd(jnp.maximum(lam, 0), result.eps, u, u, alpha=n / result.tau, epochs=epochs,
                                  gamma=result.gamma, n=n, save_every=every, check_stability=False)
        disc = traj.w.T  # (D, T) -> (T, D)
    else:
        disc = w0_dt[None]
    rmse = lambda a: jnp.sqrt(jnp.mean(jnp.square(a - measured), axis=0))
    return TheoryComparison(measured=measured, continuous=cont, discrete=disc, w0=w0_arr,
                            rmse_continuous=rmse(cont), rmse_discrete=rmse(disc))
