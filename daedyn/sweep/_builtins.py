"""The built-in entry points: adapters from one sweep call to daedyn's theory, dynamics and train.

Each adapter imports what it calls at the top of this module and names its trailing output
dimensions; their coordinates (save times, epochs) are computed from the settings, never by
running the function. :data:`ENTRY_POINTS` is a read-only mapping from the names used in specs
to these adapters; a user's own function is named ``"module:function"`` (or passed as a
callable) and found by :func:`resolve`. Every parameter name an adapter accepts has a range in
``PARAMETER_RANGES`` or is listed in ``NOT_RANGED``; the module refuses to import otherwise.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from daedyn import data as data_lib
from daedyn import diffusion, dynamics, models, schedules, theory, train
from daedyn._checks import check_range, float_dtype, renamed
from daedyn.sweep._entries import EntryInfo, entry_info, entry_point, import_function, parameters
from daedyn.sweep._spec import NOT_RANGED, PARAMETER_RANGES

__all__ = ["ENTRY_POINTS", "resolve", "accepted_names", "check_allow_import"]


def _time_dims(key: str, outputs: tuple[str, ...]):
    """Outputs get a trailing dim named ``key`` when the constant ``key`` is a 1-D time grid."""
    def dims(c):
        return {o: (key,) for o in outputs} if np.ndim(c.get(key, 0.0)) == 1 else {}

    def coords(c):
        return {key: np.asarray(c[key])} if np.ndim(c.get(key, 0.0)) == 1 else {}
    return dims, coords


def _save_epochs(epochs, every) -> np.ndarray:
    """Epochs at which a run of ``epochs`` steps saving every ``every`` records: 0, every, ...

    The same times as the ``t`` of ``dynamics.scalar_gd``/``matrix_gd`` and the records of
    ``train.train_fn`` (which require ``epochs`` to be a multiple of ``every``).
    """
    every = max(int(every), 1)
    return np.arange(int(epochs) // every + 1) * every


# --- daedyn.theory: closed forms, vmapped over the grid (one point per call) -------------------

_d, _c = _time_dims("t", ("w",))


@entry_point(dims=_d, coords=_c)
def dae_trajectory(*, t, lam, eps, w1, w2, tau=1.0):
    """``theory.dae_trajectory``: w(t) = w1(t) w2(t), Eq. (5); ``t`` an axis or a time grid."""
    return {"w": theory.dae_trajectory(t, lam, eps, w1, w2, tau=tau)}


_d, _c = _time_dims("t", ("w1", "w2", "w"))


@entry_point(dims=_d, coords=_c)
def dae_weights(*, t, lam, eps, w1, w2, tau=1.0):
    """``theory.dae_weights``: the two weights w1(t), w2(t) and their product."""
    a, b = theory.dae_weights(t, lam, eps, w1, w2, tau=tau)
    return {"w1": a, "w2": b, "w": a * b}


_d, _c = _time_dims("t", ("w",))


@entry_point(dims=_d, coords=_c, switch=("depth",))
def small_init_trajectory(*, t, lam, eps=0.0, gamma=0.0, w0, tau=1.0, n=1, depth=2):
    """``theory.small_init_trajectory``: balanced-start mapping w(t) (Eq. 7, its eps/gamma forms and
    depth L >= 3)."""
    return {"w": theory.small_init_trajectory(t, lam, eps, gamma, w0=w0, tau=tau, n=n, depth=depth)}


@entry_point(switch=("depth",))
def fixed_point(*, lam, eps=0.0, gamma=0.0, n=1, depth=2):
    """``theory.fixed_point``: the learned value (depth 2: max(0, (lam - n gamma) / (lam + eps)))."""
    return {"w": theory.fixed_point(lam, eps, gamma, n=n, depth=depth)}


@entry_point(switch=("depth",))
def learning_threshold(*, lam, eps=0.0, gamma=0.0, n=1, depth=2):
    """``theory.learning_threshold``: the smallest balanced start that is learned (0 at depth 2)."""
    return {"w": theory.learning_threshold(lam, eps, gamma, n=n, depth=depth)}


@entry_point(switch=("depth",))
@renamed(f="fraction")
def learning_time(*, fraction, lam, eps=0.0, gamma=0.0, w0, tau=1.0, n=1, depth=2):
    """``theory.learning_time``: time for a balanced start to reach ``fraction`` x the fixed point."""
    return {"time": theory.learning_time(fraction, lam, eps, gamma, w0=w0, tau=tau, n=n, depth=depth)}


# --- daedyn.dynamics: batched by broadcasting ----------------------------------------------------
# The dynamics layer batches by broadcasting (and may pick fused kernels for large batches), so
# these adapters take each axis as a (B,) array instead of being vmapped.

_GD_OUT = ("w1", "w2", "w", "weight_norm", "loss")


def _gd_epochs(c):
    return {"epoch": _save_epochs(c["epochs"], c.get("save_every", 1))}


@entry_point(batching="broadcast", static=("epochs", "save_every", "unroll", "check_stability", "backend"),
             dims={o: ("epoch",) for o in _GD_OUT}, coords=_gd_epochs)
def scalar_gd(*, lam, eps, w1, w2, alpha, epochs, gamma=0.0, n=1, save_every=1, **options):
    """``dynamics.scalar_gd``: exact gradient-descent recursion of one direction (epochs)."""
    traj = dynamics.scalar_gd(lam, eps, w1, w2, alpha=alpha, epochs=epochs, gamma=gamma, n=n,
                              save_every=save_every, observables=_GD_OUT, **options)  # all five, documented
    return {k: getattr(traj, k) for k in _GD_OUT}


_DEEP_OUT = ("w", "weight_norm", "loss")


@entry_point(batching="broadcast", static=("epochs", "save_every"), switch=("depth",),
             dims={o: ("epoch",) for o in _DEEP_OUT}, coords=_gd_epochs)
def deep_scalar_gd(*, lam, eps, w0, alpha, epochs, depth=2, gamma=0.0, n=1, save_every=1):
    """``dynamics.scalar_gd(depth=depth)`` from the balanced start with mapping ``w0`` (every one of
    the ``depth`` factors ``w0^(1/depth)``): the same outputs at every depth, so depth can be an axis."""
    check_range("w0", w0, 0.0)
    u = jnp.asarray(w0, float_dtype(w0)) ** (1.0 / depth)
    traj = dynamics.scalar_gd(lam, eps, u, u, alpha=alpha, epochs=epochs, gamma=gamma, n=n,
                              save_every=save_every, depth=depth, observables=_DEEP_OUT)
    return {k: getattr(traj, k) for k in _DEEP_OUT}


def _flow_dt(axes, constants):
    """RK4 step for the stiffest point of the grid: ``dynamics.default_dt`` at the extremes."""
    if "dt" in constants or constants.get("method", "rk4") != "rk4":
        return {}
    defaults = {"gamma": 0.0, "n": 1.0, "tau": 1.0}

    def extreme(name, fn):
        v = axes.get(name, constants.get(name, defaults.get(name)))
        return float(fn(np.abs(np.asarray(v, np.float64))))
    big = {k: extreme(k, np.max) for k in ("lam", "eps", "gamma", "n", "w1", "w2")}
    # the rate is increasing in every argument but tau: the stiffest point of the grid sets the step
    return {"dt": dynamics.default_dt(big["lam"], big["eps"], big["w1"], big["w2"], gamma=big["gamma"],
                                      n=big["n"], tau=extreme("tau", np.min))}


@entry_point(batching="broadcast",
             static=("ts", "method", "dt", "rtol", "atol", "max_steps", "unroll"),
             dims={o: ("t",) for o in _GD_OUT}, coords=lambda c: {"t": np.asarray(c["ts"])},
             defaults=_flow_dt)
def scalar_flow(*, ts, lam, eps, w1, w2, tau=1.0, gamma=0.0, n=1, **options):
    """``dynamics.scalar_flow``: the continuous flow at times ``ts`` (a constant time grid).

    Without ``dt`` (RK4), the step is the one ``dynamics.scalar_flow`` would choose for the
    stiffest point of the whole grid, so every chunk uses the same step.
    """
    traj = dynamics.scalar_flow(ts, lam, eps, w1, w2, tau=tau, gamma=gamma, n=n, **options)
    return {k: getattr(traj, k) for k in _GD_OUT}


@entry_point(batching="broadcast",
             static=("eigvals", "w1", "w2", "epochs", "save_every", "precision", "form", "unroll",
                     "check_stability"),
             dims={"mapping": ("epoch", "direction"), "singular_values": ("epoch", "component"),
                   "weight_norm": ("epoch",), "loss": ("epoch",)},
             coords=_gd_epochs)
def matrix_gd(*, eigvals, w1, w2, alpha, n, epochs, eps=0.0, gamma=0.0, save_every=1, **options):
    """``dynamics.matrix_gd``: full-matrix GD in the eigenbasis; sweep eps, gamma, alpha, n."""
    traj = dynamics.matrix_gd(eigvals, w1, w2, eps=eps, gamma=gamma, alpha=alpha, n=n, epochs=epochs,
                              save_every=save_every, **options)
    return {"mapping": traj.mapping, "singular_values": traj.singular_values,
            "weight_norm": traj.weight_norm, "loss": traj.loss}


# --- daedyn.train: one training run per grid point (vmapped) ------------------------------------

_TRAIN_STATIC = ("x", "x_heldout", "dataset", "n_train", "n_heldout", "hidden", "epochs", "save_every",
                 "activation", "noise", "marginalised", "path", "batch_size", "precision", "data",
                 "loss_scale", "optimizer", "observables", "remat", "bias")


def _train_data(axes, constants):
    """Load (``dataset`` + ``n_train``) or take (``x``) the data once, with its spectrum."""
    if "data" in constants:
        return {}
    if constants.get("x") is not None:
        x = np.asarray(constants["x"], np.float32)
        xh = constants.get("x_heldout")
        xh = None if xh is None else np.asarray(xh, np.float32)
    elif constants.get("dataset"):
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
    return {"epoch": _save_epochs(c["epochs"], c.get("save_every") or c["epochs"])}


@entry_point(static=_TRAIN_STATIC, dims=_train_dims, coords=_train_epochs, defaults=_train_data)
def train_run(*, alpha, hidden, epochs, gamma=0.0, s2=0.0, seed=0, init_scale=1e-4, save_every=None,
              data=None, x=None, x_heldout=None, dataset=None, n_train=None, n_heldout=None, **options):
    """``train.train``: train one linear/nonlinear autoencoder per grid point (``train_fn``).

    Sweep ``alpha``, ``gamma``, ``s2`` (noise variance), ``seed`` (initialisation and noise draws)
    and ``init_scale``; the data are a constant: ``dataset`` (a ``daedyn.data`` name) with
    ``n_train`` (and optional ``n_heldout``), or an array ``x``. Records every ``save_every``
    epochs: mapping, singular values, weight norm, train and held-out loss.
    """
    k_init, k_run = jr.split(jr.key(seed))
    d = data.eigvals.shape[0]
    p0 = models.init_autoencoder(d, int(hidden), key=k_init, init_scale=init_scale)
    run = train.train_fn(epochs=int(epochs), save_every=save_every, **options)
    # the sweep axis is the variance s2 (the user-facing edge); the loop takes eps = N s2
    _, records = run(p0, data, train.Hyper(alpha=alpha, gamma=gamma, eps=data.n * s2), k_run)
    return records


# ----------------------------------------------------------------------------------------------
# Entries whose axes are the pieces of schedules.
#
# Built-in sweep entry points whose axes are the piece values of schedules (private).
#
# A piecewise-constant schedule with K boundaries has K + 1 values; here each value is its own named
# parameter, ``eps_0, ..., eps_K`` (and ``gamma_i``, ``alpha_i``), so any of them can be a sweep axis
# (vmapped like every other axis) or a constant, with the boundaries a constant list. A name given no
# pieces falls back to the constant ``eps`` / ``gamma`` / ``alpha``. Registered in
# :data:`daedyn.sweep._builtins.ENTRY_POINTS` as ``"theory.scheduled_trajectory"`` and
# ``"dynamics.scheduled_gd"``.
#
# Piece values are traced inside the sweep, so they are not range-checked before the run: a negative
# piece gives NaN (the closed form's invalid marker) or a non-finite run, i.e. a bad point with its
# status, never an exception that loses the other points.

#: The schedulable parameters: the piece values of ``name`` are the keywords ``name_0 ... name_K``.
SCHEDULED_NAMES = ("eps", "gamma", "alpha")


def _piecewise(boundaries, pieces: dict, constants: dict) -> dict:
    """{name: schedule or constant} from the piece keywords; refuses unknown or incomplete pieces."""
    b = np.asarray(boundaries, np.float64).reshape(-1)
    k1 = b.size + 1
    wanted = {f"{name}_{i}" for name in SCHEDULED_NAMES for i in range(k1)}
    unknown = sorted(set(pieces) - wanted)
    if unknown:
        raise ValueError(f"unknown parameters {unknown}: with {b.size} boundaries the schedule pieces are "
                         f"named eps_0..eps_{k1 - 1} (also gamma_i, alpha_i)")
    out = {}
    for name in SCHEDULED_NAMES:
        keys = [f"{name}_{i}" for i in range(k1)]
        given = [k for k in keys if k in pieces]
        if not given:
            out[name] = constants[name]
            continue
        if len(given) != k1:
            missing = sorted(set(keys) - set(given))
            raise ValueError(f"a {name} schedule needs all {k1} pieces {name}_0..{name}_{k1 - 1}; missing "
                             f"{missing}")
        values = jnp.stack([jnp.asarray(pieces[k]) for k in keys])
        out[name] = schedules.PiecewiseConstant(jnp.asarray(b, values.dtype), values)
    return out


def _time_dims(outputs):
    def dims(c):
        return {o: ("t",) for o in outputs} if np.ndim(c.get("t", 0.0)) == 1 else {}

    def coords(c):
        return {"t": np.asarray(c["t"])} if np.ndim(c.get("t", 0.0)) == 1 else {}
    return dims, coords


_d, _c = _time_dims(("w",))


@entry_point(dims=_d, coords=_c)
def scheduled_trajectory(*, t, lam, boundaries, w0, tau=1.0, n=1, eps=0.0, gamma=0.0, **pieces):
    """``theory.small_init_trajectory`` under piecewise-constant eps / gamma / alpha schedules whose
    piece values ``eps_0..eps_K`` (``gamma_i``, ``alpha_i``) are sweep axes or constants; learning-rate
    pieces replace the constant ``tau`` by tau_i = n / alpha_i. Exact (chained closed form)."""
    s = _piecewise(boundaries, pieces, dict(eps=eps, gamma=gamma, alpha=None))
    a = s["alpha"]
    if a is not None:
        tau = schedules.PiecewiseConstant(a.boundaries, n / a.values)
    return {"w": theory.small_init_trajectory(t, lam, s["eps"], s["gamma"], w0=w0, tau=tau, n=n)}


_SCHEDULED_GD_OUT = ("w", "weight_norm", "loss")


def _gd_epochs(c):
    every = max(int(c.get("save_every", 1)), 1)
    return {"epoch": np.arange(int(c["epochs"]) // every + 1) * every}


@entry_point(static=("epochs", "save_every"), dims={o: ("epoch",) for o in _SCHEDULED_GD_OUT},
             coords=_gd_epochs)
def scheduled_gd(*, lam, w1, w2, boundaries, epochs, n=1, eps=0.0, gamma=0.0, alpha=None, save_every=1,
                 **pieces):
    """``dynamics.scalar_gd`` under piecewise-constant eps / gamma / alpha schedules whose piece
    values are sweep axes or constants (step k uses the values at epoch k); the learning rate is
    the constant ``alpha`` or the pieces ``alpha_0..alpha_K``."""
    s = _piecewise(boundaries, pieces, dict(eps=eps, gamma=gamma, alpha=alpha))
    if s["alpha"] is None:
        raise ValueError("dynamics.scheduled_gd needs the learning rate: a constant or axis 'alpha', or the "
                         "pieces alpha_0..alpha_K")
    traj = dynamics.scalar_gd(lam, s["eps"], w1, w2, alpha=s["alpha"], gamma=s["gamma"], n=n, epochs=epochs,
                              save_every=save_every, check_stability=False, observables=_SCHEDULED_GD_OUT)
    return {k: getattr(traj, k) for k in _SCHEDULED_GD_OUT}


# --- daedyn.diffusion: a denoiser trained across noise levels (noise-level parameters as axes) ---

_d, _c = _time_dims(("w", "variance"))


_LEVELS = {"p_mean": -1.2, "p_std": 1.2, "sigma_data": 0.5}  # diffusion_predict's defaults
_TABLE_LIMIT = 2**20  # (p_mean, p_std, sigma_data) combinations: a 16 MB float32 table at most


class _MomentsTable(NamedTuple):
    """``Objective.moments()`` of every (p_mean, p_std, sigma_data) of a grid: ``keys`` the sorted
    distinct values of each (one value when it is a constant), ``values`` the four moments, each
    flattened over the keys' grid (C order)."""

    keys: tuple
    values: tuple


