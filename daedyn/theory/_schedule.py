"""Closed forms under a piecewise-constant schedule of eps (and gamma, tau): exact, piece by piece.

With ``eps(t)`` (and ``gamma(t)``) constant on each piece, the balanced small-start equation

    tau dw/dt = 2 w (a(t) - k(t) w),    a = lam - n gamma(t),    k = lam + eps(t)

is a Bernoulli equation (``v = 1 / w`` obeys the linear ``tau dv/dt = -2 a v + 2 k``) and Eqs. (2)-(3)
from any start (Eq. 5, no weight decay) are a Riccati system: on each piece the constant-coefficient
solution is exact, so the solution under the schedule is the constant-eps solution *composed* over
the pieces. The same holds at depth ``L >= 3``: a balanced start stays balanced, and the balanced
direction ``tau du/dt = L u^(2-2/L) (lam - u k) - L n gamma u`` is solved per piece from the mapping
at the piece's start by the quadrature of :mod:`daedyn.theory._deep_solve`.

One chaining serves every depth (:func:`_compose`): a ``lax.scan`` over the pieces (not over times)
builds each piece's *record* from the state at its start (the closed form's arguments at depth 2,
the quadrature table at depth >= 3) once per parameter set, and every requested time is then one
constant-eps evaluation from the record of its piece (``searchsorted`` + a gather). The cost is
``K + 1`` closed-form evaluations per parameter set plus one per output element (depth >= 3: ``K + 1``
tables per parameter set, shared by its times), and it inherits the constant-eps forms' finiteness
and gradients in every regime.

When eps and gamma are both schedules their boundaries are merged (sorted union; a repeated time
gives an empty piece, which is harmless). A schedule with a single piece (no boundaries) calls the
constant-eps function itself, so its result is bit-identical to passing the constant.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import Array, lax

from daedyn.schedules import PiecewiseConstant, merged_boundaries

__all__ = ["schedule_pieces"]  # and the chaining helpers the closed forms share (_compose, ...)


def schedule_pieces(*params) -> tuple[Array | None, list]:
    """The merged boundaries of the piecewise-constant schedules among ``params`` and the value of
    each parameter on every piece (``(P,) + shape`` for a schedule, unchanged for a constant).

    Returns ``(None, params)`` when no schedule has a boundary (a single piece everywhere), with each
    schedule replaced by its one value.
    """
    # one copy of boundaries that several schedules share (no zero-length pieces)
    b = merged_boundaries([p for p in params if isinstance(p, PiecewiseConstant)])
    if b is None:
        return None, [p.values[0] if isinstance(p, PiecewiseConstant) else p for p in params]
    starts = jnp.concatenate([jnp.zeros((1,), b.dtype), b])
    return b, [p(starts) if isinstance(p, PiecewiseConstant) else p for p in params]


def _compose(start, run, state0, piece_args, boundaries, t, owner, final=None):
    """Chain the pieces of ``M`` parameter sets, then evaluate every time from the start of its piece.

    ``state0`` (leaves ``(M,)``) is the state at t = 0 and ``piece_args`` (leaves ``(P, M)``) the
    values on each piece. ``start(state, *args_j)`` is what piece j needs from the state at its start,
    its *record* (leaves ``(M, ...)``), and ``run(elapsed, record)`` the state ``elapsed`` into the piece
    (for ``elapsed`` of any shape X and record leaves ``X + (...)``). ``t`` has any shape S and
    ``owner`` (S, ints in [0, M)) names the parameter set of each time: a record is built once per
    piece and parameter set, not once per time. Returns ``final(elapsed, record)`` (default ``run``)
    at S, from the record of each time's piece.
    """
    m = jax.tree_util.tree_leaves(state0)[0].shape[0]
    starts = jnp.concatenate([jnp.zeros((1,), boundaries.dtype), boundaries]).astype(t.dtype)
    lengths = jnp.concatenate([jnp.diff(starts), jnp.zeros((1,), t.dtype)])  # the last: never run on

    def body(state, x):
        length, args = x
        record = start(state, *args)
        return run(jnp.broadcast_to(length, (m,)), record), record

    _, records = lax.scan(body, state0, (lengths, piece_args))  # records[j]: piece j from its start
    idx = jnp.searchsorted(boundaries.astype(t.dtype), t, side="right")  # piece of each time, shape S
    flat = idx * m + owner
    record = jax.tree_util.tree_map(lambda r: r.reshape((-1,) + r.shape[2:])[flat], records)
    elapsed = jnp.maximum(t - starts[idx], 0.0)
    return (final or run)(elapsed, record)


def _compose_states(run, state0, piece_args, consts, boundaries, t, owner):
    """:func:`_compose` for a piece map without a record: ``run(elapsed, state, args_j, consts)`` is the
    state ``elapsed`` into a piece from the state at its start. Only the states at the piece starts are
    stacked (the last piece is not run in the scan: each time is one run from its piece's start, K
    runs in all for a final time), not the piece values; ``piece_args`` leaves are ``(P, M)`` or ``(P, 1)``
    (one value per piece for every parameter set: not broadcast to M, so neither is its cotangent) and
    ``consts`` leaves ``(M,)``. A piece of negative length (traced boundaries out of order) makes the
    times from its end on NaN."""
    m = state0.shape[0]
    starts = jnp.concatenate([jnp.zeros((1,), boundaries.dtype), boundaries]).astype(t.dtype)
    lengths = jnp.diff(starts)  # P - 1: the pieces that end

    def body(state, x):
        length, args = x
        return run(jnp.broadcast_to(length, (m,)), state, args, consts), state

    last, states = lax.scan(body, state0, (lengths, jax.tree_util.tree_map(lambda a: a[:-1], piece_args)))
    idx = jnp.searchsorted(boundaries.astype(t.dtype), t, side="right")  # piece of each time, shape S
    pieces = lengths.shape[0] + 1
    state = jnp.where(idx == pieces - 1, last[owner], states[jnp.minimum(idx, pieces - 2), owner])
    args = jax.tree_util.tree_map(lambda a: a[idx, owner] if a.shape[1] == m else a[idx, 0], piece_args)
    elapsed = jnp.maximum(t - starts[idx], 0.0)
    out = run(elapsed, state, args, jax.tree_util.tree_map(lambda c: c[owner], consts))
    bad = jnp.concatenate([jnp.zeros((1,), jnp.int32), jnp.cumsum(lengths < 0, dtype=jnp.int32)])[idx] > 0
    return jnp.where(bad, jnp.asarray(jnp.nan, out.dtype), out)


def _full(shape, dtype, *xs):
    return [jnp.broadcast_to(jnp.asarray(x, dtype), shape) for x in xs]


def _lead(x, pieces, shape, dtype):
    """``(P or 1,) + trailing`` piece values broadcast to ``(P,) + shape`` (trailing aligned right)."""
    x = jnp.asarray(x, dtype)
    x = x.reshape(x.shape[:1] + (1,) * (len(shape) - x.ndim + 1) + x.shape[1:])
    return jnp.broadcast_to(x, (pieces,) + shape)


def _flat_vmap(fn, elapsed, record):
    """``fn(record_i, elapsed_i)`` for every element of ``elapsed`` (record leaves ``X + (...)``)."""
    n = math.prod(elapsed.shape)
    record = jax.tree_util.tree_map(lambda r: r.reshape((n,) + r.shape[elapsed.ndim:]), record)
    return jax.vmap(fn)(record, elapsed.reshape(n)).reshape(elapsed.shape)


def _flat_pieces(t, lam, eps_p, gamma_p, w0, tau_p, n, boundaries):
    """The arguments of :func:`_small_init_pieces_impl`: one floating dtype, the parameter sets (the
    broadcast of everything but ``t``) flattened to ``(M,)`` and ``(P, M)``, ``t`` broadcast to the
    output shape S and ``owner`` (S) naming each time's parameter set; a piece value without trailing
    axes (one per piece, the same for every parameter set) stays ``(P, 1)``. The jitted solver then
    compiles once per (dtype, S, M, P, which values are per set) and depth 2 or deeper."""
    dtype = jnp.result_type(t, lam, eps_p, gamma_p, w0, tau_p, n, boundaries, 0.0)
    pieces = boundaries.shape[0] + 1
    p_shape = jnp.broadcast_shapes(jnp.shape(lam), jnp.shape(w0), jnp.shape(n),
                                   eps_p.shape[1:], gamma_p.shape[1:], tau_p.shape[1:])
    shape = jnp.broadcast_shapes(jnp.shape(t), p_shape)
    m = math.prod(p_shape)
    lam, w0, n = (a.reshape(m) for a in _full(p_shape, dtype, lam, w0, n))
    eps_p, gamma_p, tau_p = (_lead(x, pieces, p_shape, dtype).reshape(pieces, m) if jnp.ndim(x) > 1
                             else jnp.broadcast_to(jnp.asarray(x, dtype).reshape(-1, 1), (pieces, 1))
                             for x in (eps_p, gamma_p, tau_p))
    owner = jnp.broadcast_to(jnp.arange(m, dtype=jnp.int32).reshape(p_shape), shape)
    t = jnp.broadcast_to(jnp.asarray(t, dtype), shape)
    return t, owner, lam, eps_p, gamma_p, w0, tau_p, n, boundaries.astype(dtype)


def _as_pieces(x):
    x = jnp.asarray(x)
    return x[None]
