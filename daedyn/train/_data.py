"""Data preparation: a dataset on the device with the moments a training run needs."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn import _linear
from daedyn import spectrum as spectrum_lib
from daedyn._checks import check_range, concrete, float_dtype

__all__ = ["TrainData", "prepare_data"]


class TrainData(NamedTuple):
    """Device arrays a run needs; build with :func:`prepare_data`. Unneeded fields are None.

    Attributes:
      x: training inputs (N, D) (data path and nonlinear observables).
      eigvals: eigenvalues lam of Sigma = X^T X, descending (D,).
      eigvecs: eigenvectors V, columns (D, D).
      n: number of training samples N (scalar array).
      xv: X V (N, D) for the nonlinear mapping estimate.
      sigma: Sigma = X^T X (D, D) for ``path="sigma"``.
      x_heldout: held-out inputs (M, D) (nonlinear held-out loss).
      sigma_heldout_eig: V^T X_h^T X_h V (D, D) (linear held-out loss).
      n_heldout: M (scalar array).
    """

    x: Array | None
    eigvals: Array
    eigvecs: Array
    n: Array
    xv: Array | None = None
    sigma: Array | None = None
    x_heldout: Array | None = None
    sigma_heldout_eig: Array | None = None
    n_heldout: Array | None = None


def prepare_data(x: ArrayLike, *, spectrum: Any = None, x_heldout: ArrayLike | None = None,
                 linear: bool = True, path: str = "eigen", dtype: Any = None,
                 precision: Any = "highest") -> TrainData:
    """Move a dataset to the device with what a run needs (spectrum, rotated held-out moment).

    Args:
      x: training inputs (N, D), rows are samples.
      spectrum: a :class:`daedyn.spectrum.Spectrum` of X^T X (fields eigvals, eigvecs; descending),
        or None to compute it here (:func:`daedyn.spectrum.compute_spectrum`).
      x_heldout: optional held-out inputs (M, D).
      linear: whether the network is linear (decides which derived arrays are built).
      path: "eigen", "sigma" or "data" (see :func:`~daedyn.train.train_fn`).
      dtype: floating dtype (default: that of ``x``).
      precision: matmul precision for the derived moments (default "highest").
    Returns:
      :class:`TrainData`.
    Raises:
      ValueError: for non-2-D or non-finite data, a D mismatch, or a spectrum of the wrong size.
    Example:
      >>> from daedyn import train
      >>> data = train.prepare_data(jnp.array([[3.0, 0.0], [0.0, 1.0]]))
      >>> data.eigvals.tolist(), int(data.n)
      ([9.0, 1.0], 2)
    """
    x_np = concrete(x)
    if np.ndim(x) != 2:
        raise ValueError(f"x must be a 2-D array (N, D); got shape {np.shape(x)}")
    if x_np is not None:
        check_range("x", x_np)
    dtype = float_dtype(x, dtype=dtype)
    x = jnp.asarray(x, dtype)
    n, d = x.shape
    if spectrum is None:
        spectrum = spectrum_lib.compute_spectrum(x)
    lam = jnp.asarray(spectrum.eigvals, dtype)
    v = jnp.asarray(spectrum.eigvecs, dtype)
    if lam.shape != (d,) or v.shape != (d, d):
        raise ValueError(f"spectrum must have eigvals ({d},) and eigvecs ({d}, {d}) for D = {d}; "
                         f"got {lam.shape} and {v.shape}")
    mm = _linear.matmul_fn(precision)
    xv = None if linear else mm(x, v)
    sigma = mm(x.T, x) if path == "sigma" else None
    xh = sh = nh = None
    if x_heldout is not None:
        if np.ndim(x_heldout) != 2 or np.shape(x_heldout)[1] != d:
            raise ValueError(f"x_heldout must have shape (M, {d}); got {np.shape(x_heldout)}")
        check_range("x_heldout", x_heldout)
        xh = jnp.asarray(x_heldout, dtype)
        nh = jnp.asarray(xh.shape[0], dtype)
        if linear:
            xhv = mm(xh, v)
            sh = mm(xhv.T, xhv)
            xh = None
    return TrainData(x=x, eigvals=lam, eigvecs=v, n=jnp.asarray(n, dtype), xv=xv, sigma=sigma,
                     x_heldout=xh, sigma_heldout_eig=sh, n_heldout=nh)
