"""Scalar learning dynamics of one eigen-direction, batched over any grid of settings.

Equations (2)-(3) of the paper with the weight decay of supplement C:

    tau dw1/dt = w2 lam (1 - w2 w1) - eps w2^2 w1 - n gamma w1
    tau dw2/dt = w1 lam (1 - w2 w1) - eps w1^2 w2 - n gamma w2,

advanced either by the exact gradient-descent recursion with learning rate alpha (tau = n / alpha,
one step = one epoch: ``w <- w + RHS / tau``; :func:`scalar_gd`) or as the continuous flow
(:func:`scalar_flow`, fixed-step RK4, or diffrax's adaptive Tsit5 on request).

All settings (lam, eps, gamma, alpha or tau, n, w1, w2) broadcast against each other; the work is
elementwise over the broadcast batch (no vmap), jit-compiled once per shape. Memory is proportional
to batch x saved times.

The loss reported is Eq. (4) per direction with weight decay (supplement C), scaled by 1 / tau
as printed in the paper:

    loss = [lam (1 - w1 w2)^2 + eps (w1 w2)^2 + n gamma (w1^2 + w2^2)] / (2 tau).

Multiply by tau / n (= 1 / alpha) for this direction's share of the per-sample expected loss.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Literal, NamedTuple

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
    concrete,
    float_dtype,
)
from daedyn._extras import require
from daedyn._kernels.scalar_gd import QUANTITIES, pallas_available, scalar_gd_fused
from daedyn._linear import UnstableStepWarning, check_gd_stability
from daedyn.dynamics import _layout
from daedyn.dynamics._integrate import check_times, fixed_step_loop, gd_loop, step_grid
from daedyn.dynamics._notsaved import NotSaved, is_saved, resolve_observables
from daedyn.dynamics._scheduled import scalar_flow_scheduled, scalar_gd_scheduled
from daedyn.schedules import is_schedule
from daedyn.theory._deep import check_depth

__all__ = ["default_dt", "ScalarTrajectory", "scalar_rhs", "scalar_gd", "scalar_flow", "choose_backend"]


class ScalarTrajectory(NamedTuple):
    """Saved states of a batch of scalar runs; every field but ``t`` has shape (*batch, T).

    A field :func:`scalar_gd` was not asked to save (``observables``; by default only ``w`` is
    saved) is a :class:`~daedyn.dynamics.NotSaved` placeholder that raises
    :class:`~daedyn.dynamics.NotSavedError` naming the fix when used.

    Attributes:
      t: (T,) save times in epochs.
      w1, w2: the two weights.
      w: the mapping w1 * w2.
      weight_norm: w1**2 + w2**2 (the squared weight norm of Figure 4).
      loss: Eq. (4) per direction with weight decay, scaled by 1 / tau (see module docstring).
    """

    t: Array
    w1: Array
    w2: Array
    w: Array
    weight_norm: Array
    loss: Array

    def to_xarray(self, batch_dims=None, coords=None, *, time_dim: str = "epoch"):
        """The trajectory as an ``xarray.Dataset`` (its saved fields among w1, w2, w, weight_norm, loss
        over the batch axes and ``time_dim``), with the dimension names of :mod:`daedyn.sweep`.

        Args:
          batch_dims: names of the leading batch axes (e.g. ``("eps",)``; unnamed: ``batch``, ...).
          coords: values along named dimensions (e.g. ``{"eps": eps_values}``).
          time_dim: name of the save-time dimension: ``"epoch"`` (the sweeps' name for gradient
            descent and training) or ``"t"`` (their name for the continuous flows).
        Raises:
          ImportError: xarray (the ``sweep`` extra) is not installed.
        """
        from daedyn._xarray import dataset

        return dataset({k: (f, (time_dim,)) for k, f in zip(OBSERVABLES, self[1:]) if is_saved(f)},
                       time=(time_dim, self.t), batch_dims=batch_dims, coords=coords,
                       what="ScalarTrajectory.to_xarray")


def scalar_rhs(w1: ArrayLike, w2: ArrayLike, lam: ArrayLike, eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0,
               n: ArrayLike = 1) -> tuple[Array, Array]:
    """tau times the time derivatives of (w1, w2): the right-hand sides of Eqs. (2)-(3) plus decay.

    Inputs must already have one shape (rank promotion is not allowed); returns two such arrays.

    Example:
      >>> d1, d2 = scalar_rhs(0.5, 1.0, lam=1.0)  # w2 lam (1 - w), w1 lam (1 - w)
      >>> float(d1), float(d2)
      (0.5, 0.25)
      >>> [float(d) for d in scalar_rhs(0.5, 1.0, lam=1.0, eps=1.0)]  # on w1 w2 = lam / (lam + eps)
      [0.0, 0.0]
    """
    r = lam * (1 - w1 * w2)
    ng = n * gamma
    return w2 * r - eps * w2 * w2 * w1 - ng * w1, w1 * r - eps * w1 * w1 * w2 - ng * w2


def _check_common(lam, eps, gamma, n, w1, w2):
    check_range("lam", lam, 0.0)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    check_range("n", n, 0.0, lo_open=True)
    check_finite("w1", w1)
    check_finite("w2", w2)


OBSERVABLES = ("w1", "w2", "w", "weight_norm", "loss")
DEFAULT_OBSERVABLES = ("w",)  # scalar_gd's default: the mapping (docs/dynamics.md, "Observables")


def _finish(t, w1, w2, lam, eps, ng, inv_tau, observables=OBSERVABLES, time_major=False) -> ScalarTrajectory:
    """Add the derived observables (elementwise, after the loop) to time-major (T, *batch) weights;
    move the time axis last unless ``time_major``. Fields not in ``observables`` are
    :class:`NotSaved` (never computed or written)."""
    if not time_major:
        w1, w2 = jnp.moveaxis(w1, 0, -1), jnp.moveaxis(w2, 0, -1)
    lam, eps, ng, inv_tau = (x[None] if time_major else x[..., None] for x in (lam, eps, ng, inv_tau))
    w = w1 * w2
    weight_norm = w1 * w1 + w2 * w2
    loss = _loss(w, weight_norm, lam, eps, ng, inv_tau)
    keep = lambda name, x: x if name in observables else NotSaved(name, observables)
    return ScalarTrajectory(t, keep("w1", w1), keep("w2", w2), keep("w", w), keep("weight_norm", weight_norm),
                            keep("loss", loss))


def _loss(w, weight_norm, lam, eps, ng, inv_tau):
    return (lam * (1 - w) ** 2 + eps * w * w + ng * weight_norm) * (inv_tau / 2)


def warned(edge) -> bool:
    """Whether :func:`check_gd_stability` (which returned ``edge``) has warned."""
    return edge is not None and bool(np.any(~(np.asarray(edge) < 2)))


def warn_nonfinite(name: str, traj, stacklevel: int = 3, *, already_warned: bool = False,
                   time_axis: int = -1):
    """Return ``traj``; warn (:class:`UnstableStepWarning`) if a concrete run ended NaN or inf.

    Valid inputs were checked before, so a non-finite end is the dynamics diverging (a step too
    large for the settings): a legitimate result, but never a silent one. Nothing more is said when
    the stability check has already warned (``already_warned``): one warning per call. Looks at the last save
    only (a diverged run stays non-finite), one device flag.
    """
    field = next((f for f in traj[1:] if f is not None and is_saved(f)), None)
    if already_warned or field is None or isinstance(field, jax.core.Tracer) or field.size == 0:
        return traj
    last = jnp.take(field, -1, axis=time_axis) if name.startswith("scalar") else field
    bad = ~jnp.isfinite(last)
    if bool(jnp.any(bad)):
        warnings.warn(f"{name}: {int(jnp.sum(bad))} of {bad.size} value(s) at the last save are NaN or inf: "
                      f"the run diverged (the step is too large for these settings; see "
                      f"daedyn.dynamics.check_gd_stability), or its values left the range of "
                      f"{field.dtype}", UnstableStepWarning, stacklevel=stacklevel)
    return traj


def _check_outputs(observables) -> tuple[str, ...]:
    """The fields to save: None is the default (``w``), "all" all five."""
    return resolve_observables(observables, OBSERVABLES, DEFAULT_OBSERVABLES)


def _broadcast_all(shape, *xs):
    return tuple(jnp.broadcast_to(x, shape) for x in xs)


def _gd_inputs(lam, eps, gamma, alpha, n, w1, w2):
    """Broadcast to the batch shape; return it, the arrays, 1 / tau = alpha / n and n gamma."""
    shape = jnp.broadcast_shapes(*(x.shape for x in (lam, eps, gamma, alpha, n, w1, w2)))
    lam, eps, gamma, alpha, n, w1, w2 = _broadcast_all(shape, lam, eps, gamma, alpha, n, w1, w2)
    return shape, (lam, eps, gamma, n, w1, w2), alpha / n, n * gamma


@functools.partial(jax.jit, static_argnames=("n_saves", "save_every", "unroll", "observables", "time_major"))
def _gd_core(lam, eps, gamma, alpha, n, w1, w2, *, n_saves, save_every, unroll, observables=OBSERVABLES,
             time_major=False):
    _, (lam, eps, gamma, n, w1, w2), inv_tau, ng = _gd_inputs(lam, eps, gamma, alpha, n, w1, w2)

    def step(y):
        d1, d2 = scalar_rhs(y[0], y[1], lam, eps, gamma, n)
        return y[0] + inv_tau * d1, y[1] + inv_tau * d2

    _, (w1s, w2s) = gd_loop(step, (w1, w2), lambda y: y, n_saves=n_saves, save_every=save_every,
                            unroll=unroll)
    t = jnp.arange(n_saves + 1, dtype=w1.dtype) * save_every
    return _finish(t, w1s, w2s, lam, eps, ng, inv_tau, observables, time_major)


@functools.partial(jax.jit, static_argnames=("n_saves", "save_every", "backend", "observables", "time_major"))
def _fused_core(lam, eps, gamma, alpha, n, w1, w2, *, n_saves, save_every, backend, observables=OBSERVABLES,
                time_major=False):
    """The same recursion through ``daedyn._kernels.scalar_gd_fused`` on the flattened batch.

    The kernel saves exactly the fields asked for (the loss from its w and weight_norm), start
    included, time-major: no concatenation, and no transpose when ``time_major``."""
    shape, (lam, eps, gamma, n, w1, w2), inv_tau, ng = _gd_inputs(lam, eps, gamma, alpha, n, w1, w2)
    flat = tuple(x.reshape(-1) for x in (lam, eps, ng, inv_tau, w1, w2))
    t = jnp.arange(n_saves + 1, dtype=w1.dtype) * save_every
    need = set(observables) | ({"w", "weight_norm"} if "loss" in observables else set())
    quantities = tuple(q for q in QUANTITIES if q in need)
    saved = scalar_gd_fused(*flat, n_saves=n_saves, save_every=save_every, quantities=quantities,
                            backend=backend, with_start=True)  # (n_saves + 1, B) each
    fields = {q: x.reshape((n_saves + 1,) + shape) for q, x in zip(quantities, saved)}
    if "loss" in observables:
        consts = (x[None] for x in (lam, eps, ng, inv_tau))
        fields["loss"] = _loss(fields["w"], fields["weight_norm"], *consts)
    if not time_major:
        fields = {q: jnp.moveaxis(x, 0, -1) for q, x in fields.items()}
    return ScalarTrajectory(t, *(fields[q] if q in observables else NotSaved(q, observables)
                                 for q in OBSERVABLES))


BACKENDS = ("auto", "pallas", "jnp", "scan", "interpret")


def choose_backend(backend: str = "auto", *, epochs: int = 1, save_every: int = 1, dtype=None,
                   observables: Sequence[str] | str | None = None) -> str:
    """The engine :func:`scalar_gd` uses for ``backend`` (resolves ``"auto"``).

    "auto" is the Pallas kernel on a GPU (float32), and elsewhere whichever of the fused jnp
    recursion and the plain ``lax.scan`` is faster for the save spacing. Measured on the 2-core CPU
    (idle; 10^5 trajectories x 10^3 epochs, all five observables, best of interleaved runs), time of
    "jnp" / time of "scan": 1.28 (save every epoch), 1.30 (2), 1.24 (5), 1.16 (10), 1.12 (20),
    0.75 (50), 0.86 (100): the scan's XLA loop writes the saved rows more cheaply, the fused
    recursion wins once saves are sparse. So "auto" is "scan" below ``save_every = 50`` and "jnp"
    from there on (benchmarks/scalar_dynamics.py). With ``observables=("w",)`` the fused kernel writes
    w alone and "jnp" is 1.8x faster than "scan" even saving every epoch (0.175 vs 0.097 G steps/s),
    so "auto" is "jnp" then; ``observables`` as for :func:`scalar_gd` (None: its default, ``w`` alone).
    "scan" where the fused path has nothing to do (epochs = 0). The Pallas kernel is chosen for
    float32 (and narrower) only: float64 GPU arithmetic is slow and it was verified in float32 only.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; got {backend!r}")
    if backend != "auto":
        return backend
    if epochs == 0:
        return "scan"
    wide = dtype is not None and jnp.dtype(dtype).itemsize > 4
    if pallas_available() and not wide:
        return "pallas"
    w_only = _check_outputs(observables) == ("w",)
    return "jnp" if w_only or save_every >= _FUSED_MIN_SAVE_EVERY else "scan"


