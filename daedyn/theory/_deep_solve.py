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
``P`` near a root is formed relative to it (``P(z_r + d) / d``), so nothing cancels. The integral is a
fixed composite Gauss-Legendre table (48 panels x 10 nodes), with exact tails outside it; the mapping
at a time is found by a safeguarded Newton solve in the table, and one last Newton step taken with
gradients gives exact first derivatives by the implicit function theorem.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from daedyn._numerics import expm1_ratio

__all__ = ["deep_roots", "deep_trajectory", "deep_time_to"]

_PANELS = 48
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(10)
_NEWTON = 60  # root iterations (linear convergence only next to the critical gamma)
_SOLVE = 10  # safeguarded Newton iterations inside one panel (quadratic once close)

# path kinds
_A, _A0, _B, _C, _D = 0, 1, 2, 3, 4


def _sigmoid(x):
    return jax.nn.sigmoid(x)


def _log1p_ratio(x):
    """``log1p(x) / x`` with value 1 at 0 (finite derivatives)."""
    small = jnp.abs(x) < 1e-4
    xs = jnp.where(small, 1.0, x)
    xz = jnp.where(small, x, 0.0)
    return jnp.where(small, 1.0 - xz / 2.0 + xz * xz / 3.0 - xz**3 / 4.0, jnp.log1p(xs) / xs)


def _q(d, zr, lam, ng, k, m):
    """``P(zr + d) / d`` for a root ``zr`` of P, formed without cancellation (any d > -zr)."""
    x = d / zr
    y = -m * jnp.log1p(x)
    e = expm1_ratio(y) * (-m) * _log1p_ratio(x)  # ((1 + x)^-m - 1) / x
    return -ng - k * zr ** (-m - 1.0) * e


def _p(z, lam, ng, k, m):
    return lam - ng * z - k * z ** (-m)


def _dp(z, ng, k, m):
    return -ng + m * k * z ** (-m - 1.0)


def _newton_root(z_start, z_clip, lam, ng, k, m, left: bool):
    """A root of the concave P by Newton from a point where P < 0 (monotone convergence), then one
    differentiable step (implicit-function derivatives)."""
    args = jax.lax.stop_gradient((lam, ng, k))

    def body(_, z):
        step = _p(z, *args, m) / _dp(z, args[1], args[2], m)
        z_new = z - step
        return jnp.minimum(z_new, z_clip) if left else jnp.maximum(z_new, z_clip)

    z = jax.lax.fori_loop(0, _NEWTON, body, jax.lax.stop_gradient(z_start))
    return z - _p(z, lam, ng, k, m) / _dp(z, ng, k, m)


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
    z_star = jnp.where(two, z_star_wd, z_free)
    has_root = (lam > 0) & (k > 0) & ((ng <= 0) | two)
    z_th = jnp.where(two, z_th, jnp.inf)
    return z_star, z_th, jnp.where(decay, z_pk, 1.0), has_root


