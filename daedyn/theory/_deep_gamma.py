"""The first-order weight decay of the balanced depth-L direction at gamma = 0, where the solver of
:mod:`daedyn.theory._deep_solve` takes paths with no gamma in them (the exact decays from below and
above the learned state): d u(t) / d gamma by :func:`_gamma_rate`, attached to the solver's mapping by
the custom JVP :func:`_gamma_free`, and d t / d gamma of the learning time by :func:`_time_gamma_free`.
Values pass through unchanged; only gamma's tangent is added. Second derivatives: d/dtheta of d u/d gamma
is exact (the rules' arguments carry their derivatives); those that need the second-order term (d2/dgamma2,
and d/dgamma of d u/d theta) are NaN, not formed (docs/depth.md)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from daedyn._numerics import clenshaw, expm1_ratio, nan_derivative, panel_matrices

# ----------------------------------------------------------------------------------------------
# d u / d gamma at gamma = 0. There the solver takes a path with no gamma in it (kinds A0 and B, the
# exact decays), so automatic differentiation would miss the first-order weight decay. Differentiating
# t = int_{u0}^{u} du / rate(u; gamma) at gamma = 0 gives instead
#
#     du/dgamma = -n u^(2-2/L) (lam - k u) int_{u0}^{u} s^(4/L-3) / (lam - k s)^2 ds,
#
# attached by :func:`_gamma_free` (a custom JVP: the value path is unchanged). With z = zs w, w = 1 + x =
# (u / u*)^(-1/m), y = u / u* = w^-m, u* = lam / k, it is u*'(gamma) y^(2-2/L) B, u*'(gamma) = -n u*^(2/L)
# / lam (the learned state's own rate), B = m (1 - y) int_w^{w0} w / (1 - w^-m)^2 dw (-> 1 as u -> u*).
# The double pole at w = 1 is integrated exactly: w / (1 - w^-m)^2 = E'(w) / m - (1 + 2/m) e(w) with
#
#     from below (A0, x = e^-phi): E = -w^2 / (1 - w^-m),     e = -w / (1 - w^-m)
#     from above (B, w = sigmoid(phi)): E = w^(2m+2) / (1 - w^m),  e = w^(2m+1) / (1 - w^m)
#
# (from above both parts are O(w^(2m+1)) like the integrand, so starts far above u* do not cancel);
# (1 - y) E is -w^2 resp. -w^(m+2), without the pole. The rest, int e, is w^2 / 2 + (w^(2-m) - 1) /
# (2 - m) plus a table (A0), or a table (B), in phi: fixed per kind and depth, exact tails (slope -+1/m
# above the grid, c e^(p phi) below it). Short intervals (|phi - phi0| < 0.1, or a start so far below
# u* that u has not moved in floating point) use instead the time integral's exact form
# du/dgamma = -n L u t / tau (1 - y) / w <w / (1 - y)>, the average weighted by dt, by Gauss-Legendre.

# the tables' grid: phi in [-37, 37], 148 panels of 20 nodes (the integrands change like e^(8 phi) far
# out: 1/2 wide panels keep interpolation inside one to 1e-16; only built when differentiated)
_SENS_PHI, _SENS_PANELS, _SENS_NODES = 37.0, 148, 20
_SENS_SHORT = 0.1  # |phi - phi0| below which the short-interval form is used (5 nodes: 1e-11 at 0.1)
_SENS_GL = np.polynomial.legendre.leggauss(5)
_SENS_PANEL = panel_matrices(_SENS_NODES)


def _sens_h(phi, m, from_above):
    """d/dphi of the tabulated part of int e: A0 ``-x w^(1-2m) / (1 - w^-m)`` (x = e^-phi, w = 1 + x;
    the rest of e after w and w^(1-m); -> -1/m), B ``w^(2m+2) (1 - w) / (1 - w^m)`` (w = sigmoid(phi);
    -> 1/m)."""
    sp = jnp.logaddexp(0.0, -phi)  # A0: log w; B: -log w
    h_a0 = -jnp.exp(-phi + (1.0 - 2.0 * m) * sp) / -jnp.expm1(-m * sp)
    h_b = jnp.exp(-(2.0 * m + 2.0) * sp) * jax.nn.sigmoid(-phi) / -jnp.expm1(-m * sp)
    return jnp.where(from_above, h_b, h_a0)


def _sens_tables(m, dtype):
    """(edges, coef) of the tables of :func:`_sens_h` for A0 (row 0) and B (row 1), 0 at phi = -37:
    on panel i, ``H = edges[i] + sum_j coef[i, j] T_j(x)``, x in [-1, 1] across the panel."""
    x_gl, _, to_int = (jnp.asarray(a, dtype) for a in _SENS_PANEL)
    width = 2.0 * _SENS_PHI / _SENS_PANELS
    mid = -_SENS_PHI + (jnp.arange(_SENS_PANELS, dtype=dtype) + 0.5) * width
    phi = (mid[:, None] + 0.5 * width * x_gl[None, :]).reshape(-1)
    vals = _sens_h(phi[None, :], m, jnp.asarray([[False], [True]]))
    coef = 0.5 * width * (vals.reshape(2, _SENS_PANELS, _SENS_NODES) @ to_int.T)
    edges = jnp.concatenate([jnp.zeros((2, 1), dtype), jnp.cumsum(jnp.sum(coef, axis=-1), axis=-1)], axis=-1)
    return edges, coef


def _sens_H(tables, phi, m, from_above):
    """The antiderivative of :func:`_sens_h` (0 at phi = -37) at any phi."""
    edges, coef = tables
    panels = coef.shape[1]
    row = from_above.astype(jnp.int32)
    v = (jnp.clip(phi, -_SENS_PHI, _SENS_PHI) + _SENS_PHI) * (panels / (2.0 * _SENS_PHI))
    idx = jnp.clip(jnp.floor(v), 0, panels - 1).astype(jnp.int32)
    flat = row * panels + idx
    # each coefficient gathered as its own contiguous array (as :func:`_solve_fast`: 2x faster here)
    coef_t = coef.reshape(-1, coef.shape[-1]).T
    series = [coef_t[j][flat] for j in range(coef_t.shape[0])]
    x = jnp.clip(2.0 * (v - idx) - 1.0, -1.0, 1.0)
    inside = edges.reshape(-1)[row * (panels + 1) + idx] + clenshaw(series, x)
    sign = jnp.where(from_above, 1.0, -1.0)
    p = jnp.where(from_above, 2.0 * m + 2.0, 2.0 * m - 2.0)
    below = sign * (jnp.exp(p * jnp.minimum(phi, -_SENS_PHI)) - jnp.exp(-p * _SENS_PHI)) / p
    above = edges[row, -1] + sign * (jnp.maximum(phi, _SENS_PHI) - _SENS_PHI) / m
    return jnp.where(phi < -_SENS_PHI, below, jnp.where(phi > _SENS_PHI, above, inside))


def _sens_path(phi, m, from_above):
    """(log w, 1 - y, 1 / (1 - y), -dx/dphi) at phi of the kind's path (no overflow far out)."""
    sp = jnp.logaddexp(0.0, -phi)
    log_w = jnp.where(from_above, -sp, sp)
    one_y = -jnp.expm1(-m * log_w)
    # B: 1 / (1 - w^-m) = -w^m / (1 - w^m), finite for a start far above u*
    inv = jnp.where(from_above, -jnp.exp(m * log_w) / -jnp.expm1(m * log_w), 1.0 / one_y)
    dx = jnp.where(from_above, -jax.nn.sigmoid(phi) * jax.nn.sigmoid(-phi), jnp.exp(-phi))
    return log_w, one_y, inv, dx