_FUSED_MIN_SAVE_EVERY = 50


def scalar_gd(lam: ArrayLike, eps: ArrayLike, w1: ArrayLike, w2: ArrayLike, *, alpha: ArrayLike,
              epochs: int, gamma: ArrayLike = 0.0, n: ArrayLike = 1, save_every: int = 1,
              unroll: int = 4, check_stability: bool = True,
              backend: Literal["auto", "pallas", "jnp", "scan", "interpret"] = "auto",
              observables: Sequence[str] | str | None = None, time_major: bool = False, depth: int = 2):
    """Exact full-batch gradient descent on the scalar loss, epoch by epoch, for a batch of settings.

    One step is ``w1 <- w1 + (alpha / n) * RHS1``, ``w2 <- w2 + (alpha / n) * RHS2`` with the
    right-hand sides of Eqs. (2)-(3) plus weight decay (both from the old values): the Euler step of
    size one epoch of the flow with tau = n / alpha. This is what training does.

    Args:
      lam: eigenvalue of Sigma (a sum over the n samples), >= 0.
      eps: noise level n * s**2, >= 0, or a :mod:`daedyn.schedules` schedule (step k, from epoch k to
        k + 1, uses ``eps(k)``; ``gamma`` likewise; "scan" backend only; docs/schedules.md).
      w1, w2: initial weights (any finite values).
      alpha: learning rate, > 0, or a schedule (step k uses ``alpha(k)``; the loss saved at t is
        scaled by alpha(t) / n).
      epochs: number of steps, a multiple of ``save_every``.
      gamma: weight decay of Eq. (6), >= 0.
      n: number of samples N (1 for the scalar demos), > 0.
      save_every: epochs between saves; the start (t = 0) is always saved.
      unroll: steps per loop iteration of the "scan" backend (a speed knob; results are identical).
      check_stability: warn (:class:`UnstableStepWarning`) when alpha * h_max >= 2 at the fixed
        point (see :func:`check_gd_stability`); only for concrete inputs.
      backend: "pallas" (fused GPU kernel, ``daedyn._kernels.scalar_gd_fused``), "jnp" (the same
        fused recursion as a lax.scan over saves), "scan" (lax.scan over saves of the textbook
        update), "interpret" (the Pallas kernel interpreted, for tests on CPU), or "auto"
        (:func:`choose_backend`: Pallas on GPU, elsewhere "jnp" for ``w`` alone (the default) or
        sparse saves and "scan" otherwise). All are differentiable and give the same numbers up to
        float rounding: the fused backends fold the per-trajectory constants
        (w1 <- (1 - n gamma / tau) w1 + (lam - (lam + eps) w1 w2) w2 / tau), measured <= 3e-16
        relative in float64 and a few ulp in float32 per epoch.
      observables: the fields to save: a subset of ("w1", "w2", "w", "weight_norm", "loss"), or
        "all" for the five. Default ``("w",)``, the mapping alone: dense saving at the recursion's
        speed (the other fields write 5x the bytes; docs/dynamics.md). The others are not computed
        and are :class:`~daedyn.dynamics.NotSaved` placeholders that raise
        :class:`~daedyn.dynamics.NotSavedError` (an AttributeError and a ValueError) naming the fix
        when used. The fused backends save exactly these from the kernel (the loss from its w and
        weight_norm).
      time_major: fields of shape (T, *batch) instead of (*batch, T): the layout the recursion
        writes, so no transpose (measured on the 2-core CPU, 10^5 x 10^3 saving w every epoch:
        the transpose took ~2x the kernel's time; see docs/dynamics.md). Same values.
      depth: number of weight matrices L (int >= 2). L >= 3: the first L - 1 factors start at w1 and
        the last at w2 (balanced when w1 = w2) and the run is
        :func:`daedyn.dynamics.deep_scalar_gd` (returns a :class:`DeepScalarTrajectory`; backend,
        unroll, observables and the stability check apply to depth 2 only).
    Returns:
      :class:`ScalarTrajectory` with T = epochs / save_every + 1 saves; all arguments except
      ``epochs``, ``save_every``, ``unroll`` broadcast together to give the batch shape.
    Raises:
      ValueError: for negative lam, eps or gamma, alpha <= 0, n <= 0, NaN/inf, non-broadcastable
        shapes, epochs not a multiple of save_every, an unknown backend or observable.
    Example:
      >>> traj = scalar_gd(1.0, jnp.array([0.0, 1.0, 5.0]), 0.1, 0.1, alpha=0.01, epochs=3000,
      ...                  save_every=1000)
      >>> traj.w.shape, np.round(np.asarray(traj.w[:, -1], np.float64), 4).tolist()  # 1, 1/2, 1/6
      ((3, 4), [1.0, 0.5, 0.1667])
    """
    if check_depth(depth) > 2:
        from daedyn.dynamics._deep import deep_scalar_gd

        check_broadcastable(w1=w1, w2=w2)
        w1_, w2_ = jnp.broadcast_arrays(jnp.asarray(w1), jnp.asarray(w2))
        factors = jnp.stack([w1_] * (depth - 1) + [w2_], axis=-1)
        return deep_scalar_gd(lam, eps, factors, alpha=alpha, epochs=epochs, gamma=gamma, n=n,
                              save_every=save_every)
    if is_schedule(eps) or is_schedule(gamma) or is_schedule(alpha):  # step k uses eps(k) (_scheduled.py)
        return scalar_gd_scheduled(lam, eps, w1, w2, alpha=alpha, epochs=epochs, gamma=gamma, n=n,
                                   save_every=save_every, unroll=unroll, check_stability=check_stability,
                                   backend=backend, observables=observables)
    epochs = check_int("epochs", epochs, 0)
    save_every = check_int("save_every", save_every, 1)
    if epochs % save_every:
        raise ValueError(f"epochs ({epochs}) must be a multiple of save_every ({save_every})")
    observables = _check_outputs(observables)
    choose_backend(backend)  # validation before any work
    check_broadcastable(lam=lam, eps=eps, gamma=gamma, alpha=alpha, n=n, w1=w1, w2=w2)
    _check_common(lam, eps, gamma, n, w1, w2)
    check_range("alpha", alpha, 0.0, lo_open=True)
    dtype = float_dtype(lam, eps, gamma, alpha, w1, w2)
    check_fit(dtype, lam=lam, eps=eps, gamma=gamma, alpha=alpha, n=n, w1=w1, w2=w2)
    edge = (check_gd_stability(lam, eps, gamma, alpha, n, w1=w1, w2=w2, stacklevel=2)
            if check_stability else None)
    unroll = check_int("unroll", unroll, 1)
    backend = choose_backend(backend, epochs=epochs, save_every=save_every, dtype=dtype,
                             observables=observables)
    args = [jnp.asarray(x, dtype) for x in (lam, eps, gamma, alpha, n, w1, w2)]
    time_major = bool(time_major)
    # batch-major results of concrete inputs: computed time-major, then given the (*batch, T) shape
    # by a device layout, not a transpose (dynamics/_layout.py)
    relayout = not time_major and _layout.eligible(*args)
    if backend == "scan":
        traj = _gd_core(*args, n_saves=epochs // save_every, save_every=save_every, unroll=unroll,
                        observables=observables, time_major=time_major or relayout)
    else:
        traj = _fused_core(*args, n_saves=epochs // save_every, save_every=save_every, backend=backend,
                           observables=observables, time_major=time_major or relayout)
    if relayout:
        traj = ScalarTrajectory(traj.t, *(_layout.batch_major(f, keep=args) if is_saved(f) else f
                                          for f in traj[1:]))
    return warn_nonfinite("scalar_gd", traj, already_warned=warned(edge), time_axis=0 if time_major else -1)


