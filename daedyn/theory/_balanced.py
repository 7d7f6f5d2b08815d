"""The balanced small-start solution with noise and weight decay (Eq. (7) generalised), its fixed
point and the time it takes to approach it.

From a balanced start ``w1 = w2`` the flow of one eigen-direction, Eqs. (2)-(3) plus the weight decay
of Eq. (6), stays balanced and its mapping ``w = w1 w2`` obeys the logistic equation

    tau dw/dt = 2 w (a - k w),    a = lam - n gamma,    k = lam + eps,

whose solution, fixed point ``max(0, a / k)`` and inverse (a learning time) are closed forms.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import check_broadcastable, check_finite, check_range, renamed
from daedyn._numerics import _EXPM1_RATIO_COEFFS, expm1_ratio, safe_div, series_threshold
from daedyn.schedules import is_schedule, require_piecewise
from daedyn.theory._args import check_fits, direction_moments, finite_result, mark_invalid, prepare
from daedyn.theory._deep import (
    check_depth,
    deep_fixed_point,
    deep_learning_time,
    deep_small_init,
    deep_threshold,
)
from daedyn.theory._schedule import (
    _as_pieces,
    _compose,
    _compose_states,
    _flat_pieces,
    _flat_vmap,
    schedule_pieces,
)

__all__ = ["small_init_trajectory", "fixed_point", "learning_time", "learning_threshold"]


def _time_factor(s, y):
    """``2 s expm1_ratio(y)`` for ``y = -+2 a s``, formed as ``expm1(y) (2 s / y)`` where ``|y| > 1``: the
    ratio 1 / x is not formed, which flushes to 0 (subnormal) for x > 8.5e37 in float32."""
    big = jnp.abs(y) > 1.0
    y_big = jnp.where(big, y, 1.0)
    y_small = jnp.where(big, 0.0, y)
    return jnp.where(big, jnp.expm1(y_big) * (s / y_big * 2.0), 2.0 * s * expm1_ratio(y_small))


@jax.jit
def _small_init_trajectory_impl(t, lam, eps, gamma, w0, tau, n):
    t, lam, eps, gamma, w0, tau, n = prepare(t=t, lam=lam, eps=eps, gamma=gamma, w0=w0, tau=tau, n=n)
    w = _logistic(t / tau, lam - n * gamma, lam + eps, w0)
    valid = (t >= 0) & (lam >= 0) & (eps >= 0) & (gamma >= 0) & (w0 >= 0) & (tau > 0) & (n > 0)
    return mark_invalid(w, valid)


def _logistic(s, a, k, w0):
    """The solution of ``dw/ds = 2 w (a - k w)`` from ``w0 >= 0`` (any sign of ``a``, ``k >= 0``)."""
    x = 2.0 * a * s
    grow = a > 0
    xp = jnp.where(grow, x, 0.0)  # x > 0: divide through by e^x
    xn = jnp.where(grow, 0.0, x)  # x <= 0: e^x already decays
    # k w0 (2 s expm1_ratio(x)): the time factor is bounded by 1 / |a| where the exponential has
    # decayed, so a long time does not overflow 2 s k w0 into inf * 0.
    kw0 = k * w0
    den_grow = jnp.exp(-xp) + kw0 * _time_factor(s, -xp)
    w_grow = safe_div(w0, den_grow, 0.0)  # w0 = 0 once exp(-x) underflows: 0 / 0, the saddle's 0
    w_decay = w0 * jnp.exp(xn) / (1.0 + kw0 * _time_factor(s, xn))
    return jnp.where(grow, w_grow, w_decay)


# Coefficients n = 0..8 of the series (z -> 0) of q(z) = (expm1(z) - z) / z^2 = sum z^n / (n + 2)!
_Q_COEFFS = tuple(1.0 / math.factorial(i + 2) for i in range(9))


def _bounded_ratio(z, em1, ez, ratio, derivative):
    """``q(z) = (expm1(z) - z) / z^2`` (``derivative`` False) or ``g'(z) = (z e^z - expm1(z)) / z^2`` (True,
    the derivative of ``g = expm1_ratio``) elementwise for ``z <= 0`` (``derivative`` a boolean array:
    each element's choice), from ``em1 = expm1(z)``, ``ez = exp(z)`` and ``ratio = g(z)``. Direct forms
    for ``|z| >= c`` (relative error ~ 2 eps / c: the numerator cancels to ``z^2 / 2``); below, the
    9-term series of q (truncation ``c^9 / 11!``) and ``g' = g - q`` (both near 1 and 1/2 there: no
    cancellation): c = 0.1 in float64 (< 5e-15), 0.5 in float32 (< 5e-7). Both functions lie in
    (0, 1/2] for z <= 0."""
    c = 0.1 if z.dtype == jnp.float64 else 0.5
    small = z > -c
    zb = jnp.where(small, -1.0, z)  # the untaken branch stays finite (its derivatives too)
    direct = jnp.where(derivative, zb * ez - em1, em1 - zb) / (zb * zb)
    zs = jnp.where(small, z, 0.0)
    q = jnp.zeros_like(z)
    for coef in reversed(_Q_COEFFS):  # Horner
        q = q * zs + coef
    return jnp.where(small, jnp.where(derivative, ratio - q, q), direct)


def _piece_terms(s, a, k, w0):
    """``w`` of :func:`_logistic` (the same values bit for bit: the same operations on each element,
    tested) and what its partials reuse, with one ``exp`` and one ``expm1`` per element where
    ``_logistic`` evaluates both branches (two of each, twice ``expm1`` in each time factor).

    Each branch of ``_logistic`` depends on ``z = -2 |a| s <= 0`` only (``-x`` where ``a > 0``, ``x``
    elsewhere; negation is exact): ``w = w0 c' / D`` with ``D = c + k w0 T(z)``, ``c = e^z`` and ``c' = 1``
    where ``a > 0``, ``c = 1`` and ``c' = e^z`` elsewhere; ``T`` is :func:`_time_factor` with the
    ``expm1`` of its two branches (and of ``expm1_ratio``'s) computed once."""
    grow = a > 0
    z = -2.0 * jnp.abs(a) * s
    ez = jnp.exp(z)
    em1 = jnp.expm1(z)  # z <= 0: finite
    # _time_factor(s, z): expm1(z) (s / z * 2) where |z| > 1, else 2 s expm1_ratio(z)
    big = jnp.abs(z) > 1.0
    z_big = jnp.where(big, z, 1.0)
    tiny = jnp.abs(z) < series_threshold(z.dtype)
    z_mid = jnp.where(big | tiny, 1.0, z)
    z_tiny = jnp.where(tiny, z, 0.0)
    series = jnp.zeros_like(z)
    for coef in reversed(_EXPM1_RATIO_COEFFS):  # Horner, as expm1_ratio
        series = series * z_tiny + coef
    ratio = jnp.where(tiny, series, em1 / z_mid)
    t_fac = jnp.where(big, em1 * (s / z_big * 2.0), 2.0 * s * ratio)
    kw0 = k * w0
    c = jnp.where(grow, ez, 1.0)
    den = c + kw0 * t_fac
    ok = den != 0  # False only where a > 0, w0 = 0 and e^z underflowed: the saddle's 0 (safe_div)
    inv = 1.0 / jnp.where(ok, den, 1.0)
    w = jnp.where(ok, jnp.where(grow, w0, w0 * ez) / jnp.where(ok, den, 1.0), 0.0)
    return w, (grow, z, ez, em1, ratio, t_fac, kw0, c, ok, inv)


@jax.custom_jvp
def _logistic_piece(s, a, k, w0):
    """:func:`_logistic` (same values, bit for bit; :func:`_piece_terms`) with its partial derivatives
    in closed form: the map of one schedule piece, whose reverse pass then keeps at most four numbers
    per element (the partials) and multiplies, instead of differentiating the branches, their time
    factors and series.

    With ``z = -2 |a| s <= 0``, ``T = 2 s expm1_ratio(z)`` and ``c = e^z`` where ``a > 0`` (grow), else 1,
    the solution is ``w = w0 (1 if a > 0 else e^z) / D`` with ``D = c + k w0 T``, and

        dw/dw0 = e^z / D^2,    dw/dk = -w w0 T / D,    dw/ds = 2 w (a - k w0) c / D,
        dw/da  = (w / D) (2 s c + 4 s^2 k w0 h(z)),    h = g' (grow) or q (decay) (:func:`_bounded_ratio`),

    every term a product of non-negative factors except ``a - k w0`` (no cancellation; the derivation
    from ``ln w = ln w0 + 2 a s - ln(1 + k w0 (e^{2as} - 1) / a)`` is in docs/notes/schedules.md).
    Where ``D = 0`` (``w0 = 0`` and ``e^z`` underflowed, the saddle) every partial is 0, as ``safe_div``'s."""
    return _piece_terms(s, a, k, w0)[0]


def _logistic_piece_jvp(primals, tangents):
    s, a, k, w0 = primals
    w, (grow, z, ez, em1, ratio, t_fac, kw0, c, ok, inv) = _piece_terms(s, a, k, w0)
    zero = jnp.zeros_like(w)
    w_inv = jnp.where(ok, w * inv, zero)
    two_s = 2.0 * s
    partials = (
        lambda: 2.0 * (a - kw0) * c * w_inv,                                                       # d/ds
        lambda: w_inv * (two_s * c + two_s * (two_s * _bounded_ratio(z, em1, ez, ratio, grow)) * kw0),  # d/da
        lambda: -w0 * t_fac * w_inv,                                                               # d/dk
        lambda: jnp.where(ok, ez * inv * inv, zero),                                               # d/dw0
    )
    dw = zero
    for d, t in zip(partials, tangents, strict=True):
        if not isinstance(t, jax.custom_derivatives.SymbolicZero):
            dw = dw + d() * t
    return w, dw


_logistic_piece.defjvp(_logistic_piece_jvp, symbolic_zeros=True)  # zero tangents: their partials unused


def _lists_to_arrays(*args):
    """Python lists and tuples as arrays (a list inside ``jit`` would be traced element by element)."""
    return [jnp.asarray(a) if isinstance(a, list | tuple) else a for a in args]


def _check_rates(lam, eps, gamma, n) -> None:
    """Ranges and dtype fit of the arguments of the fixed points (lists already made arrays)."""
    check_range("lam", lam, 0.0)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    check_range("n", n, 0.0, lo_open=True)
    check_fits(lam=lam, eps=eps, gamma=gamma, n=n)


def _check_small_init(lam, eps, gamma, w0, tau, n, **first) -> None:
    """Ranges of the balanced small-start solution's parameters (concrete values only) and their
    fit in the computation dtype (``first``: the time or fraction argument)."""
    check_range("lam", lam, 0.0)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    check_range("w0", w0, 0.0)
    check_range("tau", tau, 0.0, lo_open=True)
    check_range("n", n, 0.0, lo_open=True)
    check_fits(**first, lam=lam, eps=eps, gamma=gamma, w0=w0, tau=tau, n=n)


def small_init_trajectory(t: ArrayLike, lam: ArrayLike, eps: ArrayLike | None = None,
                          gamma: ArrayLike = 0.0, *, w0: ArrayLike, tau: ArrayLike = 1.0, n: ArrayLike = 1,
                          depth: int = 2, noise=None) -> Array:
    """Mapping ``w(t)`` of one eigen-direction trained from a balanced start (``w1 = w2``).

    Solves ``tau dw/dt = 2 w (a - k w)`` with ``a = lam - n gamma`` and ``k = lam + eps`` (noise and
    weight decay together; Eq. (7) when ``eps = 0``; figure-settings.md):
    ``w(t) = w0 e^{2 a s} / (1 + 2 s k w0 expm1_ratio(2 a s))``, ``s = t / tau``, evaluated with the
    decaying exponential on each side of ``a = 0`` (``jnp.where(a > 0, ...)``), so it is finite for
    all ``t >= 0``, continuous (with continuous derivatives) through ``lam = n gamma``, and decays to
    0 when ``n gamma >= lam``. Broadcasts over all arguments.

    Args:
      t: time in epochs, >= 0.
      lam: eigenvalue of Sigma (a sum over the n samples), >= 0.
      eps: noise level ``n s^2``, >= 0 (default 0), or a piecewise-constant schedule
        (:func:`daedyn.schedules.piecewise_constant`; exact at every depth, chained piece by piece
        from the mapping at each boundary; docs/schedules.md). Exclusive with ``noise``.
      gamma: weight decay of Eq. (6), >= 0, or a piecewise-constant schedule.
      w0: initial mapping ``w1(0) w2(0) = w1(0)^2``, >= 0 (keyword only); at depth 1 the single
        weight's start, any finite real.
      tau: time constant ``n / alpha``, > 0, or a piecewise-constant schedule ``n / alpha(t)`` (a
        learning-rate schedule; exact).
      n: number of samples N (1 for the scalar demos), > 0.
      depth: number of weight matrices L (static int >= 1). For L >= 3 every factor starts at
        ``w0^(1/L)`` and ``tau dw/dt = L w^(2-2/L) (lam - w k) - L n gamma w`` is solved exactly up to a
        fixed quadrature table (docs/depth.md); L = 2 is the closed form above; L = 1 (one weight
        matrix) is the exponential ``tau dw/dt = lam - (k + n gamma) w``.
      noise: instead of ``eps``, any value with a method ``direction_moments(lam, n) -> (k, m)``
        (the direction's quadratic-form coefficients, e.g. a :class:`daedyn.diffusion.Objective`):
        ``lam -> k`` (any sign) and ``lam + eps -> m`` (> 0) above, so the balanced flow is
        ``tau dw/dt = L w |w|^(1-2/L) (k - m w) - L n gamma w``. With ``k < 0`` a positive start
        decays to 0 (exponentially at depth 2, algebraically at depth >= 3: ``negative_trajectory``
        in docs/diffusion.md). Constant rates only (no schedules).
    Returns:
      ``w(t)``, with the broadcast shape and floating dtype of the inputs.
    Raises:
      ValueError: for concrete out-of-range values or shapes that do not broadcast (traced
        out-of-range values give NaN in their element instead), or a continuous (not
        piecewise-constant) schedule, which has no closed form at any depth.
    Example:
      >>> float(small_init_trajectory(1e4, lam=1.0, eps=1.0, w0=1e-6))  # fixed point lam / (lam + eps)
      0.5
    """
    if noise is not None:
        if eps is not None:
            raise ValueError("small_init_trajectory takes eps or noise, not both (noise gives the "
                             "direction's coefficients (k, m) in place of (lam, lam + eps))")
        return _with_moments(t, lam, gamma, w0, tau, n, depth, noise)
    eps = 0.0 if eps is None else eps
    t, lam, eps, gamma, w0, tau, n = _lists_to_arrays(t, lam, eps, gamma, w0, tau, n)
    if depth == 1 and not isinstance(depth, bool):
        if is_schedule(eps) or is_schedule(gamma) or is_schedule(tau):
            raise ValueError("small_init_trajectory at depth 1 takes constant eps, gamma and tau")
        _check_small_init(lam, eps, gamma, 0.0, tau, n, t=t)
        return _with_moments(t, lam, gamma, w0, tau, n, 1, None, k=lam, m=jnp.add(lam, eps))
    depth = check_depth(depth)
    if is_schedule(eps) or is_schedule(gamma) or is_schedule(tau):  # piecewise constant: chained per piece
        return small_init_scheduled(t, lam, eps, gamma, w0=w0, tau=tau, n=n, depth=depth)
    check_range("t", t, 0.0)
    _check_small_init(lam, eps, gamma, w0, tau, n, t=t)
    if depth > 2:
        u = deep_small_init(t, lam, eps, gamma, w0, tau, n, depth=depth)
        return finite_result("small_init_trajectory", u)
    return finite_result("small_init_trajectory", _small_init_trajectory_impl(t, lam, eps, gamma, w0, tau, n))



@jax.jit(static_argnames="depth")
def _moments_impl(t, k, m, gamma, w0, tau, n, depth: int):
    """Depth 1 (exponential) and 2 (logistic) in the coefficients ``(k, m)`` of any sign of k."""
    t, k, m, gamma, w0, tau, n = prepare(t=t, k=k, m=m, gamma=gamma, w0=w0, tau=tau, n=n)
    s = t / tau
    ng = n * gamma
    if depth == 1:
        r = m + ng
        w = w0 * jnp.exp(-r * s) + k * (s * expm1_ratio(-r * s))
        valid = (m >= 0) & jnp.isfinite(w0)
    else:
        w = _logistic(s, k - ng, m, w0)
        valid = (m > 0) & (w0 >= 0)
    return mark_invalid(w, valid & (t >= 0) & (gamma >= 0) & (tau > 0) & (n > 0))


def _with_moments(t, lam, gamma, w0, tau, n, depth, noise, *, k=None, m=None) -> Array:
    """:func:`small_init_trajectory` in a direction's coefficients ``(k, m)`` (``noise``'s unless given)."""
    func = "small_init_trajectory"
    t, lam, gamma, w0, tau, n = _lists_to_arrays(t, lam, gamma, w0, tau, n)
    if not (depth == 1 and not isinstance(depth, bool)):
        depth = check_depth(depth)
    for name, x in (("gamma", gamma), ("tau", tau)):
        if is_schedule(x):
            raise ValueError(f"{func} with noise= takes a constant {name} (no schedules)")
    if k is None:
        check_range("lam", lam, 0.0)
        check_range("n", n, 0.0, lo_open=True)
        k, m = direction_moments(noise, lam, n)
    check_range("t", t, 0.0)
    check_range("gamma", gamma, 0.0)
    if depth == 1:
        check_finite("w0", w0)
    else:
        check_range("w0", w0, 0.0)
    check_range("tau", tau, 0.0, lo_open=True)
    check_range("n", n, 0.0, lo_open=True)
    check_broadcastable(t=t, k=k, m=m, gamma=gamma, w0=w0, tau=tau, n=n)
    if depth > 2:
        u = deep_small_init(t, k, jnp.subtract(m, k), gamma, w0, tau, n, depth=depth, signed=True)
        return finite_result(func, u)
    return finite_result(func, _moments_impl(t, k, m, gamma, w0, tau, n, depth))


@jax.jit
def _fixed_point_impl(lam, eps, gamma, n):
    lam, eps, gamma, n = prepare(lam=lam, eps=eps, gamma=gamma, n=n)
    a = lam - n * gamma
    # a / (lam + eps) with both divided by m = max(lam, eps) first (lam + eps may overflow). The barrier
    # keeps XLA from folding (a / m) / (lam / m + eps / m) back into a / (lam + eps).
    m = jnp.maximum(lam, eps)
    m = jnp.where(m > 0, m, 1.0)
    a_m, lam_m, eps_m = jax.lax.optimization_barrier((a / m, lam / m, eps / m))
    w = safe_div(a_m, lam_m + eps_m, 0.0, where=a > 0)
    return mark_invalid(w, (lam >= 0) & (eps >= 0) & (gamma >= 0) & (n > 0))


def fixed_point(lam: ArrayLike, eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0, n: ArrayLike = 1, *,
                depth: int = 2) -> Array:
    """Balanced fixed point ``max(0, (lam - n gamma) / (lam + eps))`` (section 4, supplement E).

    With ``gamma = 0`` it is ``w* = lam / (lam + eps)``, also the limit of :func:`dae_trajectory` from
    any start off the saddle line ``w1 = -w2``. 0 where ``lam + eps = 0``.

    ``depth = L >= 3``: the largest stable root of ``w^(1-2/L) (lam - w (lam + eps)) = n gamma`` (still
    ``lam / (lam + eps)`` at ``gamma = 0``), and 0 where weight decay leaves no positive root (past the
    critical gamma). A start must also exceed :func:`learning_threshold` to reach it.

    Example:
      >>> [round(float(fixed_point(1.0, e)), 4) for e in (0.0, 1.0, 5.0)]
      [1.0, 0.5, 0.1667]
    """
    lam, eps, gamma, n = _lists_to_arrays(lam, eps, gamma, n)
    _check_rates(lam, eps, gamma, n)
    if check_depth(depth) > 2:
        return finite_result("fixed_point", deep_fixed_point(lam, eps, gamma, n, depth=depth))
    return finite_result("fixed_point", _fixed_point_impl(lam, eps, gamma, n))


def learning_threshold(lam: ArrayLike, eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0, n: ArrayLike = 1, *,
                       depth: int = 2) -> Array:
    """The smallest balanced start ``w0`` that is learned: the unstable fixed point.

    At depth 2 (and at any depth without weight decay) every start ``w0 > 0`` of a direction with
    ``lam > n gamma`` (resp. ``lam > 0``) is learned: the threshold is 0, and ``inf`` where nothing is
    learned. At depth ``L >= 3`` weight decay makes ``w = 0`` stable: the threshold is the smaller root
    of ``w^(1-2/L) (lam - w (lam + eps)) = n gamma`` (about ``(n gamma / lam)^(L/(L-2))`` for small
    gamma), and ``inf`` past the critical gamma where no positive root is left.

    Example:
      >>> f"{float(learning_threshold(1.0, 0.0, 0.01, depth=3)):.4e}"  # about (n gamma / lam)^3
      '1.0000e-06'
    """
    lam, eps, gamma, n = _lists_to_arrays(lam, eps, gamma, n)
    _check_rates(lam, eps, gamma, n)
    if check_depth(depth) > 2:
        u = deep_threshold(lam, eps, gamma, n, depth=depth)
        return finite_result("learning_threshold", u, allow_inf=True)
    lam_, eps_, gamma_, n_ = prepare(lam=lam, eps=eps, gamma=gamma, n=n)
    out = jnp.where(lam_ > n_ * gamma_, 0.0, jnp.inf).astype(lam_.dtype)
    return finite_result("learning_threshold", out, allow_inf=True)



@jax.jit
def _learning_time_impl(f, lam, eps, gamma, w0, tau, n):
    f, lam, eps, gamma, w0, tau, n = prepare(f=f, lam=lam, eps=eps, gamma=gamma, w0=w0, tau=tau, n=n)
    a = lam - n * gamma
    k = lam + eps
    kw0 = k * w0
    learnable = (a > 0) & (w0 > 0)
    ahead = kw0 >= f * a  # already at or beyond f w*
    ok = learnable & ~ahead
    a_s = jnp.where(ok, a, 1.0)
    gap = jnp.where(ok, a - kw0, 1.0)
    k_s = jnp.where(ok, k, 1.0)
    w0_s = jnp.where(ok, w0, 1.0)
    f_s = jnp.where(ok, f, 0.5)
    # log(k) + log(w0), not log(k w0): reverse mode multiplies the cotangent tau / (2 a) (huge where lam
    # is within rounding of n gamma) by 1 / (k w0) before by w0, which overflowed float32 to -inf.
    log_e = jnp.log(f_s) - jnp.log1p(-f_s) + jnp.log(gap) - jnp.log(k_s) - jnp.log(w0_s)
    t = 0.5 * tau / a_s * log_e
    out = jnp.where(ok, t, jnp.where(learnable, 0.0, jnp.inf))
    valid = (f > 0) & (f < 1) & (lam >= 0) & (eps >= 0) & (gamma >= 0) & (w0 >= 0) & (tau > 0) & (n > 0)
    return mark_invalid(out, valid)


@renamed(f="fraction")
def learning_time(fraction: ArrayLike, lam: ArrayLike, eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0, *,
                  w0: ArrayLike, tau: ArrayLike = 1.0, n: ArrayLike = 1, depth: int = 2) -> Array:
    """Time for a balanced start to reach the fraction ``f`` (``fraction``) of its fixed point.

    Inverts :func:`small_init_trajectory`: with ``a = lam - n gamma > 0``, ``k = lam + eps`` and
    ``w* = a / k``, ``t = tau / (2 a) * log(f (w* - w0) / ((1 - f) w0))``. Returns 0 when
    ``w0 >= f w*`` already, and ``inf`` when the direction is never learned (``a <= 0``, fixed point 0,
    or ``w0 = 0``, the saddle).

    Args:
      fraction: target fraction f of the fixed point, in (0, 1) (the keyword ``f`` is deprecated).
      lam, eps, gamma, w0, tau, n, depth: as :func:`small_init_trajectory`. At depth ``L >= 3`` a
        small start takes a time growing like ``w0^-(1-2/L)`` (not ``log(1/w0)``), and a start at or
        below :func:`learning_threshold` takes ``inf``.
    Returns:
      time in epochs, broadcast shape and floating dtype of the inputs.
    Example:
      >>> t = learning_time(0.5, 1.0, 1.0, w0=1e-6, tau=100.0)
      >>> round(float(small_init_trajectory(t, 1.0, 1.0, w0=1e-6, tau=100.0)), 6)  # half of w* = 0.5
      0.25
    """
    f, lam, eps, gamma, w0, tau, n = _lists_to_arrays(fraction, lam, eps, gamma, w0, tau, n)
    check_range("fraction", f, 0.0, 1.0, lo_open=True, hi_open=True)
    _check_small_init(lam, eps, gamma, w0, tau, n, f=f)
    if check_depth(depth) > 2:
        return finite_result("learning_time", deep_learning_time(f, lam, eps, gamma, w0, tau, n, depth=depth),
                             allow_inf=True)
    return finite_result("learning_time", _learning_time_impl(f, lam, eps, gamma, w0, tau, n), allow_inf=True)


# ----------------------------------------------------------------------------------------------
# Piecewise-constant schedules: the closed form chained over the pieces (theory/_schedule.py)


def _depth2_piece(elapsed, w, args, consts):
    """The depth-2 map of one schedule piece for :func:`_compose_states` (:func:`_logistic_piece`, whose
    hypergradient is a few products per piece and element); the arguments are valid stand-ins
    (:func:`_small_init_pieces_impl`), so no piece marks NaN itself."""
    eps, gamma, tau = args
    lam, n = consts
    return _logistic_piece(elapsed / tau, lam - n * gamma, lam + eps, w)


def _deep_piece(depth, lam, n):
    """``(start, run)`` of :func:`_compose` for the balanced direction at depth ``L >= 3`` (state: the
    mapping; piece values eps, gamma, tau, each ``(M,)``; a traced scalar L: the solver uses L only in
    its arithmetic, ``m = L / (L - 2)``, so one compilation serves every depth): the record is the
    quadrature table from the mapping at the piece start
    (:func:`daedyn.theory._deep_solve.prepare_trajectory`), shared by the times of the piece."""
    from daedyn.theory._deep_solve import evaluate_trajectory, prepare_trajectory

    def start(w, eps, gamma, tau):
        return jax.vmap(lambda *a: prepare_trajectory(*a, depth))(lam, eps, gamma, w, tau, n)

    def run(elapsed, record):
        return _flat_vmap(lambda r, e: evaluate_trajectory(r, e, depth), elapsed, record)

    return start, run


@jax.jit(static_argnames="deep")
def _small_init_pieces_impl(t, owner, lam, eps_p, gamma_p, w0, tau_p, n, boundaries, depth, *, deep: bool):
    """The chained balanced solution: ``t`` and ``owner`` of shape S, the parameter sets ``lam``,
    ``w0``, ``n`` of shape ``(M,)`` and their piece values ``(P, M)`` or ``(P, 1)``, all of one floating
    dtype (:func:`_flat_pieces`); ``depth`` a scalar of that dtype, used where ``deep`` (L >= 3)."""
    ok_eps, ok_gamma, ok_tau = (jnp.all(eps_p >= 0, axis=0), jnp.all(gamma_p >= 0, axis=0),
                                jnp.all(tau_p > 0, axis=0))
    valid_p = (lam >= 0) & (w0 >= 0) & (n > 0) & ok_eps & ok_gamma & ok_tau
    valid = (t >= 0) & valid_p[owner]
    if t.size == 0:
        return jnp.zeros(t.shape, t.dtype)
    # out-of-range parameter sets solve a harmless stand-in (finite values and gradients elsewhere);
    # their outputs are NaN (mark_invalid). A piece value replaced where it is itself out of range
    # keeps its shape ((P, 1): not broadcast to the parameter sets).
    one = jnp.ones_like(lam)
    lam, w0, n = (jnp.where(valid_p, a, one) for a in (lam, w0, n))
    eps_p, gamma_p, tau_p = (jnp.where(ok, a, jnp.ones_like(a))
                             for a, ok in ((eps_p, ok_eps), (gamma_p, ok_gamma), (tau_p, ok_tau)))
    if deep:
        m = lam.shape[0]
        args = tuple(jnp.broadcast_to(a, (a.shape[0], m)) for a in (eps_p, gamma_p, tau_p))
        start, run = _deep_piece(depth, lam, n)
        w = _compose(start, run, w0, args, boundaries, t, owner)
    else:
        w = _compose_states(_depth2_piece, w0, (eps_p, gamma_p, tau_p), (lam, n), boundaries, t, owner)
    return mark_invalid(w, valid)


def small_init_scheduled(t, lam, eps, gamma, *, w0, tau, n, depth: int = 2) -> Array:
    """:func:`daedyn.theory.small_init_trajectory` with eps, gamma and/or tau piecewise-constant schedules.

    Called by ``small_init_trajectory`` when a schedule is passed (see its docstring); exact, chained
    over the pieces (module docstring) at every depth. A tau schedule is a learning-rate schedule,
    tau(t) = N / alpha(t): on each piece the equation is the constant one with that piece's tau.
    """
    func = "small_init_trajectory"
    for name, x in (("eps", eps), ("gamma", gamma), ("tau", tau)):
        require_piecewise(name, x, func, depth)
    check_range("t", t, 0.0)
    eps_v, gamma_v, tau_v = (x.values if is_schedule(x) else x for x in (eps, gamma, tau))
    _check_small_init(lam, eps_v, gamma_v, w0, tau_v, n, t=t)
    boundaries, (eps_p, gamma_p, tau_p) = schedule_pieces(eps, gamma, tau)
    if boundaries is None:  # one piece: the constant-eps function itself (bit-identical)
        if depth > 2:
            return finite_result(func, deep_small_init(t, lam, eps_p, gamma_p, w0, tau_p, n, depth=depth))
        return finite_result(func, _small_init_trajectory_impl(t, lam, eps_p, gamma_p, w0, tau_p, n))
    eps_p, gamma_p, tau_p = (p if is_schedule(x) else _as_pieces(p)
                             for x, p in ((eps, eps_p), (gamma, gamma_p), (tau, tau_p)))
    check_broadcastable(t=t, lam=lam, eps=eps_p[0], gamma=gamma_p[0], w0=w0, tau=tau_p[0], n=n)
    args = _flat_pieces(t, lam, eps_p, gamma_p, w0, tau_p, n, boundaries)
    depth_v = jnp.asarray(depth, args[0].dtype)  # traced: one compilation for every depth >= 3
    return finite_result(func, _small_init_pieces_impl(*args, depth_v, deep=depth > 2))
