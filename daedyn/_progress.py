"""Progress reporting: one tqdm-based bar for every long-running call (training, simulation, sweeps,
figures, tuning).

The protocol. Long-running library functions take a ``progress`` argument, a callable
``progress(done, total)`` called after each chunk of work (:func:`daedyn.train.train`, the chunked
simulations of :mod:`daedyn.dynamics`, the tuning loop; :func:`daedyn.sweep.run` passes a
``Progress`` record, turned into ``(done, total)`` by :func:`sweep_callback`). A callback MAY also
have a method ``start(done, total, *, note="")``: the library calls it (through :func:`starting`)
once before the first chunk, i.e. before compiling, with ``done`` the work already done (a
resumed checkpoint) and ``note`` e.g. ``"resumed at epoch 500 of 1000"``. Plain callables never
see it. The library never prints.

The bar. :func:`progress_bar` returns a :class:`ProgressBar`, the one renderer, built on
``tqdm.auto`` (a live bar on a terminal, a widget in Jupyter) and writing to stderr:

- from ``start`` until the first chunk finishes it shows ``compiling`` (the first chunk pays for
  compilation, so no rate or ETA is claimed);
- after that, the rate and the ETA count only the chunks that followed the first one (tqdm's
  average rate from a reset clock, no smoothing), so they describe the compiled loop;
- off a terminal (logs, pipes, tests) the same tqdm text is written as whole lines, at most one per
  ``min_interval`` seconds plus the first and the last.

The spinner. A phase without steps to count (a theory comparison after training, a crosscheck, a
deep closed form) runs inside :func:`spinner`: after ``delay`` seconds of silence it shows the phase
and its elapsed wall time (a live line on a terminal, one ``desc ...`` line elsewhere), and when the
phase ends ``desc: 12.3 s``; a phase shorter than ``delay`` prints nothing.

Quiet and JSON modes of the CLI pass no bar and no spinner, so stdout holds only the results.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["ProgressBar", "progress_bar", "sweep_callback", "starting", "format_seconds", "Spinner",
           "spinner"]


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


def starting(progress: Callable[..., Any] | None, done: int, total: int, *, note: str = "") -> None:
    """Tell ``progress`` that work (``done`` of ``total`` already done) is about to start.

    Calls ``progress.start(done, total, note=note)`` when the callback has such a method (a
    :class:`ProgressBar` does); a plain ``(done, total)`` callable, or None, is left alone.

    Example:
      >>> seen = []
      >>> starting(lambda d, t: seen.append((d, t)), 0, 10)  # plain callables: not called
      >>> seen
      []
    """
    start = getattr(progress, "start", None)
    if start is not None:
        start(int(done), int(total), note=note)


class ProgressBar:
    """A ``progress(done, total)`` callback drawing a tqdm bar, with a compiling phase and an honest rate.

    Args:
      unit: what is counted ("epoch", "chunk", "step").
      desc: a label in front of the bar (e.g. the model of a figure).
      stream: where to draw (default ``sys.stderr`` at the time of the first report).
      min_interval: seconds between lines off a terminal (and between redraws on one).

    Example:
      >>> import io
      >>> out = io.StringIO()  # not a terminal: whole lines
      >>> bar = ProgressBar("epoch", desc="DAE", stream=out, min_interval=0.0)
      >>> bar.start(0, 100); bar(50, 100); bar(100, 100)
      >>> lines = out.getvalue().splitlines()
      >>> lines[0].startswith("DAE:   0%") and lines[0].endswith("compiling]")
      True
      >>> "50/100" in lines[1], "100/100" in lines[2]
      (True, True)
    """

    def __init__(self, unit: str = "step", *, desc: str | None = None, stream: TextIO | None = None,
                 min_interval: float = 1.0):
        self.unit = unit
        self.desc = desc
        self.stream = stream
        self.min_interval = float(min_interval)
        self._bar = None  # the live tqdm bar (terminal / notebook)
        self._clock: tuple[float, int] | None = None  # (time, done) from which the rate counts
        self._compiling = False
        self._note = ""
        self._last_line = -math.inf
        self._finished = False
        self._begin = time.perf_counter()

    # -- the protocol ---------------------------------------------------------------------------
    def start(self, done: int, total: int, *, note: str = "") -> None:
        """Work is about to start (``done`` of ``total`` already done): show ``compiling``.

        With ``done >= total`` (a finished checkpoint) there is nothing to run: the final line."""
        done, total = int(done), int(total)
        self._compiling, self._note = done < total, note
        self._clock = None
        self._report(done, total, force=True)

    def __call__(self, done: int, total: int, *, note: str = "") -> None:
        """Report ``done`` of ``total``; ``note`` (e.g. a throughput) goes after the counts."""
        done, total = int(done), int(total)
        if done >= total and self._finished:
            return
        first = self._clock is None
        if first:  # the first chunk (and the compilation) is done: the rate counts from here
            self._clock = (time.perf_counter(), done)
            self._compiling = False
        self._note = note
        self._report(done, total, force=first or done >= total)

    def close(self) -> None:
        """Finish the live bar (a finished run closes it itself)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # -- rendering ------------------------------------------------------------------------------
    def _postfix(self) -> str:
        parts = [p for p in (self._note, "compiling" if self._compiling else "") if p]
        return ", ".join(parts)

    def _stream(self):
        return self.stream if self.stream is not None else sys.stderr

    def line(self, done: int, total: int) -> str:
        """The text of one report, as tqdm formats it (without ``\\r`` or newline)."""
        from tqdm import tqdm

        now = time.perf_counter()
        t0, d0 = self._clock if self._clock is not None else (now, done)
        postfix = self._postfix()
        return tqdm.format_meter(done, total, now - t0, prefix=f"{self.desc}: " if self.desc else "",
                                 unit=self.unit, initial=d0, postfix=postfix or None, ncols=100)

    def _report(self, done: int, total: int, *, force: bool) -> None:
        final = done >= total
        stream = self._stream()
        if _live(stream):
            self._draw_live(done, total, stream)
        else:
            now = time.perf_counter()
            if force or final or now - self._last_line >= self.min_interval:
                self._last_line = now
                stream.write(self.line(done, total) + "\n")
                stream.flush()
        if final:
            self._finished = True
            self.close()

    def _draw_live(self, done: int, total: int, stream) -> None:
        from tqdm.auto import tqdm

        if self._bar is None:
            self._bar = tqdm(total=total, initial=done, desc=self.desc, unit=self.unit, file=stream,
                             smoothing=0, mininterval=self.min_interval, dynamic_ncols=True, leave=True)
        bar = self._bar
        if self._clock is not None and self._clock[1] == done and bar.initial != done:
            bar.reset(total)  # the clock restarts after the first chunk: an honest average rate
            bar.initial = bar.n = bar.last_print_n = done
        bar.total = total
        bar.n = done
        bar.set_postfix_str(self._postfix(), refresh=False)
        bar.refresh()


