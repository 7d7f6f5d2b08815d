"""On-disk format of a sweep: one zarr (format 3) store read through xarray.

Layout of ``PATH`` (a directory)::

    zarr.json            root group; attrs: spec (JSON), spec hash, plan, software versions
    <axis>/              1-D coordinate per sweep axis (the spec's values)
    <dim>/               1-D coordinate per trailing output dimension (time, direction)
    <output>/            (*grid, *trailing) array, one zarr chunk (file c.I.J...) per sweep chunk
    status/              (*grid) int8: -1 not computed, 0 ok, 1 non-finite output; one zarr chunk
                         per sweep chunk, written (atomically) after all of its outputs: a chunk
                         is complete exactly when its status chunk exists (:func:`done_chunks`)
    _sweep/log.jsonl     one line per chunk computed (appended once its status is written)
    _sweep/done/cK.json  completion records, in stores written before 2026-11-30 only

Next to it, ``PATH.lock`` exists while a run writes the store (:func:`locked`): it holds the
writer's PID and host, so a second writer is refused and a lock left by a killed run on the same
host is recognised as stale and replaced.

Metadata is written once, at creation, and consolidated; data writes never touch it, so a
chunk's data and its status are the only files a chunk creates (through
:mod:`daedyn.sweep._chunkfiles`), besides its line in the log.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import math
import os
import shutil
import socket
import time
import warnings
from collections.abc import Mapping

import jax
import numpy as np

import daedyn
from daedyn._checkpoint import check_writable
from daedyn.sweep._chunkfiles import local_file, write_all, write_chunk

__all__ = ["open_results", "read_log", "STATUS_CODES", "STATUS_OK", "STATUS_NONFINITE", "COMPRESSION",
           "create_store", "check_store", "remove_store", "warn_versions", "done_chunks", "open_arrays",
           "write_chunk", "log_chunk", "check_location", "locked"]

STATUS_NOT_COMPUTED, STATUS_OK, STATUS_NONFINITE = -1, 0, 1
STATUS_CODES = {STATUS_NOT_COMPUTED: "not computed", STATUS_OK: "ok",
                STATUS_NONFINITE: "non-finite output"}
FORMAT = "daedyn-sweep/1"
_DONE = os.path.join("_sweep", "done")  # completion records of stores written before 2026-11-30
_LOG = os.path.join("_sweep", "log.jsonl")


def _zarr():
    try:
        import zarr
    except ImportError:
        raise ImportError("daedyn.sweep stores results with zarr: pip install 'daedyn[sweep]'") from None
    return zarr


def _versions() -> dict:
    out = {"daedyn": daedyn.__version__, "jax": jax.__version__, "numpy": np.__version__,
           "zarr": _zarr().__version__}
    try:  # without importing it (a second of start-up)
        out["xarray"] = importlib.metadata.version("xarray")
    except importlib.metadata.PackageNotFoundError:
        pass
    return out


def is_store(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "zarr.json")) and os.path.isdir(os.path.join(path, "_sweep"))


def read_attrs(path: str) -> dict:
    with open(os.path.join(path, "zarr.json")) as f:
        return json.load(f).get("attributes", {})


def _differences(old: Mapping, new: Mapping) -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if key == "axes":
            a, b = dict(a or []), dict(b or [])
            if list(a) != list(b):
                out.append(f"axes (names/order {list(a)} vs {list(b)})")
            out += [f"axes.{k}" for k in a if k in b and a[k] != b[k]]
        elif isinstance(a, Mapping) and isinstance(b, Mapping):
            out += [f"{key}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            out.append(key)
    return out


def check_store(path: str, spec) -> dict | None:
    """Stored attrs if ``path`` holds this spec's sweep, ``None`` if ``path`` does not exist.

    Raises:
      ValueError: ``path`` exists but is not a daedyn sweep, or holds another spec (naming
        the fields that differ).
    """
    if not os.path.exists(path):
        return None
    if not is_store(path):
        if os.path.isdir(path) and not os.listdir(path):
            return None
        raise ValueError(f"output path {path!r} exists and is not a daedyn sweep store; "
                         "choose another path")
    attrs = read_attrs(path)
    if attrs.get("sweep_format") != FORMAT:
        raise ValueError(f"output path {path!r} holds format {attrs.get('sweep_format')!r}, not {FORMAT!r}")
    if attrs.get("sweep_spec_hash") != spec.hash:
        diff = _differences(json.loads(attrs["sweep_spec"]), spec.canonical())
        raise ValueError(
            f"output path {path!r} holds a sweep with a different spec (differs in: "
            f"{', '.join(diff) or 'hash only'}); refusing to mix results. Use another path, or "
            "overwrite=True (CLI: --overwrite) to discard the old results")
    return attrs


def check_location(path: str) -> None:
    """Refuse (``ValueError``) a store path that cannot be created, before any compute: a file at
    ``path``, a missing parent folder, or a parent folder this process cannot write to."""
    if not path.strip():
        raise ValueError("sweep store path is empty")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"sweep store {path!r} is a file, not a folder; choose another path")
    parent = os.path.dirname(os.path.abspath(path.rstrip(os.sep) or os.sep))
    if not os.path.isdir(parent):
        raise ValueError(f"sweep store {path!r}: the folder {parent!r} does not exist (create it first, "
                         "or choose another path)")
    check_writable(f"sweep store {path!r}", parent, folder=True)


def _lock_holder(lock: str) -> dict | None:
    """The lock file's content, None when it is unreadable or half-written."""
    try:
        with open(lock) as f:
            info = json.load(f)
        return info if isinstance(info, dict) and isinstance(info.get("pid"), int) else None
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