def _diffusion_moments(axes, constants):
    """The derived constant ``moments_table`` when p_mean, p_std or sigma_data is an axis: the
    noise levels' quadrature (1024 nodes) once per distinct combination on the grid, in the sweep's
    dtype, instead of once per point (a point then looks up its four numbers)."""
    if not any(k in axes for k in _LEVELS):
        return {}
    dtype = float_dtype()  # the sweep's: the default float of its dtype scope, as the axes are cast
    keys = tuple(np.unique(np.asarray(axes[k] if k in axes else constants.get(k, d), np.float64)
                           .astype(dtype)) for k, d in _LEVELS.items())
    if math.prod(k.size for k in keys) > _TABLE_LIMIT:
        return {}  # more combinations than a table should hold: each point computes its own
    mesh = tuple(jnp.asarray(g.reshape(-1)) for g in np.meshgrid(*keys, indexing="ij"))
    values = _moments_of(mesh, constants.get("precond", "edm"))
    return {"moments_table": _MomentsTable(tuple(map(jnp.asarray, keys)), tuple(values.T))}


@functools.partial(jax.jit, static_argnames="precond")
def _moments_of(mesh, precond):
    """(P, 4) moments of the P (p_mean, p_std, sigma_data) in ``mesh``; compiled once per shape (a
    program made per sweep compiled again at every run: ~0.45 s of each 10^6-point sweep's start)."""
    def one(x):
        objective = diffusion.Objective(diffusion.LogNormal(x[0], x[1]), precond, x[2])
        return jnp.stack(objective.moments(x[0].dtype))
    return jax.lax.map(one, mesh, batch_size=256)


