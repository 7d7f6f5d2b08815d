"""The balanced deep (L >= 3 factor) direction solved exactly: time as a quadrature, mapping by inversion.

One eigen-direction of a deep linear DAE started balanced (all L factors equal to ``a``) has mapping
``u = a^L`` with

    tau du/dt = L u^(2 - 2/L) (lam - u k) - L n gamma u,        k = lam + eps.

In the variable ``z = a^-(L-2) = u^(-1/m)``, ``m = L / (L - 2)``, this becomes

    tau dz/dt = -(L - 2) P(z),        P(z) = lam - n gamma z - k z^-m,

and ``P`` is concave on z > 0: it has two positive roots (the learned state ``z_*`` and the learning
threshold ``z_th``), one (at ``gamma = 0``: ``z_* = (k / lam)^(1/m)``) or none. The time to go from
``z0`` to ``z`` is ``tau / (L - 2)`` times the integral of ``-1 / P``. Each kind of path (below the
learned state from above or from below, between the roots, beyond the threshold, no roots) gets a
variable ``phi`` (increasing with time) in which ``dt / dphi`` is smooth, positive and tends to a
constant or decays at both ends; the poles of ``1 / P`` at the roots become those constant ends, and
``P`` near a root is formed relative to it (``P(z_r + d) / d``), so nothing cancels. One formula serves
every kind (its constants are chosen per parameter set, so an element evaluates one kind, not five).

The time as a function of the endpoint is built once per parameter set (:func:`prepare_trajectory`):
``dt / dphi`` on a fixed composite Gauss-Legendre grid (panels uniform in ``psi = asinh(phi / s)``: 48
panels x 20 nodes in float64, 24 x 8 in float32), and on each panel the exact integral of its
interpolating polynomial, stored as Chebyshev coefficients in the panel's coordinate (a panel's total
is the Gauss-Legendre sum); outside the grid the tails are exact. The mapping at a time
(:func:`evaluate_trajectory`) is then a bracketed Newton solve on one panel's polynomial (no
transcendental function per iteration), the mapping's closed form, and one last Newton step taken with
gradients, which gives exact first derivatives of the tabulated time by the implicit function theorem.
The derivative in gamma at gamma = 0, where the paths taken have no gamma in them, is attached from
:mod:`daedyn.theory._deep_gamma`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from daedyn._numerics import clenshaw, expm1_ratio, implicit_root, panel_matrices
from daedyn.theory._deep_gamma import _gamma_free, _no_decay, _time_gamma_free

__all__ = ["deep_roots", "deep_trajectory", "deep_time_to"]

_NEWTON = 60  # root iterations (linear convergence only next to the critical gamma)

# path kinds
_A, _A0, _B, _C, _D = 0, 1, 2, 3, 4


# (panels, nodes per panel) by precision: float64 needs 48 x 20 for 1e-13 inside a panel; float32's
# rounding (~1e-5 relative after the solve) hides any difference between 48 x 10 and 24 x 8 (measured)
_GRID = {32: (24, 8), 64: (48, 20)}
_TABLES = {nodes: panel_matrices(nodes) for _, nodes in _GRID.values()}
_NEWTON_IN = {8: 8, 20: 8}  # Newton iterations on a panel's polynomial (measured: 8 converge, 6 do not)


def _grid_for(dtype) -> tuple[int, int]:
    return _GRID[32 if jnp.finfo(dtype).bits <= 32 else 64]


def _log1p_ratio_of(x, lg):
    """``log1p(x) / x`` given ``lg = log1p(x)``, with value 1 at 0 (finite derivatives)."""
    small = jnp.abs(x) < 1e-4
    xs = jnp.where(small, 1.0, x)
    xz = jnp.where(small, x, 0.0)
    return jnp.where(small, 1.0 - xz / 2.0 + xz * xz / 3.0 - xz**3 / 4.0, lg / xs)


def _p(z, lam, ng, k, m):
    return lam - ng * z - k * z ** (-m)


def _dp(z, ng, k, m):
    return -ng + m * k * z ** (-m - 1.0)


def _newton_root(z_start, z_clip, lam, ng, k, m, left: bool):
    """A root of the concave P by Newton from a point where P < 0 (monotone convergence), one step
    more, and its derivatives of every order in (lam, ng, k) by the implicit function theorem."""
    args = jax.lax.stop_gradient((lam, ng, k))

    def body(_, z):
        step = _p(z, *args, m) / _dp(z, args[1], args[2], m)
        z_new = z - step
        return jnp.minimum(z_new, z_clip) if left else jnp.maximum(z_new, z_clip)

    z = jax.lax.fori_loop(0, _NEWTON, body, jax.lax.stop_gradient(z_start))
    z = z - _p(z, *args, m) / _dp(z, args[1], args[2], m)
    return _root_of_p(z, lam, ng, k, m)


def _root_of_p(z, lam, ng, k, m):
    """``z`` (a root of P, no derivatives) with the root's derivatives in (lam, ng, k)."""
    return implicit_root(lambda y, c: _p(y, c[0], c[1], c[2], m), z, (lam, ng, k))


def _scale(lam, eps, gamma, n):
    """A positive rate scale c (lam where lam > 0): P / c has the same roots and O(1) coefficients, so
    tiny eigenvalues (1e-30 in float32) do not underflow; times scale by c."""
    k = lam + eps
    ng = n * gamma
    return jnp.where(lam > 0, lam, jnp.where(k > 0, k, jnp.where(ng > 0, ng, 1.0)))