def _gamma_rate(u, phi, phi0, from_above, rest, t, lam, eps, w0, tau, n, depth):
    """d u / d gamma at gamma = 0 (scalars or broadcasting arrays) of the balanced depth-``depth``
    direction at time ``t``, given the solver's mapping ``u``, path variable ``phi`` from ``phi0`` (its
    own: near the learned state one ulp of z0 / zs moves phi0 by 1e-7), ``from_above`` (the solver's
    path kind B, else A0: the two kinds at gamma = 0) and ``rest`` (a start on the learned state);
    finite everywhere (0 where it does not apply: see :func:`_gamma_free`)."""
    dtype = jnp.result_type(u, phi, lam)
    depth = jnp.asarray(depth, dtype)
    m = depth / (depth - 2.0)
    k = lam + eps
    ok = (k > 0) & (w0 > 0) & (t > 0)
    lam_s, k_s, w0_s, t_s = (jnp.where(ok, a, 1.0) for a in (lam, k, w0, t))
    u_s = jnp.where(u > 0, u, 1.0)
    # the exact decay at lam = 0 (or lam negligible against k, as :func:`_special`): closed form
    tiny = 1e-12 if dtype == jnp.float32 else 1e-100
    alg = lam_s <= k_s * tiny
    p = 2.0 - 2.0 / depth
    log_ratio = -jnp.log1p(p * depth * k_s * t_s * w0_s**p / tau) / p  # log(u / u0)
    d_alg = n / (k_s * 2.0 * p) * u_s ** (2.0 / depth - 1.0) * jnp.expm1(2.0 * p * log_ratio)
    # the learned state u* = lam / k
    lam_p = jnp.where(alg, 1.0, lam_s)
    log_us = jnp.log(lam_p) - jnp.log(lam_p + eps)
    rate_star = -n * jnp.exp((2.0 / depth) * log_us) / lam_p  # d u* / d gamma
    r = depth / tau * jnp.exp((2.0 - 2.0 / depth) * log_us) * (lam_p + eps)
    d_rest = -rate_star * jnp.expm1(-r * t_s)
    # (A0: x0 = e^-phi0; B: w0 = sigmoid(phi0))
    use = ok & ~alg & ~rest
    phi0 = jnp.where(use, phi0, 0.0)
    phi_s = jnp.where(use, phi, 1.0)
    dphi = phi_s - phi0
    log_w, one_y, _, _ = _sens_path(phi_s, m, from_above)
    # short intervals: Gauss-Legendre for <w / (1 - y)> weighted by dt ~ (-dx/dphi) / (1 - y) dphi
    x_gl, w_gl = (jnp.asarray(a, dtype) for a in _SENS_GL)
    nodes = phi0[..., None] + 0.5 * dphi[..., None] * (1.0 + x_gl)
    lw_n, _, inv_n, dx_n = _sens_path(nodes, m, from_above[..., None])
    wt = w_gl * dx_n * inv_n
    avg = jnp.sum(wt * jnp.exp(lw_n) * inv_n, axis=-1) / jnp.sum(wt, axis=-1)
    d_short = -n * depth * u_s * t_s / tau * one_y * jnp.exp(-log_w) * avg
    # the general form: ell = log(w0 / w) exactly from phi - phi0
    # (sigmoid(-phi) (e^dphi - 1) = e^-phi0 sigmoid(phi) (1 - e^-dphi): no 0 * inf when dphi is large)
    ell = jnp.where(from_above, -jnp.log1p(jnp.exp(-phi0) * jax.nn.sigmoid(phi_s) * -jnp.expm1(-dphi)),
                    jnp.log1p(jnp.exp(-phi0) * -jnp.expm1(-dphi) / jnp.exp(log_w)))
    log_w0 = log_w + ell
    ends = _sens_H(_sens_tables(m, dtype), jnp.stack([phi0, phi_s], -1), m, from_above[..., None])
    tab = ends[..., 0] - ends[..., 1]
    # A0, scaled by w0^2: B = (2 + m) (1 - y) int_w^{w0} (w + w^(1-m) + the table's part)
    #   - (w0^2 - w^2) + w0^2 (y - y0) / (1 - y0)
    dx2 = -jnp.expm1(-2.0 * ell)  # (w0^2 - w^2) / w0^2
    pow_part = jnp.exp((2.0 - m) * log_w - 2.0 * log_w0) * ell * expm1_ratio((2.0 - m) * ell)
    j_a0 = 0.5 * dx2 + pow_part + tab * jnp.exp(-2.0 * log_w0)
    y_y0 = -jnp.exp(-m * log_w) * jnp.expm1(-m * ell)  # y - y0
    b_a0 = (2.0 + m) * one_y * j_a0 - dx2 + y_y0 / -jnp.expm1(-m * log_w0)
    log_b_a0 = jnp.log(jnp.where(b_a0 > 0, b_a0, 1.0)) + 2.0 * log_w0
    # B: w^(m+2) [(1 - rho^(2m+2)) - w0^m (1 - rho^(m+2))] / (1 - w0^m) - (m + 2) (1 - y) tab, rho = w0 / w
    first = jnp.exp((m + 2.0) * log_w) * (-jnp.expm1((2.0 * m + 2.0) * ell) + jnp.exp(m * log_w0)
                                            * jnp.expm1((m + 2.0) * ell)) / -jnp.expm1(m * log_w0)
    b_b = first - (m + 2.0) * one_y * tab
    log_b_b = jnp.log(jnp.where(b_b > 0, b_b, 1.0))
    log_b = jnp.where(from_above, log_b_b, log_b_a0)
    d_gen = rate_star * jnp.exp(-(m + 1.0) * log_w + log_b)
    short = jnp.abs(dphi) < _SENS_SHORT
    d = jnp.where(alg, d_alg, jnp.where(rest, d_rest, jnp.where(short, d_short, d_gen)))
    return jnp.where(ok & jnp.isfinite(d), d, 0.0)


