"""A balanced deep (L >= 3) direction with a negative coefficient and no weight decay, exactly:
tau du/dt = L u^(2-2/L) (lam - k u) with lam < 0 < k (a diffusion denoiser's direction whose target is
negative, started balanced and positive) decays algebraically; its time is a closed form in
S(y) = int_0^y x^m / (1 + x^m) dx, inverted by a safeguarded Newton iteration. The positive-coefficient
solver is ``daedyn.theory._deep_solve``. The path has no weight decay in it: d u / d gamma at gamma = 0 is
attached by a custom JVP (:func:`_gamma_rate`, see the comment block above it)."""

from __future__ import annotations

import functools as ft

import jax
import jax.numpy as jnp
import numpy as np

from daedyn._numerics import expm1_ratio, implicit_root
from daedyn.theory._deep_gamma import _second_order_mark

__all__ = ["negative_trajectory"]

_SERIES = 56  # terms of the two series of S(y), each used where its ratio is <= 1/2 (2^-56 < float64's eps)
_NEG_SOLVE = 40  # safeguarded Newton iterations in log y (bracketed; quadratic once close)
_GL_X, _GL_W = np.polynomial.legendre.leggauss(24)


def _alternating(r, powers):
    """``sum_j (-1)^j r^j / powers_j`` over the fixed table ``powers`` (r in [0, 1/2]; broadcasts)."""
    j = jnp.arange(_SERIES, dtype=r.dtype).reshape((1,) * r.ndim + (_SERIES,))
    signs = jnp.where(j % 2 == 0, 1.0, -1.0).astype(r.dtype)
    return jnp.sum(signs * r[..., None] ** j / powers, axis=-1)


def _s_of_y(y, m):
    """``S(y) = int_0^y x^m / (1 + x^m) dx`` for y > 0, without cancellation and without special functions:

    - ``y^m <= 1/2``: ``y sum_j (-1)^j y^(m(j+1)) / (m(j+1) + 1)``;
    - ``y^m >= 2``: ``y - H_inf + y sum_j (-1)^j y^(-m(j+1)) / (m(j+1) - 1)`` (the tail
      ``int_y^inf dx / (1 + x^m)`` in ``x = 1/t``), ``H_inf = pi / (m sin(pi / m))``;
    - between: ``S(y1) + int_{y1}^y`` by 24-node Gauss-Legendre, ``y1 = 2^(-1/m)`` (the integrand's
      poles ``x^m = -1`` lie at distance >= sin(pi / m) from the real axis).
    """
    ym = y**m
    lo = ym <= 0.5
    hi = ym >= 2.0
    mid = ~lo & ~hi
    jm = m * jnp.arange(1, _SERIES + 1, dtype=y.dtype).reshape((1,) * y.ndim + (_SERIES,))
    y_lo = jnp.where(lo, y, 0.5 ** (1.0 / m))
    s_lo = y_lo * (y_lo**m) * _alternating(y_lo**m, jm + 1.0)
    y_hi = jnp.where(hi, y, 1.0)
    r_hi = jnp.where(hi, 1.0 / ym, 0.5)
    h_inf = jnp.pi / (m * jnp.sin(jnp.pi / m))
    s_hi = y_hi - h_inf + y_hi * r_hi * _alternating(r_hi, jm - 1.0)
    y1 = jnp.asarray(0.5 ** (1.0 / m), y.dtype)
    s1 = y1 * 0.5 * _alternating(jnp.asarray(0.5, y.dtype), jm.reshape(-1) + 1.0)
    y_mid = jnp.where(mid, y, 1.0)
    half = 0.5 * (y_mid - y1)
    x = (0.5 * (y_mid + y1))[..., None] + half[..., None] * jnp.asarray(_GL_X, y.dtype).reshape(
        (1,) * y.ndim + (-1,))
    xm = x**m
    s_mid = s1 + half * jnp.sum(jnp.asarray(_GL_W, y.dtype).reshape((1,) * y.ndim + (-1,)) * xm / (1.0 + xm),
                                axis=-1)
    return jnp.where(lo, s_lo, jnp.where(hi, s_hi, s_mid))


