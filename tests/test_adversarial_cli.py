"""Hostile input to every ``daedyn`` subcommand, data file, checkpoint and sweep store (issue 15).

Each row of ``CASES`` is one bad or extreme input: the command line (``{d}`` is a folder of
prepared bad files), the exit code, and words the last line of stderr must contain (the option or
the file it names). Every case also checks that no traceback is printed, that our own errors are
exactly one line, and that the folder is unchanged afterwards: nothing written, nothing lost (the
existing checkpoint, sweep store and output file there are byte-for-byte the same).

The tests after the table simulate failures that need a patch: disk full while writing a
checkpoint, results or a sweep chunk; a missing optional extra; a concurrent sweep writer.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import pickle
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from cli_helpers import run_cli, snapshot
from data_fixtures import write_idx, write_mnist_dir

# --- the prepared folder -------------------------------------------------------------------------

SPEC = {"function": "theory.fixed_point", "axes": {"lam": [1.0, 2.0, 3.0], "eps": [0.0, 1.0]}}


def _npy(d, name, a):
    np.save(os.path.join(d, name), a, allow_pickle=True)


def _write(path, data):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _make_files(d):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(20, 4)).astype(np.float32)
    _npy(d, "good.npy", x)
    bad = x.astype(np.float64).copy()
    bad[3, 2] = np.inf
    _npy(d, "inf.npy", bad)
    bad[3, 2] = np.nan
    _npy(d, "nan.npy", bad)
    _npy(d, "ninf.npy", -np.abs(bad) * np.inf)
    _npy(d, "empty.npy", np.zeros((0, 4)))
    _npy(d, "nocols.npy", np.zeros((4, 0)))
    _npy(d, "one_row.npy", x[:1])
    _npy(d, "vec.npy", x[0])
    _npy(d, "cube.npy", x.reshape(5, 4, 4))
    _npy(d, "text.npy", np.array([["a", "b"], ["c", "d"]]))
    _npy(d, "complex.npy", x.astype(np.complex64))
    _npy(d, "object.npy", np.array([[1, None], [2, 3]], dtype=object))
    _npy(d, "big.npy", np.full((4, 3), 1e300))
    with open(os.path.join(d, "garbage.npy"), "wb") as f:
        f.write(b"this is not numpy at all")
    raw = _read(os.path.join(d, "good.npy"))
    with open(os.path.join(d, "truncated.npy"), "wb") as f:
        f.write(raw[:150])
    with open(os.path.join(d, "archive.npy"), "wb") as f:  # an .npz under a .npy name
        np.savez(f, x=x)
    os.mkdir(os.path.join(d, "folder.npy"))
    os.mkdir(os.path.join(d, "emptydir"))
    # spectra for simulate --matrix --eigvals
    _npy(d, "eig2d.npy", np.ones((2, 2)))
    _npy(d, "eigneg.npy", np.array([1.0, -0.5]))
    _npy(d, "eignan.npy", np.array([1.0, np.nan]))
    _npy(d, "eigempty.npy", np.zeros(0))
    # MNIST folders with one fault each
    for name in ("trunc", "magic", "shape", "labels", "gzip"):
        write_mnist_dir(os.path.join(d, f"mnist_{name}"), n_train=6, n_test=2)
    imgs = os.path.join(d, "mnist_trunc", "train-images-idx3-ubyte.gz")
    data = gzip.decompress(_read(imgs))
    _write(imgs, gzip.compress(data[:-100]))
    imgs = os.path.join(d, "mnist_magic", "train-images-idx3-ubyte.gz")
    _write(imgs, gzip.compress(b"\x12\x34" + data[2:]))
    write_idx(os.path.join(d, "mnist_shape", "train-images-idx3-ubyte.gz"),
              np.zeros((6, 10, 10), np.uint8))
    write_idx(os.path.join(d, "mnist_labels", "train-labels-idx1-ubyte.gz"), np.zeros(5, np.uint8))
    imgs = os.path.join(d, "mnist_gzip", "train-images-idx3-ubyte.gz")
    _write(imgs, _read(imgs)[:40])
    # CIFAR-10 batch folders with one fault each (Python 3 pickles; protocol does not matter here)
    good = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    cifar = {
        "evil": b"cos\nsystem\n(S'echo hacked'\ntR.",
        "truncated": pickle.dumps(good, protocol=2)[:60],
        "list": pickle.dumps([1, 2, 3], protocol=2),
        "nokeys": pickle.dumps({b"labels": [0]}, protocol=2),
        "shape": pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, protocol=2),
        "labels": pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 11]}, protocol=2),
    }
    for name, raw in cifar.items():
        folder = os.path.join(d, f"cifar_{name}")
        os.mkdir(folder)
        _write(os.path.join(folder, "data_batch_1"), raw)
    folder = os.path.join(d, "cifar_tar")
    os.mkdir(folder)
    _write(os.path.join(folder, "cifar-10-python.tar.gz"), b"\x1f\x8b\x08 broken tar")
    folder = os.path.join(d, "cifar_tarnobatch")
    os.mkdir(folder)
    with tarfile.open(os.path.join(folder, "cifar-10-python.tar.gz"), "w:gz") as tar:
        tar.add(os.path.join(d, "good.npy"), arcname="cifar-10-batches-py/readme")
    # checkpoints that cannot be read
    _write(os.path.join(d, "ck_garbage.npz"), b"PK\x03\x04 not really a zip")
    buf = _read(os.path.join(d, "archive.npy"))
    _write(os.path.join(d, "ck_truncated.npz"), buf[: len(buf) // 2])
    with open(os.path.join(d, "ck_foreign.npz"), "wb") as f:
        np.savez(f, weights=x)
    os.mkdir(os.path.join(d, "ck_folder.npz"))
    # an existing result file and a finished sweep store that must survive every refused run
    _write(os.path.join(d, "existing.npz"), b"results of an earlier run")
    _write(os.path.join(d, "spec.json"), json.dumps(SPEC))
    assert run_cli_quiet(["sweep", os.path.join(d, "spec.json"), "--out", os.path.join(d, "store.zarr"),
                          "--quiet"]) == 0
    other = dict(SPEC, axes={"lam": [5.0], "eps": [0.0]})
    _write(os.path.join(d, "other.json"), json.dumps(other))
    _write(os.path.join(d, "chunk0.json"), json.dumps(dict(SPEC, chunk_size=0)))
    _write(os.path.join(d, "unknown.json"), json.dumps(dict(SPEC, colour="red")))
    _write(os.path.join(d, "nofn.json"), json.dumps({"axes": SPEC["axes"]}))
    _write(os.path.join(d, "list.json"), json.dumps([1, 2]))
    _write(os.path.join(d, "badfn.json"), json.dumps(dict(SPEC, function="theory.no_such_fn")))
    _write(os.path.join(d, "infaxis.json"),
           json.dumps(dict(SPEC, axes={"lam": [1.0, float("inf")], "eps": [0.0]})))
    _write(os.path.join(d, "emptyaxis.json"), json.dumps(dict(SPEC, axes={"lam": [], "eps": [0.0]})))
    _write(os.path.join(d, "broken.json"), '{"function": ')
    _write(os.path.join(d, "broken.toml"), "function = [unclosed\n")
    _write(os.path.join(d, "spec.txt"), "{}")
    _write(os.path.join(d, "binary.toml"), b"\xff\xfe\x00garbage")
    os.mkdir(os.path.join(d, "notastore"))
    _write(os.path.join(d, "notastore", "keep.txt"), "user data")
    # a sweep store being written by a live process (this one): a second writer must be refused
    _write(os.path.join(d, "busy.zarr.lock"),
           json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))


def run_cli_quiet(argv):
    from daedyn.cli import main

    try:
        return main(argv)
    except SystemExit as e:
        return e.code


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("adversarial"))
    _make_files(d)
    return d


# --- the table -------------------------------------------------------------------------------------

TRAIN = ["train", "--dataset", "{d}/good.npy", "--hidden", "2", "--epochs", "10", "--save-every", "5",
         "--quiet"]
TUNE = ["tune", "--dataset", "{d}/good.npy", "--heldout", "5", "--epochs", "10", "--max-steps", "2"]
CROSS = ["crosscheck", "--eigvals", "3,2,1", "--n", "10", "--hidden", "2", "--epochs", "20"]
SIM = ["simulate", "--epochs", "10", "--quiet"]
MAT = SIM + ["--matrix", "--dim", "3"]
SWEEP = ["sweep", "{d}/spec.json", "--quiet"]
USAGE = "usage"  # argparse's own error: usage line(s), then "daedyn ...: error: ..."

# (id, argv, exit code, words in the last line of stderr[, USAGE])
CASES = [
    # top level
    ("no-command", [], 2, []),
    ("unknown-command", ["frobnicate"], 2, ["invalid choice"], USAGE),
    ("unknown-option", ["theory", "--frob"], 2, ["unrecognized arguments"], USAGE),
    # theory
    ("theory-lam-inf", ["theory", "--lam", "inf"], 2, ["--lam", "inf"]),
    ("theory-lam-nan", ["theory", "--lam", "nan"], 2, ["--lam", "nan"]),
    ("theory-lam-neg", ["theory", "--lam", "1,-1"], 2, ["--lam", "-1"]),
    ("theory-lam-text", ["theory", "--lam", "one"], 2, ["--lam", "'one'"], USAGE),
    ("theory-lam-empty", ["theory", "--lam", ","], 2, ["--lam", "at least one"], USAGE),
    ("theory-eps-neg-inf", ["theory", "--eps=-inf"], 2, ["--eps"]),
    ("theory-gamma-nan", ["theory", "--gamma", "nan"], 2, ["--gamma"]),
    ("theory-tau-0", ["theory", "--tau", "0"], 2, ["--tau"]),
    ("theory-tau-inf", ["theory", "--tau", "inf"], 2, ["--tau"]),
    ("theory-n-0", ["theory", "--n", "0"], 2, ["--n"]),
    ("theory-f-1", ["theory", "--fraction", "1"], 2, ["--fraction"]),
    ("theory-f-nan", ["theory", "--fraction", "nan"], 2, ["--fraction"]),
    ("theory-w0-neg", ["theory", "--w0", "-1"], 2, ["--w0"]),
    ("theory-w0-inf", ["theory", "--w0", "inf"], 2, ["--w0"]),
    ("theory-w1-alone", ["theory", "--w1", "0.1"], 2, ["--w1 and --w2"]),
    ("theory-w1-inf", ["theory", "--w1", "inf", "--w2", "0.1"], 2, ["--w1"]),
    ("theory-w1-w0", ["theory", "--w1", "0.1", "--w0", "0.1"], 2, ["not allowed with"], USAGE),
    ("theory-w1-gamma", ["theory", "--w1", "0.1", "--w2", "0.1", "--gamma", "0.5"], 2, ["--gamma"]),
    ("theory-points-1", ["theory", "--points", "1"], 2, ["--points"]),
    ("theory-points-huge", ["theory", "--points", "1000000000"], 2, ["--points"]),
    ("theory-times-neg", ["theory", "--times", "0,-1"], 2, ["--times"]),
    ("theory-tmax-0", ["theory", "--t-max", "0"], 2, ["--t-max"]),
    ("theory-plot-nodir", ["theory", "--plot", "{d}/missing/p.png"], 2, ["--plot", "does not exist"]),
    ("theory-plot-format", ["theory", "--plot", "{d}/p.xyz"], 2, ["--plot", "unknown image format"]),
    ("theory-plot-folder", ["theory", "--plot", "{d}/emptydir"], 2, ["--plot", "is a folder"]),
    ("theory-plot-proc", ["theory", "--plot", "/proc/p.png"], 2, ["--plot", "/proc"]),
    ("theory-device", ["theory", "--device", "tpu"], 2, ["--device tpu"]),
    ("theory-lam-beyond-float32", ["theory", "--lam", "1e300"], 2, ["lam", "float32", "--x64"]),
    ("theory-w-product-beyond-float32", ["theory", "--w1", "1e30", "--w2", "1e30"], 2, ["float32", "--x64"]),
    ("theory-device-bogus", ["theory", "--device", "quantum"], 2, ["--device"], USAGE),
    # simulate, scalar
    ("sim-alpha-inf", SIM + ["--alpha", "inf"], 2, ["--alpha", "inf"]),
    ("sim-alpha-0", SIM + ["--alpha", "0"], 2, ["--alpha"]),
    ("sim-alpha-subnormal", SIM + ["--alpha", "1e-320"], 2, ["--alpha", "tau"]),
    ("sim-n-inf", SIM + ["--n", "inf"], 2, ["--n"]),
    ("sim-n-huge-tau", SIM + ["--n", "1e308", "--alpha", "1e-10"], 2, ["--n", "--alpha"]),
    ("sim-lam-nan", SIM + ["--lam", "nan"], 2, ["--lam"]),
    ("sim-eps-neg", SIM + ["--eps", "-0.5"], 2, ["--eps"]),
    ("sim-epochs-0", SIM[:1] + ["--epochs", "0"], 2, ["--epochs"]),
    ("sim-save-every-0", SIM + ["--save-every", "0"], 2, ["--save-every"]),
    ("sim-save-every-3", SIM + ["--save-every", "3"], 2, ["--save-every", "multiple"]),
    ("sim-dt-0", SIM + ["--dt", "0", "--method", "rk4"], 2, ["--dt"]),
    ("sim-w1-inf", SIM + ["--w1", "inf"], 2, ["--w1"]),
    ("sim-w2-nan", SIM + ["--w2", "nan"], 2, ["--w2"]),
    ("sim-method", SIM + ["--method", "euler"], 2, ["--method"], USAGE),
    ("sim-backend", SIM + ["--backend", "cuda"], 2, ["--backend"], USAGE),
    ("sim-epochs-float", SIM[:1] + ["--epochs", "1e3"], 2, ["--epochs"], USAGE),
    ("sim-plot-nodir", SIM + ["--plot", "{d}/missing/p.png"], 2, ["--plot", "does not exist"]),
    ("sim-plot-file-parent", SIM + ["--plot", "{d}/good.npy/p.png"], 2, ["--plot", "not a folder"]),
    ("sim-seed-huge", SIM + ["--seed", "18446744073709551616"], 2, ["--seed"], USAGE),
    # simulate, matrix
    ("mat-hidden-0", MAT + ["--hidden", "0"], 2, ["--hidden"]),
    ("mat-hidden-neg", MAT + ["--hidden", "-3"], 2, ["--hidden"]),
    ("mat-dim-0", SIM + ["--matrix", "--dim", "0"], 2, ["--dim"]),
    ("mat-diffrax", MAT + ["--method", "diffrax"], 2, ["diffrax"]),
    ("mat-eps-list", MAT + ["--eps", "0,1"], 2, ["--eps"]),
    ("mat-scale-neg", MAT + ["--init", "random", "--init-scale", "-1"], 2, ["--init-scale"]),
    ("mat-scale-inf", MAT + ["--init", "random", "--init-scale", "inf"], 2, ["--init-scale"]),
    ("mat-eigvals-missing", MAT + ["--eigvals", "{d}/missing.npy"], 1, ["missing.npy", "No such file"]),
    ("mat-eigvals-garbage", MAT + ["--eigvals", "{d}/garbage.npy"], 2, ["garbage.npy"]),
    ("mat-eigvals-2d", MAT + ["--eigvals", "{d}/eig2d.npy"], 2, ["--eigvals", "1-D"]),
    ("mat-eigvals-neg", MAT + ["--eigvals", "{d}/eigneg.npy"], 2, ["--eigvals", "eigneg.npy"]),
    ("mat-eigvals-nan", MAT + ["--eigvals", "{d}/eignan.npy"], 2, ["--eigvals", "eignan.npy"]),
    ("mat-eigvals-empty", MAT + ["--eigvals", "{d}/eigempty.npy"], 2, ["--eigvals"]),
    ("mat-eigvals-text", MAT + ["--eigvals", "{d}/text.npy"], 2, ["text.npy", "real numbers"]),
    ("mat-eigvals-folder", MAT + ["--eigvals", "{d}/folder.npy"], 2, ["folder.npy", "directory"]),
    ("mat-precision", MAT + ["--precision", "max"], 2, ["--precision"], USAGE),
    # train: options
    ("train-noise-no-level", TRAIN + ["--noise", "gaussian"], 2, ["--noise gaussian", "--sigma2"]),
    ("train-laplace-no-level", TRAIN + ["--noise", "laplace"], 2, ["--noise laplace", "--b"]),
    ("train-b-with-gaussian", TRAIN + ["--noise", "gaussian", "--b", "1"], 2, ["--b"]),
    ("train-sigma2-no-noise", TRAIN + ["--sigma2", "0.1"], 2, ["--sigma2"]),
    ("train-sigma2-inf", TRAIN + ["--noise", "gaussian", "--sigma2", "inf"], 2, ["--sigma2"]),
    ("train-b-nan", TRAIN + ["--noise", "laplace", "--b", "nan"], 2, ["--b"]),
    ("train-alpha-nan", TRAIN + ["--alpha", "nan"], 2, ["--alpha"]),
    ("train-alpha-inf", TRAIN + ["--alpha", "inf"], 2, ["--alpha"]),
    ("train-gamma-neg", TRAIN + ["--gamma", "-1"], 2, ["--gamma"]),
    ("train-hidden-0", TRAIN + ["--hidden", "0"], 2, ["--hidden"]),
    ("train-epochs-0", TRAIN + ["--epochs", "0"], 2, ["--epochs"]),
    ("train-batch-0", TRAIN + ["--batch-size", "0"], 2, ["--batch-size"]),
    ("train-batch-big", TRAIN + ["--batch-size", "100"], 2, ["batch_size"]),
    ("train-init-inf", TRAIN + ["--init-scale", "inf"], 2, ["--init-scale"]),
    ("train-seeds-0", TRAIN + ["--seeds", "0"], 2, ["--seeds"]),
    ("train-top-0", TRAIN + ["--top", "0"], 2, ["--top"]),
    ("train-heldout-all", TRAIN + ["--heldout", "19"], 2, ["--heldout"]),
    ("train-n-1", TRAIN + ["--n", "1"], 2, ["--n"]),
    ("train-activation-unknown", TRAIN + ["--activation", "nope"], 2, ["--activation", "'nope'"]),
    ("train-activation-dunder", TRAIN + ["--activation", "__class__"], 2, ["--activation", "__class__"]),
    ("train-activation-not-elementwise", TRAIN + ["--activation", "one_hot"], 2, ["--activation"]),
    ("train-activation-attention", TRAIN + ["--activation", "dot_product_attention"], 2, ["--activation"]),
    ("train-loss-scale", TRAIN + ["--loss-scale", "sum"], 2, ["--loss-scale"], USAGE),
    ("train-device", TRAIN + ["--device", "gpu"], 2, ["--device gpu"]),
    # train: output files, checked before any work
    ("train-out-nodir", TRAIN + ["--out", "{d}/missing/r.npz"], 2, ["--out", "does not exist"]),
    ("train-out-folder", TRAIN + ["--out", "{d}/emptydir"], 2, ["--out", "is a folder"]),
    ("train-out-slash", TRAIN + ["--out", "{d}/new/"], 2, ["--out", "is a folder"]),
    ("train-out-proc", TRAIN + ["--out", "/proc/r.npz"], 2, ["--out", "/proc"]),
    ("train-out-existing-bad-opt", TRAIN + ["--out", "{d}/existing.npz", "--alpha", "-1"], 2,
     ["--alpha"]),
    ("train-plot-nodir", TRAIN + ["--plot", "{d}/missing/p.png"], 2, ["--plot", "does not exist"]),
    ("train-plot-format", TRAIN + ["--plot", "{d}/p.docx"], 2, ["--plot", "unknown image format"]),
    ("train-ckpt-nodir", TRAIN + ["--checkpoint", "{d}/missing/c.npz"],
     2, ["--checkpoint", "does not exist"]),
    ("train-ckpt-folder", TRAIN + ["--checkpoint", "{d}/ck_folder.npz"], 2, ["--checkpoint", "is a folder"]),
    ("train-out-is-ckpt", TRAIN + ["--out", "{d}/same.npz", "--checkpoint", "{d}/same.npz"], 2,
     ["--out", "--checkpoint", "same file"]),
    ("train-out-is-ckpt-suffix", TRAIN + ["--out", "{d}/same", "--checkpoint", "{d}/same.npz"], 2,
     ["same file"]),
    ("train-plot-is-out", TRAIN + ["--out", "{d}/r.png.npz", "--plot", "{d}/r.png.npz"], 2,
     ["--plot", "unknown image format"]),
    # train: checkpoints that cannot be read (left untouched)
    ("train-ckpt-garbage", TRAIN + ["--checkpoint", "{d}/ck_garbage.npz"], 2,
     ["ck_garbage.npz", "corrupt", "delete it"]),
    ("train-ckpt-truncated", TRAIN + ["--checkpoint", "{d}/ck_truncated.npz"], 2,
     ["ck_truncated.npz", "truncated", "delete it"]),
    ("train-ckpt-foreign", TRAIN + ["--checkpoint", "{d}/ck_foreign.npz"], 2,
     ["ck_foreign.npz", "not a daedyn checkpoint"]),
    ("train-ckpt-npy", TRAIN + ["--checkpoint", "{d}/good.npy"], 2, ["good.npy", "checkpoint"]),
    # train: data files
    ("data-missing", TRAIN[:2] + ["{d}/missing.npy"] + TRAIN[3:],
     1, ["dataset not available", "missing.npy"]),
    ("data-inf", TRAIN[:2] + ["{d}/inf.npy"] + TRAIN[3:], 2, ["inf.npy", "must be finite", "row 3"]),
    ("data-nan", TRAIN[:2] + ["{d}/nan.npy"] + TRAIN[3:], 2, ["nan.npy", "must be finite"]),
    ("data-all-nonfinite", TRAIN[:2] + ["{d}/ninf.npy"] + TRAIN[3:], 2, ["ninf.npy", "must be finite"]),
    ("data-empty", TRAIN[:2] + ["{d}/empty.npy"] + TRAIN[3:], 2, ["empty.npy", "empty"]),
    ("data-no-columns", TRAIN[:2] + ["{d}/nocols.npy"] + TRAIN[3:], 2, ["nocols.npy", "empty"]),
    ("data-one-row", TRAIN[:2] + ["{d}/one_row.npy"] + TRAIN[3:], 2, ["--dataset", "2 samples"]),
    ("data-1d", TRAIN[:2] + ["{d}/vec.npy"] + TRAIN[3:], 2, ["vec.npy", "2-D"]),
    ("data-3d", TRAIN[:2] + ["{d}/cube.npy"] + TRAIN[3:], 2, ["cube.npy", "2-D"]),
    ("data-text", TRAIN[:2] + ["{d}/text.npy"] + TRAIN[3:], 2, ["text.npy", "real numbers"]),
    ("data-complex", TRAIN[:2] + ["{d}/complex.npy"] + TRAIN[3:], 2, ["complex.npy", "real numbers"]),
    ("data-pickle", TRAIN[:2] + ["{d}/object.npy"] + TRAIN[3:], 2, ["object.npy", "not a readable"]),
    ("data-garbage", TRAIN[:2] + ["{d}/garbage.npy"] + TRAIN[3:], 2, ["garbage.npy", "not a readable"]),
    ("data-truncated", TRAIN[:2] + ["{d}/truncated.npy"] + TRAIN[3:], 2, ["truncated.npy", "not a readable"]),
    ("data-npz-as-npy", TRAIN[:2] + ["{d}/archive.npy"] + TRAIN[3:], 2, ["archive.npy", ".npz"]),
    ("data-folder", TRAIN[:2] + ["{d}/folder.npy"] + TRAIN[3:], 2, ["folder.npy", "directory"]),
    ("data-n-0", TRAIN + ["--n", "0"], 2, ["--n"]),
    ("data-beyond-float32", TRAIN[:2] + ["{d}/big.npy"] + TRAIN[3:], 2, ["float32", "--x64"]),
    ("data-unknown-name", TRAIN[:2] + ["imagenet"] + TRAIN[3:], 2, ["name must be one of", "imagenet"]),
    ("idx-truncated", TRAIN[:2] + ["mnist", "--data-dir", "{d}/mnist_trunc"] + TRAIN[3:], 2,
     ["train-images-idx3-ubyte.gz", "truncated"]),
    ("idx-magic", TRAIN[:2] + ["mnist", "--data-dir", "{d}/mnist_magic"] + TRAIN[3:], 2,
     ["train-images-idx3-ubyte.gz", "not an IDX file"]),
    ("idx-image-size", TRAIN[:2] + ["mnist", "--data-dir", "{d}/mnist_shape"] + TRAIN[3:], 2,
     ["train-images-idx3-ubyte.gz", "10x10"]),
    ("idx-label-count", TRAIN[:2] + ["mnist", "--data-dir", "{d}/mnist_labels"] + TRAIN[3:], 2,
     ["train-labels-idx1-ubyte.gz", "5 labels"]),
    ("idx-gzip", TRAIN[:2] + ["mnist", "--data-dir", "{d}/mnist_gzip"] + TRAIN[3:], 2,
     ["train-images-idx3-ubyte.gz", "gzip"]),
    ("cifar-malicious-pickle", TRAIN[:2] + ["cifar10", "--data-dir", "{d}/cifar_evil"] + TRAIN[3:], 2,
     ["data_batch_1", "refusing to unpickle"]),
    ("cifar-truncated", TRAIN[:2] + ["cifar10", "--data-dir", "{d}/cifar_truncated"] + TRAIN[3:], 2,
     ["data_batch_1", "not a readable CIFAR-10"]),
    ("cifar-not-dict", TRAIN[:2] + ["cifar10", "--data-dir", "{d}/cifar_list"] + TRAIN[3:], 2,
     ["data_batch_1", "dict"]),
    ("cifar-no-keys", TRAIN[:2] + ["cifar10", "--data-dir", "{d}/cifar_nokeys"] + TRAIN[3:], 2,
     ["data_batch_1", "lacks key"]),
    ("cifar-data-shape", TRAIN[:2] + ["cifar10", "--data-dir", "{d}/cifar_shape"] + TRAIN[3:], 2,
     ["data_batch_1", "(N, 3072)"]),
    ("cifar-labels", TRAIN[:2] + ["cifar10", "--data-dir", "{d}/cifar_labels"] + TRAIN[3:], 2,
     ["data_batch_1", "labels outside"]),
    ("cifar-broken-tar", TRAIN[:2] + ["cifar10", "--data-dir", "{d}/cifar_tar"] + TRAIN[3:], 2,
     ["cifar-10-python.tar.gz", "corrupt or truncated"]),
    ("cifar-tar-no-batch", TRAIN[:2] + ["cifar10", "--data-dir", "{d}/cifar_tarnobatch"] + TRAIN[3:], 2,
     ["cifar-10-python.tar.gz", "data_batch_1"]),
    # tune
    ("tune-epochs-0", TUNE + ["--epochs", "0"], 2, ["--epochs"]),
    ("tune-epochs-inf", TUNE + ["--epochs", "inf"], 2, ["--epochs"]),
    ("tune-alpha-nan", TUNE + ["--alpha", "nan"], 2, ["--alpha"]),
    ("tune-eval-neg", TUNE + ["--eval-sigma2", "-1"], 2, ["--eval-sigma2"]),
    ("tune-steps-0", TUNE + ["--max-steps", "0"], 2, ["--max-steps"]),
    ("tune-eps0-0", TUNE + ["--eps0", "0"], 2, ["--eps0"]),
    ("tune-eps0-inf", TUNE + ["--eps0", "inf"], 2, ["--eps0"]),
    ("tune-eps0-beyond-the-tuning-box", TUNE + ["--eps0", "1e30"], 2, ["--eps0"]),
    # crosscheck
    ("cross-alpha-0", CROSS + ["--alpha", "0"], 2, ["alpha"]),
    ("cross-alpha-inf", CROSS + ["--alpha", "inf"], 2, ["alpha"]),
    ("cross-eps-neg", CROSS + ["--eps", "-1"], 2, ["eps"]),
    ("cross-gamma-nan", CROSS + ["--gamma", "nan"], 2, ["gamma"]),
    ("cross-hidden-0", CROSS + ["--hidden", "0"], 2, ["hidden"]),
    ("cross-epochs-0", CROSS + ["--epochs", "0"], 2, ["epochs"]),
    ("cross-fraction-1", CROSS + ["--fraction", "1"], 2, ["fraction"]),
    ("cross-eigvals-neg", ["crosscheck", "--eigvals", "3,-2", "--n", "10", "--hidden", "1"], 2, ["eigvals"]),
    ("cross-plot-missing-dir", CROSS + ["--plot", "{d}/missing/p.png"], 2, ["--plot"]),
    ("tune-hidden-0", TUNE + ["--hidden", "0"], 2, ["--hidden"]),
    ("tune-heldout-0", TUNE[:3] + ["--heldout", "0"], 2, ["--heldout"]),
    ("tune-heldout-all", TUNE[:3] + ["--heldout", "20"], 2, ["--heldout"]),
    ("tune-route", TUNE + ["--route", "magic"], 2, ["--route"], USAGE),
    ("tune-plot-nodir", TUNE + ["--plot", "{d}/missing/t.png"], 2, ["--plot", "does not exist"]),
    ("tune-data-inf", ["tune", "--dataset", "{d}/inf.npy"] + TUNE[3:], 2, ["inf.npy", "must be finite"]),
    ("tune-data-missing", ["tune", "--dataset", "{d}/missing.npy"] + TUNE[3:], 1, ["dataset not available"]),
    ("tune-device", TUNE + ["--device", "gpu"], 2, ["--device gpu"]),
    # sweep: specs
    ("sweep-spec-missing", ["sweep", "{d}/missing.json"], 1, ["missing.json", "No such file"]),
    ("sweep-spec-ext", ["sweep", "{d}/spec.txt"], 2, ["spec.txt", ".toml, .json"]),
    ("sweep-spec-broken-json", ["sweep", "{d}/broken.json"], 2, ["broken.json", "not valid JSON"]),
    ("sweep-spec-broken-toml", ["sweep", "{d}/broken.toml"], 2, ["broken.toml", "not valid TOML"]),
    ("sweep-spec-binary", ["sweep", "{d}/binary.toml"], 2, ["binary.toml", "not valid TOML"]),
    ("sweep-spec-list", ["sweep", "{d}/list.json"], 2, ["list.json", "table"]),
    ("sweep-spec-unknown-key", ["sweep", "{d}/unknown.json"], 2, ["unknown.json", "colour"]),
    ("sweep-spec-no-function", ["sweep", "{d}/nofn.json"], 2, ["nofn.json", "function"]),
    ("sweep-spec-bad-function", ["sweep", "{d}/badfn.json", "--out", "{d}/new.zarr"], 2, ["no_such_fn"]),
    ("sweep-spec-inf-axis", ["sweep", "{d}/infaxis.json", "--out", "{d}/new.zarr"], 2, ["lam", "inf"]),
    ("sweep-spec-empty-axis", ["sweep", "{d}/emptyaxis.json", "--out", "{d}/new.zarr"], 2, ["lam"]),
    ("sweep-spec-chunk-0", ["sweep", "{d}/chunk0.json"], 2, ["chunk0.json", "chunk_size"]),
    ("sweep-spec-folder", ["sweep", "{d}/emptydir"], 2, ["emptydir", ".toml, .json"]),
    # sweep: options and stores
    ("sweep-chunk-0", SWEEP + ["--chunk-size", "0", "--out", "{d}/new.zarr"], 2, ["--chunk-size"]),
    ("sweep-chunk-neg", SWEEP + ["--chunk-size", "-4", "--dry-run"], 2, ["--chunk-size"]),
    ("sweep-memory", SWEEP + ["--max-memory", "lots", "--out", "{d}/new.zarr"], 2, ["--max-memory", "lots"]),
    ("sweep-memory-0", SWEEP + ["--max-memory", "0", "--out", "{d}/new.zarr"], 2, ["--max-memory"]),
    ("sweep-no-out", SWEEP, 2, ["no output path"]),
    ("sweep-out-empty", SWEEP + ["--out", ""], 2, ["--out", "empty"]),
    ("sweep-out-nodir", SWEEP + ["--out", "{d}/missing/s.zarr"], 2, ["s.zarr", "does not exist"]),
    ("sweep-out-file", SWEEP + ["--out", "{d}/existing.npz"], 2, ["existing.npz", "is a file"]),
    ("sweep-out-proc", SWEEP + ["--out", "/proc/s.zarr"], 2, ["/proc"]),
    ("sweep-out-user-folder", SWEEP + ["--out", "{d}/notastore"], 2, ["notastore", "not a daedyn sweep"]),
    ("sweep-overwrite-user-folder", SWEEP + ["--out", "{d}/notastore", "--overwrite"], 2,
     ["notastore", "not a daedyn sweep"]),
    ("sweep-other-spec", ["sweep", "{d}/other.json", "--out", "{d}/store.zarr", "--quiet"], 2,
     ["store.zarr", "different spec"]),
    ("sweep-locked", SWEEP + ["--out", "{d}/busy.zarr"], 1, ["busy.zarr", "being written by process"]),
    ("sweep-compression", SWEEP + ["--compression", "gzip"], 2, ["--compression"], USAGE),
    ("sweep-device", SWEEP + ["--device", "gpu", "--dry-run"], 2, ["--device gpu"]),
    # figures
    ("figures-no-out", ["figures"], 2, ["--out"], USAGE),
    ("figures-out-file", ["figures", "--out", "{d}/existing.npz", "--only", "1"],
     2, ["--out", "not a folder"]),
    ("figures-out-under-file", ["figures", "--out", "{d}/good.npy/figs", "--only", "1"], 2,
     ["--out", "not a folder"]),
    ("figures-out-proc", ["figures", "--out", "/proc/figs", "--only", "1"], 2, ["--out", "/proc"]),
    ("figures-only-unknown", ["figures", "--out", "{d}/figs", "--only", "99"], 2, ["unknown figure"], USAGE),
    ("figures-only-empty", ["figures", "--out", "{d}/figs", "--only", ","], 2, ["--only"], USAGE),
    ("figures-rate", ["figures", "--out", "{d}/figs", "--wdae-rate", "fast"], 2, ["--wdae-rate"], USAGE),
    ("figures-seed-text", ["figures", "--out", "{d}/figs", "--seed", "x"], 2, ["--seed"], USAGE),
    ("figures-device", ["figures", "--out", "{d}/figs", "--only", "1", "--device", "gpu"],
     2, ["--device gpu"]),
    # bench
    ("bench-out-nodir", ["bench", "--out", "{d}/missing/b.json"], 2, ["--out", "does not exist"]),
    ("bench-out-folder", ["bench", "--out", "{d}/emptydir"], 2, ["--out", "must end in .json"]),
    ("bench-device", ["bench", "--device", "gpu"], 2, ["--device gpu"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, bad_dir, capsys):
    _, argv, code, words, *flags = case
    argv = [a.replace("{d}", bad_dir) for a in argv]
    before = snapshot(bad_dir)
    rc, out, err = run_cli(argv, capsys)
    assert rc == code, (rc, err[-2000:])
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    if code and words:
        assert lines, "no message on stderr"
        last = lines[-1]
        assert last.startswith("daedyn"), last
        for w in words:
            assert w.replace("{d}", bad_dir) in last, (w, last)
        if USAGE not in flags:  # our own errors: exactly one line
            assert len(lines) == 1, err
    assert snapshot(bad_dir) == before, "a refused run wrote or removed files"


def test_enough_cases():
    assert len(CASES) >= 90
    assert len({c[0] for c in CASES}) == len(CASES)
    commands = {c[1][0] for c in CASES if c[1]}
    assert {"theory", "simulate", "train", "tune", "sweep", "figures", "bench"} <= commands


# --- failures that need a patch ------------------------------------------------------------------

def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_checkpoint_disk_full_keeps_old_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    from daedyn import _checkpoint

    path = tmp_path / "ck.npz"
    _checkpoint.save(path, {"w": np.ones(3)}, {"t": np.arange(2)}, 1, "fp")
    before = path.read_bytes()
    monkeypatch.setattr(_checkpoint.np, "savez", _enospc)
    with pytest.raises(OSError) as exc:
        _checkpoint.save(path, {"w": np.zeros(3)}, {"t": np.arange(3)}, 2, "fp")
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ck.npz"]  # no ck.npz.tmp-PID left behind


def test_train_checkpoint_disk_full_one_line(bad_dir, tmp_path, monkeypatch, capsys):
    from daedyn import _checkpoint

    monkeypatch.setattr(_checkpoint.np, "savez", _enospc)
    ck = tmp_path / "ck.npz"
    argv = [a.replace("{d}", bad_dir) for a in TRAIN] + ["--checkpoint", str(ck)]
    rc, _, err = run_cli(argv, capsys)
    line = _one_line(err)
    assert rc == 1 and str(ck) in line and "No space left on device" in line and "checkpoint" in line
    assert os.listdir(tmp_path) == []


def test_train_results_disk_full_keeps_old_file(bad_dir, tmp_path, monkeypatch, capsys):
    import daedyn.cli.train as train_cli

    out = tmp_path / "r.npz"
    out.write_bytes(b"old results")
    monkeypatch.setattr(train_cli, "save_npz", _patched_save_npz(train_cli.save_npz, monkeypatch))
    argv = [a.replace("{d}", bad_dir) for a in TRAIN] + ["--out", str(out)]
    rc, _, err = run_cli(argv, capsys)
    line = _one_line(err)
    assert rc == 1 and str(out) in line and "No space left on device" in line
    assert out.read_bytes() == b"old results" and os.listdir(tmp_path) == ["r.npz"]


def _patched_save_npz(real, monkeypatch):
    def save(path, arrays):
        monkeypatch.setattr(np, "savez", _enospc)  # only while the results are written
        try:
            return real(path, arrays)
        finally:
            monkeypatch.undo()
    return save


def test_float16_data_is_widened(tmp_path, capsys):
    x = np.random.default_rng(1).uniform(size=(20, 4)).astype(np.float16)
    np.save(tmp_path / "half.npy", x)
    argv = [str(tmp_path / "half.npy") if a == "{d}/good.npy" else a for a in TRAIN] + ["--json"]
    rc, out, err = run_cli(argv, capsys)
    assert rc == 0, err
    assert json.loads(out)["dtype"] == "float32"


def _sweep_argv(bad_dir, out):
    return ["sweep", os.path.join(bad_dir, "spec.json"), "--out", str(out), "--chunk-size", "2", "--quiet"]


def test_sweep_disk_full_one_line_then_resumes(bad_dir, tmp_path, monkeypatch, capsys):
    from daedyn.sweep import _store

    real, calls = _store.write_chunk, []

    def flaky(*args):
        calls.append(1)
        if len(calls) == 2:
            _enospc()
        return real(*args)

    monkeypatch.setattr(_store, "write_chunk", flaky)
    out = tmp_path / "s.zarr"
    rc, _, err = run_cli(_sweep_argv(bad_dir, out), capsys)
    line = _one_line(err)
    assert rc == 1 and str(out) in line and "No space left on device" in line and "resume" in line
    assert not os.path.exists(f"{out}.lock")  # the lock goes with the failed run
    monkeypatch.setattr(_store, "write_chunk", real)
    rc, stdout, err = run_cli(_sweep_argv(bad_dir, out) + ["--json"], capsys)
    assert rc == 0, err
    summary = json.loads(stdout)
    assert summary["chunks_skipped"] >= 1 and summary["chunks_computed"] >= 1
    import daedyn.sweep as sweep

    ds = sweep.open_results(out)
    assert ds.attrs["sweep_complete"] and (ds.status.values == 0).all()


def test_sweep_stale_lock_is_replaced(bad_dir, tmp_path, capsys):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead = int(proc.stdout)  # a process that has exited
    out = tmp_path / "s.zarr"
    (tmp_path / "s.zarr.lock").write_text(json.dumps({"pid": dead, "host": os.uname().nodename}))
    rc, _, err = run_cli(_sweep_argv(bad_dir, out), capsys)
    assert rc == 0, err
    assert not os.path.exists(f"{out}.lock")


def test_missing_extra_names_it(bad_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "zarr", None)  # "import zarr" now fails
    rc, _, err = run_cli(_sweep_argv(bad_dir, tmp_path / "s.zarr"), capsys)
    line = _one_line(err)
    assert rc == 1 and "pip install 'daedyn[sweep]'" in line
    assert not os.path.exists(tmp_path / "s.zarr") and not os.path.exists(tmp_path / "s.zarr.lock")


def test_permission_denied_reading_data(bad_dir, monkeypatch, capsys):
    path = os.path.join(bad_dir, "good.npy")

    def denied(file, *a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))

    monkeypatch.setattr(np, "load", denied)
    rc, _, err = run_cli([a.replace("{d}", bad_dir) for a in TRAIN], capsys)
    line = _one_line(err)
    assert rc == 1 and path in line and "Permission denied" in line


def test_unexpected_errors_are_one_line(monkeypatch, capsys):
    from daedyn import theory

    def boom(*a, **k):
        raise TypeError("something deep inside")

    monkeypatch.setattr(theory, "fixed_point", boom)
    rc, _, err = run_cli(["theory"], capsys)
    line = _one_line(err)
    assert rc == 1 and "internal error, TypeError: something deep inside" in line
    monkeypatch.setenv("DAEDYN_TRACEBACK", "1")
    with pytest.raises(TypeError):
        run_cli(["theory"], capsys)

    def backend(*a, **k):
        raise RuntimeError("RESOURCE_EXHAUSTED: out of device memory\nmore detail")

    monkeypatch.delenv("DAEDYN_TRACEBACK")
    monkeypatch.setattr(theory, "fixed_point", backend)
    rc, _, err = run_cli(["theory"], capsys)
    assert rc == 1 and _one_line(err) == "daedyn theory: error: RESOURCE_EXHAUSTED: out of device memory"
