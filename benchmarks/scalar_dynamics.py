"""How close does the scalar GD recursion get to the write-bandwidth limit?

Workload: B trajectories x T epochs of Eqs. (2)-(3) with weight decay as gradient descent (one step =
one epoch), saving every epoch and every 100th epoch.

- kernel rows: ``daedyn._kernels.scalar_gd_fused`` saving w = w1 w2 only (4 bytes per saved point;
  Pallas kernel on a GPU, fused lax.scan elsewhere) vs a plain ``lax.scan`` of the textbook update
  (one scan iteration per epoch, or per save with an inner loop); fraction of the write bandwidth
  measured in the same process for an output of the same size (4 bytes per saved point).
- API rows: ``daedyn.dynamics.scalar_gd(..., observables="all")`` (all five saved quantities,
  batch-major), the fused backend (Pallas on a GPU, "jnp" elsewhere) vs backend="scan": the
  measurement behind "auto" (``choose_backend``; the row's notes say what "auto" resolves to).
- API vs raw kernel rows: the DEFAULT call ``scalar_gd(lam, eps, w1, w2, alpha=, gamma=, epochs=)``
  (save every epoch, only w saved, batch-major (*batch, T) as a device layout of the time-major
  result, backend "auto", validation and the stability check included) against
  ``scalar_gd_fused`` saving w every epoch, the same job; ratio = API rate / kernel rate (target
  >= 0.8, issue 18). A second row adds ``time_major=True``; a third asks for
  ``observables="all"`` (w1, w2, w, weight_norm, loss: 5x the kernel's bytes), the cost of every
  field (the default before issue 18's third session).
- RK4 row: the fixed-step flow integrator (``scalar_flow(method="rk4")``) vs diffrax.
- Python-loop row: the authors' style (one trajectory at a time, a Python iteration per epoch).
- diffrax row: the continuous flow with diffrax's adaptive Tsit5 (``scalar_flow(method="diffrax")``)
  on a sub-batch, saved every epoch, in trajectory-epochs per second (a different discretisation:
  the cost of an adaptive ODE solver for the same span of epochs).

Measured on an H100 in an earlier session with a scratch prototype of the kernel (B = 2^20,
T = 1000, float32, every epoch saved): 613-626 G steps/s = ~85% of the measured 2.94 TB/s write
bandwidth, plain lax.scan 68.7 G steps/s; every 100th epoch saved via scan 1178 G steps/s.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from benchmarks import _hw
from daedyn._kernels import scalar_gd_fused
from daedyn.dynamics import choose_backend, scalar_flow, scalar_gd


@functools.partial(jax.jit, static_argnames=("epochs", "every"))
def plain_scan(lam, eps, ng, inv_tau, w1, w2, *, epochs, every=1):
    """Baseline: the textbook update in a lax.scan, saving w every ``every`` epochs."""
    def epoch(c):
        w1, w2 = c
        f1 = w2 * lam * (1 - w2 * w1) - eps * w2 * w2 * w1 - ng * w1
        f2 = w1 * lam * (1 - w2 * w1) - eps * w2 * w1 * w1 - ng * w2
        return w1 + inv_tau * f1, w2 + inv_tau * f2

    def body(c, _):
        c = epoch(c) if every == 1 else lax.fori_loop(0, every, lambda i, c: epoch(c), c)
        return c, c[0] * c[1]

    return lax.scan(body, (w1, w2), None, length=epochs // every)[1]


def _inputs(b):
    keys = jax.random.split(jax.random.key(0), 3)
    lam = jax.random.uniform(keys[0], (b,), minval=0.1, maxval=2.0)
    eps = jax.random.uniform(keys[1], (b,), minval=0.0, maxval=3.0)
    w1 = jax.random.uniform(keys[2], (b,), minval=-0.1, maxval=0.1)
    return lam, eps, jnp.full((b,), 1e-3), jnp.full((b,), 0.01), w1, 0.5 * w1 + 0.01


def kernel_args(args):
    """The kernel's arguments for ``_inputs``: the quadratic-form coefficients k = lam, m = lam + eps."""
    lam, eps, *rest = args
    return (lam, lam + eps, *rest)


