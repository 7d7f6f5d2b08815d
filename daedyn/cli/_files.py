"""Output files of the ``daedyn`` command: checked before the work, written atomically after it.

Every option that names a file to write goes through :func:`check_file` (or :func:`check_plot`)
at the start of its subcommand, so a missing folder or an unwritable place is a usage error before
any computation; results are then written through a temporary file and a rename in the same folder
(:func:`save_npz`, :func:`save_plot`), so a failed write never leaves a partial file.
"""

from __future__ import annotations

import os

__all__ = ["check_file", "check_plot", "check_distinct", "check_data_fits", "save_npz", "save_plot",
           "npz_path"]


def check_file(option: str, path: str | None) -> str | None:
    """``path`` (or None) after :func:`daedyn._checkpoint.check_writable` (``ValueError`` naming
    ``option``)."""
    from daedyn._checkpoint import check_writable  # imports jax: not at `daedyn --help` time

    return None if path is None else check_writable(option, path)


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
