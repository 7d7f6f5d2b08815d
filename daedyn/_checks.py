"""Input validation at the public edge: clear errors for concrete values, nothing under tracing.

Concrete (NumPy/Python/committed JAX) values are checked and raise ``ValueError`` naming the
parameter and the allowed range. Traced values (inside jit/vmap/grad) cannot be inspected; they
pass through unchecked and a NaN in the output can then only come from a NaN (or out-of-range)
input. Batched sweeps mark bad points instead of raising.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["concrete", "check_range", "check_finite", "check_broadcastable", "check_int",
           "check_precision", "PRECISIONS", "float_dtype"]


def concrete(x):
    """``np.asarray(x)`` for a concrete value, ``None`` for a tracer."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def check_range(name: str, x, lo: float = -math.inf, hi: float = math.inf, *,
                lo_open: bool = False, hi_open: bool = False) -> None:
    """Raise ``ValueError`` unless every element of concrete ``x`` lies in the interval.

    The interval is [lo, hi] with open ends where ``lo_open`` / ``hi_open``. An infinite end is
    always open: +-inf are never valid inputs (an unbounded range is [0, inf), not [0, inf]).
    NaN fails.
    """
    lo_open = lo_open or lo == -math.inf
    hi_open = hi_open or hi == math.inf
    v = concrete(x)
    if v is None or v.size == 0:
        return
    if not np.issubdtype(v.dtype, np.number) and v.dtype != np.bool_:
        raise ValueError(f"{name} must be numeric; got dtype {v.dtype}")
    v = v.astype(np.float64) if not np.iscomplexobj(v) else v
    ok = (v > lo if lo_open else v >= lo) & (v < hi if hi_open else v <= hi)
    if not np.all(ok):
        left = "(" if lo_open or lo == -math.inf else "["
        right = ")" if hi_open or hi == math.inf else "]"
        bad = v[~ok]
        nan_note = " (contains NaN)" if v.size > 1 and np.isnan(bad).any() else ""
        first = _plain(bad.flat[0])
        got = f"got {first}" if v.size == 1 else f"got {bad.size} of {v.size} values outside, e.g. {first}"
        raise ValueError(f"{name} must lie in {left}{_plain(lo)}, {_plain(hi)}{right}; {got}{nan_note}")


def _plain(x) -> str:
    """A number as a user would type it: ``-1.0``, ``0``, ``inf`` (no ``np.float64(...)``)."""
    x = complex(x) if np.iscomplexobj(x) else float(x)
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return repr(x) if isinstance(x, float) and math.isfinite(x) else str(x)


def check_finite(name: str, x) -> None:
    """Raise ``ValueError`` naming the parameter if concrete ``x`` has NaN, +inf or -inf."""
    check_range(name, x, -math.inf, math.inf, lo_open=True, hi_open=True)


def check_broadcastable(**arrays) -> tuple[int, ...]:
    """Return the broadcast shape of the named arrays or raise ``ValueError`` naming them."""
    shapes = {k: np.shape(v) for k, v in arrays.items()}
    try:
        return np.broadcast_shapes(*shapes.values())
    except ValueError:
        desc = ", ".join(f"{k}{s}" for k, s in shapes.items())
        raise ValueError(f"shapes do not broadcast together: {desc}") from None


def check_int(name: str, value, lo: int) -> int:
    """A Python int >= lo, or ``ValueError`` naming the parameter (bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}; got {value!r}")
    return int(value)


PRECISIONS = (None, "default", "high", "highest", "fastest", "float32", "bfloat16", "tensorfloat32")


def check_precision(precision):
    """Accept None, a precision string JAX understands, or a ``lax.Precision``; else ``ValueError``."""
    if isinstance(precision, lax.Precision) or precision in PRECISIONS:
        return precision
    raise ValueError(f"precision must be one of None, 'default', 'high', 'highest' or a lax.Precision; "
                     f"got {precision!r}")


def float_dtype(*xs, dtype=None):
    """The floating dtype of a computation: ``dtype`` if given (must be floating), else the dtype
    the inputs promote to, or JAX's default float when none of them is floating.

    NumPy float64 inputs give float32 unless 64-bit mode is on (JAX's canonicalisation).
    """
    if dtype is not None:
        dt = jnp.dtype(dtype)
        if not jnp.issubdtype(dt, jnp.floating):
            raise ValueError(f"dtype must be a floating dtype; got {dt}")
        return jnp.dtype(jax.dtypes.canonicalize_dtype(dt))
    dt = jnp.result_type(*xs) if xs else jnp.result_type(float)
    if not jnp.issubdtype(dt, jnp.floating):
        dt = jnp.result_type(float)
    return jnp.dtype(dt)