def schedule_rows(lam, eps, w1, w2, b, t) -> list[dict]:
    """A scheduled ``scalar_gd`` (the default call) against the same call with constant rates, on the
    same sizes, interleaved in one process (target >= 0.8, issue 25): an eps schedule of 3 pieces
    with a value per trajectory ((3, B) values: the fused kernel's table, a row read per step), and
    the same with a 2-piece learning-rate schedule too (the merged table of both). Depth 2 and 3."""
    from daedyn import schedules

    cut = [0.3 * t, 0.7 * t]
    eps_s = schedules.piecewise_constant(cut, jnp.stack([eps, 0.5 * eps, 2.0 * eps]))
    alpha_s = schedules.piecewise_constant([0.5 * t], [0.01, 0.005])
    rows = []
    for depth in (2, 3):
        api = functools.partial(scalar_gd, gamma=1e-3, epochs=t, depth=depth)
        calls = {"constant": lambda: api(lam, eps, w1, w2, alpha=0.01).w,
                 "eps": lambda: api(lam, eps_s, w1, w2, alpha=0.01).w,
                 "eps+alpha": lambda: api(lam, eps_s, w1, w2, alpha=alpha_s).w}
        times = {k: [] for k in calls}
        for _ in range(3):
            for k, f in calls.items():
                times[k].append(_hw.best_time(f, repeat=2))
        med = {k: float(np.median(v)) for k, v in times.items()}
        for k, what in (("eps", "eps schedule (3 pieces, a value per trajectory)"),
                        ("eps+alpha", "eps (3 pieces) and alpha (2 pieces) schedules")):
            rows.append(dict(
                workload=f"scalar_gd {b}x{t} depth {depth}, {what} vs constant rates",
                ours=b * t / med[k] / 1e9, baseline=b * t / med["constant"] / 1e9,
                ratio=med["constant"] / med[k], unit="G steps/s",
                notes=f"default call (w every epoch, batch-major, auto = "
                      f"{choose_backend('auto', epochs=t)}); target >= 0.8; median of 3 interleaved "
                      f"best-of-2"))
    return rows