@jax.custom_jvp
def _gamma_free(u, phi, phi0, from_above, rest, t, lam, eps, gamma, w0, tau, n, depth):
    """``u`` itself; its JVP adds ``dgamma * du/dgamma`` (:func:`_gamma_rate`) where gamma = 0 and
    ``lam + eps > 0`` (the paths on which :func:`prepare_trajectory` stops gamma's derivative)."""
    return u


@_gamma_free.defjvp
def _gamma_free_jvp(primals, tangents):
    u, phi, phi0, from_above, rest, t, lam, eps, gamma, w0, tau, n, depth = primals
    u_dot, g_dot = tangents[0], tangents[8]
    applies = _no_decay(gamma, lam, eps)
    d = _gamma_rate(u, phi, phi0, from_above, rest, t, lam, eps, w0, tau, n, depth)
    mark = _second_order_mark(applies, gamma)
    return u, u_dot * (1.0 + mark) + jnp.where(applies, g_dot, 0.0) * (d + mark)


@jax.custom_jvp
def _time_gamma_free(t, phi_f, phi0, from_above, f, lam, eps, gamma, w0, tau, n, depth):
    """``t`` itself; its JVP adds ``dgamma * dt/dgamma`` where gamma = 0 and ``lam + eps > 0`` (the paths
    on which :func:`deep_time_to` stops gamma's derivative). From u(t(gamma); gamma) = f u*(gamma):
    dt/dgamma = (f u*'(gamma) - du/dgamma) / (du/dt), du/dgamma at fixed t by :func:`_gamma_rate` and du/dt
    = L / tau u^(2-2/L) (lam - k u) at u = f u*."""
    return t


