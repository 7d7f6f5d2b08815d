"""``--out`` of every subcommand, by suffix: ``.nc`` / ``.zarr`` the labelled dataset
(:func:`daedyn.cli._files.save_out`), ``.npz`` its arrays, ``.json`` what ``--json`` prints; each
written atomically (a temporary file, then a rename), after :func:`daedyn.cli._files.check_out`
accepted the path before any work."""

from __future__ import annotations

import json

from daedyn.cli._files import out_extension, save_npz, save_out

__all__ = ["RESULT_FORMATS", "write_out", "write_json"]

#: The extensions every computing subcommand's ``--out`` accepts.
RESULT_FORMATS = (".nc", ".zarr", ".npz", ".json")


def write_json(path: str, report: dict, what: str = "results") -> str:
    """``report`` as indented JSON at ``path``, atomically; returns the path."""
    from daedyn._checkpoint import atomic_write

    with atomic_write(path, what) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, default=str)
    return path


def write_out(prog: str, path: str | None, report: dict, build, raw) -> int:
    """Write ``--out`` by its suffix (``build()`` the dataset, ``raw()`` the arrays); sets
    ``report["out"]``; returns 0, or 1 when a dataset fell back to ``.npz`` (said on stderr)."""
    if not path:
        return 0
    ext = out_extension(path)
    if ext == ".json":
        report["out"] = write_json(path, {k: v for k, v in report.items() if k != "out"})
        return 0
    if ext == ".npz":
        import numpy as np

        arrays = {k: v for k, v in raw().items() if v is not None}
        arrays["settings"] = np.asarray(json.dumps({k: v for k, v in report.items() if k != "out"},
                                                   default=str))
        report["out"] = save_npz(path, arrays)
        return 0
    return save_out(prog, path, report, build, raw)
