"""Output files of the ``daedyn`` command: checked before the work, written atomically after it.

Every option that names a file to write goes through :func:`check_file` (``--out`` of a labelled
dataset: :func:`check_out`, which also checks the extension and that the format's writer is
installed; an image: :func:`check_plot`) at the start of its subcommand, so a missing folder, an
unwritable place or a wrong extension is a usage error before any computation; results are then
written through a temporary file and a rename in the same folder (:func:`save_npz`,
:func:`save_plot`, :func:`save_dataset`), so a failed write never leaves a partial file. A result
that cannot be converted or written after the work is never lost: :func:`save_dataset` then writes
its raw arrays to ``<out>.npz`` and says so (:func:`lost_out`, exit 1).
"""

from __future__ import annotations

import os

__all__ = ["check_file", "check_out", "check_plot", "check_distinct", "check_outputs_not_inputs",
           "check_data_fits", "save_npz",
           "save_plot", "npz_path", "save_dataset", "save_out", "raw_arrays", "lost_out", "print_written",
           "DATASET_FORMATS"]

#: The extensions of ``--out`` for a labelled dataset (daedyn._xarray.write).
DATASET_FORMATS = (".nc", ".zarr")


def check_file(option: str, path: str | None, *, folder: bool = False) -> str | None:
    """``path`` (or None) after :func:`daedyn._checkpoint.check_writable` (``ValueError`` naming
    ``option``); ``folder=True`` for an output folder (created if missing)."""
    from daedyn._checkpoint import check_writable  # imports jax: not at `daedyn --help` time

    return None if path is None else check_writable(option, path, folder=folder)


def out_extension(path: str) -> str:
    """The lower-case extension of an output path (a trailing slash of a ``.zarr`` folder ignored)."""
    return os.path.splitext(path.rstrip("/") or path)[1].lower()


def _is_zarr_store(path: str) -> bool:
    return any(os.path.exists(os.path.join(path, m)) for m in ("zarr.json", ".zgroup", ".zattrs"))


def check_out(option: str, path: str | None, formats: tuple[str, ...] = DATASET_FORMATS, *,
              other: str | None = None) -> str | None:
    """The one check of an output file option, before any work: ``path`` (or None) returned as given.

    Args:
      option: the option named in the messages (``"--out"``).
      path: the file to write.
      formats: the extensions allowed (default ``.nc`` and ``.zarr``, written by
        :func:`daedyn._xarray.write`).
      other: the format any other extension is written as (``"npz"`` for ``train --out``: numpy
        appends ``.npz``); default None: other extensions are refused.
    Raises:
      ValueError: naming ``option``: an extension not in ``formats`` (and no ``other``), a missing
        folder or a place that cannot be written (:func:`daedyn._checkpoint.check_writable`), an
        existing folder at a ``.zarr`` path that is not a zarr store (never overwritten), or a file
        there.
      ImportError: xarray (or zarr for ``.zarr``, a netCDF writer for ``.nc``) is not installed:
        the message names the extra (exit 1, before any work).
    """
    from daedyn._checkpoint import check_writable  # imports jax: not at `daedyn --help` time

    if path is None:
        return None
    ext = out_extension(path)
    if ext not in formats and other is None:
        names = {".nc": ".nc (netCDF)", ".zarr": ".zarr", ".npz": ".npz"}
        allowed = " or ".join(names.get(f, f) for f in formats)
        raise ValueError(f"{option} must end in {allowed}; got {path!r}")
    if ext == ".zarr":
        store = path.rstrip("/") or path
        if os.path.exists(store) and not os.path.isdir(store):
            raise ValueError(f"{option}: {path!r} exists and is not a folder (a .zarr store is a folder)")
        if os.path.isdir(store):
            from daedyn._xarray import is_result_store

            if not _is_zarr_store(store):
                raise ValueError(f"{option}: {path!r} is a folder that is not a zarr store; it is not "
                                 "overwritten (choose another path)")
            if not is_result_store(store):  # a sweep store, or a zarr store of someone else's
                raise ValueError(f"{option}: {path!r} is a zarr store that daedyn did not write as a "
                                 "result (a sweep store or another program's); it is not overwritten "
                                 "(choose another path)")
            check_writable(option, os.path.join(os.path.dirname(os.path.abspath(store)), "probe"))
        else:
            check_writable(option, store)
    else:
        check_writable(option, path)
    if ext in DATASET_FORMATS:
        _check_writer(ext, f"{option} {path}")
    return path


