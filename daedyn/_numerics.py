"""Small numerically safe building blocks: finite values *and* finite gradients everywhere.

Closed forms of the learning dynamics contain removable singularities (``(e^x - 1) / x`` at
``x = 0``, square roots at 0, ratios 0/0 at the saddle). Each helper here evaluates such an
expression with the double-``where`` pattern: the branch that is not taken is fed a harmless value,
so neither it nor its derivative can produce inf/NaN that would leak into ``jax.grad`` through
``jnp.where``.

All helpers are elementwise, broadcast like ``jnp`` operations, keep the floating dtype of their
input and work under ``jit``, ``vmap`` and ``grad`` (including second derivatives).
"""

from __future__ import annotations

import functools as ft

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

__all__ = ["clenshaw", "expm1_ratio", "implicit_root", "nan_derivative", "panel_matrices", "safe_div",
           "safe_sqrt", "scaled_div", "series_threshold"]

# Taylor coefficients of (e^x - 1) / x = sum_k x^k / (k + 1)!, k = 0..6.
_EXPM1_RATIO_COEFFS = (1.0, 1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040)


def series_threshold(dtype) -> float:
    """Switch-over point |x| below which ``expm1_ratio`` uses its degree-6 Taylor polynomial.

    ``finfo(dtype).eps ** (1/7)``: the truncation error x^7 / 8! is then below one ulp, and the
    direct formula's derivative ``(e^x - expm1_ratio(x)) / x`` loses at most ``eps / x`` relative
    accuracy above it (about 1e-6 in float32, 4e-14 in float64).
    """
    return float(jnp.finfo(dtype).eps) ** (1.0 / 7.0)


def expm1_ratio(x: ArrayLike) -> Array:
    """``(exp(x) - 1) / x``, with value 1 and derivative 1/2 at ``x = 0``.

    Accurate to a few ulp for every finite ``x`` (``expm1`` away from 0, a Taylor polynomial near
    0), with finite first and second derivatives everywhere. For ``x -> -inf`` it tends to
    ``-1/x``; for large positive ``x`` it overflows like ``exp(x)`` itself.

    Args:
      x: any real array; integer input is promoted to the default float type.
    Returns:
      ``(e^x - 1) / x`` elementwise, same shape and floating dtype as ``x``.
    Example:
      >>> float(expm1_ratio(0.0)), round(float(expm1_ratio(1.0)), 6)
      (1.0, 1.718282)
    """
    x = jnp.asarray(x)
    x = x.astype(jnp.result_type(x, 0.0))
    small = jnp.abs(x) < series_threshold(x.dtype)
    x_safe = jnp.where(small, jnp.ones_like(x), x)  # the untaken branch stays finite (grads too)
    direct = jnp.expm1(x_safe) / x_safe
    x_small = jnp.where(small, x, jnp.zeros_like(x))
    series = jnp.zeros_like(x)
    for c in reversed(_EXPM1_RATIO_COEFFS):  # Horner
        series = series * x_small + c
    return jnp.where(small, series, direct)


def safe_div(num: ArrayLike, den: ArrayLike, fill: ArrayLike = 0.0, *,
             where: ArrayLike | None = None) -> Array:
    """``num / den`` where ``where`` holds (default ``den != 0``), else ``fill``; grads stay finite.

    The denominator is replaced by 1 outside ``where`` before dividing, so the unused quotient
    and its derivatives are finite (the double-``where`` trick).

    Example:
      >>> safe_div(jnp.array([1.0, 0.0]), jnp.array([2.0, 0.0])).tolist()
      [0.5, 0.0]
    """
    num = jnp.asarray(num)
    den = jnp.asarray(den)
    ok = den != 0 if where is None else jnp.asarray(where)
    den_safe = jnp.where(ok, den, jnp.ones_like(den))
    return jnp.where(ok, num / den_safe, fill)


def safe_sqrt(x: ArrayLike, at_zero: ArrayLike | None = None) -> Array:
    """``sqrt(x)`` for ``x > 0``; ``at_zero`` (default 0) where ``x <= 0``; finite gradients.

    ``at_zero`` lets a caller supply a value whose derivative is the right one-sided limit
    (e.g. ``sqrt(lam**2 + r) = lam`` when ``r = 0``).

    Example:
      >>> safe_sqrt(jnp.array([4.0, 0.0])).tolist()
      [2.0, 0.0]
    """
    x = jnp.asarray(x)
    pos = x > 0
    root = jnp.sqrt(jnp.where(pos, x, jnp.ones_like(x)))
    return jnp.where(pos, root, jnp.zeros_like(x) if at_zero is None else at_zero)