def _lookup(table, values):
    """The four moments of the point whose (p_mean, p_std, sigma_data) are ``values``, from ``table``
    (NaN, a bad point, for a value the table does not hold)."""
    if not isinstance(table, _MomentsTable):
        raise ValueError("moments_table is derived by the sweep from the axes p_mean, p_std and sigma_data; "
                         "it is not a parameter to give")
    flat, found = 0, True
    for k, x in zip(table.keys, values):
        if k.shape[0] == 1:  # a constant (or a one-value axis): nothing to look up
            continue
        # comparisons with every key (reductions, vectorised) rather than a binary search or a
        # gather of the key found: XLA:CPU fuses gathers into the closed form's loop, which then
        # runs without vector instructions (each gather removed here: ~2x the chunk's rate)
        flat = flat * k.shape[0] + jnp.sum(k < x)
        found = found & jnp.any(k == x)
    return tuple(jnp.where(found, v[flat], jnp.nan) for v in table.values)


@entry_point(dims=_d, coords=_c, static=("precond",), switch=("depth",), defaults=_diffusion_moments)
def diffusion_predict(*, t, lam, n, alpha, w0=1e-6, p_mean=-1.2, p_std=1.2, sigma_data=0.5, depth=2,
                      sigma_min=0.002, sigma_max=80.0, precond="edm", moments_table=None):
    """``diffusion.predict`` with EDM's log-normal noise levels: u(t) and the generated variance.

    With p_mean, p_std or sigma_data an axis, their quadrature is done once per distinct combination
    (the derived constant ``moments_table``, not a parameter to give) and each point looks its own up:
    the same numbers as a call per point (``moments=`` of ``diffusion.predict``)."""
    moments = None if moments_table is None else _lookup(moments_table, (p_mean, p_std, sigma_data))
    r = diffusion.predict(t, lam, n=n, alpha=alpha, w0=w0, sigma=diffusion.LogNormal(p_mean, p_std),
                          precond=precond, sigma_data=sigma_data, depth=depth, sigma_min=sigma_min,
                          sigma_max=sigma_max, moments=moments)
    return {"w": r.w, "variance": r.variance}


