"""Time stepping shared by the scalar and matrix engines (private).

Two loops, both ``lax.scan`` over *save points* with an inner loop over steps, so that memory is
proportional to (state x saved times) and never to the number of steps:

- :func:`gd_loop`: a fixed number of identical steps between equally spaced saves (the GD recursion).
- :func:`fixed_step_loop`: classical RK4 with steps of at most ``dt`` that land exactly on each
  requested save time (the step in interval k is ``(t_k - t_{k-1}) / m_k``).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax import lax

from daedyn._checks import check_range, concrete


def _axpy(a, x, y):
    """y + a * x over matching pytrees."""
    return jtu.tree_map(lambda xi, yi: yi + a * xi, x, y)


def rk4_step(f, y, h, t=None, t_end=None):
    """One classical Runge-Kutta step of size ``h``: of the autonomous system dy/dt = f(y), or, given
    the step's start ``t``, of dy/dt = f(t, y, left) with the stages at t (value from the right),
    t + h/2 and t + h (``left=True``: the value just before t + h). A rate that jumps at a step's end
    (a save time, a breakpoint) is then seen by no stage of the step before it, as diffrax's
    ``jump_ts``: put jump times among the save times and every piece is integrated on its own.
    ``t_end``: the step's end time when it is known exactly (the save time that ends an interval);
    ``t + h`` computed in floating point can land an ulp past it, and a left limit taken past a jump
    is the next piece's value (seen: a depth-3 matrix flow off by 5e-4 in float64 when XLA rounded
    the last step's end differently)."""
    if t is None:
        g = lambda s, y, left=False: f(y)  # noqa: E731
        t = 0.0
    else:
        g = f
    k1 = g(t, y, False)
    k2 = g(t + h / 2, _axpy(h / 2, k1, y), False)
    k3 = g(t + h / 2, _axpy(h / 2, k2, y), False)
    k4 = g(t + h if t_end is None else t_end, _axpy(h, k3, y), True)
    return jtu.tree_map(lambda yi, a, b, c, d: yi + (h / 6) * (a + 2 * b + 2 * c + d), y, k1, k2, k3, k4)


def gd_loop(step, y0, observe, *, n_saves: int, save_every: int, unroll: int = 1):
    """Apply ``step`` ``n_saves * save_every`` times; observe at the start and every ``save_every``.

    Returns ``(y_final, obs)`` where every leaf of ``obs`` has a leading axis of length n_saves + 1.
    The first iteration skips the steps through ``lax.cond`` (on the unbatched loop index), so that
    ``observe`` is traced and compiled once.
    """
    unroll = max(1, min(int(unroll), save_every))

    def advance(y):
        return lax.fori_loop(0, save_every, lambda i, y: step(y), y, unroll=unroll)

    def body(y, i):
        y = lax.cond(i > 0, advance, lambda y: y, y)
        return y, observe(y)

    return lax.scan(body, y0, jnp.arange(n_saves + 1))


def fixed_step_loop(f, y0, observe, hs, ms, m_static: int | None, *, unroll: int = 1, ts=None):
    """RK4 over consecutive intervals; interval k takes ``ms[k]`` (or ``m_static``) steps of ``hs[k]``.

    Autonomous ``f(y)``, or, given the save times ``ts`` (interval k ends at ts[k], the first starts
    at 0), time-dependent ``f(t, y, left)`` (:func:`rk4_step`); then ``observe(t, y)`` too. Step i of
    interval k starts at t_{k-1} + i h_k (times from the interval start, not accumulated).
    Returns ``(y_final, obs)`` with one observation per interval end (leading axis len(hs)).
    With a static step count the loop is a scan (reverse-differentiable); otherwise a while loop.
    """
    if ts is None:
        starts, ends = jnp.zeros_like(hs), None
        look = observe
    else:
        ends = ts
        starts = jnp.concatenate([jnp.zeros((1,), ts.dtype), ts[:-1]])
        look = None

    def outer(y, x):
        t0, t1, h, m = x
        if ts is None:
            one = lambda i, y: rk4_step(f, y, h)  # noqa: E731
        else:
            last = (m_static if m_static is not None else m) - 1
            # the last step ends exactly on the save time t1 (see rk4_step's t_end)
            one = lambda i, y: rk4_step(f, y, h, t0 + i * h, jnp.where(i == last, t1, t0 + (i + 1) * h))  # noqa: E731
        if m_static is not None:
            u = max(1, min(int(unroll), m_static))
            y = lax.fori_loop(0, m_static, one, y, unroll=u)
        else:
            y = lax.fori_loop(0, m, one, y)
        return y, (look(y) if look is not None else observe(t1, y))

    return lax.scan(outer, y0, (starts, starts if ends is None else ends, hs, ms))


#: Most RK4 steps in one save interval: the step counts are int32 (and 2**31 steps take hours).
MAX_STEPS = 2**31 - 1


def check_times(ts_c) -> np.ndarray:
    """Validate concrete save times (1-d, non-empty, finite, >= 0, non-decreasing); return the
    interval lengths (float64, from t = 0)."""
    if ts_c.ndim != 1 or ts_c.size == 0:
        raise ValueError(f"ts must be a non-empty 1-d array of save times; got shape {ts_c.shape}")
    check_range("ts", ts_c, 0.0)
    d = np.diff(ts_c.astype(np.float64), prepend=0.0)
    if np.any(d < 0):
        raise ValueError("ts must be non-decreasing")
    return d


def step_grid(ts, dt: float):
    """Validate save times and plan the fixed steps: ``(ts, hs, ms, m_static)``.

    The integration starts at t = 0; ``ts`` must be finite, >= 0 and non-decreasing. Interval k
    (from t_{k-1}, with t_{-1} = 0, to t_k) is cut into m_k = ceil((t_k - t_{k-1}) / dt) >= 1 equal
    steps. When ``ts`` is concrete and the m_k are (nearly) equal, one static count m = max m_k is
    used for all intervals (each with its own step ``(t_k - t_{k-1}) / m <= dt``), which compiles to
    a scan; otherwise the counts are traced.
    """
    if not (isinstance(dt, int | float) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite float > 0; got {dt!r}")
    ts_c = concrete(ts)
    if ts_c is not None:
        d = check_times(ts_c)
        steps = np.maximum(1, np.ceil(np.round(d / dt, 9)))
        if steps.max() > MAX_STEPS:
            k = int(np.argmax(steps))
            raise ValueError(f"ts/dt: the save interval ending at ts[{k}] = {ts_c[k]:g} needs "
                             f"{steps[k]:.3g} RK4 "
                             f"steps of dt = {dt:g}, more than one run can take ({MAX_STEPS}); pass a larger "
                             f"dt, shorter times, or use the closed form (daedyn.theory) or "
                             f"method='diffrax'")
        ms = steps.astype(np.int32)
        m_max = int(ms.max())
        # A static count wastes m_max - m_k steps per interval: accept up to ~25% waste plus one
        # empty interval (the common ts[0] = 0).
        if m_max * ms.size <= 1.25 * ms.sum() + m_max:
            return ts_c, d / m_max, np.full(ms.shape, m_max, np.int32), m_max
        return ts_c, d / ms, ms, None
    ts = jnp.asarray(ts)
    if ts.ndim != 1:
        raise ValueError(f"ts must be a 1-d array of save times; got shape {ts.shape}")
    d = jnp.diff(ts, prepend=jnp.zeros((1,), ts.dtype))
    ms = jnp.maximum(1, jnp.ceil(d / dt)).astype(jnp.int32)
    return ts, d / ms, ms, None

