"""Functions a sweep can run: the built-in entry points and the hook for users' own.

A sweep function takes keyword arguments (one per axis and constant) and returns a dict, a
NamedTuple or any pytree of arrays. With ``batching="vmap"`` it is written for ONE grid point
(the runner vmaps it over a chunk); with ``"broadcast"`` it receives (B,) arrays. Trailing
dimensions of an output (time, direction) are named by :func:`entry_point` metadata or by the
spec's ``dims``.

Built-ins are registered by import-path string and imported only when used, so this module
does not import the theory/dynamics layers.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

__all__ = ["ENTRY_POINTS", "EntryInfo", "entry_point", "register", "resolve"]


class EntryInfo(NamedTuple):
    """What the sweep runner needs to know about a function besides its signature.

    Attributes:
      batching: ``"vmap"`` or ``"broadcast"`` (see module docstring).
      static: parameters that fix array shapes (epochs, a time grid): constants only.
      dims: ``constants -> {output: dim names}`` for trailing output dimensions.
      coords: ``constants -> {dim: values}`` for those dimensions.
      defaults: ``(axes, constants) -> {name: value}``, constants derived from the whole grid
        (e.g. an integration step small enough for every point), added when not given.
    """

    batching: str = "vmap"
    static: tuple[str, ...] = ()
    dims: Callable[[Mapping[str, Any]], Mapping[str, tuple[str, ...]]] | None = None
    coords: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    defaults: Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]] | None = None


def entry_point(*, batching: str = "vmap", static=(), dims=None, coords=None, defaults=None):
    """Decorator attaching :class:`EntryInfo` to a sweep function (also for users' functions).

    ``dims``/``coords`` may be dicts or callables of the constants.
    """
    def as_fn(x):
        return x if callable(x) or x is None else (lambda c, _x=x: _x)

    def wrap(fn):
        fn.__daedyn_sweep__ = EntryInfo(batching, tuple(static), as_fn(dims), as_fn(coords), defaults)
        return fn
    return wrap


# name -> "module:function"; resolved lazily.
ENTRY_POINTS: dict[str, str] = {
    "theory.dae_trajectory": "daedyn.sweep.entries:dae_trajectory",
    "theory.dae_weights": "daedyn.sweep.entries:dae_weights",
    "theory.small_init_trajectory": "daedyn.sweep.entries:small_init_trajectory",
    "theory.fixed_point": "daedyn.sweep.entries:fixed_point",
    "theory.learning_time": "daedyn.sweep.entries:learning_time",
    "dynamics.scalar_gd": "daedyn.sweep.entries:scalar_gd",
    "dynamics.scalar_flow": "daedyn.sweep.entries:scalar_flow",
    "dynamics.matrix_gd": "daedyn.sweep.entries:matrix_gd",
    "train.train": "daedyn.sweep.entries:train_run",
}


def register(name: str, target: str | Callable) -> None:
    """Add an entry point: ``register("my.model", "mypkg.sweeps:model")``."""
    if not isinstance(target, str):
        mod, qual = target.__module__, target.__qualname__
        target = f"{mod}:{qual}"
    ENTRY_POINTS[name] = target


def _import(target: str) -> Callable:
    if ":" not in target:
        raise ValueError(f"function {target!r} is not a registered entry point "
                         f"({', '.join(sorted(ENTRY_POINTS))}) nor 'module:function'")
    mod_name, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(mod_name)
    except ImportError as err:
        raise ValueError(f"function {target!r}: cannot import module {mod_name!r} ({err})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"function {target!r}: module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"function {target!r} is not callable")
    return obj


def resolve(function: str | Callable) -> tuple[Callable, EntryInfo]:
    """The callable and its :class:`EntryInfo` for an entry-point name, path or callable."""
    fn = function
    if isinstance(function, str):
        fn = _import(ENTRY_POINTS.get(function, function))
    return fn, getattr(fn, "__daedyn_sweep__", EntryInfo())


def parameters(fn: Callable) -> tuple[set[str], set[str], bool]:
    """(all keyword names, required names, accepts **kwargs) of ``fn``."""
    sig = inspect.signature(fn)
    names, required, var_kw = set(), set(), False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.add(p.name)
            if p.default is p.empty:
                required.add(p.name)
    return names, required, var_kw


# --- built-in adapters (one grid point each; theory/dynamics imported on call) ----------------

def _time_dims(key: str, outputs: tuple[str, ...]):
    """Outputs get a trailing dim named ``key`` when the constant ``key`` is a 1-D time grid."""
    def dims(c):
        return {o: (key,) for o in outputs} if np.ndim(c.get(key, 0.0)) == 1 else {}

    def coords(c):
        return {key: np.asarray(c[key])} if np.ndim(c.get(key, 0.0)) == 1 else {}
    return dims, coords


_d, _c = _time_dims("t", ("w",))


@entry_point(dims=_d, coords=_c)
def dae_trajectory(*, t, lam, eps, w1, w2, tau=1.0):
    """``theory.dae_trajectory``: w(t) = w1(t) w2(t), Eq. (5); ``t`` an axis or a time grid."""
    from daedyn import theory
    return {"w": theory.dae_trajectory(t, lam, eps, w1, w2, tau=tau)}


_d, _c = _time_dims("t", ("w1", "w2", "w"))


@entry_point(dims=_d, coords=_c)
def dae_weights(*, t, lam, eps, w1, w2, tau=1.0):
    """``theory.dae_weights``: the two weights w1(t), w2(t) and their product."""
    from daedyn import theory
    a, b = theory.dae_weights(t, lam, eps, w1, w2, tau=tau)
    return {"w1": a, "w2": b, "w": a * b}


_d, _c = _time_dims("t", ("w",))


@entry_point(dims=_d, coords=_c)
def small_init_trajectory(*, t, lam, eps=0.0, gamma=0.0, w0, tau=1.0, n=1):
    """``theory.small_init_trajectory``: balanced-start mapping w(t) (Eq. 7 and its eps/gamma forms)."""
    from daedyn import theory
    return {"w": theory.small_init_trajectory(t, lam, eps, gamma, w0=w0, tau=tau, n=n)}


@entry_point()
def fixed_point(*, lam, eps=0.0, gamma=0.0, n=1):
    """``theory.fixed_point``: max(0, (lam - n gamma) / (lam + eps))."""
    from daedyn import theory
    return {"w": theory.fixed_point(lam, eps, gamma, n=n)}


@entry_point()
def learning_time(*, f, lam, eps=0.0, gamma=0.0, w0, tau=1.0, n=1):
    """``theory.learning_time``: time for a balanced start to reach f x the fixed point."""
    from daedyn import theory
    return {"time": theory.learning_time(f, lam, eps, gamma, w0=w0, tau=tau, n=n)}


def _gd_epochs(c):
    from daedyn import dynamics
    t = dynamics.scalar_gd(1.0, 0.0, 0.5, 0.5, alpha=1e-3, epochs=int(c["epochs"]),
                           save_every=int(c.get("save_every", 1)), check_stability=False).t
    return {"epoch": np.asarray(t)}


_GD_OUT = ("w1", "w2", "w", "norm2", "loss")


# The dynamics layer batches by broadcasting (and may pick fused kernels for large batches), so
# these adapters take each axis as a (B,) array instead of being vmapped.
@entry_point(batching="broadcast", static=("epochs", "save_every", "unroll", "check_stability"),
             dims={o: ("epoch",) for o in _GD_OUT}, coords=_gd_epochs)
def scalar_gd(*, lam, eps, w1, w2, alpha, epochs, gamma=0.0, n=1, save_every=1, **options):
    """``dynamics.scalar_gd``: exact gradient-descent recursion of one direction (epochs)."""
    from daedyn import dynamics
    traj = dynamics.scalar_gd(lam, eps, w1, w2, alpha=alpha, epochs=epochs, gamma=gamma, n=n,
                              save_every=save_every, **options)
    return {k: getattr(traj, k) for k in _GD_OUT}


def _flow_dt(axes, constants):
    """RK4 step for the stiffest point of the grid: 0.05 / max rate, the rate being
    ((lam + eps) max(1, w1^2 + w2^2) + n gamma) / tau (increasing in every argument but tau)."""
    if "dt" in constants or constants.get("method", "rk4") != "rk4":
        return {}
    defaults = {"gamma": 0.0, "n": 1.0, "tau": 1.0}

    def extreme(name, fn):
        v = axes.get(name, constants.get(name, defaults.get(name)))
        return float(fn(np.abs(np.asarray(v, np.float64))))
    big = {k: extreme(k, np.max) for k in ("lam", "eps", "gamma", "n", "w1", "w2")}
    rate = ((big["lam"] + big["eps"]) * max(1.0, big["w1"] ** 2 + big["w2"] ** 2)
            + big["n"] * big["gamma"]) / extreme("tau", np.min)
    return {"dt": 0.05 / max(rate, 1e-300)}


@entry_point(batching="broadcast",
             static=("ts", "method", "dt", "rtol", "atol", "max_steps", "unroll"),
             dims={o: ("t",) for o in _GD_OUT}, coords=lambda c: {"t": np.asarray(c["ts"])},
             defaults=_flow_dt)
def scalar_flow(*, ts, lam, eps, w1, w2, tau=1.0, gamma=0.0, n=1, **options):
    """``dynamics.scalar_flow``: the continuous flow at times ``ts`` (a constant time grid).

    Without ``dt`` (RK4), the step is the one ``dynamics.scalar_flow`` would choose for the
    stiffest point of the whole grid, so every chunk uses the same step.
    """
    from daedyn import dynamics
    traj = dynamics.scalar_flow(ts, lam, eps, w1, w2, tau=tau, gamma=gamma, n=n, **options)
    return {k: getattr(traj, k) for k in _GD_OUT}


def _matrix_gd_coords(c):
    from daedyn import dynamics
    t = dynamics.matrix_gd(np.ones(1), np.zeros((1, 1)), np.zeros((1, 1)), alpha=1e-3, n=1,
                           epochs=int(c["epochs"]), save_every=int(c.get("save_every", 1)),
                           check_stability=False).t
    return {"epoch": np.asarray(t)}


@entry_point(batching="broadcast",
             static=("eigvals", "w1", "w2", "epochs", "save_every", "precision", "form", "unroll",
                     "check_stability"),
             dims={"mapping": ("epoch", "direction"), "singular_values": ("epoch", "component"),
                   "weight_norm": ("epoch",), "loss": ("epoch",)},
             coords=_matrix_gd_coords)
def matrix_gd(*, eigvals, w1, w2, alpha, n, epochs, eps=0.0, gamma=0.0, save_every=1, **options):
    """``dynamics.matrix_gd``: full-matrix GD in the eigenbasis; sweep eps, gamma, alpha, n."""
    from daedyn import dynamics
    traj = dynamics.matrix_gd(eigvals, w1, w2, eps=eps, gamma=gamma, alpha=alpha, n=n, epochs=epochs,
                              save_every=save_every, **options)
    return {"mapping": traj.mapping, "singular_values": traj.singular_values,
            "weight_norm": traj.weight_norm, "loss": traj.loss}


_TRAIN_STATIC = ("x", "x_heldout", "dataset", "n_train", "n_heldout", "hidden", "epochs", "record_every",
                 "activation", "noise", "marginalised", "path", "batch_size", "precision", "data")


def _train_data(axes, constants):
    """Load (``dataset`` + ``n_train``) or take (``x``) the data once, with its spectrum."""
    if "data" in constants:
        return {}
    from daedyn import train

    if constants.get("x") is not None:
        x = np.asarray(constants["x"], np.float32)
        xh = constants.get("x_heldout")
        xh = None if xh is None else np.asarray(xh, np.float32)
    elif constants.get("dataset"):
        from daedyn import data as data_lib

        n_train, n_held = constants.get("n_train"), constants.get("n_heldout")
        n_total = None if n_train is None else int(n_train) + int(n_held or 0)
        x = data_lib.load(constants["dataset"], n=n_total).x
        x, xh = (x[:int(n_train)], x[int(n_train):]) if n_held else (x, None)
    else:
        raise ValueError("train.train needs the data: a constant 'dataset' (with 'n_train') or 'x'")
    return {"data": train.prepare_data(x, x_heldout=xh)}


def _train_dims(c):
    two = {"mapping": ("epoch", "direction"), "singular_values": ("epoch", "component")}
    return {k: two.get(k, ("epoch",)) for k in ("mapping", "singular_values", "weight_norm", "train_loss",
                                                  "heldout_loss")}


def _train_epochs(c):
    every = int(c.get("record_every") or c["epochs"])
    return {"epoch": np.arange(0, int(c["epochs"]) + 1, max(every, 1))}


@entry_point(static=_TRAIN_STATIC, dims=_train_dims, coords=_train_epochs, defaults=_train_data)
def train_run(*, alpha, hidden, epochs, gamma=0.0, s2=0.0, seed=0, init_scale=1e-4, record_every=None,
              data=None, x=None, x_heldout=None, dataset=None, n_train=None, n_heldout=None, **options):
    """``train.train``: train one linear/nonlinear autoencoder per grid point (``train_fn``).

    Sweep ``alpha``, ``gamma``, ``s2`` (noise variance), ``seed`` (initialisation and noise draws)
    and ``init_scale``; the data are a constant: ``dataset`` (a ``daedyn.data`` name) with
    ``n_train`` (and optional ``n_heldout``), or an array ``x``. Records every ``record_every``
    epochs: mapping, singular values, weight norm, train and held-out loss.
    """
    import jax

    from daedyn import models, train

    k_init, k_run = jax.random.split(jax.random.key(seed))
    d = data.eigvals.shape[0]
    p0 = models.init_autoencoder(d, int(hidden), key=k_init, scale=init_scale)
    run = train.train_fn(epochs=int(epochs), record_every=record_every, **options)
    _, records = run(p0, data, train.Hyper(alpha=alpha, gamma=gamma, s2=s2), k_run)
    return records
