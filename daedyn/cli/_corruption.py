"""Corruption options shared by ``simulate``, ``train`` and ``tune``: ``--cov FILE.npy`` (Gaussian noise
with per-component variances or a full covariance) and ``--raw`` (masking without the 1 / (1 - p)
rescaling). Parsing and checks only; the noise objects are :mod:`daedyn.noise`'s."""

from __future__ import annotations


def add_corruption_options(p, *, raw: bool = True) -> None:
    p.add_argument("--cov", default=None, metavar="FILE.npy",
                   help="--noise gaussian: a NumPy file of (D,) per-component noise variances or a (D, D) "
                   "symmetric positive semi-definite covariance (docs/corruption.md)")
    if raw:
        p.add_argument("--raw", action="store_true",
                       help="--noise masking: keep the raw mask x~ = m x (E[x~] = (1 - p) x) instead of "
                       "inverted dropout m x / (1 - p)")


def load_cov(path: str):
    """The noise object of ``--cov FILE.npy`` (``noise.gaussian_covariance``, which checks the values).

    Raises:
      OSError: the file is missing or unreadable (exit 1).
      ValueError: not a .npy array of numbers, or a bad shape or value (exit 2).
    """
    import numpy as np

    from daedyn import noise

    try:
        cov = np.load(path, allow_pickle=False)
    except ValueError as err:  # a pickled object or a damaged file
        raise ValueError(f"--cov {path!r} is not a NumPy .npy array of numbers ({err})") from None
    if not isinstance(cov, np.ndarray) or not np.issubdtype(cov.dtype, np.number) \
            or np.iscomplexobj(cov):
        what = f"an array of dtype {cov.dtype}" if isinstance(cov, np.ndarray) else type(cov).__name__
        raise ValueError(f"--cov {path!r} must hold one array of real numbers (np.save); got {what}")
    try:
        return noise.gaussian_covariance(np.asarray(cov, np.float64))
    except ValueError as err:
        raise ValueError(f"--cov {path}: {err}") from None


def check_cov_dim(nz, d: int) -> None:
    if nz.dim != d:
        raise ValueError(f"--cov has D = {nz.dim} components but the data have D = {d}")
