"""The sweep's writer thread: finished chunks are written while the next ones compute.

The main thread hands each finished chunk (its host copy) to :class:`ChunkWriter`, which writes
it on one background thread, in the order given. The queue is bounded (``depth`` chunks waiting
besides the one being written), so a slow disk makes the main thread wait instead of piling up
results beyond the memory limit.

A failed write does not stop the writer: every chunk already handed over is still attempted
(a failure is usually one chunk's, e.g. a quota hit on a large file), so nothing computed is
dropped while the writer can still write it; the main thread stops handing over new chunks as
soon as it sees a failure (:attr:`ChunkWriter.failed`), and :meth:`ChunkWriter.close` raises
the first failure after the queue is empty. Chunks are recorded only after their data, so every
recorded chunk is complete and a rerun recomputes the rest.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["ChunkWriter"]

_STOP = object()


class ChunkWriter:
    """One writer thread behind a bounded queue.

    Args:
      write: called on the writer thread as ``write(item)`` for each item put, in order; its
        return value is collected (see :meth:`take_done`). An exception it raises is kept and
        re-raised by :meth:`close`; the items after it are still written.
      depth: items waiting at most, besides the one being written (>= 1).
    """

    def __init__(self, write: Callable[[Any], Any], depth: int = 1, name: str = "daedyn-sweep-writer"):
        if depth < 1:
            raise ValueError(f"depth must be >= 1; got {depth}")
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._lock = threading.Lock()
        self._done: list = []
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._queue.task_done()
                return
            try:
                result = self._write(item)
            except BaseException as err:  # kept for the main thread; later items still written
                with self._lock:
                    self._errors.append(err)
            else:
                with self._lock:
                    self._done.append(result)
            finally:
                del item
                self._queue.task_done()

    @property
    def alive(self) -> bool:
        """Whether the thread still runs (:meth:`close` not called yet)."""
        return self._thread.is_alive()

    @property
    def failed(self) -> bool:
        """Whether a write has failed (the caller should stop handing over chunks)."""
        with self._lock:
            return bool(self._errors)

    def put(self, item) -> None:
        """Hand over one item; waits while ``depth`` items are already waiting."""
        if not self._thread.is_alive():
            raise RuntimeError("the sweep writer thread has stopped")
        self._queue.put(item)

    def wait_idle(self) -> None:
        """Wait until every item handed over is written (or failed)."""
        self._queue.join()

    def take_done(self) -> list:
        """Results of the writes finished since the last call, in order."""
        with self._lock:
            out, self._done = self._done, []
        return out

    def close(self) -> list:
        """Write everything handed over, stop the thread, return the results not yet taken.

        Raises:
          The first exception a write raised (after all items were attempted).
        """
        self._queue.put(_STOP)
        self._thread.join()
        done = self.take_done()
        if self._errors:
            raise self._errors[0]
        return done
