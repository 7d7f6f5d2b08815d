"""The theory side of :func:`daedyn.train.compare_with_theory` for a run trained under schedules (private).

A :class:`~daedyn.train.TrainResult` of ``train(eps=schedule)``, ``train(gamma=schedule)`` or
``train(alpha=schedule)`` carries its ``eps``, ``gamma`` and ``tau`` = N / alpha as schedules (in the
paper's units). The two predictions then follow the same schedules, direction by direction, from
the balanced start w1 = w2 = sqrt(w0):

- ``continuous``: the chained closed form :func:`daedyn.theory.small_init_trajectory` (exact for
  piecewise-constant eps, gamma and tau); with a continuous schedule (a ramp, a function; eps, gamma
  or alpha) the scheduled RK4 flow :func:`daedyn.dynamics.scalar_flow`, with every jump of the
  piecewise-constant schedules among its time steps (the saves and the jumps form its time grid).
- ``discrete``: the scheduled recursion :func:`daedyn.dynamics.scalar_gd`: epoch k uses eps(k),
  gamma(k) and alpha(k) = N / tau(k), the convention of the training loop, so that a marginalised
  run from the decoupling start equals it to rounding.

Per-direction summaries that need one value: the fixed point is the one in force at the last
record (eps and gamma there), and ``alpha_lam_over_n`` uses the largest learning rate (the smallest
tau), the step that decides how far gradient descent is from the flow. A one-piece schedule is its
constant (the comparison is then that of the constant run, bit for bit). A run that starts at
``t[0] > 0`` (``start_epoch``) sees the schedules from there (:func:`daedyn.schedules.shift`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from daedyn import dynamics, theory
from daedyn._checks import concrete
from daedyn.schedules import divided
from daedyn.schedules import PiecewiseConstant, is_schedule, shift

__all__ = ["is_scheduled", "without_one_piece", "scheduled_theory"]

_SCALAR_W = ("w",)  # the one scalar_gd / scalar_flow observable read here


def is_scheduled(result) -> bool:
    """Whether any of the run's eps, gamma, tau is a schedule."""
    return any(is_schedule(x) for x in (result.eps, result.gamma, result.tau))


def without_one_piece(result):
    """``result`` with every one-piece schedule (no boundary) replaced by its one value, so that it
    is compared exactly as the constant run (bit for bit)."""
    one = lambda x: x.values[0] if isinstance(x, PiecewiseConstant) and x.values.shape[0] == 1 else x
    return result._replace(eps=one(result.eps), gamma=one(result.gamma), tau=one(result.tau))


def _grid(ts: np.ndarray, *xs) -> tuple[np.ndarray, np.ndarray]:
    """The save times with every jump of the piecewise-constant ``xs`` inside (0, ts[-1]) added, and
    the indices of the save times in that grid."""
    jumps = [np.asarray(concrete(x.boundaries), np.float64).ravel() for x in xs
             if isinstance(x, PiecewiseConstant) and concrete(x.boundaries) is not None]
    extra = np.concatenate(jumps) if jumps else np.zeros(0)
    extra = extra[(extra > 0) & (extra < ts[-1])]
    grid = np.union1d(ts, extra)
    return grid, np.searchsorted(grid, ts)


def scheduled_theory(result, lam, w0, t, n, depth: int):
    """(continuous (T, D), discrete (T, D), fixed point (D,), alpha lam / N (D,)) of a scheduled run
    (module docstring). ``lam`` and ``w0`` are the compared directions' (D,), ``t`` the record times."""
    if depth != 2:
        raise ValueError(f"compare_with_theory of a run with eps, gamma or alpha schedules needs a "
                         f"one-hidden-layer network (depth 2); got depth {depth}")
    tau = result.tau
    dt = t.dtype
    t0 = float(np.asarray(result.t[0]))
    eps, gamma = result.eps, result.gamma
    if t0:  # a resumed run: the schedules seen from its first record
        eps, gamma, tau = (shift(x, t0) if is_schedule(x) else x for x in (eps, gamma, tau))
    ts = t - jnp.asarray(t0, dt)
    u = jnp.sqrt(w0)
    piecewise = all(isinstance(x, PiecewiseConstant) or not is_schedule(x) for x in (eps, gamma, tau))
    if piecewise:  # the chained closed form: exact per piece
        cont = theory.small_init_trajectory(ts[:, None], lam[None, :], eps, gamma, w0=w0[None, :], tau=tau,
                                            n=n)
    else:  # a continuous eps schedule: the scheduled RK4 flow, the jumps of the others on its grid
        grid, at = _grid(np.asarray(ts, np.float64), eps, gamma, tau)
        flow = dynamics.scalar_flow(jnp.asarray(grid, dt), lam, eps, u, u, tau=tau, gamma=gamma, n=n)
        cont = flow.w.T[at]
    epochs = int(np.asarray(result.t[-1] - result.t[0]))
    if epochs:
        every = int(np.asarray(result.t[1] - result.t[0]))
        alpha = divided(n, tau if is_schedule(tau) else jnp.asarray(tau, dt))  # alpha(t) = N / tau(t)
        traj = dynamics.scalar_gd(jnp.maximum(lam, 0), eps, u, u, alpha=alpha, epochs=epochs, gamma=gamma,
                                  n=n, save_every=every, check_stability=False, observables=_SCALAR_W)
        disc = traj.w.T  # (D, T) -> (T, D)
    else:
        disc = w0[None]
    t_end = jnp.asarray(result.t[-1], dt)
    at_end = lambda x: x(t_end) if is_schedule(x) else x  # the original schedules: absolute epochs
    w_star = jnp.asarray(theory.fixed_point(lam, at_end(result.eps), at_end(result.gamma), n=result.n), dt)
    if isinstance(tau, PiecewiseConstant):
        tau_min = jnp.min(tau.values, axis=0)
    elif is_schedule(tau):  # the smallest tau any step of the run uses
        tau_min = jnp.min(tau(jnp.arange(max(epochs, 1), dtype=dt)), axis=0)
    else:
        tau_min = tau
    return cont, disc, w_star, jnp.asarray(lam, dt) / jnp.asarray(tau_min, dt)
