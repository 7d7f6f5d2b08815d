"""``daedyn simulate --depth L`` (L >= 3): the per-direction and full-matrix dynamics of L factors.

Scalar mode runs :func:`daedyn.dynamics.simulate_deep_scalar` for every combination of the --lam,
--eps, --gamma, --alpha lists (the first L - 1 factors start at --w1, the last at --w2, as
``scalar_gd(depth=L)``); matrix mode runs :func:`daedyn.dynamics.simulate_deep_matrix` on L factor
matrices (--hidden units in each of the L - 1 hidden layers). Where the start is balanced
(--w1 = --w2 > 0; orthogonal init in matrix mode) the depth-L closed form
``theory.small_init_trajectory(depth=L)`` is printed beside the run. ``--out`` writes the run as
``daedyn.cli.simulate`` does at depth 2, by the trajectory's fields (scalar mode: every factor over
``factor``; matrix mode: each factor matrix with its own dimensions, ``daedyn._xarray.factor_dims``).
"""

from __future__ import annotations

import json
import sys
import time

from daedyn.cli._files import raw_arrays, save_plot


def _refuse(args) -> None:
    if args.method == "diffrax":
        raise ValueError("--depth >= 3 integrates with --method gd or rk4 (diffrax: depth 2 only)")
    if args.eps_schedule is not None:
        raise ValueError("--eps-schedule works at --depth 2 only (the depth-L schedules are not built)")
    if args.noise != "none" or args.p is not None or args.cov is not None or args.raw:
        raise ValueError("--noise, --p, --cov and --raw work at --depth 2 only (the coupled term of deep "
                         "networks is not built)")
    if args.backend != "auto":
        raise ValueError("--backend chooses the depth-2 kernels; drop it with --depth >= 3")


def _closed(t, lam, eps, gamma, n, tau, args):
    """The balanced depth-L closed form w(t) where the start is balanced (w1 = w2 > 0), else None."""
    import numpy as np

    from daedyn import theory

    if not (args.w1 == args.w2 and args.w1 > 0):
        return None
    w0 = args.w1 ** args.depth
    return np.asarray(theory.small_init_trajectory(t, lam, eps, gamma, w0=w0, tau=tau, n=n, depth=args.depth),
                      np.float64)


def run(args) -> int:
    """Deep scalar or matrix mode, with the checks and formatting of ``daedyn.cli.simulate``."""
    from daedyn.cli import simulate  # loaded already: it dispatches here

    _refuse(args)
    return _run_matrix(args, simulate) if args.matrix else _run_scalar(args, simulate)


def _run_scalar(args, h) -> int:
    import jax.numpy as jnp
    import numpy as np

    from daedyn import dynamics, theory

    every = h._checked_ints(args)
    say = h._say(args)
    depth = args.depth
    grid = np.meshgrid(args.lam, args.eps, args.gamma, args.alpha, indexing="ij")
    lam, eps, gamma, alpha = (g.ravel() for g in grid)
    dtype = jnp.result_type(float)
    batch, n = lam.size, args.n
    factors = jnp.broadcast_to(jnp.asarray([args.w1] * (depth - 1) + [args.w2], dtype)[None, :],
                               (batch, depth))
    if args.method != "gd":
        say(f"integrating the depth-{depth} flow ({args.method}) for {batch} setting(s) ...")
    start = time.perf_counter()
    tr = dynamics.simulate_deep_scalar(*(jnp.asarray(x, dtype) for x in (lam, eps)), factors,
                                       alpha=jnp.asarray(alpha, dtype), gamma=jnp.asarray(gamma, dtype), n=n,
                                       epochs=args.epochs, save_every=every, method=args.method, dt=args.dt,
                                       progress=h._progress(args, every, batch * depth),
                                       chunk_work=h._CHUNK_WORK)
    ws, losses = np.asarray(tr.w), np.asarray(tr.loss)
    seconds = time.perf_counter() - start
    t = np.asarray(tr.t, np.float64)
    closed = _closed(t[None, :], lam[:, None], eps[:, None], gamma[:, None], n, (n / alpha)[:, None], args)
    fixed = np.asarray(theory.fixed_point(lam, eps, gamma, n, depth=depth), np.float64)
    threshold = np.asarray(theory.learning_threshold(lam, eps, gamma, n, depth=depth), np.float64)
    dev = None if closed is None else np.max(np.abs(ws - closed), axis=1)
    rows = [{"lam": float(lam[i]), "eps": float(eps[i]), "gamma": float(gamma[i]), "alpha": float(alpha[i]),
             "w_final": h._num(ws[i, -1]), "fixed_point": float(fixed[i]),
             "threshold": h._num(threshold[i]), "loss_final": h._num(losses[i, -1]),
             "max_dev_closed_form": None if dev is None else h._num(dev[i])} for i in range(batch)]
    report = {"mode": "scalar", "depth": depth, "method": args.method, "epochs": args.epochs,
              "save_every": every, "n": n, "w1": args.w1, "w2": args.w2, "seconds": round(seconds, 3),
              "settings": rows}
    lost = h._save_out(args, report, lambda: h.scalar_dataset(args, tr, closed, report),
                       lambda: {**raw_arrays(tr), "closed_form": closed})
    if args.plot:
        from daedyn.figures import plot_scalar_runs

        labels = [f"lam={lam[i]:g} eps={eps[i]:g} gamma={gamma[i]:g} alpha={alpha[i]:g}"
                  for i in range(batch)]
        save_plot(plot_scalar_runs(t, ws, labels, closed=closed).figure, args.plot)
        report["plot"] = args.plot
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        label = "gradient descent" if args.method == "gd" else "flow, RK4"
        print(f"depth-{depth} scalar dynamics, {label}: {batch} setting(s), {args.epochs} epochs, n = {n:g}, "
              f"start: {depth - 1} factor(s) {args.w1:g}, last {args.w2:g} ({seconds:.2f} s)")
        h._print_scalar_rows(rows, threshold=True)
        print(f"closed form: the balanced depth-{depth} flow with tau = n / alpha and w0 = w1^{depth} "
              f"({'n/a: the start is not balanced' if closed is None else 'GD differs by O(alpha)'}); "
              "threshold: the smallest balanced start that is learned")
        if args.plot:
            print(f"wrote {args.plot}")
        if args.out and "out_error" not in report:
            print(f"wrote {report['out']}")
    if lost:
        return lost
    if not np.all(np.isfinite(ws[:, -1])):
        print("daedyn simulate: non-finite weights at the end (diverged)", file=sys.stderr)
        return 1
    return 0


