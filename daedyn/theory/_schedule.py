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

from daedyn._checks import check_broadcastable, check_range
from daedyn.schedules import PiecewiseConstant, is_schedule
from daedyn.theory._args import finite_result, mark_invalid

__all__ = ["small_init_scheduled", "dae_scheduled", "schedule_pieces"]


def _require_piecewise(name: str, x, func: str, depth: int = 2) -> None:
    """A continuous schedule has no closed form at any depth: ``ValueError`` naming ``name``."""
    if is_schedule(x) and not isinstance(x, PiecewiseConstant):
        flow = "daedyn.dynamics.scalar_flow" + ("" if depth == 2 else f"(..., depth={depth})")
        how = f"integrate it with {flow}, or approximate it by daedyn.schedules.piecewise_constant"
        raise ValueError(f"{name}: {func} is exact for piecewise-constant schedules only; got a "
                         f"{type(x).__name__} schedule ({how})")


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


def _balanced_piece(depth, lam, n):
    """``(start, run)`` of :func:`_compose` for the balanced direction (state: the mapping; piece
    values eps, gamma, tau). ``depth is None``: depth 2, whose record is the closed form's arguments.
    Else (a traced scalar L >= 3: the solver uses L only in its arithmetic, ``m = L / (L - 2)``, so one
    compilation serves every depth) the record is the quadrature table from the mapping at the piece
    start (:func:`daedyn.theory._deep_solve.prepare_trajectory`), shared by the times of the piece."""
    if depth is None:
        from daedyn.theory._balanced import _small_init_trajectory_impl as one_piece

        def start(w, eps, gamma, tau):
            return w, eps, gamma, tau, lam, n

        def run(elapsed, record):
            w, eps, gamma, tau, lam_, n_ = record
            return one_piece(elapsed, lam_, eps, gamma, w, tau, n_)

        return start, run
    from daedyn.theory._deep_solve import evaluate_trajectory, prepare_trajectory

    def start(w, eps, gamma, tau):
        return jax.vmap(lambda *a: prepare_trajectory(*a, depth))(lam, eps, gamma, w, tau, n)

    def run(elapsed, record):
        return _flat_vmap(lambda r, e: evaluate_trajectory(r, e, depth), elapsed, record)

    return start, run


@jax.jit(static_argnames="deep")
def _small_init_pieces_impl(t, owner, lam, eps_p, gamma_p, w0, tau_p, n, boundaries, depth, *, deep: bool):
    """The chained balanced solution: ``t`` and ``owner`` of shape S, the parameter sets ``lam``,
    ``w0``, ``n`` of shape ``(M,)`` and their piece values ``(P, M)``, all of one floating dtype
    (:func:`_flat_pieces`); ``depth`` a scalar of that dtype, used where ``deep`` (L >= 3)."""
    valid_p = ((lam >= 0) & (w0 >= 0) & (n > 0) & jnp.all(eps_p >= 0, axis=0) & jnp.all(gamma_p >= 0, axis=0)
               & jnp.all(tau_p > 0, axis=0))
    valid = (t >= 0) & valid_p[owner]
    if t.size == 0:
        return jnp.zeros(t.shape, t.dtype)
    # out-of-range parameter sets solve a harmless stand-in (finite values and gradients elsewhere);
    # their outputs are NaN (mark_invalid)
    one = jnp.ones_like(lam)
    lam, w0, n = (jnp.where(valid_p, a, one) for a in (lam, w0, n))
    eps_p, gamma_p, tau_p = (jnp.where(valid_p, a, one) for a in (eps_p, gamma_p, tau_p))
    t = jnp.where(valid, t, jnp.zeros_like(t))
    start, run = _balanced_piece(depth if deep else None, lam, n)
    w = _compose(start, run, w0, (eps_p, gamma_p, tau_p), boundaries, t, owner)
    return mark_invalid(w, valid)


