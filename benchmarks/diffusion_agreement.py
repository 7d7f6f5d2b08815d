"""Does real training of a denoiser across noise levels generate what ``diffusion.predict`` says?

Trains linear (depth 1), deep linear (depth 2, 3) and tanh-MLP denoisers under EDM's objective
(log-normal levels (-1.2, 1.2), "edm" preconditioning, sigma_data 0.5) with
``daedyn.diffusion.train`` (sampled s and n per example and step, full-batch gradient descent,
float32) on

- Gaussian data with a given spectrum (D = 8, N = 2000, per-sample variances geometric from 2 to
  0.05, a random rotation): half the directions lie below sigma_data^2, where B < 0;
- mnist5k and Fashion-MNIST (5000 rows) in PCA coordinates (centred, top 16 components);

and compares at 6 record times the per-direction generated variance with the prediction:

- linear F: the exact probability flow of the whole trained F (``DenoiserRun.variance_exact``,
  off-diagonal part included), and EDM's Heun sampler (256 levels, 10^5 samples) at the last record;
- MLP F: the Heun sampler (10^5 samples) at every record, against the depth-2 prediction from the
  same start (the MLP starts from the depth-2 linear network's balanced, aligned factors, as
  Figure 6 compares the nonlinear DAE with the linear theory).

Deep networks start balanced and aligned (``W_1 = c V^T``, ``W_l = c I``, ``W_L = V c``,
``c^L = w0``), the start ``predict`` assumes. The rate alpha keeps ``alpha A_max / N = 0.01``
(gradient descent against the flow: about 0.5% on the remaining gap). A sweep over S (draws per
example and step) on the Gaussian data at depth 1 measures how much averaging the noise needs.

``python -m benchmarks.diffusion_agreement [--quick]`` writes ``results-diffusion-agreement-cpu.json``
next to this file; ``python -m benchmarks --only diffusion_agreement`` prints its rows (quick size:
the Gaussian data at depth 1 with S = 4 only).
"""

from __future__ import annotations

import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from benchmarks._io import write_json

HERE = pathlib.Path(__file__).parent
OUT = HERE / "results-diffusion-agreement-cpu.json"
TARGET = 0.02  # the agreement target (relative, per direction)
HEUN_STEPS = 256
HEUN_SAMPLES = 100_000


def gaussian_data(d=8, n=2000, seed=0):
    var = np.geomspace(2.0, 0.05, d)
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return ((rng.standard_normal((n, d)) * np.sqrt(var)) @ q.T).astype(np.float32)


def pca_data(name, k=16, n=5000):
    from daedyn import data

    x = np.asarray(data.load(name, n=n).x, np.float64)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return (x @ vt[:k].T).astype(np.float32)


def balanced_start(basis, depth, w0):
    """Factors of ``F = V diag(w0) V^T`` with every factor of size ``w0^(1/L)`` (hidden = D)."""
    v = np.asarray(basis, np.float32)
    c = np.float32(w0) ** (1.0 / depth)
    ws = [c * v.T] + [c * np.eye(v.shape[0], dtype=np.float32)] * (depth - 2) + [c * v]
    return {f"w{l + 1}": jnp.asarray(w) for l, w in enumerate(ws)}


def heun_variance(run, i, key):
    from daedyn import diffusion

    x = diffusion.sample(run.network(i), run.objective, key=key, shape=(HEUN_SAMPLES, run.lam.shape[0]),
                         steps=HEUN_STEPS)
    z = np.asarray(x, np.float64) @ np.asarray(run.basis, np.float64)
    return np.mean(z * z, axis=0)  # about zero mean: the second moment is the flow's covariance