@contextlib.contextmanager
def locked(path: str):
    """Hold ``PATH.lock`` (exclusive create) while the block runs; remove it afterwards.

    A lock whose process is gone (same host, PID not running) or that has been half-written for
    more than 10 s is stale and replaced.

    Raises:
      RuntimeError: another live run holds the lock (the message names the store, the process and
        the lock file).
    """
    lock = path.rstrip(os.sep) + ".lock"
    host = socket.gethostname()
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            info = _lock_holder(lock)
            if info is None:
                try:
                    age = time.time() - os.path.getmtime(lock)
                except OSError:
                    continue  # removed meanwhile: try again
                stale = age > 10.0
            else:
                stale = info.get("host") == host and not _alive(info["pid"])
            if not stale:
                who = ("another process (lock being written)" if info is None
                       else f"process {info['pid']} on {info.get('host')}")
                raise RuntimeError(f"sweep store {path!r} is being written by {who} (lock file {lock!r}); "
                                   "wait for that run to finish, or delete the lock file if it is not "
                                   "running any more") from None
            with contextlib.suppress(FileNotFoundError):
                os.remove(lock)
            continue
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": host,
                           "time_utc": datetime.datetime.now(datetime.UTC).isoformat()}, f)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(lock)
            raise
        break
    else:
        raise RuntimeError(f"sweep store {path!r}: cannot take the lock file {lock!r}")
    try:
        yield
    finally:
        info = _lock_holder(lock)
        if info is not None and info["pid"] == os.getpid() and info.get("host") == host:
            with contextlib.suppress(OSError):
                os.remove(lock)


def warn_versions(attrs: Mapping, path: str) -> None:
    """Warn when resuming a store written with other software versions (results may differ)."""
    now = _versions()
    changed = [f"{k} {attrs.get(f'{k}_version')} -> {v}" for k, v in now.items()
               if attrs.get(f"{k}_version") not in (None, v)]
    if changed:
        warnings.warn(f"resuming {path!r}, created with other versions ({', '.join(changed)}); chunks "
                      "computed now may differ in the last bits from those computed before",
                      RuntimeWarning, stacklevel=3)


def remove_store(path: str) -> None:
    """Delete a sweep store (only a daedyn sweep store or an empty folder)."""
    if os.path.exists(path):
        if not is_store(path) and os.listdir(path):
            raise ValueError(f"refusing to overwrite {path!r}: it is not a daedyn sweep store")
        shutil.rmtree(path)


COMPRESSION = ("auto", "lz4", "zstd", "none")
# Zarr chunk target: large enough that a sweep chunk is written as one or a few files (one file
# write per zarr chunk: 640 kB chunks wrote at 0.41 GB/s here, 11 MB ones at 0.63-0.84 GB/s),
# small enough that reading one point back loads little.
ZARR_CHUNK_BYTES = 32 * 2**20


# Chunk files named "c.I.J.K" in one folder per variable, not zarr's default nested "c/I/J/K":
# creating the nested folders of each new chunk cost ~2 ms per chunk file on the project's machine
# (ext4), more than writing a 720 kB chunk (0.4-0.8 ms).
FLAT_KEYS = {"name": "default", "separator": "."}


def codec_for(name: str, dtype, compression: str | Mapping[str, str] = "auto") -> str:
    """The codec of variable ``name``: ``compression`` itself, or its entry for ``name`` (a
    mapping; missing names get ``"auto"``). ``"auto"`` is no compression for floating-point
    arrays (trajectories barely compress, 1.1-1.2x, and compressing them on the write path cost
    more than writing them) and for the status (one byte per point beside at least four of
    results; uncompressed, it is written as a file like the results instead of through zarr's
    codec pipeline, whose hand-offs between threads took 10-20 ms a chunk on a loaded 2-core
    machine), lz4 for integer outputs."""
    codec = compression.get(name, "auto") if isinstance(compression, Mapping) else compression
    if codec not in COMPRESSION:
        raise ValueError(f"compression{'[' + repr(name) + ']' if isinstance(compression, Mapping) else ''} "
                         f"must be one of {COMPRESSION}; got {codec!r}")
    if codec == "auto":
        return "none" if name == "status" or np.issubdtype(np.dtype(dtype), np.inexact) else "lz4"
    return codec


