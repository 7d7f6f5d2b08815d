"""How well each theory prediction tracks real gradient-descent training (docs/train.md's table).

For linear AE, WDAE (gamma = 0.5) and DAE (sigma^2 = 0.5, marginalised) trained by full-batch
gradient descent from 1e-4 N(0, 1) weights (``daedyn.train.train``, eigenbasis path, float32 with
"highest" matmul precision), the strengths (singular values of W2 W1) are compared with four
predictions (``daedyn.train.compare_with_theory(measure="strength")``):

- ``mean_continuous``: the closed form with one shared w0 = mean initial singular value (daedyn
  before issue 17);
- ``authors_continuous``: the closed form with the authors' shared w0 (top min(100, H) initial
  singular values / D);
- ``balanced_continuous``: the closed form with each direction's own balanced start;
- ``balanced_discrete``: the gradient-descent recursion from each direction's own start.

Per kind: RMSE over all records and all learned directions (fixed point >= 0.05), and the
relative error of the time to half the fixed point (mean and worst over the directions that reach
it, and direction 0's). Run::

    python benchmarks/theory_vs_training.py                       # mnist5k and, if present, Fashion-MNIST
    python benchmarks/theory_vs_training.py --datasets mnist5k --epochs 2000 --json-out table.json
    python benchmarks/theory_vs_training.py --errata    # the other numbers quoted in docs/errata.md

As a module of ``python -m benchmarks`` (``run(quick)``) it reports, per model, the RMSE of the
best prediction (recursion, per-direction w0) against that of daedyn's old default (flow, mean w0).

Fashion-MNIST comes from Debian's package (``apt-get install dataset-fashion-mnist``, files under
/usr/share/datasets/fashion-mnist, found by ``daedyn.data.load``); it is skipped when missing.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import jax.random as jr
import numpy as np

from benchmarks._io import write_json
from daedyn import data, noise, spectrum, train

MODELS = {"ae": (0.0, 0.0), "wdae": (0.5, 0.0), "dae": (0.0, 0.5)}
KINDS = {"mean_continuous": ("mean", "continuous"), "authors_continuous": ("authors", "continuous"),
         "balanced_continuous": ("balanced", "continuous"), "balanced_discrete": ("balanced", "discrete")}
DEFAULTS = {"mnist5k": dict(n=5000), "fashion_mnist": dict(n=60000)}


def measure(x, *, hidden, epochs, alpha, save_every, seed=0, min_fixed_point=0.05):
    """Rows {model, kind, rmse, time_error_mean, time_error_max, time_error_dir0, ...} for one dataset."""
    spec = spectrum.compute_spectrum(x)
    rows = []
    for m, (gamma, s2) in MODELS.items():
        start = time.perf_counter()
        r = train.train(x, hidden=hidden, key=jr.key(seed), epochs=epochs, alpha=alpha, gamma=gamma,
                        noise=noise.gaussian(s2) if s2 else None, marginalised=bool(s2), spectrum=spec,
                        save_every=save_every, init_scale=1e-4, precision="highest", path="eigen",
                        observables=("singular_values",))
        seconds = time.perf_counter() - start
        cache = {}
        for kind, (w0, form) in KINDS.items():
            if w0 not in cache:
                cache[w0] = train.compare_with_theory(r, eigvecs=spec.eigvecs, measure="strength", w0=w0,
                                                      min_fixed_point=min_fixed_point)
            c = cache[w0]
            learned = np.asarray(c.fixed_point) >= min_fixed_point
            diff = np.asarray(getattr(c, form), np.float64) - np.asarray(c.measured, np.float64)
            rel = np.asarray(getattr(c, f"time_error_{form}"), np.float64)
            ok = learned & np.isfinite(rel)
            rows.append({"model": m, "kind": kind, "rmse": float(np.sqrt(np.mean(diff[:, learned] ** 2))),
                         "time_error_mean": float(np.mean(np.abs(rel[ok]))),
                         "time_error_max": float(np.max(np.abs(rel[ok]))),
                         "time_error_dir0": float(rel[0]), "directions": int(learned.sum()),
                         "timed": int(ok.sum()), "alpha_lam0_over_n": float(c.alpha_lam_over_n[0]),
                         "train_seconds": round(seconds, 1)})
    return rows


def run(quick: bool = True) -> list[dict]:
    """Rows for ``python -m benchmarks``: quick mnist5k N = 1000, H = 32, 1000 epochs; full: the
    table's settings on Fashion-MNIST when installed, else mnist5k."""
    name, size = ("mnist5k", dict(n=1000, hidden=32, epochs=1000)) if quick else \
        ("fashion_mnist", dict(n=60000, hidden=256, epochs=5000))
    try:
        ds = data.load(name, n=size["n"])
    except data.DatasetUnavailable:
        name, ds = "mnist5k", data.load("mnist5k", n=5000)
    rows = measure(ds.x, hidden=size["hidden"], epochs=size["epochs"], alpha=0.005, save_every=10)
    by = {(r["model"], r["kind"]): r for r in rows}
    out = []
    for m in MODELS:
        best, old = by[(m, "balanced_discrete")]["rmse"], by[(m, "mean_continuous")]["rmse"]
        out.append(dict(workload=f"{name} N={ds.x.shape[0]} H={size['hidden']} {m}: RMSE, GD recursion "
                        f"(per-direction w0) vs flow (mean w0)", ours=best, baseline=old,
                        ratio=old / best if best else None, unit="RMSE"))
    return out


