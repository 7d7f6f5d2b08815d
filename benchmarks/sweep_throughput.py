"""How many trajectories per second does a sweep deliver to disk, and how much of it is I/O?

Workloads (one grid point = one trajectory):
- closed form: ``theory.dae_trajectory`` (Eq. 5) over lam x eps x w1 x w2, 16 saved times each;
  quick 10^6 trajectories, full 10^7.
- scalar GD: ``dynamics.scalar_gd`` over lam x eps x alpha x w1, 1000 epochs saved every 100th
  (five saved fields: w1, w2, w, weight_norm, loss); quick 10^5 trajectories, full 10^6.

Ours: ``daedyn.sweep.run`` end to end: chunked under a 1 GB limit (quick: 64 MB), sharded over
the local devices, results streamed to a zarr store on local disk (under the checkout, or
``DAEDYN_BENCH_DIR``; the notes give its measured write bandwidth and file-creation cost;
default compression "auto": float trajectories and the status uncompressed), the next chunk
computing while the writer thread writes the last one (its status last, which completes it), a
log line per chunk; trajectories per second excluding the one trace and compilation of the
function (``SweepSummary.compile_s``, reported separately). The notes give the same sweep with
``overlap=False`` (compute, write, one chunk at a time) for the gain of the overlap. The three
(sweep, serial sweep, baseline) are run in 7 interleaved rounds, one of each per round; ``ratio``
is the median of the per-round ratios (listed in the notes), ``ours`` / ``baseline`` the median
round's rates.
Baseline: the same function called once on the whole grid by broadcasting, results left in
memory (no chunking, no disk), the median of 3 calls per round: the compute-only rate (issue 18's
target: ratio >= 0.7). A second row per sweep compares it with its own chunk programs run back
to back without the store (no host hand-over, writes, logs or store setup): the cost of the I/O
alone, the rest being chunking.
``hw_fraction``: result bytes per second written by the sweep over the disk's raw write bandwidth
(the same number of bytes written with ``ndarray.tofile`` plus ``fsync``, in this process).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import timeit

import jax
import jax.numpy as jnp
import numpy as np

import daedyn.sweep as sweep

# Where the stores go: DAEDYN_BENCH_DIR, else the checkout (a project folder on the local disk,
# where a user's sweep would write), not the system temp folder: that is tmpfs (memory, not disk)
# on many systems, and on the project's 2-core VM an ext4 folder whose file creations cost
# 0.2-0.9 ms against 0.02 ms anywhere else on the same disk (the scalar-GD sweep writes 6 files
# per chunk: 0.67 of compute-only there against 0.84 in /var/tmp, same code, same session).
_ROOT = os.environ.get("DAEDYN_BENCH_DIR") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _create_cost(folder: str, n: int = 100) -> float:
    """Seconds per file creation in ``folder`` (empty files, median of 3 batches of ``n``)."""
    times = []
    for r in range(3):
        t0 = time.perf_counter()
        for i in range(n):
            os.close(os.open(os.path.join(folder, f"probe{r}-{i}"), os.O_WRONLY | os.O_CREAT, 0o644))
        times.append((time.perf_counter() - t0) / n)
        for i in range(n):
            os.remove(os.path.join(folder, f"probe{r}-{i}"))
    return float(np.median(times))


def _disk_bandwidth(folder: str, nbytes: int) -> float:
    data = np.random.default_rng(0).random(nbytes // 8)
    path = os.path.join(folder, "raw.bin")
    best = np.inf
    for _ in range(2):
        t0 = time.perf_counter()
        with open(path, "wb") as f:
            data.tofile(f)
            f.flush()
            os.fsync(f.fileno())
        best = min(best, time.perf_counter() - t0)
        os.remove(path)
    return data.nbytes / best


def _best_sweep(spec: dict, folder: str, repeat: int = 3, overlap: bool = True):
    from daedyn.sweep import _run

    best = None
    for i in range(repeat):
        path = os.path.join(folder, f"run{i}.zarr")
        # every timed sweep compiles its chunk programs, as a sweep's first run in a process does (the
        # process keeps them for the same sweep run again: that rerun skips compilation, and its rate
        # "excluding compilation" then counts the store's creation, which a first run hides behind it)
        _run._PROGRAMS.clear()
        summary = sweep.run(spec, path=path, overlap=overlap)
        if best is None or summary.points_per_s > best.points_per_s:
            best = summary
        shutil.rmtree(path)
    return best


def _baseline(fn, args: dict, n_points: int):
    """A timer of the whole grid in one compiled call: ``() -> points per second``, the median of
    3 calls (one call is ~50 ms, the scale of the 2-core VM's disturbances; the sweep's own run
    phase is ~70 ms)."""
    f = jax.jit(lambda a: fn(**a))
    jax.block_until_ready(f(args))

    def once() -> float:
        return n_points / float(np.median(timeit.repeat(lambda: jax.block_until_ready(f(args)), number=1,
                                                        repeat=3)))
    return once


def _chunked(spec: dict):
    """A timer of the sweep's own chunk programs (``daedyn.sweep._run._chunk_fns``) over every chunk,
    dispatched back to back as the sweep does (chunk k + 1 queued before chunk k is waited for),
    results discarded: what the sweep computes, without the store (no host hand-over, no writes,
    no records, no store setup). Returns ``() -> points per second``."""
    import math

    from daedyn.sweep import _plan, _run, _spec

    prepared = _plan.prepare(_spec.as_spec(spec))
    plan = _plan.make_plan(prepared)
    compute, check = (jax.jit(f) for f in _run._chunk_fns(prepared, plan))
    q = jnp.arange(plan.batch_size, dtype=jnp.int32)
    regions = [(np.asarray(st, np.int32), np.int32(math.prod(size)))
               for st, size in map(plan.chunk_region, range(plan.n_chunks))]

    def once() -> float:
        t0 = time.perf_counter()
        previous = None
        for st, nv in regions:
            out = compute(st, nv, q)
            current = (out, check(out))
            if previous is not None:
                jax.block_until_ready(previous)
            previous = current
        jax.block_until_ready(previous)
        return plan.n_points / (time.perf_counter() - t0)

    once()  # compilation
    return once


def _interleaved(spec: dict, folder: str, fn, args: dict, rounds: int = 7):
    """``rounds`` rounds of (sweep, serial sweep, compute only), each timed once per round: the
    overlapped sweep and the compute-only rate of the median round (the round whose ratio is the
    median: ours / baseline = ratio), the median serial sweep, and the median of the per-round
    ratios sweep / compute-only. Each round's three runs follow each
    other, so they see the same machine state (load, memory, page cache); the medians ignore a
    lucky or unlucky round (a best-of-N baseline against a best-of-M sweep favoured whichever had
    more tries: runs of ~0.1 s vary by +-25% on the 2-core machine)."""
    sweeps, serials, bases, chunked = [], [], [], []
    chunked_rate = _chunked(spec)
    base_rate = _baseline(fn, args, int(np.prod([len(v) for v in spec["axes"].values()])))
    for _ in range(rounds):
        sweeps.append(_best_sweep(spec, folder, repeat=1))
        serials.append(_best_sweep(spec, folder, repeat=1, overlap=False))
        bases.append(base_rate())
        chunked.append(chunked_rate())
    ratios = [s.points_per_s / b for s, b in zip(sweeps, bases)]
    order = np.argsort(ratios)
    mid = int(order[len(order) // 2])
    serial = sorted(serials, key=lambda s: s.points_per_s)[len(serials) // 2]
    vs_chunked = float(np.median([s.points_per_s / c for s, c in zip(sweeps, chunked)]))
    return (sweeps[mid], serial, bases[mid], float(np.median(ratios)), ratios,
            float(np.median(chunked)), vs_chunked)


def _grid(axes: dict) -> dict:
    """Open-mesh float32 arrays of the axes, for the broadcast baseline."""
    k = len(axes)
    return {name: jnp.asarray(np.asarray(v, np.float32).reshape((1,) * i + (-1,) + (1,) * (k - i - 1)))
            for i, (name, v) in enumerate(axes.items())}


def _io_row(what: str, best, chunked: float, vs_chunked: float) -> dict:
    """The cost of the store alone: the sweep against its own chunk programs run without it."""
    return dict(workload=f"{what} vs its own chunk programs without the store (the I/O's cost alone)",
                ours=best.points_per_s / 1e6, baseline=chunked / 1e6, ratio=vs_chunked, unit="M traj/s",
                notes="median of the same 7 rounds; not issue 18's baseline (the whole grid in one call, "
                      "the row above): the two baselines differ by the chunking under the memory limit")


def run(quick: bool = True) -> list[dict]:
    from daedyn import dynamics, theory

    rows = []
    memory = "64MB" if quick else "1GB"
    folder = tempfile.mkdtemp(prefix=".daedyn-sweep-bench-", dir=_ROOT)
    try:
        # ---- closed form -------------------------------------------------------------------
        n = (100, 100, 10, 10) if quick else (100, 100, 100, 10)
        axes = {"lam": np.geomspace(0.1, 10.0, n[0]), "eps": np.linspace(0.0, 5.0, n[1]),
                "w1": np.linspace(0.01, 1.0, n[2]), "w2": np.linspace(0.02, 0.5, n[3])}
        ts = np.geomspace(1.0, 1e4, 16)
        spec = {"function": "theory.dae_trajectory", "axes": axes, "constants": {"t": ts, "tau": 100.0},
                "max_memory": memory}
        def closed(lam, eps, w1, w2):
            return theory.dae_trajectory(jnp.asarray(ts, jnp.float32), lam[..., None], eps[..., None],
                                         w1[..., None], w2[..., None], tau=jnp.float32(100.0))

        best, serial, base, ratio, ratios, chunked, vs_chunked = _interleaved(spec, folder, closed,
                                                                              _grid(axes))
        nbytes = best.plan.total_bytes
        disk = _disk_bandwidth(folder, min(nbytes, 256 * 10**6))
        rows.append(dict(
            workload=f"closed-form sweep, {best.n_points:.0e} traj x 16 times", ours=best.points_per_s / 1e6,
            baseline=base / 1e6, ratio=ratio, unit="M traj/s",
            hw_fraction=nbytes / (best.n_points / best.points_per_s) / disk,
            notes=f"{best.n_chunks} chunks, {nbytes / 1e6:.0f} MB of results; I/O "
                  f"{100 * best.io_fraction:.0f}% of the run; trace + compile {best.compile_s:.2f} s; "
                  f"store under {_ROOT}: disk {disk / 1e9:.2f} GB/s, {1e3 * _create_cost(folder):.2f} ms "
                  f"per file creation; serial (overlap=False) "
                  f"{serial.points_per_s / 1e6:.3g} M traj/s; per-round ratios "
                  f"{', '.join(f'{r:.2f}' for r in ratios)}"))
        rows.append(_io_row("closed-form sweep", best, chunked, vs_chunked))
        # ---- scalar GD ---------------------------------------------------------------------
        n = (50, 20, 10, 10) if quick else (100, 50, 20, 10)
        axes = {"lam": np.geomspace(0.1, 10.0, n[0]), "eps": np.linspace(0.0, 5.0, n[1]),
                "alpha": np.geomspace(0.01, 0.1, n[2]), "w1": np.linspace(0.01, 0.5, n[3])}
        consts = {"w2": 0.1, "epochs": 1000, "save_every": 100, "check_stability": False}
        spec = {"function": "dynamics.scalar_gd", "axes": axes, "constants": consts, "max_memory": memory}
        def gd(lam, eps, alpha, w1):  # the sweep entry's five outputs
            return dynamics.scalar_gd(lam, eps, w1, jnp.float32(0.1), alpha=alpha, epochs=1000,
                                      save_every=100, check_stability=False, observables="all")

        best, serial, base, ratio, ratios, chunked, vs_chunked = _interleaved(spec, folder, gd, _grid(axes))
        nbytes = best.plan.total_bytes
        rows.append(dict(
            workload=f"scalar-GD sweep, {best.n_points:.0e} traj x 1000 epochs", ours=best.points_per_s / 1e6,
            baseline=base / 1e6, ratio=ratio, unit="M traj/s",
            hw_fraction=nbytes / (best.n_points / best.points_per_s) / disk,
            notes=f"{best.n_chunks} chunks, {nbytes / 1e6:.0f} MB of results; I/O "
                  f"{100 * best.io_fraction:.0f}% of the run; trace + compile {best.compile_s:.2f} s; "
                  f"serial (overlap=False) {serial.points_per_s / 1e6:.3g} M traj/s; per-round ratios "
                  f"{', '.join(f'{r:.2f}' for r in ratios)}"))
        rows.append(_io_row("scalar-GD sweep", best, chunked, vs_chunked))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import run_standalone

    run_standalone("sweep_throughput", run)
