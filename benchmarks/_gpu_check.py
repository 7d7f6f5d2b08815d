"""One prepared GPU check: every GPU claim of the project measured in one short run.

``python -m benchmarks --gpu-check`` on one H100/H200-class GPU (budget: under 8 minutes) runs, in
order, each step timed and guarded (a failing step is recorded and the next one runs):

1. limits: the device's write bandwidth, copy bandwidth and float32 matmul peak ("highest" and
   default precision), measured first (``benchmarks/_hw.py``);
2. gpu tests: ``pytest -m gpu`` (the gpu-marked tests: Pallas kernel vs CPU scan, GPU sweep vs
   CPU sweep, ...);
3. closed form: ``theory.dae_trajectory`` on 10^6 trajectories x 10^3 times (4 GB out), bytes
   written per second as a fraction of the write bandwidth (target >= 0.5);
4. scalar GD: the fused kernel (Pallas) and the public ``scalar_gd`` (``observables=("w",)``,
   ``time_major=True``, and its defaults: five fields, batch-major) on 10^6 x 10^3 epochs saved
   every epoch; fraction of the write bandwidth (target >= 0.5) and API / kernel (target >= 0.8);
5. matrix flow: ``matrix_gd`` at 64 settings x D 784 x H 256, 200 steps, precision "highest" and
   default, FLOP/s as a fraction of the matmul peak at the same precision (target >= 0.5);
6. Figure 5 end to end from data on disk (mnist5k and a CIFAR-sized .npy file, six models, H 256,
   5000 epochs, theory curves), compilation included (target < 5 s);
7. sweep: ``sweep.run`` of the closed form over 10^7 trajectories to a zarr store on local disk,
   and its compute-only rate.

Results go to ``benchmarks/results-gpu.json`` (``--json-out`` to change): the device, its measured
limits, every step's figures, failures, versions and date. Without a GPU the check refuses (exit
code 3) before doing anything. ``--dry-run`` runs every step at tiny sizes on whatever device there
is (seconds on a CPU; nothing is written unless ``--json-out`` is given): the plumbing test.
Exit code: 0 every step passed, 1 a step failed, 3 no GPU.
"""

from __future__ import annotations

import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _hw
from benchmarks._io import write_json

NO_GPU = 3
BUDGET_S = 450  # 7.5 minutes: steps not started by then are skipped (recorded), within 8 minutes


class Sizes(NamedTuple):
    closed: tuple[int, int]  # trajectories, times
    gd: tuple[int, int]  # trajectories, epochs (every epoch saved)
    matrix: tuple[int, int, int, int]  # settings, D, H, steps
    fig5: tuple[int, int, int, int, int]  # mnist n, cifar-sized n, cifar-sized D, hidden, epochs
    sweep: tuple[int, int, int, int]  # lam, eps, w1, w2 axis lengths (x 16 times)
    tests_timeout_s: int


FULL = Sizes(
    (10**6, 1000), (10**6, 1000), (64, 784, 256, 200), (5000, 5000, 3072, 256, 5000), (1000, 100, 10, 10), 240
)
TINY = Sizes((1000, 10), (1000, 10), (2, 32, 8, 5), (100, 50, 64, 4, 50), (10, 10, 2, 2), 60)


def _limits() -> dict:
    return {
        "write_bandwidth_GBps": _hw.write_bandwidth() / 1e9,
        "copy_bandwidth_GBps": _hw.copy_bandwidth() / 1e9,
        "matmul_peak_TFLOPs_highest": _hw.matmul_peak("highest") / 1e12,
        "matmul_peak_TFLOPs_default": _hw.matmul_peak(None) / 1e12,
    }


def _gpu_tests(sizes: Sizes, dry: bool) -> dict:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tests = pathlib.Path(here, "tests")
    files = sorted(f"tests/{f.name}" for f in tests.glob("test_*.py") if "mark.gpu" in f.read_text())
    args = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *files]
    if dry:
        args.append("--collect-only")  # the plumbing: find and collect them, do not run on a CPU
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p))
    res = subprocess.run(
        args, cwd=here, env=env, capture_output=True, text=True, timeout=sizes.tests_timeout_s
    )
    tail = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr[-300:]
    if res.returncode != 0:
        raise RuntimeError(f"pytest -m gpu exited {res.returncode}: {tail}\n{res.stdout[-2000:]}")
    return {"files": files, "summary": tail}


def _closed_form(sizes: Sizes) -> dict:
    from benchmarks.closed_form import ours

    b, t = sizes.closed
    k = jax.random.split(jax.random.key(0), 4)
    lam = jax.random.uniform(k[0], (b,), minval=0.1, maxval=2.5)
    eps = jax.random.uniform(k[1], (b,), minval=0.0, maxval=50.0)
    w1, w2 = (jax.random.uniform(kk, (b,), minval=-1.5, maxval=1.5) for kk in k[2:])
    ts = jnp.geomspace(1.0, 1e4, t)
    sec = _hw.best_time(ours, ts, lam, eps, w1, w2, repeat=3)
    rate = 4 * b * t / sec
    return {
        "shape": [t, b],
        "seconds": sec,
        "GBps": rate / 1e9,
        "write_fraction": rate / _hw.write_bandwidth(),
        "target": ">= 0.5 of the write bandwidth",
    }


