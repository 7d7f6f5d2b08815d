"""How fast is the depth-L closed form on a time grid, and what does sharing its table buy?

Workload: ``theory.small_init_trajectory(t, lam, eps, gamma, w0=, depth=L)`` for L = 3 and 4 on a
grid of D = 200 eigenvalues x T = 250 times (float32). ``ours``: the arguments as given, (T, 1) times
against (1, D) eigenvalues, so the solver builds each eigenvalue's quadrature table once and solves
every time against it. Baseline in the same process: the same values with every parameter broadcast
to (T, D) first, which forces the per-element path (one table per output element, the only path
before tables were shared). Both give the same numbers (tests/test_theory_depth.py). The depth-2
closed form on the same grid is reported in the notes for scale.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _hw
from daedyn import theory

D, T = 200, 250


def run(quick: bool = True) -> list[dict]:
    lam = jnp.asarray(np.geomspace(1e-3, 10.0, D), jnp.float32)[None, :]
    t = jnp.asarray(np.linspace(0.0, 200.0, T), jnp.float32)[:, None]
    full = lambda a: jnp.broadcast_to(a, (T, D))
    repeat = 2 if quick else 5
    rows = []
    two = jax.jit(lambda t, lam: theory.small_init_trajectory(t, lam, 0.5, 0.01, w0=1e-3))
    two_rate = T * D / _hw.best_time(two, t, lam, repeat=repeat)
    for depth in (3, 4):
        shared = jax.jit(lambda t, lam, L=depth: theory.small_init_trajectory(t, lam, 0.5, 0.01, w0=1e-3,
                                                                              depth=L))
        per = jax.jit(lambda t, lam, L=depth: theory.small_init_trajectory(
            full(t), full(lam), full(jnp.float32(0.5)), full(jnp.float32(0.01)), w0=full(jnp.float32(1e-3)),
            depth=L))
        rate = T * D / _hw.best_time(shared, t, lam, repeat=repeat)
        base = T * D / _hw.best_time(per, t, lam, repeat=repeat)
        rows.append(dict(
            workload=f"deep closed form L={depth}, {D} lam x {T} times (float32)",
            ours=rate / 1e6, baseline=base / 1e6, ratio=rate / base, unit="M points/s",
            notes=f"baseline: one quadrature table per element (parameters broadcast to the grid); "
                  f"depth 2 on the same grid: {two_rate / 1e6:.3g} M points/s"))
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import format_table

    print(f"device {_hw.device_description()}")
    print(format_table([{"benchmark": "deep_closed_form", **r} for r in run(quick=True)]))
