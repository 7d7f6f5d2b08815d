"""The per-direction engine of :func:`daedyn.dynamics.scalar_gd` / :func:`~daedyn.dynamics.scalar_flow`
for a start of L >= 2 distinct factor values (``factors=``): private; the public functions validate
nothing twice and build the :class:`~daedyn.dynamics.ScalarTrajectory`.

Per eigen-direction the L factor values ``a_1 .. a_L`` (mapping ``w = a_1 ... a_L``) follow

    tau da_l/dt = (prod_{j != l} a_j) (lam - w (lam + eps)) - n gamma a_l,

the gradient flow of ``[lam (1 - w)^2 + eps w^2 + n gamma sum_l a_l^2] / 2`` (Eqs. (2)-(3) for L = 2).
From a start whose first L - 1 factors are equal they stay equal and the two-value recursion of
``scalar_gd(w1, w2, depth=L)`` (the fused kernel, any schedule) is the same run; any other start
runs here: :func:`factor_gd` is the exact gradient-descent recursion (one step = one epoch, what
training does), :func:`factor_flow` the continuous flow (fixed-step RK4). The exact solution from an
aligned start without weight decay is :func:`daedyn.theory.unbalanced_trajectory`.
"""

from __future__ import annotations

import functools

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
from daedyn.schedules import is_schedule

__all__ = ["balanced_factors", "deep_scalar_rhs", "check_factors", "factor_gd", "factor_flow"]


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


def _fields(t, a, lam, eps, ng, inv_tau) -> dict:
    """The saved fields from time-major factors (T, *batch, L), time last: w1 the first L - 1 factors
    (*batch, L - 1, T), w2 the last, and the derived w, weight_norm, loss (as ``ScalarTrajectory``)."""
    a = jnp.moveaxis(a, 0, -1)  # (*batch, L, T)
    w = jnp.prod(a, axis=-2)
    norm = jnp.sum(a * a, axis=-2)
    lam, eps, ng, inv_tau = (x[..., None] for x in (lam, eps, ng, inv_tau))
    loss = (lam * (1 - w) ** 2 + eps * w * w + ng * norm) * (inv_tau / 2)
    return {"t": t, "w1": a[..., :-1, :], "w2": a[..., -1, :], "w": w, "weight_norm": norm, "loss": loss}


def check_factors(func: str, factors, w1, w2, depth: int, **rates) -> int:
    """The checks of a ``factors=`` start: not with w1 / w2, a (..., L) array, L >= 2 agreeing with
    ``depth`` (its default 2 defers to L), constant rates (``rates``: name -> value). Returns L."""
    if w1 is not None or w2 is not None:
        raise ValueError(f"{func}: give the start once, as w1 and w2 (the first L - 1 factors equal) or as "
                         f"factors= (every factor), not both")
    if np.ndim(factors) < 1:
        raise ValueError(f"{func}: factors must have shape (..., L) with L >= 2 (one value per weight "
                         f"matrix)")
    n_factors = check_int("factors.shape[-1] (the number of weight matrices L)", int(np.shape(factors)[-1]),
                          2)
    if depth not in (2, n_factors):
        raise ValueError(f"{func}: depth={depth} contradicts factors with {n_factors} values per direction "
                         f"(leave depth out: it is factors.shape[-1])")
    for name, value in rates.items():
        if is_schedule(value):
            raise ValueError(f"{func}: {name} must be a number or an array with factors= (a schedule needs a "
                             f"start whose first L - 1 factors are equal: w1, w2 and depth=L); got "
                             f"{type(value).__name__}")
    return n_factors


def _scalar_inputs(lam, eps, gamma, n, factors, **rate):
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
def _gd_core(lam, eps, gamma, n, alpha, a, *, n_saves, save_every):
    inv_tau = alpha / n
    step = lambda a: a + inv_tau[..., None] * deep_scalar_rhs(a, lam, eps, gamma, n)
    _, saved = gd_loop(step, a, lambda a: a, n_saves=n_saves, save_every=save_every)
    t = jnp.arange(n_saves + 1, dtype=a.dtype) * save_every
    return _fields(t, saved, lam, eps, n * gamma, inv_tau)


def factor_gd(lam, eps, factors, *, alpha, epochs: int, gamma=0.0, n=1, save_every: int = 1) -> dict:
    """Gradient descent of the L factors, one step per epoch: ``a_l <- a_l + (alpha / n) RHS_l`` with
    every factor's right-hand side (:func:`deep_scalar_rhs`) from the old values; the fields of
    :func:`_fields`. ``epochs`` and ``save_every`` are checked by the caller."""
    _, (lam, eps, gamma, n, alpha), a = _scalar_inputs(lam, eps, gamma, n, factors, alpha=alpha)
    return _gd_core(lam, eps, gamma, n, alpha, a, n_saves=epochs // save_every, save_every=save_every)


@functools.partial(jax.jit, static_argnames=("m_static",))
def _rk4_core(ts, hs, ms, lam, eps, gamma, n, tau, a, *, m_static):
    f = lambda a: deep_scalar_rhs(a, lam, eps, gamma, n) / tau[..., None]
    _, saved = fixed_step_loop(f, a, lambda a: a, hs, ms, m_static)
    return _fields(ts, saved, lam, eps, n * gamma, 1 / tau)


def factor_flow(ts, lam, eps, factors, *, tau=1.0, gamma=0.0, n=1, dt: float | None = None) -> dict:
    """The continuous flow of the L factors (fixed-step RK4 landing on every save time); ``dt``
    defaults to 0.05 tau / max((lam + eps) max(1, |a|^2)^(L-1) + n gamma)."""
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
    return _rk4_core(ts, hs, jnp.asarray(ms, jnp.int32), lam, eps, gamma, n, tau, a, m_static=m_static)
