"""Second-moment matrix Sigma = X^T X = sum_i x_i x_i^T and its eigendecomposition.

Everything downstream of the data (the closed forms, the eigenbasis dynamics, the per-direction
observables of trained networks) needs only the eigenvalues lam_j of Sigma (a *sum* over the N
samples, not a mean: paper Section 2), the eigenvectors V and N. :func:`compute_spectrum` computes
them once per dataset:

- Sigma is accumulated chunk by chunk (``chunk_size`` rows at a time), so memory stays at
  O(D^2 + chunk_size * D): a JAX array is reduced on its device with ``lax.scan``; a NumPy array
  (or memmap) is streamed to the device one chunk at a time through a jitted accumulator.
- :func:`compute_spectrum` accumulates Sigma and diagonalises it in float64 by default whenever the
  data are concrete (not traced under ``jit``/``vmap``), and returns the result in the data's
  floating dtype (float32 by default). A float32 eigendecomposition is accurate only relative to
  the *largest* eigenvalue (its error is about D * 6e-8 * lam_0 in absolute terms), so on image data,
  whose spectra fall by 10^3-10^4 over the top few hundred directions, it loses the small ones:
  measured on Fashion-MNIST (N = 10,000, docs/data.md) a float32 path put eigenvalues among the
  top 256 off by up to 1.7e-3 relative and eigenvectors at overlap 0.53 with float64's, while the
  float64 path returns every direction to float32 rounding. Under ``jit`` with 64-bit mode off the
  computation stays in the data's dtype (float32), as before; ``accumulate_dtype=jnp.float32``
  asks for that fast path explicitly.
- ``accumulate_dtype=jnp.float64`` accumulates (and diagonalises) in float64. If JAX's 64-bit mode is
  off, that computation runs under a local ``jax.enable_x64(True)`` and the results are returned in
  float32, JAX's default dtype then: the float64 accuracy is kept up to one final rounding (relative
  1e-7 per entry), instead of float32's accumulated error. Under ``jit`` with 64-bit mode off this is
  impossible and raises ``ValueError``.
- Eigenvalues are sorted in descending order, tiny negative round-off values are clipped to 0
  (Sigma is positive semi-definite), and each eigenvector's sign is fixed so that its entry of
  largest magnitude is positive: the same data give the same V on every backend.
"""

from __future__ import annotations

import functools as ft
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from daedyn import _cache
from daedyn._checks import FLOAT64_HINT, check_range, concrete
from daedyn._linear import eigh_desc

__all__ = ["Spectrum", "second_moment", "compute_spectrum", "spectrum_from_second_moment",
           "projected_second_moment", "projected_from_second_moment"]


class Spectrum(NamedTuple):
    """Eigendecomposition of Sigma = X^T X (a pytree).

    Attributes:
      eigvals: (D,) eigenvalues lam_j of the summed second moment, descending, >= 0.
      eigvecs: (D, D) orthonormal eigenvectors V as columns, eigvecs[:, j] belongs to eigvals[j].
      n: number of samples N the sum ran over (so lam_j / n is the per-sample eigenvalue). A Python
        int; like every field it is a pytree leaf, so inside ``jit`` it arrives as a traced scalar.
    """

    eigvals: jax.Array
    eigvecs: jax.Array
    n: int

    def to_xarray(self):
        """The spectrum as an ``xarray.Dataset``: ``lam`` (the coordinate along ``direction``, 0 ..
        D-1), ``lam_per_sample`` = lam / N over ``direction`` and ``eigvecs`` over (``input``,
        ``direction``) (column j is direction j); N is the attribute ``n``.

        Raises:
          ImportError: xarray (the ``sweep`` extra) is not installed.
        """
        from daedyn._xarray import dataset

        lam = np.asarray(self.eigvals)
        fields = {"lam": (lam, ("direction",)), "lam_per_sample": (lam / int(self.n), ("direction",)),
                  "eigvecs": (np.asarray(self.eigvecs), ("input", "direction"))}
        return dataset(fields, attrs={"n": int(self.n)}, what="Spectrum.to_xarray")


