"""Noise-level distributions p(s) of a diffusion objective: values that give quadrature nodes and
probabilities in s (for the coefficients A, B) and draw samples of s (for training).

Each is a registered JAX pytree whose numbers are traced leaves (they can be differentiated, vmapped
and tuned), with a fixed, static number of nodes:

- :class:`LogNormal` ``(p_mean, p_std)``: ``ln s ~ N(p_mean, p_std^2)`` (EDM's training
  distribution, default ``(-1.2, 1.2)``). Nodes: the trapezoidal rule in ``y = (ln s - p_mean) /
  p_std`` on ``|y| <= 9 + 4 p_std`` with 1024 nodes. The integrands of A and B are analytic in ``ln s``
  except at ``ln s = ln sigma_data +- i pi/2`` (the poles of ``c_in^2 = 1 / (s^2 + sigma_data^2)``), a
  strip of half-width ``pi / (2 p_std)`` in y, where the trapezoidal rule's error is about
  ``exp(-pi^2 / (p_std h))`` for the step h; Gauss-Hermite, a polynomial rule, converges only like
  ``exp(-c sqrt(K))`` there (measured against quad: 192 Gauss-Hermite nodes give 4e-8 at
  ``p_std = 2``; these nodes 1e-13 up to ``p_std = 5``, docs/diffusion.md). The range covers the
  weight ``s^4`` (the ``s^2`` weighting times ``N s^2``), which moves the integrand's peak to
  ``y = 4 p_std``, and ``s^-2`` (EDM's weighting without preconditioning).
- :class:`LogUniform` ``(s_min, s_max)``: ``ln s`` uniform; 128 Gauss-Legendre nodes in ``ln s``
  (3e-13 measured at ``s_max / s_min = 1e10``).
- :class:`Ladder` ``(sigmas, probs)``: discrete levels, exact sums. A variance-preserving (VP)
  schedule ``x_t = sqrt(abar_t) x + sqrt(1 - abar_t) n`` is the variance-exploding (VE) level
  ``s_t = sqrt((1 - abar_t) / abar_t)`` of ``x_t / sqrt(abar_t)``: :meth:`Ladder.from_vp`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import check_range, concrete, float_dtype

__all__ = ["LogNormal", "LogUniform", "Ladder", "TRAPEZOID_NODES", "LEGENDRE_NODES"]

TRAPEZOID_NODES = 1024
LEGENDRE_NODES = 128
_LEG_X, _LEG_W = np.polynomial.legendre.leggauss(LEGENDRE_NODES)


def _numeric(*xs) -> bool:
    """True when every value is a number or a numeric array (JAX rebuilds pytrees with other
    placeholders, e.g. ``None`` or ``object()``, which are not validated)."""
    for x in xs:
        if x is None or isinstance(x, jax.core.Tracer):
            continue
        try:
            if np.asarray(x).dtype.kind not in "biuf":
                return False
        except Exception:  # noqa: BLE001 - anything that is not an array is a placeholder
            return False
    return True


def _scalar(name, x):
    c = concrete(x)
    if c is not None and np.ndim(c) != 0:
        raise ValueError(f"{name} must be a scalar; got shape {np.shape(c)}")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LogNormal:
    """``ln s ~ N(p_mean, p_std^2)`` (EDM's training distribution).

    Args:
      p_mean: mean of ``ln s``, any finite real (EDM: -1.2).
      p_std: standard deviation of ``ln s``, in (0, 5] (EDM: 1.2).
    Raises:
      ValueError: for concrete values out of range or not scalars.
    Example:
      >>> s, p = LogNormal(-1.2, 1.2).nodes()
      >>> round(float(jnp.sum(p * jnp.log(s))), 6), round(float(jnp.sum(p)), 6)  # E[ln s], total mass
      (-1.2, 1.0)
    """

    p_mean: ArrayLike = -1.2
    p_std: ArrayLike = 1.2

    def __post_init__(self):
        if not _numeric(self.p_mean, self.p_std):
            return
        _scalar("p_mean", self.p_mean)
        _scalar("p_std", self.p_std)
        check_range("p_mean", self.p_mean, -math.inf, math.inf, lo_open=True, hi_open=True)
        check_range("p_std", self.p_std, 0.0, 5.0, lo_open=True)

    def nodes(self, dtype=None) -> tuple[Array, Array]:
        """Nodes ``s_j`` and probabilities ``p_j`` (summing to 1): ``E[f(s)] ~ sum_j p_j f(s_j)``."""
        dtype = float_dtype(self.p_mean, self.p_std, dtype=dtype)
        pm, ps = (jnp.asarray(x, dtype) for x in (self.p_mean, self.p_std))
        half = 9.0 + 4.0 * ps
        y = jnp.linspace(-1.0, 1.0, TRAPEZOID_NODES, dtype=dtype) * half
        w = jnp.exp(-0.5 * y * y)
        return jnp.exp(pm + ps * y), w / jnp.sum(w)

    def sample(self, key: Array, shape: tuple[int, ...] = (), dtype=None) -> Array:
        """Draws of s (``key``: a ``jax.random`` key)."""
        dtype = float_dtype(self.p_mean, self.p_std, dtype=dtype)
        pm, ps = (jnp.asarray(x, dtype) for x in (self.p_mean, self.p_std))
        return jnp.exp(pm + ps * jr.normal(key, shape, dtype))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LogUniform:
    """``ln s`` uniform on ``[ln s_min, ln s_max]``.

    Args:
      s_min, s_max: the range of s, ``0 < s_min < s_max``, ``s_max / s_min <= 1e10``.
    Example:
      >>> s, p = LogUniform(0.01, 100.0).nodes()
      >>> round(float(jnp.sum(p * jnp.log(s))), 6)  # E[ln s] = 0
      0.0
    """

    s_min: ArrayLike = 0.002
    s_max: ArrayLike = 80.0

    def __post_init__(self):
        if not _numeric(self.s_min, self.s_max):
            return
        _scalar("s_min", self.s_min)
        _scalar("s_max", self.s_max)
        check_range("s_min", self.s_min, 0.0, lo_open=True)
        check_range("s_max", self.s_max, 0.0, lo_open=True)
        lo, hi = concrete(self.s_min), concrete(self.s_max)
        if lo is not None and hi is not None and not (lo < hi <= lo * 1e10):
            raise ValueError(f"LogUniform needs s_min < s_max <= 1e10 s_min; got s_min={lo}, s_max={hi}")

    def nodes(self, dtype=None) -> tuple[Array, Array]:
        """Gauss-Legendre nodes in ``ln s`` and their probabilities (summing to 1)."""
        dtype = float_dtype(self.s_min, self.s_max, dtype=dtype)
        a, b = (jnp.log(jnp.asarray(x, dtype)) for x in (self.s_min, self.s_max))
        x = jnp.asarray(_LEG_X, dtype)
        return jnp.exp(0.5 * (a + b) + 0.5 * (b - a) * x), jnp.asarray(_LEG_W / 2.0, dtype)

    def sample(self, key: Array, shape: tuple[int, ...] = (), dtype=None) -> Array:
        dtype = float_dtype(self.s_min, self.s_max, dtype=dtype)
        a, b = (jnp.log(jnp.asarray(x, dtype)) for x in (self.s_min, self.s_max))
        return jnp.exp(a + (b - a) * jr.uniform(key, shape, dtype))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Ladder:
    """K discrete noise levels ``sigmas`` with probabilities ``probs`` (uniform when None).

    Args:
      sigmas: the levels, shape (K,), > 0. Sorted descending by :meth:`nodes` users that need an
        order (the ladder sampler of independent levels); given in any order.
      probs: shape (K,), >= 0, summing to 1 (within 1e-6), or None for ``1 / K`` each.
    Example:
      >>> lad = Ladder.from_vp(jnp.array([0.5, 0.8]))  # s = sqrt((1 - abar) / abar)
      >>> [round(float(s), 6) for s in lad.sigmas]
      [1.0, 0.5]
    """

    sigmas: ArrayLike
    probs: ArrayLike | None = None

    def __post_init__(self):
        if not _numeric(self.sigmas, self.probs):
            return
        s = concrete(self.sigmas)
        if s is not None and (np.ndim(s) != 1 or np.size(s) == 0):
            raise ValueError(f"sigmas must be a non-empty 1-D array; got shape {np.shape(s)}")
        check_range("sigmas", self.sigmas, 0.0, lo_open=True)
        if self.probs is not None:
            p = concrete(self.probs)
            check_range("probs", self.probs, 0.0)
            if p is not None and s is not None:
                if np.shape(p) != np.shape(s):
                    raise ValueError(f"probs must have the shape of sigmas {np.shape(s)}; got {np.shape(p)}")
                if abs(float(np.sum(p)) - 1.0) > 1e-6:
                    raise ValueError(f"probs must sum to 1; got {float(np.sum(p))}")

    @classmethod
    def from_vp(cls, alpha_bar: ArrayLike, probs: ArrayLike | None = None) -> Ladder:
        """The ladder of a variance-preserving schedule ``abar`` in (0, 1):
        ``s = sqrt((1 - abar) / abar)`` (the VE level of ``x_t / sqrt(abar)``)."""
        check_range("alpha_bar", alpha_bar, 0.0, 1.0, lo_open=True, hi_open=True)
        ab = jnp.asarray(alpha_bar)
        return cls(jnp.sqrt((1.0 - ab) / ab), probs)

    def nodes(self, dtype=None) -> tuple[Array, Array]:
        """The levels and their probabilities (exact)."""
        dtype = float_dtype(self.sigmas, dtype=dtype)
        s = jnp.asarray(self.sigmas, dtype)
        if self.probs is None:
            return s, jnp.full(s.shape, 1.0 / s.shape[0], dtype)
        p = jnp.asarray(self.probs, dtype)
        return s, p

    def sample(self, key: Array, shape: tuple[int, ...] = (), dtype=None) -> Array:
        s, p = self.nodes(dtype)
        return s[jr.choice(key, s.shape[0], shape, p=p)]
