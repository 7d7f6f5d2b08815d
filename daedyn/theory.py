"""Closed forms of the paper and its supplement, per eigen-direction, numerically safe everywhere.

Conventions (docs/CONTRACTS.md): ``lam`` is an eigenvalue of the *summed* second moment
``Sigma = sum_i x_i x_i^T``, ``eps = N s^2``, ``tau = N / alpha``, ``t`` in epochs, ``gamma`` the weight
decay of Eq. (6) and ``n = N`` (``n = 1`` for the scalar demos). The scalar flow is

    tau dw1/dt = w2 lam (1 - w2 w1) - eps w2^2 w1 - n gamma w1       (Eq. 2, plus weight decay)
    tau dw2/dt = w1 lam (1 - w2 w1) - eps w2 w1^2 - n gamma w2       (Eq. 3, plus weight decay)

and ``w = w2 w1`` is the mapping the network has learned along that direction.

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

**Bad input.** Concrete arguments are checked and raise ``ValueError`` naming the parameter and
its range. Traced arguments (inside ``jit``/``vmap``/``grad``) cannot be checked; there an
out-of-range value (``lam < 0``, ``eps < 0``, ``gamma < 0``, ``tau <= 0``, ``t < 0``, ``w0 < 0``, ``f``
outside (0, 1)) turns *that* output element into NaN, as does a NaN input. No other NaN is
produced: every in-range input gives a finite value and finite gradients.
"""

from __future__ import annotations

import functools as ft
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import check_broadcastable, check_range, concrete
from daedyn._numerics import expm1_ratio, safe_div, safe_sqrt, scaled_div

__all__ = [
    "dae_trajectory",
    "dae_weights",
    "dae_trajectory_printed",
    "small_init_trajectory",
    "fixed_point",
    "equivalent_gamma",
    "optimal_learning_rates",
    "learning_rate_ratio",
    "learning_time",
    "dae_learning_time",
    "scalar_loss",
    "expected_loss",
    "gaussian_eps",
    "laplace_eps",
    "variance_eps",
    "spectrum_mapping",
    "predicted_loss",
]


# --------------------------------------------------------------------------------------------
# helpers


def _prepare(**named) -> list[Array]:
    """Broadcast the named arguments to one shape and one floating dtype (explicitly, so that
    ``jax_numpy_rank_promotion="raise"`` is respected); ValueError naming them if impossible."""
    shape = check_broadcastable(**named)
    arrays = [jnp.asarray(v) for v in named.values()]
    dtype = jnp.result_type(*arrays, 0.0)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"expected real arguments; got dtype {dtype} for {', '.join(named)}")
    return [jnp.broadcast_to(a.astype(dtype), shape) for a in arrays]


def _broadcast_shapes(**shapes) -> tuple[int, ...]:
    """Broadcast shapes given as tuples; ValueError naming them if impossible."""
    try:
        return np.broadcast_shapes(*shapes.values())
    except ValueError:
        desc = ", ".join(f"{k}{tuple(v)}" for k, v in shapes.items())
        raise ValueError(f"shapes do not broadcast together: {desc}") from None


def _mark_invalid(out: Array, valid: Array) -> Array:
    """NaN where a (traced) input was out of range; concrete inputs were already checked."""
    return jnp.where(valid, out, jnp.asarray(jnp.nan, out.dtype))


def _check_finite(name: str, x) -> None:
    """ValueError if concrete ``x`` contains NaN or +-inf (tracers pass)."""
    v = concrete(x)
    if v is not None and v.size and not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite; got {v[~np.isfinite(v)].flat[0]!r}")


# --------------------------------------------------------------------------------------------
# the general solution, Eq. (5)


def _dae_state(s, lam, eps, w1, w2):
    """Shared pieces of the hyperbolic solution (see the module docstring)."""
    k = lam + eps
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
    r_minus_lam = safe_div(kc2, lam_plus_r, 0.0, where=lam_plus_r > 0)  # R - lam, no cancellation
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


def _validate_dae(t, lam, eps, w1, w2, tau) -> None:
    check_range("t", t, 0.0)
    check_range("lam", lam, 0.0)
    check_range("eps", eps, 0.0)
    check_range("tau", tau, 0.0, lo_open=True)
    _check_finite("w1", w1)
    _check_finite("w2", w2)


