"""Noise levels of a linear diffusion denoiser tuned by gradient vs EDM's default, a grid and Optuna.

Question: after a training budget T, how much closer to held-out data (KL(held-out || generated))
does the linear denoiser's generated Gaussian get when (p_mean, p_std) of the log-normal noise-level
distribution are tuned by gradient through the closed form (:func:`daedyn.diffusion.tune`, L-BFGS)
than with EDM's default (-1.2, 1.2), and how does that compare with a grid and Optuna's TPE given
the same number of objective evaluations?

Data (float64, CPU): mnist5k in PCA coordinates (the 32 leading directions of 4000 centred training
images; the held-out split is the other 1000 images, its second moment projected on the training
eigenvectors) and a Gaussian with a power-law spectrum (D = 32, per-sample variances 4 j^-1.5, 1000
training and 1000 held-out samples). Depth 2, balanced start 1e-4, alpha = 0.05, EDM
preconditioning, sigma_data 0.5; budgets T = 200 and 2000 epochs.

- gradient: daedyn.diffusion.tune (L-BFGS, at most 100 iterations); its evaluations E are
  value-and-gradient evaluations (line-search trials included);
- grid: ceil(sqrt(E))^2 points on p_mean in [-4, 3] x p_std in [0.2, 3] (log-spaced in p_std);
- Optuna TPE: E trials in the same box (seed 0), EDM's default enqueued as the first trial;
- reference: a 60 x 60 grid, the best of all.
Run: ``python -m benchmarks.diffusion_tuning`` (writes benchmarks/results-diffusion-tuning-cpu.json).
"""

from __future__ import annotations

import math
import os
import time

import jax
import numpy as np

from benchmarks._io import write_json

BOX_MEAN, BOX_STD = (-4.0, 3.0), (0.2, 3.0)
D, ALPHA, W0 = 32, 0.05, 1e-4
BUDGETS = (200.0, 2000.0)


def _mnist():
    from daedyn import data

    x = np.asarray(data.load("mnist5k").x, np.float64)
    rng = np.random.default_rng(0)
    idx = rng.permutation(x.shape[0])
    tr, te = x[idx[:4000]], x[idx[4000:]]
    mean = tr.mean(axis=0)
    tr, te = tr - mean, te - mean
    lam_all, vec = np.linalg.eigh(tr.T @ tr)
    order = np.argsort(lam_all)[::-1][:D]
    v = vec[:, order]
    tr, te = tr @ v, te @ v  # PCA coordinates: the training second moment is diagonal there
    return tr, te


def _gaussian():
    rng = np.random.default_rng(1)
    scale = np.sqrt(4.0 * np.arange(1, D + 1) ** -1.5)
    return rng.standard_normal((1000, D)) * scale, rng.standard_normal((1000, D)) * scale


def _spectra(tr, te):
    lam, vec = np.linalg.eigh(tr.T @ tr)
    lam, vec = lam[::-1], vec[:, ::-1]
    held = np.einsum("ij,ik,kj->j", vec, te.T @ te / te.shape[0], vec)
    return np.maximum(lam, 0.0), held, tr.shape[0]


def case(name, tr, te, budget):
    from daedyn import diffusion
    from daedyn import tune as dtune
    from daedyn.diffusion._tune import distance_fn

    lam, held, n = _spectra(tr, te)
    kw = dict(n=n, alpha=ALPHA, budget=budget, w0=W0)
    f = distance_fn(lam, held, **kw)
    f_jit = jax.jit(lambda pm, ps: f({"p_mean": pm, "p_std": ps}))
    default = float(f_jit(-1.2, 1.2))

    start = time.perf_counter()
    g = diffusion.tune(lam, held, max_steps=100, **kw)
    t_grad = time.perf_counter() - start
    e = int(g.result.n_evals)

    side = max(2, math.ceil(math.sqrt(e)))
    grid = {"p_mean": np.linspace(*BOX_MEAN, side), "p_std": np.geomspace(*BOX_STD, side)}
    start = time.perf_counter()
    gr = dtune.grid_search(lambda p: f(p), grid)
    t_grid = time.perf_counter() - start

    ref = dtune.grid_search(lambda p: f(p), {"p_mean": np.linspace(*BOX_MEAN, 60),
                                              "p_std": np.geomspace(*BOX_STD, 60)})
    out = {"case": name, "budget": budget, "d": int(lam.size), "n": int(n), "evals": e,
           "default": default,
           "gradient": {"kl": g.value, "p_mean": float(g.params["p_mean"]), "p_std": float(g.params["p_std"]),
                        "evals": e, "seconds": t_grad, "status": g.result.status},
           "grid": {"kl": gr.objective, "p_mean": float(gr.params["p_mean"]),
                    "p_std": float(gr.params["p_std"]),
                    "evals": int(gr.n_evals), "seconds": t_grid},
           "reference_grid_60x60": {"kl": ref.objective, "p_mean": float(ref.params["p_mean"]),
                                    "p_std": float(ref.params["p_std"])}}
    try:
        import optuna
    except ImportError:
        out["optuna"] = "not installed (pip install optuna)"
    else:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
        study.enqueue_trial({"p_mean": -1.2, "p_std": 1.2})

        def objective(trial):
            pm = trial.suggest_float("p_mean", *BOX_MEAN)
            ps = trial.suggest_float("p_std", *BOX_STD, log=True)
            v = float(f_jit(pm, ps))
            return v if math.isfinite(v) else 1e30

        start = time.perf_counter()
        study.optimize(objective, n_trials=e)
        out["optuna"] = {"kl": study.best_value, **{k: float(v) for k, v in study.best_params.items()},
                         "evals": e, "seconds": time.perf_counter() - start}
    return out


def main():
    jax.config.update("jax_enable_x64", True)
    results = {"device": f"{jax.devices()[0].device_kind} ({jax.default_backend()}), float64",
               "machine": os.environ.get("DAEDYN_BENCH_MACHINE", "2-core CPU VM (shared)"), "cases": []}
    sets = {"mnist5k-pca32": _mnist(), "gaussian-d32": _gaussian()}
    for name, (tr, te) in sets.items():
        for budget in BUDGETS:
            c = case(name, np.asarray(tr), np.asarray(te), budget)
            c = jax.tree.map(lambda v: float(v) if isinstance(v, (np.floating, jax.Array)) else v, c)
            results["cases"].append(c)
            opt = c["optuna"]["kl"] if isinstance(c["optuna"], dict) else float("nan")
            print(f"{name:>14} T={budget:>6g} E={c['evals']:>3}: default {c['default']:.5g}  gradient "
                  f"{c['gradient']['kl']:.5g} ({c['gradient']['p_mean']:.3f}, {c['gradient']['p_std']:.3f})  "
                  f"grid {c['grid']['kl']:.5g} ({c['grid']['evals']})  optuna {opt:.5g}  "
                  f"ref60x60 {c['reference_grid_60x60']['kl']:.5g}", flush=True)
    path = os.path.join(os.path.dirname(__file__), "results-diffusion-tuning-cpu.json")
    if write_json(path, results, indent=1):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
