"""How well ``train.compare_with_theory`` predicts deep linear DAEs trained from a random start.

Full-batch gradient descent (``daedyn.train.train_batch``: AE, WDAE with gamma = 0.05 and a
marginalised DAE with sigma^2 = 0.5, one shared random start, eigenbasis path, float32 with "highest"
matmul precision) of networks with L = 3 or 4 weight matrices, hidden width H in every hidden layer,
init N(0, s^2). Per run, the learning time (half the learned value, located between the records
with the dynamics: ``train.crossing_times``) of every direction that learns within the run is
compared with the discrete prediction of ``compare_with_theory`` from two starts:

- ``aligned``: the default at depth >= 3 (the alignment model's effective start, docs/depth.md);
- ``balanced``: |diag(V^T W(0) V)| (the default before issue 27).

Learning times are located epoch by epoch (``compare_with_theory``: the record interval that brackets
a crossing is rerun by the balanced recursion from the record before it), so they do not depend on
``--save-every``.

Reported per run: the number of directions the network learns within the run, how many of them the
prediction misses (not learned within the run: counted as an infinite error), mean and worst
|relative error|. Run::

    python benchmarks/deep_fidelity.py                               # the committed table
    python benchmarks/deep_fidelity.py --datasets mnist5k --depths 3 --json-out /tmp/x.json

Fashion-MNIST comes from Debian's package (``apt-get install dataset-fashion-mnist``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from benchmarks._io import write_json
from daedyn import data, noise, spectrum, train

HERE = pathlib.Path(__file__).parent
MODELS = {"ae": (0.0, 0.0), "wdae": (0.05, 0.0), "dae": (0.0, 0.5)}
DATASETS = {"mnist5k": 1000, "fashion_mnist": 10000}
INIT_SCALE = {3: 0.03, 4: 0.06}
# how the learning times were located (rows measured before issue 27 (a) lack the field: their
# records-only location let the prediction's and the measurement's errors cancel, and put Fashion-MNIST
# WDAE L = 3 direction 0 5.6% off through a located recursion time not monotone in w0)
LOCATED = "epoch by epoch (the bracketing record interval rerun by the balanced recursion)"


def errors(c) -> dict:
    """Mean and worst |relative learning-time error| of the discrete prediction over learned directions."""
    measured = np.isfinite(np.asarray(c.time_measured, np.float64))
    e = np.asarray(c.time_error_discrete, np.float64)[measured]
    missed = int(np.sum(~np.isfinite(e)))  # learned by the network, not by the prediction within the run
    a = np.where(np.isfinite(e), np.abs(e), np.inf)
    return {"learned": int(e.size), "missed": missed, "mean": float(np.mean(a)) if e.size else None,
            "worst": float(np.max(a)) if e.size else None,
            "per_direction": [round(float(x), 5) if np.isfinite(x) else None for x in e]}


def measure(name: str, n: int, depth: int, *, hidden: int, init_scale: float, epochs: int, alpha: float,
            save_every: int, seed: int = 0) -> list[dict]:
    ds = data.load(name, n=n)
    spec = spectrum.compute_spectrum(ds.x)
    start = time.perf_counter()
    key = jr.fold_in(jr.key(seed), depth)
    batch = train.train_batch(
        ds, hidden=[hidden] * (depth - 1), key=jnp.stack([key] * len(MODELS)), alpha=alpha,
        gamma=jnp.asarray([g for g, _ in MODELS.values()], jnp.float32),
        noise=noise.gaussian(jnp.asarray([s2 for _, s2 in MODELS.values()], jnp.float32)), marginalised=True,
        epochs=epochs, save_every=save_every, spectrum=spec, init_scale=init_scale, precision="highest",
        chunk_records=30)  # compiled calls of 300 epochs: one call of 3000 stalled on the shared CPU
    train_s = time.perf_counter() - start
    rows = []
    shared = {"t", "eigvals", "n", "data"}
    for i, model in enumerate(MODELS):
        r = batch._replace(**{f: (None if getattr(batch, f) is None else
                                  jax.tree.map(lambda a: a[i], getattr(batch, f)))
                              for f in batch._fields if f not in shared})
        row = dict(dataset=name, n=n, subset=str(getattr(ds, "subset", "")), depth=depth, model=model,
                   hidden=hidden, init_scale=init_scale, alpha=alpha, epochs=epochs, save_every=save_every,
                   alpha_lam_over_n_max=float(alpha * np.max(np.asarray(spec.eigvals)) / n),
                   located=LOCATED,
                   train_seconds=round(train_s, 1))
        for kind in ("aligned", "balanced"):
            t0 = time.perf_counter()
            c = train.compare_with_theory(r, eigvecs=spec.eigvecs, w0=kind)
            row[kind] = errors(c)
            row[f"{kind}_seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(f"{name} L={depth} {model} H={hidden} s={init_scale}: learned {row['aligned']['learned']}, "
              f"aligned mean {row['aligned']['mean']:.4f} worst {row['aligned']['worst']:.4f}; balanced mean "
              f"{row['balanced']['mean']:.4f} worst {row['balanced']['worst']:.4f}", flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="mnist5k,fashion_mnist")
    p.add_argument("--depths", default="3,4")
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--epochs", type=int, default=3000)
    p.add_argument("--alpha", type=float, default=0.004)
    p.add_argument("--save-every", type=int, default=10)
    p.add_argument("--init-scale", type=float, default=None, help="default 0.03 at L = 3, 0.06 at L = 4")
    p.add_argument("--json-out", default=str(HERE / "results-deep-fidelity-cpu.json"))
    args = p.parse_args(argv)
    out = pathlib.Path(args.json_out)
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    for name in args.datasets.split(","):
        for depth in (int(d) for d in args.depths.split(",")):
            s = args.init_scale or INIT_SCALE[depth]
            new = measure(name, DATASETS[name], depth, hidden=args.hidden, init_scale=s, epochs=args.epochs,
                          alpha=args.alpha, save_every=args.save_every)
            keys = {(r["dataset"], r["depth"], r["model"], r["hidden"], r["init_scale"]) for r in new}
            rows = [r for r in rows if (r["dataset"], r["depth"], r["model"], r["hidden"], r["init_scale"])
                    not in keys] + new
            machine = f"{platform.machine()} CPU ({platform.processor() or 'cpu'}), 2 cores shared"
            write_json(out, {"machine": machine, "rows": rows}, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