def _align(**named) -> tuple[list[Array], tuple[int, ...]]:
    """Like :func:`_prepare` but only to a common rank and dtype (leading size-1 axes), not to the
    broadcast shape, which is returned: quantities that depend only on some arguments (everything
    but ``t`` in Eq. (5)) are then computed once per distinct value, not once per output element."""
    shape = check_broadcastable(**named)
    arrays = [jnp.asarray(v) for v in named.values()]
    dtype = jnp.result_type(*arrays, 0.0)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"expected real arguments; got dtype {dtype} for {', '.join(named)}")
    return [a.astype(dtype).reshape((1,) * (len(shape) - a.ndim) + a.shape) for a in arrays], shape


@jax.jit
def _dae_trajectory_impl(t, lam, eps, w1, w2, tau):
    (t, lam, eps, w1, w2, tau), shape = _align(t=t, lam=lam, eps=eps, w1=w1, w2=w2, tau=tau)
    w = _dae_w_fwd(t / tau, lam, eps, w1, w2)
    valid = (t >= 0) & (lam >= 0) & (eps >= 0) & (tau > 0)
    return jnp.broadcast_to(_mark_invalid(w, valid), shape)


def dae_trajectory(t: ArrayLike, lam: ArrayLike, eps: ArrayLike, w1: ArrayLike, w2: ArrayLike,
                   tau: ArrayLike = 1.0) -> Array:
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
      eps: noise level ``n s^2``, >= 0.
      w1, w2: initial weights of the direction, any finite reals.
      tau: time constant ``n / alpha``, > 0.
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
    _validate_dae(t, lam, eps, w1, w2, tau)
    return _dae_trajectory_impl(t, lam, eps, w1, w2, tau)


@jax.jit
def _dae_weights_impl(t, lam, eps, w1, w2, tau):
    t, lam, eps, w1, w2, tau = _prepare(t=t, lam=lam, eps=eps, w1=w1, w2=w2, tau=tau)
    st = _dae_state(t / tau, lam, eps, w1, w2)
    a, b = st["a"], st["b"]
    # u0 = 0 with b = 0 (the saddle line, q underflowed): u stays exactly 0. The divisions are scaled
    # (scaled_div) and sqrt(B / A) has a finite derivative at B = 0 (safe_sqrt), so that no 0 * inf
    # turns the gradients into NaN where B is tiny or 0.
    b_pos = b > 0
    u = jnp.where(b_pos, scaled_div(st["u0"] * jnp.sqrt(a), jnp.sqrt(jnp.where(b_pos, b, 1.0))), 0.0)
    v = st["v0"] * safe_sqrt(b / a)
    valid = (t >= 0) & (lam >= 0) & (eps >= 0) & (tau > 0)
    return _mark_invalid(0.5 * (u - v), valid), _mark_invalid(0.5 * (u + v), valid)


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
    _validate_dae(t, lam, eps, w1, w2, tau)
    return _dae_weights_impl(t, lam, eps, w1, w2, tau)


@jax.jit
def _dae_trajectory_printed_impl(t, lam, eps, w1, w2, tau):
    t, lam, eps, w1, w2, tau = _prepare(t=t, lam=lam, eps=eps, w1=w1, w2=w2, tau=tau)
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


# --------------------------------------------------------------------------------------------
# the balanced solution with noise and weight decay, Eq. (7) generalised


@jax.jit
def _small_init_trajectory_impl(t, lam, eps, gamma, w0, tau, n):
    t, lam, eps, gamma, w0, tau, n = _prepare(t=t, lam=lam, eps=eps, gamma=gamma, w0=w0, tau=tau, n=n)
    s = t / tau
    a = lam - n * gamma
    k = lam + eps
    x = 2.0 * a * s
    grow = a > 0
    xp = jnp.where(grow, x, 0.0)  # x > 0: divide through by e^x
    xn = jnp.where(grow, 0.0, x)  # x <= 0: e^x already decays
    two_skw = 2.0 * s * k * w0
    w_grow = w0 / (jnp.exp(-xp) + two_skw * expm1_ratio(-xp))
    w_decay = w0 * jnp.exp(xn) / (1.0 + two_skw * expm1_ratio(xn))
    w = jnp.where(grow, w_grow, w_decay)
    valid = (t >= 0) & (lam >= 0) & (eps >= 0) & (gamma >= 0) & (w0 >= 0) & (tau > 0) & (n > 0)
    return _mark_invalid(w, valid)


