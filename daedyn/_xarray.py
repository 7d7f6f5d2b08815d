"""Results as labelled ``xarray.Dataset`` objects, with the dimension names of :mod:`daedyn.sweep`.

Every result type (``ScalarTrajectory``, ``MatrixTrajectory``, ``TrainResult``, ``TuneResult``,
``NoiseTuning``, ``ScheduleTuning``, ``CorruptionTuning``, ``TheoryComparison``,
``CrossCheck``) has a ``.to_xarray()`` method built on :func:`dataset`; :func:`scalar_trajectory`
and :func:`matrix_trajectory` convert any trajectory by its fields (at any depth), and
:func:`factor_fields` names the dimensions of the L weight matrices of a depth-L network
(:func:`factor_dims`). Dimension names are the sweeps' (docs/sweep.md): ``epoch`` (save times, in
epochs; pass ``time_dim="t"`` to match the continuous-flow sweeps), ``direction``
(eigen-directions, descending lam), ``component`` (singular values), ``step`` (tuning
iterations), and, for the leading batch axes, the names the caller gives
(``batch_dims=("eps",)``, ``("seed",)``, ``("gamma", "eps")``...) with optional coordinate values
(``coords={"eps": [0.0, 1.0]}``); unnamed batch axes are ``batch``, ``batch_1``, ... xarray
(the ``sweep`` extra) is imported only here, when asked for.

:func:`write` saves a dataset as netCDF (``.nc``) or zarr (``.zarr``), chosen by the extension,
through a temporary name and a rename (no partial file).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["dataset", "figure_dataset", "factor_dims", "factor_fields", "scalar_trajectory",
           "matrix_trajectory", "write", "FORMATS", "MARK", "is_result_store"]

#: The file formats :func:`write` knows, by extension.
FORMATS = {".nc": "netCDF", ".zarr": "zarr"}

# 1-D entries of a figure's numbers that label an axis: key -> dimension name (the sweeps' names).
_FIGURE_COORDS = {"t": "t", "epochs": "epoch", "epoch": "epoch", "eps": "eps", "gamma": "gamma",
                  "lam": "lam", "s2": "s2", "sigma2": "sigma2", "eigvals": "direction"}


def _batch_names(n: int, batch_dims: Sequence[str] | None) -> tuple[str, ...]:
    given = tuple(batch_dims or ())
    if len(given) > n:
        raise ValueError(f"batch_dims names {len(given)} axes {given}; the result has {n} batch axes")
    default = [f"batch_{i}" if i else "batch" for i in range(n - len(given))]
    return tuple(default) + given  # names given apply to the innermost batch axes


def dataset(fields: Mapping[str, tuple[Any, tuple[str, ...]]], *, time: tuple[str, Any] | None = None,
            batch_dims: Sequence[str] | None = None, coords: Mapping[str, Any] | None = None,
            attrs: Mapping[str, Any] | None = None, what: str = "to_xarray"):
    """An ``xarray.Dataset`` from ``{name: (array, trailing dims)}``; leading axes are batch axes.

    Args:
      fields: each array's trailing dimensions are named by its tuple; any leading axes are batch
        axes, shared by all fields (None arrays are left out).
      time: (name, values) of the time coordinate, e.g. ``("epoch", r.t)``.
      batch_dims: names of the batch axes (innermost last); coords: values along named dimensions.
      attrs: metadata (numbers and strings) kept in ``Dataset.attrs``.
      what: the caller's name for the error message when xarray is missing.
    Raises:
      ImportError: xarray is not installed (one line naming the ``sweep`` extra).
      ValueError: more ``batch_dims`` than batch axes, or fields with different batch shapes.
    Example:
      >>> ds = dataset({"w": (np.zeros((2, 3)), ("epoch",))}, time=("epoch", [0, 10, 20]),
      ...              batch_dims=("eps",), coords={"eps": [0.0, 1.0]})
      >>> dict(ds.sizes), ds.w.dims
      ({'eps': 2, 'epoch': 3}, ('eps', 'epoch'))
    """
    from daedyn._extras import require

    xr = require("xarray", what=what)
    arrays = {k: (np.asarray(a), d) for k, (a, d) in fields.items() if a is not None}
    shapes = {k: a.shape[:a.ndim - len(d)] for k, (a, d) in arrays.items()}
    batch = max(shapes.values(), key=len, default=())
    names = _batch_names(len(batch), batch_dims)
    data_vars = {}
    for k, (a, d) in arrays.items():
        lead = shapes[k]
        if lead != batch[len(batch) - len(lead):]:
            raise ValueError(f"{k} has batch shape {lead}; the others {batch}")
        data_vars[k] = (names[len(names) - len(lead):] + tuple(d), a)
    all_coords = {}
    if time is not None:
        all_coords[time[0]] = np.asarray(time[1])
    for k, v in (coords or {}).items():  # values, or (dimension, values) for a coordinate along another
        all_coords[k] = (v[0], np.asarray(v[1])) if isinstance(v, tuple) else np.asarray(v)
    ds = xr.Dataset(data_vars, coords=all_coords, attrs=dict(attrs or {}))
    return label_dims(ds)


#: 1-D variables along ``direction`` that label it: coordinates, not data (``ds.sel(lam=...)``).
_DIRECTION_LABELS = ("lam", "eigvals")


def label_dims(ds):
    """``ds`` with a coordinate on every dimension: the eigenvalue ``lam`` (or ``eigvals``) along
    ``direction`` becomes a coordinate, and any dimension still without one gets its index
    0 .. n-1 (``direction``, ``component``, ``hidden``, ``step``, ``seed``, ...).

    Example:
      >>> import xarray as xr
      >>> ds = label_dims(xr.Dataset({"w": (("direction",), np.zeros(2)), "lam": (("direction",), [2., 1.])}))
      >>> list(ds.coords), ds.direction.values.tolist(), ds.lam.values.tolist()
      (['lam', 'direction'], [0, 1], [2.0, 1.0])
    """
    labels = [k for k in _DIRECTION_LABELS if k in ds.data_vars and "direction" in ds[k].dims]
    if labels:
        ds = ds.set_coords(labels)
    missing = {d: np.arange(n) for d, n in ds.sizes.items() if d not in ds.coords}
    return ds.assign_coords(missing) if missing else ds


def figure_dataset(numbers: Mapping[str, Any], name: str = "figure"):
    """A figure's numbers (:class:`daedyn.figures.FigureResult`) as an ``xarray.Dataset``.

    Arrays become variables; an axis is named after the one 1-D coordinate entry of the same length
    (``t``, ``epochs`` -> ``epoch``, ``eps``, ``gamma``, ``lam``, ``eigvals`` -> ``direction``; a
    scalar ``runs`` of that length -> ``run``), else ``<variable>_dim_<i>`` (two coordinates of one
    length are ambiguous and left unnamed). Scalars and strings become attributes, dicts and lists
    JSON attributes. ``eigvals`` stays a variable (along ``direction``).

    Example:
      >>> ds = figure_dataset({"eps": np.array([0.0, 1.0]), "t": np.arange(3.0), "runs": 4,
      ...                      "w": np.zeros((2, 4, 3)), "note": "x"})
      >>> ds.w.dims, ds.attrs["runs"], ds.attrs["note"]
      (('eps', 'run', 't'), 4, 'x')
    """
    import json

    is_array = lambda v: hasattr(v, "__array__") and not isinstance(v, (str, bytes)) and np.ndim(v) > 0
    arrays = {k: np.asarray(v) for k, v in numbers.items() if is_array(v)}
    coords = {k: a for k, a in arrays.items() if k in _FIGURE_COORDS and a.ndim == 1}
    by_length: dict[int, list[str]] = {}
    for k, a in coords.items():
        by_length.setdefault(a.shape[0], []).append(_FIGURE_COORDS[k])
    runs = numbers.get("runs")
    fields, index = {}, {}
    for k, a in arrays.items():
        if k in coords and _FIGURE_COORDS[k] != "direction":
            index[_FIGURE_COORDS[k]] = a
            continue
        dims: list[str] = []
        for i, n in enumerate(a.shape):
            names = [d for d in by_length.get(n, []) if d not in dims]
            if len(names) == 1:
                dims.append(names[0])
            elif isinstance(runs, int) and n == runs and "run" not in dims:
                dims.append("run")
            else:
                dims.append(f"{k}_dim_{i}")
        fields[k] = (a, tuple(dims))
    attrs = {"figure": name}
    for k, v in numbers.items():
        if k in arrays:
            continue
        v = v.item() if isinstance(v, np.generic) or (hasattr(v, "__array__") and np.ndim(v) == 0) else v
        attrs[k] = v if isinstance(v, (str, int, float, bool)) else json.dumps(v, default=str)
    return dataset(fields, coords=index, attrs=attrs, what="FigureResult.to_xarray")


def factor_dims(depth: int) -> list[tuple[str, str]]:
    """The (rows, columns) dimension names of the ``depth`` weight matrices W_1 .. W_L of a
    D -> H_1 -> ... -> H_{L-1} -> D network, first factor first.

    Depth 2 keeps the names of the paper's network, ``w1`` (``hidden``, ``input``) and ``w2``
    (``input``, ``hidden``); deeper networks give every hidden layer its own name, so that factors of
    different shapes never share a dimension: ``w1`` (``hidden_1``, ``input``), ``w_l``
    (``hidden_l``, ``hidden_{l-1}``), ``wL`` (``input``, ``hidden_{L-1}``).

    Example:
      >>> factor_dims(2)
      [('hidden', 'input'), ('input', 'hidden')]
      >>> factor_dims(3)
      [('hidden_1', 'input'), ('hidden_2', 'hidden_1'), ('input', 'hidden_2')]
    """
    depth = int(depth)
    if depth < 2:
        raise ValueError(f"depth must be an integer >= 2; got {depth}")
    layers = ["input"] + (["hidden"] if depth == 2 else [f"hidden_{l}" for l in range(1, depth)]) + ["input"]
    return [(layers[l + 1], layers[l]) for l in range(depth)]


def factor_fields(factors: Sequence[Any] | Mapping[str, Any], prefix: str = "w") -> dict:
    """``{"w1": (W_1, dims), ..., "wL": (W_L, dims)}`` for :func:`dataset`, with the names of
    :func:`factor_dims`. ``factors``: the L matrices in order (a list, or a parameter dict whose
    ``w1`` .. ``wL`` entries are taken; biases and other entries are left out)."""
    if isinstance(factors, Mapping):
        depth = sum(1 for k in factors if k.startswith("w") and k[1:].isdigit())
        factors = [factors[f"w{l}"] for l in range(1, depth + 1)]
    factors = list(factors)
    return {f"{prefix}{l + 1}": (w, d) for l, (w, d) in enumerate(zip(factors, factor_dims(len(factors)),
                                                                      strict=True))}


def _fields_of(result) -> dict:
    """The fields of a result (a NamedTuple or a dataclass) by name, in order."""
    if hasattr(result, "_asdict"):
        return dict(result._asdict())
    import dataclasses

    if dataclasses.is_dataclass(result):
        return {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    raise TypeError(f"cannot convert a {type(result).__name__} by its fields (not a NamedTuple or dataclass)")


def _saved(value) -> bool:
    """An array that was computed: not None, and not a placeholder of a field that was not saved
    (``daedyn.dynamics.NotSaved`` has no ``shape``)."""
    return value is not None and hasattr(value, "shape")


def scalar_trajectory(traj, *, batch_shape: Sequence[int] | None = None, batch_dims=None, coords=None,
                      time_dim: str = "epoch", attrs=None, what: str = "scalar_trajectory"):
    """Any per-direction trajectory as an ``xarray.Dataset``, by its fields (whatever its class).

    ``t`` is the time coordinate; every other saved field of shape (*batch, T) (``w1``, ``w2``,
    ``w``, ``weight_norm``, ``loss``, ...) is a variable over (*batch, ``time_dim``); a
    ``factors`` field (*batch, L, T) (the L factor values of a depth-L run) is one over
    (*batch, ``factor``, ``time_dim``) with ``factor`` = 1 .. L. Fields that were not saved are left
    out.

    Args:
      traj: a trajectory (``ScalarTrajectory`` at any depth, or any NamedTuple with ``t``).
      batch_shape: reshape the one flat batch axis into these axes first (e.g. the grid of a CLI
        run); default: keep the batch axes as they are.
      batch_dims, coords, time_dim, attrs, what: as :func:`dataset`.
    """
    fields = _fields_of(traj)
    t = np.asarray(fields.pop("t"))
    out = {}
    for name, value in fields.items():
        if not _saved(value):
            continue
        a = np.asarray(value)
        trailing = ("factor", time_dim) if name == "factors" else (time_dim,)
        if batch_shape is not None:
            a = a.reshape(tuple(batch_shape) + a.shape[a.ndim - len(trailing):])
        out[name] = (a, trailing)
    all_coords = dict(coords or {})
    if "factors" in out:
        all_coords["factor"] = np.arange(1, out["factors"][0].shape[-2] + 1)
    return dataset(out, time=(time_dim, t), batch_dims=batch_dims, coords=all_coords, attrs=attrs, what=what)


def matrix_trajectory(traj, *, eigvals=None, batch_dims=None, coords=None, time_dim: str = "epoch",
                      attrs=None, what: str = "matrix_trajectory"):
    """Any full-matrix trajectory as an ``xarray.Dataset``, by its fields, at any depth.

    ``mapping`` over (``time_dim``, ``direction``), ``singular_values`` over (``time_dim``,
    ``component``), ``weight_norm`` and ``loss`` over ``time_dim``, and the final weight matrices:
    ``w1``, ``w2`` of a two-factor run or the ``ws`` tuple of a depth-L one, named by
    :func:`factor_fields`. ``eigvals`` (D,), when given, is the coordinate ``lam`` along
    ``direction``.
    """
    fields = _fields_of(traj)
    t = np.asarray(fields.pop("t"))
    dims = {"mapping": (time_dim, "direction"), "singular_values": (time_dim, "component"),
            "weight_norm": (time_dim,), "loss": (time_dim,)}
    out = {k: (fields[k], d) for k, d in dims.items() if _saved(fields.get(k))}
    if fields.get("ws") is not None:
        out.update(factor_fields(list(fields["ws"])))
    elif _saved(fields.get("w1")) and _saved(fields.get("w2")):
        out.update(factor_fields([fields["w1"], fields["w2"]]))
    all_coords = dict(coords or {})
    if eigvals is not None:
        all_coords["direction"] = np.arange(np.shape(eigvals)[-1])
        all_coords["lam"] = ("direction", np.asarray(eigvals))
    return dataset(out, time=(time_dim, t), batch_dims=batch_dims, coords=all_coords, attrs=attrs, what=what)


def _portable_attrs(attrs: Mapping[str, Any]) -> dict:
    """Attributes every format stores: numbers and strings as they are, booleans as 0 / 1, None as
    the string "none", NumPy scalars as Python ones, anything else (dicts, lists) as JSON."""
    import json

    out = {}
    for k, v in attrs.items():
        if isinstance(v, np.generic) or (isinstance(v, np.ndarray) and v.ndim == 0):
            v = v.item()
        if isinstance(v, bool):
            v = int(v)
        elif v is None:
            v = "none"
        elif not isinstance(v, (str, int, float)):
            v = json.dumps(v, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
        out[k] = v
    return out


#: The attribute :func:`write` puts on every dataset it writes: a ``.zarr`` folder is overwritten
#: (atomically, by a rename) only when it carries it, never a user's folder or a sweep store.
MARK = "daedyn_result"


def is_result_store(path: str | os.PathLike) -> bool:
    """Whether the folder ``path`` is a zarr store written by :func:`write` (its root attributes,
    zarr v3 ``zarr.json`` or v2 ``.zattrs``, hold :data:`MARK`). Reads at most 1 MiB."""
    import json

    path = os.fspath(path)
    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        meta = os.path.join(path, name)
        if not os.path.isfile(meta):
            continue
        try:
            with open(meta, "rb") as f:
                data = json.loads(f.read(2**20))
        except (OSError, ValueError, RecursionError):
            return False
        attrs = data.get(key, {}) if key and isinstance(data, dict) else data
        return isinstance(attrs, dict) and MARK in attrs
    return False


def write(ds, path: str | os.PathLike) -> str:
    """Save ``ds`` as netCDF (``.nc``; netCDF4 / h5netcdf / scipy, whichever is installed) or zarr
    (``.zarr``); returns the path. Other extensions are refused with a ``ValueError``.

    The file (or the zarr folder) is written under a temporary name in the same folder and renamed
    into place when complete: a failed write leaves no partial result and an earlier file at
    ``path`` as it was. Attributes that netCDF cannot hold (booleans, None, dicts) are stored as
    numbers or JSON text (:func:`_portable_attrs`), for the variables as for the dataset.
    """
    import shutil

    path = os.fspath(path)
    target = path.rstrip("/") or path
    ext = os.path.splitext(target)[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"cannot write a dataset to {path!r}: use a .nc (netCDF) or .zarr path")
    ds = ds.copy()
    ds.attrs = _portable_attrs({**ds.attrs, MARK: 1})
    for name in ds.variables:
        ds[name].attrs = _portable_attrs(ds[name].attrs)
    if ext == ".nc":  # one file: the atomic-write helper of every daedyn output
        from daedyn._checkpoint import atomic_write

        with atomic_write(target, "netCDF results") as tmp:
            ds.to_netcdf(tmp)
        return path
    tmp = f"{target}.tmp-{os.getpid()}"  # a zarr store is a folder: written whole, then renamed
    try:
        from daedyn._extras import require

        require("zarr", what="writing a .zarr result")
        with warnings.catch_warnings():  # zarr notes that v3 consolidation is not in the spec yet
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata", category=UserWarning)
            ds.to_zarr(tmp, mode="w")
        if os.path.isdir(target):  # an earlier store: replaced only once the new one is complete
            if not is_result_store(target):
                raise ValueError(f"{path!r} is a folder that daedyn did not write as a result store; it "
                                 "is not overwritten (choose another path)")
            old = f"{target}.old-{os.getpid()}"
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