def check_compression(compression, names) -> None:
    """``ValueError`` for an unknown codec, or a mapping naming a variable the sweep does not have."""
    if isinstance(compression, Mapping):
        unknown = sorted(set(compression) - set(names))
        if unknown:
            raise ValueError(f"compression names unknown variables {unknown}; the sweep writes "
                             f"{sorted(names)}")
        for name in compression:
            codec_for(name, np.float32, compression)
    else:
        codec_for("", np.float32, compression)


def _compressors(compression: str):
    """lz4: blosc lz4 with byte shuffle (fast; 1.2x on noisy float32, 200x+ on smooth fields);
    zstd: zarr's default (4x slower to write here, similar ratios); none."""
    if compression not in COMPRESSION or compression == "auto":
        raise ValueError(f"compression must be one of {COMPRESSION[1:]}; got {compression!r}")
    if compression == "zstd":
        return {}
    if compression == "none":
        return {"compressors": None}
    from zarr.codecs import BloscCodec
    return {"compressors": BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")}


def sub_chunks(block: tuple[int, ...], per_point: int, target: int = ZARR_CHUNK_BYTES) -> tuple[int, ...]:
    """Zarr chunk shape (grid part) of about ``target`` bytes that tiles every sweep block.

    Axes before the block's first non-unit axis j stay 1; along j the size divides the block's
    (blocks start at multiples of it); axes after j are whole in every block, so any size tiles.
    """
    shape = list(block)
    k = len(shape)
    j = next((i for i, c in enumerate(shape) if c > 1), k - 1)
    for i in range(j, k):
        inner = math.prod(shape[i + 1:]) * per_point
        if shape[i] * inner <= target:
            break
        a = max(1, target // inner)
        if i == j:
            a = max(d for d in range(1, min(a, shape[i]) + 1) if shape[i] % d == 0)
        shape[i] = min(a, shape[i])
    return tuple(shape)


def create_store(path: str, prepared, plan, *, compression: str | Mapping[str, str] = "auto") -> None:
    """Write the store's metadata, coordinates and empty (fill-valued) arrays.

    Built in a sibling folder and renamed into place, so an interrupted creation leaves no
    half-made store at ``path``.
    """
    final = path.rstrip(os.sep)
    path = f"{final}.creating-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    try:
        _build_store(path, prepared, plan, compression)
        if os.path.isdir(final) and not os.listdir(final):
            os.rmdir(final)
        os.rename(path, final)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _build_store(path: str, prepared, plan, compression) -> None:
    # attributes and data are passed where each node is created: every zarr call is a round trip to its
    # event loop (39 of them took 66-84 ms for the diffusion benchmark's store on the 2-core CPU, these 13
    # 44-56 ms; creating the arrays concurrently on that loop was no faster: its work is Python)
    zarr = _zarr()
    spec = prepared.spec
    versions = _versions()
    scalar_consts = {k: v for k, v in spec.constants.items()
                     if isinstance(v, (int, float)) and not isinstance(v, bool)
                     and k not in prepared.outputs and k not in prepared.coords and k not in spec.axes}
    canonical = spec.canonical()
    root = zarr.open_group(path, mode="w", zarr_format=3, attributes={
        "sweep_format": FORMAT,
        "sweep_function": canonical["function"],
        "sweep_spec": json.dumps(canonical),
        "sweep_spec_hash": spec.hash,
        "sweep_plan": json.dumps(plan.to_dict()),
        "sweep_chunk_shape": list(plan.chunk_shape),
        "sweep_n_chunks": plan.n_chunks,
        "sweep_compression": {**{n: codec_for(n, o.dtype, compression) for n, o in prepared.outputs.items()},
                              "status": codec_for("status", np.int8, compression)},
        "sweep_status_codes": json.dumps({str(k): v for k, v in STATUS_CODES.items()}),
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **{f"{k}_version": v for k, v in versions.items()},
    })
    coord_names = " ".join(scalar_consts)
    axes = list(spec.axes)
    nodes = []  # (name, create_array's keywords)
    for name, values in list(spec.axes.items()) + list(prepared.coords.items()):
        values = np.asarray(values)
        nodes.append((name, dict(data=values, chunks=values.shape, dimension_names=[name])))
    for name, value in scalar_consts.items():
        nodes.append((name, dict(data=np.asarray(value), dimension_names=[])))
    for name, out in prepared.outputs.items():
        fill = np.nan if np.issubdtype(out.dtype, np.floating) else 0
        grid_chunks = sub_chunks(plan.chunk_shape, math.prod(out.shape) * out.dtype.itemsize)
        nodes.append((name, dict(shape=plan.grid_shape + out.shape, chunks=grid_chunks + out.shape,
                                 dtype=out.dtype, fill_value=fill, dimension_names=axes + list(out.dims),
                                 chunk_key_encoding=FLAT_KEYS,
                                 attributes={"coordinates": coord_names} if coord_names else None,
                                 **_compressors(codec_for(name, out.dtype, compression)))))
    nodes.append(("status", dict(shape=plan.grid_shape, chunks=plan.chunk_shape, dtype=np.int8,
                                 fill_value=STATUS_NOT_COMPUTED, dimension_names=axes,
                                 chunk_key_encoding=FLAT_KEYS,
                                 attributes={"flag_values": list(STATUS_CODES), "flag_meanings": " ".join(
                                     v.replace(" ", "_") for v in STATUS_CODES.values())},
                                 **_compressors(codec_for("status", np.int8, compression)))))
    for name, kw in nodes:
        root.create_array(name, **kw)
    root.create_group("_sweep", attributes={"note": "the chunk log of daedyn.sweep (log.jsonl)"})
    with warnings.catch_warnings():  # zarr notes that v3 consolidation is not in the spec yet
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(path)


def done_chunks(path: str) -> set[int]:
    """Chunks whose results are complete.

    A chunk's status is written after every one of its outputs, each through a temporary file
    and a rename, so a chunk is complete exactly when its status chunk exists (one zarr chunk
    per sweep chunk). Stores written before this rule also count their completion records
    (``_sweep/done/cK.json``, written after the status).
    """
    done = set()
    legacy = os.path.join(path, _DONE)
    if os.path.isdir(legacy):
        done |= {int(f[1:-5]) for f in os.listdir(legacy) if f.startswith("c") and f.endswith(".json")}
    if not os.path.isfile(os.path.join(path, "status", "zarr.json")):
        return done
    status = _zarr().open_array(os.path.join(path, "status"), mode="r")
    blocks = tuple(-(-g // c) for g, c in zip(status.shape, status.chunks))
    listings: dict[str, set[str]] = {}
    for k in range(math.prod(blocks)):
        file = local_file(status, status.metadata.encode_chunk_key(np.unravel_index(k, blocks)))
        folder, name = os.path.split(file)
        if folder not in listings:
            try:
                listings[folder] = set(os.listdir(folder))
            except FileNotFoundError:
                listings[folder] = set()
        if name in listings[folder]:
            done.add(k)
    return done


def open_arrays(path: str, names):
    zarr = _zarr()
    root = zarr.open_group(path, mode="r+", use_consolidated=True)
    return {n: root[n] for n in names}


def log_chunk(path: str, k: int, record: Mapping) -> None:
    """One line in the sweep's log for chunk ``k``, once its results are written: the chunk's
    completion is its status chunk (see :func:`done_chunks`), so no file is created per chunk
    besides the zarr chunks themselves (a file creation cost 0.2-0.9 ms on the project's /tmp)."""
    record = {"chunk": k, "pid": os.getpid(), "host": socket.gethostname(),
              "time_utc": datetime.datetime.now(datetime.UTC).isoformat(), **record}
    fd = os.open(os.path.join(path, _LOG), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:  # one write of one line: appends of several writers do not interleave within a line
        write_all(fd, json.dumps(record).encode() + b"\n")
    finally:
        os.close(fd)


def read_log(path: str) -> list[dict]:
    """Every chunk computation ever logged at ``path`` (one dict per chunk computed)."""
    try:
        with open(os.path.join(path, _LOG)) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def open_results(path: str | os.PathLike):
    """The results of a sweep as an ``xarray.Dataset`` with the grid axes as dimensions.

    Variables are read lazily. ``attrs["sweep_complete"]`` tells whether every chunk is complete
    (``sweep_chunks_done`` of ``sweep_n_chunks``); points of chunks not complete have
    ``status == -1`` (the status is written after a chunk's outputs, so a chunk killed half-way
    shows -1 and is recomputed on resume). ``json.loads(ds.attrs["sweep_spec"])`` is the spec.

    Raises:
      ValueError: ``path`` is not a daedyn sweep store.
    """
    import xarray as xr

    path = os.fspath(path)
    if not is_store(path):
        raise ValueError(f"{path!r} is not a daedyn sweep store")
    ds = xr.open_dataset(path, engine="zarr", consolidated=True, chunks=None)
    done = len(done_chunks(path))
    ds.attrs["sweep_chunks_done"] = done
    ds.attrs["sweep_complete"] = done == ds.attrs.get("sweep_n_chunks")
    return ds
