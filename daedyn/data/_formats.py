"""Parsers for the official on-disk formats: IDX (MNIST, Fashion-MNIST) and CIFAR-10 python batches.

Every problem with a file (missing, truncated, wrong magic number, wrong shape, unexpected pickle
content) raises :class:`DataFormatError` or :class:`DatasetUnavailable` with the file's path in the
message. Nothing here imports JAX or TensorFlow.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import zlib
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "DataFormatError", "DatasetUnavailable", "read_idx", "read_idx_images", "read_idx_labels",
    "read_cifar10_batch", "read_cifar10_batches", "read_cifar10_archive", "parse_cifar10_batch",
    "read_npy",
]


class DatasetUnavailable(ValueError):
    """The requested dataset is not present: not in ``data_dir``, not installed, tfds not prepared.

    The message lists every place that was searched and how to provide the data. Figure code catches
    this class to skip a figure; a file that exists but is broken raises :class:`DataFormatError`.
    """


class DataFormatError(ValueError):
    """A data file exists but is truncated, corrupt or not in the expected format (message names it)."""


# IDX type codes (third byte of the magic number) -> big-endian NumPy dtype.
_IDX_DTYPES = {
    0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: str | os.PathLike) -> bytes:
    """All bytes of ``path``, gunzipped when the file starts with the gzip magic (whatever its name)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DatasetUnavailable(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataFormatError(f"{path}: is a directory, expected a data file") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:  # BadGzipFile is an OSError
            raise DataFormatError(f"{path}: corrupt or truncated gzip stream ({e})") from None
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzipped or not.

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a big-endian
    uint32; the data follow in C order. The byte count must match the header exactly.

    Args:
      path: file path; gzip compression is detected from the content, not the name.
    Returns:
      An array with the header's shape, in native byte order (uint8 for image and label files).
    Raises:
      DatasetUnavailable: the file does not exist.
      DataFormatError: bad magic number, unknown type code, or too few / too many data bytes.
    Example:
      >>> import gzip, tempfile, os
      >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte.gz")
      >>> with gzip.open(path, "wb") as f:
      ...     _ = f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
      >>> read_idx(path)
      array([7, 2, 1], dtype=uint8)
    """
    path = os.fspath(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataFormatError(f"{path}: {len(raw)} bytes, too short for an IDX header (4 bytes)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataFormatError(
            f"{path}: not an IDX file: magic number {raw[:4].hex()} (expected 0000tt0n with type code "
            f"tt in {sorted(f'{k:02x}' for k in _IDX_DTYPES)})"
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{path}: truncated IDX header ({len(raw)} bytes, {ndim} dims need {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "trailing bytes"
        raise DataFormatError(
            f"{path}: {what}: header says shape {shape} of {dtype.name} ({expected} data bytes), "
            f"file has {got} data bytes"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx_images(path: str | os.PathLike, *, image_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read an IDX image file (``*-images-idx3-ubyte[.gz]``) as uint8 of shape (N, rows, cols).

    Args:
      path: file path, gzipped or not.
      image_shape: if given, the required (rows, cols), e.g. (28, 28) for MNIST.
    Raises:
      DataFormatError: not a 3-d uint8 IDX file, or the wrong image size (and see :func:`read_idx`).
    """
    a = read_idx(path)
    if a.dtype != np.uint8 or a.ndim != 3:
        raise DataFormatError(
            f"{os.fspath(path)}: expected an IDX image file (uint8, 3 dims: count, rows, cols); "
            f"got {a.dtype.name} with shape {a.shape}"
        )
    if image_shape is not None and a.shape[1:] != tuple(image_shape):
        raise DataFormatError(
            f"{os.fspath(path)}: images are {a.shape[1]}x{a.shape[2]}, expected "
            f"{image_shape[0]}x{image_shape[1]}"
        )
    return a


def read_idx_labels(path: str | os.PathLike, *, num_classes: int = 10) -> np.ndarray:
    """Read an IDX label file (``*-labels-idx1-ubyte[.gz]``) as int64 of shape (N,).

    Raises:
      DataFormatError: not a 1-d uint8 IDX file, or a label outside [0, num_classes).
    """
    a = read_idx(path)
    if a.dtype != np.uint8 or a.ndim != 1:
        raise DataFormatError(
            f"{os.fspath(path)}: expected an IDX label file (uint8, 1 dim); got {a.dtype.name} "
            f"with shape {a.shape}"
        )
    if a.size and a.max() >= num_classes:
        raise DataFormatError(f"{os.fspath(path)}: label {a.max()} outside [0, {num_classes})")
    return a.astype(np.int64)


# --- CIFAR-10 "python version" ------------------------------------------------------------------

def _numpy_reconstruct():
    core = getattr(np, "_core", None) or np.core  # NumPy 2 / NumPy 1 (no deprecated import path)
    return core.multiarray._reconstruct


def _numpy_frombuffer():
    core = getattr(np, "_core", None) or np.core
    return core.numeric._frombuffer


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a CIFAR-10 batch needs.

    The official files hold a dict of byte strings, ints, a list of labels, a list of file names and
    one uint8 NumPy array. Building the array needs numpy's ``_reconstruct``, ``ndarray`` and
    ``dtype`` (``_codecs.encode`` and ``_frombuffer`` appear when the same data are re-pickled by
    Python 3); every other global is refused, so a crafted file cannot run code.
    """

    def __init__(self, file, path):
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module, name):
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
            ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
            ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
            ("numpy", "ndarray"): lambda: np.ndarray,
            ("numpy", "dtype"): lambda: np.dtype,
            ("_codecs", "encode"): lambda: __import__("codecs").encode,
            # protocol 2 writes an empty byte string (a 0-image array's data) as bytes(): harmless
            ("__builtin__", "bytes"): lambda: bytes,
            ("builtins", "bytes"): lambda: bytes,
        }
        if (module, name) not in allowed:
            raise DataFormatError(
                f"{self._path}: refusing to unpickle global {module}.{name}: a CIFAR-10 batch holds only "
                f"a dict of strings, ints, lists and one uint8 NumPy array"
            )
        return allowed[(module, name)]()


def read_cifar10_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 "python version" batch file (``data_batch_k`` or ``test_batch``).

    The file is a pickled dict with ``b"data"``: uint8 (N, 3072), each row 1024 red, 1024 green,
    1024 blue values of a 32 x 32 image in row-major order, and ``b"labels"``: N ints in [0, 10).
    Unpickling is restricted to the types such a file contains (see ``_BatchUnpickler``).

    Returns:
      (images, labels): uint8 (N, 32, 32, 3) in height-width-channel order (as tfds gives them)
      and int64 (N,).
    Raises:
      DatasetUnavailable: the file does not exist.
      DataFormatError: truncated pickle, foreign content, missing keys or wrong shapes.
    """
    path = os.fspath(path)
    return parse_cifar10_batch(_read_bytes(path), path)


def parse_cifar10_batch(raw: bytes, path: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_cifar10_batch` on the bytes of a batch; ``path`` names it in error messages."""
    try:
        obj = _BatchUnpickler(io.BytesIO(raw), path).load()
    except DataFormatError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, UnicodeDecodeError) as e:
        raise DataFormatError(
            f"{path}: not a readable CIFAR-10 batch pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise DataFormatError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    obj = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    missing = [k for k in ("data", "labels") if k not in obj]
    if missing:
        raise DataFormatError(
            f"{path}: CIFAR-10 batch dict lacks key(s) {missing}; has {sorted(map(str, obj))}")
    data, labels = obj["data"], obj["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype.name} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataFormatError(f"{path}: b'data' must be uint8 of shape (N, 3072); got {desc}")
    if data.shape[0] == 0:
        raise DataFormatError(f"{path}: the batch holds 0 images (a CIFAR-10 batch holds 10000); the file is "
                              "damaged or incomplete")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataFormatError(f"{path}: b'labels' is not a list of integers") from None
    if labels.shape != (data.shape[0],):
        raise DataFormatError(f"{path}: {labels.shape} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataFormatError(f"{path}: labels outside [0, 10)")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_cifar10_batches(paths: Iterable[str | os.PathLike] | str | os.PathLike
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Read and concatenate CIFAR-10 batch files in the given order.

    Args:
      paths: one path or a sequence of paths (e.g. ``data_batch_1`` ... ``data_batch_5``).
    Returns:
      (images uint8 (N, 32, 32, 3), labels int64 (N,)).
    Raises:
      DatasetUnavailable / DataFormatError: as :func:`read_cifar10_batch`, naming the file.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise ValueError("paths must name at least one CIFAR-10 batch file")
    parts = [read_cifar10_batch(p) for p in paths]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"


def read_cifar10_archive(path: str | os.PathLike,
                         names: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Read batches ``names`` (e.g. "data_batch_1") straight from the official ``cifar-10-python.tar.gz``.

    Members are read into memory, never extracted to disk. Each is parsed as in
    :func:`read_cifar10_batch`.

    Raises:
      DataFormatError: the archive is truncated or corrupt, or lacks one of the batches.
    """
    import tarfile

    path = os.fspath(path)
    out = []
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}
            for name in names:
                if name not in members:
                    raise DataFormatError(f"{path}: archive has no member {name!r} (has {sorted(members)})")
                raw = tar.extractfile(members[name]).read()
                out.append(parse_cifar10_batch(raw, f"{path}:{members[name].name}"))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataFormatError(f"{path}: corrupt or truncated tar archive ({type(e).__name__}: {e})") from None
    return out


def find_first(dirs: Sequence[str], names: Sequence[str]) -> str | None:
    """The first existing ``dir/name`` over dirs (outer) and names (inner), or None."""
    for d in dirs:
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p):
                return p
    return None


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """Read a ``.npy`` file of real numbers, refusing pickles and unreadable files by name.

    Args:
      path: the file.
    Returns:
      The array as stored (its dtype: integer, boolean or floating).
    Raises:
      FileNotFoundError / PermissionError: the file is missing or unreadable (an ``OSError``).
      DataFormatError: not a ``.npy`` file, truncated, pickled objects, or not real numbers.
    Example:
      >>> import os, tempfile
      >>> path = os.path.join(tempfile.mkdtemp(), "a.npy")
      >>> with open(path, "wb") as f:
      ...     _ = f.write(b"not numpy")
      >>> read_npy(path)
      Traceback (most recent call last):
      ...
      daedyn.data._formats.DataFormatError: ...a.npy: not a readable .npy file (...)
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise DataFormatError(f"{path}: is a directory, expected a .npy file")
    try:
        a = np.load(path, allow_pickle=False)
    except (FileNotFoundError, PermissionError):
        raise
    except (ValueError, OSError, EOFError, TypeError) as e:
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise DataFormatError(f"{path}: not a readable .npy file ({type(e).__name__}: {reason})") from None
    if not isinstance(a, np.ndarray):  # np.load also opens .npz archives
        a.close()
        raise DataFormatError(f"{path}: an .npz archive, expected a .npy file holding one array")
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
            or a.dtype == np.bool_):
        raise DataFormatError(f"{path}: expected real numbers; got dtype {a.dtype}")
    return a