def run(quick: bool = True) -> list[dict]:
    on_gpu = jax.default_backend() == "gpu"
    b, t, b_sub = (1_000_000, 1000, 4096) if (on_gpu and not quick) else (100_000, 1000, 1024)
    args = _inputs(b)
    lam, eps, ng, inv_tau, w1, w2 = args
    steps = b * t
    kernel = "pallas" if on_gpu else "fused jnp"
    rows = []
    for every in (1, 100):
        saved = steps // every
        limit = _hw.write_bandwidth(saved)  # bytes / s for an output of the same size
        t_base = _hw.best_time(lambda *a: plain_scan(*a, epochs=t, every=every), *args, repeat=3)
        t_ours = _hw.best_time(lambda *a: scalar_gd_fused(*a, n_saves=t // every, save_every=every)[0],
                               *kernel_args(args), repeat=3)
        rows.append(dict(
            workload=f"GD kernel {b}x{t}, save w every {'epoch' if every == 1 else f'{every}th'} ({kernel})",
            ours=steps / t_ours / 1e9, baseline=steps / t_base / 1e9, ratio=t_base / t_ours,
            unit="G steps/s", hw_fraction=4 * saved / t_ours / limit if every == 1 else None,
            notes=(f"baseline plain lax.scan; limit = measured write bandwidth {limit / 1e9:.3g} GB/s at 4 "
                   f"bytes per saved point (copy bandwidth {_hw.copy_bandwidth() / 1e9:.3g} GB/s)")
            if every == 1 else "baseline plain lax.scan; compute-bound (1% of the writes): no byte limit"))
    # The public API's DEFAULT call (w every epoch, batch-major, stability check on) doing the
    # kernel's job, against the raw kernel, interleaved in one process (a shared CPU drifts); then
    # the same time-major, and asking for every field.
    api = functools.partial(scalar_gd, alpha=0.01, gamma=1e-3, epochs=t)  # every other argument default
    raw = lambda *a: scalar_gd_fused(*a, n_saves=t)[0]
    calls = {"default": lambda *a: api(*a).w, "time_major": lambda *a: api(*a, time_major=True).w,
             "all": lambda *a: api(*a, observables="all").loss}
    times = {k: [] for k in ("raw", *calls)}
    for _ in range(3):
        times["raw"].append(_hw.best_time(raw, *kernel_args(args), repeat=2))
        for k, f in calls.items():
            times[k].append(_hw.best_time(f, lam, eps, w1, w2, repeat=2))
    med = {k: float(np.median(v)) for k, v in times.items()}
    how = "median of 3 interleaved best-of-2; kernel: scalar_gd_fused (no start)"
    for k, what, fields in (
            ("default", "default call: save w every epoch, batch-major (B, T)", 1),
            ("time_major", "default call + time_major=True (T, B)", 1),
            ("all", 'observables="all": 5 fields every epoch, batch-major', 5)):
        auto = choose_backend("auto", epochs=t, observables="all" if k == "all" else None)
        rows.append(dict(
            workload=f"scalar_gd API vs raw kernel {b}x{t}, {what}",
            ours=steps / med[k] / 1e9, baseline=steps / med["raw"] / 1e9, ratio=med["raw"] / med[k],
            unit="G steps/s", hw_fraction=fields * 4 * b * (t + 1) / med[k] / _hw.write_bandwidth(),
            notes=f"auto = {auto}; {4 * fields} bytes per saved point, start saved in-kernel, stability "
                  f"check included; {how}"))
    rows += schedule_rows(lam, eps, w1, w2, b, t)
    for every in (1, 100):
        api = functools.partial(scalar_gd, alpha=0.01, gamma=1e-3, epochs=t, save_every=every,
                                check_stability=False, observables="all")
        fused = "pallas" if on_gpu else "jnp"
        t_auto = _hw.best_time(lambda *a: api(*a, backend=fused).loss, lam, eps, w1, w2, repeat=3)
        t_scan = _hw.best_time(lambda *a: api(*a, backend="scan").loss, lam, eps, w1, w2, repeat=3)
        saved = 5 * 4 * b * (t // every + 1)  # five float32 quantities per saved point
        rows.append(dict(
            workload=f"scalar_gd API {b}x{t}, save every {'epoch' if every == 1 else f'{every}th'}, "
                     f"fused ({fused}) vs scan",
            ours=steps / t_auto / 1e9, baseline=steps / t_scan / 1e9, ratio=t_scan / t_auto,
            unit="G steps/s", hw_fraction=saved / t_auto / _hw.write_bandwidth(),
            notes=f"auto = {choose_backend('auto', epochs=t, save_every=every, observables='all')}; "
                  "writes w1, w2, w, weight_norm, loss (20 bytes per saved point) batch-major"))
    # observables=("w",): the API asking the kernel for w alone (a fifth of the bytes), auto vs scan.
    api_w = functools.partial(scalar_gd, alpha=0.01, gamma=1e-3, epochs=t, observables=("w",),
                              check_stability=False)
    t_w = _hw.best_time(lambda *a: api_w(*a, backend="auto").w, lam, eps, w1, w2, repeat=3)
    t_w_scan = _hw.best_time(lambda *a: api_w(*a, backend="scan").w, lam, eps, w1, w2, repeat=3)
    rows.append(dict(
        workload=f"scalar_gd API {b}x{t}, observables=('w',), save every epoch, auto vs scan",
        ours=steps / t_w / 1e9, baseline=steps / t_w_scan / 1e9, ratio=t_w_scan / t_w,
        unit="G steps/s", hw_fraction=4 * b * (t + 1) / t_w / _hw.write_bandwidth(),
        notes=f"auto = {choose_backend('auto', epochs=t, observables=('w',))}; 4 bytes per saved point, "
              "batch-major"))
    sub = [a[:b_sub] for a in (lam, eps, w1, w2)]
    ts = jnp.arange(t + 1, dtype=jnp.float32)
    t_dfx = _hw.best_time(lambda *a: scalar_flow(ts, *a, tau=100.0, gamma=1e-3, method="diffrax",
                                                 rtol=1e-6, atol=1e-8).w, *sub, repeat=3)
    t_ours = _hw.best_time(lambda *a: scalar_gd_fused(*a, n_saves=t)[0], *kernel_args(args), repeat=3)
    ours, base = steps / t_ours, b_sub * t / t_dfx  # trajectory-epochs per second
    rows.append(dict(
        workload=f"GD kernel {b}x{t} vs diffrax Tsit5 flow {b_sub}x{t} (rtol 1e-6), every epoch saved",
        ours=ours / 1e9, baseline=base / 1e9, ratio=ours / base, unit="G steps/s",
        notes="diffrax: trajectory-epochs per second on the sub-batch, compile excluded"))
    # RK4 flow on the whole batch (one step per epoch, every epoch saved) vs diffrax's Tsit5.
    t_rk4 = _hw.best_time(lambda *a: scalar_flow(ts, *a, tau=100.0, gamma=1e-3, method="rk4", dt=1.0).w,
                          lam, eps, w1, w2, repeat=3)
    rows.append(dict(
        workload=f"RK4 flow {b}x{t} (scalar_flow, dt = 1 epoch, every epoch saved) vs diffrax Tsit5 "
                 f"{b_sub}x{t}",
        ours=steps / t_rk4 / 1e9, baseline=base / 1e9, ratio=steps / t_rk4 / base, unit="G steps/s",
        notes=f"RK4: 4 right-hand sides per step, 5 saved fields; {steps / t_rk4 / ours:.2g} of the "
              "GD kernel's rate"))
    # The authors' experiments: one trajectory at a time, a Python loop over epochs.
    n_py, t_py = 4, 200
    lam_h, eps_h, w1_h, w2_h = (np.asarray(a[:n_py], np.float64) for a in (lam, eps, w1, w2))
    t0 = time.perf_counter()
    for i in range(n_py):
        a, c = float(w1_h[i]), float(w2_h[i])
        path = []
        for _ in range(t_py):
            f1 = c * lam_h[i] * (1 - c * a) - eps_h[i] * c * c * a - 1e-3 * a
            f2 = a * lam_h[i] * (1 - c * a) - eps_h[i] * c * a * a - 1e-3 * c
            a, c = a + 0.01 * f1, c + 0.01 * f2
            path.append(a * c)
    py_rate = n_py * t_py / (time.perf_counter() - t0)
    rows.append(dict(
        workload=f"GD kernel {b}x{t} vs a per-trajectory Python loop over epochs ({n_py}x{t_py})",
        ours=ours / 1e9, baseline=py_rate / 1e9, ratio=ours / py_rate, unit="G steps/s",
        notes="the authors' style of experiment: one trajectory at a time, one Python iteration per "
              "epoch"))
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import format_table

    print(f"device {_hw.device_description()}")
    print(format_table([{"benchmark": "scalar_dynamics", **r} for r in run(quick=True)]))
