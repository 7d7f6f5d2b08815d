"""A balanced deep (L >= 3) direction with a negative coefficient and no weight decay, exactly:
tau du/dt = L u^(2-2/L) (lam - k u) with lam < 0 < k (a diffusion denoiser's direction whose target is
negative, started balanced and positive) decays algebraically; its time is a closed form in
S(y) = int_0^y x^m / (1 + x^m) dx, inverted by a safeguarded Newton iteration. The positive-coefficient
solver is ``daedyn.theory._deep_solve``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

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


def negative_trajectory(t, b, k, w0, tau, depth: int):
    """Mapping ``u(t)`` of ``tau du/dt = -L u^(2-2/L) (b + k u)`` (``b = -lam > 0``, ``k > 0``) from a
    balanced start ``w0 >= 0``; elementwise over broadcast arrays of one floating dtype.

    In ``z = u^(-1/m)``, ``m = L / (L - 2)``, and ``y = z / c`` with ``c = (k / b)^(1/m)``, the time is
    ``t = tau c / ((L - 2) b) (S(y) - S(y0))`` exactly (:func:`_s_of_y`), and ``u = (b / k) y^-m``. The
    equation ``S(y) = S(y0) + (L - 2) b t / (tau c)`` is solved by a bracketed Newton iteration in
    ``log y`` (S is increasing, ``S(y) <= min(y, y^(m+1) / (m + 1))`` and ``S(y) >= y - H_inf``), then one
    differentiable Newton step gives the derivatives (implicit function theorem).
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
    x = x - (jnp.log(_s_of_y(jnp.exp(x), m)) - jnp.log(target)) / slope(x)
    u = (b / k) * jnp.exp(-m * x)
    return jnp.where(pos & (t > 0), u, w0)
