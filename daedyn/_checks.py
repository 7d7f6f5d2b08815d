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

__all__ = ["check_noise_term", "schedule_refusal", "concrete", "check_range", "check_finite",
           "check_broadcastable", "check_int",
           "check_precision", "PRECISIONS", "float_dtype", "FLOAT64_HINT", "check_representable",
           "check_output", "check_nonempty", "check_fit", "renamed"]

#: How to get float64, quoted by every error about the limits of the computation dtype.
FLOAT64_HINT = ("compute in float64: call jax.config.update('jax_enable_x64', True) at startup (or "
                "wrap the call in `with jax.enable_x64(True):`) and pass float64 inputs")


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
    _reject_schedule(name, x)
    v = concrete(x)
    if v is None or v.size == 0:
        return
    # bfloat16 (ml_dtypes) is a float to JAX but not an np.number
    if not np.issubdtype(v.dtype, np.number) and not jnp.issubdtype(v.dtype, jnp.floating) \
            and v.dtype != np.bool_:
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


def _reject_schedule(name: str, x) -> None:
    """A :mod:`daedyn.schedules` schedule where a number is required: ``ValueError`` naming it (the
    one message; ``daedyn.schedules.reject_schedule`` calls this). Recognised by its module, so this
    bottom layer imports nothing above it."""
    if type(x).__module__ == "daedyn.schedules":
        raise ValueError(schedule_refusal(name, x))


def schedule_refusal(name: str, x, where: str = "") -> str:
    """The message of a schedule given where a constant is required (one wording everywhere)."""
    hint = f" ({where})" if where else ""
    return (f"{name} must be a number or an array here, not a {type(x).__name__} schedule{hint}; "
            f"see docs/schedules.md for the functions that accept schedules")


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


#: The largest count a computation takes (JAX's default integers are 32-bit).
INT_MAX = 2**31 - 1


def check_int(name: str, value, lo: int, hi: int = INT_MAX) -> int:
    """A Python int in [lo, hi] (default hi 2**31 - 1: a larger count would overflow JAX's int32, or
    never finish), or ``ValueError`` naming the parameter (bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}; got {value!r}")
    if value > hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}]; got {int(value)}")
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

    NumPy float64 inputs give float32 unless 64-bit mode is on (JAX's canonicalisation). Python
    lists and tuples count as arrays. Half-precision inputs (float16, bfloat16: largest value 6.5e4,
    3 decimal digits) are computed in float32: the closed forms and recursions need the range.
    """
    if dtype is not None:
        dt = jnp.dtype(dtype)
        if not jnp.issubdtype(dt, jnp.floating):
            raise ValueError(f"dtype must be a floating dtype; got {dt}")
        return jnp.dtype(jax.dtypes.canonicalize_dtype(dt))
    xs = [np.asarray(x) if isinstance(x, list | tuple) else x for x in xs]
    dt = jnp.result_type(*xs) if xs else jnp.result_type(float)
    if not jnp.issubdtype(dt, jnp.floating):
        dt = jnp.result_type(float)
    if jnp.dtype(dt).itemsize < 4:
        dt = jnp.float32
    return jnp.dtype(dt)


def _dtype_name(dtype) -> str:
    return jnp.dtype(dtype).name


def check_representable(name: str, x, dtype, *, power: int = 1, underflow: bool = True) -> None:
    """Raise ``ValueError`` if a concrete finite ``x`` (or ``|x|**power``) does not fit in ``dtype``.

    A nonzero value fits when its magnitude lies between the smallest normal number and the
    largest finite number of ``dtype`` (CPUs and GPUs flush subnormals to 0 in XLA). ``power`` checks
    a product the computation forms, e.g. ``power=2`` for a value that is squared. The message names
    the value, the dtype and :data:`FLOAT64_HINT`. ``underflow=False`` checks the upper end only (for
    a quantity whose flush to 0 does no harm). Traced, complex and non-finite values pass (the range
    checks refuse the latter).

    Example:
      >>> try:
      ...     check_representable("lam", 1e300, "float32")
      ... except ValueError as e:
      ...     print(str(e)[:53])
      lam = 1e+300 is outside the range of float32 (nonzero
    """
    v = concrete(x)
    if v is None or v.size == 0 or not np.issubdtype(v.dtype, np.number) or np.iscomplexobj(v):
        return
    info = jnp.finfo(dtype)
    a = np.abs(v.astype(np.float64)).ravel()
    a = a[np.isfinite(a) & (a > 0)]
    if not a.size:
        return
    hi, lo = float(info.max) ** (1.0 / power), float(info.tiny) ** (1.0 / power)
    bad = a[(a > hi) | ((a < lo) & underflow)]
    if bad.size:
        what = name if power == 1 else f"{name} (raised to the power {power} here)"
        worst = bad[np.argmax(np.abs(np.log(bad)))]
        raise ValueError(f"{what} = {worst:.3g} is outside the range of {_dtype_name(dtype)} (nonzero "
                         f"magnitudes from {lo:.3g} to {hi:.3g}); {FLOAT64_HINT}")


