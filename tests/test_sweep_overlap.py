"""daedyn.sweep's overlapped I/O: the writer thread, per-variable compression, direct chunk writes.

Same results with and without overlap and for every compression; a failed write propagates and
loses nothing that was computed; a write interrupted half-way resumes to the uninterrupted result.
"""

import errno
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
import zarr

import daedyn.sweep as sweep
from daedyn.sweep import _chunkfiles, _run, _store
from daedyn.sweep._writer import ChunkWriter

TS = np.linspace(0.0, 3.0, 6)


def closed(lam, eps, w0, *, t):
    fp = lam / (lam + eps)
    return {"w": fp / (1.0 + (fp / w0 - 1.0) * jnp.exp(-2.0 * (lam + eps) * fp * t)), "fp": fp,
            "big": (lam > 1.0).astype(jnp.int32)}


AXES = {"lam": {"geomspace": [0.2, 5.0, 9]}, "eps": [0.0, 0.5, 2.0, 4.0], "w0": [0.01, 0.1]}
SPEC = sweep.SweepSpec(function=closed, axes=AXES, constants={"t": TS}, dims={"w": ["t"]},
                       chunk_size=8)  # 9 chunks of 1 x 4 x 2


def _values(path):
    ds = sweep.open_results(path)
    return {v: ds[v].values for v in ds.data_vars}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "ref.zarr"
    summary = sweep.run(SPEC, path=path, overlap=False, compression="zstd")
    assert summary.n_chunks == 9 and summary.bad_points == 0
    return _values(path)


def _assert_same(path, reference):
    got = _values(path)
    assert set(got) == set(reference)
    for name, want in reference.items():
        np.testing.assert_array_equal(got[name], want, err_msg=name)  # bitwise: same programs, same bytes


@pytest.mark.parametrize("compression", ["auto", "none", "lz4", {"w": "lz4", "status": "none"}])
def test_overlapped_equals_serial_for_every_compression(tmp_path, reference, compression):
    summary = sweep.run(SPEC, path=tmp_path / "o.zarr", compression=compression)
    assert summary.chunks_computed == 9
    _assert_same(tmp_path / "o.zarr", reference)
    attrs = _store.read_attrs(str(tmp_path / "o.zarr"))
    codecs = attrs["sweep_compression"]
    if compression == "auto":  # floats and the status stored raw, integer outputs (big) compressed
        assert codecs == {"w": "none", "fp": "none", "big": "lz4", "status": "none"}
        assert zarr.open_array(str(tmp_path / "o.zarr" / "w")).compressors == ()
        # chunk files side by side ("c.I.J.K"), no folder per chunk index
        assert sorted(os.listdir(tmp_path / "o.zarr" / "status"))[:2] == ["c.0.0.0", "c.1.0.0"]
    elif isinstance(compression, dict):
        assert codecs == {"w": "lz4", "fp": "none", "big": "lz4", "status": "none"}


def test_bad_compression_is_refused_before_compute(tmp_path):
    with pytest.raises(ValueError, match=r"compression must be one of .*got 'gzip'"):
        sweep.run(SPEC, path=tmp_path / "a.zarr", compression="gzip")
    with pytest.raises(ValueError, match=r"compression\['w'\] must be one of"):
        sweep.run(SPEC, path=tmp_path / "a.zarr", compression={"w": "fast"})
    with pytest.raises(ValueError, match=r"compression names unknown variables \['x'\]"):
        sweep.run(SPEC, path=tmp_path / "a.zarr", compression={"x": "lz4"})
    assert not os.path.exists(tmp_path / "a.zarr")


def test_failed_write_propagates_and_keeps_every_computed_chunk(tmp_path, reference, monkeypatch):
    handed = []

    class Spy(ChunkWriter):
        def put(self, item):
            handed.append(item[0])
            super().put(item)

    real = _store.write_chunk

    def flaky(arrays, plan, k, results, status):
        if k == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(arrays, plan, k, results, status)

    monkeypatch.setattr(_run, "ChunkWriter", Spy)
    monkeypatch.setattr(_store, "write_chunk", flaky)
    path = tmp_path / "f.zarr"
    with pytest.raises(OSError, match=r"writing chunk 2 failed \(No space left on device\); the \d+ chunks "
                                      r"recorded are kept: rerun"):
        sweep.run(SPEC, path=path)
    done = _store.done_chunks(str(path))
    # every chunk handed to the writer (computed) but the failed one is recorded, and computing
    # stopped soon after the failure (not all 9 chunks)
    assert 2 in handed and done == set(handed) - {2} and len(handed) < 9
    monkeypatch.setattr(_store, "write_chunk", real)
    resumed = sweep.run(SPEC, path=path)
    assert resumed.chunks_skipped == len(done) and resumed.chunks_computed == 9 - len(done)
    _assert_same(path, reference)


