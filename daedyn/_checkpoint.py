"""Files a run writes: output locations checked up front, atomic writes, and checkpoints.

:func:`check_writable` refuses (``ValueError`` naming the option) an output path whose folder is
missing or cannot be written, before any long work starts. :func:`atomic_write` writes a file
through a temporary file in the same folder and a rename, and removes the temporary file when the
write fails (disk full, interrupt): the target is either the old file or the complete new one.

A checkpoint is one ``.npz`` file holding the leaves of the state pytree (``state_<i>``), the
record arrays (``rec_<name>``), the number of finished chunks and a fingerprint of everything that
determines the run. :func:`load` returns ``None`` when the file does not exist and refuses (with a
``ValueError``, leaving the file untouched) a checkpoint whose fingerprint differs, so a changed
setting never silently continues someone else's run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

__all__ = ["Checkpoint", "atomic_write", "check_writable", "fingerprint", "load", "save"]


class Checkpoint(NamedTuple):
    state_leaves: list[np.ndarray]
    records: dict[str, np.ndarray]
    done: int


def _key_bytes(x) -> bytes:
    a = jax.numpy.asarray(x)
    if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        a = jax.random.key_data(a)
    return np.ascontiguousarray(np.asarray(a)).tobytes()


def fingerprint(settings: Mapping[str, Any], arrays: Mapping[str, Any]) -> str:
    """SHA-256 over JSON-able ``settings`` and the bytes, shapes and dtypes of ``arrays``."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=repr).encode())
    for name in sorted(arrays):
        a = arrays[name]
        if a is None:
            h.update(f"{name}:None".encode())
            continue
        raw = _key_bytes(a)
        shape = tuple(np.shape(a))
        h.update(f"{name}:{shape}:{len(raw)}".encode())
        h.update(raw)
    return h.hexdigest()


def check_writable(name: str, path: str | os.PathLike, *, folder: bool = False) -> str:
    """Refuse an output location that cannot be written, before any work is done.

    Args:
      name: the option or parameter named in the message (e.g. ``"--out"``, ``"checkpoint"``).
      path: a file to be written (its folder must exist), or with ``folder=True`` a folder to be
        created if missing (its nearest existing ancestor must be a writable folder).
      folder: whether ``path`` is a folder.
    Returns:
      ``path`` as a string.
    Raises:
      ValueError: naming ``name`` and the path: a missing folder, a file where a folder is needed
        (or the reverse), or a place this process cannot create files in (probed by creating and
        removing an empty temporary file, which also catches read-only mounts and root).
    Example:
      >>> check_writable("--out", "/no/such/folder/r.npz")
      Traceback (most recent call last):
      ...
      ValueError: --out: the folder '/no/such/folder' does not exist (create it first, or choose another path)
    """
    text = os.fspath(path)
    if not text:
        raise ValueError(f"{name}: empty path")
    if folder:
        if os.path.exists(text) and not os.path.isdir(text):
            raise ValueError(f"{name}: {text!r} exists and is not a folder")
        probe = os.path.abspath(text)
        while not os.path.exists(probe):
            probe = os.path.dirname(probe)
        if not os.path.isdir(probe):
            raise ValueError(f"{name}: cannot create {text!r}: {probe!r} is not a folder")
    else:
        if text.endswith(os.sep) or os.path.isdir(text):
            raise ValueError(f"{name}: {text!r} is a folder; give a file name")
        probe = os.path.dirname(text) or "."
        if not os.path.isdir(probe):
            what = "is not a folder" if os.path.exists(probe) else "does not exist"
            raise ValueError(f"{name}: the folder {probe!r} {what} (create it first, or choose "
                             "another path)")
        if os.path.exists(text) and not os.access(text, os.W_OK):
            raise ValueError(f"{name}: {text!r} exists and is not writable")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".daedyn-probe-")
    except OSError as err:
        raise ValueError(f"{name}: cannot write to the folder {probe!r} ({err.strerror or err})") from None
    os.close(fd)
    os.unlink(tmp)
    return text


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, what: str = "file") -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder; on success rename it to ``path``.

    On any failure the temporary file is removed and ``path`` is left as it was. An ``OSError``
    (disk full, permission) is re-raised with ``path`` as its file name and ``what`` in its text.

    Example:
      >>> import os, tempfile
      >>> target = os.path.join(tempfile.mkdtemp(), "a.txt")
      >>> with atomic_write(target) as tmp, open(tmp, "w") as f:
      ...     _ = f.write("done")
      >>> sorted(os.listdir(os.path.dirname(target)))
      ['a.txt']
    """
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        code = err.errno or errno.EIO
        raise OSError(code, f"writing the {what} failed: {err.strerror or os.strerror(code)}",
                      path) from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def save(path: str | os.PathLike, state, records: Mapping[str, np.ndarray], done: int,
         fp: str) -> None:
    """Write ``state`` (a pytree), ``records`` and ``done`` to ``path`` via a temporary file and
    an atomic rename: an interrupt or a failed write (disk full) leaves the previous checkpoint
    intact and no temporary file behind."""
    leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(state)]
    payload = {f"state_{i}": leaf for i, leaf in enumerate(leaves)}
    payload.update({f"rec_{k}": np.asarray(v) for k, v in records.items()})
    payload["done"] = np.asarray(done)
    payload["fingerprint"] = np.asarray(fp)
    with atomic_write(path, "checkpoint") as tmp, open(tmp, "wb") as f:
        np.savez(f, **payload)
        f.flush()
        os.fsync(f.fileno())


def load(path: str | os.PathLike, fp: str, n_leaves: int) -> Checkpoint | None:
    """The checkpoint at ``path``, ``None`` when there is none; ``ValueError`` when it belongs to
    another run (different fingerprint) or is unreadable (the file is left as it is)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return None
    if os.path.isdir(path):
        raise ValueError(f"checkpoint {path!r} is a folder; pass a file path")
    try:
        with open(path, "rb") as f:  # our handle: closed even when NumPy fails half-way
            z = np.load(f, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an .npz archive")
            with z:
                stored = str(z["fingerprint"])
                leaves = [z[f"state_{i}"] for i in range(n_leaves)]
                records = {k[4:]: z[k] for k in z.files if k.startswith("rec_")}
                done = int(z["done"])
    except PermissionError:
        raise
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ValueError(f"checkpoint {path!r} is truncated, corrupt or not a daedyn checkpoint "
                         f"({type(err).__name__}: {reason}); delete it or pass another checkpoint "
                         "path to start afresh") from None
    if stored != fp:
        raise ValueError(f"checkpoint {path!r} belongs to a different run (data, settings or key "
                         "differ); pass another checkpoint path or delete it to start afresh")
    return Checkpoint(leaves, records, done)