def progress_bar(unit: str = "step", *, desc: str | None = None, stream: TextIO | None = None,
                 min_interval: float = 1.0) -> ProgressBar:
    """A :class:`ProgressBar` counting ``unit`` (the callback to pass as ``progress=``).

    Example:
      >>> import io
      >>> out = io.StringIO()
      >>> report = progress_bar("chunk", stream=out)
      >>> report(1, 4); report(4, 4)
      >>> [line.split("|")[2].split(" [")[0] for line in out.getvalue().splitlines()]
      [' 1/4', ' 4/4']
    """
    return ProgressBar(unit, desc=desc, stream=stream, min_interval=min_interval)


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


def _live(stream) -> bool:
    """Draw a live tqdm bar: on a terminal, or in Jupyter (where tqdm.auto is the widget bar)."""
    try:
        from tqdm.autonotebook import tqdm as chosen  # tqdm.auto's choice: the widget in Jupyter
    except ImportError:  # tqdm is a core dependency; a broken install draws lines
        return False
    if "notebook" in chosen.__module__ and stream is sys.stderr:
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        return False


class Spinner:
    """A context manager showing a phase without steps on stderr: its name and elapsed wall time.

    Nothing is shown for a phase shorter than ``delay`` seconds. After that, on a terminal a line
    ``⠋ desc 3.2 s`` is redrawn every ``interval`` seconds; elsewhere (logs, pipes) one line
    ``desc ...`` is written. When the phase ends, ``desc: 12.3 s`` (``desc: interrupted after
    12.3 s`` when it ended by an exception). ``seconds`` holds the phase's wall time.

    Example:
      >>> import io
      >>> out = io.StringIO()
      >>> with Spinner("comparing with the theory", stream=out, delay=0.0) as sp:
      ...     time.sleep(0.05)
      >>> lines = out.getvalue().splitlines()
      >>> lines[0], lines[1].startswith("comparing with the theory: 0."), sp.seconds > 0.04
      ('comparing with the theory ...', True, True)
    """

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, desc: str, *, stream: TextIO | None = None, delay: float = 1.0,
                 interval: float = 0.1):
        self.desc, self.stream, self.delay, self.interval = desc, stream, delay, interval
        self.seconds = 0.0
        self._shown = False

    def _out(self):
        return self.stream if self.stream is not None else sys.stderr

    def _spin(self) -> None:
        if self._stop.wait(self.delay):
            return
        out, live = self._out(), _live(self._out())
        self._shown = True
        if not live:
            print(f"{self.desc} ...", file=out, flush=True)
            return
        i = 0
        while not self._stop.is_set():
            elapsed = format_seconds(time.perf_counter() - self._t0)
            out.write(f"\r{self.FRAMES[i % len(self.FRAMES)]} {self.desc} {elapsed}\x1b[K")
            out.flush()
            i += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> Spinner:
        import threading

        self._t0 = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind, value, tb) -> None:
        self._stop.set()
        self._thread.join()
        self.seconds = time.perf_counter() - self._t0
        if self._shown:
            out = self._out()
            how = "interrupted after " if kind is not None else ""
            start = "\r\x1b[K" if _live(out) else ""
            print(f"{start}{self.desc}: {how}{format_seconds(self.seconds)}", file=out, flush=True)


def spinner(desc: str, *, quiet: bool = False, stream: TextIO | None = None, delay: float = 2.0):
    """A :class:`Spinner` for the phase ``desc`` (nothing with ``quiet``: a null context)."""
    import contextlib

    return contextlib.nullcontext() if quiet else Spinner(desc, stream=stream, delay=delay)
