"""Progress reporting: one renderer for every long-running call (training, simulation, sweeps, figures).

Long-running library functions take a ``progress`` argument, a callable ``progress(done, total)``
called after each chunk of work (:func:`daedyn.train.train`, the chunked simulations of
:mod:`daedyn.dynamics`; :func:`daedyn.sweep.run` passes a ``Progress`` record, turned into
``(done, total)`` by :func:`sweep_callback`). The library never prints: a caller who wants a
progress bar passes :func:`progress_bar`, which draws

    ``  [#####---------------] 25/100 epochs (25%)  1.2 s  ETA 3.6 s``

redrawn in place on a terminal, and as throttled lines elsewhere (logs, pipes, tests).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["ProgressBar", "progress_bar", "sweep_callback", "format_seconds"]

_WIDTH = 20  # characters of the bar


def format_seconds(seconds: float) -> str:
    """A duration for a progress line: ``"4.2 s"`` below a minute, ``"h:mm:ss"`` above.

    Example:
      >>> format_seconds(4.21), format_seconds(3725.0), format_seconds(float("inf"))
      ('4.2 s', '1:02:05', '?')
    """
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class ProgressBar:
    """A ``progress(done, total)`` callback that draws a bar with the elapsed time and an ETA.

    The ETA comes from the rate measured since the first report (so compilation, which happens
    before it, is not counted). On a terminal the line is redrawn in place (``\\r``) on every
    call; elsewhere one line is written per call, at most one per ``min_interval`` seconds, plus
    the first and the last. The last report (``done >= total``) ends with ``done`` and a newline;
    repeating it draws nothing.

    Args:
      unit: what is counted, plural ("epochs", "chunks").
      stream: where to draw (default ``sys.stderr`` at the time of the call).
      min_interval: seconds between lines off a terminal.

    Example:
      >>> import io
      >>> out = io.StringIO()
      >>> bar = ProgressBar("epochs", stream=out, min_interval=0.0)
      >>> bar(50, 100); bar(100, 100)
      >>> out.getvalue().splitlines()[1].startswith("  [####################] 100/100 epochs (100%)")
      True
    """

    def __init__(self, unit: str = "steps", *, stream: TextIO | None = None,
                 min_interval: float = 1.0):
        self.unit = unit
        self.stream = stream
        self.min_interval = float(min_interval)
        self._start = time.perf_counter()
        self._first: tuple[float, int] | None = None
        self._last_line = -math.inf
        self._finished = False

    def __call__(self, done: int, total: int, *, note: str = "") -> None:
        """Report ``done`` of ``total`` units; ``note`` (e.g. a throughput) goes after the counts."""
        stream = self.stream if self.stream is not None else sys.stderr
        now = time.perf_counter()
        done, total = int(done), int(total)
        if self._first is None:
            self._first = (now, done)
        final = done >= total
        if final and self._finished:
            return
        tty = _isatty(stream)
        if not (final or tty or now - self._last_line >= self.min_interval):
            return
        self._last_line = now
        self._finished = final
        stream.write(("\r" if tty else "") + self.line(done, total, now=now, note=note)
                     + ("\n" if final or not tty else ""))
        stream.flush()

    def line(self, done: int, total: int, *, now: float | None = None, note: str = "") -> str:
        """The text of one report (without ``\\r`` or newline)."""
        now = time.perf_counter() if now is None else now
        frac = min(max(done / max(total, 1), 0.0), 1.0)
        filled = int(_WIDTH * frac)
        t0, d0 = self._first if self._first is not None else (now, done)
        rate = (done - d0) / (now - t0) if now > t0 and done > d0 else 0.0
        if done >= total:
            eta = "done"
        else:
            eta = f"ETA {format_seconds((total - done) / rate)}" if rate else "ETA ?"
        note = f"  {note}" if note else ""
        return (f"  [{'#' * filled}{'-' * (_WIDTH - filled)}] {done}/{total} {self.unit} "
                f"({100 * frac:.0f}%){note}  {format_seconds(now - self._start)}  {eta}")


def progress_bar(unit: str = "steps", *, stream: TextIO | None = None,
                 min_interval: float = 1.0) -> ProgressBar:
    """A :class:`ProgressBar` counting ``unit`` (the callback to pass as ``progress=``).

    Example:
      >>> import io
      >>> out = io.StringIO()
      >>> report = progress_bar("chunks", stream=out)
      >>> report(1, 4); report(4, 4)
      >>> [line.split("]")[1].split("  ")[0] for line in out.getvalue().splitlines()]
      [' 1/4 chunks (25%)', ' 4/4 chunks (100%)']
    """
    return ProgressBar(unit, stream=stream, min_interval=min_interval)


def sweep_callback(bar: Callable[..., Any]) -> Callable[[Any], None]:
    """Adapt a ``(done, total)`` callback to :func:`daedyn.sweep.run`'s ``Progress`` records.

    Chunks are counted, and the measured throughput (grid points per second) is shown as a note
    when ``bar`` is a :class:`ProgressBar`.

    Example:
      >>> seen = []
      >>> cb = sweep_callback(lambda done, total: seen.append((done, total)))
      >>> from types import SimpleNamespace
      >>> cb(SimpleNamespace(chunks_done=2, chunks_total=5, points_per_s=10.0, final=False))
      >>> seen
      [(2, 5)]
    """
    def report(p) -> None:
        if isinstance(bar, ProgressBar):
            bar(p.chunks_done, p.chunks_total, note=f"{p.points_per_s:,.0f} traj/s")
        else:
            bar(p.chunks_done, p.chunks_total)

    return report


def _isatty(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        return False
