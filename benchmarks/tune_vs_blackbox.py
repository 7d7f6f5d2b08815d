"""Gradient tuning of many hyperparameters vs black-box search (Optuna TPE, Optuna CMA-ES, random).

Question: when the hyperparameters are many (the K piece values of a noise schedule eps(t), or a
per-direction eps_j), how many objective evaluations and how much wall time does gradient tuning
(daedyn.tune.tune, L-BFGS in log-values through the chained closed form) need to come within 0.1%
of the best held-out objective J* that any method found, compared with what users pick instead:
Optuna's TPE and CMA-ES samplers and a vmapped random search, all on the same objective, in the
same process, over the same log box?

Objective: the held-out loss of mnist5k (4000 train / 1000 held-out images, D = 784) after T = 2000
epochs with alpha = 0.02 and evaluation noise s_eval^2 = 0.05 under a K-piece schedule (K = 1, 4,
16, 64 equal pieces), and, as one more row, K = 1 with one eps per direction (784 parameters).
float64 on the CPU.

- Gradient (L-BFGS, daedyn.tune's default; and Adam with step 0.3 in log-values): from every value
  at the matched noise N s_eval^2 (the default start of daedyn.tune.tune_noise); an evaluation is
  one objective-and-gradient evaluation (line-search trials included), which costs about 2-3
  objective evaluations (the ratio is measured and printed). Time to a target: the run repeated
  with the iteration cap at the first iterate that reached it (compiled before).
- ``--start``: "matched" (the default above: only the gradient starts at the matched noise),
  "shared" (every method gets it as its first point: Optuna enqueues it and CMA-ES takes it as its
  initial mean, random search evaluates it first) or "cold" (nobody: the gradient starts at the
  box's log-centre).
- Optuna (TPE, CMA-ES): one trial = one objective evaluation of the jitted objective, log-uniform
  box [1e-2, 1e5] for every value; time stamped at every trial.
- Random search: log-uniform points in the same box, evaluated in vmapped batches of 256; time per
  batch measured.

Optuna and cmaes are benchmark-only dependencies (``pip install daedyn[bench]``); without them the
black-box rows say so. Run alone: ``python -m benchmarks.tune_vs_blackbox`` (prints the full table).
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from daedyn import data, tune

TOL = 1e-3  # within 0.1% of J* (the issue's criterion)
GAP = 0.01  # closing 99% of the gap between the start's objective J0 and J*
BOX = (1e-2, 1e5)
BATCH = 256


def _problem():
    x = data.load("mnist5k").x
    xt, xh = data.train_heldout_split(x, 1000, seed=0)
    return tune.heldout_problem(xt, xh, keep_data=False)


def _gradient(fn, shape, e0, max_steps, optimizer=None):
    init = {"eps": np.full(shape, e0)}
    tune.tune(fn, init, max_steps=max_steps, optimizer=optimizer)  # compile everything the run uses
    t0 = time.perf_counter()
    res = tune.tune(fn, init, max_steps=max_steps, optimizer=optimizer)
    total = time.perf_counter() - t0
    return res, total


def _gradient_time_to(fn, shape, e0, steps, repeat=2, optimizer=None):
    init = {"eps": np.full(shape, e0)}
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        tune.tune(fn, init, max_steps=steps, optimizer=optimizer)
        best = min(best, time.perf_counter() - t0)
    return best


#: The gradient methods: daedyn.tune's default L-BFGS (zoom line search; its trials are counted as
#: evaluations) and Adam with step 0.3 in log-values (one evaluation per step; one setting, not tuned
#: to this benchmark: 0.3 is a ~35% change of a value per step).
def _optimizers():
    import optax

    return {"gradient (L-BFGS)": None, "gradient (Adam 0.3)": optax.adam(0.3)}


def optuna_trace(fn_jit, n_params, trials, sampler_name, seed=0, x0=None, box=None, seconds=None):
    """(values, seconds since the start) of each trial of an Optuna study ("tpe" or "cmaes") over
    ``n_params`` log-uniform values in ``box`` (default ``BOX``), at most ``trials`` trials or
    ``seconds``; with ``x0`` every value starts there (the first trial; CMA-ES's mean too)."""
    import optuna

    box = BOX if box is None else box

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = None if x0 is None else {f"e{i}": float(x0) for i in range(n_params)}
    if sampler_name == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed)
    else:  # with a shared start CMA-ES's mean starts there too
        import cmaes  # noqa: F401  (optuna imports it lazily, mid-study; absent: the row note says so)

        sampler = optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False, x0=start)
    study = optuna.create_study(sampler=sampler)
    if start is not None:
        study.enqueue_trial(start)  # the first trial is the shared start
    values, times = [], []
    t0 = time.perf_counter()

    def objective(trial):
        z = np.array([trial.suggest_float(f"e{i}", *box, log=True) for i in range(n_params)])
        return float(fn_jit(jnp.asarray(z)))

    def record(study, trial):
        values.append(trial.value)
        times.append(time.perf_counter() - t0)

    study.optimize(objective, n_trials=trials, timeout=seconds, callbacks=[record])
    return np.asarray(values), np.asarray(times)


