"""Long simulations in chunks, reporting progress: scalar and full-matrix dynamics end to end, any depth.

:func:`simulate_scalar` and :func:`simulate_matrix` run the same recursions and flows as
:func:`daedyn.dynamics.scalar_gd` / :func:`~daedyn.dynamics.scalar_flow` (``depth=``) and
:func:`~daedyn.dynamics.matrix_gd` / :func:`~daedyn.dynamics.matrix_flow` (the depth is the number
of factors), they call them, but split a long gradient-descent run into pieces of whole save
intervals so that a ``progress(done, total)`` callback (e.g. :func:`daedyn._progress.progress_bar`)
hears about it as it goes. Each piece starts from the last state of the one before, so the result
is the same recursion as one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from daedyn._checks import check_int
from daedyn._progress import starting
from daedyn.dynamics._matrix import matrix_flow, matrix_gd
from daedyn.dynamics._notsaved import is_saved
from daedyn.dynamics._scalar import scalar_flow, scalar_gd
from daedyn.schedules import divided
from daedyn.schedules import dtype_probe as _probe

# The public functions of daedyn.dynamics are looked up when called (``from daedyn import
# dynamics`` inside each function): this module builds only on that public API, and the package may
# re-export it without an import cycle.

__all__ = ["simulate_scalar", "simulate_matrix", "chunk_sizes", "CHUNK_WORK"]

#: Default work per piece of a chunked run: about this many trajectory-epochs (batch x epochs).
CHUNK_WORK = 50_000_000

Progress = Callable[[int, int], None] | None


def chunk_sizes(epochs: int, save_every: int, batch: int, chunk_work: int = CHUNK_WORK) -> list[int]:
    """Epochs per piece: whole save intervals, about ``chunk_work`` trajectory-epochs each.

    Example:
      >>> chunk_sizes(1000, 100, 1, chunk_work=300)
      [300, 300, 300, 100]
      >>> chunk_sizes(1000, 100, 10**6)  # too big for a piece of 5e7: one save interval each
      [100, 100, 100, 100, 100, 100, 100, 100, 100, 100]
    """
    n_saves = epochs // save_every
    per = max(1, min(n_saves, chunk_work // max(1, batch * save_every)))
    sizes = [per * save_every] * (n_saves // per)
    if n_saves % per:
        sizes.append((n_saves % per) * save_every)
    return sizes


def _check_schedule(epochs, save_every) -> tuple[int, int]:
    epochs = check_int("epochs", epochs, 1)
    save_every = check_int("save_every", save_every, 1)
    if epochs % save_every:
        raise ValueError(f"epochs ({epochs}) must be a multiple of save_every ({save_every})")
    return epochs, save_every


def _join(parts: list, time_axis: dict[str, int], final: tuple[str, ...] = ()):
    """One trajectory from consecutive pieces: saves concatenated (each later piece's first save,
    the previous piece's last, dropped), times shifted, ``final`` fields from the last piece."""
    if len(parts) == 1:
        return parts[0]
    kind = type(parts[0])
    fields = {}
    offset, ts = 0.0, []
    for i, p in enumerate(parts):
        ts.append((p.t + offset)[(1 if i else 0):])
        offset = float(offset + p.t[-1])
    for name in kind._fields:
        if name == "t":
            fields[name] = jnp.concatenate(ts)
        elif name in final or getattr(parts[0], name) is None or not is_saved(getattr(parts[0], name)):
            fields[name] = getattr(parts[-1], name)
        else:
            ax = time_axis.get(name, -1)
            pieces = [getattr(p, name) for p in parts]
            pieces = [pieces[0]] + [jnp.moveaxis(jnp.moveaxis(a, ax, 0)[1:], 0, ax) for a in pieces[1:]]
            fields[name] = jnp.concatenate(pieces, axis=ax)
    return kind(**fields)


def run_in_pieces(step: Callable, state, *, epochs: int, save_every: int, work: int, chunk_work: int,
                  progress: Progress) -> list:
    """The pieces of a long gradient-descent run: ``step(state, size, done) -> (trajectory, state)``
    runs ``size`` epochs from ``state`` (``done`` epochs into the run); ``progress(done, epochs)``
    hears about each finished piece. ``work`` is the run's size per epoch (batch x weights)."""
    parts, done = [], 0
    starting(progress, 0, epochs)
    for size in chunk_sizes(epochs, save_every, work, chunk_work):
        tr, state = step(state, size, done)
        parts.append(tr)
        done += size
        if progress is not None:
            jax.block_until_ready(tr)  # report work done, not work dispatched
            progress(done, epochs)
    return parts


def _shifted(x, done):
    """``x`` seen from epoch ``done`` on: every schedule in it (a rate, or inside a corruption value)
    shifted; unchanged at the start."""
    from daedyn.schedules import is_schedule, shift

    if not done:
        return x
    return jax.tree_util.tree_map(lambda s: shift(s, done) if is_schedule(s) else s, x, is_leaf=is_schedule)


def simulate_scalar(lam: ArrayLike, eps: ArrayLike = None, w1: ArrayLike = None, w2: ArrayLike = None, *,
                    alpha: ArrayLike, epochs: int, gamma: ArrayLike = 0.0, n: ArrayLike = 1, noise=None,
                    save_every: int = 1, method: Literal["gd", "rk4", "diffrax"] = "gd",
                    dt: float | None = None, backend: str = "auto", progress: Progress = None,
                    chunk_work: int = CHUNK_WORK, depth: int = 2):
    """Scalar dynamics of a batch of eigen-directions over ``epochs``, at any depth, reporting progress.

    ``method="gd"``: the gradient-descent recursion of :func:`daedyn.dynamics.scalar_gd`, run in
    pieces of about ``chunk_work`` trajectory-epochs; ``progress(epochs_done, epochs)`` is called
    after each piece. ``"rk4"`` / ``"diffrax"``: the continuous flow of
    :func:`daedyn.dynamics.scalar_flow` with tau = n / alpha at the save times, in one call
    (``progress`` is called once, at the end).

    Args:
      lam, eps, w1, w2, alpha, gamma, n, noise: as in :func:`daedyn.dynamics.scalar_gd`; broadcast.
      epochs: epochs to run, >= 1, a multiple of ``save_every``.
      save_every: epochs between saves; the start (t = 0) is always saved.
      method: "gd", "rk4" or "diffrax".
      dt: largest RK4 step (flow only; default automatic).
      backend: scalar GD engine (see :func:`daedyn.dynamics.scalar_gd`).
      progress: optional ``progress(done, total)`` callback, in epochs.
      chunk_work: trajectory-epochs per piece (a memory and reporting knob; results are identical).
      depth: number of weight matrices L (int >= 2), passed to ``scalar_gd`` / ``scalar_flow``: the
        first L - 1 factors start at w1, the last at w2 (w1 = w2 = w0 ** (1 / L): the balanced start
        with mapping w0).
    Returns:
      :class:`~daedyn.dynamics.ScalarTrajectory` with T = epochs / save_every + 1 saves, all five
      fields saved (``scalar_gd(..., observables="all")``; each piece resumes from its w1, w2).
    Raises:
      ValueError: bad ranges (as the functions called), or epochs not a multiple of save_every.
      UnstableStepWarning (a warning): gradient descent that cannot settle, once per call.
    Example:
      >>> seen = []
      >>> tr = simulate_scalar(1.0, 1.0, 0.1, 0.1, alpha=0.1, epochs=400, save_every=100,
      ...                      progress=lambda d, t: seen.append(d), chunk_work=200)
      >>> seen, tr.t.tolist(), round(float(tr.w[-1]), 4)  # fixed point lam / (lam + eps)
      ([200, 400], [0.0, 100.0, 200.0, 300.0, 400.0], 0.5)
      >>> u = 0.01 ** (1 / 3)  # depth 3 from the balanced start with mapping 0.01
      >>> round(float(simulate_scalar(1.0, 1.0, u, u, alpha=0.1, epochs=4000, save_every=1000,
      ...                             depth=3).w[-1]), 4)  # lam / (lam + eps), as at depth 2
      0.5
    """
    from daedyn.schedules import is_schedule

    # schedules: each chunk sees them from its own start (step k of the run uses eps(k)), also the
    # schedules inside a corruption value
    at = _shifted
    shape_of = lambda x: x.shape if is_schedule(x) else np.shape(x)
    epochs, save_every = _check_schedule(epochs, save_every)
    depth = check_int("depth", depth, 2)
    if method not in ("gd", "rk4", "diffrax"):
        raise ValueError(f"method must be 'gd', 'rk4' or 'diffrax'; got {method!r}")
    if method != "gd":  # a learning-rate schedule is the flow's tau schedule n / alpha(t)
        ts = jnp.arange(0, epochs + 1, save_every, dtype=jnp.result_type(_probe(alpha), float))
        tr = scalar_flow(ts, lam, eps, w1, w2, tau=divided(n, alpha), gamma=gamma, n=n, noise=noise,
                                  method=method, dt=dt, depth=depth)
        if progress is not None:
            progress(epochs, epochs)
        return tr
    batch = int(np.prod(np.broadcast_shapes(*(shape_of(x) for x in (lam, eps, w1, w2, alpha, gamma, n)
                                              if x is not None))))

    def step(y, size, done):
        tr = scalar_gd(lam, at(eps, done), y[0], y[1], alpha=at(alpha, done), gamma=at(gamma, done),
                       n=n, noise=at(noise, done), epochs=size, save_every=save_every, backend=backend,
                       check_stability=not done, observables="all", depth=depth)  # all five
        return tr, (tr.w1[..., -1], tr.w2[..., -1])

    return _join(run_in_pieces(step, (w1, w2), epochs=epochs, save_every=save_every, work=batch,
                               chunk_work=chunk_work, progress=progress), {})


def simulate_matrix(eigvals: ArrayLike, w1: ArrayLike, w2: ArrayLike, *more: ArrayLike, alpha,
                    epochs: int, eps=None, gamma=0.0, n: ArrayLike = 1, save_every: int = 1,
                    noise=None, method: Literal["gd", "rk4"] = "gd", dt: float = 0.1, precision=None,
                    progress: Progress = None, chunk_work: int = CHUNK_WORK, eps_dims: int = 0):
    """Full-matrix dynamics of L >= 2 factors in the eigenbasis over ``epochs``, reporting progress.

    ``method="gd"``: :func:`daedyn.dynamics.matrix_gd` in pieces of about ``chunk_work``
    weight-epochs (the mean number of weights per factor, H x D at depth 2, times epochs),
    ``progress(epochs_done, epochs)`` after each. ``"rk4"``: :func:`daedyn.dynamics.matrix_flow`
    with tau = n / alpha and steps of at most ``dt``, in one call (``progress`` once, at the end).

    Args:
      eigvals, w1, w2, *more, eps, gamma, alpha, n, noise, precision: as in :func:`daedyn.dynamics.matrix_gd`
        (the factors in the eigenbasis, the depth their number; eps, gamma and alpha may be
        schedules, step k of the whole run using eps(k), alpha(k)).
      epochs, save_every, progress, chunk_work: as in :func:`simulate_scalar`.
      method: "gd" or "rk4"; dt: largest RK4 step in epochs (flow only).
      eps_dims: 0 (scalar eps), 1 or 2 (a (D,) or (D, D) corruption term), as in ``matrix_gd``.
    Returns:
      :class:`~daedyn.dynamics.MatrixTrajectory` with T = epochs / save_every + 1 saves and the
      final factors.
    Raises:
      ValueError: bad ranges (as the functions called), or epochs not a multiple of save_every.
    Example:
      >>> import jax.numpy as jnp
      >>> w = 0.1 * jnp.eye(2)
      >>> tr = simulate_matrix(jnp.array([2.0, 1.0]), w, w, eps=1.0, alpha=0.1, epochs=600,
      ...                      save_every=200, chunk_work=800)
      >>> tr.mapping.shape, [round(float(m), 3) for m in tr.mapping[-1]]  # lam / (lam + eps)
      ((4, 2), [0.667, 0.5])
      >>> w = 0.3 * jnp.eye(2)  # depth 3: three factors
      >>> tr = simulate_matrix(jnp.array([2.0, 1.0]), w, w, w, eps=1.0, alpha=0.1, epochs=900,
      ...                      save_every=300, chunk_work=1200)
      >>> tr.depth, [round(float(m), 3) for m in tr.mapping[-1]]
      (3, [0.667, 0.5])
    """

    # schedules: each chunk sees them from its own start (step k of the run uses eps(k)), also the
    # schedules inside a corruption value
    at = _shifted
    epochs, save_every = _check_schedule(epochs, save_every)
    if method not in ("gd", "rk4"):
        raise ValueError(f"method must be 'gd' or 'rk4'; got {method!r}")
    ws = (w1, w2, *more)
    kw = dict(eps=eps, gamma=gamma, n=n, noise=noise, precision=precision, eps_dims=eps_dims)
    if method == "rk4":  # a learning-rate schedule is the flow's tau schedule n / alpha(t)
        ts = jnp.arange(0, epochs + 1, save_every, dtype=jnp.result_type(w1, float))
        tr = matrix_flow(ts, eigvals, *ws, tau=divided(n, alpha), dt=dt, **kw)
        if progress is not None:
            progress(epochs, epochs)
        return tr

    def step(y, size, done):
        tr = matrix_gd(eigvals, *y, alpha=at(alpha, done), epochs=size,
                                save_every=save_every, check_stability=not done,
                                **{**kw, "eps": at(eps, done), "gamma": at(gamma, done),
                                   "noise": at(noise, done)})
        return tr, tr.ws

    work = sum(int(np.prod(np.shape(w))) for w in ws) // len(ws)  # weights per factor (H D at depth 2)
    parts = run_in_pieces(step, ws, epochs=epochs, save_every=save_every, work=work, chunk_work=chunk_work,
                          progress=progress)
    return _join(parts, {"mapping": -2, "singular_values": -2}, final=("ws",))