class _Path:
    """One element's path: its kind, the table and the maps (scalar fields; built under vmap)."""

    def __init__(self, kind, z_star, z_th, z_pk, lam, ng, k, m):
        self.kind, self.lam, self.ng, self.k, self.m = kind, lam, ng, k, m
        self.z_th = z_th
        self.lam_pos = jnp.where(lam > 0, lam, 1.0)  # for the divisions of the A0 branch
        self.zs = z_star
        self.zt = jnp.where(jnp.isfinite(z_th), z_th, 2.0 * z_star)
        self.zp = z_pk
        self.gap = self.zt - self.zs  # A: width of the learning interval
        ratio = jnp.log(jnp.where(kind == _A, self.gap / self.zs, 1.0))
        lo_a = jnp.minimum(-37.0, -ratio - 37.0)
        tail_lo = -40.0 / (m + 1.0)
        # grid in phi (increasing with time); A, A0 run theta = -phi
        self.phi_lo = jnp.select(
            [kind == _A, kind == _A0, (kind == _B) | (kind == _D)], [-37.0, -37.0, tail_lo], -37.0
        )
        self.phi_hi = jnp.select([kind == _A], [-lo_a], 37.0)

    # dt/dphi (in units tau / (L - 2)), positive; the A0 part without its exponential term
    def h(self, phi):
        kind, lam, ng, k, m = self.kind, self.lam, self.ng, self.k, self.m
        zs, zt, zp, gap = self.zs, self.zt, self.zp, self.gap
        # every branch sees a harmless phi unless it is this element's kind (finite gradients)
        zero = jnp.zeros_like(phi)
        ph = {c: jnp.where(kind == c, phi, zero) for c in (_A, _A0, _B, _C, _D)}
        # A: z = zs + gap sigmoid(theta), theta = -phi
        th = -ph[_A]
        s = _sigmoid(th)
        left = s <= 0.5
        d_left = gap * jnp.where(left, s, 0.5)
        d_right = -gap * jnp.where(left, 0.5, _sigmoid(-th))
        s_r = jnp.where(left, 0.5, s)
        h_a = jnp.where(
            left, (1.0 - s) / _q(d_left, zs, lam, ng, k, m), -s_r / _q(d_right, zt, lam, ng, k, m)
        )
        # A0 (ng = 0): z = zs (1 + e^theta); the remainder k z^-m / (lam q) after dz / lam
        th0 = -ph[_A0]
        x0 = jnp.exp(jnp.clip(th0, -80.0, 80.0))
        zm = zs ** (-m) * jnp.exp(-m * jax.nn.softplus(th0))
        h_a0 = k * zm / (self.lam_pos * _q(zs * x0, zs, lam, 0.0 * ng, k, m))
        # B: z = zs sigmoid(phi), from above the learned state
        sb = _sigmoid(ph[_B])
        h_b = sb / _q(-zs * _sigmoid(-ph[_B]), zs, lam, ng, k, m)
        # C: z = zt (1 + e^phi), below the threshold, decaying
        h_c = -1.0 / _q(zt * jnp.exp(jnp.clip(ph[_C], -80.0, 80.0)), zt, lam, ng, k, m)
        # D: z = zp e^phi, no root
        zd = zp * jnp.exp(jnp.clip(ph[_D], -80.0, 80.0))
        h_d = zd / (-_p(zd, lam, ng, k, m))
        return jnp.select([kind == _A, kind == _A0, kind == _B, kind == _C], [h_a, h_a0, h_b, h_c], h_d)

    def extra(self, phi):
        """The exact exponential part of the A0 time: -zs e^-phi / lam (0 for the others)."""
        return jnp.where(
            self.kind == _A0, -self.zs * jnp.exp(-jnp.clip(phi, -700.0, 700.0)) / self.lam_pos, 0.0
        )

    def d_extra(self, phi):
        return jnp.where(
            self.kind == _A0, self.zs * jnp.exp(-jnp.clip(phi, -700.0, 700.0)) / self.lam_pos, 0.0
        )

    def h_ends(self):
        """Constant limits of h below and above the grid, and the power-law tail below (p, c)."""
        kind, ng, k, m = self.kind, self.ng, self.k, self.m
        d_star = _dp(self.zs, ng, k, m)
        d_th = _dp(self.zt, ng, k, m)
        h_hi = jnp.select(
            [(kind == _A) | (kind == _A0) | (kind == _B)], [1.0 / d_star], 1.0 / jnp.where(ng > 0, ng, 1.0)
        )
        h_lo = jnp.select([(kind == _A) | (kind == _C)], [-1.0 / d_th], 0.0)
        p = jnp.select([(kind == _B) | (kind == _D), kind == _A0], [m + 1.0, m - 1.0], 0.0)
        z_ref = jnp.where(kind == _D, self.zp, self.zs)
        c = jnp.select(
            [(kind == _B) | (kind == _D), kind == _A0],
            [z_ref ** (m + 1.0) / (k * (m + 1.0)), self.zs / (self.lam_pos * (m - 1.0))],
            0.0,
        )
        return h_lo, h_hi, p, c

    def scale(self):
        """Node spacing: phi = s sinh(psi) with uniform psi panels. s = 20 is nearly uniform; without
        roots (kind D) s is the width of the peak of dt/dphi around max P, which sharpens as gamma
        approaches the critical value from above."""
        m, ng, k = self.m, self.ng, self.k
        zp = self.zp
        p_max = _p(zp, self.lam, ng, k, m)
        p2 = -m * (m + 1.0) * k * zp ** (-m - 2.0)
        w = jnp.sqrt(2.0 * jnp.abs(p_max) / jnp.abs(p2)) / zp
        return jax.lax.stop_gradient(jnp.where(self.kind == _D, jnp.clip(w, 1e-6, 20.0), 20.0))

    def table(self):
        s = self.scale()
        e_psi = jnp.linspace(jnp.arcsinh(self.phi_lo / s), jnp.arcsinh(self.phi_hi / s), _PANELS + 1)
        half = (e_psi[1:] - e_psi[:-1]) / 2.0
        mid = (e_psi[1:] + e_psi[:-1]) / 2.0
        nodes = mid[:, None] + half[:, None] * jnp.asarray(_NODES, mid.dtype)[None, :]
        vals = self.h(s * jnp.sinh(nodes)) * s * jnp.cosh(nodes)
        panel = half * (vals @ jnp.asarray(_WEIGHTS, mid.dtype))
        return s * jnp.sinh(e_psi), panel

    def rebase(self, edges, panel, phi0):
        """The time table at the edges measured from ``phi0`` (sums run outwards from ``phi0``'s panel,
        so times near the start keep full relative precision in float32)."""
        i = jnp.arange(_PANELS)
        idx0 = jnp.clip(
            jnp.searchsorted(edges, jnp.clip(phi0, self.phi_lo, self.phi_hi), side="right") - 1,
            0,
            _PANELS - 1,
        )
        fwd = jnp.cumsum(jnp.where(i >= idx0, panel, 0.0))
        bwd = jnp.cumsum(jnp.where(i < idx0, panel, 0.0)[::-1])[::-1]
        zero = jnp.zeros((1,), panel.dtype)
        j = jnp.concatenate([zero, fwd]) - jnp.concatenate([bwd, zero])
        return j - self.partial(edges[idx0], jnp.clip(phi0, self.phi_lo, self.phi_hi))

    def partial(self, a, b):
        s = self.scale()
        pa, pb = jnp.arcsinh(a / s), jnp.arcsinh(b / s)
        half = (pb - pa) / 2.0
        nodes = (pa + pb) / 2.0 + half * jnp.asarray(_NODES, half.dtype)
        return half * (
            (self.h(s * jnp.sinh(nodes)) * s * jnp.cosh(nodes)) @ jnp.asarray(_WEIGHTS, half.dtype)
        )

    def time(self, phi, edges, j):
        """F(phi) = extra(phi) + integral of h from phi_lo (tails exact outside the grid)."""
        h_lo, h_hi, p, c = self.h_ends()
        below = phi < self.phi_lo
        above = phi > self.phi_hi
        inside = ~below & ~above
        pc = jnp.clip(phi, self.phi_lo, self.phi_hi)
        idx = jnp.clip(jnp.searchsorted(edges, pc, side="right") - 1, 0, _PANELS - 1)
        j_in = j[idx] + self.partial(edges[idx], pc)
        p_s = jnp.where(p > 0, p, 1.0)
        tail_pow = c * (jnp.exp(p_s * jnp.minimum(phi, self.phi_lo)) - jnp.exp(p_s * self.phi_lo))
        tail_lin = h_lo * (jnp.minimum(phi, self.phi_lo) - self.phi_lo)
        j_below = j[0] + jnp.where(p > 0, tail_pow, tail_lin)
        j_above = j[-1] + h_hi * (jnp.maximum(phi, self.phi_hi) - self.phi_hi)
        return self.extra(phi) + jnp.where(inside, j_in, jnp.where(below, j_below, j_above))

    def rate(self, phi):
        """dF/dphi, with the exact tails outside the grid."""
        h_lo, h_hi, p, c = self.h_ends()
        below = phi < self.phi_lo
        above = phi > self.phi_hi
        pc = jnp.clip(phi, self.phi_lo, self.phi_hi)
        p_s = jnp.where(p > 0, p, 1.0)
        h_tail = jnp.where(p > 0, c * p_s * jnp.exp(p_s * jnp.minimum(phi, self.phi_lo)), h_lo)
        return self.d_extra(phi) + jnp.where(below, h_tail, jnp.where(above, h_hi, self.h(pc)))

    def solve(self, target, edges, j):
        """phi with F(phi) = target (F increasing), then one differentiable Newton step."""
        sg = jax.lax.stop_gradient
        edges_s, j_s = sg(edges), sg(j)
        f_lo = sg(self.time(self.phi_lo, edges, j))
        f_hi = sg(self.time(self.phi_hi, edges, j))
        tgt = sg(target)
        h_lo, h_hi, p, c = jax.tree.map(sg, self.h_ends())
        # closed-form guesses outside the grid
        guess_hi = self.phi_hi + (tgt - f_hi) / h_hi
        p_s = jnp.where(p > 0, p, 1.0)
        arg = jnp.exp(p_s * self.phi_lo) + (tgt - f_lo) / jnp.where(c > 0, c, 1.0)
        guess_pow = jnp.log(jnp.maximum(arg, jnp.finfo(arg.dtype).tiny)) / p_s
        guess_lin = self.phi_lo + (tgt - f_lo) / jnp.where(h_lo > 0, h_lo, 1.0)
        # A0 below the grid: the exponential part dominates; -zs e^-phi / lam = tgt - F_lo + extra(lo)
        rest = (tgt - f_lo + sg(self.extra(self.phi_lo))) * (-self.lam_pos / self.zs)
        guess_a0 = -jnp.log(jnp.maximum(rest, jnp.finfo(arg.dtype).tiny))
        guess_lo = jnp.select([self.kind == _A0, p > 0], [guess_a0, guess_pow], guess_lin)
        # inside: locate the panel, then safeguarded Newton
        f_edges = self.extra(edges_s) + j_s
        idx = jnp.clip(jnp.searchsorted(f_edges, tgt, side="right") - 1, 0, _PANELS - 1)
        a, b = edges_s[idx], edges_s[idx + 1]

        def body(_, state):
            x, lo, hi = state
            r = self.time(x, edges_s, j_s) - tgt
            lo = jnp.where(r < 0, x, lo)
            hi = jnp.where(r < 0, hi, x)
            x_new = x - r / self.rate(x)
            ok = (x_new > lo) & (x_new < hi)
            return jnp.where(ok, x_new, 0.5 * (lo + hi)), lo, hi

        x_in, _, _ = jax.lax.fori_loop(0, _SOLVE, body, (0.5 * (a + b), a, b))
        x = jnp.where(tgt < f_lo, guess_lo, jnp.where(tgt > f_hi, guess_hi, x_in))
        x = sg(x)
        # polish outside the grid too (the A0 guess ignored its small power tail)
        x = jax.lax.fori_loop(0, 2, lambda _, x: x - (self.time(x, edges_s, j_s) - tgt) / self.rate(x), x)
        return x - (self.time(x, edges, j) - target) / self.rate(x)


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
    # each branch gets a start inside its own range unless it is this element's kind
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