def _float_dtype(x_dtype, accumulate_dtype):
    """The dtype to accumulate in: accumulate_dtype, else the floating dtype of x (ints -> default)."""
    if accumulate_dtype is not None:
        dt = jnp.dtype(accumulate_dtype)
        if not jnp.issubdtype(dt, jnp.floating):
            raise ValueError(f"accumulate_dtype must be a floating dtype; got {dt}")
        return dt
    if jnp.issubdtype(x_dtype, jnp.floating):
        if jnp.dtype(x_dtype).itemsize < 4:  # float16 / bfloat16 data: accumulate in float32
            return jnp.dtype(jnp.float32)
        return jnp.dtype(jax.dtypes.canonicalize_dtype(x_dtype))  # NumPy float64 -> float32 unless x64
    return jnp.dtype(jnp.result_type(float))


def _needs_local_x64(dt) -> bool:
    return dt.itemsize == 8 and not jax.config.read("jax_enable_x64")


@ft.partial(jax.jit, static_argnames=("chunk_size", "dtype", "precision"))
def _scan_second_moment(x, chunk_size: int, dtype, precision):
    """sum_i x_i x_i^T over the rows of a device array, chunk_size rows per scan step.

    The last chunk is read at the clamped start N - chunk_size; rows that an earlier step already
    counted are zeroed, so no padded copy of x is made.
    """
    n, d = x.shape
    steps = -(-n // chunk_size)

    def body(acc, i):
        start = i * chunk_size
        begin = jnp.minimum(start, n - chunk_size)
        c = lax.dynamic_slice_in_dim(x, begin, chunk_size, axis=0).astype(dtype)
        keep = (begin + jnp.arange(chunk_size)) >= start
        c = jnp.where(keep[:, None], c, jnp.zeros((), dtype))
        return acc + jnp.matmul(c.T, c, precision=precision), None

    acc, _ = lax.scan(body, jnp.zeros((d, d), dtype), jnp.arange(steps))
    return acc


@ft.partial(jax.jit, static_argnames=("precision",), donate_argnums=0)
def _add_chunk(acc, c, precision):
    c = c.astype(acc.dtype)
    return acc + jnp.matmul(c.T, c, precision=precision)


def _check_castable(c: np.ndarray, dtype) -> None:
    """ValueError when host data hold values beyond ``dtype`` (the cast would overflow, and warn,
    before any finiteness check could run)."""
    big = float(np.finfo(dtype).max)
    if np.issubdtype(c.dtype, np.floating) and c.dtype.itemsize > np.dtype(dtype).itemsize and (
            np.abs(c) > big).any():
        raise ValueError(f"x has values beyond {np.dtype(dtype).name} (|x| > {big:.3g}); pass "
                         "accumulate_dtype=jnp.float64 (under jax.enable_x64) or rescale the data")


def _stream_second_moment(x: np.ndarray, chunk_size: int, dtype, precision):
    """Host array -> device one chunk at a time; the last chunk is zero-padded (zero rows add 0)."""
    n, d = x.shape
    acc = jnp.zeros((d, d), dtype)
    for start in range(0, n, chunk_size):
        c = np.asarray(x[start:start + chunk_size])
        if c.shape[0] < chunk_size and n > chunk_size:  # keep one compiled shape
            c = np.concatenate([c, np.zeros((chunk_size - c.shape[0], d), c.dtype)])
        _check_castable(c, dtype)
        acc = _add_chunk(acc, jnp.asarray(c, dtype), precision)
    return acc


def _second_moment_impl(x, chunk_size, dt, precision):
    n = x.shape[0]
    chunk = min(int(chunk_size), n)
    if isinstance(x, np.ndarray):
        return _stream_second_moment(x, chunk, dt, precision)
    return _scan_second_moment(jnp.asarray(x), chunk, dt, precision)


def _dtype_of(x):
    return x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype


def _check_x(x):
    shape = np.shape(x)
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"x must have shape (N, D) with N, D >= 1; got shape {shape}")
    dt = _dtype_of(x)
    if not (np.issubdtype(dt, np.number) or dt == np.bool_) or np.issubdtype(dt, np.complexfloating):
        raise ValueError(f"x must be a real numeric array; got dtype {dt}")