def negative_trajectory(t, b, k, w0, tau, depth: int, *, gamma=None, n=None):
    """Mapping ``u(t)`` of ``tau du/dt = -L u^(2-2/L) (b + k u)`` (``b = -lam > 0``, ``k > 0``) from a
    balanced start ``w0 >= 0``; elementwise over broadcast arrays of one floating dtype. ``gamma, n``
    (weight decay, 0 where this applies, and its n > 0): given, the result's derivative in gamma at
    gamma = 0 is the flow's ``tau du/dt = ... - L n gamma u`` (:func:`_gamma_rate`; the value unchanged).

    In ``z = u^(-1/m)``, ``m = L / (L - 2)``, and ``y = z / c`` with ``c = (k / b)^(1/m)``, the time is
    ``t = tau c / ((L - 2) b) (S(y) - S(y0))`` exactly (:func:`_s_of_y`), and ``u = (b / k) y^-m``. The
    equation ``S(y) = S(y0) + (L - 2) b t / (tau c)`` is solved by a bracketed Newton iteration in
    ``log y`` (S is increasing, ``S(y) <= min(y, y^(m+1) / (m + 1))`` and ``S(y) >= y - H_inf``), then one
    Newton step, and the derivatives of every order by the implicit function theorem.
    """
    m = depth / (depth - 2.0)
    pos = w0 > 0
    w0_s = jnp.where(pos, w0, 1.0)
    c = (k / b) ** (1.0 / m)
    # y0 = z0 / c = (k w0 / b)^(-1/m)
    log_y0 = -(jnp.log(k) + jnp.log(w0_s) - jnp.log(b)) / m
    y0 = jnp.exp(log_y0)
    target = _s_of_y(y0, m) + (depth - 2.0) * b * t / (tau * c)
    h_inf = jnp.pi / (m * jnp.sin(jnp.pi / m))
    sg = jax.lax.stop_gradient
    tgt = sg(target)
    lo = jnp.maximum(jnp.log(tgt) / 1.0, jnp.log((m + 1.0) * tgt) / (m + 1.0))
    lo = jnp.maximum(lo, sg(log_y0))
    hi = jnp.log(tgt + h_inf)

    def resid(ly):
        return jnp.log(_s_of_y(jnp.exp(ly), m)) - jnp.log(tgt)

    def slope(ly):
        y = jnp.exp(ly)
        ym = y**m
        return y * (ym / (1.0 + ym)) / _s_of_y(y, m)

    def body(_, state):
        x, lo, hi = state
        r = resid(x)
        lo = jnp.where(r < 0, x, lo)
        hi = jnp.where(r < 0, hi, x)
        x_new = x - r / slope(x)
        ok = (x_new > lo) & (x_new < hi)
        return jnp.where(ok, x_new, 0.5 * (lo + hi)), lo, hi

    x, _, _ = jax.lax.fori_loop(0, _NEG_SOLVE, body, (0.5 * (lo + hi), lo, hi))
    x = sg(x)
    x = x - resid(x) / slope(x)
    # the derivatives (every order) by the implicit function theorem
    x = implicit_root(lambda ly, tg: jnp.log(_s_of_y(jnp.exp(ly), m)) - jnp.log(tg), x, target)
    u = jnp.where(pos & (t > 0), (b / k) * jnp.exp(-m * x), w0)
    if gamma is None:
        return u
    # the arguments keep their derivatives: the rate's own (second and mixed derivatives: d2u / dgamma dk)
    return _gamma_free(u, x, log_y0, jnp.where(pos & (t > 0), t, 0.0), b, k, gamma, tau, n, depth)