def _check_writer(ext: str, what: str) -> None:
    import importlib.util

    from daedyn._extras import require

    require("xarray", *(("zarr",) if ext == ".zarr" else ()), what=what)
    if ext == ".nc" and not any(importlib.util.find_spec(m) for m in ("netCDF4", "h5netcdf", "scipy")):
        raise ImportError(f"{what} needs a netCDF writer: pip install netCDF4 (or h5netcdf, or scipy), "
                          "or write .zarr")


def check_plot(option: str, path: str | None) -> str | None:
    """As :func:`check_file`, and the file extension must be an image format matplotlib writes."""
    from daedyn._checkpoint import check_writable  # imports jax: not at `daedyn --help` time

    if path is None:
        return None
    check_writable(option, path)
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    if ext:
        from matplotlib.backend_bases import FigureCanvasBase

        formats = FigureCanvasBase.get_supported_filetypes()
        if ext not in formats:
            raise ValueError(f"{option}: unknown image format {ext!r} in {path!r}; use one of "
                             f"{', '.join(sorted(formats))}")
    return path


def check_distinct(**paths) -> None:
    """Refuse two output options naming the same file (one would overwrite the other)."""
    seen = {}
    for option, path in paths.items():
        if path is None:
            continue
        real = os.path.realpath(path)
        if real in seen:
            raise ValueError(f"{seen[real]} and {option} name the same file {path!r}; give each its own")
        seen[real] = option


#: Options that name a file a subcommand reads, and options that name one it writes.
INPUT_OPTIONS = ("dataset", "config", "cov", "eigvals", "spec", "from_")
OUTPUT_OPTIONS = ("out", "plot", "json_out")


def check_outputs_not_inputs(args) -> None:
    """Refuse, before any work, an output option (``--out``, ``--plot``, ``--json-out``) naming a file
    the command reads (``--dataset``, ``--config``, ``--cov``, ``--eigvals``, a sweep spec): writing
    it would destroy the input. ``--out r`` of ``train`` also writes ``r.npz``, so both are compared;
    links and relative paths are resolved.

    Raises:
      ValueError: naming both options and the file.
    """
    inputs = {}
    for name in INPUT_OPTIONS:
        value = getattr(args, name, None)
        if isinstance(value, (str, os.PathLike)) and os.fspath(value) and os.path.exists(value):
            inputs.setdefault(os.path.realpath(value), name)
    if not inputs:
        return
    for name in OUTPUT_OPTIONS:
        value = getattr(args, name, None)
        if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
            continue
        path = os.fspath(value)
        for candidate in (path.rstrip("/") or path, npz_path(path)):
            src = inputs.get(os.path.realpath(candidate))
            if src is not None:
                flag = lambda n: "the spec" if n == "spec" else "--" + n.strip("_").replace("_", "-")  # noqa: E731
                raise ValueError(f"{flag(name)} {path!r} would overwrite the input {flag(src)} "
                                 f"{getattr(args, src)!r}; write the results to another path")


def npz_path(path: str) -> str:
    """The file ``numpy.savez`` would write for ``path`` (it appends ``.npz`` when missing)."""
    return path if path.endswith(".npz") else path + ".npz"


def save_npz(path: str, arrays: dict) -> str:
    """Write ``arrays`` to ``npz_path(path)`` atomically; returns the path written."""
    import numpy as np

    from daedyn._checkpoint import atomic_write  # imports jax: not at `daedyn --help` time

    target = npz_path(path)
    with atomic_write(target, "results") as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return target


def save_plot(fig, path: str, *, dpi: int = 120) -> str:
    """``fig.savefig(path)`` through a temporary file (format from the extension, default PNG)."""
    from daedyn._checkpoint import atomic_write  # imports jax: not at `daedyn --help` time

    fmt = os.path.splitext(path)[1].lstrip(".").lower() or None
    with atomic_write(path, "plot") as tmp:
        fig.savefig(tmp, format=fmt or "png", dpi=dpi)
    return path


