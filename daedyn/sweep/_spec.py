"""Declarative sweep specifications: named axes, the function to run, what to save.

A spec is plain data (a dict, a TOML/JSON/YAML file or a :class:`SweepSpec`). Everything that
decides the *results* (function, axes, constants, outputs, dims, coords, batching, dtype,
bad-point policy) enters the spec hash; execution settings (memory limit, chunk size, path) do
not, so a sweep can be resumed with another memory limit or on another number of devices.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

import jax
import numpy as np

from daedyn._checks import check_range
from daedyn.sweep._tables import read_table, short_text

__all__ = ["SweepSpec", "load_spec", "as_spec", "parse_memory", "axis_values", "function_name",
           "function_fingerprint", "dtype_scope", "ParameterRange", "PARAMETER_RANGES", "NOT_RANGED",
           "NOISE_VARIANCES", "read_table", "check_parameters"]

_INF = math.inf


class ParameterRange(NamedTuple):
    """Allowed values of a parameter: ``lo`` to ``hi``, open where ``lo_open`` / ``hi_open``.

    ``integer`` marks counts (epochs, seeds, sizes): an integer-valued axis of that name is fed
    to the function as integers; every other name in :data:`PARAMETER_RANGES` is fed as floats.
    """

    lo: float
    hi: float = _INF
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False


# Names of noise variances accepted in specs; they share eps's range (eps = N s^2).
NOISE_VARIANCES = ("s2", "sigma2", "var")

_NONNEGATIVE = ParameterRange(0.0)
_POSITIVE = ParameterRange(0.0, lo_open=True)
_FINITE = ParameterRange(-_INF, _INF, lo_open=True, hi_open=True)
_COUNT = ParameterRange(0.0, integer=True)
_POSITIVE_COUNT = ParameterRange(1.0, integer=True)

# The one range table of the sweep: every parameter name a built-in entry point accepts, checked
# on every axis and constant of that name (whatever the function) before any compute. Names of
# data, choices and flags (``x``, ``method``, ``activation``...) are listed in NOT_RANGED.
PARAMETER_RANGES: Mapping[str, ParameterRange] = MappingProxyType({
    # paper symbols
    **dict.fromkeys(("lam", "eps", "gamma", "t", "ts", "eigvals"), _NONNEGATIVE),
    **dict.fromkeys(("alpha", "tau", "n", "w0"), _POSITIVE),
    **dict.fromkeys(("w1", "w2"), _FINITE),
    **dict.fromkeys(("fraction", "f"), ParameterRange(0.0, 1.0, lo_open=True, hi_open=True)),  # f: old name
    **dict.fromkeys(NOISE_VARIANCES, _NONNEGATIVE),
    # steps and saves
    **dict.fromkeys(("epochs", "n_heldout"), _COUNT),
    **dict.fromkeys(("save_every", "hidden", "n_train", "batch_size", "max_steps",
                     "unroll"), _POSITIVE_COUNT),
    "depth": ParameterRange(2.0, integer=True),
    "seed": ParameterRange(-_INF, _INF, lo_open=True, hi_open=True, integer=True),
    # integrator and initialisation settings
    "dt": _POSITIVE,
    "boundaries": _POSITIVE,  # schedule boundaries (epochs); their piece values eps_i etc. are traced
    **dict.fromkeys(("rtol", "atol", "init_scale"), _NONNEGATIVE),
    # diffusion noise levels (daedyn.diffusion): ln s ~ N(p_mean, p_std^2), the generation's range
    "p_mean": _FINITE,
    "p_std": ParameterRange(0.0, 5.0, lo_open=True),
    **dict.fromkeys(("sigma_data", "sigma_min", "sigma_max"), _POSITIVE),
})

# Parameter names of built-in entry points that are not numbers with a range: data arrays,
# choices, flags and objects. Together with PARAMETER_RANGES they cover every accepted name.
NOT_RANGED = frozenset({
    "x", "x_heldout", "data", "dataset", "method", "backend", "form", "precision", "activation",
    "noise", "marginalised", "check_stability", "outputs", "path", "loss_scale", "optimizer",
    "observables", "remat", "bias", "precond", "moments_table",
})

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}

_SPACINGS = ("linspace", "logspace", "geomspace", "arange")


def parse_memory(value: int | float | str) -> int:
    """Bytes from ``2GB`` (10^9), ``512MiB`` (2^20), ``1e8`` or an int.

    Example:
      >>> parse_memory("2GB"), parse_memory("1.5 MiB"), parse_memory(4096)
      (2000000000, 1572864, 4096)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        num, unit = float(value), ""
    else:
        m = re.fullmatch(r"\s*([0-9.]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
        if not m or m.group(2).lower() not in _UNITS:
            raise ValueError(f"max_memory must look like '2GB', '512MiB' or a byte count; got {value!r}")
        num, unit = float(m.group(1)), m.group(2).lower()
    out = int(num * _UNITS[unit])
    if out <= 0:
        raise ValueError(f"max_memory must be positive; got {value!r}")
    return out


def axis_values(name: str, value: Any) -> np.ndarray:
    """Concrete values of one axis: a list, ``{linspace|logspace|geomspace|arange: [a, b, num]}``.

    ``linspace``/``logspace``/``arange`` follow NumPy (``logspace`` takes base-10 exponents);
    ``geomspace`` takes the end points. Integer lists stay integer (e.g. seeds).

    Example:
      >>> axis_values("eps", {"logspace": [-1, 1, 3]}).tolist()
      [0.1, 1.0, 10.0]
    """
    if isinstance(value, Mapping):
        if len(value) != 1 or next(iter(value)) not in _SPACINGS:
            raise ValueError(f"axis {name!r}: a table must have exactly one key out of {_SPACINGS}; "
                             f"got {sorted(value)}")
        kind, args = next(iter(value.items()))
        if not isinstance(args, Sequence) or isinstance(args, str):
            raise ValueError(f"axis {name!r}: {kind} takes a list [start, stop, num]; got {args!r}")
        if kind == "arange":
            arr = np.arange(*[float(a) for a in args])
        else:
            if len(args) != 3:
                raise ValueError(f"axis {name!r}: {kind} takes [start, stop, num]; got {args!r}")
            a, b, num = args
            if int(num) != num or num < 0:
                raise ValueError(f"axis {name!r}: num must be a non-negative integer; got {num!r}")
            if kind == "geomspace" and (float(a) <= 0 or float(b) <= 0):
                raise ValueError(f"axis {name!r}: geomspace end points must be > 0; got {a!r}, {b!r}")
            arr = getattr(np, kind)(float(a), float(b), int(num))
    else:
        arr = np.asarray(value)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"axis {name!r} must hold numbers; got dtype {arr.dtype}")
    if arr.ndim > 1:
        raise ValueError(f"axis {name!r} must be one-dimensional; got shape {arr.shape}")
    arr = arr.reshape(-1)
    if arr.size == 0:
        raise ValueError(f"axis {name!r} is empty: a sweep axis needs at least one value")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"axis {name!r} contains non-finite values (NaN or inf)")
    if np.unique(arr).size != arr.size:
        raise ValueError(f"axis {name!r} has repeated values; coordinates must be unique")
    return arr


