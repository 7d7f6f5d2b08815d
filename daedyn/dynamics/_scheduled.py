"""Scalar dynamics with an eps (and gamma) schedule: the GD recursion and the RK4 flow (private).

Reached through :func:`daedyn.dynamics.scalar_gd` and :func:`daedyn.dynamics.scalar_flow` when ``eps``
or ``gamma`` is a :class:`daedyn.schedules.Schedule`.

Conventions:

- **GD**: step k (from epoch k to k + 1, k = 0, 1, ...) uses ``eps(k)`` and ``gamma(k)``: the value in
  force at the start of the epoch. A piecewise-constant schedule with integer boundaries therefore
  switches exactly at its boundary epochs.
- **Flow**: the right-hand side at time t uses ``eps(t)``, ``gamma(t)`` (classical non-autonomous RK4;
  a step from t to t + h evaluates the schedule at t, t + h/2 and just before t + h, the left limit).
  A jump inside an RK4 step costs that step its order; put the jump times among the save times
  ``ts`` (every RK4 step then ends on them, exactly as if the pieces were integrated one by one), or
  use the exact closed forms of :mod:`daedyn.theory` for piecewise-constant schedules.
- The ``loss`` saved at time t uses ``eps(t)`` and ``gamma(t)``.

Only the textbook ``lax.scan`` recursion is offered (no fused kernel): the per-step values are
looked up inside the loop, so memory stays proportional to batch x saves.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from daedyn._checks import check_broadcastable, check_fit, check_int, check_range, concrete, float_dtype
from daedyn._linear import check_gd_stability
from daedyn.dynamics._integrate import gd_loop, step_grid
from daedyn.schedules import Exponential, Function, Linear, PiecewiseConstant, is_schedule

__all__ = ["scalar_gd_scheduled", "scalar_flow_scheduled", "schedule_values", "over", "divided"]


def over(t, inner, c):
    """``c / inner(t)``: tau = N / alpha(t) of a learning-rate schedule (a ``Function``'s ``fn``)."""
    return c / inner(t)


def divided(c, x):
    """``c / x``: of a constant, piece by piece of a piecewise-constant schedule (a piecewise schedule
    back), else the schedule c / x(t). tau = n / alpha of a learning-rate schedule, and alpha = n / tau
    back."""
    if isinstance(x, PiecewiseConstant):
        return PiecewiseConstant(x.boundaries, jnp.asarray(c, x.values.dtype) / x.values)
    if is_schedule(x):
        return Function((x, jnp.asarray(c)), over)
    return c / jnp.asarray(x)


def schedule_values(name: str, x, ts=None):
    """Concrete values a schedule (or a constant) takes, for the range and stability checks: the
    piece values, the ramp ends, or any other schedule on the save times ``ts``; None when traced."""
    if isinstance(x, PiecewiseConstant):
        v = concrete(x.values)
    elif isinstance(x, Linear | Exponential):
        a, b = concrete(x.start), concrete(x.end)
        v = None if a is None or b is None else np.stack([a, b])
    elif is_schedule(x):  # a user function, a shifted schedule: its values on the save times
        try:
            v = concrete(x(jnp.asarray(ts)))
        except jax.errors.ConcretizationTypeError:
            v = None
    else:
        return concrete(x)
    return v


def _at(x, t, shape, dtype):
    """The value of a schedule (or constant) at the scalar time ``t``, broadcast to the batch shape."""
    v = x(t) if is_schedule(x) else x
    return jnp.broadcast_to(jnp.asarray(v, dtype), shape)


def _series(x, ts, shape, dtype):
    """(*batch, T): a schedule (or constant) at the save times ``ts``, time last."""
    if not is_schedule(x):
        return jnp.broadcast_to(jnp.asarray(x, dtype)[..., None], shape + ts.shape)
    v = jnp.asarray(x(ts), dtype)  # (T, *trailing)
    v = jnp.moveaxis(v, 0, -1)  # (*trailing, T)
    return jnp.broadcast_to(v, shape + ts.shape)


def _finish(ts, w1s, w2s, lam, eps, gamma, n, inv_tau, n_last=False):
    """The trajectory record; ``inv_tau`` is (*batch,) or, with ``n_last``, alpha(t) (*batch, T) and
    ``n`` (*batch, 1)."""
    from daedyn.dynamics._scalar import ScalarTrajectory

    w1, w2 = jnp.moveaxis(w1s, 0, -1), jnp.moveaxis(w2s, 0, -1)
    shape = w1.shape[:-1]
    eps_t, gamma_t = _series(eps, ts, shape, w1.dtype), _series(gamma, ts, shape, w1.dtype)
    if n_last:
        lam, inv_tau = lam[..., None], inv_tau / n
    else:
        lam, n, inv_tau = (x[..., None] for x in (lam, n, inv_tau))
    w = w1 * w2
    weight_norm = w1 * w1 + w2 * w2
    loss = (lam * (1 - w) ** 2 + eps_t * w * w + n * gamma_t * weight_norm) * (inv_tau / 2)
    return ScalarTrajectory(ts, w1, w2, w, weight_norm, loss)


def _batch_shape(eps, gamma, *xs):
    shapes = [x.shape if is_schedule(x) else jnp.shape(x) for x in (eps, gamma, *xs)]
    return jnp.broadcast_shapes(*shapes)


@functools.partial(jax.jit, static_argnames=("n_saves", "save_every", "unroll"))
def _gd_core(lam, eps, gamma, alpha, n, w1, w2, *, n_saves, save_every, unroll):
    from daedyn.dynamics._scalar import scalar_rhs

    dtype = w1.dtype
    shape = _batch_shape(eps, gamma, lam, alpha, n, w1, w2)
    lam, n, w1, w2 = (jnp.broadcast_to(x, shape) for x in (lam, n, w1, w2))

    def step(y):
        a, b, k = y
        e, g = _at(eps, k, shape, dtype), _at(gamma, k, shape, dtype)
        inv_tau = _at(alpha, k, shape, dtype) / n  # step k uses alpha(k) too
        d1, d2 = scalar_rhs(a, b, lam, e, g, n)
        return a + inv_tau * d1, b + inv_tau * d2, k + 1

    k0 = jnp.zeros((), dtype)  # epochs are exact integers in the float dtype up to 2**24 (float32)
    _, (w1s, w2s) = gd_loop(step, (w1, w2, k0), lambda y: y[:2], n_saves=n_saves, save_every=save_every,
                            unroll=unroll)
    ts = jnp.arange(n_saves + 1, dtype=dtype) * save_every
    if is_schedule(alpha):  # the loss saved at t is scaled by 1 / tau(t) = alpha(t) / n
        return _finish(ts, w1s, w2s, lam, eps, gamma, n[..., None], _series(alpha, ts, shape, dtype),
                       n_last=True)
    return _finish(ts, w1s, w2s, lam, eps, gamma, n, jnp.broadcast_to(alpha, shape) / n)


def _check_schedules(eps, gamma, ts):
    """Range checks of the schedule values (or constants); returns concrete stand-ins for the
    stability check (the largest value of each, which makes the Hessian largest)."""
    out = []
    for name, x in (("eps", eps), ("gamma", gamma)):
        v = schedule_values(name, x, ts)
        if is_schedule(x) and v is not None:
            check_range(f"{name} schedule values", v, 0.0)
            v = np.max(v, axis=0)
        elif not is_schedule(x):
            check_range(name, x, 0.0)
        out.append(v)
    return out


def _require_scan(backend):
    if backend not in ("auto", "scan"):
        raise ValueError(f"backend must be 'auto' or 'scan' with an eps or gamma schedule (the fused kernels "
                         f"take "
                         f"constants); got {backend!r}")


def scalar_gd_scheduled(lam, eps, w1, w2, *, alpha, epochs, gamma, n, save_every, unroll, check_stability,
                        backend, observables):
    """:func:`daedyn.dynamics.scalar_gd` with ``eps`` and/or ``gamma`` schedules (module docstring)."""
    from daedyn.dynamics._notsaved import NotSaved
    from daedyn.dynamics._scalar import _check_outputs, warn_nonfinite, warned

    epochs = check_int("epochs", epochs, 0)
    save_every = check_int("save_every", save_every, 1)
    if epochs % save_every:
        raise ValueError(f"epochs ({epochs}) must be a multiple of save_every ({save_every})")
    observables = _check_outputs(observables)
    _require_scan(backend)
    ts = np.arange(epochs // save_every + 1) * save_every
    eps_max, gamma_max = _check_schedules(eps, gamma, ts)
    alpha_max = schedule_values("alpha", alpha, ts)  # a learning-rate schedule: step k uses alpha(k)
    if alpha_max is not None:
        check_range("alpha schedule values" if is_schedule(alpha) else "alpha", alpha_max, 0.0, lo_open=True)
        alpha_max = np.max(alpha_max, axis=0) if is_schedule(alpha) else alpha_max
    check_range("lam", lam, 0.0)
    check_range("n", n, 0.0, lo_open=True)
    for name, x in (("w1", w1), ("w2", w2)):
        check_range(name, x, -np.inf, np.inf)
    check_broadcastable(lam=lam, n=n, w1=w1, w2=w2,
                        **{k: np.empty(x.shape if is_schedule(x) else np.shape(x)) for k, x in
                           (("eps", eps), ("gamma", gamma), ("alpha", alpha))})
    dtype = float_dtype(lam, w1, w2, *(_leaf_dtype_probe(x) for x in (eps, gamma, alpha)))
    check_fit(dtype, lam=lam, n=n, w1=w1, w2=w2)
    edge = None
    if check_stability and eps_max is not None and gamma_max is not None and alpha_max is not None:
        edge = check_gd_stability(lam, eps_max, gamma_max, alpha_max, n, w1=w1, w2=w2, stacklevel=3)
    unroll = check_int("unroll", unroll, 1)
    eps, gamma, alpha = (_cast(x, dtype) for x in (eps, gamma, alpha))
    args = [jnp.asarray(x, dtype) for x in (lam, n, w1, w2)]
    traj = _gd_core(args[0], eps, gamma, alpha, *args[1:], n_saves=epochs // save_every,
                    save_every=save_every, unroll=unroll)
    traj = traj._replace(**{f: NotSaved(f, observables) for f in traj._fields[1:] if f not in observables})
    return warn_nonfinite("scalar_gd", traj, stacklevel=3, already_warned=warned(edge))


def _leaf_dtype_probe(x):
    """A zero of the dtype of a schedule's leaves (or the constant itself), for the dtype choice."""
    if not is_schedule(x):
        return x
    leaves = jax.tree_util.tree_leaves(x)
    return jnp.zeros((), jnp.result_type(*leaves)) if leaves else 0.0


def _cast(x, dtype):
    if is_schedule(x):
        return jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, dtype), x)
    return jnp.asarray(x, dtype)


