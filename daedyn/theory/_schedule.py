"""Closed forms under a piecewise-constant schedule of eps (and gamma, tau): exact, piece by piece.

With ``eps(t)`` (and ``gamma(t)``) constant on each piece, the balanced small-start equation

    tau dw/dt = 2 w (a(t) - k(t) w),    a = lam - n gamma(t),    k = lam + eps(t)

is a Bernoulli equation (``v = 1 / w`` obeys the linear ``tau dv/dt = -2 a v + 2 k``) and Eqs. (2)-(3)
from any start (Eq. 5, no weight decay) are a Riccati system: on each piece the constant-coefficient
solution is exact, so the solution under the schedule is the constant-eps solution *composed* over
the pieces. The state at each piece start is carried by one ``lax.scan`` over the pieces (not over
times), and every requested time is then one constant-eps evaluation from the state at the start of
its piece (``searchsorted`` + a gather): the cost is ``(K + 1)`` closed-form evaluations per output
element, and it inherits the robust constant-eps forms' finiteness and gradients in every regime.

When eps and gamma are both schedules their boundaries are merged (sorted union; a repeated time
gives an empty piece, which is harmless). A schedule with a single piece (no boundaries) calls the
constant-eps function itself, so its result is bit-identical to passing the constant.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array, lax

from daedyn._checks import check_broadcastable, check_range
from daedyn.schedules import PiecewiseConstant, is_schedule
from daedyn.theory._args import finite_result, mark_invalid

__all__ = ["small_init_scheduled", "dae_scheduled", "schedule_pieces"]


def _require_piecewise(name: str, x, func: str) -> None:
    if is_schedule(x) and not isinstance(x, PiecewiseConstant):
        raise ValueError(f"{name}: {func} is exact for piecewise-constant schedules only; got a "
                         f"{type(x).__name__} schedule (integrate it with daedyn.dynamics.scalar_flow, or "
                         f"approximate it by daedyn.schedules.piecewise_constant)")


def schedule_pieces(*params) -> tuple[Array | None, list]:
    """The merged boundaries of the piecewise-constant schedules among ``params`` and the value of
    each parameter on every piece (``(P,) + shape`` for a schedule, unchanged for a constant).

    Returns ``(None, params)`` when no schedule has a boundary (a single piece everywhere), with each
    schedule replaced by its one value.
    """
    bounds = [p.boundaries for p in params if isinstance(p, PiecewiseConstant) and p.boundaries.size]
    if not bounds:
        return None, [p.values[0] if isinstance(p, PiecewiseConstant) else p for p in params]
    b = jnp.sort(jnp.concatenate(bounds)) if len(bounds) > 1 else bounds[0]
    starts = jnp.concatenate([jnp.zeros((1,), b.dtype), b])
    return b, [p(starts) if isinstance(p, PiecewiseConstant) else p for p in params]


def _compose(step, state0, boundaries, t, piece_args, final=None):
    """Chain ``step(elapsed, state, *args_j)`` over the pieces, then evaluate at ``t``.

    ``state0`` and ``t`` have the full shape ``S``; each ``piece_args`` leaf is ``(P,) + S``. Returns
    ``final(elapsed, state, *args)`` (default ``step``) from the start of ``t``'s piece.
    """
    starts = jnp.concatenate([jnp.zeros((1,), boundaries.dtype), boundaries]).astype(t.dtype)
    lengths = jnp.diff(starts)  # (P - 1,)

    def body(state, x):
        length, args = x
        nxt = step(jnp.broadcast_to(length, t.shape), state, *args)
        return nxt, state

    head = jax.tree_util.tree_map(lambda a: a[:-1], piece_args)
    last, firsts = lax.scan(body, state0, (lengths, head))  # firsts[j]: state at the start of piece j
    at_start = jax.tree_util.tree_map(lambda f, s: jnp.concatenate([f, s[None]]), firsts, last)
    idx = jnp.searchsorted(boundaries.astype(t.dtype), t, side="right")  # piece of each time, shape S
    pick = lambda a: jnp.take_along_axis(a, idx[None], axis=0)[0]
    state = jax.tree_util.tree_map(pick, at_start)
    args = jax.tree_util.tree_map(pick, piece_args)
    elapsed = jnp.maximum(t - starts[idx], 0.0)
    return (final or step)(elapsed, state, *args)


def _full(shape, dtype, *xs):
    return [jnp.broadcast_to(jnp.asarray(x, dtype), shape) for x in xs]


def _lead(x, pieces, shape, dtype):
    """``(P or 1,) + trailing`` piece values broadcast to ``(P,) + shape`` (trailing aligned right)."""
    x = jnp.asarray(x, dtype)
    x = x.reshape(x.shape[:1] + (1,) * (len(shape) - x.ndim + 1) + x.shape[1:])
    return jnp.broadcast_to(x, (pieces,) + shape)


@jax.jit
def _small_init_pieces_impl(t, lam, eps_p, gamma_p, w0, tau_p, n, boundaries):
    from daedyn.theory._balanced import _small_init_trajectory_impl as one_piece

    dtype = jnp.result_type(t, lam, eps_p, gamma_p, w0, tau_p, n, boundaries, 0.0)
    shape = jnp.broadcast_shapes(jnp.shape(t), jnp.shape(lam), jnp.shape(w0), jnp.shape(n),
                                 eps_p.shape[1:], gamma_p.shape[1:], tau_p.shape[1:])
    t, lam, w0, n = _full(shape, dtype, t, lam, w0, n)
    pieces = boundaries.shape[0] + 1
    eps_p, gamma_p, tau_p = (_lead(x, pieces, shape, dtype) for x in (eps_p, gamma_p, tau_p))

    def step(elapsed, w, eps, gamma, tau):  # tau = N / alpha on the piece: an alpha schedule
        return one_piece(elapsed, lam, eps, gamma, w, tau, n)

    w = _compose(step, w0, boundaries, t, (eps_p, gamma_p, tau_p))
    valid = ((t >= 0) & (w0 >= 0) & jnp.all(eps_p >= 0, axis=0) & jnp.all(gamma_p >= 0, axis=0)
             & jnp.all(tau_p > 0, axis=0))
    return mark_invalid(w, valid)


def _as_pieces(x):
    x = jnp.asarray(x)
    return x[None]


def small_init_scheduled(t, lam, eps, gamma, *, w0, tau, n) -> Array:
    """:func:`daedyn.theory.small_init_trajectory` with eps, gamma and/or tau piecewise-constant schedules.

    Called by ``small_init_trajectory`` when a schedule is passed (see its docstring); exact, chained
    over the pieces (module docstring). A tau schedule is a learning-rate schedule, tau(t) = N / alpha(t):
    on each piece the equation is the constant one with that piece's tau.
    """
    from daedyn.theory._balanced import _check_small_init, _small_init_trajectory_impl

    func = "small_init_trajectory"
    for name, x in (("eps", eps), ("gamma", gamma), ("tau", tau)):
        _require_piecewise(name, x, func)
    check_range("t", t, 0.0)
    eps_v, gamma_v, tau_v = (x.values if is_schedule(x) else x for x in (eps, gamma, tau))
    _check_small_init(lam, eps_v, gamma_v, w0, tau_v, n, t=t)
    boundaries, (eps_p, gamma_p, tau_p) = schedule_pieces(eps, gamma, tau)
    if boundaries is None:  # one piece: the constant-eps function itself (bit-identical)
        return finite_result(func, _small_init_trajectory_impl(t, lam, eps_p, gamma_p, w0, tau_p, n))
    eps_p, gamma_p, tau_p = (p if is_schedule(x) else _as_pieces(p)
                             for x, p in ((eps, eps_p), (gamma, gamma_p), (tau, tau_p)))
    check_broadcastable(t=t, lam=lam, eps=eps_p[0], gamma=gamma_p[0], w0=w0, tau=tau_p[0], n=n)
    return finite_result(func, _small_init_pieces_impl(t, lam, eps_p, gamma_p, w0, tau_p, n, boundaries))


@jax.jit
def _dae_pieces_impl(t, lam, eps_p, w1, w2, tau, boundaries):
    from daedyn.theory._general import _dae_w_fwd, _dae_weights_impl

    dtype = jnp.result_type(t, lam, eps_p, w1, w2, tau, boundaries, 0.0)
    shape = jnp.broadcast_shapes(jnp.shape(t), jnp.shape(lam), jnp.shape(w1), jnp.shape(w2), jnp.shape(tau),
                                 eps_p.shape[1:])
    t, lam, w1, w2, tau = _full(shape, dtype, t, lam, w1, w2, tau)
    eps_p = _lead(eps_p, boundaries.shape[0] + 1, shape, dtype)

    def step(elapsed, state, eps):
        return _dae_weights_impl(elapsed, lam, eps, state[0], state[1], tau)

    def final(elapsed, state, eps):
        # the last piece through the forward-mode form of Eq. (5) (finite gradients on the saddle line)
        return _dae_w_fwd(elapsed / tau, lam, eps, state[0], state[1])

    w = _compose(step, (w1, w2), boundaries, t, (eps_p,), final)
    valid = (t >= 0) & (lam >= 0) & jnp.all(eps_p >= 0, axis=0) & (tau > 0)
    return mark_invalid(w, valid)


def dae_scheduled(t, lam, eps, w1, w2, tau) -> Array:
    """:func:`daedyn.theory.dae_trajectory` with a piecewise-constant eps schedule (exact, chained)."""
    from daedyn.theory._general import _check_args, _dae_trajectory_impl

    func = "dae_trajectory"
    _require_piecewise("eps", eps, func)
    _check_args(lam, eps.values, w1, w2, tau, t=t)
    boundaries, (eps_p,) = schedule_pieces(eps)
    if boundaries is None:
        return finite_result(func, _dae_trajectory_impl(t, lam, eps_p, w1, w2, tau))
    check_broadcastable(t=t, lam=lam, eps=eps_p[0], w1=w1, w2=w2, tau=tau)
    return finite_result(func, _dae_pieces_impl(t, lam, eps_p, w1, w2, tau, boundaries))