def _constant_value(name: str, value: Any) -> Any:
    """Constants: scalars, strings and booleans stay Python values; lists/spacings become arrays."""
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return axis_values(name, value)
    if isinstance(value, (int, float)):
        return value
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"constant {name!r} must be numeric, a string or a boolean; got {value!r}")
    return arr


def _check_parameter(name: str, value: Any, where: str) -> None:
    piece = re.fullmatch(r"(eps|gamma|alpha)_[0-9]+", name)  # a schedule piece: its parameter's range
    ranged = piece.group(1) if piece else name
    if ranged in PARAMETER_RANGES and not isinstance(value, (str, bool)) and value is not None:
        r = PARAMETER_RANGES[ranged]
        try:
            check_range(name, value, r.lo, r.hi, lo_open=r.lo_open, hi_open=r.hi_open)
        except ValueError as err:
            raise ValueError(f"{where} {name!r}: {err}") from None


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def function_name(function: str | Callable) -> str:
    """The identity of a spec's function: its entry-point string or ``module:qualname``."""
    if isinstance(function, str):
        return function
    mod = getattr(function, "__module__", None) or "?"
    return f"{mod}:{getattr(function, '__qualname__', repr(function))}"


def _code_digest(code, h) -> None:
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars)).encode())
    for c in code.co_consts:
        if hasattr(c, "co_code"):
            _code_digest(c, h)
        else:
            h.update(repr(c).encode())


def function_fingerprint(function: str | Callable) -> str | None:
    """SHA-256 of a callable's bytecode, names and constants (None for names given as strings).

    Part of the spec hash when the spec holds a callable, so that editing a function (a lambda
    in a notebook) and rerunning at the same path is refused instead of resuming stale results.
    """
    code = getattr(function, "__code__", None)
    if isinstance(function, str) or code is None:
        return None
    h = hashlib.sha256()
    _code_digest(code, h)
    return h.hexdigest()