def _check_small_init(lam, eps, gamma, w0, tau, n) -> None:
    """Ranges of the balanced small-start solution's parameters (concrete values only)."""
    check_range("lam", lam, 0.0)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    check_range("w0", w0, 0.0)
    check_range("tau", tau, 0.0, lo_open=True)
    check_range("n", n, 0.0, lo_open=True)


def small_init_trajectory(t: ArrayLike, lam: ArrayLike, eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0, *,
                          w0: ArrayLike, tau: ArrayLike = 1.0, n: ArrayLike = 1) -> Array:
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
      eps: noise level ``n s^2``, >= 0.
      gamma: weight decay of Eq. (6), >= 0.
      w0: initial mapping ``w1(0) w2(0) = w1(0)^2``, >= 0 (keyword only).
      tau: time constant ``n / alpha``, > 0.
      n: number of samples N (1 for the scalar demos), > 0.
    Returns:
      ``w(t)``, with the broadcast shape and floating dtype of the inputs.
    Raises:
      ValueError: for concrete out-of-range values or shapes that do not broadcast (traced
        out-of-range values give NaN in their element instead).
    Example:
      >>> float(small_init_trajectory(1e4, lam=1.0, eps=1.0, w0=1e-6))  # fixed point lam / (lam + eps)
      0.5
    """
    check_range("t", t, 0.0)
    _check_small_init(lam, eps, gamma, w0, tau, n)
    return _small_init_trajectory_impl(t, lam, eps, gamma, w0, tau, n)


# --------------------------------------------------------------------------------------------
# fixed points, equivalent weight decay, learning rates (section 5, supplement D-E)


@jax.jit
def _fixed_point_impl(lam, eps, gamma, n):
    lam, eps, gamma, n = _prepare(lam=lam, eps=eps, gamma=gamma, n=n)
    a = lam - n * gamma
    w = safe_div(a, lam + eps, 0.0, where=a > 0)
    return _mark_invalid(w, (lam >= 0) & (eps >= 0) & (gamma >= 0) & (n > 0))


def fixed_point(lam: ArrayLike, eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0, n: ArrayLike = 1) -> Array:
    """Balanced fixed point ``max(0, (lam - n gamma) / (lam + eps))`` (section 4, supplement E).

    With ``gamma = 0`` it is ``w* = lam / (lam + eps)``, also the limit of :func:`dae_trajectory` from
    any start off the saddle line ``w1 = -w2``. 0 where ``lam + eps = 0``.

    Example:
      >>> [round(float(fixed_point(1.0, e)), 4) for e in (0.0, 1.0, 5.0)]
      [1.0, 0.5, 0.1667]
    """
    check_range("lam", lam, 0.0)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    check_range("n", n, 0.0, lo_open=True)
    return _fixed_point_impl(lam, eps, gamma, n)


@jax.jit
def _equivalent_gamma_impl(lam, eps, n):
    lam, eps, n = _prepare(lam=lam, eps=eps, n=n)
    k = lam + eps
    g = safe_div(lam * eps, n * k, 0.0, where=k > 0)
    return _mark_invalid(g, (lam >= 0) & (eps >= 0) & (n > 0))


def equivalent_gamma(lam: ArrayLike, eps: ArrayLike, n: ArrayLike = 1) -> Array:
    """Weight decay with the same fixed point as noise ``eps``: ``lam eps / (n (lam + eps))``.

    Section 5 and supplement E (there ``n = 1``): ``1 - n gamma / lam = lam / (lam + eps)``.
    0 where ``lam + eps = 0``.

    Example:
      >>> round(float(equivalent_gamma(1.0, 0.1)), 4)
      0.0909
    """
    check_range("lam", lam, 0.0)
    check_range("eps", eps, 0.0)
    check_range("n", n, 0.0, lo_open=True)
    return _equivalent_gamma_impl(lam, eps, n)


@ft.partial(jax.jit, static_argnames=('convention',))
def _optimal_learning_rates_impl(lam, eps, gamma, tau, n, convention):
    lam, eps, gamma, tau, n = _prepare(lam=lam, eps=eps, gamma=gamma, tau=tau, n=n)
    mult = 1.0 if convention == "supplement" else 2.0
    d_eps = 2.0 * lam + 3.0 * eps
    d_gamma = 2.0 * lam + mult * n * gamma
    valid = (lam >= 0) & (eps >= 0) & (gamma >= 0) & (tau > 0) & (n > 0)
    a_eps = safe_div(tau, d_eps, jnp.inf, where=d_eps > 0)
    a_gamma = safe_div(tau, d_gamma, jnp.inf, where=d_gamma > 0)
    return _mark_invalid(a_eps, valid), _mark_invalid(a_gamma, valid)


@jax.jit
def _learning_rate_ratio_impl(lam, eps, gamma, n):
    lam, eps, gamma, n = _prepare(lam=lam, eps=eps, gamma=gamma, n=n)
    den = 2.0 * lam + 3.0 * eps
    r = safe_div(2.0 * lam + n * gamma, den, 1.0, where=den > 0)
    return _mark_invalid(r, (lam >= 0) & (eps >= 0) & (gamma >= 0) & (n > 0))


def optimal_learning_rates(lam: ArrayLike, eps: ArrayLike, gamma: ArrayLike, tau: ArrayLike = 1.0, *,
                           n: ArrayLike = 1,
                           convention: Literal["supplement", "experiment"] = "supplement",
                           ) -> tuple[Array, Array]:
    """Optimal (inverse largest Hessian eigenvalue) rates ``(alpha_eps, alpha_gamma)``, supplement D.

    ``alpha_eps = tau / (2 lam + 3 eps)`` (Hessian of Eq. (4) at ``w1 = w2 = 1``) and, with the
    supplement's formula, ``alpha_gamma = tau / (2 lam + n gamma)``. The authors' Figure 3
    experiment instead used ``alpha_gamma = tau / (2 lam + 2 n gamma)`` (their WDAE rate
    ``0.005 (lam + eps) / (2 lam (lam + 2 eps))`` at the equivalent gamma; figure-settings.md):
    select it with ``convention="experiment"``. ``tau = 1`` gives the rates as plotted.

    Example:
      >>> [round(float(a), 4) for a in optimal_learning_rates(1.0, 1.0, 0.5)]
      [0.2, 0.4]
    """
    check_range("lam", lam, 0.0)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    check_range("tau", tau, 0.0, lo_open=True)
    check_range("n", n, 0.0, lo_open=True)
    if convention not in ("supplement", "experiment"):
        raise ValueError(f"convention must be 'supplement' or 'experiment'; got {convention!r}")
    return _optimal_learning_rates_impl(lam, eps, gamma, tau, n, convention)


def learning_rate_ratio(lam: ArrayLike, eps: ArrayLike, gamma: ArrayLike, *, n: ArrayLike = 1) -> Array:
    """Ratio of the optimal DAE to WDAE rates, Eq. (8): ``R = (2 lam + n gamma) / (2 lam + 3 eps)``.

    1 where both are 0 (``lam = eps = gamma = 0``).

    Example:
      >>> g = equivalent_gamma(1.0, 1.0)
      >>> round(float(learning_rate_ratio(1.0, 1.0, g)), 4)  # (2 + 0.5) / (2 + 3)
      0.5
    """
    check_range("lam", lam, 0.0)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    check_range("n", n, 0.0, lo_open=True)
    return _learning_rate_ratio_impl(lam, eps, gamma, n)


# --------------------------------------------------------------------------------------------
# learning times (inverted closed forms)


@jax.jit
def _learning_time_impl(f, lam, eps, gamma, w0, tau, n):
    f, lam, eps, gamma, w0, tau, n = _prepare(f=f, lam=lam, eps=eps, gamma=gamma, w0=w0, tau=tau, n=n)
    a = lam - n * gamma
    k = lam + eps
    kw0 = k * w0
    learnable = (a > 0) & (w0 > 0)
    ahead = kw0 >= f * a  # already at or beyond f w*
    ok = learnable & ~ahead
    a_s = jnp.where(ok, a, 1.0)
    gap = jnp.where(ok, a - kw0, 1.0)
    kw0_s = jnp.where(ok, kw0, 1.0)
    f_s = jnp.where(ok, f, 0.5)
    log_e = jnp.log(f_s) - jnp.log1p(-f_s) + jnp.log(gap) - jnp.log(kw0_s)
    t = 0.5 * tau / a_s * log_e
    out = jnp.where(ok, t, jnp.where(learnable, 0.0, jnp.inf))
    valid = (f > 0) & (f < 1) & (lam >= 0) & (eps >= 0) & (gamma >= 0) & (w0 >= 0) & (tau > 0) & (n > 0)
    return _mark_invalid(out, valid)


def learning_time(f: ArrayLike, lam: ArrayLike, eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0, *,
                  w0: ArrayLike, tau: ArrayLike = 1.0, n: ArrayLike = 1) -> Array:
    """Time for a balanced start to reach the fraction ``f`` of its fixed point.

    Inverts :func:`small_init_trajectory`: with ``a = lam - n gamma > 0``, ``k = lam + eps`` and
    ``w* = a / k``, ``t = tau / (2 a) * log(f (w* - w0) / ((1 - f) w0))``. Returns 0 when
    ``w0 >= f w*`` already, and ``inf`` when the direction is never learned (``a <= 0``, fixed point 0,
    or ``w0 = 0``, the saddle).

    Args:
      f: target fraction of the fixed point, in (0, 1).
      lam, eps, gamma, w0, tau, n: as :func:`small_init_trajectory`.
    Returns:
      time in epochs, broadcast shape and floating dtype of the inputs.
    Example:
      >>> t = learning_time(0.5, 1.0, 1.0, w0=1e-6, tau=100.0)
      >>> round(float(small_init_trajectory(t, 1.0, 1.0, w0=1e-6, tau=100.0)), 6)  # half of w* = 0.5
      0.25
    """
    check_range("f", f, 0.0, 1.0, lo_open=True, hi_open=True)
    _check_small_init(lam, eps, gamma, w0, tau, n)
    return _learning_time_impl(f, lam, eps, gamma, w0, tau, n)


@jax.jit
def _dae_learning_time_impl(f, lam, eps, w1, w2, tau):
    f, lam, eps, w1, w2, tau = _prepare(f=f, lam=lam, eps=eps, w1=w1, w2=w2, tau=tau)
    k = lam + eps
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
    t = 0.5 * tau / r * log_ratio
    out = jnp.where(ok, t, jnp.where(lam_pos & ahead, 0.0, jnp.inf))
    valid = (f > 0) & (f < 1) & (lam >= 0) & (eps >= 0) & (tau > 0)
    return _mark_invalid(out, valid)


def dae_learning_time(f: ArrayLike, lam: ArrayLike, eps: ArrayLike, w1: ArrayLike, w2: ArrayLike,
                      tau: ArrayLike = 1.0) -> Array:
    """Time for the general solution (Eq. 5, any ``(w1, w2)``) to reach ``f lam / (lam + eps)``.

    ``w(t)`` is monotone towards ``w* = lam / k``, so the time is unique. In ``y = w + sqrt(w^2 + c^2/4)``
    the Riccati solution gives ``t = tau / (2 R) log[(y+ - y0)(yf - y-) / ((y+ - yf)(y0 - y-))]`` with
    roots ``y+- = (lam +- R) / k``; each difference is rewritten without cancellation. 0 if
    ``w(0) >= f w*``; ``inf`` on the saddle line (``w1 = -w2``) and for ``lam = 0``.

    Example:
      >>> t = dae_learning_time(0.9, 1.0, 1.0, 0.1, -0.8)
      >>> round(float(dae_trajectory(t, 1.0, 1.0, 0.1, -0.8)), 6)  # 0.9 * 0.5
      0.45
    """
    check_range("f", f, 0.0, 1.0, lo_open=True, hi_open=True)
    check_range("lam", lam, 0.0)
    check_range("eps", eps, 0.0)
    check_range("tau", tau, 0.0, lo_open=True)
    _check_finite("w1", w1)
    _check_finite("w2", w2)
    return _dae_learning_time_impl(f, lam, eps, w1, w2, tau)


# --------------------------------------------------------------------------------------------
# losses and noise levels


@jax.jit
def _scalar_loss_impl(w1, w2, lam, eps, gamma, tau, n):
    w1, w2, lam, eps, gamma, tau, n = _prepare(w1=w1, w2=w2, lam=lam, eps=eps, gamma=gamma, tau=tau, n=n)
    w = w1 * w2
    loss = 0.5 * (lam * (1.0 - w) ** 2 + eps * w * w + n * gamma * (w1 * w1 + w2 * w2)) / tau
    return _mark_invalid(loss, (lam >= 0) & (eps >= 0) & (gamma >= 0) & (tau > 0) & (n > 0))


def scalar_loss(w1: ArrayLike, w2: ArrayLike, lam: ArrayLike, eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0,
                tau: ArrayLike = 1.0, n: ArrayLike = 1) -> Array:
    """Per-direction loss, Eq. (4) plus weight decay (the loss surface of Figure 4).

    ``l = [lam/2 (1 - w2 w1)^2 + eps/2 (w2 w1)^2 + n gamma/2 (w1^2 + w2^2)] / tau``; the flow of
    Eqs. (2)-(3) is ``dw/dt = -grad l``. With ``tau = 1``, ``n = 1`` it is the surface plotted in
    Figures 1 and 4. ``(tau / n) * l`` summed over directions is :func:`expected_loss`.

    Example:
      >>> float(scalar_loss(1.0, 1.0, 1.0, 1.0))  # eps/2 at w = 1
      0.5
    """
    check_range("lam", lam, 0.0)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    check_range("tau", tau, 0.0, lo_open=True)
    check_range("n", n, 0.0, lo_open=True)
    return _scalar_loss_impl(w1, w2, lam, eps, gamma, tau, n)


def expected_loss(w1_mat: ArrayLike, w2_mat: ArrayLike, sigma: ArrayLike, n: ArrayLike,
                  eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0, *, precision=None) -> Array:
    """Expected (noise-marginalised) loss of a linear DAE/WDAE from ``Sigma`` alone.

    ``L = 1/(2n) [tr((I - W) Sigma (I - W)^T) + eps tr(W W^T)] + gamma/2 (||W1||^2 + ||W2||^2)``,
    ``W = W2 W1`` (docs/CONTRACTS.md: the authors' scaling of Eq. (1), whose gradient flow is
    Eqs. (2)-(3)). ``I - W`` is formed first, so the value stays accurate near ``W = I``.

    Args:
      w1_mat: ``W1``, shape (..., H, D).
      w2_mat: ``W2``, shape (..., D, H).
      sigma: summed second moment ``X^T X``, shape (..., D, D).
      n: number of samples N, > 0.
      eps: ``n s^2``, >= 0 (broadcasts over the batch dimensions).
      gamma: weight decay, >= 0.
      precision: ``jax.lax.Precision`` for the matrix products (``"highest"`` for validation on GPUs).
    Returns:
      the loss, shape of the batch dimensions.
    Example:
      >>> import numpy as np
      >>> float(expected_loss(np.eye(2), np.eye(2), np.diag([3.0, 1.0]), n=2, eps=0.5))  # eps*2/(2*2)
      0.25
    """
    check_range("n", n, 0.0, lo_open=True)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    return _expected_loss_impl(w1_mat, w2_mat, sigma, n, eps, gamma, precision)


@ft.partial(jax.jit, static_argnames=("precision",))
def _expected_loss_impl(w1_mat, w2_mat, sigma, n, eps, gamma, precision):
    w1_mat = jnp.asarray(w1_mat)
    w2_mat = jnp.asarray(w2_mat)
    sigma = jnp.asarray(sigma)
    if w1_mat.ndim < 2 or w2_mat.ndim < 2 or sigma.ndim < 2:
        raise ValueError("w1_mat, w2_mat and sigma must be at least 2-d: "
                         "(..., H, D), (..., D, H), (..., D, D)")
    h, d = w1_mat.shape[-2:]
    if w2_mat.shape[-2:] != (d, h) or sigma.shape[-2:] != (d, d):
        raise ValueError(f"shapes do not match: w1_mat (..., H, D) = {w1_mat.shape}, "
                         f"w2_mat (..., D, H) = {w2_mat.shape}, sigma (..., D, D) = {sigma.shape}")
    batch = _broadcast_shapes(w1_mat=w1_mat.shape[:-2], w2_mat=w2_mat.shape[:-2], sigma=sigma.shape[:-2],
                              n=np.shape(n), eps=np.shape(eps), gamma=np.shape(gamma))
    dtype = jnp.result_type(w1_mat, w2_mat, sigma, 0.0)
    w1_mat = jnp.broadcast_to(w1_mat.astype(dtype), batch + (h, d))
    w2_mat = jnp.broadcast_to(w2_mat.astype(dtype), batch + (d, h))
    sigma = jnp.broadcast_to(sigma.astype(dtype), batch + (d, d))
    n, eps, gamma = (jnp.broadcast_to(jnp.asarray(v, dtype), batch) for v in (n, eps, gamma))
    w = jnp.matmul(w2_mat, w1_mat, precision=precision)
    resid = jnp.broadcast_to(jnp.eye(d, dtype=dtype), w.shape) - w
    recon = jnp.sum(jnp.matmul(resid, sigma, precision=precision) * resid, axis=(-2, -1))
    noise = eps * jnp.sum(w * w, axis=(-2, -1))
    decay = 0.5 * gamma * (jnp.sum(w1_mat**2, axis=(-2, -1)) + jnp.sum(w2_mat**2, axis=(-2, -1)))
    loss = 0.5 * (recon + noise) / n + decay
    return _mark_invalid(loss, (n > 0) & (eps >= 0) & (gamma >= 0))


def _eps(name: str, value: ArrayLike, n: ArrayLike, variance) -> Array:
    """``eps = n * variance(value)`` after checking ``value >= 0`` and ``n > 0`` by name."""
    check_range(name, value, 0.0)
    check_range("n", n, 0.0, lo_open=True)
    value, n = _prepare(**{name: value, "n": n})
    return n * variance(value)


def variance_eps(var: ArrayLike, n: ArrayLike) -> Array:
    """``eps = n * var`` for any zero-mean noise with per-component variance ``var`` >= 0.

    Example:
      >>> float(variance_eps(0.5, 4))
      2.0
    """
    return _eps("var", var, n, lambda v: v)


def gaussian_eps(sigma2: ArrayLike, n: ArrayLike) -> Array:
    """``eps = n sigma^2`` for Gaussian noise ``N(0, sigma^2 I)`` (section 3.3).

    Example:
      >>> float(gaussian_eps(0.5, 50000))
      25000.0
    """
    return _eps("sigma2", sigma2, n, lambda v: v)


def laplace_eps(b: ArrayLike, n: ArrayLike) -> Array:
    """``eps = 2 n b^2`` for zero-mean Laplace noise with scale ``b`` >= 0 (section 3.3): its
    per-component variance is 2 b^2.

    Example:
      >>> float(laplace_eps(0.5, 10))
      5.0
    """
    return _eps("b", b, n, lambda b: 2.0 * b * b)


# --------------------------------------------------------------------------------------------
# whole spectra


def _batch_last(x):
    """Give a batch argument a trailing axis for the directions (NumPy, so nothing is dispatched)."""
    x = x if isinstance(x, jax.Array) else np.asarray(x)
    return x[..., None]


def spectrum_mapping(t: ArrayLike, eigvals: ArrayLike, eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0, *,
                     w0: ArrayLike, tau: ArrayLike, n: ArrayLike, hidden: int | None = None) -> Array:
    """Predicted per-direction mapping ``w_j(t)`` for a whole spectrum (small balanced start).

    Applies :func:`small_init_trajectory` to every eigenvalue; with ``hidden = H < D`` only the
    ``H`` leading directions (eigenvalues sorted descending) are learned and the others stay 0.

    Args:
      t, eps, gamma, tau: batch arguments; they broadcast together to a batch shape ``B``.
      eigvals: eigenvalues of Sigma, shape (..., D), sorted descending, >= 0.
      w0: initial mapping, scalar or per direction; broadcasts against the output ``B + (D,)``.
      n: number of training samples N.
      hidden: number of hidden units H (static int) or None for all D directions.
    Returns:
      array of shape ``B + (D,)`` (batch shape broadcast with eigvals' leading dims).
    Example:
      >>> import numpy as np
      >>> w = spectrum_mapping([0.0, 1e5], [2.0, 1.0, 0.5], 1.0, w0=0.01, tau=1.0, n=1, hidden=2)
      >>> np.round(np.asarray(w, np.float64), 4).tolist()  # rows: t = 0 and t -> inf; H = 2 of D = 3
      [[0.01, 0.01, 0.0], [0.6667, 0.5, 0.0]]
    """
    if hidden is not None and (not isinstance(hidden, int | jnp.integer) or hidden < 0):
        raise ValueError(f"hidden must be a non-negative int or None; got {hidden!r}")
    eigvals = jnp.asarray(eigvals)
    if eigvals.ndim < 1:
        raise ValueError(f"eigvals must have a trailing direction axis (..., D); got shape {eigvals.shape}")
    check_broadcastable(t=t, eps=eps, gamma=gamma, tau=tau)
    w = small_init_trajectory(_batch_last(t), eigvals, _batch_last(eps), _batch_last(gamma),
                              w0=w0, tau=_batch_last(tau), n=n)
    return w if hidden is None else _keep_leading(w, hidden)


@ft.partial(jax.jit, static_argnames=("hidden",))
def _keep_leading(w, hidden):
    learned = jnp.arange(w.shape[-1]) < hidden
    return jnp.where(learned, w, jnp.zeros_like(w))


def predicted_loss(t: ArrayLike, eigvals: ArrayLike, projected: ArrayLike, n_eval: ArrayLike, *,
                   eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0, w0: ArrayLike, tau: ArrayLike,
                   n: ArrayLike, hidden: int | None = None) -> Array:
    """Predicted reconstruction loss ``1/(2 n_eval) sum_j (1 - w_j(t))^2 projected_j`` over time.

    ``w_j`` from :func:`spectrum_mapping` (trained on the set with eigenvalues ``eigvals``);
    ``projected_j = [V^T Sigma_eval V]_jj`` for the evaluation set, in the training eigenbasis ``V``
    (``projected = eigvals`` and ``n_eval = n`` for the training set itself). No noise term: this is
    the plain reconstruction error of the learned map.

    Args:
      t, eigvals, eps, gamma, w0, tau, n, hidden: as :func:`spectrum_mapping`.
      projected: shape (..., D), >= 0.
      n_eval: number of evaluation samples, > 0.
    Returns:
      the loss, shape ``B`` (the batch shape of :func:`spectrum_mapping` without D).
    Example:
      >>> float(predicted_loss(0.0, [2.0, 1.0], [2.0, 1.0], 1, w0=0.0, tau=1.0, n=1))  # (2 + 1) / 2
      1.5
    """
    check_range("projected", projected, 0.0)
    check_range("n_eval", n_eval, 0.0, lo_open=True)
    w = spectrum_mapping(t, eigvals, eps, gamma, w0=w0, tau=tau, n=n, hidden=hidden)
    return _loss_from_mapping(w, projected, n_eval)


@jax.jit
def _loss_from_mapping(w, projected, n_eval):
    projected = jnp.asarray(projected, w.dtype)
    shape = _broadcast_shapes(mapping=w.shape, projected=projected.shape)
    w = jnp.broadcast_to(w, shape)
    projected = jnp.broadcast_to(projected, shape)
    n_eval = jnp.asarray(n_eval, w.dtype)
    return jnp.sum((1.0 - w) ** 2 * projected, axis=-1) * (0.5 / n_eval)