def _finite_result(name: str, result, x, dtype):
    """``result`` (Sigma or projections), or ``ValueError``: "x must be finite" when the data hold NaN
    or inf, otherwise the accumulation overflowed ``dtype``. One device flag; traced values pass."""
    if isinstance(result, jax.core.Tracer) or isinstance(x, jax.core.Tracer):
        return result
    ok = (np.all(np.isfinite(result)) if isinstance(result, np.ndarray)
          else jnp.all(jnp.isfinite(jnp.asarray(result))))
    if bool(ok):
        return result
    finite = (all(bool(np.all(np.isfinite(x[i:i + 65536]))) for i in range(0, x.shape[0], 65536))
              if isinstance(x, np.ndarray) else bool(jnp.all(jnp.isfinite(x))))
    if not finite:
        raise ValueError("x must be finite: the data contain NaN or inf (clean or drop those rows first)")
    raise ValueError(f"{name} overflowed {jnp.dtype(dtype).name} (the data are finite but their squares "
                     f"summed out of range); pass accumulate_dtype=jnp.float64, rescale the data, or "
                     f"{FLOAT64_HINT}")


def second_moment(x, *, chunk_size: int = 4096, accumulate_dtype=None, precision="highest") -> jax.Array:
    """Summed second moment Sigma = X^T X = sum_i x_i x_i^T (paper Section 2), computed in chunks.

    Args:
      x: (N, D) samples as rows. A JAX array is reduced on its device with ``lax.scan``; a NumPy
        array (or ``np.memmap``) is streamed to the device chunk by chunk, so it may exceed device
        memory.
      chunk_size: rows per chunk, >= 1; peak extra memory is about chunk_size * D values.
      accumulate_dtype: dtype to accumulate in; default the floating dtype of x (integer input:
        JAX's default float; float16/bfloat16 input: float32). float64 without JAX's 64-bit mode:
        see the module docstring.
      precision: matmul precision (``jax.lax.Precision`` or "highest"/"high"/"default"); the default
        "highest" avoids TF32/bf16 passes on GPUs and TPUs.
    Returns:
      Sigma, (D, D), symmetric, in ``accumulate_dtype`` (or float32 as explained above).
    Raises:
      ValueError: x is not 2-d or empty, x holds NaN or inf ("x must be finite"), Sigma overflows the
        accumulation dtype (use float64), chunk_size < 1, or float64 requested under jit with 64-bit
        mode off.
    Example:
      >>> x = jnp.array([[1.0, 0.0], [1.0, 2.0]])
      >>> second_moment(x, chunk_size=1).tolist()
      [[2.0, 2.0], [2.0, 4.0]]
    """
    _check_x(x)
    check_range("chunk_size", chunk_size, 1)
    dt = _float_dtype(_dtype_of(x), accumulate_dtype)
    if _needs_local_x64(dt):
        if isinstance(x, jax.core.Tracer):
            raise ValueError("accumulate_dtype=float64 needs jax_enable_x64 under jit/vmap/grad: wrap "
                             "the call in `with jax.enable_x64(True):` or set JAX_ENABLE_X64=1")
        x_host = np.asarray(x)
        with jax.enable_x64(True):
            sigma = np.asarray(_second_moment_impl(x_host, chunk_size, dt, precision))
        _finite_result("Sigma = X^T X", sigma, x_host, dt)
        with np.errstate(over="ignore"):
            sigma32 = sigma.astype(np.float32)
        return _finite_result("Sigma = X^T X", jnp.asarray(sigma32), x_host, jnp.float32)
    return _finite_result("Sigma = X^T X", _second_moment_impl(x, chunk_size, dt, precision), x, dt)