def _mapping(kind, phi, path: _Path):
    m = path.m
    zs, zt, zp, gap = path.zs, path.zt, path.zp, path.gap
    ph = {c: jnp.where(kind == c, phi, jnp.zeros_like(phi)) for c in (_A, _A0, _B, _C, _D)}
    u_a = zs ** (-m) * jnp.exp(-m * jnp.log1p(gap * _sigmoid(-ph[_A]) / zs))
    u_a0 = zs ** (-m) * jnp.exp(-m * jax.nn.softplus(-ph[_A0]))
    u_b = zs ** (-m) * jnp.exp(m * jax.nn.softplus(-ph[_B]))
    u_c = zt ** (-m) * jnp.exp(-m * jax.nn.softplus(ph[_C]))
    u_d = zp ** (-m) * jnp.exp(-m * ph[_D])
    return jnp.select([kind == _A, kind == _A0, kind == _B, kind == _C], [u_a, u_a0, u_b, u_c], u_d)


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
    path = _Path(kind, z_star, z_th, z_pk, jnp.where(kind == _A0, lam_s, lam), ng_s, k_s, m)
    return path, kind, z0, z_star, z_th, has_root, m


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
    path_args: tuple  # _Path(kind, z_star, z_th, z_pk, lam, ng, k, m) without m (static)
    edges: Array
    j: Array
    time0: Array  # F(phi0): the time table's value at the start
    rate: Array  # (L - 2) c / tau: d(target)/dt
    at_rest: Array


