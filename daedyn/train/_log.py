"""The logging hook of :func:`daedyn.train.train`: one call per recorded point, as training goes.

``train(..., log=fn)`` calls ``fn(record)`` for every recorded point (every ``save_every``
epochs, the start included), in order, as soon as the compiled chunk that produced it has
finished. ``record`` is a plain dict of NumPy values, ready for any logger (TensorBoard, Weights &
Biases, MLflow, a CSV file): ``{"epoch": int, "mapping": (D,), "train_loss": float, ...}`` with
one key per observable the run records (``mapping``, ``singular_values``, ``weight_norm``,
``train_loss``, ``heldout_loss``). For :func:`daedyn.train.train_batch` every value but the epoch
has the batch axes first. daedyn depends on no logging library; docs/train.md has examples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["emit"]


def emit(log: Callable[[dict], Any] | None, recs: Mapping[str, np.ndarray], first_epoch: int,
         save_every: int, *, axis: int, shape: tuple[int, ...] | None) -> None:
    """Call ``log`` once per record of the chunk ``recs`` (record axis ``axis``), epochs from
    ``first_epoch`` in steps of ``save_every``; batch axes restored to ``shape`` (batched runs)."""
    if log is None or not recs:
        return
    count = next(iter(recs.values())).shape[axis]
    for i in range(count):
        record: dict[str, Any] = {"epoch": int(first_epoch + i * save_every)}
        for name, values in recs.items():
            v = np.take(np.asarray(values), i, axis=axis)
            if shape is not None:
                v = v.reshape(*shape, *v.shape[1:])
            record[name] = v.item() if v.ndim == 0 else v
        log(record)
