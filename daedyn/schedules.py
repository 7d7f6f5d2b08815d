"""Hyperparameter schedules: a noise level (or weight decay) that changes during training.

A schedule is a pytree whose *values* are traced leaves (they can be tuned, differentiated, vmapped)
and whose *structure* (the kind, the number of pieces, a user function) is static. It is called as
``schedule(t)`` with ``t`` in epochs and returns the value at that time, with shape
``t.shape + schedule.shape``.

- :func:`piecewise_constant`: ``values[0]`` on ``[0, b_0)``, ``values[i]`` on ``[b_{i-1}, b_i)``, and
  ``values[K]`` from ``b_{K-1}`` on (K boundaries, K + 1 values). The closed forms of
  :mod:`daedyn.theory` are exact for this kind (chained piece by piece).
- :func:`linear`: from ``start`` at t = 0 to ``end`` at ``t_end``, constant afterwards.
- :func:`exponential`: geometric interpolation from ``start`` to ``end`` (both > 0) over ``t_end``.
- :func:`function`: any user function ``fn(t, *params)`` with traced ``params``.

The continuous kinds go through the integrators of :mod:`daedyn.dynamics`. Conventions for the
discrete recursion: gradient-descent step k (from epoch k to k + 1) uses the value at ``t = k``.

Values must be >= 0 (they are noise levels or decays); that is checked for concrete values, and the
extra trailing shape of ``values`` (e.g. one schedule per eigen-direction, ``values`` of shape
``(K + 1, D)``) broadcasts like an array argument would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import check_finite, check_noise_term, check_range, concrete, schedule_refusal

__all__ = ["Schedule", "PiecewiseConstant", "Linear", "Exponential", "Function",
           "piecewise_constant", "linear", "exponential", "function", "shift", "is_schedule",
           "parse_schedule"]


class Schedule:
    """Base class of every schedule: ``schedule(t)`` evaluates it at times ``t`` (epochs).

    A schedule is never silently converted to an array: ``jnp.asarray(schedule)`` raises, so a
    function that takes a constant only cannot misread one.
    """

    def __call__(self, t: ArrayLike) -> Array:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def left_limit(self, t: ArrayLike) -> Array:
        """The limit from the left at ``t`` (the value just before a jump); ``self(t)`` where continuous."""
        return self(t)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one value (``()`` for a scalar schedule)."""
        return jax.eval_shape(self, jnp.zeros(())).shape

    def __jax_array__(self):
        raise TypeError(f"a {type(self).__name__} schedule was given where a constant number or array is "
                        f"required; only the functions documented to accept a schedule do "
                        f"(docs/schedules.md)")

    __array__ = __jax_array__


def _as_float(x):
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class PiecewiseConstant(Schedule):
    """``values[i]`` on ``[boundaries[i-1], boundaries[i])`` (with ``boundaries[-1] = 0``, and
    ``values[K]`` from ``boundaries[K-1]`` on). Build with :func:`piecewise_constant`.

    Attributes:
      boundaries: (K,) increasing times > 0 (epochs), traced.
      values: (K + 1, *shape) values >= 0, traced.
    """

    boundaries: Array
    values: Array

    def __call__(self, t: ArrayLike) -> Array:
        t = jnp.asarray(t)
        idx = jnp.searchsorted(self.boundaries, t, side="right")
        return self.values[idx]

    def left_limit(self, t: ArrayLike) -> Array:
        """``values[i]`` on ``(boundaries[i-1], boundaries[i]]``: the value just before a jump at ``t``."""
        idx = jnp.searchsorted(self.boundaries, jnp.asarray(t), side="left")
        return self.values[idx]

    @property
    def n_pieces(self) -> int:
        return int(self.values.shape[0])

    def starts(self) -> Array:
        """(K + 1,) start time of each piece: 0 and the boundaries."""
        return jnp.concatenate([jnp.zeros((1,), self.boundaries.dtype), self.boundaries])