def prepare_trajectory(lam, eps, gamma, w0, tau, n, depth: int) -> _Prepared:
    """The t-independent part of :func:`deep_trajectory` (scalars; vmap for arrays)."""
    ng = n * gamma
    _, special = _special(jnp.zeros_like(lam), w0, lam, eps, ng, tau, depth)
    lam_in, eps_in, gamma_in, w0_in = _harmless(special | (w0 <= 0), lam, eps, gamma, w0)
    path, kind, z0, z_star, z_th, has_root, m = _setup(w0_in, lam_in, eps_in, gamma_in, n, depth)
    phi0 = _start_phi(kind, z0, path)
    edges, panel = path.table()
    j = path.rebase(edges, panel, phi0)
    args = (path.kind, path.zs, path.z_th, path.zp, path.lam, path.ng, path.k)
    at_rest = (w0 <= 0) | (z0 == z_star) | (z0 == z_th)
    rate = (depth - 2.0) * _scale(lam_in, eps_in, gamma_in, n) / tau
    return _Prepared(lam, eps, gamma, w0, tau, n, args, edges, j, path.time(phi0, edges, j), rate, at_rest)


def evaluate_trajectory(prep: _Prepared, t, depth: int):
    """Mapping ``u(t)`` from a :func:`prepare_trajectory` state (scalars; vmap for arrays)."""
    u_special, special = _special(t, prep.w0, prep.lam, prep.eps, prep.n * prep.gamma, prep.tau, depth)
    path = _Path(*prep.path_args, depth / (depth - 2.0))
    u = _mapping(path.kind, path.solve(prep.time0 + prep.rate * t, prep.edges, prep.j), path)
    at_rest = prep.at_rest | (t <= 0)  # t = 0: the start itself, exactly
    return jnp.where(special, u_special, jnp.where(at_rest, prep.w0, u))


