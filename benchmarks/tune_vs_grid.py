"""Gradient-based noise tuning vs grid search: evaluations and wall time to reach the grid optimum.

Question: how many objective evaluations, and how much wall time, does gradient-based tuning of eps
(daedyn.tune.tune, L-BFGS in log eps) need to get within a tolerance of the best held-out objective
J*, compared with a log-spaced grid search at the coarsest resolution that gets there too?

J* is the best of a dense grid (4001 points; 61 for training) and the converged gradient run. The
grid baseline spans a fixed range [eps_lo, eps_hi] (five decades for the closed form, four for
training; the optimum is not at a special position) and uses the smallest number of log-spaced
points G whose best point is within the tolerance; G is its evaluation count and its batched
evaluation is timed. The gradient run starts at eps_lo and is timed until its first iterate within
the tolerance; its evaluations are objective-and-gradient evaluations, line-search trials included.
Two starts: the low end of the range (uninformed) and the matched noise N s_eval^2 (the optimum at
convergence if train and held-out spectra were equal; the default of daedyn.tune.tune_noise).
ratio = baseline / ours (> 1: gradients win). One more row: per-direction eps_j (784 parameters,
out of reach of any grid) against the best isotropic eps.

Workloads: the closed form (route 1) on mnist5k (D = 784) and actual training (route 3) of a linear
DAE on mnist5k (quick: images pooled 4 x 4 to D = 49, 500 epochs; full: D = 784, 2000 epochs).
Timing: compile once, then min over repeats of the wall time (jax.block_until_ready on results).
"""

from __future__ import annotations

import math
import time
import timeit

import jax
import numpy as np

from daedyn import data, tune


def _mnist(pool: int):
    x = data.load("mnist5k").x
    if pool > 1:
        k = 28 // pool
        x = x.reshape(-1, k, pool, k, pool).mean(axis=(2, 4)).reshape(-1, k * k)
    return data.train_heldout_split(x, 1000, seed=0)


def _best_time(fn, repeat):
    fn()  # compile / warm up
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def _grid_until(objective, lo, hi, threshold, groups):
    """Smallest grid size (tried in increasing order) whose best point is within the threshold.

    The grids of one group are evaluated together in one batched call (one compilation per group).
    """
    for group in groups:
        pts = [np.geomspace(lo, hi, g) for g in group]
        vals = tune.grid_search(objective, {"eps": np.concatenate(pts)}).values
        start = 0
        for g in group:
            if np.nanmin(vals[start:start + g]) <= threshold:
                return g
            start += g
    return None


def _workload(name, objective, lo, hi, *, tols, starts, dense, repeat, max_steps, groups):
    runs = {label: tune.tune(objective, {"eps": e0}, max_steps=max_steps)  # compiles the step too
            for label, e0 in starts.items()}
    grid_ref = tune.grid_search(objective, {"eps": np.geomspace(lo, hi, dense)})
    j_star = min([grid_ref.objective] + [r.objective for r in runs.values()])
    eps_star = float(min(runs.values(), key=lambda r: r.objective).params["eps"])
    rows = []
    for tol in tols:
        threshold = j_star + tol * abs(j_star)
        g = _grid_until(objective, lo, hi, threshold, groups)
        grid = {"eps": np.geomspace(lo, hi, g if g else 2)}
        t_grid = _best_time(lambda: jax.block_until_ready(tune.grid_search(objective, grid).values),
                            repeat)
        for label, e0 in starts.items():
            hist = runs[label].history
            hit = np.nonzero(hist.objective <= threshold)[0]
            if hit.size == 0 or g is None:
                rows.append(dict(workload=f"{name}, tol {tol:g}, start {label}", ours=math.nan,
                                 baseline=math.nan, ratio=math.nan, unit="evals",
                                 notes="tolerance not reached"))
                continue
            steps, evals = int(hit[0]) + 1, int(hist.evals[hit[0]])
            t_ours = _best_time(lambda: tune.tune(objective, {"eps": e0}, max_steps=steps), repeat)
            rows.append(dict(workload=f"{name}, tol {tol:g}, start {label}: evaluations", ours=evals,
                             baseline=g, ratio=g / evals, unit="evals",
                             notes=f"J* = {j_star:.6g} at eps = {eps_star:.4g}; grid on [{lo:g}, {hi:g}]"))
            rows.append(dict(workload=f"{name}, tol {tol:g}, start {label}: wall time", ours=t_ours,
                             baseline=t_grid, ratio=t_grid / t_ours, unit="s",
                             notes=f"{steps} L-BFGS iterates from eps = {e0:.4g} vs {g}-point grid"))
    return rows


def run(quick: bool = True) -> list[dict]:
    rows = []
    with jax.enable_x64(True):
        xt, xh = _mnist(1)
        problem = tune.heldout_problem(xt, xh, keep_data=False)
        s2 = 0.05
        f1 = tune.heldout_objective(problem, epochs=2000.0, alpha=0.02, eval_sigma2=s2)
        groups = [range(2, 16), range(16, 64), [64, 96, 128, 192, 256, 384, 512, 1024, 2048, 4096]]
        name = "closed form, mnist5k D=784, T=2000"
        starts = {"eps_lo": 1.0, "N s_eval^2": problem.n * s2}
        rows += _workload(name, f1, 1.0, 1e5, tols=(1e-2, 1e-3, 1e-4), starts=starts, dense=4001,
                          repeat=5, max_steps=60, groups=groups)
        # Per-direction eps (784 parameters): no grid can search it; the gain over the best eps.
        iso = tune.tune(f1, {"eps": problem.n * s2})
        t0 = time.perf_counter()
        aniso = tune.tune_anisotropic(f1, iso, problem.eigvals.shape[0], max_steps=60)
        rows.append(dict(workload=f"{name}: anisotropic eps_j vs best isotropic", ours=aniso.objective,
                         baseline=iso.objective, ratio=iso.objective / aniso.objective,
                         unit="objective", notes=f"{100 * (1 - aniso.objective / iso.objective):.2f}% lower; "
                         f"{aniso.n_evals} evaluations, "
                         f"{time.perf_counter() - t0:.2f} s incl. compile"))
        pool, epochs, alpha, s2 = (4, 300, 0.2, 0.02) if quick else (1, 2000, 0.02, 0.05)
        xt, xh = _mnist(pool)
        problem = tune.heldout_problem(xt, xh)
        route3 = tune.TrainRoute(epochs=epochs, remat_every=50 if quick else 100)
        f3 = tune.heldout_objective(problem, route=route3, alpha=alpha, eval_sigma2=s2,
                                    key=jax.random.key(0), init_scale=1e-3)
        groups3 = [range(2, 9), range(9, 17), [20, 24, 32, 48, 64]]
        rows += _workload(f"train route, linear DAE D={problem.eigvals.shape[0]}, T={epochs}", f3,
                          1.0, 1e4, tols=(1e-2, 1e-3), starts={"N s_eval^2": problem.n * s2},
                          dense=61 if quick else 201, repeat=2 if quick else 3, max_steps=30,
                          groups=groups3)
    return rows


if __name__ == "__main__":
    start = time.perf_counter()
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), float64")
    print(f"{'workload':70s} {'ours':>10s} {'baseline':>10s} {'ratio':>7s} unit   notes")
    for r in run(quick=True):
        print(f"{r['workload']:70s} {r['ours']:10.4g} {r['baseline']:10.4g} {r['ratio']:7.4g} "
              f"{r['unit']:6s} {r.get('notes', '')}")
    print(f"total {time.perf_counter() - start:.1f} s")