@functools.partial(jax.jit, static_argnames=("m_static", "unroll"))
def _rk4_core(ts, hs, ms, lam, eps, gamma, tau, n, w1, w2, *, m_static, unroll):
    from daedyn.dynamics._scalar import scalar_rhs

    dtype = w1.dtype
    shape = _batch_shape(eps, gamma, tau, lam, n, w1, w2)
    lam, n, w1, w2 = (jnp.broadcast_to(x, shape) for x in (lam, n, w1, w2))

    def f(y, e, g, tau_t):
        d1, d2 = scalar_rhs(y[0], y[1], lam, e, g, n)
        return d1 / tau_t, d2 / tau_t

    def rates(t, left=False):  # eps, gamma and tau (a schedule N / alpha(t) too) at t
        pick = (lambda x: x.left_limit(t)) if left else (lambda x: x(t))
        return [jnp.broadcast_to(jnp.asarray(pick(x) if is_schedule(x) else x, dtype), shape)
                for x in (eps, gamma, tau)]

    def rk4(y, t, h):
        # stages at t (value from the right), t + h/2 and t + h (value from the left): a jump at a
        # step's end (a save time) is then seen by no stage of the step before it
        axpy = lambda a, k: (y[0] + a * k[0], y[1] + a * k[1])
        mid = rates(t + h / 2)
        k1 = f(y, *rates(t))
        k2 = f(axpy(h / 2, k1), *mid)
        k3 = f(axpy(h / 2, k2), *mid)
        k4 = f(axpy(h, k3), *rates(t + h, left=True))
        return tuple(y[i] + (h / 6) * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]) for i in range(2))

    starts = jnp.concatenate([jnp.zeros((1,), dtype), ts[:-1]])

    def outer(y, x):
        t0, h, m = x
        step = lambda i, y: rk4(y, t0 + i * h, h)  # times from the interval start, not accumulated
        if m_static is not None:
            y = jax.lax.fori_loop(0, m_static, step, y, unroll=max(1, min(int(unroll), m_static)))
        else:
            y = jax.lax.fori_loop(0, m, step, y)
        return y, y

    _, (w1s, w2s) = jax.lax.scan(outer, (w1, w2), (starts, hs, ms))
    if is_schedule(tau):  # the loss saved at t is scaled by 1 / tau(t)
        tau_t = _series(tau, ts, shape, dtype)
        return _finish(ts, w1s, w2s, lam, eps, gamma, n[..., None], n[..., None] / tau_t, n_last=True)
    return _finish(ts, w1s, w2s, lam, eps, gamma, n, 1 / jnp.broadcast_to(tau, shape))


