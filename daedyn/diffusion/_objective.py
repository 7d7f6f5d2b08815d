"""The diffusion objective as a value: noise-level distribution, loss weighting, preconditioning and
sigma_data, and the per-direction coefficients (A, B) it gives the linear denoiser.

Denoiser ``D(x~; s) = c_skip(s) x~ + c_out(s) F(c_in(s) x~)`` with ``F = W_L ... W_1`` shared by all noise
levels, loss ``(1/(2N)) sum_i E_s E_n w(s) ||D(x_i + s n; s) - x_i||^2``. Along an eigen-direction of
``Sigma = X^T X`` (eigenvalue lam) with F's value u, ``g = c_skip + a u`` (``a = c_out c_in``) and
``E_n sum_i (g (x_i + s n_i) - x_i)^2 = (1 - g)^2 lam + g^2 N s^2``, so the loss is
``(1/(2N)) [A u^2 - 2 B u + const]`` with

    A = E[w a^2 (lam + N s^2)] = alpha0 lam + N alpha2,
    B = E[w a ((1 - c_skip) lam - c_skip N s^2)] = beta0 lam - N beta2,

four moments of s computed once per objective (:meth:`Objective.moments`). Under "edm" (weighting
``1 / c_out^2``) ``B = (lam - N sigma_data^2) E[s / (sigma_data (s^2 + sigma_data^2))]``: negative for
directions whose per-sample variance lam / N is below ``sigma_data^2``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import check_range, concrete, float_dtype
from daedyn.diffusion._levels import Ladder, LogNormal, LogUniform, _numeric
from daedyn.schedules import is_schedule

__all__ = ["Objective", "Precond", "Weighting", "Conditioning"]

Precond = Literal["edm", "none"]
Weighting = Literal["edm", "uniform", "s2"]
Conditioning = Literal["shared", "independent"]
_PRECONDS = ("edm", "none")
_WEIGHTINGS = ("edm", "uniform", "s2")
_CONDITIONINGS = ("shared", "independent")


@dataclasses.dataclass(frozen=True)
class Objective:
    """A diffusion training objective for the linear denoiser (a JAX pytree: ``sigma``'s numbers and
    ``sigma_data`` are traced leaves; ``precond``, ``weighting``, ``conditioning`` are static).

    Implements the corruption protocol ``direction_moments(lam, n) -> (k, m) = (B, A)``, so the
    closed forms (:func:`daedyn.theory.small_init_trajectory` ``noise=``) and the scalar engines
    take it in place of ``eps``.

    Args:
      sigma: the noise-level distribution: :class:`LogNormal`, :class:`LogUniform` or :class:`Ladder`.
      precond: "edm" (``c_skip = sd^2 / (s^2 + sd^2)``, ``c_out = s sd / sqrt(s^2 + sd^2)``,
        ``c_in = 1 / sqrt(s^2 + sd^2)``) or "none" (``c_skip = 0``, ``c_out = c_in = 1``).
      sigma_data: sd, > 0 (EDM: 0.5).
      weighting: w(s): "edm" (``(s^2 + sd^2) / (s sd)^2 = 1 / c_out^2`` of EDM), "uniform" (1) or
        "s2" (``s^2``); None: "edm" under ``precond="edm"``, "uniform" under "none".
      conditioning: "shared" (one F for all levels) or "independent" (a :class:`Ladder` only: an F
        per level, each the paper's DAE at ``eps = N s_i^2`` with its rate scaled by its
        probability and weight; the coefficients get a trailing level axis).
    Raises:
      ValueError: for an unknown name, ``sigma_data <= 0``, or independent levels without a Ladder.
    Example:
      >>> A, B = Objective().coefficients(jnp.array([400.0, 10.0]), n=100)  # lam / N = 4 and 0.1
      >>> [bool(b > 0) for b in B]  # negative below sigma_data^2 = 0.25
      [True, False]
    """

    sigma: LogNormal | LogUniform | Ladder = LogNormal()
    precond: Precond = "edm"
    sigma_data: ArrayLike = 0.5
    weighting: Weighting | None = None
    conditioning: Conditioning = "shared"

    def __post_init__(self):
        for name, value, allowed in (("precond", self.precond, _PRECONDS),
                                     ("weighting", self.weighting, _WEIGHTINGS + (None,)),
                                     ("conditioning", self.conditioning, _CONDITIONINGS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {value!r}")
        if not isinstance(self.sigma, LogNormal | LogUniform | Ladder) and _numeric(self.sigma_data):
            raise ValueError("sigma must be a LogNormal, LogUniform or Ladder; got "
                             f"{type(self.sigma).__name__}")
        if self.conditioning == "independent" and not isinstance(self.sigma, Ladder):
            if _numeric(self.sigma_data):
                raise ValueError("conditioning='independent' needs a Ladder of noise levels; got "
                                 f"{type(self.sigma).__name__}")
        if _numeric(self.sigma_data):
            c = concrete(self.sigma_data)
            if c is not None and np.ndim(c) != 0:
                raise ValueError(f"sigma_data must be a scalar; got shape {np.shape(c)}")
            check_range("sigma_data", self.sigma_data, 0.0, lo_open=True)

    @property
    def weight_kind(self) -> str:
        """The weighting in force ("edm", "uniform" or "s2")."""
        if self.weighting is not None:
            return self.weighting
        return "edm" if self.precond == "edm" else "uniform"

    def dtype(self, *others):
        return float_dtype(*jax.tree.leaves(self), *others)

    # -- the denoiser's scalings ---------------------------------------------------------------

    def scalings(self, s: ArrayLike) -> tuple[Array, Array, Array, Array]:
        """``(c_skip, 1 - c_skip, c_out, c_in)`` at noise levels s (``1 - c_skip`` without cancellation)."""
        s = jnp.asarray(s, self.dtype(s))
        if self.precond == "none":
            zero, one = jnp.zeros_like(s), jnp.ones_like(s)
            return zero, one, one, one
        sd = jnp.asarray(self.sigma_data, s.dtype)
        r = s * s + sd * sd
        return sd * sd / r, s * s / r, s * sd / jnp.sqrt(r), 1.0 / jnp.sqrt(r)

    def weight(self, s: ArrayLike) -> Array:
        """The loss weighting w(s)."""
        s = jnp.asarray(s, self.dtype(s))
        kind = self.weight_kind
        if kind == "uniform":
            return jnp.ones_like(s)
        if kind == "s2":
            return s * s
        sd = jnp.asarray(self.sigma_data, s.dtype)
        return (s * s + sd * sd) / (s * sd) ** 2

    def gain(self, s: ArrayLike, u: ArrayLike) -> Array:
        """``g(s) = c_skip + c_out c_in u``: the denoiser's factor along a direction whose F value is u."""
        c_skip, _, c_out, c_in = self.scalings(s)
        return c_skip + c_out * c_in * u

    # -- the coefficients ----------------------------------------------------------------------

    def _terms(self, s):
        """Per level: ``w a^2``, ``w a^2 s^2``, ``w a (1 - c_skip)``, ``w a c_skip s^2`` (a = c_out c_in),
        formed as bounded rational functions of s where the weighting has a 1 / s^2."""
        s2 = s * s
        if self.precond == "none":
            w = self.weight(s)
            return w, w * s2, w, jnp.zeros_like(s)
        sd = jnp.asarray(self.sigma_data, s.dtype)
        sd2 = sd * sd
        r = s2 + sd2
        if self.weight_kind == "edm":  # w = r / (s sd)^2: w a = 1 / (s sd), w a^2 = 1 / r
            return 1.0 / r, s2 / r, s / (sd * r), s * sd / r
        w = self.weight(s)
        a = s * sd / r
        return w * a * a, w * a * a * s2, w * a * s2 / r, w * a * sd2 * s2 / r

    def moments(self, dtype=None) -> tuple[Array, Array, Array, Array]:
        """``(alpha0, alpha2, beta0, beta2)``: ``A = alpha0 lam + N alpha2``, ``B = beta0 lam - N beta2``.

        Shared conditioning: scalars (the expectations over s, by the distribution's quadrature);
        independent: one entry per ladder level (probability times weight times the level's terms).
        """
        dtype = self.dtype() if dtype is None else dtype
        s, p = self.sigma.nodes(dtype)
        live = p > 0  # nodes of zero probability: their terms may be inf (1 / s^2 underflowed)
        s_safe = jnp.where(live, s, jnp.ones_like(s))
        terms = [jnp.where(live, p * t, jnp.zeros_like(t)) for t in self._terms(s_safe)]
        if self.conditioning == "independent":
            return tuple(terms)
        return tuple(jnp.sum(t, axis=-1) for t in terms)

    def coefficients(self, lam: ArrayLike, n: ArrayLike) -> tuple[Array, Array]:
        """``(A, B)`` per direction (broadcasting with lam; a trailing level axis when independent)."""
        lam_a = jnp.asarray(lam)
        dtype = self.dtype(lam_a, n)
        return _combine(self.moments(dtype), lam_a.astype(dtype), jnp.asarray(n, dtype),
                        self.conditioning == "independent")

    def direction_moments(self, lam: ArrayLike, n: ArrayLike) -> tuple[Array, Array]:
        """The corruption protocol: ``(k, m) = (B, A)``."""
        a, b = self.coefficients(lam, n)
        return b, a

    def at(self, t: ArrayLike) -> Objective:
        """The objective in force at time ``t`` (epochs): every schedule among its numbers (a p_mean
        schedule, ...) replaced by its value at t (the engines' protocol for scheduled corruptions)."""
        return jtu.tree_map(lambda x: x(t) if is_schedule(x) else x, self, is_leaf=is_schedule)

    def flow_integrals(self, sigma_min: ArrayLike, sigma_max: ArrayLike) -> tuple[Array, Array]:
        """``(I0, I1)`` with ``I0 = int (1 - c_skip) / s ds`` and ``I1 = int c_out c_in / s ds`` from
        sigma_min to sigma_max: the generated variance of a direction with value u is
        ``sigma_max^2 exp(-2 I0 + 2 I1 u)`` (closed forms for both preconditionings)."""
        dtype = self.dtype(sigma_min, sigma_max)
        lo, hi = jnp.asarray(sigma_min, dtype), jnp.asarray(sigma_max, dtype)
        if self.precond == "none":
            i = jnp.log(hi) - jnp.log(lo)
            return i, i
        sd = jnp.asarray(self.sigma_data, dtype)
        i0 = 0.5 * (jnp.log(hi * hi + sd * sd) - jnp.log(lo * lo + sd * sd))
        # atan(hi / sd) - atan(lo / sd) = atan(sd (hi - lo) / (sd^2 + hi lo)), no cancellation
        i1 = jnp.arctan2(sd * (hi - lo), sd * sd + hi * lo)
        return i0, i1


