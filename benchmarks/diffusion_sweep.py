"""Diffusion predictions at sweep scale: how fast does ``diffusion.predict`` stream to disk over
(p_mean, p_std, lam, t), and what does sharing the noise levels' quadrature buy?

Workload: the sweep entry ``"diffusion.predict"`` (depth 2, "edm", N = 100, alpha = 0.05, w0 = 1e-6,
float32) over p_mean 10 x p_std 10 x lam 100 x t 100 = 10^6 predictions (full: lam 1000, 10^7), each
``w`` and the generated ``variance``, in two layouts of the same store dimensions:
- t an axis: 10^6 grid points, one prediction each (9 bytes with the status);
- t a time grid (a 1-D constant, the outputs' trailing dim): 10^4 grid points (p_mean, p_std, lam),
  100 predictions each; and the same with lam 10x finer (10^7 predictions, 80 MB), where the
  sweep's fixed costs per run (~15 ms: store, threads, last chunk's write) are amortised.

Ours: ``daedyn.sweep.run`` to a zarr store (under the checkout or ``DAEDYN_BENCH_DIR``, as
``sweep_throughput``; default chunking, quick 64 MB limit, full 1 GB): the quadrature of each
(p_mean, p_std) is computed once while the sweep is planned (the derived constant ``moments_table``)
and each grid point looks up its four moments; rates exclude the trace and compilation.
Baseline, first row of each layout: the same predictions on the whole grid in one compiled call,
results in memory: ``diffusion.predict`` vmapped over the (p_mean, p_std) pairs, each call over
lam x t (its quadrature once, broadcast over lam and t): compute-only, target ratio >= 0.7 (issue
30); ``hw_fraction``: the results' bytes per second over the disk's raw write bandwidth (``tofile``
+ fsync, this process), which the compute-only rate itself about reaches here (8 bytes per
prediction). Second row: the sweep against its own chunk programs run without the store (the I/O's
cost alone). Both from 7 interleaved rounds (sweep, serial sweep, compute-only, chunk programs), ratios
the medians of the per-round ratios (``benchmarks/sweep_throughput.py``'s protocol and helpers).
Last row: the new sweep against the per-point path it replaced (each point summing the 1024-node
quadrature itself: the entry before issue 30, as a sweep function of its own) on the same 10^5-point
grid (t an axis, every 10th lam), the better of 2 runs each. Since a chunk on one device is computed
as its block with one vmap per axis (``daedyn.sweep._run``), that function's quadrature, which
depends on (p_mean, p_std) only, also runs once per pair of a block, so the two are now about equally
fast on one device (the row was 163x before); the table still spares the per-point quadrature on
several devices, where each point of the flat batch computes its own (~35 s for 10^6 points).
"""

from __future__ import annotations

import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import sweep_throughput as st
from daedyn import diffusion

N, ALPHA, W0 = 100.0, 0.05, 1e-6


def _axes(quick: bool) -> dict:
    return {"p_mean": np.linspace(-2.0, 0.5, 10), "p_std": np.linspace(0.5, 2.0, 10),
            "lam": np.geomspace(1.0, 1e4, 100 if quick else 1000), "t": np.linspace(0.0, 2e4, 100)}


def _whole_grid(p_mean, p_std, lam, t):
    """Compute-only: one ``predict`` per (p_mean, p_std) over lam x t, vmapped over the pairs."""
    def pair(pm, ps):
        r = diffusion.predict(t, lam, n=N, alpha=ALPHA, w0=W0, sigma=diffusion.LogNormal(pm, ps))
        return r.w, r.variance
    return jax.vmap(jax.vmap(pair, (None, 0)), (0, None))(p_mean, p_std)


def _per_point(*, t, lam, n, alpha, w0, p_mean, p_std):
    """The entry before issue 30: every point its own ``predict`` and so its own quadrature."""
    r = diffusion.predict(t, lam, n=n, alpha=alpha, w0=w0, sigma=diffusion.LogNormal(p_mean, p_std))
    return {"w": r.w, "variance": r.variance}