def _scalar_gd(sizes: Sizes) -> dict:
    from benchmarks.scalar_dynamics import _inputs, kernel_args
    from daedyn._kernels import scalar_gd_fused
    from daedyn.dynamics import choose_backend, scalar_gd

    b, t = sizes.gd
    args = _inputs(b)
    lam, eps, _, _, w1, w2 = args
    kernel = _hw.best_time(lambda *a: scalar_gd_fused(*a, n_saves=t)[0], *kernel_args(args), repeat=3)
    api = _hw.best_time(
        lambda *a: (
            scalar_gd(
                *a,
                alpha=0.01,
                gamma=1e-3,
                epochs=t,
                observables=("w",),
                time_major=True,
                check_stability=False,
            ).w
        ),
        lam,
        eps,
        w1,
        w2,
        repeat=3,
    )
    # the API's default call (w alone, batch-major, stability check on): the "scalar_gd API vs raw
    # kernel, default call" row; and every field (observables="all", 5x the bytes)
    dflt = _hw.best_time(lambda *a: scalar_gd(*a, alpha=0.01, gamma=1e-3, epochs=t).w,
                         lam, eps, w1, w2, repeat=3)
    every = _hw.best_time(lambda *a: scalar_gd(*a, alpha=0.01, gamma=1e-3, epochs=t, observables="all").loss,
                          lam, eps, w1, w2, repeat=3)
    wb = _hw.write_bandwidth()
    return {
        "shape": [t, b],
        "backend": choose_backend("auto", epochs=t, observables=("w",)),
        "kernel_Gsteps": b * t / kernel / 1e9,
        "api_Gsteps": b * t / api / 1e9,
        "kernel_write_fraction": 4 * b * t / kernel / wb,
        "api_write_fraction": 4 * b * (t + 1) / api / wb,
        "api_over_kernel": kernel / api,
        "api_default_backend": choose_backend("auto", epochs=t),
        "api_default_Gsteps": b * t / dflt / 1e9,
        "api_default_write_fraction": 4 * b * (t + 1) / dflt / wb,
        "api_default_over_kernel": kernel / dflt,
        "api_all_backend": choose_backend("auto", epochs=t, observables="all"),
        "api_all_Gsteps": b * t / every / 1e9,
        "api_all_write_fraction": 5 * 4 * b * (t + 1) / every / wb,
        "api_all_over_kernel": kernel / every,
        "target": "kernel >= 0.5 of the write bandwidth; API >= 0.8 of kernel (the default call, w "
                  "alone, batch-major; also time_major=True); observables='all' writes 5x the bytes",
    }


def _matrix(sizes: Sizes) -> dict:
    from daedyn._linear import _measure
    from daedyn.dynamics import matrix_gd, random_init

    s, d, h, steps = sizes.matrix
    lam = jnp.asarray(np.geomspace(5e3, 1.0, d), jnp.float32)
    w1, w2 = random_init(d, h, init_scale=1e-2, key=jax.random.key(0))
    eps = jnp.linspace(0.0, 2e3, s, dtype=jnp.float32)
    out = {"shape": [s, d, h, steps]}
    for precision in ("highest", None):
        run = lambda lam, w1, w2, eps: (
            matrix_gd(
                lam,
                w1,
                w2,
                eps=eps,
                gamma=1e-3,
                alpha=1e-2,
                n=5e4,
                epochs=steps,
                save_every=steps,
                precision=precision,
                check_stability=False,
            ).mapping
        )
        sec = _hw.best_time(run, lam, w1, w2, eps, repeat=3)
        flops = 8 * d * h * h * s * steps
        label = precision or "default"
        out[label] = {
            "seconds": sec,
            "TFLOPs": flops / sec / 1e12,
            "peak_fraction": flops / sec / _hw.matmul_peak(precision),
        }
    out["forms"] = {str(k): v for k, v in _measure.measured_forms().items()}
    out["target"] = ">= 0.5 of the matmul peak at the same precision"
    return out