def deep_roots(lam, eps, gamma, n, depth: int):
    """``(z_star, z_th, z_pk, has_root)`` of P for scalar float arguments (z_th = inf without weight decay).

    ``has_root``: a positive learned state exists (lam > 0 and, with weight decay, max P > 0).
    Unused entries are 1 (finite, harmless for the branches not taken).
    """
    c = _scale(lam, eps, gamma, n)  # the roots of P / c are those of P
    lam, eps, gamma, n = lam / c, eps / c, gamma * n / c, jnp.ones_like(n)
    m = depth / (depth - 2.0)
    ng = n * gamma
    k = lam + eps
    lam_s = jnp.where(lam > 0, lam, 1.0)
    k_s = jnp.where(k > 0, k, 1.0)
    ng_s = jnp.where(ng > 0, ng, 1.0)
    z_free = (k_s / lam_s) ** (1.0 / m)  # the root at gamma = 0; P(z_free) = -ng z_free <= 0
    z_pk = (m * k_s / ng_s) ** (1.0 / (m + 1.0))
    decay = (ng > 0) & (k > 0)
    p_max = _p(z_pk, lam_s, ng_s, k_s, m)
    two = decay & (lam > 0) & (p_max > 0)
    # elements without two roots solve a harmless stand-in problem (finite values and derivatives)
    lam_n = jnp.where(two, lam_s, 1.0)
    ng_n = jnp.where(two, ng_s, 0.1)
    k_n = jnp.where(two, k_s, 1.0)
    zpk_n = (m * k_n / ng_n) ** (1.0 / (m + 1.0))
    z_star_wd = _newton_root((k_n / lam_n) ** (1.0 / m), zpk_n, lam_n, ng_n, k_n, m, left=True)
    z_th = _newton_root(lam_n / ng_n, zpk_n, lam_n, ng_n, k_n, m, left=False)
    # at gamma = 0 z_free has no ng in it: its derivatives in ng (one-sided, every order) are the root's
    # of P with ng in it, where ng = 0
    ng_zero = jnp.where(ng > 0, 0.0, ng)
    z_free = _root_of_p(jax.lax.stop_gradient(z_free), lam_s, ng_zero, k_s, m)
    z_star = jnp.where(two, z_star_wd, z_free)
    has_root = (lam > 0) & (k > 0) & ((ng <= 0) | two)
    z_th = jnp.where(two, z_th, jnp.inf)
    return z_star, z_th, jnp.where(decay, z_pk, 1.0), has_root


class _Path(NamedTuple):
    """One element's path (scalars): its kind, P's coefficients, the roots and the table's range."""

    kind: Array
    lam: Array
    ng: Array
    k: Array
    m: Array
    zs: Array  # learned state (z_star)
    zt: Array  # threshold (2 zs where there is none)
    zp: Array  # peak of P (kind D's reference)
    lam_pos: Array  # lam where positive, else 1 (divisions of the A0 kind)
    phi_lo: Array
    phi_hi: Array
    s: Array  # node spacing: phi = s sinh(psi), psi uniform


def _path(kind, z_star, z_th, z_pk, lam, ng, k, m) -> _Path:
    zt = jnp.where(jnp.isfinite(z_th), z_th, 2.0 * z_star)
    gap = zt - z_star
    ratio = jnp.log(jnp.where(kind == _A, gap / z_star, 1.0))
    lo_a = jnp.minimum(-37.0, -ratio - 37.0)
    tail_lo = -40.0 / (m + 1.0)
    # grid in phi (increasing with time); A, A0 run theta = -phi
    phi_lo = jnp.where((kind == _B) | (kind == _D), tail_lo, -37.0)
    phi_hi = jnp.where(kind == _A, -lo_a, 37.0)
    # node spacing: s = 20 is nearly uniform; without roots (kind D) s is the width of the peak of
    # dt/dphi around max P, which sharpens as gamma approaches the critical value from above
    p_max = _p(z_pk, lam, ng, k, m)
    p2 = -m * (m + 1.0) * k * z_pk ** (-m - 2.0)
    w = jnp.sqrt(2.0 * jnp.abs(p_max) / jnp.abs(p2)) / z_pk
    s = jax.lax.stop_gradient(jnp.where(kind == _D, jnp.clip(w, 1e-6, 20.0), 20.0))
    lam_pos = jnp.where(lam > 0, lam, 1.0)
    return _Path(kind, lam, ng, k, m, z_star, zt, z_pk, lam_pos, phi_lo, phi_hi, s)


