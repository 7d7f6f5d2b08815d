"""From a spec to a chunk plan: output shapes (``jax.eval_shape``), bytes per point, chunk layout.

The grid (axes in spec order, C order) is cut into rectangular blocks that are contiguous in
the flattened grid: trailing axes whole, one axis cut into runs of ``c`` values, leading axes
one value at a time. Each block is one zarr chunk of every output, so a finished block is
written by exactly one writer and is independent of every other. Every block is padded to the
same batch size (a multiple of the device count), so the chunk function compiles once.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from daedyn.sweep._builtins import ENTRY_POINTS, resolve
from daedyn.sweep._entries import EntryInfo, entry_info, parameters
from daedyn.sweep._spec import PARAMETER_RANGES, SweepSpec, as_spec, dtype_scope, function_name, parse_memory

__all__ = ["SweepPlan", "OutputInfo", "Prepared", "prepare", "make_plan", "plan", "HELD_COPIES"]

# Copies of a chunk's results alive at once, at most: chunk k on the device, chunk k-1 on the
# device and as a host copy, chunk k-2 waiting for the writer thread, chunk k-3 being written
# (NaN-masked into a copy when it has bad points; the copy replaces it once made).
# The chunk size is max_memory / (HELD_COPIES * bytes per point).
HELD_COPIES = 5

# Pipelining: the first chunk's compute and the last chunk's write overlap nothing, so without a
# chunk_size a sweep is cut into at least PIPELINE_CHUNKS chunks while each still holds at least
# PIPELINE_MIN_BYTES of results (smaller chunks would pay per-chunk costs: dispatch, files, records).
PIPELINE_CHUNKS = 8
PIPELINE_MIN_BYTES = 4 * 2**20

# Integer-valued axes with these names are still fed to the function as floats.
_FLOAT_PARAMS = frozenset(k for k, r in PARAMETER_RANGES.items() if not r.integer)


class OutputInfo(NamedTuple):
    """One saved output: trailing ``shape`` per grid point, ``dtype``, trailing ``dims`` names."""

    shape: tuple[int, ...]
    dtype: np.dtype
    dims: tuple[str, ...]


class Prepared(NamedTuple):
    """A spec resolved against its function (no compute yet)."""

    spec: SweepSpec
    fn: Callable
    info: EntryInfo
    axes: dict[str, np.ndarray]  # cast to the dtypes fed to the function
    batched: Callable  # {axis: (B,) array} -> {output: (B, *shape) array}
    outputs: dict[str, OutputInfo]
    coords: dict[str, np.ndarray]  # coordinates of trailing dims
    blocked: Callable  # {axis: (c_i,) values along the block's axis i} -> {output: (c_0, ..., *shape)}


class SweepPlan(NamedTuple):
    """How a sweep is cut into chunks, and what that costs in memory."""

    axis_names: tuple[str, ...]
    grid_shape: tuple[int, ...]
    n_points: int
    chunk_shape: tuple[int, ...]  # block of the grid per chunk
    chunk_points: int  # grid points in a full block
    batch_size: int  # padded points per chunk (multiple of n_devices)
    n_chunks: int
    n_devices: int
    bytes_per_point: int  # all saved outputs + 1 status byte
    memory_estimate: int  # HELD_COPIES * batch_size * bytes_per_point
    memory_limit: int
    outputs: dict[str, OutputInfo]

    @property
    def blocks(self) -> tuple[int, ...]:
        return tuple(-(-g // c) for g, c in zip(self.grid_shape, self.chunk_shape))

    @property
    def total_bytes(self) -> int:
        """Uncompressed size of all results."""
        return self.n_points * self.bytes_per_point

    def chunk_region(self, k: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(start, size) per grid axis of chunk ``k``; sizes are short only at the grid's edge."""
        idx = np.unravel_index(k, self.blocks)
        start = tuple(int(i) * c for i, c in zip(idx, self.chunk_shape))
        size = tuple(min(c, g - s) for c, g, s in zip(self.chunk_shape, self.grid_shape, start))
        return start, size

    def describe(self) -> str:
        """Human-readable chunk plan (``daedyn sweep --dry-run``)."""
        mb = _human_bytes
        lines = [
            f"grid        {' x '.join(f'{n}={s}' for n, s in zip(self.axis_names, self.grid_shape))}"
            f" = {self.n_points:,} points",
            "outputs     " + ", ".join(
                f"{k}{list(v.shape) if v.shape else ''} {np.dtype(v.dtype).name}"
                for k, v in self.outputs.items()),
            f"per point   {self.bytes_per_point:,} bytes (outputs + status); all results "
            f"{mb(self.total_bytes)}",
            f"chunks      {self.n_chunks:,} of {self.chunk_points:,} points (block "
            f"{'x'.join(map(str, self.chunk_shape))}), padded to {self.batch_size:,} for "
            f"{self.n_devices} device(s)",
            f"memory      {mb(self.memory_estimate)} held at most ({HELD_COPIES} chunk copies) "
            f"of limit {mb(self.memory_limit)}",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "axis_names": list(self.axis_names), "grid_shape": list(self.grid_shape),
            "n_points": self.n_points, "chunk_shape": list(self.chunk_shape),
            "chunk_points": self.chunk_points, "batch_size": self.batch_size,
            "n_chunks": self.n_chunks, "n_devices": self.n_devices,
            "bytes_per_point": self.bytes_per_point, "memory_estimate": self.memory_estimate,
            "memory_limit": self.memory_limit, "total_bytes": self.total_bytes,
            "outputs": {k: {"shape": list(v.shape), "dtype": np.dtype(v.dtype).name, "dims": list(v.dims)}
                        for k, v in self.outputs.items()},
        }