ENTRY_POINTS: Mapping[str, Callable] = MappingProxyType({
    "theory.dae_trajectory": dae_trajectory,
    "theory.dae_weights": dae_weights,
    "theory.small_init_trajectory": small_init_trajectory,
    "theory.fixed_point": fixed_point,
    "theory.learning_time": learning_time,
    "theory.learning_threshold": learning_threshold,
    "dynamics.scalar_gd": scalar_gd,
    "dynamics.deep_scalar_gd": deep_scalar_gd,
    "dynamics.scalar_flow": scalar_flow,
    "dynamics.matrix_gd": matrix_gd,
    "train.train": train_run,
    "theory.scheduled_trajectory": scheduled_trajectory,  # schedule pieces as axes (above)
    "dynamics.scheduled_gd": scheduled_gd,
    "diffusion.predict": diffusion_predict,
})


def accepted_names(fn: Callable) -> set[str]:
    """Every parameter name ``fn`` accepts by keyword: its signature and its declared static
    options (passed on through ``**options``)."""
    return parameters(fn)[0] | set(entry_info(fn).static)


def _check_ranged(entry_points: Mapping[str, Callable]) -> None:
    for name, fn in entry_points.items():
        missing = sorted(accepted_names(fn) - set(PARAMETER_RANGES) - NOT_RANGED)
        if missing:
            raise TypeError(f"entry point {name!r} accepts {missing}, which have no range in "
                            "PARAMETER_RANGES and are not listed in NOT_RANGED")


