"""How fast is the depth-L closed form on a time grid, against the depth-2 closed form?

Workload: ``theory.small_init_trajectory(t, lam, eps, gamma, w0=, depth=L)`` for L = 3 and 4 on a
grid of D = 200 eigenvalues x T = 250 times (float32), (T, 1) times against (1, D) eigenvalues: each
eigenvalue's time table (Chebyshev series of the exact time per panel) is built once and every time is
a Newton solve on one panel's polynomial (the tails below the table only where some element needs
them). Baseline in the same process (issue 30's ratio, target >= 0.05): the depth-2 closed form
(Eq. 7) on the same grid. The notes give the per-element path (every parameter broadcast to (T, D)
first: one table per output element), which gives the same numbers (tests/test_theory_depth.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _hw
from daedyn import theory

D, T = 200, 250
# interleaved rounds: 3 left single runs between 0.049 and 0.097 on the 2-core VM (the depth-2 baseline's
# 0.25 ms calls vary 135-205 M points/s run to run)
ROUNDS = 7


def run(quick: bool = True) -> list[dict]:
    lam = jnp.asarray(np.geomspace(1e-3, 10.0, D), jnp.float32)[None, :]
    t = jnp.asarray(np.linspace(0.0, 200.0, T), jnp.float32)[:, None]
    full = lambda a: jnp.broadcast_to(a, (T, D))
    repeat = 5 if quick else 10
    rows = []
    two = jax.jit(lambda t, lam: theory.small_init_trajectory(t, lam, 0.5, 0.01, w0=1e-3))
    for depth in (3, 4):
        shared = jax.jit(lambda t, lam, L=depth: theory.small_init_trajectory(t, lam, 0.5, 0.01, w0=1e-3,
                                                                              depth=L))
        per = jax.jit(lambda t, lam, L=depth: theory.small_init_trajectory(
            full(t), full(lam), full(jnp.float32(0.5)), full(jnp.float32(0.01)), w0=full(jnp.float32(1e-3)),
            depth=L))
        # interleaved rounds on a shared CPU: the median of the per-round ratios
        ratios, rates, twos = [], [], []
        for _ in range(ROUNDS):
            rate = T * D / _hw.best_time(shared, t, lam, repeat=repeat)
            two_rate = T * D / _hw.best_time(two, t, lam, repeat=4 * repeat)
            ratios.append(rate / two_rate)
            rates.append(rate)
            twos.append(two_rate)
        i = int(np.argsort(ratios)[ROUNDS // 2])
        per_rate = T * D / _hw.best_time(per, t, lam, repeat=2)
        rows.append(dict(
            workload=f"deep closed form L={depth} vs depth 2, {D} lam x {T} times (float32)",
            ours=rates[i] / 1e6, baseline=twos[i] / 1e6, ratio=ratios[i], unit="M points/s",
            notes=f"baseline: the depth-2 closed form on the same grid (target ratio >= 0.05); median of "
                  f"{ROUNDS} interleaved rounds (ratios {', '.join(f'{r:.3g}' for r in ratios)}); one table "
                  f"per element (parameters broadcast to the grid): {per_rate / 1e6:.3g} M points/s"))
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import format_table

    print(f"device {_hw.device_description()}")
    print(format_table([{"benchmark": "deep_closed_form", **r} for r in run(quick=True)]))