def _human_bytes(b: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if b < 1000 or unit == "GB":
            return f"{b:,.0f} {unit}" if unit == "B" else f"{b:,.1f} {unit}"
        b /= 1000
    return f"{b:,.1f} TB"


def _leaf_name(path) -> str:
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "_".join(parts)


def _named_outputs(tree) -> dict[str, Any]:
    leaves = jtu.tree_flatten_with_path(tree)[0]
    if len(leaves) == 1 and not leaves[0][0]:
        return {"result": leaves[0][1]}
    return {_leaf_name(p): x for p, x in leaves}


#: The key that carries a chunk's size into a branch when every axis is switched (no other array).
_POINTS = "__points"


def _switch_names() -> frozenset[str]:
    """Parameters that some built-in entry point takes as a switched axis (``depth``)."""
    return frozenset(n for f in ENTRY_POINTS.values() for n in entry_info(f).switch)


def _check_names(spec: SweepSpec, fn: Callable, info: EntryInfo) -> None:
    name = function_name(spec.function)
    for axis in spec.axes:  # a Python-valued parameter (depth) is an axis only where it is switched
        if axis in _switch_names() and axis not in info.switch:
            raise ValueError(f"{axis!r} picks the computation in {name} and cannot be a sweep axis of it; "
                             f"give it under constants (one sweep per value), or sweep a function that "
                             f"switches on it ({', '.join(_switched_by(axis))})")
    try:
        names, required, var_kw = parameters(fn)
    except (TypeError, ValueError):
        return  # no inspectable signature: eval_shape will tell
    allowed = ", ".join(sorted(names)) or "(none)"
    if not var_kw:
        for axis in spec.axes:
            if axis not in names:
                raise ValueError(f"unknown axis {axis!r}: {name} has no such parameter; its parameters "
                                 f"are {allowed}")
        for const in spec.constants:
            if const not in names:
                raise ValueError(f"unknown constant {const!r}: {name} has no such parameter; its "
                                 f"parameters are {allowed}")
    renamed = getattr(fn, "__deprecated_keywords__", {})  # an old spelling gives the new name
    missing = sorted(required - {renamed.get(k, k) for k in (*spec.axes, *spec.constants)})
    if missing:
        raise ValueError(f"{name} needs {missing} as axes or constants")
    for axis in spec.axes:
        if axis in info.static:
            raise ValueError(f"{axis!r} fixes array shapes in {name} and cannot be a sweep axis; "
                             "give it under constants")


def _switched_by(axis: str) -> list[str]:
    return [k for k, f in ENTRY_POINTS.items() if axis in entry_info(f).switch]


def _cast_axis(name: str, values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(values.dtype, np.integer) and name not in _FLOAT_PARAMS:
        int_dtype = np.int64 if dtype == np.float64 else np.int32
        if np.any(values != values.astype(int_dtype)):
            raise ValueError(f"axis {name!r}: integer values overflow {np.dtype(int_dtype).name}")
        return values.astype(int_dtype)
    return values.astype(dtype)


def prepare(spec: SweepSpec, allow_import=()) -> Prepared:
    """Resolve the function, check names, and find output shapes with ``jax.eval_shape``.

    ``allow_import``: the modules whose ``"module:function"`` the spec may name (see
    :func:`daedyn.sweep._builtins.resolve`); the function is never imported or traced otherwise.

    Must run with x64 enabled when ``spec.dtype == "float64"`` (the runner does this).

    Raises:
      ValueError: unknown axis/constant, missing parameter, a shape-fixing parameter used as an
        axis, a function that fails on the spec's shapes (incompatible shapes), unknown outputs.
    """
    fn, info = resolve(spec.function, allow_import)
    name = function_name(spec.function)
    _check_names(spec, fn, info)
    dtype = np.dtype(spec.dtype)
    axes = {k: _cast_axis(k, v, dtype) for k, v in spec.axes.items()}
    constants = dict(spec.constants)
    if info.defaults is not None:
        constants.update({k: v for k, v in info.defaults(spec.axes, constants).items() if k not in constants})
    batching = info.batching if spec.batching == "vmap" and info.batching != "vmap" else spec.batching

    def run(args, fixed):
        args = dict(args)
        points = args.pop(_POINTS, None)  # set when every axis is switched: only the chunk's size

        def call(a):
            return fn(**a, **constants, **fixed)
        if not args:  # every axis fixed within the chunk: one call, its outputs repeated per point
            n = points.shape[0]
            if batching == "vmap":
                return jax.vmap(call, axis_size=n)(args)
            return jtu.tree_map(lambda x: jnp.broadcast_to(x, (n, *jnp.shape(x))), call(args))
        if batching == "vmap":
            return jax.vmap(call)(args)
        return call(args)

    switched = [a for a in axes if a in info.switch]
    if switched:
        # one compiled branch per combination of switched values; the planner keeps those values
        # constant within a chunk, so the branch index is read off the chunk's first point
        combos = list(itertools.product(*(axes[a].tolist() for a in switched)))
        branches = [functools.partial(lambda fixed, a: run(a, fixed), dict(zip(switched, c))) for c in combos]

        def branch_index(first):
            """The branch of the switched values ``{axis: value}`` (C order over their combinations)."""
            index = 0
            for a in switched:
                values = jnp.asarray(axes[a])
                index = index * values.shape[0] + jnp.argmax(values == first[a])
            return index

        def full(args):
            rest = {k: v for k, v in args.items() if k not in switched} or {_POINTS: args[switched[0]]}
            return jax.lax.switch(branch_index({a: args[a][0] for a in switched}), branches, rest)
    else:
        def full(args):
            return run(args, {})

    probe = 2  # two points, so that a broadcasting mistake shows up as a shape error
    shapes = {k: jax.ShapeDtypeStruct((probe,), v.dtype) for k, v in axes.items()}
    try:
        out = jax.eval_shape(full, shapes)
    except Exception as err:  # any failure here is a spec/function mismatch: report it, no compute
        raise ValueError(f"{name} cannot run on this spec's shapes ({type(err).__name__}: {err})") from err
    named = _named_outputs(out)
    for k, v in named.items():
        if not hasattr(v, "shape") or v.ndim < 1 or v.shape[0] != probe:
            raise ValueError(f"output {k!r} of {name} has shape {getattr(v, 'shape', None)}: with "
                             f"batching={batching!r} every output needs a leading batch dimension")
    if spec.outputs is not None:
        unknown = [o for o in spec.outputs if o not in named]
        if unknown:
            raise ValueError(f"unknown output(s) {unknown}; {name} returns {sorted(named)}")
        selected = list(spec.outputs)
    else:
        selected = list(named)

    default_dims = dict(info.dims(constants)) if info.dims else {}
    default_coords = dict(info.coords(constants)) if info.coords else {}
    outputs, dim_sizes, rename = {}, {}, {}
    reserved = set(axes) | {"status"}
    for src in selected:
        # an output named like an input (w1 of a trajectory when w1 is swept) is saved as w1_out
        k = f"{src}_out" if src in reserved else src
        if k in reserved or k in rename:
            raise ValueError(f"output name {k!r} clashes with an axis or the status variable")
        rename[k] = src
        shape = tuple(named[src].shape[1:])
        dims = tuple(spec.dims.get(src, default_dims.get(src, ())))
        if not dims:
            dims = tuple(f"{k}_dim{i}" for i in range(len(shape)))
        if len(dims) != len(shape):
            raise ValueError(f"dims for output {k!r} name {len(dims)} dimension(s) {list(dims)} but it has "
                             f"trailing shape {shape}")
        for d, s in zip(dims, shape):
            if d in axes:
                raise ValueError(f"output {k!r}: trailing dim {d!r} clashes with a sweep axis")
            if dim_sizes.setdefault(d, s) != s:
                raise ValueError(f"dimension {d!r} has size {dim_sizes[d]} in one output and {s} in {k!r}")
        outputs[k] = OutputInfo(shape, np.dtype(named[src].dtype), dims)
    coords = {}
    for d, s in dim_sizes.items():
        values = spec.coords.get(d, default_coords.get(d))
        if values is None and np.ndim(constants.get(d)) == 1 and np.size(constants[d]) == s:
            values = constants[d]  # a trailing dim named after a 1-D constant (a time grid `t`)
        values = np.arange(s) if values is None else np.asarray(values)
        if values.shape != (s,):
            raise ValueError(f"coords for dimension {d!r} have shape {values.shape}; outputs have {s} values")
        coords[d] = values
    stray = sorted(set(spec.coords) - set(dim_sizes))
    if stray:
        raise ValueError(f"coords given for {stray}, which no saved output has as a trailing dimension "
                         f"(trailing dims: {sorted(dim_sizes) or 'none'})")
    extra = sorted(set(spec.dims) - set(rename.values()))
    if extra:
        raise ValueError(f"dims given for unknown/unsaved output(s) {extra}")

    def batched(args):
        out = _named_outputs(full(args))
        return {k: out[src] for k, src in rename.items()}

    names = list(axes)

    def block(values, fixed):
        """The block's points in C order: one vmap per free axis, each mapping only its own values, so
        work that depends on some axes only (a per-(p_mean, p_std) lookup) runs once per value of those."""
        free = [n for n in names if n not in fixed]

        def point(a):
            return fn(**a, **constants, **fixed)

        f = point
        for n in reversed(names):  # innermost: the last axis (C order); a switched axis: one value
            f = jax.vmap(f, in_axes=({m: 0 if m == n else None for m in free},),
                         axis_size=None if n in free else 1)
        return f({n: values[n] for n in free})

    def blocked(values):
        """{axis: (c_i,) values} of a rectangular block -> {output: (c_0, ..., c_k-1, *shape)}, the
        block's points (in C order, the flat order of :func:`batched`). The axis values are never
        expanded per point, and outputs keep the block's shape: XLA:CPU fused a flattening reshape
        badly (the diffusion entry: 2.3x the time of the same program without it)."""
        shape = tuple(values[n].shape[0] for n in names)
        if batching != "vmap":  # the function takes (B,) arrays: expand the block's axes
            k = len(names)
            flat = {n: jnp.broadcast_to(jnp.reshape(values[n], [-1 if j == i else 1 for j in range(k)]),
                                        shape).reshape(-1) for i, n in enumerate(names)}
            return {k_: jnp.reshape(x, shape + x.shape[1:]) for k_, x in batched(flat).items()}
        if switched:  # one value of each switched axis per block (the planner's rule): its branch
            blocks = [functools.partial(block, fixed=dict(zip(switched, c))) for c in combos]
            out = jax.lax.switch(branch_index({a: values[a][0] for a in switched}), blocks, values)
        else:
            out = block(values, {})
        out = _named_outputs(out)
        return {k: out[src] for k, src in rename.items()}

    return Prepared(spec, fn, info, axes, batched, outputs, coords, blocked)


def _layout(grid_shape: tuple[int, ...], target: int, limit: int | None = None) -> tuple[int, ...]:
    """Contiguous rectangular block of about ``target`` points (>= 1 point).

    Trailing axes are whole while they fit; the next axis j is cut into runs of ``c`` values.
    Without ``limit`` (a chunk size the user chose), ``c`` is the largest run that fits
    ``target``, evened out over the same block count. With ``limit`` (the planner's own choice;
    ``limit`` the most points the memory allows), ``c`` minimises the cost of the whole sweep:
    every block is computed at full size (the last one along j padded) and costs a fixed amount
    besides (a dispatch, files, a log line: about 1 ms on the 2-core CPU, taken as an eighth
    of a target block), so ``c`` minimises ``blocks * (c * trail + target / 8)`` over runs from
    half the target's to an eighth above it. 100 values with a 12-value target are cut into 10
    blocks of 10 rather than 9 of 12, whose last block is 2/3 padding (8% of all points
    computed for nothing): 27% faster on the quick sweep benchmark (benchmarks/sweep_throughput.py).
    """
    k = len(grid_shape)
    trail = 1
    for j in range(k - 1, -1, -1):
        if trail * grid_shape[j] <= target:
            trail *= grid_shape[j]
            continue
        g = grid_shape[j]
        c = max(1, target // trail)
        if limit is None:
            nblocks = -(-g // c)
            c = -(-g // nblocks)  # same block count, blocks as even as possible
        else:
            hi = max(c, min(g - 1, limit // trail, (target + target // 8) // trail))
            c = min(range(max(1, c // 2), hi + 1), key=lambda r: (-(-g // r) * (r * trail + target / 8), -r))
        return (1,) * j + (c,) + tuple(grid_shape[j + 1:])
    return tuple(grid_shape)


def make_plan(prepared: Prepared, *, max_memory=None, chunk_size: int | None = None,
              n_devices: int = 1, chunk_shape: tuple[int, ...] | None = None) -> SweepPlan:
    """Chunk plan under a memory limit.

    Args:
      max_memory: bound on results held at once (bytes or ``"2GB"``); default the spec's.
      chunk_size: points per chunk (still checked); default the largest that fits, but small
        enough for PIPELINE_CHUNKS chunks when each still holds PIPELINE_MIN_BYTES of results.
      n_devices: devices the batch axis is sharded over; the batch is a multiple of it.
      chunk_shape: reuse an existing store's block shape (resume).
    Raises:
      ValueError: one point's results exceed the limit, or ``chunk_size`` does.
    """
    spec = prepared.spec
    limit = parse_memory(spec.max_memory if max_memory is None else max_memory)
    chunk_size = spec.chunk_size if chunk_size is None else chunk_size
    grid = spec.grid_shape
    n_points = math.prod(grid)
    if n_points >= 2**31:
        raise ValueError(f"the grid has {n_points:,} points; at most 2**31 - 1 per sweep (split it)")
    bpp = 1 + sum(math.prod(o.shape) * o.dtype.itemsize for o in prepared.outputs.values())
    fit = limit // (HELD_COPIES * bpp)
    if chunk_shape is None:
        fit_dev = (fit // n_devices) * n_devices
        if fit_dev < 1:
            raise ValueError(f"max_memory {limit:,} bytes is too small: one grid point's results take "
                             f"{bpp:,} bytes, held {HELD_COPIES}x, on {n_devices} device(s)")
        if chunk_size is not None:
            if chunk_size > fit_dev:
                raise ValueError(f"chunk_size {chunk_size:,} needs {HELD_COPIES * chunk_size * bpp:,} bytes, "
                                 f"over max_memory {limit:,}; use chunk_size <= {fit_dev:,}")
            target = int(chunk_size)
        else:
            pipelined = max(-(-n_points // PIPELINE_CHUNKS), PIPELINE_MIN_BYTES // bpp, 1)
            target = max(min(fit_dev, -(-pipelined // n_devices) * n_devices), 1)
        # axes that switch code (info.switch) keep one value per chunk: blocks lie after the last
        lead = max((i + 1 for i, a in enumerate(spec.axes) if a in prepared.info.switch), default=0)
        chunk_shape = (1,) * lead + _layout(grid[lead:], target, None if chunk_size is not None else fit_dev)
    chunk_shape = tuple(int(c) for c in chunk_shape)
    if len(chunk_shape) != len(grid) or any(c < 1 or c > g for c, g in zip(chunk_shape, grid)):
        raise ValueError(f"chunk_shape {chunk_shape} does not fit the grid {grid}")
    if any(c != 1 for c, a in zip(chunk_shape, spec.axes) if a in prepared.info.switch):
        raise ValueError(f"chunk_shape {chunk_shape} holds several values of a switched axis "
                         f"({', '.join(a for a in spec.axes if a in prepared.info.switch)})")
    points = math.prod(chunk_shape)
    batch = -(-points // n_devices) * n_devices
    n_chunks = math.prod(-(-g // c) for g, c in zip(grid, chunk_shape))
    return SweepPlan(tuple(spec.axes), grid, n_points, chunk_shape, points, batch, n_chunks, n_devices,
                     bpp, HELD_COPIES * batch * bpp, limit, prepared.outputs)


def plan(spec: SweepSpec | Mapping, *, max_memory=None, chunk_size=None, n_devices=None,
         allow_import=()) -> SweepPlan:
    """The chunk plan of a spec without running it (``daedyn sweep --dry-run``).

    Finding the output shapes traces the function (``jax.eval_shape``); a ``"module:function"``
    is imported and traced only when ``allow_import`` names its module (as in :func:`run`).

    Example:
      >>> p = plan({"function": lambda a: {"y": 2 * a}, "axes": {"a": [1.0, 2.0, 3.0]},
      ...           "chunk_size": 2}, n_devices=1)
      >>> p.n_chunks, p.chunk_shape, p.bytes_per_point
      (2, (2,), 5)
    """
    spec = as_spec(spec)
    n_devices = len(jax.local_devices()) if n_devices is None else n_devices
    with dtype_scope(spec.dtype):
        prepared = prepare(spec, allow_import)
    return make_plan(prepared, max_memory=max_memory, chunk_size=chunk_size, n_devices=n_devices)
