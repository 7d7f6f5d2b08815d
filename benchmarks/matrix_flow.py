"""How close does the full-matrix eigenbasis recursion get to the float32 matmul peak?

Workload: S hyperparameter settings (eps, gamma) of gradient descent on the expected loss in the
eigenbasis of Sigma (``daedyn.dynamics.matrix_gd``), D = 784, H = 256 (MNIST-sized), observed at the
start and the end only. Issue target: S = 64 at >= 50% of the matmul peak (GPU, full size); the quick
CPU run uses S = 8 and a few steps.
Ours: ``form="auto"``: the form measured fastest for this shape, dtype, batch and precision on this
device, once per process (``daedyn._linear._measure``; the notes name it and the per-step times
it measured). Baselines in the same process:
"square", the older-style M = Lam - W (Lam + eps) form (3 D^2 H, cheaper only for H >= 3 D / 4), and
"gram_t" (the same flops on the state (Wb1, Wb2^T), no transposes; ratio < 1 means gram_t is faster).
FLOP/s count 8 D H^2 per setting and step for every form (so the ratio is the time ratio), including
the two observations (QR + SVD, ~3% of the quick run). Hardware limit: an n^3 float32 matmul
(``_hw.matmul_peak``) measured in the same process at the same precision.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _hw
from daedyn._linear import _measure
from daedyn.dynamics import matrix_gd, random_init

D, H = 784, 256


def _problem(settings: int):
    lam = jnp.asarray(np.geomspace(5e3, 1.0, D), jnp.float32)  # a decaying MNIST-like spectrum, N = 5e4
    w1, w2 = random_init(D, H, init_scale=1e-2, key=jax.random.key(0))
    g = np.meshgrid(np.linspace(0.0, 2e3, 8), np.linspace(0.0, 0.02, max(1, settings // 8)))
    eps = jnp.asarray(g[0].ravel()[:settings], jnp.float32)
    gamma = jnp.asarray(g[1].ravel()[:settings], jnp.float32)
    return lam, w1, w2, eps, gamma


def step_seconds(form: str, precision, settings: int, steps: int, repeat: int = 5) -> float:
    """Best wall time of ``steps`` GD epochs for ``settings`` settings (one compile excluded)."""
    lam, w1, w2, eps, gamma = _problem(settings)

    def run(lam, w1, w2, eps, gamma):
        return matrix_gd(lam, w1, w2, eps=eps, gamma=gamma, alpha=1e-2, n=50_000, epochs=steps,
                         save_every=steps, precision=precision, form=form, check_stability=False).mapping

    return _hw.best_time(run, lam, w1, w2, eps, gamma, repeat=repeat)


def run(quick: bool = True) -> list[dict]:
    on_gpu = jax.default_backend() == "gpu"
    settings, steps = (64, 200) if (on_gpu and not quick) else (8, 20)
    flops = 8 * D * H * H * settings * steps  # gram count; "square" does 6 D^2 H (2.3x more here)
    rows = []
    for precision in ("highest", None):
        peak = _hw.matmul_peak(precision)
        times = {f: step_seconds(f, precision, settings, steps) for f in ("auto", "gram_t", "square")}
        label = precision or "default"
        picked = [(k, v) for k, v in _measure.measured_forms().items() if k[5] == precision and k[0] == D]
        chosen = "auto"
        if picked:
            winner, secs = picked[-1][1]
            per_step = ", ".join(f"{f} {t:.3g}" for f, t in secs.items())
            chosen = f"auto = {winner} (measured s/step: {per_step})"
        for base in ("square", "gram_t"):
            rows.append(dict(
                workload=f"matrix GD {settings}x D{D} H{H}, {steps} steps, precision {label}, vs {base}",
                ours=flops / times["auto"] / 1e9, baseline=flops / times[base] / 1e9,
                ratio=times[base] / times["auto"], unit="GFLOP/s",
                hw_fraction=flops / times["auto"] / peak,
                notes=f"limit = measured {peak / 1e9:.4g} GFLOP/s float32 matmul, precision {label}; "
                      f"{8 * D * H * H / 1e6:.0f} MFLOP per setting-step; {chosen}"))
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import format_table

    print(f"device {_hw.device_description()}")
    print(format_table([{"benchmark": "matrix_flow", **r} for r in run(quick=True)]))