def _progress_fraction(t: ArrayLike, t_end: Array, value_ndim: int) -> Array:
    """min(t / t_end, 1) clipped at 0, with axes for the values' own shape appended."""
    f = jnp.clip(jnp.asarray(t) / t_end, 0.0, 1.0)
    return f.reshape(f.shape + (1,) * value_ndim)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class Linear(Schedule):
    """``start + (end - start) min(t / t_end, 1)``. Build with :func:`linear`."""

    start: Array
    end: Array
    t_end: Array

    def __call__(self, t: ArrayLike) -> Array:
        f = _progress_fraction(t, self.t_end, self.start.ndim)
        return self.start + (self.end - self.start) * f


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class Exponential(Schedule):
    """``start (end / start)^min(t / t_end, 1)``: a straight line in log scale. Build with
    :func:`exponential`."""

    start: Array
    end: Array
    t_end: Array

    def __call__(self, t: ArrayLike) -> Array:
        f = _progress_fraction(t, self.t_end, self.start.ndim)
        log_s = jnp.log(self.start)
        return jnp.exp(log_s + (jnp.log(self.end) - log_s) * f)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class Function(Schedule):
    """``fn(t, *params)``: a user function (static) with traced parameters. Build with :func:`function`."""

    params: tuple
    fn: Callable = dataclasses.field(metadata=dict(static=True))

    def __call__(self, t: ArrayLike) -> Array:
        return jnp.asarray(self.fn(jnp.asarray(t), *self.params))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class Shifted(Schedule):
    """``inner(t + offset)``: a schedule seen from a later start (a run resumed at epoch ``offset``).
    Build with :func:`shift`."""

    inner: Schedule
    offset: Array

    def __call__(self, t: ArrayLike) -> Array:
        return self.inner(jnp.asarray(t) + self.offset)

    def left_limit(self, t: ArrayLike) -> Array:
        return self.inner.left_limit(jnp.asarray(t) + self.offset)


def shift(schedule: Schedule, offset: ArrayLike) -> Schedule:
    """The schedule ``t -> schedule(t + offset)``: what a run that starts at epoch ``offset`` sees
    (used to continue a scheduled run in pieces). A piecewise-constant schedule stays piecewise
    constant (its boundaries move; those at or before the new start drop out of play).

    Example:
      >>> s = shift(piecewise_constant([10.0], [4.0, 1.0]), 8.0)
      >>> s(jnp.array([0.0, 1.9, 2.0])).tolist()
      [4.0, 4.0, 1.0]
    """
    if not is_schedule(schedule):
        raise ValueError(f"schedule must be a daedyn.schedules schedule; got {type(schedule).__name__}")
    check_finite("offset", offset)  # a NaN offset would give NaN boundaries, an inf one no schedule
    if isinstance(schedule, PiecewiseConstant):  # stays exact for the closed forms
        # boundaries already passed move to 0 (empty pieces, harmless for the chained closed forms)
        b = jnp.maximum(schedule.boundaries - jnp.asarray(offset, schedule.boundaries.dtype), 0.0)
        return PiecewiseConstant(b, schedule.values)
    return Shifted(schedule, _as_float(offset))


def is_schedule(x: Any) -> bool:
    """Whether ``x`` is a :class:`Schedule` (as opposed to a number or an array)."""
    return isinstance(x, Schedule)


def merged_boundaries(scheduled) -> Array | None:
    """The sorted boundaries of the pieces on which every schedule in ``scheduled`` is constant: one
    copy of boundaries that several share (the same array, a tracer included, or equal concrete
    values), so K shared pieces stay K and not 2K - 1 with half of them empty; None when none has one."""
    bounds = []
    for p in scheduled:
        b = p.boundaries
        if b.size and not any(_same_boundaries(b, c) for c in bounds):
            bounds.append(b)
    if not bounds:
        return None
    return jnp.sort(jnp.concatenate(bounds)) if len(bounds) > 1 else bounds[0]


def _same_boundaries(a, b) -> bool:
    if a is b:
        return True
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    ca, cb = concrete(a), concrete(b)
    return ca is not None and cb is not None and bool(np.array_equal(ca, cb))


def reject_schedule(name: str, x: Any, where: str = "") -> None:
    """Raise ``ValueError`` naming the parameter if a schedule is passed where a constant is required."""
    if is_schedule(x):
        raise ValueError(schedule_refusal(name, x, where))


def _check_values(name: str, values) -> None:
    check_finite(name, values)
    check_range(name, values, 0.0)