def check_output(name: str, out, *, allow_inf: bool = False):
    """Return ``out``, or raise ``ValueError`` if a concrete ``out`` has NaN (or inf) values.

    The post-check of a computation whose inputs were valid: a non-finite result then means the
    computation dtype ran out of range (or precision), which is reported instead of returned.
    ``allow_inf`` lets documented infinities (a time that is never reached) through. Traced
    outputs pass unchecked; the check reduces on the device and fetches one flag.
    """
    leaves = [leaf for leaf in jax.tree_util.tree_leaves(out)
              if leaf is not None and not isinstance(leaf, jax.core.Tracer)]
    for leaf in leaves:
        a = jnp.asarray(leaf)
        if not jnp.issubdtype(a.dtype, jnp.inexact) or a.size == 0:
            continue
        bad = jnp.isnan(a) if allow_inf else ~jnp.isfinite(a)
        if bool(jnp.any(bad)):
            count = int(jnp.sum(bad))
            raise ValueError(f"{name} is not finite for these inputs in {_dtype_name(a.dtype)} ({count} of "
                             f"{a.size} values NaN{'' if allow_inf else ' or inf'}): an intermediate left "
                             f"the range of the dtype; {FLOAT64_HINT}")
    return out


def check_nonempty(name: str, size: int, what: str = "size") -> int:
    """Raise ``ValueError`` naming the parameter if a core dimension is 0 (an empty problem)."""
    if int(size) < 1:
        raise ValueError(f"{name} must have {what} >= 1; got {size}")
    return int(size)


def check_fit(dtype, **named) -> None:
    """:func:`check_representable` for every named value in one computation dtype."""
    for name, value in named.items():
        check_representable(name, value, dtype)


def check_noise_term(name: str, c, c_dims: int) -> None:
    """A scalar or (D,) term must be >= 0; a (D, D) term finite, symmetric and positive
    semi-definite (per batch element; tolerance 1e3 machine epsilons of the largest entry)."""
    if c_dims < 2:
        check_range(name, c, 0.0)
        return
    check_finite(name, c)
    v = concrete(c)
    if v is None or v.size == 0:
        return
    a = v.astype(np.float64)
    scale = max(float(np.max(np.abs(a))), np.finfo(np.float64).tiny)
    eps = np.finfo(v.dtype).eps if np.issubdtype(v.dtype, np.floating) else np.finfo(np.float64).eps
    tol = 1e3 * eps * scale
    asym = float(np.max(np.abs(a - np.swapaxes(a, -1, -2))))
    if asym > tol:
        raise ValueError(f"{name} must be symmetric; max |{name} - {name}^T| = {asym:.3g} "
                         f"(tolerance {tol:.3g})")
    low = float(np.min(np.linalg.eigvalsh((a + np.swapaxes(a, -1, -2)) / 2)))
    if low < -tol * a.shape[-1]:
        raise ValueError(f"{name} must be positive semi-definite; its smallest eigenvalue is {low:.3g}")


def renamed(**old_to_new: str):
    """Decorator: keywords renamed to the glossary's one name (docs/glossary.md) keep working for one
    release, with a ``DeprecationWarning`` naming the new keyword; ``inspect.signature`` shows the new
    names, and ``fn.__deprecated_keywords__`` lists the old ones (tests/test_glossary.py).

    Example:
      >>> @renamed(f="fraction")
      ... def half(fraction=0.5):
      ...     return fraction
      >>> import warnings
      >>> with warnings.catch_warnings(record=True) as caught:
      ...     warnings.simplefilter("always")
      ...     half(f=0.25), str(caught[0].message)
      (0.25, "half(f=...) is deprecated: use fraction= (the glossary's name; docs/glossary.md)")
    """
    import functools
    import warnings

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{fn.__name__}() got both {old}= (deprecated) and {new}=")
                    warnings.warn(f"{fn.__name__}({old}=...) is deprecated: use {new}= (the glossary's "
                                  "name; docs/glossary.md)", DeprecationWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        inner.__deprecated_keywords__ = dict(old_to_new)
        return inner

    return wrap
