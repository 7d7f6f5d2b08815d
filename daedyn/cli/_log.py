"""``--log csv|tensorboard[:PATH]``: the Python logging hook (``train(log=)``, ``tune(log=)``) written
to a file as the run goes.

A record is a dict (``{"epoch": 10, "train_loss": 0.12, "mapping": array(D), ...}``, a tuning
iterate ``{"stage": ..., "step": 3, "eps": ..., "objective": ...}``); arrays are flattened into one
column (or scalar tag) per entry, ``mapping_0``, ``mapping_1``, ... and strings are kept as text
(CSV) or left out (TensorBoard). ``csv`` writes ``<out>.log.csv`` beside ``--out`` (else
``daedyn-<command>.log.csv``), one row per record, flushed as it comes; ``tensorboard`` writes event
files to ``runs/daedyn-<command>`` (or the given folder) through tensorboardX (the ``tensorboard``
extra; no TensorFlow), one scalar per entry at ``global_step`` = the record's epoch or step.
"""

from __future__ import annotations

import os

__all__ = ["FORMATS", "parse_log", "open_log", "flatten"]

FORMATS = ("csv", "tensorboard")


def parse_log(text: str | None, *, command: str, out: str | None) -> tuple[str, str] | None:
    """``--log FORMAT[:PATH]`` -> (format, path), the default path filled in; None without ``--log``.

    Example:
      >>> parse_log("csv", command="train", out="runs/r.nc")
      ('csv', 'runs/r.log.csv')
      >>> parse_log("tensorboard:tb/a", command="train", out=None)
      ('tensorboard', 'tb/a')
    """
    if text is None:
        return None
    kind, _, path = text.partition(":")
    if kind not in FORMATS:
        raise ValueError(f"--log must be csv or tensorboard (optionally FORMAT:PATH); got {text!r}")
    if not path:
        if kind == "csv":
            stem = os.path.splitext(out.rstrip("/"))[0] if out else f"daedyn-{command}"
            path = f"{stem}.log.csv"
        else:
            path = os.path.join("runs", f"daedyn-{command}")
    return kind, path


def flatten(record: dict) -> dict:
    """One entry per number: arrays become ``name_i`` (C order over their flattened entries).

    Example:
      >>> import numpy as np
      >>> flatten({"epoch": 10, "mapping": np.array([0.5, 0.25]), "stage": "isotropic"})
      {'epoch': 10, 'mapping_0': 0.5, 'mapping_1': 0.25, 'stage': 'isotropic'}
    """
    import numpy as np

    out = {}
    for key, value in record.items():
        if isinstance(value, str):
            out[key] = value
            continue
        a = np.asarray(value)
        if a.ndim == 0:
            out[key] = a.item()
        else:
            out.update({f"{key}_{i}": float(v) for i, v in enumerate(a.ravel())})
    return out


class _Csv:
    def __init__(self, path: str):
        self.path, self._file, self._writer, self._columns = path, None, None, None

    def __call__(self, record: dict) -> None:
        import csv

        row = flatten(record)
        if self._file is None:
            self._file = open(self.path, "w", newline="")  # closed by close()
        if self._columns is None or any(k not in self._columns for k in row):
            self._columns = list(row)  # the first record, or a later stage with new names: a header
            self._writer = csv.DictWriter(self._file, self._columns, extrasaction="ignore")
            self._writer.writeheader()
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class _TensorBoard:
    def __init__(self, path: str):
        from daedyn._extras import require

        tbx = require("tensorboardX", what="--log tensorboard")
        self.path, self._writer = path, tbx.SummaryWriter(logdir=path)

    def __call__(self, record: dict) -> None:
        row = flatten(record)
        step = int(row.get("epoch", row.get("step", 0)))
        prefix = f"{row['stage']}/" if isinstance(row.get("stage"), str) else ""
        for key, value in row.items():
            if key not in ("epoch", "step") and isinstance(value, int | float):
                self._writer.add_scalar(prefix + key, value, global_step=step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def open_log(spec: tuple[str, str] | None):
    """The logging hook for :func:`parse_log`'s (format, path): a callable with ``close()`` and
    ``path``, or None. The folder must exist for csv (checked before the work with the other
    outputs); tensorboard creates its folder."""
    if spec is None:
        return None
    kind, path = spec
    return _Csv(path) if kind == "csv" else _TensorBoard(path)
