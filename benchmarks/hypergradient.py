"""Hypergradients at scale: K = 1 ... 1024 schedule pieces of noise, learning rate and weight decay.

Question (issue 30, deliverable 4): when a schedule has many pieces, what does a gradient through
the training dynamics buy over black-box search, per objective evaluation and per second, and what
does one hypergradient cost next to one objective evaluation (target <= 3x)?

Objective: the held-out loss of mnist5k (4000 train / 1000 held-out images, D = 784, float64)
after T = 2000 epochs (``tune.schedule_objective_fn``, K equal pieces on [0, T]; with K = 1024 a
piece is 1-2 epochs), evaluation noise s_eval^2 = 0.05, with one kind of schedule tuned and the
others fixed:

- ``eps``: the K noise values (alpha = 0.02, gamma = 0); start: every piece at the matched noise
  N s_eval^2 = 200; black-box box [1e-2, 1e5] per value.
- ``gamma``: the K weight-decay values (eps = 0, alpha = 0.02); start gamma = 0.05 (N gamma = 200);
  box [1e-6, 1].
- ``alpha``: the K learning rates (eps = 0, gamma = 0), bounded through alpha = alpha_max u / (1 + u)
  (``ScheduleRoute.alpha_max``; every method searches the positive u): on the recursion
  alpha_max = N / lam_1 = 0.026, the GD stability edge; on the flow, which has no edge, 1.0 (its
  optimum, alpha ~ 0.07, lies inside); start alpha = 0.02; box u in [1e-3, 1e4].

Routes: ``closed_form`` (the chained exact flow, ``theory.small_init_trajectory`` under the
schedules; a learning-rate schedule enters as tau = N / alpha per piece) and ``dynamics`` (the GD
recursion, ``dynamics.scalar_gd``, step k with the rates of its piece). The quick run takes every K
on the closed form and K = 1, 16, 256, 1024 on the recursion (``QUICK_PIECES``).

Methods: L-BFGS (``tune.tune``'s default, zoom line search, its trials counted as evaluations) and
Adam (step 0.3) in log-values from the start above, each for about 3 s of evaluations (quick; 5 to
100 steps); Optuna TPE and CMA-ES (``pip install daedyn[bench]``: optuna and cmaes; a missing one is
a row note) and a vmapped random search (log-uniform in the box), each capped at 1.5 s and 500
trials (random search: 4000 points; quick). An evaluation is one objective (black box) or one
objective-and-gradient (gradient); times exclude compilation (each gradient run's iterates are
time-stamped through ``tune.tune``'s log hook on a second, compiled run; Optuna is warmed up once
per process).

The optimum J*: exact where it is known, and said per row: K = 1 (a 1-D problem: a 601-point log
grid over tune's whole range exp(+-30), refined by bounded Brent in the log-value), and the learning
rate on the closed form at every K (on the flow a learning-rate schedule is a change of clock,
s(T) = sum_i alpha_i len_i / N: J depends on the alpha_i only through their length-weighted mean, so
J* is the K = 1 optimum; checked per case on a random schedule, the difference is in the row);
otherwise the best value any method found ("best found"). Regret is (J_best(budget) - J*) / (J0 - J*):
the fraction of the start's gap still open (0 at the optimum, 1 at the start).

Rows per (kind, route, K): the regret at 100 evaluations and at 1 s of wall time (ours: the better
gradient method; baseline: the best black-box method; ratio = baseline / ours), and the cost of one
hypergradient (``jax.jit(jax.value_and_grad)``) over one objective evaluation (``jax.jit``), best of
7 interleaved calls after warm-up, target <= 3. Run alone: ``python -m benchmarks.hypergradient
[--kinds eps --routes closed_form --pieces 1,16]`` (prints the per-method tables).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from benchmarks.tune_vs_blackbox import optuna_trace
from daedyn import data, tune

PIECES = (1, 4, 16, 64, 256, 1024)
#: the quick run's K per route: every K on the closed form, four on the recursion (each of its
#: hypergradients costs ~0.1-0.2 s on the 2-core CPU, so its gradient runs are short)
QUICK_PIECES = {"closed_form": PIECES, "dynamics": (1, 16, 256, 1024)}
KINDS = ("eps", "gamma", "alpha")
ROUTES = ("closed_form", "dynamics")
EPOCHS = 2000
ALPHA = 0.02
S_EVAL = 0.05
BOXES = {"eps": (1e-2, 1e5), "gamma": (1e-6, 1.0), "alpha": (1e-3, 1e4)}
EVAL_BUDGETS = (10, 30, 100, 300)
TIME_BUDGETS = (0.1, 0.3, 1.0)
LOG_RANGE = (-30.0, 30.0)  # tune.tune's box for log-values: where the exact 1-D optimum is searched


def batch(k: int) -> int:
    """Points per vmapped random-search batch (the closed form keeps K records per direction per point)."""
    return max(4, min(64, 4096 // k))


def _problem():
    x = data.load("mnist5k").x
    xt, xh = data.train_heldout_split(x, 1000, seed=0)
    return tune.heldout_problem(xt, xh, keep_data=False)


@dataclasses.dataclass(frozen=True)
class _With:
    """The objective of the tuned values ``z`` alone (the fixed values passed as arrays)."""

    name: str

    def __call__(self, fn, fixed, z):
        return fn({**fixed, self.name: z})


def alpha_max(problem, route: str) -> float:
    """The learning-rate bound: the GD stability edge N / lam_1 on the recursion; on the flow, which has
    no stability edge, 1.0 (its optimum, near 0.07, lies inside)."""
    return float(problem.n) / float(np.max(np.asarray(problem.eigvals))) if route == "dynamics" else 1.0


def setting(problem, kind: str, route: str, pieces: int):
    """``(objective(z), start value, note)`` of one (kind, route, K): z is the (K,) tuned values."""
    n = float(problem.n)
    amax = alpha_max(problem, route)
    r = tune.ScheduleRoute(pieces=pieces, epochs=float(EPOCHS), route=route, tune_gamma=kind == "gamma",
                           tune_alpha=kind == "alpha", alpha_max=amax if kind == "alpha" else None)
    fn = tune.schedule_objective_fn(problem, r, alpha=ALPHA, eval_sigma2=S_EVAL)
    dt = problem.eigvals.dtype
    if kind == "eps":
        return jtu.Partial(_With("eps"), fn, {}), n * S_EVAL, "alpha 0.02, gamma 0"
    fixed = {"eps": jnp.zeros((pieces,), dt)}
    if kind == "gamma":
        return jtu.Partial(_With("gamma"), fn, fixed), S_EVAL, "eps 0, alpha 0.02"
    return (jtu.Partial(_With("alpha"), fn, fixed), ALPHA / (amax - ALPHA),
            f"eps 0, gamma 0, alpha = {amax:.4g} u / (1 + u)")


def _timeit(f, *args):
    t0 = time.perf_counter()
    jax.block_until_ready(f(*args))
    return time.perf_counter() - t0


def _start(k, x0):
    """Every value at x0, strongly typed: as NumPy inputs arrive from the black-box methods (a
    weakly typed ``jnp.full`` would compile a second program)."""
    return jnp.asarray(np.full((k,), x0))


def cost_ratio(f, k: int, x0: float, repeat: int = 7):
    """Best-of-``repeat`` seconds of one jitted objective and one jitted value-and-gradient at the
    start (interleaved, after warm-up)."""
    fj, vg = jax.jit(f), jax.jit(jax.value_and_grad(f))
    z = _start(k, x0)
    jax.block_until_ready(fj(z))
    jax.block_until_ready(vg(z))
    t_f = t_vg = math.inf
    for _ in range(repeat):
        t_f = min(t_f, _timeit(fj, z))
        t_vg = min(t_vg, _timeit(vg, z))
    return t_f, t_vg


def _gradient(f, k, x0, optimizer, max_steps):
    """(values, evaluations, seconds) at each iterate of ``tune.tune`` from every value at x0."""
    init = {"z": np.full((k,), x0)}
    obj = jtu.Partial(_named, f)
    tune.tune(obj, init, max_steps=2, optimizer=optimizer)  # compile the step (and line search)
    stamps = []
    t0 = time.perf_counter()
    res = tune.tune(obj, init, max_steps=max_steps, optimizer=optimizer,
                    log=lambda rec: stamps.append(time.perf_counter() - t0))
    return np.asarray(res.history.objective), np.asarray(res.history.evals), np.asarray(stamps)


def _named(f, params):
    return f(params["z"])


def _warm_optuna():
    """One small study per sampler before any timing: Optuna's first trial imports and sets up its
    samplers (measured ~3 s for the first TPE trial in a process), which is not a cost per trial."""
    for name in ("tpe", "cmaes"):
        try:
            optuna_trace(lambda z: jnp.sum(jnp.log(z) ** 2), 2, 15, name, box=(1e-2, 1e2), seconds=10.0)
        except ImportError:
            pass


def _random(fb, k, box, points, seconds, seed=0):
    rng = np.random.default_rng(seed)
    lo, hi = np.log(box[0]), np.log(box[1])
    size = batch(k)
    jax.block_until_ready(fb(jnp.ones((size, k))))  # compile
    values, times = [], []
    t0 = time.perf_counter()
    for _ in range(0, points, size):
        z = np.exp(rng.uniform(lo, hi, size=(size, k)))
        v = np.asarray(fb(jnp.asarray(z)))
        values.append(v)
        times.append(np.full(v.shape, time.perf_counter() - t0))
        if times[-1][0] > seconds:
            break
    return np.concatenate(values), np.concatenate(times)


def exact_1d(f1, lo: float, hi: float, points: int = 601):
    """min over x in [lo, hi] of f1(x) (x > 0 scalar): a log grid, then bounded Brent in log x between
    the grid neighbours of the best point. Returns (J*, x*)."""
    from scipy.optimize import minimize_scalar

    grid = np.geomspace(lo, hi, points)
    fb = jax.jit(jax.vmap(f1))
    vals = np.asarray(fb(jnp.asarray(grid)))
    i = int(np.nanargmin(vals))
    a, b = np.log(grid[max(i - 1, 0)]), np.log(grid[min(i + 1, points - 1)])
    fj = jax.jit(f1)
    res = minimize_scalar(lambda s: float(fj(jnp.exp(jnp.asarray(s)))), bounds=(a, b), method="bounded",
                          options={"xatol": 1e-10})
    if res.fun < vals[i]:
        return float(res.fun), float(np.exp(res.x))
    return float(vals[i]), float(grid[i])


def _best_at(values, x, budget):
    ok = x <= budget
    return float(np.nanmin(values[ok])) if np.any(ok) else math.nan


def case(problem, kind: str, route: str, k: int, *, quick: bool = True, exact: dict | None = None) -> dict:
    """One (kind, route, K): every method's best objective at each budget, J*, J0 and the cost ratio.
    ``exact`` caches the K = 1 optima (key (kind, route)) for the learning-rate closed form."""
    exact = {} if exact is None else exact
    f, x0, fixed_note = setting(problem, kind, route, k)
    box = BOXES[kind]
    fj, fb = jax.jit(f), jax.jit(jax.vmap(f))
    t_f, t_vg = cost_ratio(f, k, x0)
    j0 = float(fj(_start(k, x0)))
    import optax

    seconds = 1.5 if quick else 30.0  # each black-box method's wall-time cap
    trials = 500 if quick else 5000
    methods, skipped = {}, {}
    for name, opt, per_step in (("L-BFGS", None, 2.5), ("Adam 0.3", optax.adam(0.3), 1.0)):
        # steps for about 2 * seconds of evaluations (L-BFGS: ~2.5 evaluations a step, measured)
        steps = int(np.clip(2 * seconds / (per_step * t_vg), 5, 100 if quick else 500))
        methods[name] = _gradient(f, k, x0, opt, steps)
    for name, sampler in (("optuna TPE", "tpe"), ("optuna CMA-ES", "cmaes")):
        try:
            v, t = optuna_trace(fj, k, trials, sampler, box=box, seconds=seconds)
            methods[name] = (v, np.arange(1, v.size + 1), t)
        except ImportError as err:
            skipped[name] = f"not run: {err.name} not installed (pip install daedyn[bench])"
    v, t = _random(fb, k, box, trials * 8, seconds)
    methods["random (vmapped)"] = (v, np.arange(1, v.size + 1), t)

    best_found = min(float(np.nanmin(v)) for v, _, _ in methods.values())
    how = "best found by any method"
    if k == 1 or (kind == "alpha" and route == "closed_form"):
        key = (kind, route)
        if key not in exact:
            f1 = setting(problem, kind, route, 1)[0]
            exact[key] = exact_1d(lambda s: f1(s[None]), *np.exp(LOG_RANGE))
        j_star, x_star = exact[key]
        how = (f"exact: 1-D optimum {x_star:.6g} (log grid + Brent)" if k == 1 else
               f"exact: the K = 1 optimum u = {x_star:.6g} (a change of clock on the flow)")
        if kind == "alpha" and route == "closed_form" and k > 1:  # J depends on the mean alpha only
            rng = np.random.default_rng(1)
            u = np.exp(rng.uniform(-1.0, 1.0, k))
            amax = alpha_max(problem, route)
            a = amax * u / (1 + u)
            lengths = np.diff(np.concatenate([[0.0], np.round(np.arange(1, k) * (EPOCHS / k)), [EPOCHS]]))
            a_mean = float(np.sum(a * lengths) / EPOCHS)
            f1 = setting(problem, kind, route, 1)[0]
            gap = abs(float(fj(jnp.asarray(u))) - float(f1(jnp.asarray([a_mean / (amax - a_mean)]))))
            how += f"; |J_K(alpha) - J_1(mean alpha)| = {gap:.1e} on a random schedule"
        if best_found < j_star:  # never below an exact optimum beyond rounding
            how += f"; a method found {best_found:.10g} < J* (by {j_star - best_found:.1e})"
            j_star = best_found
    else:
        j_star = best_found
    gap0 = j0 - j_star
    out = dict(kind=kind, route=route, pieces=k, j_star=j_star, j0=j0, how=how, t_f=t_f, t_vg=t_vg,
               fixed=fixed_note, skipped=skipped, methods={})
    for name, (v, e, t) in methods.items():
        regret = lambda b: (b - j_star) / gap0 if gap0 > 0 else math.nan
        m = dict(best=float(np.nanmin(v)), evals=int(e[-1]), seconds=float(t[-1]))
        for b in EVAL_BUDGETS:
            m[f"evals_{b}"] = regret(_best_at(v, e, b))
        for b in TIME_BUDGETS:
            m[f"time_{b:g}"] = regret(_best_at(v, t, b))
        out["methods"][name] = m
    return out


def cases(quick: bool = True, kinds=KINDS, routes=ROUTES, pieces=None, progress=None) -> list[dict]:
    """Every (route, kind, K) case; ``pieces`` None: :data:`QUICK_PIECES` (quick) or :data:`PIECES`."""
    results = []
    try:
        _warm_optuna()
    except ImportError:  # no optuna: its rows say so
        pass
    with jax.enable_x64(True):
        problem = _problem()
        exact = {}
        for route in routes:
            for kind in kinds:
                ks = pieces if pieces is not None else (QUICK_PIECES[route] if quick else PIECES)
                for k in ks:
                    results.append(case(problem, kind, route, k, quick=quick, exact=exact))
                    if progress is not None:
                        progress(results[-1])
    return results


def _regret_row(c, budget_key, what):
    grads = {k: v for k, v in c["methods"].items() if k in ("L-BFGS", "Adam 0.3")}
    boxes = {k: v for k, v in c["methods"].items() if k not in grads}
    key = lambda d: (lambda k: math.inf if math.isnan(d[k][budget_key]) else d[k][budget_key])
    g = min(grads, key=key(grads))
    b = min(boxes, key=key(boxes))
    ours, base = grads[g][budget_key], boxes[b][budget_key]
    ratio = base / ours if ours > 0 else (math.inf if base > 0 else 1.0)
    per = ", ".join(f"{k} {_fmt(v[budget_key])}" for k, v in c["methods"].items())
    skipped = "".join(f"; {k} {why}" for k, why in c["skipped"].items())
    return dict(workload=f"{c['kind']} schedule, {c['route']}, K={c['pieces']}: regret at {what}", ours=ours,
                baseline=base, ratio=ratio, unit="fraction of gap",
                notes=f"ours: {g}, baseline: {b}; regret (J - J*)/(J0 - J*) per method: {per}{skipped}; "
                      f"J* = {c['j_star']:.10g} ({c['how']}), J0 = {c['j0']:.10g}; {c['fixed']}")


def _fmt(x):
    return "no evaluation yet" if math.isnan(x) else f"{x:.2g}"


def rows(results: list[dict]) -> list[dict]:
    out = []
    for c in results:
        out.append(_regret_row(c, "evals_100", "100 evaluations"))
        out.append(_regret_row(c, "time_1", "1 s"))
        r = c["t_vg"] / c["t_f"]
        case_name = f"{c['kind']} schedule, {c['route']}, K={c['pieces']}"
        out.append(dict(workload=f"{case_name}: one hypergradient / one objective", ours=c["t_vg"],
                        baseline=c["t_f"], ratio=r, unit="s",
                        notes=f"ratio = value_and_grad / objective, jitted, best of 7 after warm-up; target "
                              f"<= 3: {'met' if r <= 3 else 'MISSED'}"))
    return out


def run(quick: bool = True) -> list[dict]:
    res = cases(quick, progress=lambda c: print(markdown([c], header=False), file=sys.stderr, flush=True))
    print(markdown(res), file=sys.stderr, flush=True)
    return rows(res)


def markdown(results: list[dict], header: bool = True) -> str:
    """The per-method regret table of docs/notes/schedules.md."""
    cols = [f"{b} evals" for b in EVAL_BUDGETS] + [f"{b:g} s" for b in TIME_BUDGETS]
    lines = ["| kind | route | K | method | " + " | ".join(cols) + " | evals run | s run | J* |",
             "|---|---|---|---|" + "---|" * len(cols) + "---|---|---|"] if header else []
    for c in results:
        for name, m in c["methods"].items():
            cells = ([_fmt(m[f"evals_{b}"]) for b in EVAL_BUDGETS]
                     + [_fmt(m[f"time_{b:g}"]) for b in TIME_BUDGETS])
            star = "exact" if c["how"].startswith("exact") else "best found"
            lines.append(f"| {c['kind']} | {c['route']} | {c['pieces']} | {name} | " + " | ".join(cells)
                         + f" | {m['evals']} | {m['seconds']:.2g} | {star} |")
        lead = f"| {c['kind']} | {c['route']} | {c['pieces']} |"
        pad = " |" * (len(cols) + 2)
        for name, why in c["skipped"].items():
            lines.append(f"{lead} {name} | {why} |{pad}")
        lines.append(f"{lead} cost | objective {c['t_f'] * 1e3:.3g} ms, hypergradient "
                     f"{c['t_vg'] * 1e3:.3g} ms, ratio {c['t_vg'] / c['t_f']:.2f} |{pad}")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--routes", default=",".join(ROUTES))
    p.add_argument("--pieces", default=None, help="comma-separated K (default: the quick or full list)")
    p.add_argument("--full", action="store_true")
    a = p.parse_args()
    t0 = time.perf_counter()
    ks = None if a.pieces is None else [int(k) for k in a.pieces.split(",")]
    res = cases(not a.full, a.kinds.split(","), a.routes.split(","), ks,
                progress=lambda c: print(markdown([c], header=False), flush=True))
    print(markdown(res))
    print(f"total {time.perf_counter() - t0:.1f} s")
