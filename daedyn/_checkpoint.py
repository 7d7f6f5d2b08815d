"""On-disk checkpoints of a long run: a pytree state plus the records so far, written atomically.

A checkpoint is one ``.npz`` file holding the leaves of the state pytree (``state_<i>``), the
record arrays (``rec_<name>``), the number of finished chunks and a fingerprint of everything that
determines the run. :func:`load` returns ``None`` when the file does not exist and refuses (with a
``ValueError``, leaving the file untouched) a checkpoint whose fingerprint differs, so a changed
setting never silently continues someone else's run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

__all__ = ["Checkpoint", "fingerprint", "load", "save"]


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


def save(path: str | os.PathLike, state, records: Mapping[str, np.ndarray], done: int,
         fp: str) -> None:
    """Write ``state`` (a pytree), ``records`` and ``done`` to ``path`` via a temporary file and
    an atomic rename: an interrupt leaves the previous checkpoint intact."""
    path = os.fspath(path)
    leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(state)]
    payload = {f"state_{i}": leaf for i, leaf in enumerate(leaves)}
    payload.update({f"rec_{k}": np.asarray(v) for k, v in records.items()})
    payload["done"] = np.asarray(done)
    payload["fingerprint"] = np.asarray(fp)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, **payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: str | os.PathLike, fp: str, n_leaves: int) -> Checkpoint | None:
    """The checkpoint at ``path``, ``None`` when there is none; ``ValueError`` when it belongs to
    another run (different fingerprint) or is unreadable (the file is left as it is)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            stored = str(z["fingerprint"])
            leaves = [z[f"state_{i}"] for i in range(n_leaves)]
            records = {k[4:]: z[k] for k in z.files if k.startswith("rec_")}
            done = int(z["done"])
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"checkpoint {path!r} cannot be read ({type(err).__name__}: {err}); "
                         "move it away to start afresh") from None
    if stored != fp:
        raise ValueError(f"checkpoint {path!r} belongs to a different run (data, settings or key "
                         "differ); pass another checkpoint path or delete it to start afresh")
    return Checkpoint(leaves, records, done)