def spectrum_from_second_moment(sigma, n: int) -> Spectrum:
    """Eigendecomposition of a given Sigma (D, D): eigenvalues descending, sign-fixed eigenvectors.

    Args:
      sigma: (D, D) symmetric positive semi-definite matrix (the sum over samples, not the mean).
      n: number of samples N behind sigma, >= 1.
    Returns:
      :class:`Spectrum` in sigma's floating dtype; each eigenvector's largest-magnitude entry is
      positive and eigenvalues below 0 (round-off) are set to 0. A concrete sigma is diagonalised in
      float64 whatever its dtype (then rounded to it); a traced one in its own dtype.
    Example:
      >>> s = spectrum_from_second_moment(jnp.array([[1.0, 0.0], [0.0, 3.0]]), n=2)
      >>> s.eigvals.tolist(), s.eigvecs.tolist(), s.n
      ([3.0, 1.0], [[0.0, 1.0], [1.0, 0.0]], 2)
    """
    shape = np.shape(sigma)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"sigma must be a square (D, D) matrix; got shape {shape}")
    if shape[0] < 1:
        raise ValueError("sigma must be a non-empty (D, D) matrix, D >= 1; got shape (0, 0)")
    check_range("n", n, 1)
    c = concrete(sigma)
    if c is not None and not (np.issubdtype(c.dtype, np.number) or c.dtype == np.bool_):
        raise ValueError(f"sigma must be a real numeric matrix; got dtype {c.dtype}")
    if c is not None and np.issubdtype(c.dtype, np.complexfloating):
        raise ValueError(f"sigma must be a real numeric matrix; got dtype {c.dtype}")
    if c is not None and not np.all(np.isfinite(c)):
        raise ValueError("sigma must be finite: it contains NaN or inf")
    sigma = jnp.asarray(sigma)
    if not jnp.issubdtype(sigma.dtype, jnp.floating):
        sigma = sigma.astype(jnp.result_type(float))
    if isinstance(sigma, jax.core.Tracer):  # traced: the matrix's own dtype is all there is
        w, v = eigh_desc(sigma)
        return Spectrum(w, v, int(n))
    w, v = _eigh_float64(sigma)  # concrete: diagonalised in float64 (module docstring), then cast
    return Spectrum(jnp.asarray(w, sigma.dtype), jnp.asarray(v, sigma.dtype), int(n))


def _eigh_float64(sigma) -> tuple[jax.Array, jax.Array]:
    """:func:`eigh_desc` of a concrete Sigma in float64 (a local ``jax.enable_x64`` when 64-bit mode
    is off): every eigenvalue to float64 rounding relative to the largest, not float32's."""
    with jax.enable_x64(True):
        w, v = eigh_desc(jnp.asarray(sigma, jnp.float64))
        return np.asarray(w), np.asarray(v)


def _spectrum_float64(x, chunk_size: int, precision, out_dtype) -> Spectrum:
    """The accurate default of :func:`compute_spectrum` for concrete data: Sigma accumulated and
    diagonalised in float64 (on x's device for a JAX array, streamed for a NumPy one), the results
    rounded once to ``out_dtype``."""
    n = np.shape(x)[0]
    if isinstance(x, np.ndarray):  # results in out_dtype could not hold such data
        for start in range(0, n, 65536):
            _check_castable(np.asarray(x[start:start + 65536]), out_dtype)
    with jax.enable_x64(True):
        sigma = _second_moment_impl(x, chunk_size, jnp.dtype(jnp.float64), precision)
        sigma = _finite_result("Sigma = X^T X", sigma, x, jnp.float64)
        w, v = eigh_desc(sigma)
        w, v = np.asarray(w), np.asarray(v)
    with np.errstate(over="ignore"):
        w_out = w.astype(out_dtype)
    _finite_result("the eigenvalues of Sigma", w_out, x, out_dtype)
    return Spectrum(jnp.asarray(w_out), jnp.asarray(v.astype(out_dtype)), int(n))