def _h(path: _Path, phi):
    """dt/dphi (in units tau / (L - 2)), positive, including the A0 kind's exponential part; one
    formula for every kind: ``num / q(x)`` with ``q(x) = P(zr (1 + x)) / (zr x)`` formed without
    cancellation, ``x`` and ``num`` in the kind's variable (one exponential, one log1p, one expm1)."""
    kind, ng, k, m, zs, zt, zp = path.kind, path.ng, path.k, path.m, path.zs, path.zt, path.zp
    gap = zt - zs
    pc = jnp.clip(phi, -80.0, 80.0)
    e = jnp.exp(-jnp.abs(pc))  # e^-|phi|
    pos = pc >= 0
    sig_neg = jnp.where(pos, e, 1.0) / (1.0 + e)  # sigmoid(-phi)
    sig_pos = jnp.where(pos, 1.0, e) / (1.0 + e)  # sigmoid(phi)
    is_a, is_a0, is_b, is_c = kind == _A, kind == _A0, kind == _B, kind == _C
    # C's e^phi, A0's e^-phi: one exponential of its own (as 1 / e^-|phi|, the second derivatives overflow
    # float32, 2 / e^(-3 |phi|), from |phi| = 30, inside the grid)
    e_kind = jnp.exp(jnp.where(is_c, pc, -pc))
    e_up, e_dn = e_kind, e_kind
    # A: z = zs + gap sigmoid(theta), theta = -phi, relative to the nearer root
    x_a = jnp.where(pos, (gap / zs) * sig_neg, -(gap / zt) * sig_pos)
    n_a = jnp.where(pos, sig_pos, -sig_neg)
    # A0 (ng = 0): z = zs (1 + e^theta); B: z = zs sigmoid(phi); C: z = zt (1 + e^phi)
    x = jnp.select([is_a, is_a0, is_b, is_c], [x_a, e_dn, -sig_neg, e_up], 0.0)
    num = jnp.select([is_a, is_b, is_c], [n_a, sig_pos, -1.0], 1.0)
    near_t = (is_a & ~pos) | is_c
    k_zr = jnp.where(near_t, k * zt ** (-m - 1.0), k * zs ** (-m - 1.0))  # two scalars, one select
    lg = jnp.log1p(x)
    y = -m * lg
    e_ratio = expm1_ratio(y) * (-m) * _log1p_ratio_of(x, lg)  # ((1 + x)^-m - 1) / x
    q = -ng - k_zr * e_ratio
    # A0: the remainder k z^-m / (lam q) after dz / lam, plus the exponential part's derivative
    h_a0 = (k * zs ** (-m) * jnp.exp(y) / q + zs * e_dn) / path.lam_pos
    # D: z = zp e^phi, no root. Below phi = 0 the numerator and denominator are multiplied by e^(m phi)
    # (e^(-m phi) overflows float32 from phi = -30 at L = 3); other kinds evaluate it at phi = 0, so no
    # overflow there feeds a NaN into their reverse-mode derivatives through the where
    is_d = kind == _D
    pd = jnp.where(is_d, pc, 0.0)
    zd = zp * jnp.exp(pd)
    e_m = jnp.exp(-m * jnp.abs(pd))  # e^(-m |phi|) <= 1
    lin = -path.lam + ng * zd
    kz = k * zp ** (-m)
    h_d = jnp.where(pd >= 0, zd / (lin + kz * e_m), zd * e_m / (lin * e_m + kz))
    return jnp.where(is_d, h_d, jnp.where(is_a0, h_a0, num / q))


def _extra(path: _Path, phi):
    """The exact exponential part of the A0 time: -zs e^-phi / lam (0 for the others)."""
    return jnp.where(path.kind == _A0, -path.zs * jnp.exp(-jnp.clip(phi, -700.0, 700.0)) / path.lam_pos, 0.0)


def _h_ends(path: _Path):
    """Constant limits of h (without A0's exponential part) below and above the grid, and the
    power-law tail below (p, c)."""
    kind, ng, k, m = path.kind, path.ng, path.k, path.m
    d_star = _dp(path.zs, ng, k, m)
    d_th = _dp(path.zt, ng, k, m)
    learns = (kind == _A) | (kind == _A0) | (kind == _B)
    h_hi = jnp.where(learns, 1.0 / d_star, 1.0 / jnp.where(ng > 0, ng, 1.0))
    h_lo = jnp.where((kind == _A) | (kind == _C), -1.0 / d_th, 0.0)
    p = jnp.select([(kind == _B) | (kind == _D), kind == _A0], [m + 1.0, m - 1.0], 0.0)
    z_ref = jnp.where(kind == _D, path.zp, path.zs)
    c = jnp.select(
        [(kind == _B) | (kind == _D), kind == _A0],
        [z_ref ** (m + 1.0) / (k * (m + 1.0)), path.zs / (path.lam_pos * (m - 1.0))],
        0.0,
    )
    return h_lo, h_hi, p, c


def _kind(z0, z_star, z_th, has_root, ng, lam_big):
    """Path kind of a start z0 > 0 (see the module docstring)."""
    wd = ng > 0
    far = jnp.log(jnp.where(wd & jnp.isfinite(z_th), (z_th - z_star) / z_star, 1.0)) > lam_big
    kind = jnp.where(
        z0 < z_star,
        _B,
        jnp.where(wd & ~far, jnp.where(z0 < z_th, _A, _C), jnp.where(wd & (z0 > z_th), _C, _A0)),
    )
    return jnp.where(has_root, kind, _D)


def _start_phi(kind, z0, path: _Path):
    zs, zt, zp = path.zs, path.zt, path.zp
    # each formula gets a start inside its own range unless it is this element's kind
    za = jnp.where(kind == _A, z0, zs + 0.5 * (zt - zs))
    za0 = jnp.where(kind == _A0, z0, 2.0 * zs)
    zb = jnp.where(kind == _B, z0, 0.5 * zs)
    zc = jnp.where(kind == _C, z0, 2.0 * zt)
    zd = jnp.where(kind == _D, z0, zp)
    th_a = jnp.log(za - zs) - jnp.log(zt - za)
    th_a0 = jnp.log(jnp.expm1(jnp.log(za0) - jnp.log(zs)))
    r = zb / zs
    th_b = jnp.log(r) - jnp.log1p(-r)
    th_c = jnp.log(jnp.expm1(jnp.log(zc) - jnp.log(zt)))
    th_d = jnp.log(zd) - jnp.log(zp)
    return jnp.select([kind == _A, kind == _A0, kind == _B, kind == _C], [-th_a, -th_a0, th_b, th_c], th_d)