def _run_matrix(args, h) -> int:
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    from daedyn import dynamics, theory

    for name in ("eps", "gamma", "alpha"):
        if len(getattr(args, name)) != 1:
            raise ValueError(f"--{name} takes one value in matrix mode; got {getattr(args, name)}")
    if args.dataset is not None:
        raise ValueError("--dataset goes with --noise masking (depth 2 only); use --eigvals FILE.npy")
    every = h._checked_ints(args)
    say = h._say(args)
    depth = args.depth
    lam = h._spectrum(args)
    d = lam.size
    width = d if args.hidden is None else args.hidden
    if width < 1:
        raise ValueError(f"--hidden must be >= 1; got {width}")
    hidden = (width,) * (depth - 1)
    eps, gamma, alpha, n = args.eps[0], args.gamma[0], args.alpha[0], args.n
    dtype = jnp.result_type(float)
    key = jr.key(args.seed)
    k = min(d, width)
    if args.init == "orthogonal":
        a = jnp.asarray([args.w1] * (depth - 1) + [args.w2], dtype)[:, None] * jnp.ones((1, k), dtype)
        ws = dynamics.deep_orthogonal_init(d, hidden, a, key=key, dtype=dtype)
    else:
        ws = dynamics.deep_random_init(d, hidden, scale=args.scale, key=key, dtype=dtype)
    if args.method != "gd":
        say(f"integrating the depth-{depth} matrix flow (RK4) D = {d}, H = {width} ...")
    start = time.perf_counter()
    tr = dynamics.simulate_deep_matrix(jnp.asarray(lam, dtype), ws, alpha=alpha, epochs=args.epochs,
                                       save_every=every, eps=eps, gamma=gamma, n=n, method=args.method,
                                       dt=args.dt or 0.1, precision=args.precision,
                                       progress=h._progress(args, every, sum(int(w.size) for w in ws)),
                                       chunk_work=h._CHUNK_WORK)
    mapping, loss = np.asarray(tr.mapping), np.asarray(tr.loss)
    seconds = time.perf_counter() - start
    t = np.arange(0, args.epochs + 1, every, dtype=np.float64)
    learned = np.arange(d) < k
    fixed = np.where(learned, np.asarray(theory.fixed_point(lam, eps, gamma, n, depth=depth)), 0.0)
    closed = None
    if args.init == "orthogonal":
        per = _closed(t[:, None], lam[None, :k], eps, gamma, n, n / alpha, args)
        if per is not None:
            closed = np.zeros((t.size, d))
            closed[:, :k] = per
    final = mapping[-1]
    report = {"mode": "matrix", "depth": depth, "method": args.method, "dim": d, "hidden": list(hidden),
              "init": args.init, "epochs": args.epochs, "save_every": every, "eps": eps, "gamma": gamma,
              "alpha": alpha, "n": n, "seconds": round(seconds, 3), "loss_final": h._num(loss[-1])}
    h._add_directions(report, args, t, lam, mapping, fixed, closed)
    lost = h._save_out(args, report, lambda: h.matrix_dataset(args, tr, lam, fixed, closed, report),
                       lambda: {**raw_arrays(tr), "lam": lam, "fixed_point": fixed, "closed_form": closed})
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        label = "gradient descent" if args.method == "gd" else "flow, RK4"
        print(f"depth-{depth} matrix dynamics ({label}), "
              f"D = {d}, hidden {list(hidden)}, {args.init} init, eps = {eps:g}, gamma = {gamma:g}, "
              f"alpha = {alpha:g}, n = {n:g}, {args.epochs} epochs ({seconds:.2f} s)")
        h._print_directions(report, args)
    return lost or h._matrix_exit(final)