_RESERVED_NAMES = ("status", "_sweep")


def _check_name(name: str, what: str) -> None:
    if not name.isidentifier() or name in _RESERVED_NAMES:
        raise ValueError(f"{what} name {name!r} must be a Python identifier other than {_RESERVED_NAMES}")


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A declarative sweep: the grid, the function and what to keep.

    Args:
      function: built-in entry-point name (``"theory.dae_trajectory"``, see
        ``daedyn.sweep.ENTRY_POINTS``), a user's ``"module:function"`` or a callable.
      axes: name -> values (list, ``{linspace = [a, b, num]}``, ``logspace`` (exponents),
        ``geomspace`` (end points), ``arange``). A scalar here becomes a constant. The grid is
        the outer product, in the order given; each name is a keyword of ``function``.
      constants: fixed keyword arguments (scalars, strings, arrays such as a time grid).
      outputs: names of the outputs to save (default: all).
      dims: output -> names of its trailing (non-grid) dimensions, e.g. ``{"w": ["t"]}``.
      coords: extra dimension -> coordinate values.
      batching: ``"vmap"`` (``function`` is written for one grid point; default) or
        ``"broadcast"`` (it takes each axis as a (B,) array and returns leading-B outputs).
      dtype: ``"float32"`` (default) or ``"float64"`` (runs under ``jax.enable_x64``).
      bad_points: ``"nan"`` sets every output of a point with a non-finite value to NaN
        (status 1); ``"keep"`` keeps the values and only marks the status.
      max_memory: bound on the results held in memory at once (``"512MB"``, bytes).
      chunk_size: grid points per chunk; default: as many as ``max_memory`` allows.
      path: output store (a ``.zarr`` directory).
    Raises:
      ValueError: empty/non-finite/repeated axis values, an axis also given as a constant, a
        parameter out of the range :data:`PARAMETER_RANGES` gives its name (``eps < 0``,
        ``s2 < 0``, ``alpha <= 0``...), unknown options.
    Example:
      >>> SweepSpec("theory.fixed_point", {"lam": [1.0, 2.0], "eps": [0.0, 1.0, 2.0]}).grid_shape
      (2, 3)
      >>> SweepSpec("train.train", {"s2": [-0.1, 0.1]})
      Traceback (most recent call last):
      ...
      ValueError: axis 's2': s2 must lie in [0, inf); got 1 of 2 values outside, e.g. -0.1
    """

    function: str | Callable
    axes: Mapping[str, Any]
    constants: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    outputs: Sequence[str] | None = None
    dims: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)
    coords: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    batching: str = "vmap"
    dtype: str = "float32"
    bad_points: str = "nan"
    max_memory: int | str = "512MB"
    chunk_size: int | None = None
    path: str | None = None

    def __post_init__(self):
        if not isinstance(self.function, str) and not callable(self.function):
            raise ValueError(f"function must be an entry-point name or a callable; got {self.function!r}")
        if not isinstance(self.axes, Mapping) or not self.axes:
            raise ValueError("axes must be a non-empty table of name -> values")
        axes, constants = {}, {}
        for name, value in dict(self.constants).items():
            _check_name(str(name), "constant")
            constants[str(name)] = _constant_value(name, value)
        for name, value in self.axes.items():
            name = str(name)
            _check_name(name, "axis")
            if name in constants:
                raise ValueError(f"{name!r} is given both as an axis and as a constant")
            if isinstance(value, (int, float, str, bool)):  # a scalar axis is a constant
                constants[name] = _constant_value(name, value)
                continue
            axes[name] = axis_values(name, value)
        if not axes:
            raise ValueError("axes: every axis is a scalar; a sweep needs at least one axis with values")
        for name, arr in axes.items():
            _check_parameter(name, arr, "axis")
        for name, value in constants.items():
            _check_parameter(name, value, "constant")
        if self.batching not in ("vmap", "broadcast"):
            raise ValueError(f"batching must be 'vmap' or 'broadcast'; got {self.batching!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {self.dtype!r}")
        if self.bad_points not in ("nan", "keep"):
            raise ValueError(f"bad_points must be 'nan' or 'keep'; got {self.bad_points!r}")
        if self.chunk_size is not None and (int(self.chunk_size) != self.chunk_size or self.chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer; got {self.chunk_size!r}")
        parse_memory(self.max_memory)
        outputs = None if self.outputs is None else tuple(str(o) for o in self.outputs)
        if outputs is not None and (not outputs or len(set(outputs)) != len(outputs)):
            raise ValueError(f"outputs must be a non-empty list of distinct names; got {self.outputs!r}")
        dims = {str(k): tuple(str(d) for d in v) for k, v in dict(self.dims).items()}
        coords = {str(k): axis_values(f"coords.{k}", v) if isinstance(v, Mapping) else np.asarray(v)
                  for k, v in dict(self.coords).items()}
        for k, v in coords.items():
            if v.ndim != 1:
                raise ValueError(f"coords {k!r} must be one-dimensional; got shape {v.shape}")
        set_ = lambda k, v: object.__setattr__(self, k, v)
        set_("axes", axes)
        set_("constants", constants)
        set_("outputs", outputs)
        set_("dims", dims)
        set_("coords", coords)
        if self.path is not None:
            set_("path", os.fspath(self.path))

    # --- identity -------------------------------------------------------------------------
    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(v.size for v in self.axes.values())

    @property
    def n_points(self) -> int:
        return math.prod(self.grid_shape)

    def canonical(self) -> dict:
        """The result-defining part of the spec as JSON-able data (axis order kept)."""
        return {
            "function": function_name(self.function),
            "function_code": function_fingerprint(self.function),
            "axes": [[k, _jsonable(v)] for k, v in self.axes.items()],
            "axis_dtypes": {k: str(v.dtype) for k, v in self.axes.items()},
            "constants": {k: _jsonable(self.constants[k]) for k in sorted(self.constants)},
            "outputs": None if self.outputs is None else list(self.outputs),
            "dims": {k: list(self.dims[k]) for k in sorted(self.dims)},
            "coords": {k: _jsonable(self.coords[k]) for k in sorted(self.coords)},
            "batching": self.batching,
            "dtype": self.dtype,
            "bad_points": self.bad_points,
        }

    @functools.cached_property
    def hash(self) -> str:
        """SHA-256 of :meth:`canonical` (floats written exactly, via ``repr``); computed once per spec (a
        run asks for it up to three times: ~0.7 ms each for 10^3-value axes)."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict:
        """Everything, JSON-able (the function as its name)."""
        out = self.canonical()
        out["axes"] = {k: v for k, v in out["axes"]}
        del out["axis_dtypes"], out["function_code"]
        out.update(max_memory=self.max_memory, chunk_size=self.chunk_size, path=self.path)
        return out

    def replace(self, **changes) -> SweepSpec:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepSpec:
        """Build from a parsed file. Unknown keys are refused, naming them."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"unknown spec key(s) {unknown}; allowed: {sorted(fields)}")
        for key in ("function", "axes"):
            if key not in data:
                raise ValueError(f"spec is missing {key!r}")
        return cls(**dict(data))


def check_parameters(values: Mapping[str, Any], where: str) -> None:
    """Check every value whose name is in :data:`PARAMETER_RANGES` (the sweep's range table).

    Raises:
      ValueError: ``"<where> 'alpha': alpha must lie in (0, inf); got -1"``.
    """
    for name, value in values.items():
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
            value = np.asarray(value, float)
        if isinstance(value, (int, float, np.ndarray)) and not isinstance(value, bool):
            _check_parameter(name, value, where)


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read a spec from ``.toml``, ``.json`` or (when PyYAML is installed) ``.yaml``/``.yml``.

    A relative ``path`` inside the file is taken relative to the spec file's folder.
    """
    path = os.fspath(path)
    data = read_table(path)
    if isinstance(data.get("path"), str) and data["path"] and not os.path.isabs(data["path"]):
        data["path"] = os.path.join(os.path.dirname(os.path.abspath(path)), data["path"])
    try:
        return SweepSpec.from_dict(data)
    except (ValueError, TypeError) as err:
        raise ValueError(f"spec file {path!r}: {short_text(err)}") from None


def as_spec(spec: SweepSpec | Mapping | str | os.PathLike) -> SweepSpec:
    """A :class:`SweepSpec` from a spec, a dict of its fields, or a spec file path.

    Raises:
      ValueError: anything else, or a bad spec (see :class:`SweepSpec`).
    """
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, Mapping):
        return SweepSpec.from_dict(spec)
    if isinstance(spec, (str, os.PathLike)):
        return load_spec(spec)
    raise ValueError(f"spec must be a SweepSpec, a dict or a spec file path; got {type(spec).__name__}")


def dtype_scope(dtype: str):
    """Context in which a spec of ``dtype`` is traced: ``jax.enable_x64`` for ``"float64"``."""
    return jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()
