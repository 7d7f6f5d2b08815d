"""Deep linear DAEs (L >= 3 factors): the balanced direction's trajectory, learned state, learning
threshold and learning time, broadcasting like the depth-2 closed forms.

With L factors all equal to ``a`` along an eigen-direction and ``u = a^L`` its mapping,

    tau da/dt = a^(L-1) (lam - u k) - n gamma a,    tau du/dt = L u^(2-2/L) (lam - u k) - L n gamma u,

``k = lam + eps``. Depth 2 is the paper's Eq. (7) (:mod:`daedyn.theory._balanced`, used unchanged).
For L >= 3 the fixed points solve ``u^(1-2/L) (lam - u k) = n gamma``: without weight decay the learned
value is ``lam / k`` as at depth 2; with weight decay there are two positive roots or none, ``u = 0`` is
stable, the smaller root is an unstable threshold below which a start is never learned, and past the
critical gamma nothing is learned. The solution is exact up to a quadrature with a fixed table
(:mod:`daedyn.theory._deep_solve`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import Array

from daedyn._checks import check_int
from daedyn.theory._args import align, mark_invalid, prepare
from daedyn.theory._deep_negative import negative_trajectory
from daedyn.theory._deep_solve import (
    deep_roots,
    deep_time_to,
    deep_trajectory,
    evaluate_fast,
    evaluate_rare,
    evaluate_trajectory,
    materialise,
    prepare_trajectory,
)

__all__ = ["check_depth", "deep_small_init", "deep_fixed_point", "deep_threshold", "deep_learning_time"]


def check_depth(depth) -> int:
    """``depth`` (the number of weight matrices) as an int >= 2, or ValueError naming it."""
    return check_int("depth", depth, 2)


def _flat_map(fn, *arrays):
    shape = arrays[0].shape
    flat = [a.reshape(-1) for a in arrays]
    out = jax.vmap(fn)(*flat) if flat[0].size else jnp.zeros((0,), arrays[0].dtype)
    return out.reshape(shape)


@jax.jit(static_argnames=("depth", "signed"))
def deep_small_init(t, lam, eps, gamma, w0, tau, n, *, depth: int, signed: bool = False) -> Array:
    """The balanced depth-L mapping. ``signed``: ``lam`` is a direction's coefficient k of any sign and
    ``lam + eps`` its m > 0 (``eps`` may be negative); k < 0 without weight decay is solved by
    :func:`negative_trajectory`, k < 0 with weight decay by the no-root path of the table solver."""
    if signed:
        return _signed_small_init(t, lam, eps, gamma, w0, tau, n, depth=depth)
    return _small_init(t, lam, eps, gamma, w0, tau, n, depth=depth, valid_params=_valid_params)


def _signed_small_init(t, k, eps, gamma, w0, tau, n, *, depth: int) -> Array:
    (t, k, eps, gamma, w0, tau, n), shape = align(t=t, k=k, eps=eps, gamma=gamma, w0=w0, tau=tau, n=n)
    m = k + eps
    neg = (k < 0) & (n * gamma <= 0)
    # the table solver sees a harmless stand-in (k = 1, m = 1) where the negative closed form applies
    k_tab = jnp.where(neg, 1.0, k)
    eps_tab = jnp.where(neg, 0.0, eps)
    u_tab = _small_init(t, k_tab, eps_tab, gamma, w0, tau, n, depth=depth, valid_params=_valid_signed)
    b = jnp.where(neg, -k, 1.0)
    m_s = jnp.where(neg & (m > 0), m, 1.0)
    ok = (t >= 0) & (w0 >= 0) & (tau > 0)
    t_s, w0_s, tau_s = (jnp.where(ok, a, 1.0) for a in (t, w0, tau))
    # gamma = 0 there: its derivative is the flow's with weight decay (negative_trajectory's custom JVP)
    u_neg = negative_trajectory(t_s, b, m_s, w0_s, tau_s, depth, gamma=gamma, n=jnp.where(neg, n, 1.0))
    valid = ok & (m > 0) & (gamma >= 0) & (n > 0)
    return jnp.broadcast_to(mark_invalid(jnp.where(neg, u_neg, u_tab), valid), shape)


def _small_init(t, lam, eps, gamma, w0, tau, n, *, depth: int, valid_params) -> Array:
    (t, *params), shape = align(t=t, lam=lam, eps=eps, gamma=gamma, w0=w0, tau=tau, n=n)
    p_shape = jnp.broadcast_shapes(*(a.shape for a in params))
    if math.prod(p_shape) == math.prod(shape):  # one time per parameter set: solve per element
        t, *params = (jnp.broadcast_to(a, shape) for a in (t, *params))
        valid = (t >= 0) & valid_params(*params)
        ones = jnp.ones_like(t)
        args = [jnp.where(valid, a, ones) for a in (t, *params)]
        return mark_invalid(_flat_map(lambda *a: deep_trajectory(*a, depth), *args), valid)
    # a time grid: the table of each parameter set is built once and shared by its times
    params = [jnp.broadcast_to(a, p_shape) for a in params]
    valid_p = valid_params(*params)
    ones = jnp.ones(p_shape, t.dtype)
    flat = [jnp.where(valid_p, a, ones).reshape(-1) for a in params]
    prep = materialise(jax.vmap(lambda *a: prepare_trajectory(*a, depth))(*flat))
    if all(a == 1 or b == 1 for a, b in zip(t.shape, p_shape)) and t.size and flat[0].size:
        # an outer product of times and parameter sets: (sets, times), then the axes interleaved; no
        # per-element gathers of the sets' scalars
        t_ok = t >= 0
        t_in = jnp.where(t_ok, t, jnp.ones_like(t)).reshape(-1)
        grid = lambda fn: jax.vmap(lambda p: jax.vmap(lambda s: fn(p, s, depth))(t_in))(prep)  # noqa: E731
        u, rare = grid(evaluate_fast)
        # the tails below the grid and the exact decays only where some element needs them (under an
        # outer vmap both branches run, as evaluate_trajectory does)
        u = jax.lax.cond(jnp.any(rare), lambda u: jnp.where(rare, grid(evaluate_rare), u), lambda u: u, u)
        rank = len(shape)
        u = u.reshape(p_shape + t.shape).transpose([k for i in range(rank) for k in (i, rank + i)])
        return mark_invalid(u.reshape(shape), t_ok & valid_p)
    index = jnp.broadcast_to(jnp.arange(math.prod(p_shape)).reshape(p_shape), shape).reshape(-1)
    t = jnp.broadcast_to(t, shape)
    valid = (t >= 0) & jnp.broadcast_to(valid_p, shape)
    t_flat = jnp.where(valid, t, jnp.ones_like(t)).reshape(-1)
    one = lambda t, i: evaluate_trajectory(prep, t, depth, row=i)  # noqa: E731 (gathers entries, not tables)
    u = jax.vmap(one)(t_flat, index) if t_flat.size else jnp.zeros((0,), t.dtype)
    return mark_invalid(u.reshape(shape), valid)


def _valid_params(lam, eps, gamma, w0, tau, n):
    return (lam >= 0) & (eps >= 0) & (gamma >= 0) & (w0 >= 0) & (tau > 0) & (n > 0)


def _valid_signed(k, eps, gamma, w0, tau, n):
    return (k + eps > 0) & (gamma >= 0) & (w0 >= 0) & (tau > 0) & (n > 0)


def _roots_map(one, lam, eps, gamma, n):
    """``one(lam, eps, gamma, n)`` per element of the broadcast arguments, NaN where out of range."""
    lam, eps, gamma, n = prepare(lam=lam, eps=eps, gamma=gamma, n=n)
    valid = (lam >= 0) & (eps >= 0) & (gamma >= 0) & (n > 0)
    ones = jnp.ones_like(lam)
    return mark_invalid(_flat_map(one, *[jnp.where(valid, a, ones) for a in (lam, eps, gamma, n)]), valid)


@jax.jit(static_argnames="depth")
def deep_fixed_point(lam, eps, gamma, n, *, depth: int) -> Array:
    def one(lam, eps, gamma, n):
        z_star, _, _, has_root = deep_roots(lam, eps, gamma, n, depth)
        return jnp.where(has_root, z_star ** (-depth / (depth - 2.0)), 0.0)

    return _roots_map(one, lam, eps, gamma, n)


@jax.jit(static_argnames="depth")
def deep_threshold(lam, eps, gamma, n, *, depth: int) -> Array:
    def one(lam, eps, gamma, n):
        _, z_th, _, has_root = deep_roots(lam, eps, gamma, n, depth)
        finite = jnp.isfinite(z_th)  # no threshold without weight decay: 0
        u = jnp.where(finite, z_th, 1.0) ** (-depth / (depth - 2.0)) * finite
        return jnp.where(has_root, u, jnp.inf)

    return _roots_map(one, lam, eps, gamma, n)


@jax.jit(static_argnames="depth")
def deep_learning_time(f, lam, eps, gamma, w0, tau, n, *, depth: int) -> Array:
    f, lam, eps, gamma, w0, tau, n = prepare(f=f, lam=lam, eps=eps, gamma=gamma, w0=w0, tau=tau, n=n)
    valid = (f > 0) & (f < 1) & (lam >= 0) & (eps >= 0) & (gamma >= 0) & (w0 >= 0) & (tau > 0) & (n > 0)
    ones = jnp.ones_like(f)
    args = [
        jnp.where(valid, a, ones * 0.5 if i == 0 else ones)
        for i, a in enumerate((f, lam, eps, gamma, w0, tau, n))
    ]
    t = _flat_map(lambda *a: deep_time_to(*a, depth), *args)
    return mark_invalid(t, valid)
