"""In which regimes ``daedyn.crosscheck``'s per-direction prediction is trustworthy, measured.

One depth-2 linear AE per setting on mnist5k (1000 images, the stratified default draw, all ten
digits; D = 784), full-batch gradient descent from the default random start (i.i.d. N(0, s^2)
weights), run through :func:`daedyn.crosscheck.crosscheck`; per run the learning-time error of the
``scalar`` way (the per-direction recursion from each direction's balanced-equivalent start: the
prediction) against ``train`` (the real network), over the checked directions both learn within the
run. The settings vary one of (init scale s, alpha lam_0 / N, hidden width H) around a base
(s = 1e-3, alpha lam_0 / N = 0.2, H = 16), 1000 epochs saved every 2. The table in docs/crosscheck.md
("Where the prediction holds") and ``crosscheck.MEASURED_REGIME`` come from this file's output::

    python benchmarks/crosscheck_regimes.py            # writes results-crosscheck-regimes-cpu.json
"""

from __future__ import annotations

import pathlib
import platform
import time

import numpy as np

from benchmarks._io import write_json
from daedyn import crosscheck, data, spectrum

HERE = pathlib.Path(__file__).parent
BASE = dict(init_scale=1e-3, ratio=0.2, hidden=16)
VARY = {"init_scale": (1e-4, 1e-2, 0.1), "ratio": (0.1, 0.5, 0.9), "hidden": (4, 64)}
CORNERS = ()


def settings() -> list[dict]:
    out = [dict(BASE)]
    for name, values in VARY.items():
        out += [{**BASE, name: v} for v in values]
    return out + [dict(c) for c in CORNERS]


def run_one(ds, lam0: float, *, init_scale: float, ratio: float, hidden: int, epochs: int = 1000,
            save_every: int = 2) -> dict:
    n = ds.x.shape[0]
    alpha = ratio * n / lam0
    start = time.perf_counter()
    r = crosscheck.crosscheck(ds, alpha=alpha, hidden=hidden, epochs=epochs, save_every=save_every,
                              init_scale=init_scale)
    seconds = time.perf_counter() - start
    ts, tt = r.times["scalar"], r.times["train"]
    both = np.isfinite(ts) & np.isfinite(tt)
    err = np.abs(ts[both] - tt[both]) / tt[both]
    only_one = int(np.sum(np.isfinite(ts) ^ np.isfinite(tt)))
    rmse = r.pairs["scalar-train"]["rmse"][r.checked]
    return dict(init_scale=init_scale, alpha_lam_over_n=ratio, hidden=hidden, alpha=alpha, epochs=epochs,
                save_every=save_every, learned=int(both.sum()), learned_by_one_only=only_one,
                time_mean=float(np.mean(err)) if err.size else None,
                time_worst=float(np.max(err)) if err.size else None,
                worst_direction=int(np.flatnonzero(both)[np.argmax(err)]) if err.size else None,
                per_direction=[round(float(e), 4) for e in err],
                rmse_worst=float(np.max(rmse)) if rmse.size else None,
                verdict="agree" if r.verdict else "disagree", seconds=round(seconds, 1))


def main() -> int:
    ds = data.load("mnist5k", n=1000)
    lam0 = float(spectrum.compute_spectrum(ds.x).eigvals[0])
    out = HERE / "results-crosscheck-regimes-cpu.json"
    rows = []
    for s in settings():
        row = run_one(ds, lam0, **s)
        rows.append(row)
        print(f"s={row['init_scale']:g} a*lam0/N={row['alpha_lam_over_n']:g} H={row['hidden']}: learned "
              f"{row['learned']} (+{row['learned_by_one_only']} by one way), time mean {row['time_mean']} "
              f"worst {row['time_worst']} (direction {row['worst_direction']}), {row['seconds']} s",
              flush=True)
        machine = f"{platform.machine()} CPU, 2 cores shared"
        write_json(out, {"machine": machine, "data": str(ds.subset), "rows": rows}, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