@functools.partial(jax.jit, static_argnames=("m_static", "unroll"))
def _rk4_core(ts, hs, ms, lam, eps, gamma, tau, n, w1, w2, *, m_static, unroll):
    shape = jnp.broadcast_shapes(*(x.shape for x in (lam, eps, gamma, tau, n, w1, w2)))
    lam, eps, gamma, tau, n, w1, w2 = _broadcast_all(shape, lam, eps, gamma, tau, n, w1, w2)
    inv_tau = 1 / tau

    def f(y):
        d1, d2 = scalar_rhs(y[0], y[1], lam, eps, gamma, n)
        return inv_tau * d1, inv_tau * d2

    _, (w1s, w2s) = fixed_step_loop(f, (w1, w2), lambda y: y, hs, ms, m_static, unroll=unroll)
    return _finish(ts, w1s, w2s, lam, eps, n * gamma, inv_tau)


@functools.partial(jax.jit, static_argnames=("rtol", "atol", "max_steps"))
def _diffrax_core(ts, lam, eps, gamma, tau, n, w1, w2, *, rtol, atol, max_steps):
    import diffrax  # optional dependency (extra "ode"), imported only when asked for

    shape = jnp.broadcast_shapes(*(x.shape for x in (lam, eps, gamma, tau, n, w1, w2)))
    flat = [jnp.broadcast_to(x, shape).reshape(-1) for x in (lam, eps, gamma, tau, n, w1, w2)]

    def field(t, y, args):
        lam, eps, gamma, tau, n = args
        d1, d2 = scalar_rhs(y[0], y[1], lam, eps, gamma, n)
        return jnp.stack([d1, d2]) / tau

    def solve_one(lam, eps, gamma, tau, n, w1, w2):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field), diffrax.Tsit5(), t0=jnp.zeros((), ts.dtype), t1=ts[-1], dt0=None,
            y0=jnp.stack([w1, w2]), args=(lam, eps, gamma, tau, n), saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol), max_steps=max_steps,
            throw=False)  # a failed solve is marked (NaN, ok = False), never an in-graph exception
        ok = sol.result == diffrax.RESULTS.successful
        ys = jnp.where(ok, sol.ys, jnp.nan)
        return ys[:, 0], ys[:, 1], ok

    w1s, w2s, ok = jax.vmap(solve_one, out_axes=(1, 1, 0))(*flat)
    back = lambda x: x.reshape(shape)
    lam, eps, gamma, tau, n = (back(x) for x in flat[:5])
    w1s, w2s = w1s.reshape(ts.shape + shape), w2s.reshape(ts.shape + shape)
    return _finish(ts, w1s, w2s, lam, eps, n * gamma, 1 / tau), ok.reshape(shape)


