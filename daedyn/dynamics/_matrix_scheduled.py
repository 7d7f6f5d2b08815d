"""Full-matrix dynamics with eps, gamma and learning-rate schedules: GD and the RK4 flow (private).

Reached through :func:`daedyn.dynamics.matrix_gd` and :func:`daedyn.dynamics.matrix_flow` when
``eps``, ``gamma`` or the rate (``alpha`` for GD, ``tau`` = N / alpha for the flow) is a
:class:`daedyn.schedules.Schedule`. The conventions are those of the scalar engines
(:mod:`daedyn.dynamics._scheduled`):

- **GD**: step k (from epoch k to k + 1) uses ``eps(k)``, ``gamma(k)`` and ``alpha(k)``, the values in
  force at the start of the epoch.
- **Flow**: the right-hand side at time t uses ``eps(t)``, ``gamma(t)`` and ``1 / tau(t)``; an RK4 step
  from t to t + h evaluates the schedules at t, t + h/2 and the left limit at t + h, so a jump on a
  save time is seen by no stage of the step that ends there (put the jumps among the save times
  ``ts``). A tau schedule alone is a change of clock: with s(t) = int_0^t dt' / tau(t') the run is
  the tau = 1 flow at time s(t) (docs/schedules.md).
- The observables saved at time t (the loss) use ``eps(t)`` and ``gamma(t)``; the expected loss does
  not involve the rate, so a rate schedule changes only the steps.

A schedule's value at one time has the shape the constant would have: a scalar noise level (or one
per batch element) with ``eps_dims=0``, a (..., D) per-direction vector with ``eps_dims=1``, a (..., D, D)
symmetric positive semi-definite matrix V^T C V with ``eps_dims=2`` (e.g. a masking rate or a noise
covariance that changes during training). Every piece of a matrix schedule is validated like a
constant term, and the stability check runs on every piece (the ramp ends of a linear or exponential
schedule; a user function's values at the save times). Every step is the shared core's ``_linear.gd_step`` /
``_linear.rhs``, vmapped over the flattened batch inside the time loop (the schedule is looked up
once per step for the whole batch).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from daedyn import _linear as core
from daedyn._checks import check_fit, check_int, check_range, float_dtype
from daedyn.dynamics._integrate import gd_loop, step_grid
from daedyn.schedules import cast as _cast, dtype_probe as _leaf_dtype_probe, schedule_values
from daedyn.schedules import is_schedule

__all__ = ["matrix_gd_scheduled", "matrix_flow_scheduled"]


def _stand_ins(name: str, x, ts, *, pick=np.max, positive: bool = False, each: bool = False,
               fill: float = 0.0) -> list:
    """Concrete arrays standing for ``x`` in the constant-input checks (shape, ranges, the stability
    warning): ``[x]`` for a constant; for a schedule ``pick`` over its values after checking their
    range (the largest eps, gamma or alpha, the strictest for the stability check; the smallest
    tau), or with ``each`` every value (the pieces of a (D, D) term, each checked as a constant term
    by the caller: its off-diagonal entries may be negative); ``fill`` of the value's shape when the
    values are traced (shapes only)."""
    if not is_schedule(x):
        return [x]
    v = schedule_values(name, x, ts)
    if v is None:
        return [np.full(x.shape, fill)]
    v = np.asarray(v, np.float64)
    if each:
        return list(v)
    check_range(f"{name} schedule values", v, 0.0, lo_open=positive)
    return [pick(v, axis=0)]


def _prepare(eigvals, w1, w2, eps, gamma, n, precision, form, eps_dims, ts, **rate):
    """Checks on stand-ins; returns the resolved precision, D, H, form, dtype, batch shape and the
    stand-ins: a list for eps (every piece of a scheduled (D, D) term), one each for gamma and the rate."""
    from daedyn.dynamics._matrix import _check_eig_inputs

    (rate_name, rate_value), = rate.items()
    eps_cs = _stand_ins("eps", eps, ts, each=eps_dims == 2)
    gamma_c, = _stand_ins("gamma", gamma, ts)
    rate_c, = _stand_ins(rate_name, rate_value, ts, pick=np.max if rate_name == "alpha" else np.min,
                         positive=True, fill=1.0)
    for eps_c in eps_cs:  # every piece of a scheduled (D, D) term must be a valid constant term
        checked = _check_eig_inputs(eigvals, w1, w2, eps_c, gamma_c, n, precision, form, eps_dims,
                                    **{rate_name: rate_c})
    precision, d, h, form = checked
    dtype = float_dtype(eigvals, w1, w2, *(_leaf_dtype_probe(x) for x in (eps, gamma, rate_value)))
    check_fit(dtype, eigvals=eigvals, w1=w1, w2=w2, n=n, **{rate_name: rate_c})
    eps_shape = np.shape(eps_cs[0])
    bshape = tuple(np.broadcast_shapes(np.shape(eigvals)[:-1], np.shape(w1)[:-2], np.shape(w2)[:-2],
                                       eps_shape[:len(eps_shape) - eps_dims], np.shape(gamma_c),
                                       np.shape(rate_c), np.shape(n)))
    return precision, d, h, form, dtype, bshape, eps_cs, gamma_c, rate_c


def _observer(form, mm):
    """The observables of one run, vmapped over the flattened batch."""
    from daedyn.dynamics._matrix import _from_state, _observe

    return jax.vmap(lambda y, lam, e, g, n: _observe(lam, *_from_state(form, y), e, g, n, mm))


def _at(x, t, bshape, ncore, dtype, left=False):
    """A schedule (or constant) at time ``t`` (the left limit with ``left``), broadcast to ``bshape``
    + its core and flattened: (B, *core)."""
    from daedyn.dynamics._matrix import _flat

    v = (x.left_limit(t) if left else x(t)) if is_schedule(x) else x
    return _flat(jnp.asarray(v, dtype), bshape, ncore)


def _initial(form, lam, w1, w2, n, bshape):
    from daedyn.dynamics._matrix import _flat, _to_state

    flat = [_flat(x, bshape, c) for x, c in ((lam, 1), (w1, 2), (w2, 2), (n, 0))]
    y0 = jax.vmap(lambda a, b: _to_state(form, a, b))(flat[1], flat[2])
    return flat[0], y0, flat[3]


def _result(t, obs, y, form, bshape):
    from daedyn.dynamics._matrix import _from_state, _pack

    obs = jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, 0, 1), obs)  # (T, B, ...) -> (B, T, ...)
    y = jax.vmap(lambda y: _from_state(form, y))(y)
    return _pack(t, obs, y, bshape)


@functools.partial(jax.jit, static_argnames=("bshape", "n_saves", "save_every", "precision", "form",
                                             "unroll", "eps_dims"))
def _gd_core(lam, w1, w2, eps, gamma, alpha, n, *, bshape, n_saves, save_every, precision, form, unroll,
             eps_dims):
    dtype = w1.dtype
    mm = core.matmul_fn(precision)
    lam, y0, n = _initial(form, lam, w1, w2, n, bshape)
    observe_b = _observer(form, mm)
    step_b = jax.vmap(lambda y, lam, e, g, a, n: core.gd_step(y, lam, e, n=n, gamma=g, alpha=a, mm=mm,
                                                              form=form))
    values = lambda k: (_at(eps, k, bshape, eps_dims, dtype), _at(gamma, k, bshape, 0, dtype))

    def step(carry):
        y, k = carry
        e, g = values(k)
        return step_b(y, lam, e, g, _at(alpha, k, bshape, 0, dtype), n), k + 1  # step k uses alpha(k)

    def observe(carry):
        y, k = carry
        e, g = values(k)
        return observe_b(y, lam, e, g, n)

    k0 = jnp.zeros((), dtype)  # epochs are exact integers in the float dtype up to 2**24 (float32)
    (y, _), obs = gd_loop(step, (y0, k0), observe, n_saves=n_saves, save_every=save_every, unroll=unroll)
    t = jnp.arange(n_saves + 1, dtype=dtype) * save_every
    return _result(t, obs, y, form, bshape)


def matrix_gd_scheduled(eigvals, w1, w2, *, eps, gamma, alpha, n, epochs, save_every, precision, form,
                        unroll, check_stability, eps_dims):
    """:func:`daedyn.dynamics.matrix_gd` with ``eps``, ``gamma`` and/or ``alpha`` schedules (module
    docstring). The stability check takes each schedule's largest value (alpha, eps and gamma each
    at its own maximum: never more lenient than the worst piece, possibly stricter when the largest
    values fall in different pieces)."""
    from daedyn.dynamics._matrix import _stability
    from daedyn.dynamics._scalar import warn_nonfinite, warned

    epochs = check_int("epochs", epochs, 0)
    save_every = check_int("save_every", save_every, 1)
    if epochs % save_every:
        raise ValueError(f"epochs ({epochs}) must be a multiple of save_every ({save_every})")
    ts = np.arange(epochs // save_every + 1) * save_every
    precision, d, h, form, dtype, bshape, eps_cs, gamma_c, alpha_c = _prepare(
        eigvals, w1, w2, eps, gamma, n, precision, form, eps_dims, ts, alpha=alpha)
    traced = is_schedule(alpha) and schedule_values("alpha", alpha, ts) is None
    edge = None
    if check_stability and not traced:
        for e in eps_cs:
            edge = _stability(eigvals, min(h, d), e, gamma_c, alpha_c, n, w1, w2, eps_dims=eps_dims)
            if warned(edge):  # one warning for the first piece that cannot settle
                break
    eps, gamma, alpha = (_cast(x, dtype) for x in (eps, gamma, alpha))
    lam, w1, w2, n = (jnp.asarray(x, dtype) for x in (eigvals, w1, w2, n))
    traj = _gd_core(lam, w1, w2, eps, gamma, alpha, n, bshape=bshape, n_saves=epochs // save_every,
                    save_every=save_every, precision=precision, form=form,
                    unroll=check_int("unroll", unroll, 1), eps_dims=eps_dims)
    return warn_nonfinite("matrix_gd", traj, stacklevel=3, already_warned=warned(edge))


@functools.partial(jax.jit, static_argnames=("bshape", "m_static", "precision", "form", "unroll",
                                             "eps_dims"))
def _flow_core(ts, hs, ms, lam, w1, w2, eps, gamma, tau, n, *, bshape, m_static, precision, form, unroll,
               eps_dims):
    dtype = w1.dtype
    mm = core.matmul_fn(precision)
    lam, y0, n = _initial(form, lam, w1, w2, n, bshape)
    observe_b = _observer(form, mm)
    rhs_b = jax.vmap(lambda y, lam, e, g, tau, n: tuple(
        d / tau for d in core.rhs(y, lam, e, ng=n * g, mm=mm, form=form)))

    def values(t, left=False):  # eps, gamma and tau (a schedule N / alpha(t) too) at t
        return (_at(eps, t, bshape, eps_dims, dtype, left), _at(gamma, t, bshape, 0, dtype, left),
                _at(tau, t, bshape, 0, dtype, left))

    def rk4(y, t, h):
        f = lambda y, vals: rhs_b(y, lam, *vals, n)
        axpy = lambda a, k: tuple(yi + a * ki for yi, ki in zip(y, k, strict=True))
        mid = values(t + h / 2)
        k1 = f(y, values(t))
        k2 = f(axpy(h / 2, k1), mid)
        k3 = f(axpy(h / 2, k2), mid)
        k4 = f(axpy(h, k3), values(t + h, left=True))
        return tuple(y[i] + (h / 6) * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]) for i in range(len(y)))

    starts = jnp.concatenate([jnp.zeros((1,), dtype), ts[:-1]])

    def outer(y, x):
        t0, t1, h, m = x
        step = lambda i, y: rk4(y, t0 + i * h, h)  # times from the interval start, not accumulated
        if m_static is not None:
            y = jax.lax.fori_loop(0, m_static, step, y, unroll=max(1, min(int(unroll), m_static)))
        else:
            y = jax.lax.fori_loop(0, m, step, y)
        e, g, _ = values(t1)
        return y, observe_b(y, lam, e, g, n)

    y, obs = jax.lax.scan(outer, y0, (starts, ts, hs, ms))
    return _result(ts, obs, y, form, bshape)


def matrix_flow_scheduled(ts, eigvals, w1, w2, *, eps, gamma, tau, n, dt, precision, form, unroll, eps_dims):
    """:func:`daedyn.dynamics.matrix_flow` with ``eps``, ``gamma`` and/or ``tau`` schedules (RK4; a tau
    schedule N / alpha(t) is the flow of a learning-rate schedule; module docstring)."""
    from daedyn._checks import concrete
    from daedyn.dynamics._scalar import warn_nonfinite

    ts_c = concrete(ts)
    precision, d, h, form, dtype, bshape, _, _, _ = _prepare(
        eigvals, w1, w2, eps, gamma, n, precision, form, eps_dims,
        ts_c if ts_c is not None else np.zeros(1), tau=tau)
    ts, hs, ms, m_static = step_grid(ts, dt)
    check_fit(dtype, ts=ts)
    eps, gamma, tau = (_cast(x, dtype) for x in (eps, gamma, tau))
    args = [jnp.asarray(x, dtype) for x in (ts, hs)] + [jnp.asarray(ms, jnp.int32)]
    lam, w1, w2, n = (jnp.asarray(x, dtype) for x in (eigvals, w1, w2, n))
    traj = _flow_core(*args, lam, w1, w2, eps, gamma, tau, n, bshape=bshape, m_static=m_static,
                      precision=precision, form=form, unroll=check_int("unroll", unroll, 1),
                      eps_dims=eps_dims)
    return warn_nonfinite("matrix_flow", traj, stacklevel=3)
