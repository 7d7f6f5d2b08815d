"""Built-in sweep entry points whose axes are the piece values of schedules (private).

A piecewise-constant schedule with K boundaries has K + 1 values; here each value is its own named
parameter, ``eps_0, ..., eps_K`` (and ``gamma_i``, ``alpha_i``), so any of them can be a sweep axis
(vmapped like every other axis) or a constant, with the boundaries a constant list. A name given no
pieces falls back to the constant ``eps`` / ``gamma`` / ``alpha``. Registered in
:data:`daedyn.sweep._builtins.ENTRY_POINTS` as ``"theory.scheduled_trajectory"`` and
``"dynamics.scheduled_gd"``.

Piece values are traced inside the sweep, so they are not range-checked before the run: a negative
piece gives NaN (the closed form's invalid marker) or a non-finite run, i.e. a bad point with its
status, never an exception that loses the other points.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from daedyn import dynamics, schedules, theory
from daedyn.sweep._entries import entry_point

__all__ = ["scheduled_trajectory", "scheduled_gd", "SCHEDULED_NAMES"]

#: The schedulable parameters: the piece values of ``name`` are the keywords ``name_0 ... name_K``.
SCHEDULED_NAMES = ("eps", "gamma", "alpha")


def _piecewise(boundaries, pieces: dict, constants: dict) -> dict:
    """{name: schedule or constant} from the piece keywords; refuses unknown or incomplete pieces."""
    b = np.asarray(boundaries, np.float64).reshape(-1)
    k1 = b.size + 1
    wanted = {f"{name}_{i}" for name in SCHEDULED_NAMES for i in range(k1)}
    unknown = sorted(set(pieces) - wanted)
    if unknown:
        raise ValueError(f"unknown parameters {unknown}: with {b.size} boundaries the schedule pieces are "
                         f"named eps_0..eps_{k1 - 1} (also gamma_i, alpha_i)")
    out = {}
    for name in SCHEDULED_NAMES:
        keys = [f"{name}_{i}" for i in range(k1)]
        given = [k for k in keys if k in pieces]
        if not given:
            out[name] = constants[name]
            continue
        if len(given) != k1:
            missing = sorted(set(keys) - set(given))
            raise ValueError(f"a {name} schedule needs all {k1} pieces {name}_0..{name}_{k1 - 1}; missing "
                             f"{missing}")
        values = jnp.stack([jnp.asarray(pieces[k]) for k in keys])
        out[name] = schedules.PiecewiseConstant(jnp.asarray(b, values.dtype), values)
    return out


def _time_dims(outputs):
    def dims(c):
        return {o: ("t",) for o in outputs} if np.ndim(c.get("t", 0.0)) == 1 else {}

    def coords(c):
        return {"t": np.asarray(c["t"])} if np.ndim(c.get("t", 0.0)) == 1 else {}
    return dims, coords


_d, _c = _time_dims(("w",))


@entry_point(dims=_d, coords=_c)
def scheduled_trajectory(*, t, lam, boundaries, w0, tau=1.0, n=1, eps=0.0, gamma=0.0, **pieces):
    """``theory.small_init_trajectory`` under piecewise-constant eps / gamma / alpha schedules whose
    piece values ``eps_0..eps_K`` (``gamma_i``, ``alpha_i``) are sweep axes or constants; learning-rate
    pieces replace the constant ``tau`` by tau_i = n / alpha_i. Exact (chained closed form)."""
    s = _piecewise(boundaries, pieces, dict(eps=eps, gamma=gamma, alpha=None))
    a = s["alpha"]
    if a is not None:
        tau = schedules.PiecewiseConstant(a.boundaries, n / a.values)
    return {"w": theory.small_init_trajectory(t, lam, s["eps"], s["gamma"], w0=w0, tau=tau, n=n)}


_GD_OUT = ("w", "weight_norm", "loss")


def _gd_epochs(c):
    every = max(int(c.get("save_every", 1)), 1)
    return {"epoch": np.arange(int(c["epochs"]) // every + 1) * every}


@entry_point(static=("epochs", "save_every"), dims={o: ("epoch",) for o in _GD_OUT}, coords=_gd_epochs)
def scheduled_gd(*, lam, w1, w2, boundaries, epochs, n=1, eps=0.0, gamma=0.0, alpha=None, save_every=1,
                 **pieces):
    """``dynamics.scalar_gd`` under piecewise-constant eps / gamma / alpha schedules whose piece
    values are sweep axes or constants (step k uses the values at epoch k); the learning rate is
    the constant ``alpha`` or the pieces ``alpha_0..alpha_K``."""
    s = _piecewise(boundaries, pieces, dict(eps=eps, gamma=gamma, alpha=alpha))
    if s["alpha"] is None:
        raise ValueError("dynamics.scheduled_gd needs the learning rate: a constant or axis 'alpha', or the "
                         "pieces alpha_0..alpha_K")
    traj = dynamics.scalar_gd(lam, s["eps"], w1, w2, alpha=s["alpha"], gamma=s["gamma"], n=n, epochs=epochs,
                              save_every=save_every, check_stability=False, observables=_GD_OUT)
    return {k: getattr(traj, k) for k in _GD_OUT}