def piecewise_constant(boundaries: ArrayLike, values: ArrayLike, *,
                       matrix: bool = False) -> PiecewiseConstant:
    """A piecewise-constant schedule: ``values[0]`` until ``boundaries[0]``, then ``values[1]``, ...

    Args:
      boundaries: (K,) strictly increasing times > 0 in epochs (K >= 0; ``[]`` gives a constant).
      values: (K + 1, *shape) values >= 0; a trailing shape gives, e.g., one schedule per direction.
      matrix: the values are (K + 1, ..., D, D) corruption terms (``eps_dims=2`` of
        :func:`daedyn.dynamics.matrix_gd`): each must be symmetric positive semi-definite instead of
        elementwise >= 0 (its off-diagonal entries may be negative).
    Returns:
      :class:`PiecewiseConstant`.
    Raises:
      ValueError: naming ``boundaries`` (not 1-d, not finite, <= 0 or not strictly increasing) or
        ``values`` (not K + 1 of them, negative or not finite).
    Example:
      >>> s = piecewise_constant([10.0, 20.0], [4.0, 2.0, 1.0])
      >>> s(jnp.array([0.0, 9.9, 10.0, 25.0])).tolist()
      [4.0, 4.0, 2.0, 1.0]
    """
    b, v = concrete(boundaries), concrete(values)
    boundaries, values = _as_float(boundaries), _as_float(values)
    if boundaries.ndim != 1:
        raise ValueError(f"boundaries must be a 1-d array of K times; got shape {boundaries.shape}")
    if values.ndim < 1 or values.shape[0] != boundaries.shape[0] + 1:
        raise ValueError(f"values must have K + 1 = {boundaries.shape[0] + 1} entries along its first axis "
                         f"(one per piece, K = {boundaries.shape[0]} boundaries); got shape {values.shape}")
    if b is not None:
        check_finite("boundaries", b)
        check_range("boundaries", b, 0.0, lo_open=True)
        if b.size > 1 and not np.all(np.diff(b.astype(np.float64)) > 0):
            raise ValueError(f"boundaries must be strictly increasing; got {b.tolist()}")
    if v is not None and matrix:
        if v.ndim < 3 or v.shape[-1] != v.shape[-2]:
            raise ValueError(f"values with matrix=True must have shape (K + 1, ..., D, D); got {v.shape}")
        check_noise_term("values", v, 2)
    elif v is not None:
        _check_values("values", v)
    dtype = jnp.result_type(boundaries, values)
    return PiecewiseConstant(boundaries.astype(dtype), values.astype(dtype))


def _ramp(name_start, start, end, t_end, positive: bool):
    for name, x in ((name_start, start), ("end", end)):
        c = concrete(x)
        if c is not None:
            check_finite(name, c)
            check_range(name, c, 0.0, lo_open=positive)
    c = concrete(t_end)
    if c is not None:
        check_finite("t_end", c)
        check_range("t_end", c, 0.0, lo_open=True)
    start, end, t_end = _as_float(start), _as_float(end), _as_float(t_end)
    if t_end.ndim:
        raise ValueError(f"t_end must be a scalar time; got shape {t_end.shape}")
    shape = jnp.broadcast_shapes(start.shape, end.shape)
    dtype = jnp.result_type(start, end, t_end)
    return (jnp.broadcast_to(start, shape).astype(dtype), jnp.broadcast_to(end, shape).astype(dtype),
            t_end.astype(dtype))


def linear(start: ArrayLike, end: ArrayLike, t_end: ArrayLike) -> Linear:
    """A linear ramp from ``start`` (t = 0) to ``end`` (t = ``t_end``), then constant.

    Args:
      start, end: values >= 0 (broadcast together: one ramp per element).
      t_end: the time the ramp ends, > 0 (scalar).
    Raises:
      ValueError: naming ``start``, ``end`` or ``t_end`` when out of range.
    Example:
      >>> linear(2.0, 0.0, 10.0)(jnp.array([0.0, 5.0, 20.0])).tolist()
      [2.0, 1.0, 0.0]
    """
    return Linear(*_ramp("start", start, end, t_end, positive=False))


def exponential(start: ArrayLike, end: ArrayLike, t_end: ArrayLike) -> Exponential:
    """An exponential ramp ``start (end / start)^(t / t_end)`` until ``t_end``, then ``end``.

    Args:
      start, end: values > 0 (a geometric interpolation needs both positive).
      t_end: the time the ramp ends, > 0 (scalar).
    Raises:
      ValueError: naming ``start``, ``end`` or ``t_end`` when out of range.
    Example:
      >>> [round(x, 4) for x in exponential(4.0, 1.0, 10.0)(jnp.array([0.0, 5.0, 10.0])).tolist()]
      [4.0, 2.0, 1.0]
    """
    return Exponential(*_ramp("start", start, end, t_end, positive=True))


def function(fn: Callable[..., ArrayLike], *params: ArrayLike) -> Function:
    """Any function of time, ``fn(t, *params)``, with traced (tunable) ``params``.

    ``fn`` must be a pure, jax-traceable function returning values >= 0 with shape ``t.shape``
    (+ a trailing shape); it is static structure (hashable, compared by identity).

    Example:
      >>> s = function(lambda t, e0: e0 * jnp.exp(-t / 100.0), 3.0)
      >>> round(float(s(100.0)), 4)
      1.1036
    """
    if not callable(fn):
        raise ValueError(f"fn must be a callable fn(t, *params); got {type(fn).__name__}")
    return Function(tuple(_as_float(p) for p in params), fn)


