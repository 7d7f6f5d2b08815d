"""The data a held-out objective needs: train spectrum, held-out projections, sample counts."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn import spectrum
from daedyn._checks import check_range, float_dtype, renamed

__all__ = ["HeldoutProblem", "heldout_problem", "problem_from_spectrum"]


class HeldoutProblem(NamedTuple):
    """Train spectrum and held-out second moments, the inputs of every tuning objective.

    Attributes:
      eigvals: (D,) eigenvalues of the *summed* train second moment Sigma = X^T X, descending.
      projected: (D,) held-out projections [V^T X_ho^T X_ho V]_jj on the train eigenvectors.
      n: number of training samples N (eps = N s^2, tau = N / alpha).
      n_heldout: number of held-out samples M (the objective divides by 2 M).
      eigvecs: (D, D) train eigenvectors (columns) or None; needed by route "train" only.
      x_train: (N, D) training inputs or None; needed by route "train" only.
      x_heldout: (M, D) held-out inputs or None; needed by route "train" only.
    """

    eigvals: Array
    projected: Array
    n: int
    n_heldout: int
    eigvecs: Array | None = None
    x_train: Array | None = None
    x_heldout: Array | None = None


@renamed(x_train="x")
def heldout_problem(x: ArrayLike, x_heldout: ArrayLike, *, keep_data: bool = True,
                    dtype=None) -> HeldoutProblem:
    """Build a :class:`HeldoutProblem` from train and held-out data (rows are samples).

    The train eigendecomposition comes from ``daedyn.spectrum.compute_spectrum`` (float64
    accumulation); the held-out set enters only through its projected second moments
    ``daedyn.spectrum.projected_second_moment``.

    Args:
      x: (N, D) training inputs, N >= 1 (the keyword ``x_train`` is deprecated).
      x_heldout: (M, D) held-out inputs, M >= 1, same D.
      keep_data: keep the arrays and eigenvectors (needed by route "train"; costs memory).
      dtype: floating dtype of the stored arrays; default float32, float64 under x64.
    Returns:
      The problem, arrays in ``dtype``.
    Raises:
      ValueError: for an empty held-out or train set, non-2D inputs or mismatched D.
    """
    xt, xh = np.asarray(x), np.asarray(x_heldout)
    if xt.ndim != 2 or xh.ndim != 2:
        raise ValueError(f"x and x_heldout must be 2-D (samples, features); got shapes "
                         f"{xt.shape} and {xh.shape}")
    if xh.shape[0] == 0:
        raise ValueError("x_heldout is empty: the held-out objective needs at least one sample")
    if xt.shape[0] == 0:
        raise ValueError("x is empty: the train spectrum needs at least one sample")
    if xt.shape[1] != xh.shape[1]:
        raise ValueError(f"x and x_heldout must have the same number of features; got "
                         f"{xt.shape[1]} and {xh.shape[1]}")
    if not (np.all(np.isfinite(xt)) and np.all(np.isfinite(xh))):
        raise ValueError("x and x_heldout must be finite (found NaN or inf)")
    dt = float_dtype(dtype=dtype)
    spec = spectrum.compute_spectrum(xt, accumulate_dtype=np.float64)
    projected = spectrum.projected_second_moment(spec, xh)
    return HeldoutProblem(
        eigvals=jnp.asarray(np.maximum(np.asarray(spec.eigvals, np.float64), 0.0), dt),  # round-off < 0
        projected=jnp.asarray(np.maximum(np.asarray(projected, np.float64), 0.0), dt),
        n=int(xt.shape[0]),
        n_heldout=int(xh.shape[0]),
        eigvecs=jnp.asarray(np.asarray(spec.eigvecs), dt) if keep_data else None,
        x_train=jnp.asarray(xt, dt) if keep_data else None,
        x_heldout=jnp.asarray(xh, dt) if keep_data else None,
    )


def problem_from_spectrum(eigvals: ArrayLike, projected: ArrayLike, n: int, n_heldout: int, *,
                          dtype=None) -> HeldoutProblem:
    """A :class:`HeldoutProblem` from precomputed spectra (routes "closed_form" and "dynamics").

    Args:
      eigvals: (D,) train eigenvalues of the summed second moment, descending, >= 0.
      projected: (D,) held-out projections diag(V^T X_ho^T X_ho V), >= 0.
      n: number of training samples, >= 1.
      n_heldout: number of held-out samples, >= 1.
    Raises:
      ValueError: empty held-out set, negative values or mismatched shapes.
    Example:
      >>> p = problem_from_spectrum([4.0, 1.0], [2.0, 0.5], n=10, n_heldout=5)
      >>> p.eigvals.shape, p.n_heldout
      ((2,), 5)
    """
    if int(n_heldout) < 1:
        raise ValueError(f"n_heldout must be >= 1 (the held-out set is empty); got {n_heldout}")
    if int(n) < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    lam, proj = np.asarray(eigvals, np.float64), np.asarray(projected, np.float64)
    if lam.ndim != 1 or lam.shape != proj.shape or lam.size == 0:
        raise ValueError(f"eigvals and projected must be non-empty 1-D arrays of the same shape; got "
                         f"{lam.shape} and {proj.shape}")
    check_range("eigvals", lam, 0.0)
    check_range("projected", proj, 0.0)
    dt = float_dtype(dtype=dtype)
    return HeldoutProblem(jnp.asarray(lam, dt), jnp.asarray(proj, dt), int(n), int(n_heldout))
