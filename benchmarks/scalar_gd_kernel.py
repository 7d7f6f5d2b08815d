"""How close does the scalar GD recursion get to the write-bandwidth limit?

Workload: B trajectories x T epochs of Eqs. (2)-(3) with weight decay as gradient descent, saving
w = w1 w2 every epoch (4 bytes per trajectory-step written) and, separately, every 100th epoch.
Ours: ``daedyn._kernels.scalar_gd_fused`` (Pallas kernel on a GPU, lax.scan with an unrolled
inner loop elsewhere). Baseline: a plain ``lax.scan`` over epochs that stacks every epoch's state.
Hardware limit: bytes written per second by a write-only kernel measured in the same process.

Measured on one H100 in this project (prototype of this script, 2026-11-23): write-only kernel
2.94 TB/s; Pallas 626 G steps/s = 85% of it; plain scan 69 G steps/s.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from benchmarks import _hw
from daedyn._kernels import scalar_gd_fused


@functools.partial(jax.jit, static_argnames=("epochs",))
def plain_scan(lam, eps, ng, inv_tau, w1, w2, *, epochs):
    """Baseline: one scan iteration per epoch, the textbook update, every epoch stacked."""
    def body(c, _):
        w1, w2 = c
        f1 = w2 * lam * (1 - w2 * w1) - eps * w2 * w2 * w1 - ng * w1
        f2 = w1 * lam * (1 - w2 * w1) - eps * w2 * w1 * w1 - ng * w2
        c = (w1 + inv_tau * f1, w2 + inv_tau * f2)
        return c, c[0] * c[1]

    return lax.scan(body, (w1, w2), None, length=epochs)[1]


def run(quick: bool = True) -> list[dict]:
    on_gpu = jax.default_backend() == "gpu"
    b, t = (1 << 20, 1000) if (on_gpu and not quick) else (1 << 15, 200)
    keys = jax.random.split(jax.random.key(0), 3)
    lam = jax.random.uniform(keys[0], (b,), minval=0.1, maxval=2.0)
    eps = jax.random.uniform(keys[1], (b,), minval=0.0, maxval=3.0)
    w1 = jax.random.uniform(keys[2], (b,), minval=-0.1, maxval=0.1)
    args = (lam, eps, jnp.zeros(b), jnp.full((b,), 0.01), w1, 0.5 * w1 + 0.01)
    steps = b * t
    limit = _hw.write_bandwidth(steps)  # bytes / s, for an output of the same size

    t_base = _hw.best_time(lambda *a: plain_scan(*a, epochs=t), *args)
    t_ours = _hw.best_time(lambda *a: scalar_gd_fused(*a, n_saves=t, save_every=1)[0], *args)
    every = 100 if t % 100 == 0 else 10
    t_sparse = _hw.best_time(lambda *a: scalar_gd_fused(*a, n_saves=t // every, save_every=every)[0], *args)
    backend = "pallas" if on_gpu else "jnp"
    rows = [
        dict(workload=f"GD {b}x{t}, save every epoch ({backend})", ours=steps / t_ours / 1e9,
             baseline=steps / t_base / 1e9, ratio=t_base / t_ours, unit="G steps/s",
             hw_fraction=4 * steps / t_ours / limit,
             notes=f"limit = measured write bandwidth {limit / 1e9:.3g} GB/s at 4 bytes per step"),
        dict(workload=f"GD {b}x{t}, save every {every}th ({backend})", ours=steps / t_sparse / 1e9,
             baseline=steps / t_ours / 1e9, ratio=t_ours / t_sparse, unit="G steps/s",
             notes="baseline = the same kernel saving every epoch"),
    ]
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import format_table

    print(f"device {_hw.device_description()}")
    print(format_table([{"benchmark": "scalar_gd_kernel", **r} for r in run(quick=True)]))