def compute_spectrum(x, *, chunk_size: int = 4096, accumulate_dtype=None, precision="highest",
                     cache: bool | None = None) -> Spectrum:
    """Spectrum of Sigma = X^T X for samples x (N, D): :func:`second_moment` then eigh.

    By default (``accumulate_dtype=None``) concrete data are accumulated and diagonalised in float64
    and the results returned in x's floating dtype (float32 for float32 or integer data): every
    direction is then accurate to that dtype's rounding, where a float32 eigendecomposition is
    accurate only relative to the largest eigenvalue (module docstring). Traced data (under ``jit``
    with 64-bit mode off) stay in x's dtype. ``accumulate_dtype=jnp.float32`` is the float32 path on
    purpose; ``jnp.float64`` returns float64 under 64-bit mode (float32 without it).

    Args:
      x, chunk_size, precision: as in :func:`second_moment`.
      accumulate_dtype: None (the accurate default above), or the dtype to accumulate and
        diagonalise in (:func:`second_moment`).
      cache: True: read the result from the on-disk spectrum cache, or compute and store it there
        (keyed by a hash of the data and the options; ``daedyn._cache``, docs/workflow.md);
        False: never; None (default): only inside a ``daedyn._cache.caching()`` block (the
        ``daedyn`` command opens one unless ``--no-cache``). Never under ``jit``.
    Returns:
      :class:`Spectrum` with ``n = N``.
    Example:
      >>> x = jnp.array([[3.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
      >>> compute_spectrum(x).eigvals.tolist()
      [9.0, 2.0]
    """
    _check_x(x)
    check_range("chunk_size", chunk_size, 1)
    if _cache.enabled(cache) and not isinstance(x, jax.core.Tracer):
        opts = dict(chunk_size=chunk_size, accumulate_dtype=accumulate_dtype, precision=precision)
        # one key per dtype; the float64 default has its own (entries of the old float32 default differ)
        acc = "default-float64" if accumulate_dtype is None else np.dtype(accumulate_dtype).name
        w, v, n = _cache.load_or_compute(np.asarray(x), lambda: compute_spectrum(x, cache=False, **opts),
                                         chunk_size=int(chunk_size), accumulate_dtype=acc,
                                         precision=str(precision))
        return Spectrum(jnp.asarray(w), jnp.asarray(v), int(n))
    n = np.shape(x)[0]
    dt = _float_dtype(_dtype_of(x), accumulate_dtype)
    if accumulate_dtype is None and not isinstance(x, jax.core.Tracer):
        return _spectrum_float64(x, chunk_size, precision, dt)
    if _needs_local_x64(dt) and not isinstance(x, jax.core.Tracer):
        x_host = np.asarray(x)
        with jax.enable_x64(True):
            sigma = _finite_result("Sigma = X^T X", _second_moment_impl(x_host, chunk_size, dt, precision),
                                   x_host, dt)
            w, v = eigh_desc(sigma)
            w, v = np.asarray(w), np.asarray(v)
        with np.errstate(over="ignore"):
            w32 = w.astype(np.float32)
        _finite_result("the eigenvalues of Sigma", w32, x_host, jnp.float32)
        return Spectrum(jnp.asarray(w32), jnp.asarray(v, jnp.float32), int(n))
    sigma = second_moment(x, chunk_size=chunk_size, accumulate_dtype=accumulate_dtype, precision=precision)
    return spectrum_from_second_moment(sigma, n)


