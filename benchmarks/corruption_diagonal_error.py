"""How far the per-direction theory is from the coupled flow (and from training) under masking noise.

Masking with rate p (inverted dropout) has the marginalised term C = p / (1 - p) diag(Sigma); in the
eigenbasis V^T C V is dense, so directions couple and the paper's per-direction theory with
eps_j = [V^T C V]_jj is an approximation (docs/corruption.md). For a real dataset this script
measures, per learned direction j < H:

- ``theory_vs_flow``: RMSE over time of the diagonal theory against the full-matrix gradient flow
  with the whole V^T C V (:func:`daedyn.theory.diagonal_approximation_error`, float64);
- ``theory_vs_train`` / ``flow_vs_train``: the same against a linear network trained by full-batch
  gradient descent on *sampled* masking from the same decoupled start (float32, data path);
- ``gd_vs_train``: the trained network against the coupled *marginalised* gradient descent with the
  same rate (``dynamics.matrix_gd``, float64): the sampling noise alone, without the discretisation
  that separates gradient descent from the flow;

and, for comparison, the fixed points lam_j / (lam_j + eps_j) under masking and under isotropic
Gaussian noise with the same total corruption tr(C) (eps = tr(C) / D). Run::

    python benchmarks/corruption_diagonal_error.py                      # mnist5k and Fashion-MNIST
    python benchmarks/corruption_diagonal_error.py --datasets mnist5k --p 0.5 --json-out out.json

Not part of ``python -m benchmarks`` (it measures accuracy, not speed).
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from benchmarks._io import write_json
from daedyn import data, noise, spectrum, theory, train
from daedyn.dynamics import from_eigenbasis, matrix_gd, orthogonal_init


def measure(x, *, p, hidden, w0, t_scale, saves, dt, train_epochs, tau_factor, seed=0):
    """Per-direction errors (first ``hidden`` directions) for one dataset; a dict of lists and numbers."""
    n, d = x.shape
    with jax.enable_x64(True):
        spec = spectrum.compute_spectrum(jnp.asarray(x, jnp.float64))
        lam = spec.eigvals
        c = noise.masking(p).marginal_term(spec)
        tau = tau_factor * float(lam[0])  # n / alpha; GD's alpha * h_max is about 2 / tau_factor
        t_end = t_scale * tau / float(lam[hidden - 1])  # direction H has had t_scale of its time units
        ts = jnp.linspace(0.0, t_end, saves + 1)
        start = time.perf_counter()
        r = theory.diagonal_approximation_error(ts, lam, c, hidden=hidden, w0=w0, tau=tau, n=n, dt=dt)
        flow_s = time.perf_counter() - start
        # control: the same flow with only the diagonal of V^T C V, where the theory is exact, so
        # its error is the integration error alone (the floor under theory_vs_flow)
        floor = theory.diagonal_approximation_error(ts, lam, jnp.diag(r.eps), hidden=hidden, w0=w0,
                                                    tau=tau, n=n, dt=dt).rmse
        eps_j = np.asarray(r.eps)
        eps_iso = float(np.trace(np.asarray(c))) / d
        theory_map, flow_map = np.asarray(r.theory), np.asarray(r.flow)
        v = np.asarray(spec.eigvecs)
        w1, w2 = orthogonal_init(d, hidden, np.sqrt(w0), np.sqrt(w0), dtype=jnp.float64)
        p1, p2 = from_eigenbasis(w1, w2, v)
    # sampled masking, full-batch GD with alpha = n / tau, from the same start (float32, data path)
    alpha = n / tau
    every = max(1, int(round(t_end / saves)))
    epochs = every * saves if train_epochs is None else train_epochs
    start = time.perf_counter()
    tr = train.train(jnp.asarray(x, jnp.float32), key=jr.key(seed), alpha=alpha, noise=noise.masking(p),
                     hidden=hidden, epochs=epochs, save_every=every, path="data", precision="highest",
                     params={"w1": jnp.asarray(p1, jnp.float32), "w2": jnp.asarray(p2, jnp.float32)},
                     spectrum=spec, observables=("mapping",))
    train_s = time.perf_counter() - start
    with jax.enable_x64(True):  # the coupled marginalised GD with the same rate and records
        gd = matrix_gd(lam, w1, w2, eps=c, eps_dims=2, alpha=alpha, n=n, epochs=epochs, save_every=every,
                       precision="highest", check_stability=False)
        gd_map = np.asarray(gd.mapping, np.float64)
    # compare at the training record times (theory/flow interpolated linearly between their saves)
    t_tr = np.asarray(tr.t, np.float64)
    ts_np = np.asarray(ts)
    interp = lambda m: np.stack([np.interp(t_tr, ts_np, m[:, j]) for j in range(d)], axis=1)
    th_tr, fl_tr, m_tr = interp(theory_map), interp(flow_map), np.asarray(tr.mapping, np.float64)
    rmse = lambda a, b: np.sqrt(np.mean((a - b) ** 2, axis=0))[:hidden]
    scale = np.sqrt(np.mean(flow_map**2, axis=0))[:hidden]  # RMS of the mapping, for relative errors
    lam_np = np.asarray(lam)
    return {
        "n": n, "d": d, "p": p, "hidden": hidden, "w0": w0, "tau": tau, "t_end": t_end, "dt": dt,
        "train_epochs": epochs, "alpha": alpha, "flow_seconds": flow_s, "train_seconds": train_s,
        "lam": lam_np[:hidden].tolist(), "eps_j": eps_j[:hidden].tolist(), "eps_iso": eps_iso,
        "offdiag_ratio": float(np.linalg.norm(np.asarray(c) - np.diag(eps_j)) / np.linalg.norm(eps_j)),
        "fixed_point_masking": (lam_np[:hidden] / (lam_np[:hidden] + eps_j[:hidden])).tolist(),
        "fixed_point_isotropic": (lam_np[:hidden] / (lam_np[:hidden] + eps_iso)).tolist(),
        "theory_vs_flow": np.asarray(r.rmse)[:hidden].tolist(),
        "integration_floor": np.asarray(floor)[:hidden].tolist(),
        "theory_vs_flow_final": np.asarray(r.final_error)[:hidden].tolist(),
        "theory_vs_train": rmse(th_tr, m_tr).tolist(), "flow_vs_train": rmse(fl_tr, m_tr).tolist(),
        "gd_vs_train": rmse(gd_map, m_tr).tolist(), "flow_vs_gd": rmse(fl_tr, gd_map).tolist(),
        "mapping_rms": scale.tolist(),
        "unlearned_leak": float(np.max(np.abs(flow_map[:, hidden:]))),
    }


def _summary(name, row):
    pick = [j for j in (0, 1, 2, 4, 7, 11, 15, 31) if j < row["hidden"]]
    print(f"\n{name}: N = {row['n']}, D = {row['d']}, masking p = {row['p']}, H = {row['hidden']}, "
          f"tau = {row['tau']:.4g}, t_end = {row['t_end']:.4g} epochs (flow {row['flow_seconds']:.1f} s, "
          f"training {row['train_seconds']:.1f} s); ||offdiag(V^T C V)|| / ||eps_j|| = "
          f"{row['offdiag_ratio']:.3g}; eps_iso = tr(C) / D = {row['eps_iso']:.4g}; max |mapping| "
          "outside the top H under the flow "
          f"{row['unlearned_leak']:.2g}")
    print("| j | lam_j | eps_j | fixed pt masking | fixed pt isotropic | theory vs flow | flow vs train "
          "| theory vs train | coupled GD vs train |")
    print("|---|---|---|---|---|---|---|---|---|")
    for j in pick:
        print(f"| {j} | {row['lam'][j]:.4g} | {row['eps_j'][j]:.4g} | {row['fixed_point_masking'][j]:.3f} | "
              f"{row['fixed_point_isotropic'][j]:.3f} | {row['theory_vs_flow'][j]:.2e} | "
              f"{row['flow_vs_train'][j]:.2e} | {row['theory_vs_train'][j]:.2e} | "
              f"{row['gd_vs_train'][j]:.2e} |")
    for key in ("theory_vs_flow", "integration_floor", "flow_vs_train", "theory_vs_train", "gd_vs_train",
                "flow_vs_gd"):
        a = np.asarray(row[key])
        print(f"{key}: median {np.median(a):.2e}, max {a.max():.2e} (direction {int(a.argmax())})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="mnist5k,fashion_mnist")
    ap.add_argument("--n", type=int, default=5000, help="samples per dataset (first n)")
    ap.add_argument("--p", type=float, default=0.3)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--w0", type=float, default=1e-3)
    ap.add_argument("--t-scale", type=float, default=6.0, help="run length in units tau / lam_H")
    ap.add_argument("--tau-factor", type=float, default=4.0, help="tau = tau_factor * lam_1")
    ap.add_argument("--saves", type=int, default=40)
    ap.add_argument("--dt", type=float, default=1.0)
    ap.add_argument("--train-epochs", type=int, default=None)
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args(argv)
    out = {"machine": platform.processor() or platform.machine(), "devices": str(jax.devices()),
           "results": {}}
    for name in args.datasets.split(","):
        try:
            ds = data.load(name, n=args.n)
        except Exception as e:  # a dataset that is not installed is skipped, with the reason
            print(f"{name}: skipped ({type(e).__name__}: {e})")
            continue
        row = measure(np.asarray(ds.x, np.float64), p=args.p, hidden=args.hidden, w0=args.w0,
                      t_scale=args.t_scale, saves=args.saves, dt=args.dt, train_epochs=args.train_epochs,
                      tau_factor=args.tau_factor)
        out["results"][name] = row
        _summary(name, row)
    if args.json_out:
        write_json(args.json_out, out, indent=1)


if __name__ == "__main__":
    main()