def _figure5(sizes: Sizes) -> dict:
    from benchmarks.train_linear import _figure5 as figure5
    from daedyn import data

    n_m, n_c, d_c, hidden, epochs = sizes.fig5
    tmp = tempfile.mkdtemp(prefix="daedyn-gpu-check-")
    try:
        cifar = os.path.join(tmp, "cifar_sized.npy")
        np.save(cifar, np.random.default_rng(0).uniform(size=(n_c, d_c)).astype(np.float32))
        sets = {
            "mnist5k": (lambda: data.load("mnist5k", n=n_m).x, 0.01),
            "cifar-sized": (lambda: np.load(cifar), 0.001),
        }
        t0 = time.perf_counter()
        res = figure5("eigen", sets, hidden, epochs, save_every=max(epochs // 50, 1))
        sec = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finite = all(np.isfinite(a).all() and np.isfinite(b).all() for a, b in res.values())
    return {
        "sizes": {"mnist5k_n": n_m, "cifar_sized": [n_c, d_c], "hidden": hidden, "epochs": epochs},
        "seconds_end_to_end": sec,
        "finite": finite,
        "target": "< 5 s end to end, compile included",
    }


def _sweep(sizes: Sizes) -> dict:
    from benchmarks.sweep_throughput import _ROOT, _baseline, _grid
    from daedyn import sweep, theory

    n = sizes.sweep
    axes = {
        "lam": np.geomspace(0.1, 10.0, n[0]),
        "eps": np.linspace(0.0, 5.0, n[1]),
        "w1": np.linspace(0.01, 1.0, n[2]),
        "w2": np.linspace(0.02, 0.5, n[3]),
    }
    ts = np.geomspace(1.0, 1e4, 16)
    tmp = tempfile.mkdtemp(prefix=".daedyn-gpu-check-", dir=_ROOT)  # where sweep_throughput writes
    try:
        s = sweep.run(
            {
                "function": "theory.dae_trajectory",
                "axes": axes,
                "constants": {"t": ts, "tau": 100.0},
                "max_memory": "4GB",
            },
            path=os.path.join(tmp, "s.zarr"),
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = _baseline(
        lambda lam, eps, w1, w2: theory.dae_trajectory(
            jnp.asarray(ts, jnp.float32),
            lam[..., None],
            eps[..., None],
            w1[..., None],
            w2[..., None],
            tau=jnp.float32(100.0),
        ),
        _grid(axes),
        s.n_points,
    )()  # the median of 3 calls
    return {
        "points": s.n_points,
        "chunks": s.n_chunks,
        "sweep_Mtraj_per_s": s.points_per_s / 1e6,
        "compute_only_Mtraj_per_s": base / 1e6,
        "ratio": s.points_per_s / base,
        "io_fraction": s.io_fraction,
        "compile_s": s.compile_s,
        "target": "ratio >= 0.7",
    }


STEPS = (
    ("limits", lambda sizes, dry: _limits()),
    ("gpu tests", _gpu_tests),
    ("closed form", lambda sizes, dry: _closed_form(sizes)),
    ("scalar GD", lambda sizes, dry: _scalar_gd(sizes)),
    ("matrix flow", lambda sizes, dry: _matrix(sizes)),
    ("Figure 5", lambda sizes, dry: _figure5(sizes)),
    ("sweep", lambda sizes, dry: _sweep(sizes)),
)


def has_gpu() -> bool:
    return any(d.platform in ("gpu", "cuda", "rocm") for d in jax.devices())


def run_check(*, dry_run: bool = False, json_out: str | None = None, progress=print) -> int:
    """Run the check; returns the exit code (0 ok, 1 a step failed, 3 no GPU).

    Raises:
      ValueError: ``json_out`` in a missing folder, a folder itself or unwritable: before any step.
    """
    path = json_out or (None if dry_run else os.path.join(os.path.dirname(__file__), "results-gpu.json"))
    if path:  # before the steps: minutes of measurements must not end in a write that cannot happen
        from daedyn._checkpoint import check_writable

        check_writable("--json-out", path)
    if not dry_run and not has_gpu():
        progress(
            f"--gpu-check needs a GPU; JAX sees only {', '.join(sorted({d.platform for d in jax.devices()}))}"
            " "
            "device(s). Nothing was run. On a GPU machine: python -m benchmarks --gpu-check; here, "
            "python -m benchmarks --gpu-check --dry-run exercises every step at tiny sizes."
        )
        return NO_GPU
    sizes = TINY if dry_run else FULL
    t_start = time.perf_counter()
    result = {
        "device": _hw.device_description(),
        "dry_run": dry_run,
        "steps": {},
        "failures": {},
        "skipped": [],
        "jax": jax.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    for name, step in STEPS:
        if time.perf_counter() - t_start > BUDGET_S:
            result["skipped"].append(name)
            progress(f"[{name}] skipped: the {BUDGET_S} s budget is spent")
            continue
        t0 = time.perf_counter()
        progress(f"[{name}] ...")
        try:
            out = step(sizes, dry_run)
            result["steps"][name] = {**out, "step_s": time.perf_counter() - t0}
            if name == "limits":
                result["limits"] = out
        except Exception as err:  # one failing step must not hide the others
            result["failures"][name] = "".join(traceback.format_exception_only(err)).strip()
            progress(f"[{name}] FAILED: {result['failures'][name]}")
        progress(f"[{name}] {time.perf_counter() - t0:.1f} s")
    result["total_s"] = time.perf_counter() - t_start
    if path:  # never lost: on a failed write the results go to stderr instead
        if write_json(path, result, "gpu check results", indent=2, default=float):
            progress(f"wrote {path}")
        else:
            result["failures"]["write"] = f"could not write {path}"
    progress(
        f"gpu check: {len(result['steps'])} steps ok, {len(result['failures'])} failed, "
        f"{len(result['skipped'])} skipped, {result['total_s']:.1f} s"
    )
    return 1 if result["failures"] or result["skipped"] else 0