def _random(fn_batch, n_params, points, seed=0, x0=None):
    rng = np.random.default_rng(seed)
    lo, hi = np.log(BOX[0]), np.log(BOX[1])
    z = np.exp(rng.uniform(lo, hi, size=(points, n_params)))
    if x0 is not None:
        z[0] = x0  # the first point is the shared start
    jax.block_until_ready(fn_batch(jnp.asarray(z[:BATCH])))  # compile
    values, times = [], []
    t0 = time.perf_counter()
    for i in range(0, points, BATCH):
        v = np.asarray(fn_batch(jnp.asarray(z[i:i + BATCH])))
        values.append(v)
        times.append(np.full(v.shape, time.perf_counter() - t0))
    return np.concatenate(values), np.concatenate(times)


def _first(values, threshold):
    hit = np.nonzero(np.minimum.accumulate(values) <= threshold)[0]
    return int(hit[0]) if hit.size else None


def _best_by(values, times, budget):
    ok = times <= budget
    return float(np.min(values[ok])) if np.any(ok) else math.nan


def _case(problem, label, pieces, per_direction, *, trials, points, max_steps, start="matched"):
    d = int(problem.eigvals.shape[-1])
    route = tune.ScheduleRoute(pieces=pieces, epochs=2000.0, per_direction=per_direction)
    fn = tune.schedule_objective_fn(problem, route, alpha=0.02, eval_sigma2=0.05)
    shape = (pieces, d) if per_direction else (pieces,)
    n_params = int(np.prod(shape))
    e_matched = problem.n * 0.05
    # "matched": the gradient starts at the matched noise, black-box methods sample the box (as
    # published first); "shared": every method gets that start as its first point (Optuna:
    # enqueued, CMA-ES: its initial mean; random: the first point); "cold": nobody does (the
    # gradient starts at the box's log-centre, sqrt(1e-2 * 1e5) = 31.6)
    if start not in ("matched", "shared", "cold"):
        raise ValueError(f"start must be 'matched', 'shared' or 'cold'; got {start!r}")
    e0 = math.sqrt(BOX[0] * BOX[1]) if start == "cold" else e_matched
    x0 = e_matched if start == "shared" else None
    flat = lambda z: fn({"eps": z.reshape(shape)})
    fn_jit = jax.jit(flat)
    fn_batch = jax.jit(jax.vmap(flat))
    vg = jax.jit(jax.value_and_grad(flat))
    z0 = jnp.full((n_params,), e0)
    jax.block_until_ready(fn_jit(z0))
    jax.block_until_ready(vg(z0))
    t_f = min(_timeit(lambda: fn_jit(z0)) for _ in range(5))
    t_vg = min(_timeit(lambda: vg(z0)) for _ in range(5))

    grads = {name: _gradient(fn, shape, e0, max_steps, opt) for name, opt in _optimizers().items()}
    res, t_grad_total = grads["gradient (L-BFGS)"]
    methods = {}
    for name, sampler in (("optuna TPE", "tpe"), ("optuna CMA-ES", "cmaes")):
        try:  # each on its own: optuna without cmaes still gives the TPE rows
            methods[name] = optuna_trace(fn_jit, n_params, trials, sampler, x0=x0)
        except ImportError:
            pass
    methods["random (vmapped)"] = _random(fn_batch, n_params, points, x0=x0)
    j_star = min([float(np.min(r.history.objective)) for r, _ in grads.values()]
                 + [float(np.min(v)) for v, _ in methods.values()])
    j0 = float(fn_jit(jnp.full((n_params,), e_matched)))  # the gap is measured from the matched start
    thresholds = {"0.1%": j_star + TOL * abs(j_star), "gap99": j_star + GAP * (j0 - j_star)}

    out = dict(case=label, n_params=n_params, j_star=j_star, j0=j0, t_f=t_f, t_vg=t_vg, methods={},
               start=start)
    for name, opt in _optimizers().items():
        r, _ = grads[name]
        g = dict(best=float(r.objective), best_at_equal_time=float(r.objective), total_evals=int(r.n_evals))
        for crit, thr in thresholds.items():
            i = _first(r.history.objective, thr)
            g[f"evals_{crit}"] = None if i is None else int(r.history.evals[i])
            g[f"time_{crit}"] = None if i is None else _gradient_time_to(fn, shape, e0, i + 1, optimizer=opt)
        out["methods"][name] = g
    for name, (values, times) in methods.items():
        m = dict(best=float(np.min(values)), best_at_equal_time=_best_by(values, times, t_grad_total),
                 total_evals=int(values.size))
        for crit, thr in thresholds.items():
            k = _first(values, thr)
            m[f"evals_{crit}"] = None if k is None else k + 1
            m[f"time_{crit}"] = None if k is None else float(times[k])
        out["methods"][name] = m
    out["t_grad_total"] = t_grad_total
    out["optuna"] = "optuna TPE" in methods
    out["cmaes"] = "optuna CMA-ES" in methods
    return out


