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
file and a rename), so an interrupted write leaves no partial entry. Every entry is verified when
read (shapes against the data, finite values, a sha256 checksum of its arrays written with it); one
that fails is recomputed and replaced with a one-line warning naming its file.
``daedyn cache clear`` (:func:`clear`) deletes the entries daedyn wrote (by their names) and
nothing else; ``daedyn cache info`` shows where the cache is and its size.

Compiled programs: the ``daedyn`` command also keeps XLA's compiled programs in ``xla/`` beside the
spectra (:func:`use_compilation_cache`, JAX's persistent compilation cache), so a command run again
reads them from disk instead of compiling them (``daedyn crosscheck``: 6.0-6.9 s -> 3.3-3.5 s on the
2-core CPU, its spectrum cached in both). A folder the user chose for JAX
(``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is used instead; ``--no-cache`` compiles as before.
``xla/`` is daedyn's own folder: ``clear`` empties it.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator

import numpy as np

__all__ = ["cache_dir", "caching", "enabled", "spectrum_key", "load_or_compute", "clear", "info", "checksum",
           "xla_dir", "use_compilation_cache"]

FORMAT = "daedyn-spectrum/2"  # /2: entries carry a checksum of their arrays
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


#: The names daedyn gives cache entries (the key's 64 hex digits) and their temporary files
#: (``atomic_write``'s ``.tmp-PID``): :func:`clear` and :func:`info` touch nothing else.
_ENTRY = re.compile(r"[0-9a-f]{64}\.npz")
_TEMP = re.compile(r"[0-9a-f]{64}\.npz\.tmp-[0-9]+")


def checksum(eigvals: np.ndarray, eigvecs: np.ndarray, n: int) -> str:
    """sha256 of the stored arrays (bytes, dtypes, shapes) and n, written with each entry and
    compared on every read: an entry edited or damaged after it was written is never used."""
    h = hashlib.sha256()
    for a in (np.ascontiguousarray(eigvals), np.ascontiguousarray(eigvecs)):
        h.update(repr((a.dtype.str, a.shape)).encode())
        h.update(memoryview(a).cast("B"))
    h.update(repr(int(n)).encode())
    return h.hexdigest()


def _verified(f, shape: tuple[int, ...]) -> tuple:
    """``(eigvals, eigvecs, n)`` of an open entry, or ``ValueError`` saying what is wrong with it."""
    if str(f["format"]) != FORMAT:
        raise ValueError(f"format {str(f['format'])!r}, not {FORMAT!r}")
    w, v, n = f["eigvals"], f["eigvecs"], int(f["n"])
    rows, d = shape[0], shape[-1]  # data (n, D)
    if w.shape != (d,) or v.shape != (d, d) or n != rows:
        raise ValueError(f"{w.shape[0] if w.ndim == 1 else w.shape} eigenvalues, eigenvectors {v.shape} and "
                         f"n = {n} do not fit data of shape {tuple(shape)}")
    if str(f["checksum"]) != checksum(w, v, n):
        raise ValueError("its arrays do not match the checksum written with them")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(v))):
        raise ValueError("non-finite eigenvalues or eigenvectors")
    return w, v, n


def load_or_compute(x: np.ndarray, compute: Callable[[], tuple], **options) -> tuple:
    """``(eigvals, eigvecs, n)`` from the cache entry of ``(x, options)``, or ``compute()`` stored there.

    Each entry is verified before it is used: its format, the count and shape of its eigenvalues
    and eigenvectors (D and D x D for data (n, D)), n, the sha256 :func:`checksum` of its arrays
    written with it, and finite values. An entry that fails is recomputed and replaced, with a
    one-line warning naming its file. Reading or writing problems never fail the computation: an
    unwritable cache folder is skipped.
    """
    path = _path(spectrum_key(x, **options))
    try:
        with np.load(path) as f:
            return _verified(f, np.shape(x))
    except FileNotFoundError:
        pass  # not cached yet
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile, EOFError) as err:
        text = " ".join(str(err).split())[:160] or type(err).__name__
        warnings.warn(f"spectrum cache entry {path} is damaged or not daedyn's ({text}); recomputed and "
                      "replaced", RuntimeWarning, stacklevel=3)
    eigvals, eigvecs, n = compute()
    try:
        from daedyn._checkpoint import atomic_write

        os.makedirs(os.path.dirname(path), exist_ok=True)
        w, v = np.asarray(eigvals), np.asarray(eigvecs)
        with atomic_write(path, "spectrum cache") as tmp, open(tmp, "wb") as f:
            np.savez(f, eigvals=w, eigvecs=v, n=np.asarray(n), format=np.asarray(FORMAT),
                     checksum=np.asarray(checksum(w, v, n)))
    except OSError:
        pass  # a read-only or full disk: the result is still right, only not cached
    return eigvals, eigvecs, n