def check_data_fits(source: str, x) -> None:
    """Refuse data whose values do not fit the computation dtype (float32 unless --x64), naming the
    dataset, before it is cast (a cast would turn them into inf)."""
    import jax.numpy as jnp
    import numpy as np

    from daedyn._checks import check_representable

    dtype = jnp.result_type(float)
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating) or x.dtype.itemsize <= jnp.dtype(dtype).itemsize or not x.size:
        return  # integers and data no wider than the computation fit
    check_representable(f"--dataset {source}: the largest value", np.max(np.abs(x)), dtype, underflow=False)


def raw_arrays(result, prefix: str = "") -> dict:
    """The numeric arrays of a result, flattened by field name (``params.w1`` -> ``params_w1``,
    ``ws[0]`` -> ``ws_0``): what :func:`save_dataset` keeps when the labelled dataset fails.
    NamedTuples, dataclasses, dicts, lists and tuples are walked; functions, placeholders of fields
    that were not saved, schedules and other objects are left out."""
    import dataclasses

    import numpy as np

    out: dict = {}
    name = lambda k: f"{prefix}_{k}" if prefix else str(k)
    if hasattr(result, "_asdict"):
        items = result._asdict().items()
    elif dataclasses.is_dataclass(result) and not isinstance(result, type):
        items = ((f.name, getattr(result, f.name)) for f in dataclasses.fields(result))
    elif isinstance(result, dict):
        items = result.items()
    elif isinstance(result, (list, tuple)):
        items = enumerate(result)
    else:
        if isinstance(result, (bool, int, float, str)) or hasattr(result, "shape"):
            try:
                a = np.asarray(result)
            except Exception:  # a placeholder of a field that was not saved
                return out
            if a.dtype.kind in "biufcUS":
                out[prefix or "value"] = a
        return out
    for k, v in items:
        if v is None or callable(v) and not hasattr(v, "shape"):
            continue
        out.update(raw_arrays(v, name(k)))
    return out


def save_dataset(option: str, path: str, build, raw) -> tuple[str, str | None]:
    """Write the labelled dataset ``build()`` to ``path`` (netCDF or zarr); if building or writing it
    fails, keep the work: write ``raw()`` (a dict of arrays, e.g. :func:`raw_arrays` of the result)
    to ``<path>.npz`` instead.

    Returns:
      ``(path written, None)``, or ``(the .npz written, why the dataset was not)``: the caller
      reports that with :func:`lost_out` and exits 1.
    Raises:
      OSError: when the fallback cannot be written either (the message names both failures).
    """
    from daedyn import _xarray

    try:
        return _xarray.write(build(), path), None
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as err:  # a conversion or write failure must not lose a long run
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        reason = f"{type(err).__name__}: {text}"
        fallback = (path.rstrip("/") or path) + ".npz"
        try:
            written = save_npz(fallback, raw())
        except OSError as again:
            raise OSError(again.errno, f"writing {option} failed ({reason}), and so did its fallback "
                          f"({again.strerror})", fallback) from None
        return written, reason


def lost_out(prog: str, option: str, path: str, written: str, reason: str) -> int:
    """Say on stderr that ``option path`` was not written and where the results went instead; 1."""
    import sys

    print(f"{prog}: error: {option} {path} was not written ({reason}); the results were saved as "
          f"numpy arrays to {written} instead (numpy.load)", file=sys.stderr, flush=True)
    return 1


def save_out(prog: str, path: str | None, report: dict, build, raw, option: str = "--out") -> int:
    """``option`` of a subcommand: :func:`save_dataset` of ``build()`` into ``report["out"]``; returns
    0, or 1 after :func:`lost_out` when the dataset failed and ``raw()`` (plus ``report`` as JSON
    text, ``settings``) went to ``<path>.npz`` instead (``report["out_error"]`` says why). Nothing
    without ``path``."""
    import json

    import numpy as np

    if not path:
        return 0

    def fallback():
        arrays = {k: v for k, v in raw().items() if v is not None}
        arrays["settings"] = np.asarray(json.dumps(report, default=str))
        return arrays

    report["out"], reason = save_dataset(option, path, build, fallback)
    if reason is None:
        return 0
    report["out_error"] = reason
    return lost_out(prog, option, path, report["out"], reason)


def print_written(report: dict) -> None:
    """``wrote PATH`` on stdout for the plot and the ``--out`` a report holds (not an ``--out`` that
    fell back to ``.npz``: :func:`lost_out` said that on stderr)."""
    for key in ("plot", "out"):
        if key in report and not (key == "out" and "out_error" in report):
            print(f"wrote {report[key]}")