_check_ranged(ENTRY_POINTS)


def _allowed(module: str, allow_import) -> bool:
    """Whether ``module`` is one of ``allow_import`` or inside one of those packages."""
    return any(module == m or module.startswith(m + ".") for m in allow_import)


def check_allow_import(allow_import) -> tuple[str, ...]:
    """``allow_import`` as a tuple of module names (a string is one name); ``ValueError`` naming it
    for anything that is not a dotted Python module name."""
    if allow_import is None:
        return ()
    names = (allow_import,) if isinstance(allow_import, str) else tuple(allow_import)
    for m in names:
        if not isinstance(m, str) or not all(part.isidentifier() for part in m.split(".")):
            raise ValueError(f"allow_import must name Python modules ('pkg.module'); got {m!r}")
    return names


def resolve(function: str | Callable, allow_import=()) -> tuple[Callable, EntryInfo]:
    """The callable and its :class:`EntryInfo` for a built-in name, an allowed ``"module:function"``
    or a callable.

    A spec is data: its ``function`` string may name any of :data:`ENTRY_POINTS`, and a user's own
    ``"module:function"`` only when ``allow_import`` names that module (or a package above it), so
    that a spec file can never import or call anything its reader did not choose (``subprocess:run``).
    The check comes before the import: a module that is not allowed is not even imported.

    Raises:
      ValueError: a string that is neither a built-in name nor an allowed, importable
        ``"module:function"``.
    Example:
      >>> fn, info = resolve("dynamics.scalar_gd")
      >>> info.batching, "epochs" in info.static
      ('broadcast', True)
      >>> resolve("numpy:add", allow_import=["numpy"])[0].__name__
      'add'
    """
    fn: Any = function
    if isinstance(function, str):
        fn = ENTRY_POINTS.get(function)
        if fn is None:
            if ":" not in function:
                raise ValueError(f"function {function!r} is not a built-in entry point "
                                 f"({', '.join(ENTRY_POINTS)}) nor 'module:function'")
            module = function.partition(":")[0]
            if not _allowed(module, check_allow_import(allow_import)):
                raise ValueError(
                    f"function {function!r} is not one of daedyn's entry points, and a spec runs a "
                    f"function of your own only when you allow its module: daedyn sweep SPEC "
                    f"--allow-import {module} (Python: allow_import=[{module!r}]), only for a module you "
                    f"trust; nothing was imported")
            fn = import_function(function)
    return fn, entry_info(fn)
