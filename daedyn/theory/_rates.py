"""Weight decay equivalent to noise and the optimal learning rates (section 5, supplement D-E).

Noise ``eps`` and weight decay ``gamma`` both shrink the fixed point of a direction; the equivalent
``gamma`` gives the same fixed point, and the ratio ``R`` of the optimal (inverse largest Hessian
eigenvalue) learning rates, Eq. (8), compares how fast the two regularised networks may be trained.
"""

from __future__ import annotations

import functools as ft
from typing import Literal

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import check_range
from daedyn._numerics import safe_div
from daedyn.theory._args import check_fits, finite_result, mark_invalid, prepare

__all__ = ["equivalent_gamma", "optimal_learning_rates", "learning_rate_ratio"]


@jax.jit
def _equivalent_gamma_impl(lam, eps, n):
    lam, eps, n = prepare(lam=lam, eps=eps, n=n)
    k = lam + eps
    # (lam / n) (eps / k), eps / k in [0, 1] after dividing by max(lam, eps): neither lam * eps nor
    # lam + eps overflows
    m = jnp.maximum(lam, eps)
    m = jnp.where(m > 0, m, 1.0)
    lam_m, eps_m = jax.lax.optimization_barrier((lam / m, eps / m))  # not refolded into lam + eps
    g = (lam / n) * safe_div(eps_m, lam_m + eps_m, 0.0, where=k > 0)
    return mark_invalid(g, (lam >= 0) & (eps >= 0) & (n > 0))


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
    check_fits(lam=lam, eps=eps, n=n)
    return finite_result("equivalent_gamma", _equivalent_gamma_impl(lam, eps, n))


@ft.partial(jax.jit, static_argnames=("convention",))
def _optimal_learning_rates_impl(lam, eps, gamma, tau, n, convention):
    lam, eps, gamma, tau, n = prepare(lam=lam, eps=eps, gamma=gamma, tau=tau, n=n)
    mult = 1.0 if convention == "supplement" else 2.0
    d_eps = 2.0 * lam + 3.0 * eps
    d_gamma = 2.0 * lam + mult * n * gamma
    valid = (lam >= 0) & (eps >= 0) & (gamma >= 0) & (tau > 0) & (n > 0)
    a_eps = safe_div(tau, d_eps, jnp.inf, where=d_eps > 0)
    a_gamma = safe_div(tau, d_gamma, jnp.inf, where=d_gamma > 0)
    return mark_invalid(a_eps, valid), mark_invalid(a_gamma, valid)


@jax.jit
def _learning_rate_ratio_impl(lam, eps, gamma, n):
    lam, eps, gamma, n = prepare(lam=lam, eps=eps, gamma=gamma, n=n)
    den = 2.0 * lam + 3.0 * eps
    r = safe_div(2.0 * lam + n * gamma, den, 1.0, where=den > 0)
    return mark_invalid(r, (lam >= 0) & (eps >= 0) & (gamma >= 0) & (n > 0))


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
    check_fits(lam=lam, eps=eps, gamma=gamma, tau=tau, n=n)
    return finite_result("optimal_learning_rates",
                         _optimal_learning_rates_impl(lam, eps, gamma, tau, n, convention), allow_inf=True)


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
    check_fits(lam=lam, eps=eps, gamma=gamma, n=n)
    return finite_result("learning_rate_ratio", _learning_rate_ratio_impl(lam, eps, gamma, n))

