"""One eigen-direction of a linear DAE of any depth from an aligned but unbalanced start, solved exactly.

Along an eigen-direction whose path through the hidden layers is aligned, the L factor values
``a_1 .. a_L`` (mapping ``u = a_1 ... a_L``) follow

    tau da_l/dt = (u / a_l) (lam - k u) - n gamma a_l,        k = lam + eps.

Every ``a_l^2`` then moves at the same rate, ``tau d(a_l^2)/dt = 2 u (lam - k u) - 2 n gamma a_l^2``, so
the differences ``a_l^2 - a_j^2`` are conserved without weight decay and decay as
``exp(-2 n gamma t / tau)`` with it. Without weight decay one number carries the state: with
``b_l = a_l(0)^2``, ``c_l = b_l - min b`` and ``e^rho`` the smallest ``a_l^2``, every ``a_l^2 = c_l + e^rho``,
``u^2 = prod_l (c_l + e^rho)`` (increasing in rho), and

    tau du/dt = u^2 (lam - k u) S(u),        S(u) = sum_l 1 / a_l^2,

which is the balanced depth-L equation when every c_l = 0 (S = L u^(-2/L)). In the variable
``phi = log(u) - log|w* - u|`` (``w* = lam / k``; below or above the learned value) time is the
quadrature

    t(phi) - t(phi0) = integral from phi0 to phi of tau / (lam u S(u)) dphi',

whose integrand is smooth, positive, tends to ``tau / (lam w* S(w*))`` as phi grows and decays
exponentially as phi falls. It is integrated with a composite Gauss-Legendre table (:data:`_PANELS`
panels of 10 nodes) between the two ends, and inverted by a bracketed Newton solve; ``rho(u)`` at a
node by Newton on the convex increasing ``g(rho) = sum_l log(c_l + e^rho) - 2 log u`` from its right
(monotone convergence). With weight decay the reduction leaves one non-autonomous equation (the
differences decay with time), which :func:`daedyn.dynamics.scalar_flow` (``factors=``) integrates;
this module refuses gamma > 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import check_finite, check_range, float_dtype, renamed
from daedyn._numerics import implicit_root

__all__ = ["unbalanced_trajectory", "unbalanced_learning_time"]

_PANELS = 96
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(10)
_SPAN = 40.0  # the table runs to phi = max(phi0, 0) + 40, where u = w* (1 -+ e^-phi) is w* to rounding
_RHO_ITERS = 40  # Newton from the right on a convex function with slope in [1, L]
_SOLVE = 16  # bracketed Newton iterations inside one table panel


def _rho_of_u(log_u, c):
    """log of the smallest squared factor for mappings ``exp(log_u)`` (any shape); ``c`` (L,) the
    offsets >= 0. Newton on the convex increasing g(rho) = sum_l log(c_l + e^rho) - 2 log u from a
    start right of the root (g(rho) >= L rho - 2 log u and >= n0 rho + sum_{c > 0} log c_l - 2 log u,
    n0 the number of zero offsets), which converges monotonically; its derivatives (every order) by the
    implicit function theorem."""
    sg = jax.lax.stop_gradient
    pos = c > 0
    log_c = jnp.where(pos, jnp.log(jnp.where(pos, c, 1.0)), -jnp.inf)
    n_fac = c.shape[-1]
    n0 = jnp.sum(~pos)
    start = jnp.minimum(2.0 * log_u / n_fac, (2.0 * log_u - jnp.sum(jnp.where(pos, log_c, 0.0)))
                        / jnp.maximum(n0, 1))

    log_c = log_c.reshape((1,) * jnp.ndim(log_u) + (-1,))  # explicit ranks (rank promotion off)

    def g(rho, lu, log_c):
        return jnp.sum(jnp.logaddexp(log_c, rho[..., None]), axis=-1) - 2.0 * lu

    lu_s, c_s = sg(log_u), sg(log_c)
    g_s = lambda r: g(r, lu_s, c_s)  # noqa: E731
    dg_s = lambda r: jnp.sum(jax.nn.sigmoid(r[..., None] - c_s), axis=-1)
    rho = jax.lax.fori_loop(0, _RHO_ITERS, lambda _, r: r - g_s(r) / dg_s(r), sg(start))
    rho = rho - g_s(rho) / dg_s(rho)
    return implicit_root(lambda r, p: g(r, p[0], p[1]), rho, (log_u, log_c))


def _u_of_phi(phi, w_star, above):
    """The mapping at phi (log u = log w* - softplus(-phi) below w*, log w* - log(1 - e^-phi) above)."""
    below_log = -jax.nn.softplus(-phi)
    above_log = -jnp.log(-jnp.expm1(-jnp.maximum(phi, 1e-30)))
    return jnp.log(w_star) + jnp.where(above, above_log, below_log)


def _dt_dphi(phi, lam, w_star, c, above):
    """tau^-1 dt/dphi = 1 / (lam u S(u)) at phi (scalar element; phi may be an array of nodes)."""
    log_u = _u_of_phi(phi, w_star, above)
    rho = _rho_of_u(log_u, c)
    # u S(u) = sum_l u / (c_l + e^rho), formed in logs
    log_c = jnp.where(c > 0, jnp.log(jnp.where(c > 0, c, 1.0)), -jnp.inf).reshape((1,) * rho.ndim + (-1,))
    terms = jnp.exp(log_u[..., None] - jnp.logaddexp(log_c, rho[..., None]))
    return 1.0 / (lam * jnp.sum(terms, axis=-1))


def _integral(lo, hi, lam, w_star, c, above):
    """integral of dt/dphi (units tau) over [lo, hi] by the composite Gauss-Legendre table."""
    dtype = lo.dtype
    nodes = jnp.asarray(_NODES, dtype)
    weights = jnp.asarray(_WEIGHTS, dtype)
    edges = lo + (hi - lo) * jnp.linspace(0.0, 1.0, _PANELS + 1, dtype=dtype)
    mid = 0.5 * (edges[1:] + edges[:-1])
    half = 0.5 * (edges[1:] - edges[:-1])
    x = mid[:, None] + half[:, None] * nodes[None, :]
    return jnp.sum(half[:, None] * weights[None, :] * _dt_dphi(x, lam, w_star, c, above))


def _setup(lam, eps, factors):
    """(w*, c, phi0, above, u0) of one element: the learned value, the conserved offsets and the start."""
    k = lam + eps
    w_star = lam / k
    b = factors * factors
    c = b - jnp.min(b)
    u0 = jnp.prod(factors)
    above = u0 > w_star
    phi0 = jnp.log(u0) - jnp.log(jnp.abs(w_star - u0))
    return w_star, c, phi0, above, u0


def _learning_time_one(f, lam, eps, factors, tau):
    w_star, c, phi0, above, u0 = _setup(lam, eps, factors)
    phi_f = jnp.log(f) - jnp.log1p(-f)
    reached = u0 >= f * w_star
    phi_s = jnp.where(reached, phi0, phi_f)
    t = tau * _integral(phi0, phi_s, lam, w_star, c, above)
    return jnp.where(reached, 0.0, t)


def _panels(edges, lam, w_star, c, above):
    """Integral of dt/dphi (units tau) over each panel between consecutive ``edges``."""
    dtype = edges.dtype
    nodes, weights = jnp.asarray(_NODES, dtype), jnp.asarray(_WEIGHTS, dtype)
    mid, half = 0.5 * (edges[1:] + edges[:-1]), 0.5 * (edges[1:] - edges[:-1])
    x = mid[:, None] + half[:, None] * nodes[None, :]
    return jnp.sum(half[:, None] * weights[None, :] * _dt_dphi(x, lam, w_star, c, above), axis=1)


def _partial(a, x, lam, w_star, c, above):
    """Integral of dt/dphi over [a, x] by one 10-node Gauss-Legendre panel (x inside a table panel)."""
    return _panels(jnp.stack([a, x]), lam, w_star, c, above)[0]


def _trajectory_one(t, lam, eps, factors, tau):
    """u(t) of one element. The time table (cumulative panel integrals from phi0 to phi0 + span) is
    built once; t is located in its panel and solved there by a bracketed Newton iteration (beyond the
    table the integrand is its constant limit to rounding: u = w* (1 +- e^-phi), phi >= 40); one last
    Newton step with every argument live gives the derivatives (implicit function theorem)."""
    sg = jax.lax.stop_gradient
    w_star, c, phi0, above, u0 = _setup(lam, eps, factors)
    phi_end = jnp.maximum(phi0, 0.0) + _SPAN
    edges = phi0 + (phi_end - phi0) * jnp.linspace(0.0, 1.0, _PANELS + 1, dtype=phi0.dtype)
    table = jnp.concatenate([jnp.zeros((1,), phi0.dtype), jnp.cumsum(_panels(edges, lam, w_star, c, above))])
    target = t / tau
    args = sg((lam, w_star, c, above))
    edges_s, table_s, tgt = sg(edges), sg(table), sg(target)
    idx = jnp.clip(jnp.searchsorted(table_s, tgt, side="right") - 1, 0, _PANELS - 1)
    a, b = edges_s[idx], edges_s[idx + 1]

    def body(_, state):
        x, lo, hi = state
        r = table_s[idx] + _partial(a, x, *args) - tgt
        lo = jnp.where(r < 0, x, lo)
        hi = jnp.where(r < 0, hi, x)
        x_new = x - r / _dt_dphi(x, *args)
        ok = (x_new > lo) & (x_new < hi)
        return jnp.where(ok, x_new, 0.5 * (lo + hi)), lo, hi

    x_in, _, _ = jax.lax.fori_loop(0, _SOLVE, body, (0.5 * (a + b), a, b))
    rate_end = _dt_dphi(phi_end, lam, w_star, c, above)
    beyond = tgt > table_s[-1]
    x = sg(jnp.where(beyond, edges_s[-1] + (tgt - table_s[-1]) / sg(rate_end), x_in))
    # one step more, then the derivatives (every order, the table and the integrand live) by the
    # implicit function theorem
    x = x - (_time_residual(x, (beyond, idx, sg(table), edges_s, sg(rate_end), *args, tgt))
             / _dt_dphi(x, *args))
    x = implicit_root(_time_residual, x, (beyond, idx, table, edges, rate_end, lam, w_star, c, above, target))
    u = jnp.exp(_u_of_phi(x, w_star, above))
    return jnp.where((t <= 0) | (u0 == w_star), u0, u)


def _time_residual(x, p):
    """The tabulated time at phi = x minus its target (x in panel ``idx``, or beyond the table)."""
    beyond, idx, table, edges, rate_end, lam, w_star, c, above, target = p
    inside = table[idx] + _partial(edges[idx], jnp.minimum(x, edges[idx + 1]), lam, w_star, c, above)
    return jnp.where(beyond, table[-1] + (x - edges[-1]) * rate_end, inside) - target


def _inputs(func, lam, eps, factors, tau, gamma, **first):
    check_range("lam", lam, 0.0, lo_open=True)
    check_range("eps", eps, 0.0)
    check_range("tau", tau, 0.0, lo_open=True)
    if np.ndim(factors) < 1 or np.shape(factors)[-1] < 2:
        raise ValueError(f"{func}: factors must have shape (..., L) with L >= 2 (one value per weight "
                         f"matrix)")
    check_finite("factors", factors)
    check_range("factors", factors, 0.0, lo_open=True)
    if np.any(np.asarray(gamma) != 0):
        raise ValueError(f"{func}: gamma must be 0 (with weight decay the factors' differences decay in time "
                         f"and no quadrature holds; integrate with dynamics.scalar_flow(..., factors=))")
    for name, x in first.items():
        if name == "fraction":
            check_range(name, x, 0.0, 1.0, lo_open=True, hi_open=True)
        else:
            check_range(name, x, 0.0)
    dtype = float_dtype(lam, eps, factors, tau, *first.values())
    shapes = (np.shape(x) for x in (lam, eps, tau, *first.values()))
    shape = np.broadcast_shapes(*shapes, np.shape(factors)[:-1])
    cast = lambda x: jnp.broadcast_to(jnp.asarray(x, dtype), shape).reshape(-1)
    fac = jnp.broadcast_to(jnp.asarray(factors, dtype), shape + np.shape(factors)[-1:])
    return shape, [cast(x) for x in (*first.values(), lam, eps, tau)], fac.reshape(-1, fac.shape[-1])


@jax.jit
def _trajectory_batch(t, lam, eps, tau, factors):
    return jax.vmap(_trajectory_one)(t, lam, eps, factors, tau)


@jax.jit
def _learning_time_batch(f, lam, eps, tau, factors):
    return jax.vmap(_learning_time_one)(f, lam, eps, factors, tau)


def unbalanced_trajectory(t: ArrayLike, lam: ArrayLike, eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0, *,
                          factors: ArrayLike, tau: ArrayLike = 1.0) -> Array:
    """Mapping u(t) of one eigen-direction from an aligned start of L positive factor values (module
    docstring): exact for any (balanced or not) start, up to the quadrature's rounding.

    Args:
      t: time in epochs, >= 0.
      lam: eigenvalue of Sigma (the direction's k), > 0.
      eps: noise level (m = lam + eps), >= 0.
      gamma: weight decay; must be 0 (module docstring).
      factors: (..., L) the start a_1(0) .. a_L(0), each > 0 (the mapping starts at their product).
      tau: n / alpha, > 0.
    Returns:
      u(t), with the broadcast shape of t, lam, eps, tau and factors[..., 0], and their floating dtype.
    Raises:
      ValueError: lam <= 0, eps < 0, tau <= 0, t < 0, a factor <= 0 or not finite, fewer than two
        factors, or gamma != 0.
    Example:
      >>> round(float(unbalanced_trajectory(1e3, 1.0, 1.0, factors=jnp.array([0.05, 0.2, 0.1]))), 6)
      0.5
    """
    shape, (t, lam, eps, tau), fac = _inputs("unbalanced_trajectory", lam, eps, factors, tau, gamma, t=t)
    return _trajectory_batch(t, lam, eps, tau, fac).reshape(shape)


@renamed(f="fraction")
def unbalanced_learning_time(fraction: ArrayLike, lam: ArrayLike, eps: ArrayLike = 0.0,
                             gamma: ArrayLike = 0.0, *, factors: ArrayLike, tau: ArrayLike = 1.0) -> Array:
    """Time for the aligned start ``factors`` to reach ``fraction`` times the learned value lam / (lam + eps)
    (0 where it starts there or above): one quadrature, no inversion.

    Args:
      fraction: of the learned value, in (0, 1) (the keyword ``f`` is deprecated). Others as
        :func:`unbalanced_trajectory`.
    Raises:
      ValueError: as :func:`unbalanced_trajectory`, or fraction outside (0, 1).
    Example:
      >>> from daedyn import theory
      >>> a = jnp.full(3, 1e-2)                      # a balanced start: the depth-3 closed form's time
      >>> t = unbalanced_learning_time(0.5, 1.0, factors=a)
      >>> bool(jnp.isclose(t, theory.learning_time(0.5, 1.0, w0=1e-6, depth=3), rtol=1e-5))
      True
    """
    shape, (f, lam, eps, tau), fac = _inputs("unbalanced_learning_time", lam, eps, factors, tau, gamma,
                                             fraction=fraction)
    return _learning_time_batch(f, lam, eps, tau, fac).reshape(shape)