def _own_files(folder: str) -> list[str]:
    """The files of ``folder`` that daedyn wrote (entries and their temporary files), by name."""
    if not os.path.isdir(folder):
        return []
    def own(name):
        p = os.path.join(folder, name)
        return bool(_ENTRY.fullmatch(name) or _TEMP.fullmatch(name)) and os.path.isfile(p) \
            and not os.path.islink(p)
    return [name for name in sorted(os.listdir(folder)) if own(name)]


def info() -> dict:
    """Where the cache is, how many spectra it holds and their total size in bytes, and the same for
    the compiled programs in :func:`xla_dir` (``programs``, ``program_bytes``)."""
    folder = os.path.join(cache_dir(), "spectra")
    files = [os.path.join(folder, f) for f in _own_files(folder) if _ENTRY.fullmatch(f)]
    programs = _xla_files()
    return {"path": cache_dir(), "spectra": len(files), "bytes": sum(os.path.getsize(f) for f in files),
            "programs": sum(map(_is_program, programs)),
            "program_bytes": sum(os.path.getsize(f) for f in programs)}


def clear() -> dict:
    """Delete every cached spectrum (and temporary file of one) daedyn wrote, and the compiled programs
    in :func:`xla_dir`; returns how many of each were removed (``removed``, ``removed_programs``). Other
    files in the spectra folder (any name but ``<64 hex digits>.npz``) are left alone."""
    folder = os.path.join(cache_dir(), "spectra")
    removed = 0
    for name in _own_files(folder):
        os.remove(os.path.join(folder, name))
        removed += bool(_ENTRY.fullmatch(name))
    programs = _xla_files()
    for path in programs:
        os.remove(path)
    return {"removed": removed, "removed_programs": sum(map(_is_program, programs))}


#: JAX evicts the least recently used compiled programs beyond this size
XLA_MAX_BYTES = 1 << 30


def xla_dir() -> str:
    """The folder of compiled programs: ``xla/`` in :func:`cache_dir`."""
    return os.path.join(cache_dir(), "xla")


def _is_program(path: str) -> bool:
    """A compiled program's entry, not JAX's access-time stamp of one (``<entry>-atime``)."""
    return not path.endswith("-atime")


def _xla_files() -> list[str]:
    """The regular files in :func:`xla_dir` (JAX's entries and their access-time stamps)."""
    folder = xla_dir()
    if not os.path.isdir(folder) or os.path.islink(folder):
        return []
    paths = (os.path.join(folder, name) for name in sorted(os.listdir(folder)))
    return [p for p in paths if os.path.isfile(p) and not os.path.islink(p)]


def use_compilation_cache() -> str | None:
    """Turn on JAX's persistent compilation cache in :func:`xla_dir` (every program; up to
    :data:`XLA_MAX_BYTES` where the ``filelock`` package is installed) for this process, so that a
    program compiled by an earlier run is read from disk. Where the user chose a folder for it
    (``JAX_COMPILATION_CACHE_DIR``, or ``jax_compilation_cache_dir`` set in ``jax.config``) that folder
    stays in use; where ``xla_dir()`` cannot be written, nothing changes (compiling as before).
    Returns the folder in use, or None."""
    import jax

    chosen = jax.config.jax_compilation_cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if chosen:
        return chosen
    folder = xla_dir()
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK | os.X_OK):
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    try:  # JAX bounds the folder only with the filelock package (else it fails and caches nothing)
        import filelock  # noqa: F401

        jax.config.update("jax_compilation_cache_max_size", XLA_MAX_BYTES)
    except ImportError:
        pass  # unbounded, as JAX's default: `daedyn cache info` shows its size, `clear` empties it
    return folder