def default_dt(lam: ArrayLike, eps: ArrayLike, w1: ArrayLike, w2: ArrayLike, *, gamma: ArrayLike = 0.0,
               tau: ArrayLike = 1.0, n: ArrayLike = 1) -> float:
    """The RK4 step :func:`scalar_flow` takes when ``dt`` is not given: 0.05 / (fastest rate).

    The rate of a setting is ((lam + eps) max(1, w1^2 + w2^2) + n gamma) / tau (the stiffness of the
    flow, largest Hessian eigenvalue over tau with |w|^2 at least 1); the step serves the fastest
    setting of the broadcast inputs. Concrete inputs only.

    Example:
      >>> default_dt(1.0, 1.0, 0.1, 0.1, tau=10.0)  # 0.05 / (2 / 10)
      0.25
    """
    vals = [concrete(x) for x in (lam, eps, gamma, tau, n, w1, w2)]
    if any(v is None for v in vals):
        raise ValueError("dt must be given when the inputs are traced")
    lam, eps, gamma, tau, n, w1, w2 = (np.asarray(v, np.float64) for v in vals)
    # Stiffness of the flow: tau / (largest Hessian eigenvalue times n), with |w|^2 at least 1.
    rate = ((lam + eps) * np.maximum(1.0, w1**2 + w2**2) + n * gamma) / tau
    return float(0.05 / max(np.max(rate), 1e-300))


