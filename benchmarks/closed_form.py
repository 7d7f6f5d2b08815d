"""How fast is the robust closed form (5), and what does robustness cost against the printed formula?

Workload: ``dae_trajectory`` on a grid of B trajectories x T times in float32 (random lam in
[0.1, 2.5], eps in [0, 50], initial weights in [-1.5, 1.5] of any sign, times from 0 to 1e4 tau),
output (T, B). Ours: ``daedyn.theory.dae_trajectory`` under ``jax.jit`` (the Riccati/Moebius form
with decaying exponentials). Baseline: ``dae_trajectory_printed``, a straightforward jnp
evaluation of Eq. (5) as printed, on the same grid. Hardware limit: writing the output, 4 bytes per
point, at the write bandwidth measured in the same process (``_hw.write_bandwidth``; the copy
bandwidth is quoted in the notes). Also reported: the fraction of non-finite outputs of each, and
the float32 error of ours against a float64 evaluation (validated against solve_ivp in the tests).

Quick (CPU): B = 1e5, T = 100. Full (the issue's target): B = 1e6, T = 1e3, 4 GB of output.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _hw
from daedyn import theory
from daedyn.theory._general import dae_trajectory_printed  # private: Eq. (5) as printed


@jax.jit
def ours(t, lam, eps, w1, w2):
    return theory.dae_trajectory(t[:, None], lam, eps, w1, w2)


@jax.jit
def printed(t, lam, eps, w1, w2):
    return dae_trajectory_printed(t[:, None], lam, eps, w1, w2)


@functools.partial(jax.jit, static_argnames=("fn",))
def _nonfinite_fraction(fn, *args):
    return jnp.mean(~jnp.isfinite(fn(*args)))


def _grid(b: int, t: int):
    k = jax.random.split(jax.random.key(0), 4)
    lam = jax.random.uniform(k[0], (b,), jnp.float32, 0.1, 2.5)
    eps = jax.random.uniform(k[1], (b,), jnp.float32, 0.0, 50.0)
    w1 = jax.random.uniform(k[2], (b,), jnp.float32, -1.5, 1.5)
    w2 = jax.random.uniform(k[3], (b,), jnp.float32, -1.5, 1.5)
    ts = jnp.concatenate([jnp.zeros(1, jnp.float32), jnp.geomspace(1e-2, 1e4, t - 1, dtype=jnp.float32)])
    return ts, lam, eps, w1, w2


def _float32_error(args, n: int = 2000) -> float:
    """Max |w32 - w64| / (|w64| + 1e-3 (w1^2 + w2^2)) over the first n trajectories (all times)."""
    ts, lam, eps, w1, w2 = args
    sub = (ts, lam[:n], eps[:n], w1[:n], w2[:n])
    w32 = np.asarray(ours(*sub), np.float64)
    with jax.enable_x64(True):
        ts, lam, eps, w1, w2 = (np.asarray(a, np.float64) for a in sub)
        w64 = np.asarray(theory.dae_trajectory(ts[:, None], lam, eps, w1, w2))
    scale = np.abs(w64) + 1e-3 * (w1**2 + w2**2)
    return float(np.max(np.abs(w32 - w64) / np.maximum(scale, 1e-30)))


def run(quick: bool = True) -> list[dict]:
    on_gpu = jax.default_backend() == "gpu"
    b, t = (1_000_000, 1000) if (on_gpu and not quick) else (100_000, 100)
    args = _grid(b, t)
    points = b * t
    write = _hw.write_bandwidth()
    copy = _hw.copy_bandwidth()
    t_ours = _hw.best_time(ours, *args)
    t_printed = _hw.best_time(printed, *args)
    bad_ours = float(_nonfinite_fraction(ours, *args))
    bad_printed = float(_nonfinite_fraction(printed, *args))
    err = _float32_error(args)
    rate = points / t_ours
    return [
        dict(workload=f"dae_trajectory {b}x{t} float32 (robust Eq. 5)", ours=rate / 1e9,
             baseline=points / t_printed / 1e9, ratio=t_printed / t_ours, unit="G points/s",
             hw_fraction=4 * rate / write,
             notes=f"baseline = Eq. (5) as printed; limit = 4 bytes/point at the measured write "
             f"bandwidth {write / 1e9:.3g} GB/s (copy bandwidth {copy / 1e9:.3g} GB/s: fraction "
             f"{4 * rate / copy:.3g}); non-finite outputs: ours {bad_ours:.3g}, printed "
             f"{bad_printed:.3g}; float32 error of ours vs float64 {err:.2g} (relative)"),
        dict(workload="non-finite fraction of the outputs (same grid)", ours=bad_ours,
             baseline=bad_printed, ratio=None, unit="fraction",
             notes="printed: overflow of exp(zeta lam t / tau), 0/0 at w1^2 = w2^2"),
    ]


if __name__ == "__main__":
    from benchmarks.__main__ import format_table

    print(f"device {_hw.device_description()}")
    print(format_table([{"benchmark": "closed_form", **r} for r in run(quick=True)]))
