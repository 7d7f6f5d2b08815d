"""Argument preparation shared by the closed forms: one shape, one floating dtype, NaN marking.

Range and finiteness checks come from :mod:`daedyn._checks`; what is here is specific to the
elementwise closed forms: broadcasting their arguments explicitly (so that
``jax_numpy_rank_promotion="raise"`` is respected) and marking the output elements of traced
out-of-range inputs with NaN.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from daedyn._checks import check_broadcastable, float_dtype

__all__ = ["prepare", "align", "mark_invalid"]


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
