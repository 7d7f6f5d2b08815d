"""Large hyperparameter sweeps: declarative grids, chunked, sharded over devices, streamed to disk.

A sweep runs one function (a closed form, an integrator or a training run named in the
read-only ``ENTRY_POINTS``, or a user's own ``"module:function"`` or callable) over the outer
product of named axes, in chunks that fit a memory limit.
Each chunk is compiled once, sharded over the local devices with ``jax.sharding``, and written
to a zarr store as soon as it finishes (its status last, which marks it complete), so that an
interrupted sweep resumes where it stopped. Results are read back as an ``xarray.Dataset``.

Example:
  >>> import tempfile, os, daedyn.sweep as sweep
  >>> spec = {"function": lambda lam, eps: {"w": lam / (lam + eps)},
  ...         "axes": {"lam": [1.0, 2.0, 4.0], "eps": {"linspace": [0.0, 1.0, 3]}}}
  >>> out = os.path.join(tempfile.mkdtemp(), "fp.zarr")
  >>> summary = sweep.run(spec, path=out, chunk_size=4)
  >>> summary.n_chunks, summary.bad_points
  (3, 0)
  >>> ds = sweep.open_results(out)
  >>> ds.w.dims, round(float(ds.w.sel(lam=2.0, eps=1.0)), 4)
  (('lam', 'eps'), 0.6667)
  >>> import shutil; shutil.rmtree(os.path.dirname(out))
"""

import functools as _functools

from daedyn._extras import require as _require
from daedyn.sweep._builtins import ENTRY_POINTS
from daedyn.sweep._entries import entry_point
from daedyn.sweep._plan import SweepPlan, plan
from daedyn.sweep._run import Progress, SweepSummary, run
from daedyn.sweep._spec import (
    PARAMETER_RANGES,
    ParameterRange,
    SweepSpec,
    as_spec,
    check_parameters,
    load_spec,
    parse_memory,
    read_table,
)
from daedyn.sweep._store import open_results as _open_results


@_functools.wraps(_open_results)
def open_results(path):
    _require("xarray", "zarr", what="daedyn.sweep.open_results")  # one line naming the extra
    return _open_results(path)

__all__ = [
    "ENTRY_POINTS", "PARAMETER_RANGES", "ParameterRange", "Progress", "SweepPlan", "SweepSpec",
    "SweepSummary", "as_spec", "entry_point", "load_spec", "open_results", "plan", "run", "parse_memory",
    "read_table", "check_parameters",
]