def _rows(spec: dict, per_point: int, what: str, folder: str, io: bool = True) -> list[dict]:
    """The sweep of ``spec`` against the whole grid in one call (and, with ``io``, against its own chunk
    programs); rates in M predictions/s (``per_point`` predictions, one per time, at each grid point)."""
    times = spec["constants"].get("t", spec["axes"].get("t"))
    args = {k: jnp.asarray(np.asarray(v, np.float32)) for k, v in spec["axes"].items() if k != "t"}
    args["t"] = jnp.asarray(np.asarray(times, np.float32))
    best, serial, base, ratio, ratios, chunked, vs_chunked = st._interleaved(spec, folder, _whole_grid, args)
    # _interleaved's rates are in grid points of the spec's axes; the baseline's call makes the same
    # predictions (all times at every grid point)
    scale = per_point / 1e6
    nbytes = best.plan.total_bytes
    disk = st._disk_bandwidth(folder, min(nbytes, 256 * 10**6))
    rows = [
        dict(workload=f"diffusion.predict sweep, {best.n_points * per_point:.0e} predictions: {what}",
             ours=best.points_per_s * scale, baseline=base * scale, ratio=ratio, unit="M predictions/s",
             hw_fraction=nbytes / (best.n_points / best.points_per_s) / disk,
             notes=f"baseline: predict vmapped over the 100 (p_mean, p_std) pairs on lam x t, in memory; "
                   f"{best.n_points:,} grid points in {best.n_chunks} chunks, {nbytes / 1e6:.0f} MB of "
                   f"results; I/O {100 * best.io_fraction:.0f}% of the run; trace + compile (the moments "
                   f"table included) {best.compile_s:.2f} s; store under {st._ROOT}: disk "
                   f"{disk / 1e9:.2f} GB/s, {1e3 * st._create_cost(folder):.2f} ms per file creation; "
                   f"serial (overlap=False) {serial.points_per_s * scale:.3g} M predictions/s; per-round "
                   f"ratios {', '.join(f'{r:.2f}' for r in ratios)}; the compute-only rate's results "
                   f"would be written at {nbytes / (best.n_points / base) / disk:.2f} of that disk's "
                   f"bandwidth"),
    ]
    if io:
        io_row = st._io_row(f"diffusion.predict sweep ({what})", best, chunked, vs_chunked)
        rows.append({**io_row, "ours": best.points_per_s * scale, "baseline": chunked * scale,
                     "unit": "M predictions/s"})
    return rows


def run(quick: bool = True) -> list[dict]:
    axes = _axes(quick)
    memory = "64MB" if quick else "1GB"
    consts = {"n": N, "alpha": ALPHA, "w0": W0}
    spec = {"function": "diffusion.predict", "axes": axes, "constants": consts, "max_memory": memory}
    grid = {k: v for k, v in axes.items() if k != "t"}
    timed = {**spec, "axes": grid, "constants": {**consts, "t": axes["t"]}}
    rows = []
    folder = tempfile.mkdtemp(prefix=".daedyn-diffusion-bench-", dir=st._ROOT)
    try:
        rows += _rows(spec, 1, "t an axis, a grid point per (p_mean, p_std, lam, t)", folder)
        rows += _rows(timed, len(axes["t"]), "t a time grid of 100, a grid point per (p_mean, p_std, lam)",
                      folder)
        big = {**timed, "axes": {**grid, "lam": np.geomspace(1.0, 1e4, 10 * len(grid["lam"]))}}
        rows += _rows(big, len(axes["t"]), "t a time grid of 100, lam 10x finer (the sweep's fixed costs "
                      "amortised)", folder, io=False)
        # ---- the per-point path it replaced (34 us a point: 10^5 points, lam 10 of the 100) -----
        small = {**spec, "axes": {**axes, "lam": axes["lam"][::len(axes["lam"]) // 10]}}
        old = st._best_sweep({**small, "function": _per_point}, folder, repeat=2)
        new = st._best_sweep(small, folder, repeat=2)
        rows.append(dict(
            workload=f"diffusion.predict sweep, {new.n_points:.0e} points (t an axis): shared quadrature vs "
                     "a quadrature per point (the entry before issue 30)",
            ours=new.points_per_s / 1e6, baseline=old.points_per_s / 1e6,
            ratio=new.points_per_s / old.points_per_s, unit="M predictions/s",
            notes="both sweeps to zarr, the better of 2 runs each (points/s excluding compilation); the "
                  "per-point function sums the log-normal's 1024-node trapezoidal rule, which the one-device "
                  "block program (a vmap per axis) runs once per (p_mean, p_std) of a block; the grid of "
                  "row 1 with every 10th lam"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import run_standalone

    run_standalone("diffusion_sweep", run)
