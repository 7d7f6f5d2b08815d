"""Argument preparation shared by the closed forms: one shape, one floating dtype, NaN marking.

Range and finiteness checks come from :mod:`daedyn._checks`; what is here is specific to the
elementwise closed forms: broadcasting their arguments explicitly (so that
``jax_numpy_rank_promotion="raise"`` is respected) and marking the output elements of traced
out-of-range inputs with NaN.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array

from daedyn._checks import (
    check_broadcastable,
    check_finite,
    check_fit,
    check_output,
    check_range,
    check_representable,
    concrete,
    float_dtype,
)

__all__ = ["prepare", "align", "mark_invalid", "check_fits", "check_start", "finite_result",
           "direction_moments"]


def _real_dtype(named: dict, arrays: list[Array]):
    """The common floating dtype of the arguments; ValueError naming them if one is complex."""
    if any(jnp.iscomplexobj(a) for a in arrays):
        dtype = jnp.result_type(*arrays)
        raise ValueError(f"expected real arguments; got dtype {dtype} for {', '.join(named)}")
    return float_dtype(*arrays)


def prepare(**named) -> list[Array]:
    """The named arguments broadcast to one shape and cast to one floating dtype.

    Raises:
      ValueError: naming the arguments, if their shapes do not broadcast or one is complex.
    """
    shape = check_broadcastable(**named)
    arrays = [jnp.asarray(v) for v in named.values()]
    dtype = _real_dtype(named, arrays)
    return [jnp.broadcast_to(a.astype(dtype), shape) for a in arrays]


def align(**named) -> tuple[list[Array], tuple[int, ...]]:
    """Like :func:`prepare`, but only to a common rank (leading size-1 axes), not to the broadcast
    shape, which is returned alongside: quantities that depend on some of the arguments only are
    then computed once per distinct value, not once per output element."""
    shape = check_broadcastable(**named)
    arrays = [jnp.asarray(v) for v in named.values()]
    dtype = _real_dtype(named, arrays)
    return [a.astype(dtype).reshape((1,) * (len(shape) - a.ndim) + a.shape) for a in arrays], shape


def mark_invalid(out: Array, valid: Array) -> Array:
    """NaN where a (traced) input was out of range; concrete inputs were checked before."""
    return jnp.where(valid, out, jnp.asarray(jnp.nan, out.dtype))


def _dtype_of(named: dict):
    arrays = [np.asarray(v) if isinstance(v, list | tuple) else v for v in named.values()]
    if any(np.iscomplexobj(a) for a in arrays):
        return None  # prepare() names the complex arguments
    return float_dtype(*arrays)


def check_fits(**named):
    """Every concrete named value fits in the computation dtype (``daedyn._checks``); returns it.

    A valid number that does not survive the cast (``lam = 1e300`` or ``w0 = 1e-60`` in float32)
    is refused with an error naming it, the dtype and how to get float64, instead of computing with
    inf or 0.
    """
    dtype = _dtype_of(named)
    if dtype is not None:
        check_fit(dtype, **named)
    return dtype


def check_start(w1, w2, dtype) -> None:
    """The state the general solution starts from fits in ``dtype``: ``(w1 +- w2)**2 / 2`` neither
    overflow nor flush to 0 (a start whose growing mode underflows would never learn), and
    ``(w2**2 - w1**2)**2 / 4`` does not overflow."""
    c1, c2 = concrete(w1), concrete(w2)
    if dtype is None or c1 is None or c2 is None:
        return
    if np.iscomplexobj(c1) or np.iscomplexobj(c2):
        return
    with np.errstate(over="ignore", under="ignore"):
        a, b = (np.asarray(c, dtype).astype(np.float64) for c in (c1, c2))  # the values the dtype holds
        check_representable("(w1 + w2)**2 / 2", 0.5 * (a + b) ** 2, dtype)
        check_representable("(w2 - w1)**2 / 2", 0.5 * (b - a) ** 2, dtype)
        check_representable("(w2**2 - w1**2)**2 / 4", 0.25 * (b * b - a * a) ** 2, dtype, underflow=False)


def finite_result(name: str, out, *, allow_inf: bool = False):
    """The post-check of a closed form (``daedyn._checks.check_output``): its inputs were valid, so
    a NaN (or an inf that is not documented) is the dtype's range running out, reported as such."""
    return check_output(name, out, allow_inf=allow_inf)


def direction_moments(noise, lam, n):
    """``(k, m)`` of a corruption value per direction (:func:`daedyn._corruption.direction_moments`,
    the protocol ``noise.direction_moments(lam, n)``), checked: constant (the closed forms take no
    scheduled corruption), k finite, m > 0 (concrete values)."""
    from daedyn._corruption import direction_moments as moments
    from daedyn.schedules import is_schedule

    if not callable(getattr(noise, "direction_moments", None)):
        raise ValueError("noise must be a value with a method direction_moments(lam, n) -> (k, m); got "
                         f"{type(noise).__name__}")
    k, m = moments(noise, lam, n)
    if is_schedule(k) or is_schedule(m):
        raise ValueError("the closed forms take a constant noise value (a scheduled one is integrated: "
                         "daedyn.dynamics.scalar_gd / scalar_flow with noise=)")
    check_finite("k (noise.direction_moments)", k)
    check_range("m (noise.direction_moments)", m, 0.0, lo_open=True)
    return k, m