@_time_gamma_free.defjvp
def _time_gamma_free_jvp(primals, tangents):
    t, phi_f, phi0, from_above, f, lam, eps, gamma, w0, tau, n, depth = primals
    t_dot, g_dot = tangents[0], tangents[7]
    k = lam + eps
    ok = _no_decay(gamma, lam, eps) & (lam > 0) & (t > 0) & jnp.isfinite(t)
    lam_s, k_s, t_s = (jnp.where(ok, a, 1.0) for a in (lam, k, t))
    u_f = f * lam_s / k_s
    d_u = _gamma_rate(u_f, phi_f, phi0, from_above, jnp.zeros_like(ok), t_s, lam_s, jnp.where(ok, eps, 0.0),
                      w0, tau, n, depth)
    rate_star = -n * (lam_s / k_s) ** (2.0 / depth) / lam_s  # d u* / d gamma
    du_dt = depth / tau * u_f ** (2.0 - 2.0 / depth) * lam_s * (1.0 - f)
    d = (f * rate_star - d_u) / du_dt
    mark = _second_order_mark(ok, gamma)
    d = jnp.where(ok & jnp.isfinite(d), d, 0.0)
    return t, t_dot * (1.0 + mark) + jnp.where(ok, g_dot, 0.0) * (d + mark)


def _second_order_mark(applies, gamma):
    """0 where the first-order rule ``applies``, with a NaN derivative in gamma: the rules above give
    first derivatives only (the paths have no gamma in them), so the second derivatives with gamma at
    gamma = 0 that would need the missing term are NaN instead of silently wrong. Those in gamma then
    another parameter (d/dtheta of d u/d gamma) are exact: the rules' arguments carry their derivatives."""
    return nan_derivative(jnp.where(applies, gamma, jax.lax.stop_gradient(gamma)))


def _no_decay(gamma, lam, eps):
    """Where the path has no gamma in it and :func:`gamma_rate` gives d u / d gamma instead."""
    return (gamma == 0) & (lam + eps > 0)
