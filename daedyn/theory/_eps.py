"""Noise levels: the paper's ``eps = n s^2`` from a per-component noise variance ``s^2`` (section 3.3).

The conversion ``eps = n * variance`` is written once, here; :func:`daedyn.noise.eps_of` calls
:func:`variance_eps`. The closed forms, flows and training loops take ``eps`` only.
"""

from __future__ import annotations

from collections.abc import Callable

from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import check_range
from daedyn.theory._args import check_fits, finite_result, prepare

__all__ = ["variance_eps", "gaussian_eps", "laplace_eps"]


def _eps(name: str, value: ArrayLike, n: ArrayLike, variance_of: Callable[[Array], Array]) -> Array:
    """``eps = n * variance_of(value)`` after checking ``value >= 0`` and ``n > 0`` by name."""
    check_range(name, value, 0.0)
    check_range("n", n, 0.0, lo_open=True)
    check_fits(**{name: value, "n": n})
    value, n = prepare(**{name: value, "n": n})
    return finite_result("eps", n * variance_of(value))


def variance_eps(var: ArrayLike, n: ArrayLike) -> Array:
    """``eps = n * var`` for any zero-mean noise with per-component variance ``var``.

    Args:
      var: per-component noise variance ``s^2``, >= 0.
      n: number of training samples N, > 0.
    Returns:
      ``eps``, with the broadcast shape and floating dtype of the inputs.
    Raises:
      ValueError: for a concrete ``var < 0`` or ``n <= 0`` or shapes that do not broadcast.
    Example:
      >>> float(variance_eps(0.5, 4))
      2.0
    """
    return _eps("var", var, n, lambda v: v)


def gaussian_eps(sigma2: ArrayLike, n: ArrayLike) -> Array:
    """``eps = n sigma^2`` for Gaussian noise ``N(0, sigma^2 I)`` (section 3.3).

    Args:
      sigma2: the variance ``sigma^2``, >= 0.
      n: number of training samples N, > 0.
    Returns:
      ``eps``, with the broadcast shape and floating dtype of the inputs.
    Raises:
      ValueError: as :func:`variance_eps`, naming ``sigma2``.
    Example:
      >>> float(gaussian_eps(0.5, 50000))
      25000.0
    """
    return _eps("sigma2", sigma2, n, lambda v: v)


def laplace_eps(b: ArrayLike, n: ArrayLike) -> Array:
    """``eps = 2 n b^2`` for zero-mean Laplace noise with scale ``b`` (section 3.3): its
    per-component variance is ``2 b^2``.

    Args:
      b: the Laplace scale (density ``exp(-|x| / b) / (2 b)``), >= 0.
      n: number of training samples N, > 0.
    Returns:
      ``eps``, with the broadcast shape and floating dtype of the inputs.
    Raises:
      ValueError: as :func:`variance_eps`, naming ``b``.
    Example:
      >>> float(laplace_eps(0.5, 10))
      5.0
    """
    return _eps("b", b, n, lambda b: 2.0 * b * b)