def deep_trajectory(t, lam, eps, gamma, w0, tau, n, depth: int):
    """Mapping ``u(t)`` of a balanced depth-``depth`` direction (scalars; vmap for arrays)."""
    return evaluate_trajectory(prepare_trajectory(lam, eps, gamma, w0, tau, n, depth), t, depth)


def deep_time_to(f, lam, eps, gamma, w0, tau, n, depth: int):
    """Time for a balanced depth-``depth`` start ``w0`` to reach ``f`` times its learned state."""
    _, kind, _, _, _, has_root, _ = _setup(w0, lam, eps, gamma, n, depth)
    learnable = jax.lax.stop_gradient(has_root & (w0 > 0) & ((kind == _A) | (kind == _A0) | (kind == _B)))
    lam, eps, gamma, w0 = _harmless(~learnable, lam, eps, gamma, w0)
    path, kind, z0, z_star, z_th, has_root, m = _setup(w0, lam, eps, gamma, n, depth)
    edges, panel = path.table()
    zs = path.zs
    d_f = zs * jnp.expm1(-jnp.log(f) / m)  # z_f - z_star
    th_f_a = jnp.log(d_f) - jnp.log(jnp.maximum(path.gap - d_f, jnp.finfo(d_f.dtype).tiny))
    th_f_a0 = jnp.log(d_f / zs)
    phi_f = jnp.where(kind == _A, -th_f_a, -th_f_a0)
    phi0 = _start_phi(kind, z0, path)
    j = path.rebase(edges, panel, phi0)
    reached = (kind == _B) | (z0 <= zs + d_f)
    c = _scale(lam, eps, gamma, n)
    t = tau / ((depth - 2.0) * c) * (path.time(phi_f, edges, j) - path.time(phi0, edges, j))
    return jnp.where(learnable, jnp.where(reached, 0.0, t), jnp.inf)


# ----------------------------------------------------------------------------------------------
# A negative coefficient without weight decay: tau du/dt = L u^(2-2/L) (lam - k u) with lam < 0 < k
# (a diffusion denoiser's direction whose target is negative, started balanced and positive).

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
