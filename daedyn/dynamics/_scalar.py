"""Per-direction learning dynamics of a linear DAE of any depth, batched over any grid of settings.

One eigen-direction of a network with L weight matrices, started with its first L - 1 factors equal
(``w1``) and the last at ``w2``, stays that way (the equal factors obey one equation from one start),
so two numbers describe it at every depth. With the mapping u = w1^(L-1) w2 and the direction's
quadratic-form coefficients (docs/architecture.md, "One quadratic core") k = lam and m = lam + eps,

    tau dw1/dt = (k - m u) w1^(L-2) w2 - n gamma w1
    tau dw2/dt = (k - m u) w1^(L-1)    - n gamma w2,

Eqs. (2)-(3) of the paper with the weight decay of supplement C at L = 2. It is advanced either by
the exact gradient-descent recursion with learning rate alpha (tau = n / alpha, one step = one epoch:
``w <- w + RHS / tau``; :func:`scalar_gd`) or as the continuous flow (:func:`scalar_flow`, fixed-step
RK4 with the schedules' jumps as step ends, or diffrax's adaptive Tsit5 on request).

Every rate (eps, gamma, alpha or tau) is a number, an array or a :mod:`daedyn.schedules` schedule,
decided at one point (:func:`_rates`): GD step j uses the value at t = j, the flow the value at t.
Piecewise-constant schedules reach the fused kernel as tables (``daedyn._kernels``): a scheduled run
costs what a constant one does. Continuous schedules run on the "scan" backend (evaluated per step).

All settings broadcast against each other; the work is elementwise over the broadcast batch (no
vmap), jit-compiled once per shape. Memory is proportional to batch x saved times.

The loss reported is Eq. (4) per direction with weight decay (supplement C), scaled by 1 / tau as
printed in the paper, with the rates in force at the save time:

    loss = [lam (1 - u)^2 + eps u^2 + n gamma ((L - 1) w1^2 + w2^2)] / (2 tau).

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
from daedyn._corruption import direction_moments
from daedyn._extras import require
from daedyn._kernels.scalar_gd import (
    QUANTITIES,
    fold,
    observe,
    pallas_available,
    power,
    scalar_gd_fused,
    step,
)
from daedyn._linear import (
    UnstableStepWarning,
    check_gd_stability,
    max_hessian_eigenvalue,
    start_hessian_eigenvalue,
)
from daedyn.dynamics import _layout
from daedyn.dynamics._deep import check_factors, factor_flow, factor_gd
from daedyn.dynamics._integrate import check_times, fixed_step_loop, gd_loop, step_grid
from daedyn.dynamics._notsaved import NotSaved, is_saved, resolve_observables
from daedyn.schedules import (
    Function,
    PiecewiseConstant,
    cast,
    change_steps,
    dtype_probe,
    is_schedule,
    merged_boundaries,
    schedule_values,
)

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



def _rhs(w1, w2, k, m, ng, depth):
    """tau (dw1/dt, dw2/dt) of the module docstring in the quadratic-form coefficients (k, m)."""
    if depth == 2:
        r = k - m * (w1 * w2)
        return r * w2 - ng * w1, r * w1 - ng * w2
    p = power(w1, depth - 2)
    d1, d2 = p * w2, p * w1  # du/dw1 of one of the L - 1 equal factors, du/dw2
    r = k - m * (d2 * w2)
    return r * d1 - ng * w1, r * d2 - ng * w2


def scalar_rhs(w1: ArrayLike, w2: ArrayLike, lam: ArrayLike, eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0,
               n: ArrayLike = 1, *, depth: int = 2) -> tuple[Array, Array]:
    """tau times the time derivatives of (w1, w2): the right-hand sides of Eqs. (2)-(3) plus decay.

    At depth L, ``w1`` is the common value of the first L - 1 factors and ``w2`` the last (module
    docstring). Inputs must already have one shape (rank promotion is not allowed); returns two such
    arrays.

    Example:
      >>> d1, d2 = scalar_rhs(0.5, 1.0, lam=1.0)  # w2 lam (1 - w), w1 lam (1 - w)
      >>> float(d1), float(d2)
      (0.5, 0.25)
      >>> [float(d) for d in scalar_rhs(0.5, 1.0, lam=1.0, eps=1.0)]  # on w1 w2 = lam / (lam + eps)
      [0.0, 0.0]
    """
    depth = check_int("depth", depth, 2)
    return _rhs(w1, w2, lam, lam + eps, n * gamma, depth)


OBSERVABLES = ("w1", "w2", "w", "weight_norm", "loss")
DEFAULT_OBSERVABLES = ("w",)  # scalar_gd's default: the mapping (docs/dynamics.md, "Observables")


def _check_rate(name: str, x, ts, *, positive: bool = False, pick=np.max):
    """Range-check a rate, constant or schedule (its concrete values, as "<name> schedule values"),
    in one place; return the value the stability check and step size use (``pick`` over the pieces
    of a schedule, e.g. the largest eps), or None when traced."""
    if is_schedule(x):
        v = schedule_values(name, x, ts)
        if v is not None:
            check_range(f"{name} schedule values", v, 0.0, lo_open=positive)
            return pick(v, axis=0)
        return None
    check_range(name, x, 0.0, lo_open=positive)
    return concrete(x)


def _check_inputs(lam, n, w1, w2, eps, gamma, rate, ts, *, noise=False):
    """The checks :func:`scalar_gd` and :func:`scalar_flow` share, in parameter order: shapes, lam,
    n, the starts, then eps, gamma and the rate (``(name, value, pick)``: alpha and its largest value,
    or tau and its smallest) as constants or schedules. Returns the stand-ins of the three rates for
    the stability check and the step size (None where traced).

    With ``noise`` (lam, eps) are a corruption's (k, m - k), range-checked by the corruption itself:
    k may be negative (a denoiser's skip connection), so only finiteness is checked here, and the
    stand-in of eps is (|k|, m - |k|) for the stability check (the Hessian of -k is that of k)."""
    name, value, pick = rate
    check_broadcastable(lam=_shape_of(lam), eps=_shape_of(eps), gamma=_shape_of(gamma),
                        **{name: _shape_of(value)}, n=n, w1=w1, w2=w2)
    if not noise:
        check_range("lam", lam, 0.0)
    check_range("n", n, 0.0, lo_open=True)
    check_finite("w1", w1)
    check_finite("w2", w2)
    if noise:
        k, e = (schedule_values(x_name, x, ts) for x_name, x in (("k", lam), ("m - k", eps)))
        for x_name, x in (("k", k), ("m - k", e)):
            if x is not None:
                check_finite(f"noise's {x_name}", x)
        top = None if k is None or e is None else (np.max(np.abs(k), axis=0), np.max(e, axis=0))
        tops = [top]
    else:
        tops = [_check_rate("eps", eps, ts)]
    return tops + [_check_rate("gamma", gamma, ts), _check_rate(name, value, ts, positive=True, pick=pick)]


def _resolve_noise(lam, eps, noise, n, func: str):
    """(k, m - k, loss constant) from the paper's (lam, eps) or from a corruption value ``noise``.

    ``noise`` is any value with per-direction moments (:func:`daedyn._corruption.direction_moments`;
    one whose term couples the directions raises there, with the reason); k and m are schedules for a
    scheduled corruption. The loss constant is lam, the clean target's energy per direction (None:
    k itself, the paper's case)."""
    if noise is None:
        return lam, (0.0 if eps is None else eps), None
    if eps is not None:
        raise ValueError(f"{func}: give the noise once, as eps= (a number, array or schedule) or noise= "
                         f"(a corruption value), not both")
    check_range("lam", lam, 0.0)
    k, m = direction_moments(noise, lam, n)
    if isinstance(k, PiecewiseConstant) and isinstance(m, PiecewiseConstant):
        e = PiecewiseConstant(m.boundaries, m.values - k.values)
    elif is_schedule(k):
        e = Function((m, k), _difference)
    else:
        e = jnp.asarray(m) - jnp.asarray(k)
    return k, e, jnp.asarray(lam)


def _difference(t, a, b):
    """a(t) - b(t) (the ``fn`` of m - k for a corruption schedule)."""
    return a(t) - b(t)


def _shape_of(x):
    return np.empty(x.shape if is_schedule(x) else np.shape(x))


def _batch_shape(*xs):
    return jnp.broadcast_shapes(*(x.shape if is_schedule(x) else np.shape(x) for x in xs))  # lists too


def _at(x, t, shape, left=False):
    """A rate (constant or schedule) at the scalar time ``t``, broadcast to the batch shape."""
    if is_schedule(x):
        x = x.left_limit(t) if left else x(t)
    return jnp.broadcast_to(x, shape)


def _leading(v, shape):
    """(P, *value_shape) values of a schedule at P times, broadcast to (P, *batch): the value shape
    aligns with the batch shape from the right, like the schedule would as an argument."""
    v = v.reshape(v.shape[:1] + (1,) * (len(shape) - (v.ndim - 1)) + v.shape[1:])
    return jnp.broadcast_to(v, v.shape[:1] + shape)


def _series(x, ts, shape):
    """(T, *batch): a rate (constant or schedule) at the save times ``ts``, time first."""
    if is_schedule(x):
        return _leading(x(ts), shape)
    return jnp.broadcast_to(jnp.asarray(x)[None], ts.shape + shape)


def _finish(ts, w1s, w2s, lam, eps, gamma, n, *, alpha=None, tau=None, observables, time_major, depth,
            fields=None, c=None) -> ScalarTrajectory:
    """The trajectory from time-major (T, *batch) weights (or the kernel's saved ``fields``): the
    derived observables with the rates in force at each save time (1 / tau = alpha(t) / n of GD, or
    1 / tau(t) of a flow), the time axis last unless ``time_major``. Fields not in ``observables``
    are :class:`NotSaved` (never computed or written)."""
    fields = dict(fields or {})
    if w1s is not None:
        fields.update(zip(QUANTITIES, observe(w1s, w2s, QUANTITIES, depth), strict=True))
    if "loss" in observables:
        shape = fields["w"].shape[1:]
        k, e, g = (_series(x, ts, shape) for x in (lam, eps, gamma))
        u, n_ = fields["w"], n[None]
        c_ = k if c is None else _series(c, ts, shape)  # the clean target's energy (lam)
        it = _series(alpha, ts, shape) / n_ if tau is None else 1 / _series(tau, ts, shape)
        quad = c_ - 2 * k * u + (k + e) * u * u  # c - 2 k u + m u^2
        fields["loss"] = (quad + n_ * g * fields["weight_norm"]) * (it / 2)
    if not time_major:
        fields = {q: jnp.moveaxis(x, 0, -1) for q, x in fields.items()}
    return ScalarTrajectory(ts, *(fields[q] if q in observables else NotSaved(q, observables)
                                  for q in OBSERVABLES))


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


@functools.partial(jax.jit, static_argnames=("n_saves", "save_every", "unroll", "observables", "time_major",
                                             "depth"))
def _gd_core(lam, eps, gamma, alpha, n, w1, w2, c, *, n_saves, save_every, unroll, observables, time_major,
             depth):
    """The textbook loop: any rate may be any schedule, evaluated at every step (step j at t = j);
    ``lam`` is k, which a scheduled corruption makes a schedule too."""
    shape = _batch_shape(lam, eps, gamma, alpha, n, w1, w2)
    n, w1, w2 = (jnp.broadcast_to(x, shape) for x in (n, w1, w2))
    lam = lam if is_schedule(lam) else jnp.broadcast_to(lam, shape)
    dtype = w1.dtype

    def coefficients(j):
        k, e, g, al = (_at(x, j, shape) for x in (lam, eps, gamma, alpha))
        return fold(k, k + e, n * g, al / n)

    if not any(is_schedule(x) for x in (lam, eps, gamma, alpha)):
        const = coefficients(None)
        coefficients = lambda j: const  # noqa: E731 - the constant run folds once

    def advance(y):
        a, b, j = y
        return (*step(a, b, *coefficients(j.astype(dtype)), depth), j + 1)

    _, (w1s, w2s) = gd_loop(advance, (w1, w2, jnp.zeros((), jnp.int32)), lambda y: y[:2], n_saves=n_saves,
                            save_every=save_every, unroll=unroll)
    ts = jnp.arange(n_saves + 1, dtype=dtype) * save_every
    return _finish(ts, w1s, w2s, lam, eps, gamma, n, alpha=alpha, observables=observables,
                   time_major=time_major, depth=depth, c=c)


def _stack(x, y, op):
    """``op(x, y)`` of (B,) arrays and (K + 1, B) tables (a piece axis added where missing)."""
    if x.ndim != y.ndim:
        x, y = (v[None] if v.ndim == 1 else v for v in (x, y))
    return op(x, y)


def _table_boundaries(*rates) -> Array | None:
    """The merged boundaries of the scheduled ``rates`` (shared ones once: K pieces, not 2K - 1 with
    half of them empty), found before :func:`_fused_core`'s trace, where one array passed twice, or
    equal concrete values, become separate tracers; None without schedules."""
    scheduled = [x for x in rates if is_schedule(x)]
    if not scheduled:
        return None
    bounds = merged_boundaries(scheduled)
    return jnp.zeros((0,), scheduled[0].boundaries.dtype) if bounds is None else bounds


@functools.partial(jax.jit, static_argnames=("n_saves", "save_every", "backend", "observables", "time_major",
                                             "depth", "adjoint"))
def _fused_core(lam, eps, gamma, alpha, n, w1, w2, c, bounds, *, n_saves, save_every, backend, observables,
                time_major, depth, adjoint="checkpoint"):
    """The same recursion through ``daedyn._kernels.scalar_gd_fused`` on the flattened batch.

    Piecewise-constant rates become tables over the merged pieces ``bounds`` of all of them
    (:func:`_table_boundaries`; each schedule is constant on every merged piece, so its value there is
    its value at the piece's start). The kernel saves exactly the fields asked for (the loss from its
    w and weight_norm), start included, time-major: no concatenation, and no transpose when
    ``time_major``."""
    shape = _batch_shape(lam, eps, gamma, alpha, n, w1, w2)
    starts = None if bounds is None else jnp.concatenate([jnp.zeros((1,), bounds.dtype), bounds])

    def flat(x):
        if is_schedule(x):  # (K + 1, B): the value on every merged piece
            return _leading(x(starts), shape).reshape(starts.shape[0], -1)
        return jnp.broadcast_to(x, shape).reshape(-1)

    lam_, e, g, al, n_, a, b = (flat(x) for x in (lam, eps, gamma, alpha, n, w1, w2))
    m = _stack(lam_, e, jnp.add)
    ng = _stack(n_, g, jnp.multiply)
    it = _stack(al, n_, jnp.divide)
    need = set(observables) | ({"w", "weight_norm"} if "loss" in observables else set())
    quantities = tuple(q for q in QUANTITIES if q in need)
    saved = scalar_gd_fused(lam_, m, ng, it, a, b, n_saves=n_saves, save_every=save_every,
                            quantities=quantities, backend=backend, with_start=True, depth=depth,
                            boundaries=bounds, adjoint=adjoint)  # (n_saves + 1, B) each
    fields = {q: x.reshape((n_saves + 1,) + shape) for q, x in zip(quantities, saved)}
    ts = jnp.arange(n_saves + 1, dtype=w1.dtype) * save_every
    n = jnp.broadcast_to(n, shape)
    lam = lam if is_schedule(lam) else jnp.broadcast_to(lam, shape)
    return _finish(ts, None, None, lam, eps, gamma, n, alpha=alpha, observables=observables,
                   time_major=time_major, depth=depth, fields=fields, c=c)


BACKENDS = ("auto", "pallas", "jnp", "scan", "interpret")


def _continuous(*rates) -> bool:
    return any(is_schedule(x) and not isinstance(x, PiecewiseConstant) for x in rates)


def choose_backend(backend: str = "auto", *, epochs: int = 1, save_every: int = 1, dtype=None,
                   observables: Sequence[str] | str | None = None, continuous: bool = False) -> str:
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
    "scan" where the fused path has nothing to do (epochs = 0) and for continuous schedules
    (``continuous``: linear, exponential or function rates are evaluated at every step; the fused
    kernels take piecewise-constant tables). The Pallas kernel is chosen for float32 (and narrower)
    only: float64 GPU arithmetic is slow and it was verified in float32 only.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; got {backend!r}")
    if continuous and backend not in ("auto", "scan"):
        raise ValueError(f"backend must be 'auto' or 'scan' with a continuous (linear, exponential or "
                         f"function) schedule: the fused kernels take piecewise-constant ones; "
                         f"got {backend!r}")
    if backend != "auto":
        return backend
    if epochs == 0 or continuous:
        return "scan"
    wide = dtype is not None and jnp.dtype(dtype).itemsize > 4
    if pallas_available() and not wide:
        return "pallas"
    w_only = _check_outputs(observables) == ("w",)
    return "jnp" if w_only or save_every >= _FUSED_MIN_SAVE_EVERY else "scan"


_FUSED_MIN_SAVE_EVERY = 50


def scalar_gd(lam: ArrayLike, eps=None, w1: ArrayLike = None, w2: ArrayLike = None, *, alpha, epochs: int,
              gamma=0.0, n: ArrayLike = 1, noise=None, save_every: int = 1, unroll: int = 4,
              check_stability: bool = True,
              backend: Literal["auto", "pallas", "jnp", "scan", "interpret"] = "auto",
              observables: Sequence[str] | str | None = None, time_major: bool = False,
              depth: int = 2, factors: ArrayLike | None = None,
              adjoint: Literal["checkpoint", "autodiff"] = "checkpoint") -> ScalarTrajectory:
    """Exact full-batch gradient descent on the per-direction loss, epoch by epoch, for a batch of settings.

    One step is ``w1 <- w1 + (alpha / n) * RHS1``, ``w2 <- w2 + (alpha / n) * RHS2`` with the
    right-hand sides of the module docstring (Eqs. (2)-(3) plus weight decay at depth 2; both from
    the old values): the Euler step of size one epoch of the flow with tau = n / alpha. This is what
    training does.

    Args:
      lam: eigenvalue of Sigma (a sum over the n samples), >= 0.
      eps: noise level n * s**2, >= 0, or a :mod:`daedyn.schedules` schedule (step j, from epoch j to
        j + 1, uses ``eps(j)``; docs/schedules.md). Default 0 (no noise), or give ``noise``.
      w1, w2: initial weights (required) (any finite values); at depth L, ``w1`` is the start of each of the
        first L - 1 factors and ``w2`` of the last (w1 = w2: a balanced start).
      alpha: learning rate, > 0, or a schedule (step j uses ``alpha(j)``; the loss saved at t is
        scaled by alpha(t) / n).
      epochs: number of steps, a multiple of ``save_every``.
      gamma: weight decay of Eq. (6), >= 0, or a schedule.
      n: number of samples N (1 for the scalar demos), > 0.
      noise: instead of ``eps``, a corruption value whose moments are per direction: a
        :class:`daedyn.noise.Noise` (k = lam, m = lam + n s^2), a diffusion objective (its k may be
        negative), ... (docs/architecture.md, "One quadratic core"); its parameters may be
        schedules. A corruption that couples the directions (masking, a non-isotropic covariance,
        salt-and-pepper) is refused with the reason and the exact alternatives.
      save_every: epochs between saves; the start (t = 0) is always saved.
      unroll: steps per loop iteration of the "scan" backend (a speed knob; results are identical).
      check_stability: warn (:class:`UnstableStepWarning`) when alpha * h_max >= 2 at the fixed
        point (see :func:`check_gd_stability`; depth 2; under schedules piece by piece, with the
        rates in force together, the worst piece named); only for concrete inputs.
      backend: "pallas" (fused GPU kernel, ``daedyn._kernels.scalar_gd_fused``), "jnp" (the same
        fused recursion as a lax.scan over saves), "scan" (lax.scan over saves of the textbook
        update), "interpret" (the Pallas kernel interpreted, for tests on CPU), or "auto"
        (:func:`choose_backend`: Pallas on GPU, elsewhere "jnp" for ``w`` alone (the default) or
        sparse saves and "scan" otherwise). All are differentiable and give the same numbers up to
        float rounding. Piecewise-constant schedules run on every backend (the fused ones take them
        as tables: as fast as constants); linear, exponential and function schedules on "scan".
      observables: the fields to save: a subset of ("w1", "w2", "w", "weight_norm", "loss"), or
        "all" for the five. Default ``("w",)``, the mapping alone: dense saving at the recursion's
        speed (the other fields write 5x the bytes; docs/dynamics.md). The others are not computed
        and are :class:`~daedyn.dynamics.NotSaved` placeholders that raise
        :class:`~daedyn.dynamics.NotSavedError` (an AttributeError and a ValueError) naming the fix
        when used.
      time_major: fields of shape (T, *batch) instead of (*batch, T): the layout the recursion
        writes, so no transpose (docs/dynamics.md). Same values.
      depth: number of weight matrices L (int >= 2); the same function and result type at every
        depth (w = w1^(L-1) w2, weight_norm = (L - 1) w1^2 + w2^2).
      factors: instead of w1 and w2, a (*batch, L) start of every factor (any values, L >= 2; the
        depth is L): the L-factor recursion of ``daedyn/dynamics/_deep.py``, with constant eps, gamma
        and alpha (numbers or arrays; a schedule needs the w1, w2 start), ``noise=None``, the "scan"
        route (``backend`` and ``unroll`` unused); ``w1`` is then saved as the first L - 1 factors,
        (*batch, L - 1, T) (time last; ``time_major`` moves time first), ``w2`` the last.
      adjoint: derivatives of the fused backends ("jnp", "pallas", "interpret"): "checkpoint"
        (default), reverse mode by the hand-written adjoint of the recursion (a value and gradient
        at 2.3-15x the cost of the (now faster) run on the 2-core CPU, where JAX's own costs 7-54x;
        docs/dynamics.md), which refuses forward mode (``jax.jvp``, ``jax.jacfwd`` raise a TypeError
        naming ``custom_vjp``; ``jax.hessian``, forward-over-reverse, works); "autodiff", JAX
        differentiates the recursion, both modes. The "scan" backend is always "autodiff".
    Returns:
      :class:`ScalarTrajectory` with T = epochs / save_every + 1 saves; all arguments except
      ``epochs``, ``save_every``, ``unroll``, ``depth`` broadcast together (a schedule by its value
      shape) to give the batch shape.
    Raises:
      ValueError: for negative lam, eps or gamma (or schedule values), alpha <= 0, n <= 0, NaN/inf,
        non-broadcastable shapes, epochs not a multiple of save_every, depth < 2, an unknown backend
        or observable, or a fused backend asked for with a continuous schedule.
    Example:
      >>> traj = scalar_gd(1.0, jnp.array([0.0, 1.0, 5.0]), 0.1, 0.1, alpha=0.01, epochs=3000,
      ...                  save_every=1000)
      >>> traj.w.shape, np.round(np.asarray(traj.w[:, -1], np.float64), 4).tolist()  # 1, 1/2, 1/6
      ((3, 4), [1.0, 0.5, 0.1667])
    """
    epochs = check_int("epochs", epochs, 0)
    save_every = check_int("save_every", save_every, 1)
    if epochs % save_every:
        raise ValueError(f"epochs ({epochs}) must be a multiple of save_every ({save_every})")
    depth = check_int("depth", depth, 2)
    if adjoint not in ("checkpoint", "autodiff"):
        raise ValueError(f"adjoint must be 'checkpoint' or 'autodiff'; got {adjoint!r}")
    observables = _check_outputs(observables)
    if factors is not None:
        check_factors("scalar_gd", factors, w1, w2, depth, eps=eps, gamma=gamma, alpha=alpha)
        if noise is not None:
            raise ValueError("scalar_gd: factors= takes the noise as eps= (a number or an array), not noise=")
        fields = factor_gd(lam, 0.0 if eps is None else eps, factors, alpha=alpha, epochs=epochs, gamma=gamma,
                           n=n, save_every=save_every)
        return warn_nonfinite("scalar_gd", _factor_result(fields, observables, time_major),
                              time_axis=0 if time_major else -1)
    _require_starts("scalar_gd", w1, w2)
    lam, eps, c = _resolve_noise(lam, eps, noise, n, "scalar_gd")
    continuous = _continuous(lam, eps, gamma, alpha)
    choose_backend(backend, continuous=continuous)  # validation before any work
    ts = np.arange(epochs // save_every + 1) * save_every
    tops = _check_inputs(lam, n, w1, w2, eps, gamma, ("alpha", alpha, np.max), ts, noise=c is not None)
    dtype = float_dtype(*(dtype_probe(x) for x in (lam, w1, w2, eps, gamma, alpha)))
    check_fit(dtype, n=n, w1=w1, w2=w2, **{k: x for k, x in (("lam", lam), ("eps", eps), ("gamma", gamma),
                                                              ("alpha", alpha)) if not is_schedule(x)})
    edge = None
    if check_stability and depth == 2 and all(v is not None for v in tops):
        edge = _stability(lam, eps, gamma, alpha, n, w1, w2, epochs, ts, noise=c is not None)
    unroll = check_int("unroll", unroll, 1)
    backend = choose_backend(backend, epochs=epochs, save_every=save_every, dtype=dtype,
                             observables=observables, continuous=continuous)
    n, w1, w2 = (jnp.asarray(x, dtype) for x in (n, w1, w2))
    lam, eps, gamma, alpha = (cast(x, dtype) for x in (lam, eps, gamma, alpha))
    c = None if c is None else jnp.asarray(c, dtype)
    time_major = bool(time_major)
    # batch-major results of concrete inputs: computed time-major, then given the (*batch, T) shape
    # by a device layout, not a transpose (dynamics/_layout.py)
    keep = [n, w1, w2, *jax.tree_util.tree_leaves((lam, eps, gamma, alpha, c))]
    relayout = not time_major and _layout.eligible(*keep)
    kw = dict(n_saves=epochs // save_every, save_every=save_every, observables=observables,
              time_major=time_major or relayout, depth=depth)
    if backend == "scan":
        traj = _gd_core(lam, eps, gamma, alpha, n, w1, w2, c, unroll=unroll, **kw)
    else:
        traj = _fused_core(lam, eps, gamma, alpha, n, w1, w2, c, _table_boundaries(lam, eps, gamma, alpha),
                           backend=backend, adjoint=adjoint, **kw)
    if relayout:
        traj = ScalarTrajectory(traj.t, *(_layout.batch_major(f, keep=keep) if is_saved(f) else f
                                          for f in traj[1:]))
    return warn_nonfinite("scalar_gd", traj, already_warned=warned(edge), time_axis=0 if time_major else -1)


def _factor_result(fields: dict, observables, time_major: bool) -> ScalarTrajectory:
    """A ``factors=`` run's fields as a :class:`ScalarTrajectory` (the unsaved ones NotSaved)."""
    if time_major:
        fields = {q: x if q == "t" else jnp.moveaxis(x, -1, 0) for q, x in fields.items()}
    return ScalarTrajectory(fields["t"], *(fields[q] if q in observables else NotSaved(q, observables)
                                           for q in OBSERVABLES))


def _require_starts(func: str, w1, w2) -> None:
    if w1 is None or w2 is None:
        raise ValueError(f"{func}: the starts w1 and w2 are required (w1 = w2 for a balanced start)")


def _step_times(epochs: int, ts, *rates) -> np.ndarray | None:
    """The steps at which the rates in force may change (:func:`daedyn.schedules.change_steps`, a
    continuous schedule checked on the save times ``ts``)."""
    steps = change_steps(0, epochs, *rates, continuous=ts)
    return None if steps is None else np.asarray(steps)


def _values_at(x, times, ndim: int):
    """A rate at the steps ``times``: (P, *batch)-broadcastable float64 values (a schedule's value shape
    aligned with the batch from the right), or None when traced."""
    if not is_schedule(x):
        v = concrete(x)
        return None if v is None else np.asarray(v, np.float64)[None]
    try:
        v = concrete(x(jnp.asarray(times, jnp.result_type(float))))
    except jax.errors.ConcretizationTypeError:
        return None
    if v is None:
        return None
    v = np.asarray(v, np.float64)
    return v.reshape(v.shape[:1] + (1,) * (ndim - (v.ndim - 1)) + v.shape[1:])


def _stability(lam, eps, gamma, alpha, n, w1, w2, epochs, ts, *, noise: bool):
    """The depth-2 GD stability check, piece by piece: the rates in force from each step where one of
    them changes (:func:`_step_times`) are checked together, and the worst piece is reported with the
    epoch it starts at (the largest value of each rate is not the strictest: more weight decay lowers
    the Hessian's largest eigenvalue). Each piece is also checked at the start's weights (a jump early
    in a run meets weights near the start), as the constant check does. A corruption's (k, m - k)
    stand in as (|k|, m - |k|) (the check is skipped where m < |k|, a fixed point beyond 1 that the
    supplement's formula does not cover: a divergence there is still reported by
    :func:`warn_nonfinite`)."""
    times = _step_times(epochs, ts, lam, eps, gamma, alpha)
    if times is None:
        return None
    ndim = len(_batch_shape(lam, eps, gamma, alpha, n, w1, w2))
    vals = [_values_at(x, times, ndim) for x in (lam, eps, gamma, alpha)]
    if any(v is None for v in vals):
        return None
    k, e, g, a = vals
    if noise:
        k = np.abs(k)
        if np.any(e < 0):
            return None
    pieces = np.broadcast_shapes(*(v.shape[:1] for v in vals))[0]
    if pieces == 1:  # constants: the check as it is
        return check_gd_stability(k[0], e[0], g[0], a[0], n, w1=w1, w2=w2, stacklevel=3)
    with warnings.catch_warnings():  # ranges are checked already; every piece at its fixed point and
        warnings.simplefilter("ignore")  # at the start's weights (a jump early in a run meets them there)
        n_ = np.asarray(n, np.float64)[None]
        edges = a * max_hessian_eigenvalue(k, e, g, n_, w1=w1, w2=w2)
        starts = a * start_hessian_eigenvalue(k, e, g, n_, w1, w2)
        edges = np.maximum(edges, np.where(np.isnan(starts), np.inf, starts))
    worst = np.max(edges.reshape(edges.shape[0], -1), axis=1)
    p = int(np.argmax(worst)) if np.any(worst >= 2) else 0
    at = lambda v: v[min(p, v.shape[0] - 1)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        edge = check_gd_stability(at(k), at(e), at(g), at(a), n, w1=w1, w2=w2)
    for w in caught:  # the piece's warning, with where it starts
        warnings.warn(f"with the rates in force from epoch {int(times[p])} (the worst of the {pieces} pieces "
                      f"of the schedules): {w.message}", w.category, stacklevel=3)
    return np.maximum(edge, np.max(edges, axis=0))


@functools.partial(jax.jit, static_argnames=("m_static", "unroll", "depth"))
def _rk4_core(ts, hs, ms, lam, eps, gamma, tau, n, w1, w2, c, *, m_static, unroll, depth):
    shape = _batch_shape(lam, eps, gamma, tau, n, w1, w2)
    n, w1, w2 = (jnp.broadcast_to(x, shape) for x in (n, w1, w2))
    lam = lam if is_schedule(lam) else jnp.broadcast_to(lam, shape)

    def f(t, y, left):
        k, e, g, ta = (_at(x, t, shape, left) for x in (lam, eps, gamma, tau))
        d1, d2 = _rhs(y[0], y[1], k, k + e, n * g, depth)
        return d1 / ta, d2 / ta

    # one loop for constant and scheduled rates (a constant is a schedule): the same operations
    _, (w1s, w2s) = fixed_step_loop(f, (w1, w2), lambda t, y: y, hs, ms, m_static, unroll=unroll, ts=ts)
    return _finish(ts, w1s, w2s, lam, eps, gamma, n, tau=tau, observables=OBSERVABLES, time_major=False,
                   depth=depth, c=c)


@functools.partial(jax.jit, static_argnames=("rtol", "atol", "max_steps", "depth"))
def _diffrax_core(ts, lam, eps, gamma, tau, n, w1, w2, c, *, rtol, atol, max_steps, depth):
    import diffrax  # optional dependency (extra "ode"), imported only when asked for

    shape = jnp.broadcast_shapes(*(x.shape for x in (lam, eps, gamma, tau, n, w1, w2)))
    flat = [jnp.broadcast_to(x, shape).reshape(-1) for x in (lam, eps, gamma, tau, n, w1, w2)]

    def field(t, y, args):
        lam, eps, gamma, tau, n = args
        d1, d2 = _rhs(y[0], y[1], lam, lam + eps, n * gamma, depth)
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
    lam, eps, gamma, tau, n = (x.reshape(shape) for x in flat[:5])
    w1s, w2s = w1s.reshape(ts.shape + shape), w2s.reshape(ts.shape + shape)
    return _finish(ts, w1s, w2s, lam, eps, gamma, n, tau=tau, observables=OBSERVABLES, time_major=False,
                   depth=depth, c=c), ok.reshape(shape)


def default_dt(lam: ArrayLike, eps: ArrayLike, w1: ArrayLike, w2: ArrayLike, *, gamma: ArrayLike = 0.0,
               tau: ArrayLike = 1.0, n: ArrayLike = 1) -> float:
    """The RK4 step :func:`scalar_flow` takes when ``dt`` is not given: 0.05 / (fastest rate).

    The rate of a setting is ((lam + eps) max(1, w1^2 + w2^2) + n gamma) / tau (the stiffness of the
    flow, largest Hessian eigenvalue over tau with |w|^2 at least 1); the step serves the fastest
    setting of the broadcast inputs. Concrete inputs only. :func:`scalar_flow` passes the largest
    eps and gamma and the smallest tau of schedules, and at depth L >= 3 scales the rate by L / 2
    (the Hessian of L balanced factors is L / 2 times that of two).

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


def scalar_flow(ts: ArrayLike, lam: ArrayLike, eps=None, w1: ArrayLike = None, w2: ArrayLike = None, *,
                tau=1.0, gamma=0.0, n: ArrayLike = 1, noise=None,
                method: Literal["rk4", "diffrax"] = "rk4", dt: float | None = None,
                rtol: float = 1e-8, atol: float = 1e-10, max_steps: int = 100_000,
                unroll: int = 1, depth: int = 2, factors: ArrayLike | None = None) -> ScalarTrajectory:
    """The continuous gradient flow of the module docstring (Eqs. (2)-(3) plus weight decay at depth
    2), saved at times ``ts``.

    ``method="rk4"``: classical Runge-Kutta with steps of at most ``dt`` that land exactly on every
    save time (global error O(dt^4)). ``method="diffrax"``: diffrax's adaptive Tsit5 with a PID
    step-size controller (``rtol``, ``atol``), one solve per trajectory (vmapped) so that each gets
    its own error control; diffrax is imported only then.

    Args:
      ts: (T,) save times in epochs, >= 0 and non-decreasing; the start is at t = 0.
      lam, eps, gamma, n, noise, w1, w2, depth: as for :func:`scalar_gd`; eps and gamma may be schedules
        (the right-hand side at time t uses ``eps(t)``; RK4 only; a jump costs the RK4 step that
        straddles it its order: put jump times among ``ts``, then every piece is integrated on its
        own).
      tau: time constant n / alpha, > 0, or a schedule n / alpha(t) (a learning-rate schedule).
      dt: largest RK4 step (epochs). Default: 0.05 / (fastest rate in the batch), where the rate is
        ((lam + eps) max(1, w1^2 + w2^2) + n gamma) / tau (:func:`default_dt`).
      rtol, atol, max_steps: diffrax only.
      unroll: RK4 steps per loop iteration (speed only).
      factors: instead of w1 and w2, a (*batch, L) start of every factor (as :func:`scalar_gd`): RK4
        only, constant eps, gamma and tau, every field saved (w1 the first L - 1 factors, time last);
        ``dt`` defaults to 0.05 tau / max((lam + eps) max(1, a^2)^(L - 1) + n gamma).
    Returns:
      :class:`ScalarTrajectory` with T = len(ts) saves and the broadcast batch shape.
    Raises:
      ValueError: bad ranges or NaN (as :func:`scalar_gd`), tau <= 0, dt <= 0, bad ``ts``, a schedule
        with ``method="diffrax"``, or more than 2**31 - 1 RK4 steps in one save interval.
      RuntimeError: ``method="diffrax"`` ran out of ``max_steps`` (under jit: those runs are NaN).
    Example:
      >>> traj = scalar_flow(jnp.array([0.0, 50.0]), 1.0, 1.0, 0.1, 0.1, dt=0.1)
      >>> round(float(traj.w[-1]), 4)  # fixed point lam / (lam + eps)
      0.5
    """
    if method not in ("rk4", "diffrax"):
        raise ValueError(f"method must be 'rk4' or 'diffrax'; got {method!r}")
    depth = check_int("depth", depth, 2)
    if factors is not None:
        check_factors("scalar_flow", factors, w1, w2, depth, eps=eps, gamma=gamma, tau=tau)
        if noise is not None or method != "rk4":
            raise ValueError("scalar_flow: factors= runs method='rk4' with the noise as eps= (a number or an "
                             "array)")
        fields = factor_flow(ts, lam, 0.0 if eps is None else eps, factors, tau=tau, gamma=gamma, n=n, dt=dt)
        return warn_nonfinite("scalar_flow", _factor_result(fields, OBSERVABLES, False))
    _require_starts("scalar_flow", w1, w2)
    lam, eps, c = _resolve_noise(lam, eps, noise, n, "scalar_flow")
    scheduled = any(is_schedule(x) for x in (lam, eps, gamma, tau))
    if scheduled and method != "rk4":
        raise ValueError(f"method must be 'rk4' with an eps, gamma or tau schedule (or a scheduled noise); "
                         f"got {method!r}")
    ts_c = concrete(ts)
    tops = _check_inputs(lam, n, w1, w2, eps, gamma, ("tau", tau, np.min),
                         ts_c if ts_c is not None else np.zeros(1), noise=c is not None)
    if c is not None and tops[0] is not None:  # the step size sees m = |k| + (m - |k|) at its largest
        tops[0] = tops[0][1] + tops[0][0]
        lam_dt = 0.0
    dtype = float_dtype(*(dtype_probe(x) for x in (lam, w1, w2, eps, gamma, tau)))
    consts = {k: x for k, x in (("lam", lam), ("eps", eps), ("gamma", gamma), ("tau", tau))
              if not is_schedule(x)}
    if method == "diffrax":
        require("diffrax", what="scalar_flow(method='diffrax')")  # one line naming the extra
        if ts_c is not None:
            check_times(ts_c)
        check_fit(dtype, ts=ts, n=n, w1=w1, w2=w2, **consts)
        check_range("rtol", rtol, 0.0, lo_open=True)
        check_range("atol", atol, 0.0, lo_open=True)
        max_steps = check_int("max_steps", max_steps, 1)
        args = [jnp.asarray(x, dtype) for x in (ts, lam, eps, gamma, tau, n, w1, w2)]
        args.append(None if c is None else jnp.asarray(c, dtype))
        traj, ok = _diffrax_core(*args, rtol=float(rtol), atol=float(atol), max_steps=max_steps, depth=depth)
        if not isinstance(ok, jax.core.Tracer) and not bool(jnp.all(ok)):
            raise RuntimeError(f"scalar_flow(method='diffrax'): the adaptive solver stopped early for "
                               f"{int(jnp.sum(~ok))} of {ok.size} trajectories (max_steps={max_steps} steps "
                               f"were not enough at rtol={rtol:g}, atol={atol:g}); raise max_steps, loosen "
                               f"rtol/atol, or use method='rk4' with an explicit dt")
        return traj  # traced: the failed trajectories are NaN
    if dt is None:
        if any(v is None for v in tops):
            raise ValueError("dt must be given when the schedule values are traced")
        lam_top = lam_dt if c is not None else lam
        dt = default_dt(lam_top, tops[0], w1, w2, gamma=tops[1], tau=tops[2], n=n)  # the fastest piece
        dt = dt * 2 / depth if depth > 2 else dt
    check_fit(dtype, ts=ts, n=n, w1=w1, w2=w2, **consts)
    ts, hs, ms, m_static = step_grid(ts, float(dt) if isinstance(dt, int | float) else dt)
    args = [jnp.asarray(x, dtype) for x in (ts, hs)] + [jnp.asarray(ms, jnp.int32)]
    n, w1, w2 = (jnp.asarray(x, dtype) for x in (n, w1, w2))
    lam, eps, gamma, tau = (cast(x, dtype) for x in (lam, eps, gamma, tau))
    c = None if c is None else jnp.asarray(c, dtype)
    traj = _rk4_core(*args, lam, eps, gamma, tau, n, w1, w2, c, m_static=m_static,
                     unroll=check_int("unroll", unroll, 1), depth=depth)
    return warn_nonfinite("scalar_flow", traj)
