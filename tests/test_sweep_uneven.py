"""The sweep planner and runner on uneven chunks (daedyn/sweep/_plan.py ``chunk_region``, ``_layout``;
daedyn/sweep/_run.py): blocks clipped at the grid's edge, padded batches whose padding repeats a bad
point, checked against exact enumeration of the grid (every point once, its value, its status, the
bad-point count)."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

import daedyn.sweep as sweep

A = [1.0, 2.0, 3.0, 4.0, 5.0]
B = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 4.5]  # the last column is bad for a <= 4.5: edge blocks hold bad points


def risky(a, b):
    return {"y": jnp.log(a - b) * jnp.ones(2), "z": a * b}


def exact():
    a, b = np.meshgrid(A, B, indexing="ij")
    return a, b, a <= b  # log of 0 or of a negative number


@pytest.mark.parametrize("chunk_size, shape, n_chunks", [
    (3, (1, 3), 15),  # b cut 3 + 3 + 1: the last block of each row is clipped to 1 point (2 padding)
    (15, (2, 7), 3),  # a cut 2 + 2 + 1: the last block is one row of 7 (7 padding)
])
def test_uneven_chunks_against_enumeration(tmp_path, chunk_size, shape, n_chunks):
    s = sweep.SweepSpec(function=risky, axes={"a": A, "b": B}, chunk_size=chunk_size)
    summary = sweep.run(s, path=tmp_path / "u.zarr")
    p = summary.plan
    assert p.chunk_shape == shape and p.n_chunks == n_chunks == summary.chunks_computed
    # the regions tile the grid: every point exactly once, sizes short only at the edge
    seen = np.zeros((len(A), len(B)), int)
    for k in range(p.n_chunks):
        start, size = p.chunk_region(k)
        assert all(0 < n <= c for n, c in zip(size, shape))
        seen[tuple(slice(i, i + n) for i, n in zip(start, size))] += 1
    assert (seen == 1).all()
    a, b, bad = exact()
    assert summary.bad_points == int(bad.sum()) == 10
    ds = sweep.open_results(tmp_path / "u.zarr")
    np.testing.assert_array_equal(ds.status.values, bad.astype(np.int8))
    # every point holds its own value (float32 a * b of small whole/half numbers: exact)
    np.testing.assert_array_equal(ds.z.values[~bad], (a * b)[~bad])
    np.testing.assert_allclose(ds.y.values[~bad][:, 0], np.log((a - b)[~bad]), rtol=1e-6)  # float32 log
    assert np.isnan(ds.y.values[bad]).all() and np.isnan(ds.z.values[bad]).all()


def test_chunk_regions_tile_every_grid():
    # the planner's blocks for grids and targets that do not divide evenly, by exact enumeration
    for grid, target in itertools.product([(7,), (5, 7), (3, 4, 5), (1, 9, 2)], [1, 2, 3, 5, 8, 13, 40]):
        spec = sweep.SweepSpec(function=lambda **kw: {"y": sum(kw.values())},
                               axes={f"x{i}": list(range(g)) for i, g in enumerate(grid)}, chunk_size=target)
        p = sweep.plan(spec, n_devices=1)
        seen = np.zeros(grid, int)
        for k in range(p.n_chunks):
            start, size = p.chunk_region(k)
            seen[tuple(slice(i, i + n) for i, n in zip(start, size))] += 1
        assert (seen == 1).all(), (grid, target, p.chunk_shape)
        assert p.n_chunks == int(np.prod([-(-g // c) for g, c in zip(grid, p.chunk_shape)]))
        assert p.chunk_points <= max(target, 1) and p.batch_size >= p.chunk_points


def _labels(a, b, c):
    """Each point's own coordinates, so any mix-up of points or axes shows."""
    return {"v": jnp.stack([a, b, c], -1), "s": a * 100.0 + b * 10.0 + c}


# chunk_size 4: c cut (2 + 2 + 1, a clipped edge block); 10: b cut with c whole; 50: a cut. n_devices 1:
# one vmap per axis over the block; 2: per point over the flat batch (the cases cover each path and
# batching on an edge-clipped layout without the full product: each case compiles its own programs)
@pytest.mark.parametrize("chunk_size, n_devices, batching", [
    (4, 1, "vmap"), (10, 1, "vmap"), (50, 1, "vmap"), (4, 2, "vmap"), (50, 2, "vmap"),
    (4, 1, "broadcast"), (10, 2, "broadcast"),
])
def test_chunk_programs_give_each_point_its_values(chunk_size, n_devices, batching):
    from daedyn.sweep import _plan, _run

    axes = {"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0, 2.0, 3.0], "c": [0.0, 0.25, 0.5, 0.75, 1.0]}
    spec = sweep.SweepSpec(function=_labels, axes=axes, chunk_size=chunk_size, batching=batching)
    prepared = _plan.prepare(spec)
    plan = _plan.make_plan(prepared, n_devices=n_devices)
    compute, _ = _run._chunk_fns(prepared, plan)
    q = jnp.arange(plan.batch_size, dtype=jnp.int32)
    grid = np.stack(np.meshgrid(*axes.values(), indexing="ij"), -1)
    seen = 0
    for k in range(plan.n_chunks):
        start, size = plan.chunk_region(k)
        out = compute(jnp.asarray(start, jnp.int32), jnp.int32(np.prod(size)), q)
        v = np.asarray(out["v"]).reshape(-1, 3)[:np.prod(size)]
        want = grid[tuple(slice(s, s + n) for s, n in zip(start, size))].reshape(-1, 3)
        np.testing.assert_array_equal(v, want)  # exact: the values are copied, not computed
        np.testing.assert_array_equal(np.asarray(out["s"]).reshape(-1)[:np.prod(size)],
                                      want @ np.array([100.0, 10.0, 1.0], np.float32))
        seen += np.prod(size)
    assert seen == 60
