"""How close does the depth-L full-matrix recursion get to the float32 matmul peak?

Workload: S hyperparameter settings (eps, gamma) of gradient descent on the expected loss of a deep
linear DAE in the eigenbasis (``daedyn.dynamics.matrix_gd``, L = 3 and 4 factor matrices, D = 784,
every hidden layer H = 256), observed at the start and the end only. Baseline in the same process:
the depth-2 ``matrix_gd`` (form "gram") on the same spectrum and settings, so the ratio says how much
of the depth-2 FLOP rate the deep recursion keeps. FLOPs are XLA's own count (``cost_analysis``) of
one gradient step of all settings times the number of steps (the two observations, QR + SVD, are
timed but not counted); the hardware limit is an n^3 float32 matmul measured in the same
process at the same precision (``_hw.matmul_peak``). The quick CPU run uses S = 8 and 10 steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _hw
from daedyn import _linear
from daedyn.dynamics import matrix_gd, random_init

D, H = 784, 256


def _settings(settings: int):
    lam = jnp.asarray(np.geomspace(5e3, 1.0, D), jnp.float32)
    eps = jnp.asarray(np.linspace(0.0, 2e3, settings), jnp.float32)
    gamma = jnp.asarray(np.linspace(0.0, 0.02, settings), jnp.float32)
    return lam, eps, gamma


def _step_flops(lam, ws, eps, gamma, precision) -> float:
    """XLA's flop count of one gradient step of every setting (a while loop's body is counted once
    by XLA's cost analysis, so the whole run is counted as steps x one step)."""
    mm = _linear.matmul_fn(precision)

    def step(ws, eps, gamma):
        return _linear.gd_step(ws, lam, eps, n=50_000.0, gamma=gamma, alpha=1e-2, mm=mm, form="gram")

    cost = (
        jax.jit(jax.vmap(step, in_axes=(None, 0, 0))).lower(tuple(ws), eps, gamma).compile().cost_analysis()
    )
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost.get("flops", float("nan")))


def run(quick: bool = True) -> list[dict]:
    on_gpu = jax.default_backend() == "gpu"
    settings, steps, repeat = (64, 200, 5) if (on_gpu and not quick) else (8, 10, 3)
    lam, eps, gamma = _settings(settings)
    rows = []
    for precision in ("highest", None):
        peak = _hw.matmul_peak(precision)
        w1, w2 = random_init(D, H, init_scale=1e-2, key=jax.random.key(0))

        def two(lam, w1, w2, eps, gamma):
            return matrix_gd(
                lam,
                w1,
                w2,
                eps=eps,
                gamma=gamma,
                alpha=1e-2,
                n=50_000,
                epochs=steps,
                save_every=steps,
                precision=precision,
                form="gram",
                check_stability=False,
            ).mapping

        base_flops = _step_flops(lam, (w1, w2), eps, gamma, precision) * steps
        base_rate = base_flops / _hw.best_time(two, lam, w1, w2, eps, gamma, repeat=repeat)
        label = precision or "default"
        for depth in (3, 4):
            ws = random_init(D, (H,) * (depth - 1), init_scale=1e-2, key=jax.random.key(depth))

            def deep(lam, ws, eps, gamma):
                return matrix_gd(
                    lam,
                    *ws,
                    eps=eps,
                    gamma=gamma,
                    alpha=1e-2,
                    n=50_000,
                    epochs=steps,
                    save_every=steps,
                    precision=precision,
                ).mapping

            seconds = _hw.best_time(deep, lam, ws, eps, gamma, repeat=repeat)
            rate = _step_flops(lam, ws, eps, gamma, precision) * steps / seconds
            rows.append(
                dict(
                    workload=f"deep matrix GD L={depth}, {settings}x D{D} H{H}, {steps} steps, "
                    f"precision {label}",
                    ours=rate / 1e9,
                    baseline=base_rate / 1e9,
                    ratio=rate / base_rate,
                    unit="GFLOP/s",
                    hw_fraction=rate / peak,
                    notes=f"baseline: depth-2 matrix_gd (gram) on the same settings; limit = measured "
                    f"{peak / 1e9:.4g} GFLOP/s float32 matmul, precision {label}; XLA flop count of a step; "
                    f"{seconds * 1e3 / steps:.3g} ms per step for {settings} settings",
                )
            )
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import format_table

    print(f"device {_hw.device_description()}")
    print(format_table([{"benchmark": "deep_matrix_flow", **r} for r in run(quick=True)]))
