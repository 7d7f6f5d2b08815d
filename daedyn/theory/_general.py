"""The general solution of Eqs. (2)-(3) from any start, Eq. (5), and the time it takes.

Without weight decay the scalar flow of one eigen-direction is

    tau dw1/dt = w2 lam (1 - w2 w1) - eps w2^2 w1,    tau dw2/dt = w1 lam (1 - w2 w1) - eps w2 w1^2

and ``w = w2 w1`` is the mapping learned along that direction.

**Why not Eq. (5) as printed.** With ``E = exp(zeta lam t / tau)`` it overflows (float32 beyond an
exponent of about 88), is 0/0 at the balanced point ``w1^2 = w2^2`` and loses all accuracy for
negative initial products. :func:`dae_trajectory` evaluates the same solution through the
coordinates ``y = (w1 + w2)^2 / 2`` and ``z = (w1 - w2)^2 / 2``: ``u = w1 + w2`` and ``v = w2 - w1`` obey
``tau du/dt = u (lam - k w)`` and ``tau dv/dt = -v (lam - k w)`` with ``k = lam + eps``, so ``y`` and ``z``
follow constant-coefficient Riccati equations, e.g. ``tau dy/dt = -k y^2 + 2 lam y + k c^2 / 4`` with the
conserved ``c = w2^2 - w1^2 = u v``. Their solution is a Moebius map whose matrix is
``exp(s M)``, ``s = t / tau``, ``M^2 = R^2 I``, ``R = sqrt(lam^2 + k^2 c^2 / 4)``; scaled by ``exp(-R s)``
every entry is a bounded combination of the *decaying* ``q = exp(-2 R s)`` and
``h = (1 - q) / (2 R) = s * expm1_ratio(-2 R s)``, which are analytic in ``c^2`` (no singularity at
the balanced point) and finite for every ``t >= 0``. Writing ``P11 = (1 + q)/2 + h lam``,
``P22 = q + h (R - lam)``, ``A = P11 + h k z0``, ``B = P22 + h k y0``:

    y(t) = y0 A / B,    z(t) = z0 B / A,    w(t) = (y - z) / 2 = N / (A B)

where ``N`` is expanded (see ``_dae_state``) into non-negative terms plus a single term that
changes sign only when the trajectory crosses ``w = 0``. ``w1`` and ``w2`` follow from
``u(t) = u0 sqrt(A / B)`` and ``v(t) = v0 sqrt(B / A)`` (:func:`dae_weights`).

**Gradients.** Across the saddle line ``w1 = -w2`` the solution is genuinely steep (its curvature
grows like ``exp(2 lam t / tau)``) while ``B`` is as small as ``q``. The divisions by ``B`` use
:func:`~daedyn._numerics.scaled_div` (no ``B^2`` in the quotient rule) and the partial derivatives of
``w`` are formed in forward mode (a ``custom_jvp``), so that reverse mode never multiplies an
overflowing partial by an exact 0: first derivatives are finite for every in-range input and time.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import check_broadcastable, check_finite, check_range, renamed
from daedyn._numerics import expm1_ratio, safe_div, safe_sqrt, scaled_div
from daedyn.schedules import is_schedule, require_piecewise
from daedyn.theory._args import (
    align,
    check_fits,
    check_start,
    direction_moments,
    finite_result,
    mark_invalid,
    prepare,
)
from daedyn.theory._schedule import _compose, _full, _lead, schedule_pieces

__all__ = ["dae_trajectory", "dae_weights", "dae_learning_time"]


def _dae_state(s, lam, eps, w1, w2):
    """Shared pieces of the hyperbolic solution (see the module docstring).

    Evaluated in units of ``k = lam + eps``: the flow is unchanged when lam and eps are divided by k
    and the time multiplied by k, so ``lam / k`` and ``k = 1`` enter the squares below and a lam of
    1e30 stays inside float32 (``lam**2`` would overflow). ``k = 0`` (lam = eps = 0) keeps its units.
    """
    k = lam + eps
    unit = jnp.where(k > 0, k, 1.0)
    s = s * unit
    lam = lam / unit
    k = k / unit
    u0 = w1 + w2
    v0 = w2 - w1
    y0 = 0.5 * u0 * u0
    z0 = 0.5 * v0 * v0
    c = u0 * v0  # = w2^2 - w1^2, conserved
    kc2 = 0.25 * (k * c) ** 2  # = R^2 - lam^2
    r2 = lam * lam + kc2
    # R = sqrt(lam^2 + k^2 c^2 / 4); where R = 0 (lam = 0 and k c = 0) take the value lam, whose
    # derivative is the one-sided d/dlam (the solution is even in R, so nothing else is lost).
    big_r = safe_sqrt(r2, at_zero=lam)
    lam_plus_r = lam + big_r
    # R - lam without cancellation; scaled_div: lam + R can be ~1e-20 (lam / (lam + eps) tiny), where
    # the quotient rule's (lam + R)**2 underflows and made every float32 gradient 0 / 0 = NaN
    lpr_pos = lam_plus_r > 0
    r_minus_lam = jnp.where(lpr_pos, scaled_div(kc2, jnp.where(lpr_pos, lam_plus_r, 1.0)), 0.0)
    # s * k may overflow (t / tau = 1e9, k = 1e30 in float32): clamp it so that x = 2 R s stays finite;
    # the clamped time is one at which exp(-x) has long underflowed, so w is at its limit either way.
    # The bound carries no derivative: d(bound)/d(lam) ~ sqrt(max) / R^2 overflows for a tiny R
    # (lam / (lam + eps) = 1e-13, balanced start), and jnp.minimum's derivative multiplies it by the
    # 0 of the branch not taken (inf * 0 = NaN in every gradient). Where the clamp binds, w sits
    # at its limit, whose derivative through s is 0 anyway.
    bound = jax.lax.stop_gradient(safe_div(jnp.sqrt(jnp.finfo(s.dtype).max), big_r, jnp.inf))
    s = jnp.minimum(s, bound)  # x <= 2 sqrt(max)
    x = 2.0 * big_r * s
    q = jnp.exp(-x)
    h = s * expm1_ratio(-x)  # (1 - q) / (2 R), = s at R = 0
    hk = h * k
    hl = h * lam
    m = h * r_minus_lam
    half = 0.5 * (1.0 + q)
    p11 = half + hl
    p22 = q + m
    a = p11 + hk * z0  # >= 1/2
    b = p22 + hk * y0  # >= q >= 0; 0 only at the saddle (y0 = 0, c = 0) once q underflows
    # w = (y0 A^2 - z0 B^2) / (2 A B) = (N+ - z0 q (m + q/2)) / (A B), expanded so that N+ has only
    # non-negative terms; the one negative term dominates only before w changes sign (negative
    # initial products). Dividing by B term by term keeps q (not q^2, which underflows first) in the
    # saddle's decay -z0 q / (2 A).
    cy = hl * half + 0.5 * q + hl * hl
    n_plus = y0 * cy + z0 * hl * m + 2.0 * hl * hk * y0 * z0
    b_pos = b > 0
    b_safe = jnp.where(b_pos, b, 1.0)
    # scaled_div: on the saddle line B ~ q is tiny (2 R t / tau > 44 in float32, > 370 in float64) and
    # the quotient rule's B^2 underflows; plain division made the gradients 0 * inf = NaN there.
    w = jnp.where(b_pos, (scaled_div(n_plus, b_safe) - z0 * q * scaled_div(m + 0.5 * q, b_safe)) / a, 0.0)
    return dict(u0=u0, v0=v0, a=a, b=b, w=w)


def _dae_w(s, lam, eps, w1, w2):
    return _dae_state(s, lam, eps, w1, w2)["w"]


@jax.custom_jvp
def _dae_w_fwd(s, lam, eps, w1, w2):
    """``w(s)`` whose derivatives are formed in forward mode, also under ``jax.grad``.

    Near the saddle line (``w1 = -w2``, ``B ~ q`` tiny) the partial derivatives of ``w`` with respect
    to the intermediates ``m``, ``c^2`` are ~ 1/q (they are the genuine curvature across the line, ~
    exp(2 R t / tau)), while the derivative of ``c^2`` with respect to the weights is 0 there. Reverse
    mode multiplies in the order (1/q) * 0, which overflows to inf * 0 = NaN once 1/q exceeds the
    float range (float32 from ``2 R t / tau`` ~ 77 when lam = 1e-3); forward mode multiplies 0 first.
    The rule returns the five elementwise partials (``jax.jvp`` of the plain expression) times the
    tangents, so reverse mode only transposes ``ct * partial``.
    """
    return _dae_w(s, lam, eps, w1, w2)


@_dae_w_fwd.defjvp
def _dae_w_fwd_jvp(primals, tangents):
    out = _dae_w_fwd(*primals)
    k = len(primals)
    eye = jnp.eye(k, dtype=out.dtype)
    # one-hot tangents, each of its primal's shape (the arguments share a rank, not a shape)
    basis = [jnp.broadcast_to(eye[:, i].reshape((k,) + (1,) * x.ndim), (k,) + x.shape)
             for i, x in enumerate(primals)]
    partials = jax.vmap(lambda *e: jax.jvp(_dae_w, primals, e)[1])(*basis)  # (k, *out.shape)
    dout = sum(partials[i] * dx for i, dx in enumerate(tangents))
    return out, dout


def _lists_as_arrays(*args):
    """Python lists and tuples as NumPy arrays (a jitted function would take them for pytrees of
    scalars); arrays, numbers, schedules and None pass unchanged."""
    import numpy as np

    return [np.asarray(a) if isinstance(a, (list, tuple)) else a for a in args]


def _check_args(lam, eps, w1, w2, tau, **first) -> None:
    """Ranges of the general solution's parameters (concrete values only) and their fit in the
    computation dtype (``first``: the time or fraction argument, checked first)."""
    (name, value), = first.items()
    if name == "t":
        check_range("t", value, 0.0)
    else:
        check_range("fraction", value, 0.0, 1.0, lo_open=True, hi_open=True)
    check_range("lam", lam, 0.0)
    check_range("eps", eps, 0.0)
    check_range("tau", tau, 0.0, lo_open=True)
    check_finite("w1", w1)
    check_finite("w2", w2)
    dtype = check_fits(**first, lam=lam, eps=eps, w1=w1, w2=w2, tau=tau)
    check_start(w1, w2, dtype)


@jax.jit
def _dae_trajectory_impl(t, lam, eps, w1, w2, tau):
    (t, lam, eps, w1, w2, tau), shape = align(t=t, lam=lam, eps=eps, w1=w1, w2=w2, tau=tau)
    w = _dae_w_fwd(t / tau, lam, eps, w1, w2)
    valid = (t >= 0) & (lam >= 0) & (eps >= 0) & (tau > 0)
    return jnp.broadcast_to(mark_invalid(w, valid), shape)


@jax.jit
def _dae_moments_impl(t, k, m, w1, w2, tau):
    """Eq. (5) in a direction's coefficients ``(k, m)``, any sign of k: with ``k < 0`` the pair
    ``(w1, -w2)`` follows the flow of ``-k`` (the map ``w2 -> -w2`` turns ``tau dw1/dt = w2 (k - m w)``,
    ``tau dw2/dt = w1 (k - m w)`` into the same equations with ``k -> -k``), so ``w = -w(-k; w1, -w2)``."""
    (t, k, m, w1, w2, tau), shape = align(t=t, k=k, m=m, w1=w1, w2=w2, tau=tau)
    neg = k < 0
    lam = jnp.where(neg, -k, k)
    sign = jnp.where(neg, -1.0, 1.0)
    w = sign * _dae_w_fwd(t / tau, lam, m - lam, w1, sign * w2)
    valid = (t >= 0) & (m > 0) & (tau > 0)
    return jnp.broadcast_to(mark_invalid(w, valid), shape)


def dae_trajectory(t: ArrayLike, lam: ArrayLike, eps: ArrayLike, w1: ArrayLike, w2: ArrayLike,
                   tau: ArrayLike = 1.0, *, noise=None, n: ArrayLike = 1) -> Array:
    """Mapping ``w(t) = w2(t) w1(t)`` of one eigen-direction of a linear DAE, Eq. (5), any start.

    Exact solution of Eqs. (2)-(3) (no weight decay) from any initial pair ``(w1, w2)``: balanced
    (``w1 = w2``, where Eq. (5) is 0/0 and the solution is the logistic of Eq. (7) with ``gamma = 0``),
    ``w1^2 > w2^2``, negative products (they cross 0 and reach ``lam / (lam + eps)`` unless
    ``w1 = -w2``, which shrinks into the saddle), ``w1 = w2 = 0`` (stays 0), ``eps = 0``, ``eps >> lam``,
    ``lam = 0``, and any ``t >= 0`` (1e9 tau included). Continuous in every argument; finite values and
    gradients for all in-range inputs. Evaluated without ``exp`` of a growing argument, see the
    module docstring. Broadcasts over all arguments.

    Args:
      t: time in epochs, >= 0.
      lam: eigenvalue of Sigma (a sum over the n samples), >= 0.
      eps: noise level ``n s^2``, >= 0, or a piecewise-constant schedule
        (:func:`daedyn.schedules.piecewise_constant`; exact, docs/schedules.md).
      w1, w2: initial weights of the direction, any finite reals.
      tau: time constant ``n / alpha``, > 0.
      noise: instead of ``eps`` (pass ``eps=None``), a value with a method
        ``direction_moments(lam, n) -> (k, m)`` (as in :func:`small_init_trajectory`; e.g.
        :class:`daedyn.diffusion.Objective`): the flow
        ``tau dw1/dt = w2 (k - m w)``, ``tau dw2/dt = w1 (k - m w)`` with ``k`` of any sign. With
        ``k < 0`` the fixed point ``k / m`` is negative: every start off the line ``w1 = w2`` reaches
        it (its anti-aligned part ``w2 - w1`` grows), while a balanced start decays to 0.
      n: number of samples N, > 0 (used with ``noise`` only: its coefficients depend on it).
    Returns:
      ``w(t)``, with the broadcast shape and floating dtype of the inputs.
    Raises:
      ValueError: for concrete out-of-range values or shapes that do not broadcast (traced
        out-of-range values give NaN in their element instead).
    Example:
      >>> print(round(float(dae_trajectory(1e6, 1.0, 1.0, 0.3, -1.2)), 6))  # fixed point lam/(lam+eps)
      0.5
      >>> print(float(dae_trajectory(50.0, 1.0, 0.0, 1.0, -1.0)) == 0.0)  # w1 = -w2: into the saddle
      True
    """
    t, lam, eps, w1, w2, tau, n = _lists_as_arrays(t, lam, eps, w1, w2, tau, n)
    if noise is not None:
        return _dae_with_moments(t, lam, eps, w1, w2, tau, n, noise)
    if is_schedule(eps):  # a piecewise-constant schedule: exact, chained per piece
        return dae_scheduled(t, lam, eps, w1, w2, tau)
    _check_args(lam, eps, w1, w2, tau, t=t)
    return finite_result("dae_trajectory", _dae_trajectory_impl(t, lam, eps, w1, w2, tau))


def _dae_with_moments(t, lam, eps, w1, w2, tau, n, noise) -> Array:
    if eps is not None:
        raise ValueError("dae_trajectory takes eps or noise, not both (pass eps=None with noise=)")
    if is_schedule(tau):
        raise ValueError("dae_trajectory with noise= takes a constant tau (no schedules)")
    check_range("t", t, 0.0)
    check_range("lam", lam, 0.0)
    check_range("tau", tau, 0.0, lo_open=True)
    check_finite("w1", w1)
    check_finite("w2", w2)
    check_range("n", n, 0.0, lo_open=True)
    k, m = direction_moments(noise, lam, n)
    check_broadcastable(t=t, k=k, w1=w1, w2=w2, tau=tau)
    return finite_result("dae_trajectory", _dae_moments_impl(t, k, m, w1, w2, tau))


@jax.jit
def _dae_weights_impl(t, lam, eps, w1, w2, tau):
    t, lam, eps, w1, w2, tau = prepare(t=t, lam=lam, eps=eps, w1=w1, w2=w2, tau=tau)
    st = _dae_state(t / tau, lam, eps, w1, w2)
    a, b = st["a"], st["b"]
    # u0 = 0 with b = 0 (the saddle line, q underflowed): u stays exactly 0. The divisions are scaled
    # (scaled_div) and sqrt(B / A) has a finite derivative at B = 0 (safe_sqrt), so that no 0 * inf
    # turns the gradients into NaN where B is tiny or 0.
    b_pos = b > 0
    u = jnp.where(b_pos, scaled_div(st["u0"] * jnp.sqrt(a), jnp.sqrt(jnp.where(b_pos, b, 1.0))), 0.0)
    v = st["v0"] * safe_sqrt(b / a)
    valid = (t >= 0) & (lam >= 0) & (eps >= 0) & (tau > 0)
    return mark_invalid(0.5 * (u - v), valid), mark_invalid(0.5 * (u + v), valid)


def dae_weights(t: ArrayLike, lam: ArrayLike, eps: ArrayLike, w1: ArrayLike, w2: ArrayLike,
                tau: ArrayLike = 1.0) -> tuple[Array, Array]:
    """The individual weights ``(w1(t), w2(t))`` of the solution of Eqs. (2)-(3), any start.

    ``u = w1 + w2`` and ``v = w2 - w1`` never change sign (``tau du/dt = u (lam - k w)``); the closed
    form gives ``u(t) = u0 sqrt(A / B)``, ``v(t) = v0 sqrt(B / A)`` (module docstring), hence
    ``w1 = (u - v) / 2`` and ``w2 = (u + v) / 2``. ``w2^2 - w1^2 = u v`` stays constant, and
    ``w1(t) w2(t) = dae_trajectory(...)``. Figures plot ``||w||^2 = w1^2 + w2^2``.

    Args: as :func:`dae_trajectory`.
    Returns:
      ``(w1(t), w2(t))``, each with the broadcast shape and floating dtype of the inputs.
    Raises:
      ValueError: as :func:`dae_trajectory`.
    Example:
      >>> w1, w2 = dae_weights(1e6, 1.0, 0.0, 0.5, 1.5)
      >>> print(round(float(w1 * w2), 6), round(float(w2**2 - w1**2), 6))  # w* = 1, c conserved
      1.0 2.0
    """
    t, lam, eps, w1, w2, tau = _lists_as_arrays(t, lam, eps, w1, w2, tau)
    _check_args(lam, eps, w1, w2, tau, t=t)
    return finite_result("dae_weights", _dae_weights_impl(t, lam, eps, w1, w2, tau))


@jax.jit
def _dae_trajectory_printed_impl(t, lam, eps, w1, w2, tau):
    t, lam, eps, w1, w2, tau = prepare(t=t, lam=lam, eps=eps, w1=w1, w2=w2, tau=tau)
    c0 = jnp.abs(w2 * w2 - w1 * w1)
    w0 = w1 * w2
    beta = c0 * (1.0 + eps / lam)
    zeta = jnp.sqrt(beta * beta + 4.0)
    delta = jnp.tanh(0.5 * jnp.arcsinh(2.0 * w0 / c0))
    e = jnp.exp(zeta * lam * t / tau)
    num = (1.0 - e) * (zeta * zeta - beta * beta - 2.0 * beta * delta) - 2.0 * (1.0 + e) * zeta * delta
    den = (1.0 - e) * (2.0 * beta + 4.0 * delta) - 2.0 * (1.0 + e) * zeta
    theta = 2.0 * jnp.arctanh(num / den)
    return 0.5 * c0 * jnp.sinh(theta)


def dae_trajectory_printed(t: ArrayLike, lam: ArrayLike, eps: ArrayLike, w1: ArrayLike,
                           w2: ArrayLike, tau: ArrayLike = 1.0) -> Array:
    """Eq. (5) evaluated literally as printed, for comparison and benchmarks only.

    ``w = c0/2 sinh(theta_t)``, ``theta_t = 2 atanh[((1-E)(zeta^2 - beta^2 - 2 beta delta)
    - 2 (1+E) zeta delta) / ((1-E)(2 beta + 4 delta) - 2 (1+E) zeta)]`` with ``c0 = |w2^2 - w1^2|``,
    ``beta = c0 (1 + eps/lam)``, ``zeta = sqrt(beta^2 + 4)``, ``delta = tanh(theta_0 / 2)``,
    ``theta_0 = asinh(2 w0 / c0)`` and ``E = exp(zeta lam t / tau)``. It overflows for large
    ``zeta lam t / tau``, is 0/0 at ``w1^2 = w2^2`` and is inaccurate for negative products:
    use :func:`dae_trajectory`. No input checks.

    Example:
      >>> print(round(float(dae_trajectory_printed(1.0, 1.0, 1.0, 0.2, 1.0)), 5))  # where it is finite
      0.4746
      >>> print(round(float(dae_trajectory(1.0, 1.0, 1.0, 0.2, 1.0)), 5))
      0.4746
      >>> print(float(dae_trajectory_printed(100.0, 1.0, 1.0, 0.2, 1.0)))  # E overflows
      nan
    """
    return _dae_trajectory_printed_impl(t, lam, eps, w1, w2, tau)


@jax.jit
def _dae_learning_time_impl(f, lam, eps, w1, w2, tau):
    f, lam, eps, w1, w2, tau = prepare(f=f, lam=lam, eps=eps, w1=w1, w2=w2, tau=tau)
    k = lam + eps
    unit = jnp.where(k > 0, k, 1.0)  # in units of k (as _dae_state): no lam**2 overflow
    lam, k = lam / unit, k / unit
    u0 = w1 + w2
    v0 = w2 - w1
    c = u0 * v0
    c2q = 0.25 * c * c
    w0 = w1 * w2
    y0 = 0.5 * u0 * u0
    q0 = 0.5 * (w1 * w1 + w2 * w2)  # sqrt(w0^2 + c^2/4)
    lam_pos = lam > 0
    w_star = safe_div(lam, k, 0.0, where=lam_pos)
    wf = f * w_star
    ahead = w0 >= wf
    ok = lam_pos & ~ahead & (y0 > 0)
    one = jnp.ones_like(lam)
    r = jnp.sqrt(jnp.where(ok, lam * lam + k * k * c2q, one))
    ws = jnp.where(ok, w_star, one)
    wf_s = jnp.where(ok, wf, 0.5 * one)
    qs = jnp.sqrt(ws * ws + c2q)
    qf = jnp.sqrt(wf_s * wf_s + c2q)
    y_plus = ws + qs
    y_f = wf_s + qf
    y_minus_abs = k * c2q / jnp.where(ok, lam + r, one)  # -y_minus >= 0
    y0_s = jnp.where(ok, y0, one)
    gap0 = jnp.where(ok, ws - w0, one)
    log_ratio = (jnp.log(gap0) - jnp.log((1.0 - f) * ws)
                 + jnp.log(y_plus + y0_s) - jnp.log(y_plus + y_f)
                 + jnp.log(qs + qf) - jnp.log(jnp.where(ok, qs + q0, one))
                 + jnp.log(y_f + y_minus_abs) - jnp.log(y0_s + y_minus_abs))
    t = 0.5 * (tau / unit) / r * log_ratio
    out = jnp.where(ok, t, jnp.where(lam_pos & ahead, 0.0, jnp.inf))
    valid = (f > 0) & (f < 1) & (lam >= 0) & (eps >= 0) & (tau > 0)
    return mark_invalid(out, valid)


@renamed(f="fraction")
def dae_learning_time(fraction: ArrayLike, lam: ArrayLike, eps: ArrayLike, w1: ArrayLike, w2: ArrayLike,
                      tau: ArrayLike = 1.0) -> Array:
    """Time for the general solution (Eq. 5, any ``(w1, w2)``) to reach ``f lam / (lam + eps)``, f the
    ``fraction`` in (0, 1) (the keyword ``f`` is deprecated).

    ``w(t)`` is monotone towards ``w* = lam / k``, so the time is unique. In ``y = w + sqrt(w^2 + c^2/4)``
    the Riccati solution gives ``t = tau / (2 R) log[(y+ - y0)(yf - y-) / ((y+ - yf)(y0 - y-))]`` with
    roots ``y+- = (lam +- R) / k``; each difference is rewritten without cancellation. 0 if
    ``w(0) >= f w*``; ``inf`` on the saddle line (``w1 = -w2``) and for ``lam = 0``.

    Example:
      >>> t = dae_learning_time(0.9, 1.0, 1.0, 0.1, -0.8)
      >>> round(float(dae_trajectory(t, 1.0, 1.0, 0.1, -0.8)), 6)  # 0.9 * 0.5
      0.45
    """
    f, lam, eps, w1, w2, tau = _lists_as_arrays(fraction, lam, eps, w1, w2, tau)
    _check_args(lam, eps, w1, w2, tau, f=f)
    return finite_result("dae_learning_time", _dae_learning_time_impl(f, lam, eps, w1, w2, tau),
                         allow_inf=True)


# ----------------------------------------------------------------------------------------------
# A piecewise-constant eps schedule: Eq. (5) chained over the pieces (theory/_schedule.py)


@jax.jit
def _dae_pieces_impl(t, lam, eps_p, w1, w2, tau, boundaries):
    dtype = jnp.result_type(t, lam, eps_p, w1, w2, tau, boundaries, 0.0)
    shape = jnp.broadcast_shapes(jnp.shape(t), jnp.shape(lam), jnp.shape(w1), jnp.shape(w2), jnp.shape(tau),
                                 eps_p.shape[1:])
    t, lam, w1, w2, tau = _full(shape, dtype, t, lam, w1, w2, tau)
    eps_p = _lead(eps_p, boundaries.shape[0] + 1, shape, dtype)
    m = math.prod(shape)  # one parameter set per output element
    flat = lambda a: a.reshape(a.shape[:a.ndim - len(shape)] + (m,))

    def start(state, eps):
        return state, eps, flat(lam), flat(tau)

    def step(elapsed, record):
        (w1, w2), eps, lam_, tau_ = record
        return _dae_weights_impl(elapsed, lam_, eps, w1, w2, tau_)

    def final(elapsed, record):
        # the last piece through the forward-mode form of Eq. (5) (finite gradients on the saddle line)
        (w1, w2), eps, lam_, tau_ = record
        return _dae_w_fwd(elapsed / tau_, lam_, eps, w1, w2)

    owner = jnp.arange(m, dtype=jnp.int32).reshape(shape)
    w = _compose(start, step, (flat(w1), flat(w2)), (flat(eps_p),), boundaries, t, owner, final)
    valid = (t >= 0) & (lam >= 0) & jnp.all(eps_p >= 0, axis=0) & (tau > 0)
    return mark_invalid(w, valid)


def dae_scheduled(t, lam, eps, w1, w2, tau) -> Array:
    """:func:`daedyn.theory.dae_trajectory` with a piecewise-constant eps schedule (exact, chained)."""
    func = "dae_trajectory"
    require_piecewise("eps", eps, func)
    _check_args(lam, eps.values, w1, w2, tau, t=t)
    boundaries, (eps_p,) = schedule_pieces(eps)
    if boundaries is None:
        return finite_result(func, _dae_trajectory_impl(t, lam, eps_p, w1, w2, tau))
    check_broadcastable(t=t, lam=lam, eps=eps_p[0], w1=w1, w2=w2, tau=tau)
    return finite_result(func, _dae_pieces_impl(t, lam, eps_p, w1, w2, tau, boundaries))