def test_write_interrupted_half_way_resumes_to_the_same_results(tmp_path, reference, monkeypatch):
    real = _chunkfiles.write_many
    calls = {"n": 0}

    def crash_after_outputs(items):  # chunk 3: outputs written, then the process "dies"
        calls["n"] += 1
        real(items)
        if calls["n"] == 2 * 3 + 1:  # two calls per chunk (outputs, then status)
            raise KeyboardInterrupt

    monkeypatch.setattr(_chunkfiles, "write_many", crash_after_outputs)
    path = tmp_path / "i.zarr"
    with pytest.raises(KeyboardInterrupt):
        sweep.run(SPEC, path=path)
    done = _store.done_chunks(str(path))
    assert 3 not in done and {0, 1, 2} <= done
    monkeypatch.setattr(_chunkfiles, "write_many", real)
    resumed = sweep.run(SPEC, path=path)
    assert resumed.chunks_computed == 9 - len(done)
    _assert_same(path, reference)
    log = _store.read_log(str(path))
    assert sorted(r["chunk"] for r in log) == list(range(9))  # each chunk recorded exactly once


@pytest.mark.parametrize("region", [(slice(0, 4), slice(0, 6)), (slice(2, 4), slice(0, 3)),
                                    (slice(1, 3), slice(0, 6)), (slice(3, 5), slice(2, 4)),
                                    (slice(4, 5), slice(3, 6)), (slice(2, 5), slice(0, 6))])
@pytest.mark.parametrize("compressors", [None, "auto"])
@pytest.mark.parametrize("keys", ["nested", "flat"])
def test_direct_chunk_writes_equal_zarr_writes(tmp_path, region, compressors, keys, monkeypatch):
    """Whole uncompressed chunks, and edge chunks up to the array's end (padded with the fill
    value, as zarr stores them), are written directly as files; anything else through zarr."""
    monkeypatch.setattr(_chunkfiles, "WRITE_PIECE", 40)  # many write() calls per chunk file (72 bytes)
    kw = {} if compressors == "auto" else {"compressors": None}
    if keys == "flat":  # the sweep's layout: "c.I.J.K" files in one folder
        kw["chunk_key_encoding"] = _store.FLAT_KEYS
    a = zarr.create_array(str(tmp_path / "a"), shape=(5, 6, 3), chunks=(2, 3, 3), dtype=np.float32,
                          fill_value=np.nan, **kw)
    b = zarr.create_array(str(tmp_path / "b"), shape=(5, 6, 3), chunks=(2, 3, 3), dtype=np.float32,
                          fill_value=np.nan, **kw)
    shape = tuple(r.stop - r.start for r in region) + (3,)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    raw = _chunkfiles.raw_chunks(a, region, x)
    aligned = all(r.start % c == 0 and ((r.stop - r.start) % c == 0 or r.stop == n)
                  for r, c, n in zip(region, (2, 3), (5, 6)))
    assert (raw is not None) == (aligned and compressors is None)
    _chunkfiles.write_many([(a, region, x)])
    b[region] = x
    np.testing.assert_array_equal(a[...], b[...])
    np.testing.assert_array_equal(a[region], x)
    assert not [f for _, _, files in os.walk(tmp_path / "a") for f in files if f.endswith(".partial")]


def test_writer_keeps_order_bounds_its_queue_and_reports_errors():
    seen = []

    def write(i):
        if i == 1:
            raise OSError(errno.EIO, "bad")
        seen.append(i)
        return i

    w = ChunkWriter(write, depth=1)
    for i in range(5):
        w.put(i)
    w.wait_idle()
    assert w.failed and seen == [0, 2, 3, 4]  # items after the failure are still written, in order
    with pytest.raises(OSError, match="bad"):
        w.close()
    assert not w.alive
    with pytest.raises(ValueError, match="depth must be >= 1"):
        ChunkWriter(write, depth=0)