class _Map(NamedTuple):
    """The closed-form mapping ``u(phi) = zr^-m exp(sign m V(phi))`` of a kind (scalars):
    ``V = log1p(r sigmoid(-phi))`` (A), ``softplus(-phi)`` (A0, B), ``softplus(phi)`` (C), ``phi`` (D)."""

    kind: Array
    zrm: Array  # zr^-m
    m_sign: Array  # sign m
    r: Array  # A: gap / zs


def _mapping_of(path: _Path) -> _Map:
    kind, m = path.kind, path.m
    zr = jnp.where(kind == _C, path.zt, jnp.where(kind == _D, path.zp, path.zs))
    sign = jnp.where(kind == _B, 1.0, -1.0)
    return _Map(kind, zr ** (-m), sign * m, jnp.where(kind == _A, (path.zt - path.zs) / path.zs, 1.0))


def _mapping(mp: _Map, phi):
    kind = mp.kind
    e = jnp.exp(-jnp.abs(phi))
    pos = phi >= 0
    sig_neg = jnp.where(pos, e, 1.0) / (1.0 + e)
    arg = jnp.where(kind == _A, mp.r * sig_neg, e)
    lin = jnp.select([kind == _A, kind == _C, kind == _D], [0.0, jnp.maximum(phi, 0.0), phi],
                     jnp.maximum(-phi, 0.0))
    v = jnp.where(kind == _D, lin, lin + jnp.log1p(jnp.where(kind == _D, 0.0, arg)))
    return mp.zrm * jnp.exp(mp.m_sign * v)


def _setup(w0, lam, eps, gamma, n, depth):
    c = _scale(lam, eps, gamma, n)
    lam, eps, gamma, n = lam / c, eps / c, gamma * n / c, jnp.ones_like(n)
    m = depth / (depth - 2.0)
    ng = n * gamma
    k = lam + eps
    lam_big = 40.0 if w0.dtype == jnp.float32 else 60.0
    z_star, z_th, z_pk, has_root = deep_roots(lam, eps, gamma, n, depth)
    w0_s = jnp.where(w0 > 0, w0, 1.0)
    z0 = w0_s ** (-1.0 / m)
    kind = _kind(z0, z_star, z_th, has_root, ng, lam_big)
    lam_s = jnp.where(lam > 0, lam, 1.0)
    k_s = jnp.where(k > 0, k, 1.0)
    ng_s = jnp.where(kind == _A0, 0.0, jnp.where(ng > 0, ng, 0.0))
    m = jnp.asarray(m, lam.dtype)
    path = _path(kind, z_star, z_th, z_pk, jnp.where(kind == _A0, lam_s, lam), ng_s, k_s, m)
    return path, kind, z0, z_star, z_th, has_root, m


class _Table(NamedTuple):
    """The time ``F(phi)`` of one parameter set (units tau / ((L - 2) c)), measured from its start:
    panel ``i`` covers ``psi in psi_lo + dpsi [i, i + 1]``, where ``F = f_edges[i] + G_i(x)``, ``x`` the
    panel's coordinate in [-1, 1], ``G_i`` the Chebyshev series ``coef[i]`` (``G_i(-1) = 0``) with
    derivative series ``dcoef[i]``; exact tails outside ``[phi_lo, phi_hi]``."""

    path: _Path
    psi_lo: Array
    dpsi: Array
    f_edges: Array  # (panels + 1,)
    coef: Array  # (panels, nodes + 1)
    dcoef: Array  # (panels, nodes)
    ends: tuple  # _h_ends


def _psi(path: _Path, phi):
    return jnp.arcsinh(phi / path.s)


def _panel_of(path: _Path, psi_lo, dpsi, phi):
    """(panel, x) of a phi inside the grid (clipped to it)."""
    pc = jnp.clip(phi, path.phi_lo, path.phi_hi)
    u = (_psi(path, pc) - psi_lo) / dpsi
    panels = _grid_for(path.lam.dtype)[0]
    idx = jnp.clip(jnp.floor(u), 0, panels - 1).astype(jnp.int32)
    return idx, jnp.clip(2.0 * (u - idx) - 1.0, -1.0, 1.0)


def _build_table(path: _Path, phi0) -> _Table:
    panels, nodes = _grid_for(path.lam.dtype)
    x_gl, to_cheb, to_int = (jnp.asarray(a, path.lam.dtype) for a in _TABLES[nodes])
    psi_lo = _psi(path, path.phi_lo)
    dpsi = (_psi(path, path.phi_hi) - psi_lo) / panels
    half = 0.5 * dpsi
    mid = psi_lo + (jnp.arange(panels, dtype=dpsi.dtype) + 0.5) * dpsi
    psi = (mid[:, None] + half * x_gl[None, :]).reshape(-1)  # flat: XLA's CPU loops are ~15x faster
    vals = (_h(path, path.s * jnp.sinh(psi)) * path.s * jnp.cosh(psi)).reshape(panels, nodes)
    coef = half * (vals @ to_int.T)
    dcoef = half * (vals @ to_cheb.T)
    panel = jnp.sum(coef, axis=-1)  # G_i(1): the panel's Gauss-Legendre sum
    # rebase on the start: sums run outwards from its panel, so times near the start keep full
    # relative precision in float32
    idx0, x0 = _panel_of(path, psi_lo, dpsi, phi0)
    g0 = clenshaw(coef[idx0], x0)
    i = jnp.arange(panels)
    fwd = jnp.cumsum(jnp.where(i >= idx0, panel, 0.0))
    bwd = jnp.cumsum(jnp.where(i < idx0, panel, 0.0)[::-1])[::-1]
    zero = jnp.zeros((1,), panel.dtype)
    j = jnp.concatenate([zero, fwd]) - jnp.concatenate([bwd, zero]) - g0
    e0 = _extra(path, jnp.clip(phi0, path.phi_lo, path.phi_hi))
    h_lo, h_hi, p, c = _h_ends(path)
    ends = (h_lo, h_hi, p, c, jnp.zeros_like(c), _extra(path, path.phi_hi))
    tail_lo, _ = _tail(path, ends, path.phi_lo)
    return _Table(path, psi_lo, dpsi, e0 + j, coef, dcoef, ends[:4] + (tail_lo,) + ends[5:])


