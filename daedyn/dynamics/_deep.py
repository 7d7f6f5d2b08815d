"""Per-direction learning dynamics of deep linear DAEs from any start of the L >= 2 factor values.

Per eigen-direction the L factor values ``a_1 .. a_L`` (mapping ``w = a_1 ... a_L``) follow

    tau da_l/dt = (prod_{j != l} a_j) (lam - w (lam + eps)) - n gamma a_l,

the gradient flow of ``[lam (1 - w)^2 + eps w^2 + n gamma sum_l a_l^2] / 2`` (Eqs. (2)-(3) for L = 2).
From a balanced start (all factors equal) the factors stay equal and
:func:`daedyn.theory.small_init_trajectory` (``depth=L``) is the exact solution; any other start is
integrated here. :func:`deep_scalar_gd` is the exact gradient-descent recursion (one step = one epoch,
what training does), :func:`deep_scalar_flow` the continuous flow (fixed-step RK4).

A start whose first L - 1 factors are equal (the balanced start: all equal) is
:func:`daedyn.dynamics.scalar_gd` / :func:`~daedyn.dynamics.scalar_flow` with ``depth=L`` and
w1 = w2 = w0^(1/L): the same numbers, any schedule, the fused kernel. The full matrices of any depth
are :func:`daedyn.dynamics.matrix_gd` / :func:`~daedyn.dynamics.matrix_flow` with the L factors as
arguments.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import (
    check_broadcastable,
    check_finite,
    check_fit,
    check_int,
    check_range,
    float_dtype,
)
from daedyn.dynamics._integrate import fixed_step_loop, gd_loop, step_grid
from daedyn.dynamics._scalar import warn_nonfinite

__all__ = [
    "DeepScalarTrajectory",
    "balanced_factors",
    "deep_scalar_rhs",
    "deep_scalar_gd",
    "deep_scalar_flow",
]


class DeepScalarTrajectory(NamedTuple):
    """Saved states of a batch of per-direction deep runs.

    Attributes:
      t: (T,) save times in epochs.
      factors: (*batch, L, T) the factor values a_1 .. a_L.
      w: (*batch, T) the mapping a_1 ... a_L.
      weight_norm: (*batch, T) sum_l a_l^2.
      loss: (*batch, T) [lam (1 - w)^2 + eps w^2 + n gamma weight_norm] / (2 tau) (as
        :class:`daedyn.dynamics.ScalarTrajectory`).
    """

    t: Array
    factors: Array
    w: Array
    weight_norm: Array
    loss: Array


def balanced_factors(w0: ArrayLike, depth: int) -> Array:
    """The balanced start with mapping ``w0 >= 0``: every factor ``w0^(1/L)``; shape (*w0.shape, L)."""
    depth = check_int("depth", depth, 2)
    check_range("w0", w0, 0.0)
    w0 = jnp.asarray(w0, float_dtype(w0))
    return jnp.repeat((w0 ** (1.0 / depth))[..., None], depth, axis=-1)


def _others(a: Array) -> Array:
    """prod_{j != l} a_j along the last axis, without division (exclusive prefix and suffix products)."""
    ones = jnp.ones_like(a[..., :1])
    left = jnp.cumprod(jnp.concatenate([ones, a[..., :-1]], axis=-1), axis=-1)
    right = jnp.cumprod(jnp.concatenate([ones, a[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    return left * right


def deep_scalar_rhs(
    factors: ArrayLike, lam: ArrayLike, eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0, n: ArrayLike = 1
) -> Array:
    """tau times the time derivative of every factor (last axis of ``factors``); lam, eps, gamma, n
    broadcast against ``factors[..., 0]``.

    Example:
      >>> np.asarray(deep_scalar_rhs(jnp.array([1.0, 0.5, 2.0]), lam=1.0)).tolist()  # w = 1: at rest
      [0.0, 0.0, 0.0]
    """
    a = jnp.asarray(factors)
    lam, eps, gamma, n = (jnp.asarray(x, a.dtype)[..., None] for x in (lam, eps, gamma, n))
    w = jnp.prod(a, axis=-1, keepdims=True)
    return _others(a) * (lam - w * (lam + eps)) - n * gamma * a


def _finish(t, a, lam, eps, ng, inv_tau) -> DeepScalarTrajectory:
    a = jnp.moveaxis(a, 0, -1)  # (*batch, L, T)
    w = jnp.prod(a, axis=-2)
    norm = jnp.sum(a * a, axis=-2)
    lam, eps, ng, inv_tau = (x[..., None] for x in (lam, eps, ng, inv_tau))
    loss = (lam * (1 - w) ** 2 + eps * w * w + ng * norm) * (inv_tau / 2)
    return DeepScalarTrajectory(t, a, w, norm, loss)


def _scalar_inputs(lam, eps, gamma, n, factors, **rate):
    if np.ndim(factors) < 1:
        raise ValueError("factors must have shape (..., L) with L >= 2 (one value per weight matrix)")
    check_int("depth (the number of factors)", int(np.shape(factors)[-1]), 2)
    check_range("lam", lam, 0.0)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    check_range("n", n, 0.0, lo_open=True)
    check_finite("factors", factors)
    for name, value in rate.items():
        check_range(name, value, 0.0, lo_open=True)
    check_broadcastable(lam=lam, eps=eps, gamma=gamma, n=n, factors=np.empty(np.shape(factors)[:-1]), **rate)
    dtype = float_dtype(lam, eps, gamma, factors, *rate.values())
    check_fit(dtype, lam=lam, eps=eps, gamma=gamma, n=n, factors=factors, **rate)
    shape = np.broadcast_shapes(
        *(np.shape(x) for x in (lam, eps, gamma, n, *rate.values())), np.shape(factors)[:-1]
    )
    cast = lambda x: jnp.broadcast_to(jnp.asarray(x, dtype), shape)
    a = jnp.broadcast_to(jnp.asarray(factors, dtype), shape + np.shape(factors)[-1:])
    return dtype, [cast(x) for x in (lam, eps, gamma, n, *rate.values())], a


@functools.partial(jax.jit, static_argnames=("n_saves", "save_every"))
def _deep_gd_core(lam, eps, gamma, n, alpha, a, *, n_saves, save_every):
    inv_tau = alpha / n
    step = lambda a: a + inv_tau[..., None] * deep_scalar_rhs(a, lam, eps, gamma, n)
    _, saved = gd_loop(step, a, lambda a: a, n_saves=n_saves, save_every=save_every)
    t = jnp.arange(n_saves + 1, dtype=a.dtype) * save_every
    return _finish(t, saved, lam, eps, n * gamma, inv_tau)


def deep_scalar_gd(
    lam: ArrayLike,
    eps: ArrayLike,
    factors: ArrayLike,
    *,
    alpha: ArrayLike,
    epochs: int,
    gamma: ArrayLike = 0.0,
    n: ArrayLike = 1,
    save_every: int = 1,
) -> DeepScalarTrajectory:
    """Exact full-batch gradient descent on one direction's deep loss, for a batch of settings.

    One step is ``a_l <- a_l + (alpha / n) * RHS_l`` (all factors from the old values; see
    :func:`deep_scalar_rhs`): the Euler step of one epoch of the flow with tau = n / alpha. With two
    factors it is :func:`daedyn.dynamics.scalar_gd` (same numbers).

    Args:
      lam, eps, gamma, n: as :func:`daedyn.dynamics.scalar_gd`.
      factors: (*batch, L) initial factor values (L >= 2; :func:`balanced_factors` for a balanced start).
      alpha: learning rate, > 0. epochs, save_every: steps and save spacing (t = 0 saved).
    Returns:
      :class:`DeepScalarTrajectory`; the batch shape broadcasts ``factors[..., 0]`` with the settings.
    Example:
      >>> traj = deep_scalar_gd(1.0, 1.0, balanced_factors(1e-3, 3), alpha=0.1, epochs=2000, save_every=1000)
      >>> round(float(traj.w[-1]), 4)  # lam / (lam + eps), as at depth 2
      0.5
    """
    epochs = check_int("epochs", epochs, 0)
    save_every = check_int("save_every", save_every, 1)
    if epochs % save_every:
        raise ValueError(f"epochs ({epochs}) must be a multiple of save_every ({save_every})")
    _, (lam, eps, gamma, n, alpha), a = _scalar_inputs(lam, eps, gamma, n, factors, alpha=alpha)
    traj = _deep_gd_core(lam, eps, gamma, n, alpha, a, n_saves=epochs // save_every, save_every=save_every)
    return warn_nonfinite("deep_scalar_gd", traj)


@functools.partial(jax.jit, static_argnames=("m_static",))
def _deep_rk4_core(ts, hs, ms, lam, eps, gamma, n, tau, a, *, m_static):
    f = lambda a: deep_scalar_rhs(a, lam, eps, gamma, n) / tau[..., None]
    _, saved = fixed_step_loop(f, a, lambda a: a, hs, ms, m_static)
    return _finish(ts, saved, lam, eps, n * gamma, 1 / tau)


def deep_scalar_flow(
    ts: ArrayLike,
    lam: ArrayLike,
    eps: ArrayLike,
    factors: ArrayLike,
    *,
    tau: ArrayLike = 1.0,
    gamma: ArrayLike = 0.0,
    n: ArrayLike = 1,
    dt: float | None = None,
) -> DeepScalarTrajectory:
    """The continuous flow of the L factors (fixed-step RK4 landing on every save time).

    Args:
      ts: (T,) save times (epochs), non-decreasing, from 0.
      lam, eps, gamma, n, factors: as :func:`deep_scalar_gd`. tau: n / alpha, > 0.
      dt: largest RK4 step; default 0.05 tau / max((lam + eps) max(1, |a|^2)^(L-1) + n gamma).
    Example:
      >>> traj = deep_scalar_flow(jnp.array([0.0, 100.0]), 1.0, 0.0, balanced_factors(0.01, 4), dt=0.05)
      >>> round(float(traj.w[-1]), 6)
      1.0
    """
    _, (lam, eps, gamma, n, tau), a = _scalar_inputs(lam, eps, gamma, n, factors, tau=tau)
    if dt is None:
        big = np.maximum(1.0, np.max(np.asarray(a, np.float64) ** 2))
        depth = a.shape[-1]
        rate = np.max(
            (np.asarray(lam + eps, np.float64) * big ** (depth - 1) + np.asarray(n * gamma))
            / np.asarray(tau, np.float64)
        )
        dt = float(0.05 / max(rate, 1e-300))
    check_range("dt", dt, 0.0, lo_open=True)
    ts, hs, ms, m_static = step_grid(ts, float(dt))
    ts, hs = (jnp.asarray(x, a.dtype) for x in (ts, hs))
    traj = _deep_rk4_core(ts, hs, jnp.asarray(ms, jnp.int32), lam, eps, gamma, n, tau, a, m_static=m_static)
    return warn_nonfinite("deep_scalar_flow", traj)