def scalar_flow_scheduled(ts, lam, eps, w1, w2, *, tau, gamma, n, method, dt, unroll) -> Array:
    """:func:`daedyn.dynamics.scalar_flow` with ``eps``, ``gamma`` and/or ``tau`` schedules (RK4 only; a
    tau schedule N / alpha(t) is the flow of a learning-rate schedule)."""
    from daedyn.dynamics._scalar import default_dt, warn_nonfinite

    if method != "rk4":
        raise ValueError(f"method must be 'rk4' with an eps, gamma or tau schedule; got {method!r}")
    ts_c = concrete(ts)
    eps_max, gamma_max = _check_schedules(eps, gamma, ts_c if ts_c is not None else np.zeros(1))
    check_range("lam", lam, 0.0)
    check_range("n", n, 0.0, lo_open=True)
    tau_values = schedule_values("tau", tau, ts_c if ts_c is not None else np.zeros(1))
    if tau_values is not None:
        check_range("tau schedule values" if is_schedule(tau) else "tau", tau_values, 0.0, lo_open=True)
    tau_min = np.min(tau_values, axis=0) if is_schedule(tau) and tau_values is not None else tau
    for name, x in (("w1", w1), ("w2", w2)):
        check_range(name, x, -np.inf, np.inf)
    dtype = float_dtype(lam, w1, w2, *(_leaf_dtype_probe(x) for x in (eps, gamma, tau)))
    check_fit(dtype, ts=ts, lam=lam, n=n, w1=w1, w2=w2)
    if dt is None:
        if eps_max is None or gamma_max is None or tau_min is None or is_schedule(tau_min):
            raise ValueError("dt must be given when the schedule values are traced")
        dt = default_dt(lam, eps_max, w1, w2, gamma=gamma_max, tau=tau_min, n=n)  # the fastest piece
    ts, hs, ms, m_static = step_grid(ts, float(dt) if isinstance(dt, int | float) else dt)
    args = [jnp.asarray(x, dtype) for x in (ts, hs)] + [jnp.asarray(ms, jnp.int32)]
    eps, gamma = (_cast(x, dtype) for x in (eps, gamma))
    rest = [jnp.asarray(x, dtype) for x in (lam,)]
    tail = [_cast(tau, dtype)] + [jnp.asarray(x, dtype) for x in (n, w1, w2)]
    traj = _rk4_core(*args, *rest, eps, gamma, *tail, m_static=m_static,
                     unroll=check_int("unroll", unroll, 1))
    return warn_nonfinite("scalar_flow", traj, stacklevel=3)

