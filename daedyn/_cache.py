"""On-disk cache of eigendecompositions of Sigma = X^T X, keyed by a hash of the data and options.

:func:`daedyn.spectrum.compute_spectrum` consults it when asked (``cache=True``) or, with
``cache=None`` (the default), inside a :func:`caching` block: the ``daedyn`` command opens one
around every subcommand (``--no-cache`` turns it off), so train, tune, figures, crosscheck and
sweeps run from the command line compute the spectrum of a dataset once and read it back
afterwards. Library calls outside such a block compute as before and write nothing.

Where: ``$DAEDYN_CACHE`` if set, else ``$XDG_CACHE_HOME/daedyn``, else ``~/.cache/daedyn``; one
``spectra/<sha256>.npz`` per (data, options): the key hashes the array's bytes, shape and dtype,
``chunk_size``, ``accumulate_dtype``, ``precision``, JAX's 64-bit mode and the cache format, so a
change to any of them is a miss, never a wrong hit. Files are written atomically (a temporary
file and a rename), so an interrupted write leaves no partial entry; an unreadable entry is
recomputed and replaced. ``daedyn cache clear`` (:func:`clear`) empties it; ``daedyn cache info``
shows where it is and its size.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import zipfile
from collections.abc import Callable, Iterator

import numpy as np

__all__ = ["cache_dir", "caching", "enabled", "spectrum_key", "load_or_compute", "clear", "info"]

FORMAT = "daedyn-spectrum/1"
_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("daedyn_spectrum_cache", default=False)
_FOLDER: contextvars.ContextVar[str | None] = contextvars.ContextVar("daedyn_cache_folder", default=None)


def cache_dir() -> str:
    """The cache folder: the active ``caching(folder=...)``'s, else ``$DAEDYN_CACHE``, else
    ``$XDG_CACHE_HOME/daedyn``, else ``~/.cache/daedyn``."""
    if _FOLDER.get() is not None:
        return _FOLDER.get()
    if os.environ.get("DAEDYN_CACHE"):
        return os.path.abspath(os.path.expanduser(os.environ["DAEDYN_CACHE"]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "daedyn")


@contextlib.contextmanager
def caching(on: bool = True, *, folder: str | os.PathLike | None = None) -> Iterator[None]:
    """Within the block, ``compute_spectrum(..., cache=None)`` uses the cache (``on=False``: never),
    kept in ``folder`` when given (else :func:`cache_dir`'s default)."""
    tokens = (_ACTIVE.set(bool(on)),
              _FOLDER.set(None if folder is None else os.path.abspath(os.fspath(folder))))
    try:
        yield
    finally:
        _ACTIVE.reset(tokens[0])
        _FOLDER.reset(tokens[1])


def enabled(cache: bool | None) -> bool:
    """Whether a call with ``cache=`` uses the cache (None: whatever the active :func:`caching` says)."""
    return _ACTIVE.get() if cache is None else bool(cache)


def spectrum_key(x: np.ndarray, **options) -> str:
    """sha256 of the data (bytes, shape, dtype), the options and the cache format.

    Example:
      >>> a = np.arange(6.0).reshape(3, 2)
      >>> spectrum_key(a, chunk_size=4) == spectrum_key(a.copy(), chunk_size=4)
      True
      >>> spectrum_key(a, chunk_size=4) == spectrum_key(a, chunk_size=8)
      False
    """
    import jax

    h = hashlib.sha256()
    x = np.ascontiguousarray(x)
    meta = dict(options, format=FORMAT, shape=x.shape, dtype=str(x.dtype),
                x64=bool(jax.config.jax_enable_x64))
    h.update(repr(sorted(meta.items())).encode())
    h.update(memoryview(x).cast("B"))
    return h.hexdigest()


def _path(key: str) -> str:
    return os.path.join(cache_dir(), "spectra", f"{key}.npz")


def load_or_compute(x: np.ndarray, compute: Callable[[], tuple], **options) -> tuple:
    """``(eigvals, eigvecs, n)`` from the cache entry of ``(x, options)``, or ``compute()`` stored there.

    Reading or writing problems never fail the computation: an unreadable entry is recomputed
    and replaced, an unwritable cache folder is skipped.
    """
    path = _path(spectrum_key(x, **options))
    try:
        with np.load(path) as f:
            if str(f["format"]) == FORMAT:
                return f["eigvals"], f["eigvecs"], int(f["n"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        pass  # absent or damaged: compute it
    eigvals, eigvecs, n = compute()
    try:
        from daedyn._checkpoint import atomic_write

        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_write(path, "spectrum cache") as tmp, open(tmp, "wb") as f:
            np.savez(f, eigvals=np.asarray(eigvals), eigvecs=np.asarray(eigvecs), n=np.asarray(n),
                     format=np.asarray(FORMAT))
    except OSError:
        pass  # a read-only or full disk: the result is still right, only not cached
    return eigvals, eigvecs, n


def info() -> dict:
    """Where the cache is, how many spectra it holds and their total size in bytes."""
    folder = os.path.join(cache_dir(), "spectra")
    files = [os.path.join(folder, f) for f in os.listdir(folder)] if os.path.isdir(folder) else []
    files = [f for f in files if f.endswith(".npz")]
    return {"path": cache_dir(), "spectra": len(files), "bytes": sum(os.path.getsize(f) for f in files)}


def clear() -> int:
    """Delete every cached spectrum; returns how many were removed."""
    folder = os.path.join(cache_dir(), "spectra")
    removed = 0
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.endswith(".npz") or ".tmp-" in name:
                os.remove(os.path.join(folder, name))
                removed += name.endswith(".npz")
    return removed