def _timeit(f):
    t0 = time.perf_counter()
    jax.block_until_ready(f())
    return time.perf_counter() - t0


def cases(quick: bool = True, progress=None, start: str = "matched", pieces=(1, 4, 16, 64),
          per_direction: bool = True) -> list[dict]:
    """Every case; ``progress(case_result)`` is called after each (the runs are long on a CPU).
    ``start``: "matched", "shared" or "cold" (see ``_case``); ``pieces``: the K to run."""
    trials = 200 if quick else 2000
    points = 4096 if quick else 65536
    results = []
    with jax.enable_x64(True):
        problem = _problem()
        plan = [(f"K={k} schedule", k, False, trials, points) for k in pieces]
        if per_direction:
            plan.append(("per-direction eps_j", 1, True, trials // 4 if quick else trials, points // 4))
        for label, k, per_dir, n_trials, n_points in plan:
            results.append(_case(problem, label, k, per_dir, trials=n_trials, points=n_points, max_steps=200,
                                 start=start))
            if progress is not None:
                progress(results[-1])
    return results


def run(quick: bool = True) -> list[dict]:
    rows = []
    for c in cases(quick):
        g = c["methods"]["gradient (L-BFGS)"]
        others = {k: v for k, v in c["methods"].items() if not k.startswith("gradient")}  # L-BFGS is `g`
        note = (f"{c['n_params']} parameters; J* = {c['j_star']:.8g}, start J0 = {c['j0']:.8g}; objective "
                f"{c['t_f'] * 1e3:.2f} ms, objective+gradient {c['t_vg'] * 1e3:.2f} ms")
        if not c["optuna"]:
            note += "; optuna not installed (pip install daedyn[bench]): random search only"
        elif not c["cmaes"]:
            note += "; cmaes not installed (pip install daedyn[bench]): no CMA-ES rows"
        for crit, what in (("gap99", "99% of the gap J0 - J*"), ("0.1%", "0.1% of J*")):
            reached = {k: v for k, v in others.items() if v[f"evals_{crit}"] is not None}
            ours = g[f"evals_{crit}"]
            if reached:
                best = min(reached, key=lambda k: reached[k][f"evals_{crit}"])
                b = reached[best][f"evals_{crit}"]
                rows.append(dict(workload=f"{c['case']}: evaluations to {what}", ours=ours, baseline=b,
                                 ratio=b / ours if ours else math.nan, unit="evals",
                                 notes=f"best black-box: {best}; {note}"))
                fastest = min(reached, key=lambda k: reached[k][f"time_{crit}"])
                tb, tg = reached[fastest][f"time_{crit}"], g[f"time_{crit}"]
                rows.append(dict(workload=f"{c['case']}: wall time to {what}", ours=tg, baseline=tb,
                                 ratio=tb / tg if tg else math.nan, unit="s",
                                 notes=f"fastest black-box: {fastest}"))
            else:
                rows.append(dict(workload=f"{c['case']}: evaluations to {what}", ours=ours, baseline=math.nan,
                                 ratio=math.inf if ours else math.nan, unit="evals",
                                 notes=f"no black-box method reached it within its budget; {note}"))
        key = lambda k: (others[k]["best_at_equal_time"] if not math.isnan(others[k]["best_at_equal_time"])
                         else math.inf)
        best_eq = min(others, key=key)
        rows.append(dict(workload=f"{c['case']}: best objective at the gradient run's wall time",
                         ours=g["best"], baseline=others[best_eq]["best_at_equal_time"],
                         ratio=others[best_eq]["best_at_equal_time"] / g["best"], unit="objective",
                         notes=f"{c['t_grad_total']:.2f} s; best black-box then: {best_eq}"))
    return rows


def markdown(results: list[dict]) -> str:
    """The per-method table of docs/schedules.md."""
    lines = ["| case | method | evals to 99% of gap | time (s) | evals to 0.1% of J* | time (s) | "
             "best objective | best at gradient's wall time | evals run |",
             "|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda x, f: "not reached" if x is None else format(x, f)
    eq = lambda x: "no evaluation yet" if math.isnan(x) else format(x, ".8g")
    for c in results:
        for name, m in c["methods"].items():
            lines.append(f"| {c['case']} ({c['n_params']} params) | {name} | {fmt(m['evals_gap99'], 'd')} | "
                         f"{fmt(m['time_gap99'], '.3g')} | {fmt(m['evals_0.1%'], 'd')} | "
                         f"{fmt(m['time_0.1%'], '.3g')} | {m['best']:.8g} | {eq(m['best_at_equal_time'])} | "
                         f"{m['total_evals']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    start = time.perf_counter()
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), float64")
    import json
    import sys

    def show(c):
        print(markdown([c]), flush=True)
        print(json.dumps(c, default=float), file=sys.stderr, flush=True)

    import argparse

    parser = argparse.ArgumentParser(description="gradient tuning vs black-box search")
    parser.add_argument("--start", choices=("matched", "shared", "cold"), default="matched",
                        help="who starts at the matched noise: the gradient only (default), every method, "
                        "or nobody")
    parser.add_argument("--pieces", default="1,4,16,64", help="comma-separated K values")
    parser.add_argument("--no-per-direction", action="store_true", help="skip the 784-parameter case")
    a = parser.parse_args()
    res = cases(quick=True, progress=show, start=a.start, pieces=[int(k) for k in a.pieces.split(",")],
                per_direction=not a.no_per_direction)
    for c in res:
        print(f"{c['case']}: J* = {c['j_star']:.8g}, J0 = {c['j0']:.8g}; objective {c['t_f'] * 1e3:.2f} ms, "
              f"objective+gradient "
              f"{c['t_vg'] * 1e3:.2f} ms; gradient run {c['t_grad_total']:.2f} s")
    print(markdown(res))
    print(f"total {time.perf_counter() - start:.1f} s")