def _tail(path: _Path, ends, phi):
    """The time below the grid as an absolute function ``T(phi)`` (table units; ``F(phi) = F(phi_lo) +
    T(phi) - T(phi_lo)`` for ``phi <= phi_lo``) and its derivative, exact to the grid's precision:

    - B, D (``z -> 0``): ``int_0^z w^m / (k - lam w^m + ng w^(m+1)) dw`` to second order in
      ``(lam z^m - ng z^(m+1)) / k`` (<= e^-30 relative below the grid), in ``z = zs sigmoid(phi)`` (B)
      or ``zp e^phi`` (D) itself;
    - A0 (``z -> inf``): ``c e^((m-1) phi)`` plus the exponential part ``-zs e^-phi / lam``;
    - A, C (next to the threshold): ``h_lo phi``.

    Solving ``T(phi) = T(phi0) + elapsed`` below the grid then never subtracts two large times (a start
    far below the learned state, e.g. lam 1e-30 of lam + eps, moves by 1e-30 of F(phi_lo))."""
    h_lo, _, p, c = ends[:4]
    kind, m, k = path.kind, path.m, path.k
    lo = jnp.minimum(phi, path.phi_lo)
    is_b = kind == _B
    e = jnp.exp(lo)
    zr = jnp.where(kind == _D, path.zp, path.zs)
    log_z = jnp.log(zr) + jnp.where(is_b, lo - jnp.log1p(e), lo)
    zm = jnp.exp(m * log_z)
    zm1 = zm * jnp.exp(log_z)
    w_lam = path.lam * zm / k
    w_ng = path.ng * zm1 / k
    y = zm1 / (k * (m + 1.0))
    t_pw = y * (1.0 + (m + 1.0) / (2.0 * m + 1.0) * w_lam - 0.5 * w_ng)
    r_pw = (m + 1.0) * y * (1.0 + w_lam - w_ng) * jnp.where(is_b, 1.0 / (1.0 + e), 1.0)
    p_s = jnp.where(p > 0, p, 1.0)
    e_p = jnp.exp(p_s * lo)
    ex = _extra(path, lo)
    t_a0 = c * e_p + ex
    r_a0 = c * p_s * e_p - ex
    pw = is_b | (kind == _D)
    a0 = kind == _A0
    tail = jnp.where(pw, t_pw, jnp.where(a0, t_a0, h_lo * lo))
    rate = jnp.where(pw, r_pw, jnp.where(a0, r_a0, h_lo))
    return tail, rate


def _tail_guess(path: _Path, ends, value):
    """A start for the Newton solve of ``T(phi) = value`` below the grid (exact but for the second-order
    terms of B and D and A0's power part)."""
    h_lo, _, _, _ = ends[:4]
    kind, m, k = path.kind, path.m, path.k
    tiny = jnp.finfo(value.dtype).tiny
    log_z = jnp.log(jnp.maximum(value * k * (m + 1.0), tiny)) / (m + 1.0)
    ls = log_z - jnp.log(jnp.where(kind == _D, path.zp, path.zs))
    phi_b = ls - jnp.log1p(-jnp.exp(jnp.minimum(ls, -1e-3)))  # log(s / (1 - s)), s = z / zs
    phi_a0 = -jnp.log(jnp.maximum(-value * path.lam_pos / path.zs, tiny))
    return jnp.select([kind == _B, kind == _D, kind == _A0], [phi_b, ls, phi_a0],
                      value / jnp.where(h_lo > 0, h_lo, 1.0))


def _time_outside(tab: _Table, phi):
    """F below and above the grid (exact tails), and dF/dphi there."""
    path = tab.path
    h_hi, tail_lo, ex_hi = tab.ends[1], tab.ends[4], tab.ends[5]
    tail, rate_below = _tail(path, tab.ends, phi)
    ex = _extra(path, phi)
    below = tab.f_edges[0] + tail - tail_lo
    above = tab.f_edges[-1] + h_hi * (jnp.maximum(phi, path.phi_hi) - path.phi_hi) + (ex - ex_hi)
    return below, above, rate_below, h_hi - ex


def _time_at(tab: _Table, phi):
    """F(phi) for any phi."""
    idx, x = _panel_of(tab.path, tab.psi_lo, tab.dpsi, phi)
    inside = tab.f_edges[idx] + clenshaw(tab.coef[idx], x)
    below, above, _, _ = _time_outside(tab, phi)
    return jnp.where(phi < tab.path.phi_lo, below, jnp.where(phi > tab.path.phi_hi, above, inside))