def _flat_pieces(t, lam, eps_p, gamma_p, w0, tau_p, n, boundaries):
    """The arguments of :func:`_small_init_pieces_impl`: one floating dtype, the parameter sets (the
    broadcast of everything but ``t``) flattened to ``(M,)`` and ``(P, M)``, ``t`` broadcast to the
    output shape S and ``owner`` (S) naming each time's parameter set. The jitted solver then
    compiles once per (dtype, S, M, P) and depth 2 or deeper, whichever arguments are schedules."""
    dtype = jnp.result_type(t, lam, eps_p, gamma_p, w0, tau_p, n, boundaries, 0.0)
    pieces = boundaries.shape[0] + 1
    p_shape = jnp.broadcast_shapes(jnp.shape(lam), jnp.shape(w0), jnp.shape(n),
                                   eps_p.shape[1:], gamma_p.shape[1:], tau_p.shape[1:])
    shape = jnp.broadcast_shapes(jnp.shape(t), p_shape)
    m = math.prod(p_shape)
    lam, w0, n = (a.reshape(m) for a in _full(p_shape, dtype, lam, w0, n))
    eps_p, gamma_p, tau_p = (_lead(x, pieces, p_shape, dtype).reshape(pieces, m)
                             for x in (eps_p, gamma_p, tau_p))
    owner = jnp.broadcast_to(jnp.arange(m, dtype=jnp.int32).reshape(p_shape), shape)
    t = jnp.broadcast_to(jnp.asarray(t, dtype), shape)
    return t, owner, lam, eps_p, gamma_p, w0, tau_p, n, boundaries.astype(dtype)


def _as_pieces(x):
    x = jnp.asarray(x)
    return x[None]


def small_init_scheduled(t, lam, eps, gamma, *, w0, tau, n, depth: int = 2) -> Array:
    """:func:`daedyn.theory.small_init_trajectory` with eps, gamma and/or tau piecewise-constant schedules.

    Called by ``small_init_trajectory`` when a schedule is passed (see its docstring); exact, chained
    over the pieces (module docstring) at every depth. A tau schedule is a learning-rate schedule,
    tau(t) = N / alpha(t): on each piece the equation is the constant one with that piece's tau.
    """
    from daedyn.theory._balanced import _check_small_init, _small_init_trajectory_impl
    from daedyn.theory._deep import deep_small_init

    func = "small_init_trajectory"
    for name, x in (("eps", eps), ("gamma", gamma), ("tau", tau)):
        _require_piecewise(name, x, func, depth)
    check_range("t", t, 0.0)
    eps_v, gamma_v, tau_v = (x.values if is_schedule(x) else x for x in (eps, gamma, tau))
    _check_small_init(lam, eps_v, gamma_v, w0, tau_v, n, t=t)
    boundaries, (eps_p, gamma_p, tau_p) = schedule_pieces(eps, gamma, tau)
    if boundaries is None:  # one piece: the constant-eps function itself (bit-identical)
        if depth > 2:
            return finite_result(func, deep_small_init(t, lam, eps_p, gamma_p, w0, tau_p, n, depth=depth))
        return finite_result(func, _small_init_trajectory_impl(t, lam, eps_p, gamma_p, w0, tau_p, n))
    eps_p, gamma_p, tau_p = (p if is_schedule(x) else _as_pieces(p)
                             for x, p in ((eps, eps_p), (gamma, gamma_p), (tau, tau_p)))
    check_broadcastable(t=t, lam=lam, eps=eps_p[0], gamma=gamma_p[0], w0=w0, tau=tau_p[0], n=n)
    args = _flat_pieces(t, lam, eps_p, gamma_p, w0, tau_p, n, boundaries)
    depth_v = jnp.asarray(depth, args[0].dtype)  # traced: one compilation for every depth >= 3
    return finite_result(func, _small_init_pieces_impl(*args, depth_v, deep=depth > 2))


@jax.jit
def _dae_pieces_impl(t, lam, eps_p, w1, w2, tau, boundaries):
    from daedyn.theory._general import _dae_w_fwd, _dae_weights_impl

    dtype = jnp.result_type(t, lam, eps_p, w1, w2, tau, boundaries, 0.0)
    shape = jnp.broadcast_shapes(jnp.shape(t), jnp.shape(lam), jnp.shape(w1), jnp.shape(w2), jnp.shape(tau),
                                 eps_p.shape[1:])
    t, lam, w1, w2, tau = _full(shape, dtype, t, lam, w1, w2, tau)
    eps_p = _lead(eps_p, boundaries.shape[0] + 1, shape, dtype)
    m = math.prod(shape)  # one parameter set per output element
    flat = lambda a: a.reshape(a.shape[:a.ndim - len(shape)] + (m,))

    def start(state, eps):
        return state, eps, flat(lam), flat(tau)

    def step(elapsed, record):
        (w1, w2), eps, lam_, tau_ = record
        return _dae_weights_impl(elapsed, lam_, eps, w1, w2, tau_)

    def final(elapsed, record):
        # the last piece through the forward-mode form of Eq. (5) (finite gradients on the saddle line)
        (w1, w2), eps, lam_, tau_ = record
        return _dae_w_fwd(elapsed / tau_, lam_, eps, w1, w2)

    owner = jnp.arange(m, dtype=jnp.int32).reshape(shape)
    w = _compose(start, step, (flat(w1), flat(w2)), (flat(eps_p),), boundaries, t, owner, final)
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