def one(x, *, depth, samples, epochs, records=5, activation=None, w0=0.05, seed=1, batch_size=None):
    """Train one denoiser, return its agreement with the prediction."""
    from daedyn import diffusion, spectrum

    obj = diffusion.Objective()
    n = x.shape[0]
    spec = spectrum.compute_spectrum(x)
    a, _ = obj.coefficients(np.asarray(spec.eigvals, np.float64), n)
    alpha = 0.01 * n / float(np.max(np.asarray(a)))
    linear_net = activation is None
    params = None if (depth == 1) else balanced_start(spec.eigvecs, depth, w0)
    t0 = time.perf_counter()
    run = diffusion.train(x, obj, key=jr.key(seed), alpha=alpha, epochs=epochs, save_every=epochs // records,
                          depth=depth, samples=samples, activation=activation, params=params,
                          init_scale=0.0, spectrum=spec, batch_size=batch_size)
    steps = 1 if batch_size is None else n // batch_size  # minibatch steps per epoch, each a full step
    jax.block_until_ready(run.params)
    seconds = time.perf_counter() - t0
    pred_w0 = 0.0 if depth == 1 else w0
    pred_depth = depth if linear_net else 2  # the MLP against the depth-2 linear theory (Figure 6)
    pred = diffusion.predict(np.asarray(run.t, np.float64) * steps, np.asarray(run.lam, np.float64), n=n,
                             alpha=alpha, depth=pred_depth, w0=pred_w0)
    pv = np.asarray(pred.variance)
    out = {"depth": depth, "activation": activation, "samples": samples, "epochs": epochs, "alpha": alpha,
           "batch_size": batch_size,
           "n": n, "d": x.shape[1], "seconds_train": round(seconds, 1), "t": np.asarray(run.t).tolist(),
           "predicted_variance": pv.tolist()}
    key = jr.key(seed + 100)
    if linear_net:
        ve = np.asarray(run.variance_exact, np.float64)
        gap = ve / pv - 1
        out.update(trained_variance=ve.tolist(), gap=gap.tolist(),
                   max_gap=float(np.max(np.abs(gap))),
                   offdiag_effect=float(np.max(np.abs(np.asarray(run.variance) / ve - 1))),
                   trained_w=np.asarray(run.w).tolist(), predicted_w=np.asarray(pred.w).tolist())
        hv = heun_variance(run, -1, key)
        out.update(heun_variance_last=hv.tolist(), heun_gap_last=float(np.max(np.abs(hv / pv[-1] - 1))),
                   heun_vs_exact_last=float(np.max(np.abs(hv / ve[-1] - 1))))
        # the Heun map itself (no Monte Carlo): sigma_max times the identity pushed through the sampler
        d = x.shape[1]
        hmap = np.asarray(diffusion.sample(run.network(-1), run.objective, key=None, steps=HEUN_STEPS,
                                           start=80.0 * np.eye(d, dtype=np.float32)), np.float64)
        hcov = np.asarray(run.basis, np.float64).T @ hmap.T @ hmap @ np.asarray(run.basis, np.float64)
        out.update(heun_map_gap_last=float(np.max(np.abs(np.diagonal(hcov) / pv[-1] - 1))))
    else:
        hv = np.stack([heun_variance(run, i, jr.fold_in(key, i)) for i in range(len(run.t))])
        gap = hv / pv - 1
        out.update(heun_variance=hv.tolist(), gap=gap.tolist(), max_gap=float(np.max(np.abs(gap))),
                   gap_by_record=np.max(np.abs(gap), axis=1).tolist())
    return out


def _row(name, r):
    return {"workload": name, "ours": r["max_gap"], "baseline": TARGET, "ratio": r["max_gap"] / TARGET,
            "unit": "max |v_trained / v_predicted - 1| over directions and records (target 0.02)",
            "notes": f"S={r['samples']}, {r['epochs']} epochs, {r['seconds_train']} s training"}


def measure(quick: bool, progress=print) -> dict:
    res = {"device": jax.devices()[0].device_kind, "platform": jax.default_backend(),
           "heun_steps": HEUN_STEPS, "heun_samples": HEUN_SAMPLES, "runs": {}}
    x = gaussian_data()
    plan = [("gaussian depth 1", x, dict(depth=1, samples=4 if quick else 16, epochs=5000))]
    if not quick:
        plan += [(f"gaussian depth 1 S={s}", x, dict(depth=1, samples=s, epochs=5000)) for s in (1, 4, 64)]
        plan += [("gaussian depth 1 minibatch 200 S=1", x,
                  dict(depth=1, samples=1, epochs=500, batch_size=200))]
        plan += [("gaussian depth 2", x, dict(depth=2, samples=16, epochs=5000)),
                 ("gaussian depth 3", x, dict(depth=3, samples=16, epochs=5000)),
                 ("gaussian tanh MLP", x, dict(depth=2, samples=16, epochs=5000, activation="tanh"))]
        for name in ("mnist5k", "fashion_mnist"):
            xp = pca_data(name)
            plan += [(f"{name} PCA16 depth 1", xp, dict(depth=1, samples=4, epochs=3000)),
                     (f"{name} PCA16 depth 2", xp, dict(depth=2, samples=4, epochs=3000)),
                     (f"{name} PCA16 depth 3", xp, dict(depth=3, samples=4, epochs=3000)),
                     (f"{name} PCA16 tanh MLP", xp, dict(depth=2, samples=4, epochs=3000,
                                                         activation="tanh"))]
    for name, data, kw in plan:
        r = one(data, **kw)
        res["runs"][name] = r
        progress(f"{name}: max gap {r['max_gap']:.4f}" + (f", Heun {r['heun_gap_last']:.4f}"
                                                         if "heun_gap_last" in r else "")
                 + f" ({r['seconds_train']} s)")
    return res


def run(quick: bool = True) -> list[dict]:
    res = measure(quick, progress=lambda s: print(s, file=sys.stderr))
    return [_row(name, r) for name, r in res["runs"].items()]


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    result = measure(quick)
    result["date"] = time.strftime("%Y-%m-%d")
    result["quick"] = quick
    if write_json(OUT, result, indent=1):
        print(f"wrote {OUT}")