def _special(t, w0, lam, eps, ng, tau, depth):
    """Exact decays where P has no scale: k = 0 (pure weight decay) or lam = 0 (or negligible) with no
    weight decay."""
    k = lam + eps
    u_k0 = w0 * jnp.exp(-depth * ng * t / tau)
    p = (2.0 * depth - 2.0) / depth
    alg = (w0 > 0) & (k > 0)
    w0_s = jnp.where(alg, w0, 1.0)
    k_s = jnp.where(alg, k, 1.0)
    u_alg = jnp.where(alg, (w0_s ** (-p) + p * depth * k_s * t / tau) ** (-1.0 / p), 0.0)
    # lam negligible against k without weight decay (a learned state below 1e-12 (float32) or 1e-100
    # (float64) of the start's scale): the pure noise decay, whose z-scale would underflow otherwise
    tiny = 1e-12 if jnp.asarray(lam).dtype == jnp.float32 else 1e-100
    negligible = (ng <= 0) & (k > 0) & (lam <= k * tiny)
    return jnp.where(k <= 0, u_k0, u_alg), (k <= 0) | ((lam <= 0) & (ng <= 0)) | negligible


def _harmless(mask, *args):
    """Stand-in arguments (lam = 1, eps = gamma = 0, w0 = 1/2) where ``mask``: a branch that is not
    taken then has finite values and derivatives."""
    lam, eps, gamma, w0 = args
    return (
        jnp.where(mask, 1.0, lam),
        jnp.where(mask, 0.0, eps),
        jnp.where(mask, 0.0, gamma),
        jnp.where(mask, 0.5, w0),
    )


class _Prepared(NamedTuple):
    """Everything of one element's trajectory that does not depend on t (built once per parameter
    set; :func:`evaluate_trajectory` then solves for any number of times)."""

    lam: Array
    eps: Array
    gamma: Array
    w0: Array
    tau: Array
    n: Array
    table: _Table
    mapping: _Map
    time0: Array  # F(phi0): the time table's value at the start
    tail0: Array  # T(phi0) (:func:`_tail`) for a start below the grid, T(phi_lo) otherwise
    rate: Array  # (L - 2) c / tau: d(target)/dt
    at_rest: Array
    phi0: Array  # the start's path variable (for :func:`_gamma_rate`)


def materialise(tree):
    """``tree`` computed once and stored: the results of a two-step loop whose body XLA cannot prove to
    be the identity. Without it XLA's CPU fusion recomputes the cheap per-parameter-set arithmetic of
    a prepared state inside every per-time element that reads it."""
    leaves, treedef = jax.tree.flatten(tree)
    flo = [a for a in leaves if jnp.issubdtype(a.dtype, jnp.floating)]
    never = jnp.isnan(jnp.sum(flo[0])) & jnp.isinf(jnp.sum(flo[0]))  # False, unprovably so

    def touch(_, ls):
        out = []
        for a in ls:
            if jnp.issubdtype(a.dtype, jnp.floating):
                out.append(a + jnp.where(never, jnp.nan, 0.0).astype(a.dtype))
            elif a.dtype == jnp.bool_:
                out.append(a | never)
            else:
                out.append(a + never.astype(a.dtype))
        return out

    return jax.tree.unflatten(treedef, jax.lax.fori_loop(0, 2, touch, leaves))


def _start(prep: _Prepared, t, row):
    """(scalars of the element, elapsed table time, target F, the table's edges)."""
    tab = prep.table
    scal = prep._replace(table=tab._replace(f_edges=None, coef=None, dcoef=None))
    if row is not None:
        scal = jax.tree.map(lambda a: a[row], scal)
    elapsed = scal.rate * t  # table units
    fe = tab.f_edges if row is None else tab.f_edges[row]
    return scal, elapsed, scal.time0 + elapsed, fe


def _where_out(scal: _Prepared, elapsed, target, fe):
    """(below, above) the grid; below only from a start below it (phi increases with time), decided in
    the tail's own values."""
    sg = jax.lax.stop_gradient
    below = sg(scal.tail0 + elapsed) < sg(scal.table.ends[4])
    return below, sg(target) > sg(fe[-1])