def scalar_flow(ts: ArrayLike, lam: ArrayLike, eps: ArrayLike, w1: ArrayLike, w2: ArrayLike, *,
                tau: ArrayLike = 1.0, gamma: ArrayLike = 0.0, n: ArrayLike = 1,
                method: Literal["rk4", "diffrax"] = "rk4", dt: float | None = None,
                rtol: float = 1e-8, atol: float = 1e-10, max_steps: int = 100_000,
                unroll: int = 1) -> ScalarTrajectory:
    """The continuous gradient flow of Eqs. (2)-(3) plus weight decay, saved at times ``ts``.

    ``method="rk4"``: classical Runge-Kutta with steps of at most ``dt`` that land exactly on every
    save time (global error O(dt^4)). ``method="diffrax"``: diffrax's adaptive Tsit5 with a PID
    step-size controller (``rtol``, ``atol``), one solve per trajectory (vmapped) so that each gets
    its own error control; diffrax is imported only then.

    Args:
      ts: (T,) save times in epochs, >= 0 and non-decreasing; the start is at t = 0.
      lam, eps, gamma, n, w1, w2: as for :func:`scalar_gd`; eps and gamma may be schedules (the
        right-hand side at time t uses ``eps(t)``; RK4 only; put jump times among ``ts``).
      tau: time constant n / alpha, > 0.
      dt: largest RK4 step (epochs). Default: 0.05 / (fastest rate in the batch), where the rate is
        ((lam + eps) max(1, w1^2 + w2^2) + n gamma) / tau.
      rtol, atol, max_steps: diffrax only.
      unroll: RK4 steps per loop iteration (speed only).
    Returns:
      :class:`ScalarTrajectory` with T = len(ts) saves and the broadcast batch shape.
    Raises:
      ValueError: bad ranges or NaN (as :func:`scalar_gd`), tau <= 0, dt <= 0, bad ``ts``, or more
        than 2**31 - 1 RK4 steps in one save interval (``ts`` too long for ``dt``).
      RuntimeError: ``method="diffrax"`` ran out of ``max_steps`` (under jit: those runs are NaN).
    Example:
      >>> traj = scalar_flow(jnp.array([0.0, 50.0]), 1.0, 1.0, 0.1, 0.1, dt=0.1)
      >>> round(float(traj.w[-1]), 4)  # fixed point lam / (lam + eps)
      0.5
    """
    if is_schedule(eps) or is_schedule(gamma) or is_schedule(tau):  # the RHS at t uses eps(t) (_scheduled.py)
        return scalar_flow_scheduled(ts, lam, eps, w1, w2, tau=tau, gamma=gamma, n=n, method=method, dt=dt,
                                     unroll=unroll)
    if method not in ("rk4", "diffrax"):
        raise ValueError(f"method must be 'rk4' or 'diffrax'; got {method!r}")
    check_broadcastable(lam=lam, eps=eps, gamma=gamma, tau=tau, n=n, w1=w1, w2=w2)
    _check_common(lam, eps, gamma, n, w1, w2)
    check_range("tau", tau, 0.0, lo_open=True)
    dtype = float_dtype(lam, eps, gamma, tau, w1, w2)
    if method == "diffrax":
        require("diffrax", what="scalar_flow(method='diffrax')")  # one line naming the extra
        ts_c = concrete(ts)
        if ts_c is not None:
            check_times(ts_c)
        check_fit(dtype, ts=ts, lam=lam, eps=eps, gamma=gamma, tau=tau, n=n, w1=w1, w2=w2)
        check_range("rtol", rtol, 0.0, lo_open=True)
        check_range("atol", atol, 0.0, lo_open=True)
        max_steps = check_int("max_steps", max_steps, 1)
        args = [jnp.asarray(x, dtype) for x in (ts, lam, eps, gamma, tau, n, w1, w2)]
        traj, ok = _diffrax_core(*args, rtol=float(rtol), atol=float(atol), max_steps=max_steps)
        if not isinstance(ok, jax.core.Tracer) and not bool(jnp.all(ok)):
            raise RuntimeError(f"scalar_flow(method='diffrax'): the adaptive solver stopped early for "
                               f"{int(jnp.sum(~ok))} of {ok.size} trajectories (max_steps={max_steps} steps "
                               f"were not enough at rtol={rtol:g}, atol={atol:g}); raise max_steps, loosen "
                               f"rtol/atol, or use method='rk4' with an explicit dt")
        return traj  # traced: the failed trajectories are NaN
    if dt is None:
        dt = default_dt(lam, eps, w1, w2, gamma=gamma, tau=tau, n=n)
    check_fit(dtype, ts=ts, lam=lam, eps=eps, gamma=gamma, tau=tau, n=n, w1=w1, w2=w2)
    ts, hs, ms, m_static = step_grid(ts, float(dt) if isinstance(dt, int | float) else dt)
    args = [jnp.asarray(x, dtype) for x in (ts, hs)] + [jnp.asarray(ms, jnp.int32)]
    args += [jnp.asarray(x, dtype) for x in (lam, eps, gamma, tau, n, w1, w2)]
    return warn_nonfinite("scalar_flow", _rk4_core(*args, m_static=m_static,
                                                    unroll=check_int("unroll", unroll, 1)))