@ft.partial(jax.jit, static_argnames=("chunk_size", "precision"))
def _scan_projected(v, x, chunk_size: int, precision):
    n, d = x.shape
    steps = -(-n // chunk_size)

    def body(acc, i):
        start = i * chunk_size
        begin = jnp.minimum(start, n - chunk_size)
        c = lax.dynamic_slice_in_dim(x, begin, chunk_size, axis=0).astype(v.dtype)
        keep = (begin + jnp.arange(chunk_size)) >= start
        p = jnp.matmul(c, v, precision=precision)
        return acc + jnp.sum(jnp.where(keep[:, None], p * p, jnp.zeros((), v.dtype)), axis=0), None

    acc, _ = lax.scan(body, jnp.zeros((v.shape[1],), v.dtype), jnp.arange(steps))
    return acc


@ft.partial(jax.jit, static_argnames=("precision",), donate_argnums=0)
def _add_projected(acc, v, c, precision):
    p = jnp.matmul(c.astype(v.dtype), v, precision=precision)
    return acc + jnp.sum(p * p, axis=0)


def _stream_projected(v, x: np.ndarray, chunk_size: int, precision):
    """Host array -> device one chunk at a time (zero-padded last chunk: zero rows add 0)."""
    n, d = x.shape
    acc = jnp.zeros((v.shape[1],), v.dtype)
    for start in range(0, n, chunk_size):
        c = np.asarray(x[start:start + chunk_size])
        if c.shape[0] < chunk_size and n > chunk_size:
            c = np.concatenate([c, np.zeros((chunk_size - c.shape[0], d), c.dtype)])
        acc = _add_projected(acc, v, jnp.asarray(c), precision)
    return acc


def projected_second_moment(spectrum: Spectrum, x, *, chunk_size: int = 4096,
                            precision="highest") -> jax.Array:
    """Diagonal of V^T X^T X V for another set x: each sample's energy along the training eigenvectors.

    For the training set itself this equals ``spectrum.eigvals``; for a held-out set it is the
    ``projected_j`` that ``daedyn.theory.predicted_loss`` needs (sum_i (v_j . x_i)^2).

    Args:
      spectrum: the training :class:`Spectrum` (its eigvecs V, (D, D) or (D, K) for K directions).
      x: (M, D) evaluation samples, processed chunk_size rows at a time: a JAX array on its device
        with ``lax.scan``, a NumPy array (or memmap) streamed to the device chunk by chunk.
      chunk_size: rows per chunk, >= 1.
      precision: matmul precision.
    Returns:
      (K,) array in the eigenvectors' dtype, >= 0.
    Example:
      >>> s = spectrum_from_second_moment(jnp.diag(jnp.array([1.0, 3.0])), n=1)  # V swaps the axes
      >>> projected_second_moment(s, jnp.array([[1.0, 2.0]])).tolist()
      [4.0, 1.0]
    """
    _check_x(x)
    check_range("chunk_size", chunk_size, 1)
    v = jnp.asarray(spectrum.eigvecs)
    if np.shape(x)[1] != v.shape[0]:
        raise ValueError(
            f"x has D = {np.shape(x)[1]} columns but the spectrum's eigenvectors have D = {v.shape[0]}")
    chunk = min(int(chunk_size), np.shape(x)[0])
    if isinstance(x, np.ndarray):
        return _finite_result("the projections", _stream_projected(v, x, chunk, precision), x, v.dtype)
    return _finite_result("the projections", _scan_projected(v, jnp.asarray(x), chunk, precision), x, v.dtype)


def projected_from_second_moment(spectrum: Spectrum, sigma) -> jax.Array:
    """diag(V^T Sigma V) from a second-moment matrix (D, D) instead of the samples.

    Example:
      >>> s = spectrum_from_second_moment(jnp.diag(jnp.array([1.0, 3.0])), n=1)  # V swaps the axes
      >>> projected_from_second_moment(s, jnp.array([[2.0, 1.0], [1.0, 3.0]])).tolist()
      [3.0, 2.0]
    """
    v = jnp.asarray(spectrum.eigvecs)
    c = concrete(sigma)
    if c is not None and not np.all(np.isfinite(c)):
        raise ValueError("sigma must be finite: it contains NaN or inf")
    sigma = jnp.asarray(sigma, v.dtype)
    if sigma.shape != (v.shape[0], v.shape[0]):
        raise ValueError(f"sigma must have shape ({v.shape[0]}, {v.shape[0]}); got {sigma.shape}")
    return jnp.sum(v * jnp.matmul(sigma, v, precision="highest"), axis=0)