def _solve_fast(prep: _Prepared, t, row=None):
    """phi with F(phi) = time0 + rate t (F increasing) inside the grid and above it for every kind but
    A0 (F linear there), then one differentiable Newton step; returns ``(phi, scal, rare)``, ``scal``
    the state without its tables, ``rare`` where :func:`_solve_rare` must give phi instead (below the
    grid, A0 above it). ``row``: the state holds every parameter set (a leading axis) and this
    element's is ``row``: its scalars and the table entries it needs are gathered.

    Inside the grid: the panel (a comparison with every edge), then Newton on the panel's polynomial
    from the linear interpolation, clipped to the panel, with x as the loop's only state: a loop with
    several outputs makes XLA's CPU fusion evaluate the polynomial once per output (measured 5x the
    cost of this loop)."""
    sg = jax.lax.stop_gradient
    tab = prep.table
    nodes = tab.dcoef.shape[-1]
    scal, elapsed, target, fe = _start(prep, t, row)
    tgt = sg(target)
    idx = jnp.clip(jnp.searchsorted(sg(fe), tgt, side="right", method="compare_all") - 1, 0, fe.shape[-1] - 2)
    # each coefficient gathered as its own contiguous array (a column of a gathered (elements, degree)
    # block is a strided read that XLA's CPU loops do not vectorise)
    n_c = tab.coef.shape[-1]
    if row is None:
        coef = [tab.coef[idx, j] for j in range(n_c)]
        dcoef = [sg(tab.dcoef[idx, j]) for j in range(n_c - 1)]
    else:
        coef = [tab.coef[row, idx, j] for j in range(n_c)]
        dcoef = [sg(tab.dcoef[row, idx, j]) for j in range(n_c - 1)]
    coef_s = [sg(c) for c in coef]
    f_a, f_b = fe[idx], sg(fe[idx + 1])
    rest = tgt - sg(f_a)
    width = f_b - sg(f_a)
    width = jnp.where(width > 0, width, 1.0)
    floor = 1e-6 * width  # G' > 0 on a panel; a polynomial's rounding must not divide by 0
    x = jnp.clip(2.0 * rest / width - 1.0, -1.0, 1.0)

    def body(_, x):
        r = clenshaw(coef_s, x) - rest
        return jnp.clip(x - r / jnp.maximum(clenshaw(dcoef, x), floor), -1.0, 1.0)

    x = sg(jax.lax.fori_loop(0, _NEWTON_IN[nodes], body, x))
    below, above = _where_out(scal, elapsed, target, fe)
    # one step more, then the root's derivatives (every order) by the implicit function theorem; an
    # element outside the grid takes a zero step and has none (finite in the branch not taken)
    out = below | above
    x = x - jnp.where(out, 0.0, sg(f_a) + clenshaw(coef_s, x) - tgt) / jnp.maximum(clenshaw(dcoef, x), floor)

    x = implicit_root(_panel_residual, x, (out, f_a, coef, target))
    path = scal.table.path
    phi_in = path.s * jnp.sinh(scal.table.psi_lo + (idx + 0.5 + 0.5 * x) * scal.table.dpsi)
    h_hi = scal.table.ends[1]
    phi_above = path.phi_hi + jnp.where(above, target - fe[-1], 0.0) / h_hi  # exact: F is linear there
    rare = below | (above & (path.kind == _A0))
    return jnp.where(above, phi_above, phi_in), scal, rare


def _solve_rare(prep: _Prepared, t, row=None):
    """phi outside the grid for every kind (the exact tails, solved relative to the start's tail value
    below the grid; A0's exponential part above it) and ``scal``; meaningful where outside."""
    sg = jax.lax.stop_gradient
    nodes = prep.table.dcoef.shape[-1]
    scal, elapsed, target, fe = _start(prep, t, row)
    tgt = sg(target)
    below, above = _where_out(scal, elapsed, target, fe)
    path, ends = scal.table.path, scal.table.ends
    f_hi = fe[-1]
    tail_target = scal.tail0 + elapsed
    ends_s = jax.tree.map(sg, ends)
    path_s = jax.tree.map(sg, path)
    guess_lo = _tail_guess(path_s, ends_s, sg(tail_target))
    hi_s = sg(path.phi_hi)
    # elements inside the grid polish a harmless stand-in (the grid's upper end): finite derivatives
    guess = jnp.where(below, guess_lo, jnp.where(above, hi_s + (tgt - sg(f_hi)) / ends_s[1], hi_s))

    # the guesses are exact but for the second-order terms of the tails: float64 polishes twice more;
    # one step more (Newton on :func:`_tail_residual`), then the root's derivatives (every order) by the
    # implicit function theorem
    fixed = (below, above, path_s, ends_s, sg(f_hi), tgt, sg(tail_target))
    phi_out = guess
    for _ in range(1 if nodes <= 10 else 3):
        r, slope = _tail_parts(phi_out, fixed)
        phi_out = phi_out - r / slope
    return implicit_root(_tail_residual, phi_out, (below, above, path, ends, f_hi, target, tail_target)), scal


def _panel_residual(x, c):
    """F(x) - target on the panel (x its coordinate); outside the grid x itself, with no derivatives."""
    out, f_a, coef, target = c
    return jnp.where(out, x - jax.lax.stop_gradient(x), f_a + clenshaw(coef, x) - target)


def _tail_parts(phi, c):
    """(residual, its slope in phi): the tail's time minus its target below the grid, F(phi) - target
    above it; inside the grid (a stand-in, not used) phi itself, with no derivatives, and slope 1."""
    below, above, path, ends, f_hi, target, tail_target = c
    sg = jax.lax.stop_gradient
    # each branch at a harmless phi where another is taken (its derivatives, of every order, finite)
    t_lo, r_lo = _tail(path, ends, jnp.where(below, phi, sg(path.phi_lo)))
    phi_a = jnp.where(above & ~below, phi, sg(path.phi_hi) + 1.0)
    ex = _extra(path, phi_a)
    f_above = f_hi + ends[1] * (jnp.maximum(phi_a, path.phi_hi) - path.phi_hi) + (ex - ends[5])
    residual = jnp.where(below, t_lo - tail_target, jnp.where(above, f_above - target, phi - sg(phi)))
    return residual, jnp.where(below, r_lo, jnp.where(above, ends[1] - ex, 1.0))


def _tail_residual(phi, c):
    """The residual of :func:`_tail_parts` (the root's derivatives need it alone)."""
    return _tail_parts(phi, c)[0]