# ----------------------------------------------------------------------------------------------
# d u / d gamma at gamma = 0. The flow with weight decay is tau du/dt = L [u^p (k - m u) - n gamma u],
# p = 2 - 2/L, k = -b < 0: the path above has no gamma in it, so automatic differentiation would give 0
# where weight decay makes u decay faster. Differentiating t = int_{u0}^{u} ds / rate(s; gamma) at fixed t
# (the positive path's derivation, daedyn/theory/_deep_gamma.py) gives
#
#     du/dgamma = -n g(u) int_{u0}^{u} s^(1-2p) / (k - m s)^2 ds,    g(u) = u^p (k - m u),
#
# and with s = (b / m) x^-M, M = L / (L - 2) (M p = M + 1, M (2 - 2p) = -2):
#
#     du/dgamma = -n (M / b) (b / m)^(2/L) (1 + y^-M) y^-(M+1) (J(y) - J(y0)),
#     J(y) = int_0^y x^(2M+1) / (1 + x^M)^2 dx
#
# (:func:`_j_parts`, exact series on both sides of x^M = 1 and Gauss-Legendre between, as S(y)). Short
# intervals (log(y / y0) < 0.1, where J(y) - J(y0) would cancel) use the time integral's form instead:
# du/dgamma = -(L n t / tau) u <F> / F(y), F(x) = x^(M+1) / (1 + x^M), the average weighted by dt ~ F d
# log x (6-node Gauss-Legendre in log x; the integrand's poles are pi / M from the real axis).
_J_SERIES = 64  # terms of J's series: (j + 1) 2^-j < 2^-56 past them
_SHORT = 0.1
_GL_SHORT = np.polynomial.legendre.leggauss(6)
# J between y^M = 1/2 and 2 in log x: the poles are pi / M off the axis, log 2 / M the half-width at most,
# so 16 nodes reach (pi / log 2 + ...)^-32 ~ 1e-31
_GL_J = np.polynomial.legendre.leggauss(16)


def _last(vec, ndim):
    """A 1-D NumPy table on a new last axis after ``ndim`` axes (no implicit rank promotion)."""
    return np.reshape(vec, (1,) * ndim + (-1,))


def _j_series(r, den, scale=1.0):
    """``sum_j (-1)^j (j + 1) r^j scale_j / den_j`` over ``_J_SERIES`` terms (r in [0, 1/2]; ``den`` a 1-D
    table, ``scale`` 1 or r's shape plus the terms' axis); NumPy or JAX arrays."""
    xp = jnp if isinstance(r, jax.Array) or isinstance(scale, jax.Array) else np
    j = np.arange(_J_SERIES)
    coef = _last(np.where(j % 2 == 0, 1.0, -1.0) * (j + 1.0) / den, r.ndim)
    return xp.sum(coef * r[..., None] ** _last(j, r.ndim) * scale, axis=-1)


def _j_mid(lo_x, hi_x, m):
    """``int`` of J's integrand, ``x^(2M+2) / (1 + x^M)^2`` per unit log x, from ``log x = lo_x`` to
    ``hi_x`` (arrays of one shape) by Gauss-Legendre (both ends within x^M in [1/2, 2]); NumPy or JAX."""
    xp = jnp if isinstance(lo_x, jax.Array) or isinstance(hi_x, jax.Array) else np
    half = 0.5 * (hi_x - lo_x)
    nodes = (0.5 * (hi_x + lo_x))[..., None] + half[..., None] * _last(_GL_J[0], half.ndim)
    f = xp.exp((2.0 * m + 2.0) * nodes - 2.0 * xp.logaddexp(0.0, m * nodes))
    return half * xp.sum(_last(_GL_J[1], half.ndim) * f, axis=-1)