def test_serial_mode_records_every_chunk_before_the_next(tmp_path):
    path = tmp_path / "s.zarr"
    order = []
    sweep.run(SPEC, path=path, overlap=False,
              progress=lambda p: order.append((p.chunks_computed, len(_store.done_chunks(str(path))))))
    assert all(n == d for n, d in order)  # when chunk n is reported, exactly n are recorded
    assert json.loads(sweep.open_results(path).attrs["sweep_spec"])["function"].endswith(":closed")


def test_a_store_of_the_older_layout_resumes(tmp_path, reference, monkeypatch):
    """Stores created before the flat chunk names and the raw status (nested c/I/J/K folders,
    status lz4) keep their own layout when resumed: their chunk keys come from their metadata."""
    real = _chunkfiles.write_many
    calls = {"n": 0}

    def crash_after_outputs(items):
        calls["n"] += 1
        real(items)
        if calls["n"] == 2 * 3 + 1:  # chunk 3's outputs written, then the process "dies"
            raise KeyboardInterrupt

    monkeypatch.setattr(_store, "FLAT_KEYS", {"name": "default", "separator": "/"})
    monkeypatch.setattr(_chunkfiles, "write_many", crash_after_outputs)
    path = tmp_path / "old.zarr"
    with pytest.raises(KeyboardInterrupt):
        sweep.run(SPEC, path=path, compression={"status": "lz4"})
    monkeypatch.undo()
    assert os.path.isdir(path / "w" / "c")  # nested folders, as the older code wrote them
    done = _store.done_chunks(str(path))
    assert 3 not in done and {0, 1, 2} <= done
    resumed = sweep.run(SPEC, path=path)
    assert resumed.chunks_skipped == len(done) and resumed.chunks_computed == 9 - len(done)
    assert _store.read_attrs(str(path))["sweep_compression"]["status"] == "lz4"
    _assert_same(path, reference)


@pytest.mark.parametrize("compression", ["auto", {"status": "lz4"}])
def test_a_chunk_is_complete_exactly_when_its_status_is_written(tmp_path, reference, monkeypatch,
                                                                compression):
    """The status is written after every output (raw file or through zarr), so it is the chunk's
    completion mark: no file per chunk besides the zarr chunks, and a chunk killed after its
    outputs but before its status is not counted and is recomputed."""
    real = _chunkfiles.write_many
    calls = {"n": 0}

    def crash_before_status_of_chunk_4(items):
        calls["n"] += 1
        if calls["n"] == 2 * 4 + 2:  # chunk 4's outputs are written; its status write "dies"
            raise KeyboardInterrupt
        real(items)

    monkeypatch.setattr(_chunkfiles, "write_many", crash_before_status_of_chunk_4)
    path = tmp_path / "s.zarr"
    with pytest.raises(KeyboardInterrupt):
        sweep.run(SPEC, path=path, overlap=False, compression=compression)
    monkeypatch.undo()
    assert _store.done_chunks(str(path)) == {0, 1, 2, 3}  # chunk 4's outputs are there, its status not
    assert "c.4.0.0.0" in os.listdir(path / "w") and not os.path.exists(path / "_sweep" / "done")
    assert sorted(os.listdir(path / "status")) == sorted(["zarr.json", *(f"c.{i}.0.0" for i in range(4))])
    ds = sweep.open_results(path)
    assert ds.attrs["sweep_chunks_done"] == 4 and (ds.status.values[4:] == -1).all()
    resumed = sweep.run(SPEC, path=path, compression=compression)
    assert resumed.chunks_skipped == 4 and resumed.chunks_computed == 5
    _assert_same(path, reference)
    log = _store.read_log(str(path))
    assert sorted(r["chunk"] for r in log) == list(range(9))  # logged once each, after completion


def test_records_of_older_stores_still_count(tmp_path, reference):
    """Stores written before the status became the completion mark have _sweep/done/cK.json
    records; a record still counts as done (the status was written before it)."""
    path = tmp_path / "r.zarr"
    sweep.run(SPEC, path=path)
    os.makedirs(path / "_sweep" / "done")
    (path / "_sweep" / "done" / "c00000007.json").write_text("{}")
    os.remove(path / "status" / "c.7.0.0")  # only the record says chunk 7 is done
    assert 7 in _store.done_chunks(str(path)) and len(_store.done_chunks(str(path))) == 9