@jax.custom_jvp
def scaled_div(num: ArrayLike, den: ArrayLike) -> Array:
    """``num / den`` whose derivatives never form ``den**2`` (for a tiny, nonzero ``den``).

    JAX differentiates ``x / d`` into ``dx / d - x dd / d**2``; when ``d`` is tiny (``1e-30``)
    ``d**2`` underflows to 0 and the derivative becomes ``inf`` or ``0 * inf = NaN`` although the true
    one is finite (``x`` and ``dd`` are as small as ``d``). Here the derivative is
    ``(dx - (x / d) dd) / d``, the same number formed from quantities that stay in range; the rule
    is itself written with ``scaled_div``, so derivatives of every order are exact. (A
    ``stop_gradient`` rescaling ``(x / S) / (d / S)`` does not work under ``jit``: XLA rewrites it
    into ``x / (S * (d / S))``-like forms that underflow again.) ``den`` must be nonzero; wrap it
    with :func:`safe_div`'s pattern otherwise.

    Example:
      >>> import jax
      >>> x, d = jnp.float32(1e-30), jnp.float32(2e-30)  # d(x/d)/dd = -x/d**2 = -2.5e29
      >>> print(jax.grad(lambda d: x / d)(d), jax.grad(lambda d: scaled_div(x, d))(d))
      -inf -2.5e+29
    """
    return jnp.asarray(num) / jnp.asarray(den)


@scaled_div.defjvp
def _scaled_div_jvp(primals, tangents):
    num, den = primals
    d_num, d_den = tangents
    out = scaled_div(num, den)
    return out, scaled_div(d_num - out * d_den, den)


def panel_matrices(nodes: int):
    """Gauss-Legendre nodes on [-1, 1] and the matrices from the values at them to the Chebyshev
    coefficients of the interpolating polynomial (``nodes x nodes``) and of its integral from -1
    (``nodes + 1 x nodes``), in float64 (NumPy: built once, at import, by the callers)."""
    x, _ = np.polynomial.legendre.leggauss(nodes)
    to_cheb = np.linalg.inv(np.polynomial.chebyshev.chebvander(x, nodes - 1))
    integ = np.stack([np.polynomial.chebyshev.chebint(col, lbnd=-1.0) for col in np.eye(nodes)], axis=1)
    return x, to_cheb, integ @ to_cheb


def clenshaw(c, x):
    """``sum_j c[..., j] T_j(x)`` (Chebyshev series, last axis, or a list of the coefficients; x
    broadcasts against c[..., 0])."""
    c = [c[..., j] for j in range(c.shape[-1])] if hasattr(c, "shape") else c
    b1 = jnp.zeros_like(x * c[0])
    b2 = b1
    for j in range(len(c) - 1, 0, -1):
        b1, b2 = c[j] + 2.0 * x * b1 - b2, b1
    return c[0] + x * b1 - b2


@ft.partial(jax.custom_jvp, nondiff_argnums=(0,))
def implicit_root(residual, x: ArrayLike, params) -> Array:
    """``x``, a converged root of ``residual(x, params) = 0`` (found without derivatives), with the
    derivatives of the root ``x(params)`` of every order by the implicit function theorem.

    ``residual`` is elementwise in ``x`` (each element's residual depends on its own x only) and
    differentiable in ``x`` and in the floating leaves of ``params``. The usual last differentiable
    Newton step ``x - r / r'`` from a stopped root gives exact first derivatives but not second ones
    (it drops r_xx x'^2 + 2 r_xp x'); this rule's tangent ``-r_p . p_dot / r_x`` is evaluated at the
    root as this function's own output, so differentiating it again brings in x'(p) and so on.
    The value is ``x`` unchanged; ``x``'s own tangent is ignored (the root does not depend on where
    the search started)."""
    return x


@implicit_root.defjvp
def _implicit_root_jvp(residual, primals, tangents):
    x, params = primals
    p_dot = tangents[1]
    x = implicit_root(residual, x, params)  # itself: its derivatives enter the next order
    slope = jax.jvp(lambda y: residual(y, params), (x,), (jnp.ones_like(x),))[1]
    r_dot = jax.jvp(lambda p: residual(x, p), (params,), (p_dot,))[1]
    return x, -r_dot / slope


@jax.custom_jvp
def nan_derivative(x: ArrayLike) -> Array:
    """0 (``x`` finite), with derivative NaN along any tangent that moves ``x`` (0 along one that does not).

    Marks a derivative a custom rule does not form: added to a first-order tangent's coefficient, it
    leaves values and first derivatives unchanged and makes the second derivatives that would need
    the missing term NaN instead of silently wrong. Forward mode only at that order (jax.hessian,
    forward-over-reverse, works; reverse-over-reverse raises)."""
    # x * 0, not zeros_like: a constant output confuses batching of the rule inside another custom rule
    # under jit, vmap and forward-over-forward (jax 0.7: "mul: arrays must have the same number of
    # dimensions"); x is finite (a parameter) here
    return x * 0.0


@nan_derivative.defjvp
def _nan_derivative_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    return nan_derivative(x), jnp.where(x_dot != 0, jnp.nan, 0.0) + 0.0 * x_dot