jax.tree_util.register_dataclass(Objective, data_fields=["sigma", "sigma_data"],
                                 meta_fields=["precond", "weighting", "conditioning"])


def _combine(moments, lam, n, independent: bool) -> tuple[Array, Array]:
    """``(A, B) = (alpha0 lam + N alpha2, beta0 lam - N beta2)`` from the four moments (each per level,
    a trailing axis, when the levels are independent)."""
    a0, a2, b0, b2 = moments
    if independent:  # a trailing level axis, broadcast explicitly
        lam, n = lam[..., None], n[..., None]
        rank = max(lam.ndim, n.ndim)
        a0, a2, b0, b2 = (x.reshape((1,) * (rank - 1) + x.shape) for x in (a0, a2, b0, b2))
        lam = lam.reshape((1,) * (rank - lam.ndim) + lam.shape)
        n = n.reshape((1,) * (rank - n.ndim) + n.shape)
    return a0 * lam + n * a2, b0 * lam - n * b2


@dataclasses.dataclass(frozen=True)
class _Shared:
    """An objective whose moments were computed once (:meth:`Objective.moments`): every direction's
    ``(A, B)`` from them, with no quadrature of its own, and the corruption protocol for the closed
    forms. :func:`daedyn.diffusion.predict` shares one such value across its directions and times."""

    moments: tuple[Array, Array, Array, Array]
    independent: bool = False

    def coefficients(self, lam: ArrayLike, n: ArrayLike) -> tuple[Array, Array]:
        dtype = float_dtype(lam, n, *self.moments)
        return _combine(tuple(jnp.asarray(x, dtype) for x in self.moments), jnp.asarray(lam, dtype),
                        jnp.asarray(n, dtype), self.independent)

    def direction_moments(self, lam: ArrayLike, n: ArrayLike) -> tuple[Array, Array]:
        a, b = self.coefficients(lam, n)
        return b, a


jax.tree_util.register_dataclass(_Shared, data_fields=["moments"], meta_fields=["independent"])
