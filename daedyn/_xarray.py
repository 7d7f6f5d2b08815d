"""Results as labelled ``xarray.Dataset`` objects, with the dimension names of :mod:`daedyn.sweep`.

Every result type (``ScalarTrajectory``, ``MatrixTrajectory``, ``TrainResult``, ``TuneResult``,
``NoiseTuning``) has a ``.to_xarray()`` method built on :func:`dataset`. Dimension names are the
sweeps' (docs/sweep.md): ``epoch`` (save times, in epochs; pass ``time_dim="t"`` to match the
continuous-flow sweeps), ``direction`` (eigen-directions, descending lam), ``component``
(singular values), ``step`` (tuning iterations), and, for the leading batch axes, the names the
caller gives (``batch_dims=("eps",)``, ``("seed",)``, ``("gamma", "eps")``...) with optional
coordinate values (``coords={"eps": [0.0, 1.0]}``); unnamed batch axes are ``batch``,
``batch_1``, ... xarray (the ``sweep`` extra) is imported only here, when asked for.

:func:`write` saves a dataset as netCDF (``.nc``) or zarr (``.zarr``), chosen by the extension.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["dataset", "figure_dataset", "write"]

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
    for k, v in (coords or {}).items():
        all_coords[k] = np.asarray(v)
    return xr.Dataset(data_vars, coords=all_coords, attrs=dict(attrs or {}))


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


def write(ds, path: str | os.PathLike) -> str:
    """Save ``ds`` as netCDF (``.nc``; netCDF4 / h5netcdf / scipy, whichever is installed) or zarr
    (``.zarr``); returns the path. Other extensions are refused with a ``ValueError``."""
    path = os.fspath(path)
    ext = os.path.splitext(path.rstrip("/"))[1].lower()
    if ext == ".nc":
        ds.to_netcdf(path)
    elif ext == ".zarr":
        from daedyn._extras import require

        require("zarr", what="writing a .zarr result")
        with warnings.catch_warnings():  # zarr notes that v3 consolidation is not in the spec yet
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata", category=UserWarning)
            ds.to_zarr(path, mode="w")
    else:
        raise ValueError(f"cannot write a dataset to {path!r}: use a .nc (netCDF) or .zarr path")
    return path
