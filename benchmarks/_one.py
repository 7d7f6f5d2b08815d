"""One benchmark module in this process: ``python -m benchmarks._one NAME quick|full OUT.json``.

:func:`benchmarks.__main__.run_all` starts one of these per module, so that every benchmark
runs in a fresh process: what one leaves behind (allocator and page state, compiled programs,
threads) does not change the next one's baseline. Measured before this split: after
``scalar_dynamics`` (or any 400 MB allocation) in the same process, the whole-grid scalar-GD
call that ``sweep_throughput`` uses as its baseline ran 17% faster (2.07 -> 2.43 M traj/s) and the
sweep hardly (1.68 -> 1.74), so the sweep's ratio depended on which benchmarks ran before it.

Writes ``{"rows": [...]}`` or ``{"error": "Type: message"}`` to OUT.json (the traceback goes to
stderr); progress lines go to stderr as well.
"""

from __future__ import annotations

import importlib
import sys
import traceback

from benchmarks._io import write_json


def main(argv: list[str]) -> int:
    name, size, out = argv
    try:
        module = importlib.import_module(f"benchmarks.{name}")
        result = {"rows": list(module.run(quick=size == "quick"))}
    except Exception as err:  # reported by the parent as this benchmark's failure
        traceback.print_exc()
        result = {"error": "".join(traceback.format_exception_only(err)).strip()}
    write_json(out, result, f"{name} results", default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