def errata() -> None:
    """Print the numbers docs/errata.md quotes for Eqs. (1), (5), (7) and Figures 3 and 4."""
    import warnings

    import jax
    import jax.numpy as jnp

    from daedyn import dynamics, theory
    from daedyn.theory._general import dae_trajectory_printed  # private: Eq. (5) as printed

    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(0)
    n, d, h, s2 = 10, 4, 3, 0.3
    w1, w2 = jnp.asarray(rng.normal(size=(h, d))), jnp.asarray(rng.normal(size=(d, h)))
    g = jax.grad(lambda a: n * s2 * jnp.trace(w2 @ a @ a.T @ w2.T))(w1)  # Eq. (1)'s term as printed
    term = (n * s2) * w2.T @ w2 @ w1 / n  # the dynamics' eps W2^T W2 W1, times alpha / tau = 1 / N
    print(f"Eq. (1): gradient of the printed noise term / the dynamics' term = {float(jnp.mean(g / term)):g}"
          f" (2N = {2 * n})")
    lam, gamma, tau, w0 = 2.5, 0.5, 1000.0, 1e-6
    xi = 1 - gamma / lam
    t = np.arange(0, 20001, 1.0)
    e_pr = np.exp(2 * xi * t / tau)
    w_pr = xi * e_pr / (e_pr - 1 + xi / w0)
    w_ok = np.asarray(theory.small_init_trajectory(t, lam, 0.0, gamma, w0=w0, tau=tau, n=1))
    gd = np.asarray(dynamics.scalar_gd(lam, 0.0, np.sqrt(w0), np.sqrt(w0), alpha=1 / tau, epochs=20000,
                                       gamma=gamma, n=1).w)
    half = lambda w: float(t[np.argmax(w >= xi / 2)])
    print(f"Eq. (7), lam = 2.5, gamma = 0.5, tau = 1000, w0 = 1e-6: half way at epoch {half(w_pr):g} "
          f"(as printed), {half(w_ok):g} (exponent 2 (lam - N gamma) t / tau), {half(gd):g} (GD)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dt in (jnp.float32, jnp.float64):
            a = dae_trajectory_printed(jnp.asarray([2.0], dt), 1.0, 1.0, 0.3, 0.3)
            b = theory.dae_trajectory(jnp.asarray([2.0], dt), 1.0, 1.0, 0.3, 0.3)
            print(f"Eq. (5), {dt.__name__}, w1 = w2 = 0.3, t = 2, lam = eps = 1: printed {float(a[0])}, "
                  f"daedyn {float(b[0]):.6f}")
        ts = jnp.asarray([0.0, 1.0, 10.0, 1e9])
        print("Eq. (5), lam = 1, eps = 5, (0.3, -1.2), t = 0, 1, 10, 1e9: printed",
              np.asarray(dae_trajectory_printed(ts, 1.0, 5.0, 0.3, -1.2)).round(6).tolist(),
              "daedyn", np.asarray(theory.dae_trajectory(ts, 1.0, 5.0, 0.3, -1.2)).round(6).tolist())
    for e in (0.2, 1.0, 1.8):
        g_eq = float(theory.equivalent_gamma(1.0, e))
        print(f"Figure 3, lam = 1, eps = {e:g}: WDAE rate supplement 0.005 / (2 lam + gamma) = "
              f"{0.005 / (2 + g_eq):.6f}, experiment 0.005 (lam + eps) / (2 lam (lam + 2 eps)) = "
              f"{0.005 * (1 + e) / (2 * (1 + 2 * e)):.6f}, "
              f"DAE 0.005 / (2 lam + 3 eps) = {0.005 / (2 + 3 * e):.6f}")
    dae = np.asarray(dynamics.scalar_gd(1.0, 0.1, 0.01, 0.01, alpha=0.01, epochs=1000, n=1).w)
    wdae = np.asarray(dynamics.scalar_gd(1.0, 0.0, 0.01, 0.01, alpha=0.01, epochs=1000, n=1,
                                         gamma=0.1 / 1.1).w)
    tt, ws = np.arange(1001.0), 1 / 1.1
    print(f"Figure 4, small start 0.01: max |DAE - WDAE| = {np.max(np.abs(dae - wdae)):.3f} at epoch "
          f"{int(np.argmax(np.abs(dae - wdae)))}; half way DAE {tt[np.argmax(dae >= ws / 2)]:g}, WDAE "
          f"{tt[np.argmax(wdae >= ws / 2)]:g}; at epoch 1000 {dae[-1]:.4f} vs {wdae[-1]:.4f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/theory_vs_training.py",
                                description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="mnist5k,fashion_mnist")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--epochs", type=int, default=5000)
    p.add_argument("--alpha", type=float, default=0.005)
    p.add_argument("--save-every", type=int, default=10)
    p.add_argument("--n", type=int, default=None, help="images (default: 5000 mnist5k, 60000 Fashion-MNIST)")
    p.add_argument("--json-out", default=None)
    p.add_argument("--errata", action="store_true", help="print the numbers of docs/errata.md and stop")
    args = p.parse_args(argv)
    if args.errata:
        errata()
        return 0
    out = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}", "settings": vars(args),
           "datasets": {}}
    for name in [s.strip() for s in args.datasets.split(",") if s.strip()]:
        try:
            ds = data.load(name, n=args.n or DEFAULTS.get(name, {}).get("n"))
        except data.DatasetUnavailable as err:
            print(f"{name}: skipped ({str(err).splitlines()[0]})", file=sys.stderr)
            continue
        rows = measure(ds.x, hidden=args.hidden, epochs=args.epochs, alpha=args.alpha,
                       save_every=args.save_every)
        out["datasets"][name] = {"n": int(ds.x.shape[0]), "source": ds.source, "rows": rows}
        print(f"\n{name} (N = {ds.x.shape[0]}, H = {args.hidden}, {args.epochs} epochs, "
              f"alpha = {args.alpha:g}, "
              f"alpha lam_0 / N = {rows[0]['alpha_lam0_over_n']:.3g})")
        print(f"{'model':5} {'prediction':20} {'RMSE':>8} {'t err mean':>10} {'t err max':>10} "
              f"{'t err dir0':>10}")
        for r in rows:
            print(f"{r['model']:5} {r['kind']:20} {r['rmse']:8.4f} {r['time_error_mean']:10.2%} "
                  f"{r['time_error_max']:10.2%} {r['time_error_dir0']:+10.2%}")
    if args.json_out:
        write_json(args.json_out, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
