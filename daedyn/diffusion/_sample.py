"""Sampling from a trained denoiser: EDM's deterministic Heun sampler on any network, and the exact
probability flow of a linear one.

Generation integrates the probability-flow ODE ``dx/ds = (x - D(x; s)) / s`` from
``x(sigma_max) ~ N(0, sigma_max^2 I)`` down to sigma_min, with ``D(x; s) = c_skip x + c_out F(c_in x)``
(:class:`~daedyn.diffusion.Objective`'s scalings).

- :func:`sample`: Karras et al. (2022), Algorithm 1 without churn: the levels
  ``s_i = (sigma_max^(1/rho) + i / (K - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``, i < K, and a
  Heun (trapezoidal predictor-corrector) step between consecutive levels; ``to_zero=True`` adds the
  algorithm's last Euler step from sigma_min to 0 (``x <- D(x; sigma_min)``), which the per-direction
  theory (integral down to sigma_min) does not include. Heun is second order in the number of steps.
- :func:`linear_flow_variance`: for a linear ``F(x) = W x`` the flow's matrix ``(1 - c_skip) I -
  c_out c_in W`` is a scalar combination of I and W at every s, so the matrices at different levels
  commute and the flow is exact: ``x(sigma_min) = exp(-I0) expm(I1 W) x(sigma_max)`` with the integrals
  ``(I0, I1)`` of :meth:`Objective.flow_integrals`. Its covariance is
  ``sigma_max^2 e^{-2 I0} expm(I1 W) expm(I1 W)^T``; when W is diagonal in the eigenbasis V
  (``W = V diag(u) V^T``) its diagonal in V is the prediction's
  ``sigma_max^2 exp(2 (I1 u - I0))`` (:func:`~daedyn.diffusion.predict`). W's part off that diagonal
  changes the per-direction variance only at second order in its size.
"""

from __future__ import annotations

import functools as ft
from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.scipy.linalg as jsl
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import check_int, check_range, concrete
from daedyn.diffusion._objective import Objective

__all__ = ["sample", "heun_levels", "linear_flow_variance"]


def _check_levels(sigma_min, sigma_max) -> None:
    check_range("sigma_min", sigma_min, 0.0, lo_open=True)
    check_range("sigma_max", sigma_max, 0.0, lo_open=True)
    lo, hi = concrete(sigma_min), concrete(sigma_max)
    if lo is not None and hi is not None and not lo < hi:
        raise ValueError(f"sigma_min must be < sigma_max; got {lo} and {hi}")


def heun_levels(steps: int, *, sigma_min: ArrayLike = 0.002, sigma_max: ArrayLike = 80.0,
                rho: ArrayLike = 7.0, dtype=None) -> Array:
    """EDM's ``steps`` noise levels from sigma_max down to sigma_min (uniform in ``s^(1/rho)``)."""
    dtype = dtype or jnp.result_type(float)
    lo, hi, r = (jnp.asarray(v, dtype) for v in (sigma_min, sigma_max, rho))
    i = jnp.arange(steps, dtype=dtype) / max(steps - 1, 1)
    return (hi ** (1 / r) + i * (lo ** (1 / r) - hi ** (1 / r))) ** r


def _denoise(f, objective, x, s):
    c_skip, _, c_out, c_in = objective.scalings(s)
    return c_skip * x + c_out * f(c_in * x)


@ft.partial(jax.jit, static_argnames=("steps", "to_zero"))
def _heun(f, objective, x, sigma_min, sigma_max, rho, *, steps, to_zero):
    levels = heun_levels(steps, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho, dtype=x.dtype)

    def slope(x, s):
        return (x - _denoise(f, objective, x, s)) / s

    def step(x, pair):
        s, s_next = pair[0], pair[1]
        d = slope(x, s)
        x_e = x + (s_next - s) * d  # Euler predictor
        return x + (s_next - s) * 0.5 * (d + slope(x_e, s_next)), None  # trapezoidal corrector

    x, _ = jax.lax.scan(step, x, jnp.stack([levels[:-1], levels[1:]], axis=1))
    if to_zero:  # Algorithm 1's last (Euler) step to s = 0: the denoiser's output at sigma_min
        x = _denoise(f, objective, x, levels[-1])
    return x


