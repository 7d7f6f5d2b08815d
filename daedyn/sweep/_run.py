"""Running a sweep: one compiled chunk function, sharded over devices, streamed to disk, resumable.

Each chunk is a block of the grid (see ``daedyn.sweep._plan``). The chunk function takes the
block's start indices, its number of valid points and a (B,) index vector sharded over a
``jax.sharding.Mesh`` of the local devices; it reads the block's values of each axis on the device
(on one device, the function is vmapped once per axis over the block, so what depends on some axes
only is computed once per value of those; on several, per point over the flat sharded batch), runs
the sweep function and returns the outputs plus a per-point status. Shapes never change
between chunks, so it is compiled once. While chunk k+1 computes (asynchronous dispatch), chunk
k is copied to the host and handed to the writer thread (``daedyn.sweep._writer``), which writes
its zarr region and records it as done; the store is created and opened while the programs
compile. ``overlap=False`` does one chunk at a time (same results).

Multi-host: after ``jax.distributed.initialize()``, process p runs chunks k with
k % process_count == p, each sharded over its own local devices; process 0 creates the store
and the others wait at a barrier before opening it.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from daedyn.sweep import _store as store
from daedyn.sweep._plan import Prepared, SweepPlan, make_plan, prepare
from daedyn.sweep._spec import SweepSpec, as_spec, dtype_scope
from daedyn.sweep._writer import ChunkWriter

__all__ = ["run", "Progress", "SweepSummary"]


class Progress(NamedTuple):
    """Passed to the ``progress`` callback after every chunk (and once more with ``final=True``).

    A typed record, not text: rendering it is the caller's job (the ``daedyn sweep`` command
    draws a bar from ``chunks_done`` / ``chunks_total`` and ``points_per_s``).
    """

    chunks_done: int  # chunks with a record, this run and earlier ones
    chunks_total: int
    chunks_computed: int  # by this process in this run
    points_computed: int
    points_per_s: float  # grid points (trajectories) per second in this run
    elapsed_s: float
    eta_s: float  # estimate for this process's remaining chunks
    final: bool = False


class SweepSummary(NamedTuple):
    """What one call of :func:`run` did."""

    path: str
    n_points: int
    n_chunks: int
    chunks_computed: int
    chunks_skipped: int  # already recorded when the run started
    bad_points: int  # points with status != 0 among those computed
    wall_s: float  # whole call, including validation, compilation and I/O
    compile_s: float  # tracing the function (output shapes, in planning) and compiling the chunk programs
    compute_s: float  # waiting for device results
    io_s: float  # device -> host copies, zarr writes, records
    points_per_s: float  # computed points / (wall_s - compile_s): the rate once the programs exist
    plan: SweepPlan

    @property
    def io_fraction(self) -> float:
        return self.io_s / max(self.wall_s - self.compile_s, 1e-12)

    def line(self) -> str:
        return (f"{self.chunks_computed} chunks computed, {self.chunks_skipped} skipped (already done); "
                f"{self.n_points:,} points, {self.bad_points} bad; {self.wall_s:.2f} s "
                f"(compile {self.compile_s:.2f} s, I/O {100 * self.io_fraction:.0f}%); "
                f"{self.points_per_s:,.0f} traj/s -> {self.path}")

    def to_dict(self) -> dict:
        out = self._asdict()
        out["plan"] = self.plan.to_dict()
        out["io_fraction"] = self.io_fraction
        return out


#: the compiled chunk programs of the last few sweeps of this process, by :func:`_program_key`: the same
#: sweep run again (a rerun, a resume, another path) neither traces nor compiles them again (the
#: diffusion benchmark's 10^6 points: 0.35-0.5 s of its 0.4-0.5 s on the 2-core CPU)
_PROGRAMS: OrderedDict = OrderedDict()
PROGRAMS_KEPT = 8


def _program_key(prepared: Prepared, plan: SweepPlan, devices) -> tuple:
    """What the chunk programs depend on: the spec's hash (function name and bytecode, axes, constants,
    dtype, batching, ...), the function object itself (a closure's captured values are not in its
    bytecode; a "module:function" reloaded is another object), the chunk layout, the devices and the JAX
    settings that change a trace or a compilation."""
    cfg = jax.config
    return (prepared.spec.hash, id(prepared.fn), plan.grid_shape, plan.chunk_shape,
            plan.batch_size, tuple(devices), bool(cfg.jax_enable_x64), str(cfg.jax_default_matmul_precision),
            bool(cfg.values.get("jax_disable_most_optimizations")))


def _chunk_fns(prepared: Prepared, plan: SweepPlan) -> tuple[Callable, Callable]:
    """Two programs: ``compute(start (k,), n_valid (), q (B,)) -> {output: (B, ...)}`` (or, one device,
    ``(*chunk_shape, ...)``: the same points in the same order) and ``check(outputs) -> status (B,) int8``.

    They are separate programs on purpose: in one program XLA fuses the sweep function into the
    per-point finiteness reduction and computes it twice (measured 3x slower on CPU for a
    16-time closed form). ``check`` only reads the outputs; the NaN masking of bad points is done
    on the host copy by the writer, and only for chunks that have bad points (masking on the
    device rewrote every chunk's outputs: a second full pass over the results).
    """
    names = list(prepared.axes)
    values = [jnp.asarray(prepared.axes[n]) for n in names]
    chunk_shape = plan.chunk_shape

    def compute_block(start, n_valid, q):
        # the block's values along each axis (c_i of them), past the grid's edge the last value again:
        # there the flat points beyond n_valid (the planner's blocks keep the valid ones a prefix) are
        # real grid points, finite and discarded; the function sees each axis's values once
        vals = {n: v[jnp.minimum(start[i] + jnp.arange(c, dtype=start.dtype), v.shape[0] - 1)]
                for i, (n, v, c) in enumerate(zip(names, values, chunk_shape))}
        return prepared.blocked(vals)

    def compute_points(start, n_valid, q):
        q = jnp.minimum(q, n_valid - 1)  # padding repeats the last valid point: finite and discarded
        idx, rem = [], q
        for c in reversed(chunk_shape):
            idx.append(rem % c)
            rem = rem // c
        idx.reverse()
        args = {n: v[start[i] + idx[i]] for i, (n, v) in enumerate(zip(names, values))}
        return prepared.batched(args)

    # one device: the block's axis values, one vmap per axis (the diffusion sweep's chunk program of
    # 5 x 10^5 points on the 2-core CPU: 2.4-3.8 ms, was 8-9 ms per point; work that depends on some
    # axes only runs once per value of those); several devices share the flat batch axis, so each
    # point rebuilds its own values from its index (an integer division and a gather per axis)
    one_block = plan.n_devices == 1 and _prefix_blocks(chunk_shape, plan.grid_shape)
    compute = compute_block if one_block else compute_points

    lead = len(chunk_shape) if one_block else 1  # the points' dimensions of an output

    def check(out):
        shape = next(iter(out.values())).shape[:lead]
        ok = jnp.ones(shape, bool)
        for x in out.values():
            if jnp.issubdtype(x.dtype, jnp.inexact):
                ok = ok & jnp.all(jnp.isfinite(x), axis=tuple(range(lead, x.ndim)))
        return jnp.where(ok, store.STATUS_OK, store.STATUS_NONFINITE).astype(jnp.int8).reshape(-1)

    return compute, check


def _prefix_blocks(chunk_shape, grid_shape) -> bool:
    """True for the planner's blocks (leading axes one value, one axis cut, trailing axes whole): the
    points of a block clipped at the grid's edge are then the first ones of its flat order."""
    cut = next((i for i, c in enumerate(chunk_shape) if c != 1), len(chunk_shape))
    return all(c == g for c, g in zip(chunk_shape[cut + 1:], grid_shape[cut + 1:]))


def _mask_bad(host: dict, bad: np.ndarray) -> dict:
    """NaN in every floating output of the points flagged ``bad`` (copies only those arrays)."""
    out = {}
    for name, x in host.items():
        if np.issubdtype(x.dtype, np.inexact):
            x = np.array(x)
            x[bad] = np.nan
        out[name] = x
    return out


class _Interrupt:
    """Defers Ctrl-C until the chunk being written is recorded (a second Ctrl-C aborts at once)."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _open_store(path, prepared, plan, compression, create: bool, open_arrays: bool) -> dict | None:
    if create:
        store.create_store(path, prepared, plan, compression=compression)
    return store.open_arrays(path, [*plan.outputs, "status"]) if open_arrays else None


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def run(spec: SweepSpec | Mapping | str | os.PathLike, *, path: str | os.PathLike | None = None,
        max_memory=None, chunk_size: int | None = None, devices: Sequence | None = None,
        progress: Callable[[Progress], None] | None = None, overwrite: bool = False,
        compression: str | Mapping[str, str] = "auto", overlap: bool = True,
        allow_import: str | Sequence[str] = ()) -> SweepSummary:
    """Run (or resume) a sweep and stream its results to a zarr store.

    Args:
      spec: a :class:`SweepSpec`, a dict of its fields, or a TOML/JSON/YAML file.
      path: output store; default ``spec.path``.
      max_memory: bound on results held in memory (``"2GB"``/bytes); default the spec's.
        Ignored on resume: the store's chunk layout is reused.
      chunk_size: points per chunk (default: the largest under ``max_memory``).
      devices: devices to shard each chunk over (default ``jax.local_devices()``).
      progress: called with a :class:`Progress` after each chunk and at the end.
      overwrite: replace an existing sweep store at ``path`` (never a non-sweep folder).
      compression: ``"auto"`` (default: floating-point outputs and the status uncompressed,
        integer outputs blosc lz4 + shuffle), ``"lz4"``, ``"zstd"`` or ``"none"`` for every
        variable, or a mapping ``{variable: codec}`` (variables not named get ``"auto"``);
        fixed when the store is created (a resumed store keeps its own).
      overlap: compute the next chunk while the last one is written (default); ``False``
        computes, writes and records one chunk at a time (same results; for measurements).
      allow_import: module names (``["mypkg.sweeps"]``) whose functions the spec may name as
        ``"module:function"``. A spec names daedyn's ``ENTRY_POINTS`` only unless you allow a
        module here: a spec file cannot import or run anything else (a callable passed in a
        Python spec is your own code and needs no permission).
    Returns:
      A :class:`SweepSummary`; the data are read with :func:`daedyn.sweep.open_results`.
    Raises:
      ValueError: bad spec (see :class:`SweepSpec` and ``prepare``), ``path`` holding a
        different sweep, or a ``path`` that cannot be created (missing or unwritable parent
        folder, a file); always before any compute.
      RuntimeError: another run is writing the store at ``path`` (its lock file ``PATH.lock``
        names the process; a lock left by a killed run on this host is replaced).
      OSError: a write failed (disk full): the chunks recorded so far are kept and a rerun
        resumes.
      KeyboardInterrupt: after Ctrl-C, once the chunk being written is recorded.
    """
    t_begin = time.perf_counter()
    spec = as_spec(spec)
    path = path if path is not None else spec.path
    if path is None:
        raise ValueError("no output path: give path= (CLI: --out) or 'path' in the spec")
    path = os.fspath(path)
    store.check_compression(compression, [*compression] if isinstance(compression, Mapping) else [])
    devices = list(devices) if devices is not None else jax.local_devices()
    if not devices:
        raise ValueError("devices must name at least one device")
    pidx, pcount = jax.process_index(), jax.process_count()
    if pidx == 0:
        store.check_location(path)
    with contextlib.ExitStack() as stack:
        stack.enter_context(dtype_scope(spec.dtype))
        t_trace = time.perf_counter()
        prepared = prepare(spec, allow_import)  # traces the function (eval_shape): counted with compilation
        trace_s = time.perf_counter() - t_trace
        if pidx == 0:
            stack.enter_context(store.locked(path))  # one writer per store (process 0 for all hosts)
            if overwrite:
                store.remove_store(path)
            attrs = store.check_store(path, spec)
            if attrs:
                store.warn_versions(attrs, path)
            chunk_shape = tuple(attrs["sweep_chunk_shape"]) if attrs else None
            plan = make_plan(prepared, max_memory=max_memory, chunk_size=chunk_size,
                             n_devices=len(devices), chunk_shape=chunk_shape)
            store.check_compression(compression, [*prepared.outputs, "status"])
            if attrs is None and pcount > 1:
                store.create_store(path, prepared, plan, compression=compression)
        _barrier("daedyn-sweep-store-ready")
        if pidx != 0:
            attrs = store.check_store(path, spec)
            if attrs is None:
                raise ValueError(f"process {pidx} cannot see the store {path!r} that process 0 created: "
                                 "multi-host sweeps need a path on a file system shared by all hosts")
            plan = make_plan(prepared, n_devices=len(devices), chunk_shape=tuple(attrs["sweep_chunk_shape"]))
        create = pidx == 0 and attrs is None and pcount == 1
        done = set() if create else store.done_chunks(path)
        todo = [k for k in range(plan.n_chunks) if k % pcount == pidx and k not in done]
        # the store is created (single process) and opened on a thread while the chunk programs compile
        opener = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="daedyn-sweep-open"))
        opened = opener.submit(_open_store, path, prepared, plan, compression, create, bool(todo))
        summary = _execute(prepared, plan, path, devices, todo, done, progress, t_begin, opened.result,
                           overlap, trace_s)
        _barrier("daedyn-sweep-finished")
    return summary


def _execute(prepared, plan, path, devices, todo, done, progress, t_begin, ready, overlap,
             trace_s) -> SweepSummary:
    """Compile, then compute and write ``todo``; ``ready()`` returns the opened store arrays;
    ``trace_s``: the planning trace, reported with the compilation."""
    mesh = Mesh(np.array(devices), ("batch",))
    shard = NamedSharding(mesh, PartitionSpec("batch"))
    repl = NamedSharding(mesh, PartitionSpec())
    ndim = len(plan.grid_shape)
    stats = {"compile": trace_s, "compute": 0.0, "io": 0.0, "computed": 0, "points": 0, "bad": 0}
    if todo:
        t0 = time.perf_counter()
        q = jax.device_put(np.arange(plan.batch_size, dtype=np.int32), shard)
        key = _program_key(prepared, plan, devices)
        kept = _PROGRAMS.get(key)
        if kept is None:
            compute, check = _chunk_fns(prepared, plan)
            compute = jax.jit(compute, in_shardings=(repl, repl, shard), out_shardings=shard).lower(
                jax.ShapeDtypeStruct((ndim,), np.int32, sharding=repl),
                jax.ShapeDtypeStruct((), np.int32, sharding=repl), q).compile()
            out_shapes = {k: jax.ShapeDtypeStruct(o.shape, o.dtype, sharding=shard)
                          for k, o in compute.out_info.items()}
            check = jax.jit(check, in_shardings=shard, out_shardings=shard).lower(out_shapes).compile()
            # the function is kept with its programs: its id in the key is never reused meanwhile
            _PROGRAMS[key] = (compute, check, prepared.fn)
            while len(_PROGRAMS) > PROGRAMS_KEPT:
                _PROGRAMS.popitem(last=False)
        else:
            compute, check, _ = kept
            _PROGRAMS.move_to_end(key)
        stats["compile"] += time.perf_counter() - t0
    nan_bad = prepared.spec.bad_points == "nan"
    arrays = ready()
    t_run = time.perf_counter()
    remaining = sum(math.prod(plan.chunk_region(k)[1]) for k in todo)

    def report(final=False):
        if progress is None:
            return
        now = time.perf_counter()
        rate = stats["points"] / max(now - t_run, 1e-12)
        eta = (remaining - stats["points"]) / rate if rate > 0 else math.inf
        progress(Progress(len(done) + stats["computed"], plan.n_chunks, stats["computed"], stats["points"],
                          rate, now - t_begin, 0.0 if final else eta, final))

    def write(item):
        """On the writer thread: data, then the status (which completes the chunk), then a log line."""
        k, host, status, n_valid, compute_s = item
        t0 = time.perf_counter()
        bad = status != store.STATUS_OK
        n_bad = int(np.count_nonzero(bad))
        if n_bad and nan_bad:
            host = _mask_bad(host, bad)
        try:
            store.write_chunk(arrays, plan, k, host, status)
            store.log_chunk(path, k, {"n_points": n_valid, "n_bad": n_bad, "compute_s": compute_s,
                                      "write_s": time.perf_counter() - t0,
                                      "process_index": jax.process_index()})
        except OSError as err:  # disk full, quota, permission: no status yet, so a rerun redoes the chunk
            err.daedyn_chunk = k
            raise
        return n_valid, n_bad, time.perf_counter() - t0

    def collect(results):
        for n_valid, n_bad, io in results:
            stats["io"] += io
            stats["computed"] += 1
            stats["points"] += n_valid
            stats["bad"] += n_bad
            report()

    # Pipeline: chunk k computes (async dispatch) while chunk k-1 is copied to the host and handed
    # to the writer thread, which writes chunk k-2 with chunk k-3 at most waiting in its queue:
    # at most HELD_COPIES copies of a chunk's results (the fifth: the writer's NaN-masked copy of a
    # chunk with bad points).
    writer = ChunkWriter(write, depth=1)
    in_flight = None  # (k, device results, device status, n_valid, t_dispatch)

    def hand_over():
        nonlocal in_flight
        k, out, status, n_valid, t_dispatch = in_flight
        in_flight = None
        t0 = time.perf_counter()
        host = {name: np.asarray(x).reshape((-1,) + plan.outputs[name].shape)[:n_valid]  # waits for it
                for name, x in out.items()}
        st = np.asarray(status)[:n_valid]
        t1 = time.perf_counter()
        stats["compute"] += t1 - t0
        del out, status
        writer.put((k, host, st, n_valid, t1 - t_dispatch))
        collect(writer.take_done())

    try:
        with _Interrupt() as interrupt:
            for k in todo:
                if interrupt.requested or writer.failed:
                    break
                start, size = plan.chunk_region(k)
                n_valid = math.prod(size)
                t_dispatch = time.perf_counter()
                # host arrays straight into the compiled program: a device_put per argument
                # cost ~0.3-0.6 ms of dispatch per chunk on the 2-core CPU, the call itself 0.03 ms
                result = compute(np.asarray(start, np.int32), np.int32(n_valid), q)
                status = check(result)
                if in_flight is not None:
                    hand_over()
                in_flight = (k, result, status, n_valid, t_dispatch)
                del result, status
                if not overlap:
                    hand_over()
                    writer.wait_idle()
                    collect(writer.take_done())  # reported now, before the next chunk is handed over
            if in_flight is not None:  # computed: written even after a failed write
                hand_over()
            collect(_close(writer, path))
            if interrupt.requested:
                raise KeyboardInterrupt
    finally:
        if writer.alive:  # an error in this thread: still write what was handed over
            with contextlib.suppress(Exception):
                writer.close()
    wall = time.perf_counter() - t_begin
    report(final=True)
    rate = stats["points"] / max(wall - stats["compile"], 1e-12)
    return SweepSummary(path, plan.n_points, plan.n_chunks, stats["computed"], len(done), stats["bad"], wall,
                        stats["compile"], stats["compute"], stats["io"], rate, plan)


def _close(writer: ChunkWriter, path: str) -> list:
    """Wait for the writer; a failed write becomes an ``OSError`` naming the chunk and the store."""
    try:
        return writer.close()
    except OSError as err:
        code = err.errno or errno.EIO
        k = getattr(err, "daedyn_chunk", "?")
        raise OSError(code, f"writing chunk {k} failed ({err.strerror or os.strerror(code)}); the "
                      f"{len(store.done_chunks(path))} chunks recorded are kept: rerun the same command "
                      "to resume", path) from None