def parse_schedule(text: str) -> Schedule:
    """A schedule from its command-line spelling (used by the CLI).

    Forms: ``piecewise:B1,B2,...:V0,V1,...`` (K boundaries, K + 1 values), ``linear:START,END,T_END``,
    ``exponential:START,END,T_END``.

    Raises:
      ValueError: naming the form when the text does not parse.
    Example:
      >>> parse_schedule("piecewise:100,200:4,2,1")(150.0).tolist()
      2.0
    """
    kind, _, rest = text.partition(":")

    def nums(s, what):
        try:
            return [float(x) for x in s.split(",") if x.strip()]
        except ValueError:
            raise ValueError(f"{what}: expected comma-separated numbers; got {s!r}") from None

    if kind == "piecewise":
        b, sep, v = rest.partition(":")
        if not sep:
            raise ValueError(f"schedule 'piecewise:B1,...:V0,...' needs boundaries and values; got {text!r}")
        return piecewise_constant(np.asarray(nums(b, "boundaries")), np.asarray(nums(v, "values")))
    if kind in ("linear", "exponential"):
        x = nums(rest, kind)
        if len(x) != 3:
            raise ValueError(f"schedule '{kind}:START,END,T_END' needs 3 numbers; got {text!r}")
        return (linear if kind == "linear" else exponential)(*x)
    raise ValueError(f"schedule must be 'piecewise:B1,...:V0,...', 'linear:START,END,T_END' or "
                     f"'exponential:START,END,T_END'; got {text!r}")


# ----------------------------------------------------------------------------------------------
# Helpers for the engines that take schedules (not in ``__all__``: used inside daedyn).


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
    piece values, the ramp ends, or any other schedule on the save times ``ts``; None when traced.
    ``name`` is the parameter's name (kept for the callers' messages)."""
    if isinstance(x, PiecewiseConstant):
        return concrete(x.values)
    if isinstance(x, Linear | Exponential):
        a, b = concrete(x.start), concrete(x.end)
        return None if a is None or b is None else np.stack([a, b])
    if is_schedule(x):  # a user function, a shifted schedule: its values on the save times
        try:
            return concrete(x(jnp.asarray(ts if ts is not None else np.zeros(1))))
        except jax.errors.ConcretizationTypeError:
            return None
    return concrete(x)


def change_steps(first: int, end: int, *rates, continuous=None) -> list[int] | None:
    """The steps in [first, end) at which the rates in force may change, with ``first``: the first
    step of each piece of a piecewise-constant rate (step k uses the value at t = k). A continuous
    schedule adds the steps ``continuous`` (e.g. the save times), or gives None when that is None;
    None too when a piece's boundaries are traced (the caller falls back to each rate's largest value)."""
    steps = {int(first)}
    for x in rates:
        if isinstance(x, PiecewiseConstant):
            b = concrete(x.boundaries)
            if b is None:
                return None
            steps.update(int(t) for t in np.ceil(np.asarray(b, np.float64)) if first < t < end)
        elif is_schedule(x):
            if continuous is None:
                return None
            steps.update(int(t) for t in continuous if first <= t < end)
    return sorted(steps)


def dtype_probe(x):
    """A zero of the dtype of a schedule's leaves (or the constant itself), for the dtype choice."""
    if not is_schedule(x):
        return x
    leaves = jax.tree_util.tree_leaves(x)
    return jnp.zeros((), jnp.result_type(*leaves)) if leaves else 0.0


def cast(x, dtype):
    """A schedule with every leaf cast to ``dtype``, or the constant as a ``dtype`` array."""
    if is_schedule(x):
        return jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, dtype), x)
    return jnp.asarray(x, dtype)


def require_piecewise(name: str, x, func: str, depth: int = 2) -> None:
    """Refuse a continuous (linear, exponential, function) schedule where ``func`` is exact for
    piecewise-constant ones only (a closed form; none exists at any depth): ``ValueError`` naming
    the parameter and the integrator to use instead."""
    if is_schedule(x) and not isinstance(x, PiecewiseConstant):
        flow = "daedyn.dynamics.scalar_flow" + ("" if depth == 2 else f"(..., depth={depth})")
        how = f"integrate it with {flow}, or approximate it by daedyn.schedules.piecewise_constant"
        raise ValueError(f"{name}: {func} is exact for piecewise-constant schedules only; got a "
                         f"{type(x).__name__} schedule ({how})")