def sample(f: Callable[[Array], Array], objective: Objective = Objective(), *, key: Array | None,
           shape: tuple[int, int] | None = None, steps: int = 18, sigma_min: ArrayLike = 0.002,
           sigma_max: ArrayLike = 80.0, rho: ArrayLike = 7.0, to_zero: bool = False,
           start: ArrayLike | None = None) -> Array:
    """Draw samples with EDM's deterministic Heun sampler from the denoiser built on a network F.

    Args:
      f: the network F, rows in, rows out ((B, D) -> (B, D)); a ``jax.tree_util.Partial`` (as
        :meth:`DenoiserRun.network` returns) keeps its parameters traced, so runs of one shape
        share a compilation.
      objective: the :class:`Objective` whose preconditioning builds ``D = c_skip x + c_out F(c_in x)``.
      key: a ``jax.random`` key for the starting draw ``N(0, sigma_max^2 I)`` (None with ``start``).
      shape: ``(number of samples, D)``.
      steps: number of noise levels K >= 2 (K - 1 Heun steps: 2 (K - 1) evaluations of F, one more
        with ``to_zero``).
      sigma_min, sigma_max: the levels' range, ``0 < sigma_min < sigma_max``.
      rho: the level spacing exponent (EDM: 7), > 0.
      to_zero: add Algorithm 1's final Euler step from sigma_min to 0.
      start: the points at sigma_max, (number of samples, D), in place of a draw (``key`` and
        ``shape`` are then not used; e.g. ``sigma_max`` times rows of the identity push a linear
        F's flow map through the sampler).
    Returns:
      the samples, ``shape``, in the dtype of sigma_max (float32 by default).
    Raises:
      ValueError: for a bad shape, steps < 2 or out-of-range levels.
    Example:
      >>> x = sample(lambda z: 0.0 * z, Objective(), key=jr.key(0), shape=(4, 3), steps=8)
      >>> x.shape
      (4, 3)
    """
    steps = check_int("steps", steps, 2)
    _check_levels(sigma_min, sigma_max)
    check_range("rho", rho, 0.0, lo_open=True)
    if objective.conditioning != "shared":
        raise ValueError("sample needs one network for all levels (conditioning='shared')")
    if not isinstance(f, jax.tree_util.Partial):
        f = jax.tree_util.Partial(f)
    dtype = objective.dtype(sigma_min, sigma_max, rho, *(() if start is None else (start,)))
    cast = lambda v: jnp.asarray(v, dtype)  # noqa: E731
    if start is None:
        if shape is None or len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"shape must be (number of samples, D), both >= 1; got {shape}")
        x = cast(sigma_max) * jr.normal(key, tuple(int(v) for v in shape), dtype)
    else:
        x = cast(start)
        if x.ndim != 2 or min(x.shape) < 1:
            raise ValueError(f"start must have shape (number of samples, D); got {x.shape}")
    return _heun(f, objective, x, cast(sigma_min), cast(sigma_max), cast(rho), steps=steps,
                 to_zero=bool(to_zero))


def linear_flow_variance(w: ArrayLike, basis: ArrayLike, objective: Objective, *,
                         sigma_min: ArrayLike = 0.002, sigma_max: ArrayLike = 80.0) -> Array:
    """Per-direction variance ``diag(V^T C V)`` of the exact probability flow of a linear ``F(x) = W x``
    (module docstring): ``C = sigma_max^2 e^{-2 I0} expm(I1 W) expm(I1 W)^T``.

    Args:
      w: the map W, shape (..., D, D) (leading axes: e.g. records of a run).
      basis: the eigenvectors V of Sigma as columns, (D, D).
      objective: the :class:`Objective` (its preconditioning's integrals).
    Returns:
      shape (..., D).
    """
    _check_levels(sigma_min, sigma_max)
    w = jnp.asarray(w)
    i0, i1 = objective.flow_integrals(sigma_min, sigma_max)
    dtype = jnp.result_type(w, i1)
    w = w.astype(dtype)
    v = jnp.asarray(basis, dtype)
    e = jnp.vectorize(jsl.expm, signature="(d,d)->(d,d)")(i1.astype(dtype) * w)
    ev = jnp.einsum("...ji,jk->...ik", e, v)  # E^T V with E = expm(I1 W): [V^T E E^T V]_jj = |E^T v_j|^2
    hi = jnp.asarray(sigma_max, dtype)
    return hi * hi * jnp.exp(-2.0 * i0.astype(dtype)) * jnp.sum(ev * ev, axis=-2)