def _j_parts(x, m):
    """``(a, v)`` with ``J(e^x) = e^a v`` and ``a`` increasing in x (no overflow or underflow far out):

    - ``y^M <= 1/2``: ``a = (2M + 2) x``, ``v = sum_j (-1)^j (j + 1) y^(Mj) / (M (j + 2) + 2)``;
    - between: ``a = 0``, ``v = J(y1) + int_{y1}^y`` (:func:`_j_mid`), ``y1 = 2^(-1/M)``;
    - ``y^M >= 2``: ``a = 2 x``, ``v = J(y2) / y^2 + sum_j (-1)^j (j + 1) 2^-j e^(-min(2, Mj) l) l
      E(-|2 - Mj| l)`` (``int_{y2}^y`` of the series of ``x (1 + x^-M)^-2``, over y^2; ``y2 = 2^(1/M)``,
      ``l = log(y / y2)``, ``E(z) = expm1(z) / z``: each term bounded, M = 2's log term included).

    ``M`` is a Python float (the depth is static): J(y1) and J(y2) are constants.
    """
    x2 = np.log(2.0) / m
    lo = m * x <= -np.log(2.0)
    hi = m * x >= np.log(2.0)
    den = m * (np.arange(_J_SERIES) + 2.0) + 2.0
    j_y1 = float(np.exp(-(2.0 * m + 2.0) * x2) * _j_series(np.asarray(0.5), den))
    j_y2 = j_y1 + float(_j_mid(np.asarray(-x2), np.asarray(x2), m))
    v_lo = _j_series(jnp.exp(m * jnp.where(lo, x, -x2)), den)
    v_mid = j_y1 + _j_mid(jnp.full_like(x, -x2), jnp.where(lo | hi, -x2, x), m)
    ell = jnp.where(hi, x - x2, 0.0)
    mj = _last(m * np.arange(_J_SERIES), x.ndim)
    terms = (jnp.exp(-np.minimum(2.0, mj) * ell[..., None]) * ell[..., None]
             * expm1_ratio(-np.abs(2.0 - mj) * ell[..., None]))
    v_hi = j_y2 * jnp.exp(-2.0 * x2 - 2.0 * ell) + _j_series(jnp.full_like(x, 0.5), np.ones(_J_SERIES), terms)
    a = jnp.where(lo, (2.0 * m + 2.0) * x, jnp.where(hi, 2.0 * x, 0.0))
    return a, jnp.where(lo, v_lo, jnp.where(hi, v_hi, v_mid))


def _gamma_rate(u, x, log_y0, t, b, k, tau, n, depth):
    """d u / d gamma at gamma = 0 of :func:`negative_trajectory` at ``u = (b / k) e^(-M x)``, ``x = log y``
    from the solve, ``log_y0`` the start's (arrays of one shape; finite everywhere, 0 at t = 0)."""
    m = depth / (depth - 2.0)
    ok = t > 0
    ell = jnp.where(ok, x - log_y0, 1.0)
    x_s = jnp.where(ok, x, 1.0)
    x0_s = x_s - ell
    # short: -(L n t / tau) u <F> / F(y), log F = (M + 1) s - log(1 + e^(M s))
    log_f = lambda s: (m + 1.0) * s - jnp.logaddexp(0.0, m * s)  # noqa: E731
    x_gl, w_gl = (_last(a, x.ndim) for a in _GL_SHORT)
    nodes = x0_s[..., None] + 0.5 * ell[..., None] * (1.0 + x_gl)
    ratio = jnp.exp(log_f(nodes) - log_f(x_s)[..., None])
    avg = jnp.sum(w_gl * ratio**2, axis=-1) / jnp.sum(w_gl * ratio, axis=-1)
    d_short = -depth * n * t / tau * u * avg
    # general: -n (M / b) (b / m)^(2/L) (1 + y^-M) y^-(M+1) e^a (v - e^(a0 - a) v0)
    a, v = _j_parts(x_s, m)
    a0, v0 = _j_parts(x0_s, m)
    dj = v - jnp.exp(a0 - a) * v0
    log_d = (jnp.log(n * m / b) + (2.0 / depth) * (jnp.log(b) - jnp.log(k)) + jnp.logaddexp(0.0, -m * x_s)
             - (m + 1.0) * x_s + a + jnp.log(jnp.where(dj > 0, dj, 1.0)))
    d_gen = -jnp.exp(log_d)
    d = jnp.where(ell < _SHORT, d_short, d_gen)
    return jnp.where(ok & jnp.isfinite(d), d, 0.0)


@ft.partial(jax.custom_jvp, nondiff_argnums=(9,))
def _gamma_free(u, x, log_y0, t, b, k, gamma, tau, n, depth):
    """``u`` itself; its JVP adds ``dgamma * du/dgamma`` (:func:`_gamma_rate`) where gamma = 0 and n > 0."""
    return u


@_gamma_free.defjvp
def _gamma_free_jvp(depth, primals, tangents):
    u, x, log_y0, t, b, k, gamma, tau, n = primals
    u_dot, g_dot = tangents[0], tangents[6]
    d = _gamma_rate(u, x, log_y0, t, b, k, tau, n, depth)
    applies = (gamma == 0) & (n > 0)
    mark = _second_order_mark(applies, gamma)
    return u, u_dot * (1.0 + mark) + jnp.where(applies, g_dot, 0.0) * (d + mark)