def prepare_trajectory(lam, eps, gamma, w0, tau, n, depth: int) -> _Prepared:
    """The t-independent part of :func:`deep_trajectory` (scalars; vmap for arrays)."""
    # gamma's derivative where it is 0 is :func:`gamma_rate`'s (attached at evaluation): none from here
    gamma_p = jnp.where(_no_decay(gamma, lam, eps), jax.lax.stop_gradient(gamma), gamma)
    ng = n * gamma_p
    _, special = _special(jnp.zeros_like(lam), w0, lam, eps, ng, tau, depth)
    lam_in, eps_in, gamma_in, w0_in = _harmless(special | (w0 <= 0), lam, eps, gamma_p, w0)
    path, kind, z0, z_star, z_th, has_root, m = _setup(w0_in, lam_in, eps_in, gamma_in, n, depth)
    phi0 = _start_phi(kind, z0, path)
    tab = _build_table(path, phi0)
    # on a root only where there is one (without, z_star is a stand-in: a start there still moves)
    at_rest = (w0 <= 0) | (has_root & ((z0 == z_star) | (z0 == z_th)))
    rate = (depth - 2.0) * _scale(lam_in, eps_in, gamma_in, n) / tau
    tail0, _ = _tail(path, tab.ends, phi0)
    return _Prepared(lam, eps, gamma, w0, tau, n, tab, _mapping_of(path), _time_at(tab, phi0), tail0, rate,
                     at_rest, phi0)


def evaluate_fast(prep: _Prepared, t, depth: int, row=None):
    """``(u, rare)``: the mapping at ``t`` where it is inside the time table or above it (not A0), and
    where :func:`evaluate_rare` must give it instead (below the grid, A0 above it, the exact decays of
    :func:`_special`). Scalars; vmap for arrays; ``row`` as in :func:`evaluate_trajectory`."""
    phi, scal, rare = _solve_fast(prep, t, row)
    _, special = _special(t, scal.w0, scal.lam, scal.eps, scal.n * scal.gamma, scal.tau, depth)
    at_rest = scal.at_rest | (t <= 0)  # t = 0: the start itself, exactly
    u = jnp.where(at_rest, scal.w0, _mapping(scal.mapping, phi))
    u = _gamma_free(u, phi, *_sens_args(scal, depth, t))
    return u, (rare | special) & ~at_rest


def evaluate_rare(prep: _Prepared, t, depth: int, row=None):
    """The mapping at ``t`` where :func:`evaluate_fast` says ``rare`` (anything elsewhere)."""
    phi, scal = _solve_rare(prep, t, row)
    u_special, special = _special(t, scal.w0, scal.lam, scal.eps, scal.n * scal.gamma, scal.tau, depth)
    u = jnp.where(special, u_special, _mapping(scal.mapping, phi))
    return _gamma_free(u, phi, *_sens_args(scal, depth, t))


def evaluate_trajectory(prep: _Prepared, t, depth: int, row=None):
    """Mapping ``u(t)`` from a :func:`prepare_trajectory` state (scalars; vmap for arrays). ``row``: the
    state holds every parameter set (a leading axis) and this element's is ``row``."""
    u, rare = evaluate_fast(prep, t, depth, row)
    return jnp.where(rare, evaluate_rare(prep, t, depth, row), u)


def deep_trajectory(t, lam, eps, gamma, w0, tau, n, depth: int):
    """Mapping ``u(t)`` of a balanced depth-``depth`` direction (scalars; vmap for arrays)."""
    return evaluate_trajectory(prepare_trajectory(lam, eps, gamma, w0, tau, n, depth), t, depth)


def deep_time_to(f, lam, eps, gamma, w0, tau, n, depth: int):
    """Time for a balanced depth-``depth`` start ``w0`` to reach ``f`` times its learned state."""
    gamma_in = gamma
    gamma = jnp.where(_no_decay(gamma, lam, eps), jax.lax.stop_gradient(gamma), gamma)
    _, kind, _, _, _, has_root, _ = _setup(w0, lam, eps, gamma, n, depth)
    learnable = jax.lax.stop_gradient(has_root & (w0 > 0) & ((kind == _A) | (kind == _A0) | (kind == _B)))
    lam_o, eps_o, w0_o = lam, eps, w0
    lam, eps, gamma, w0 = _harmless(~learnable, lam, eps, gamma, w0)
    path, kind, z0, z_star, z_th, has_root, m = _setup(w0, lam, eps, gamma, n, depth)
    zs = path.zs
    d_f = zs * jnp.expm1(-jnp.log(f) / m)  # z_f - z_star
    th_f_a = jnp.log(d_f) - jnp.log(jnp.maximum(path.zt - zs - d_f, jnp.finfo(d_f.dtype).tiny))
    th_f_a0 = jnp.log(d_f / zs)
    phi_f = jnp.where(kind == _A, -th_f_a, -th_f_a0)
    phi0 = _start_phi(kind, z0, path)
    tab = _build_table(path, phi0)
    reached = (kind == _B) | (z0 <= zs + d_f)
    c = _scale(lam, eps, gamma, n)
    t = tau / ((depth - 2.0) * c) * (_time_at(tab, phi_f) - _time_at(tab, phi0))
    t = jnp.where(learnable, jnp.where(reached, 0.0, t), jnp.inf)
    return _time_gamma_free(t, phi_f, phi0, kind == _B, f, lam_o, eps_o, gamma_in, w0_o, tau, n,
                            jnp.asarray(depth, t.dtype))


def _sens_args(scal: _Prepared, depth, t):
    """The arguments of :func:`_gamma_free` after ``u, phi``, with their derivatives (the first-order rule
    ignores them; a second derivative d/dtheta of d u/d gamma needs them)."""
    return (scal.phi0, scal.mapping.kind == _B, scal.at_rest, t, scal.lam, scal.eps, scal.gamma, scal.w0,
            scal.tau, scal.n, jnp.asarray(depth, scal.lam.dtype))
