"""Writing a sweep chunk's results into its zarr region, fast.

Whole uncompressed zarr chunks (the sweep's default for float results and the status) are
written as files by the calling thread (the sweep's writer thread): their encoded form is their
C-order bytes, so zarr's per-chunk copy-and-encode pipeline and its hand-offs between its event
loop and its threads are skipped. Each file is written through a temporary name and a rename (a
reader never sees a half-written chunk) in :data:`WRITE_PIECE` calls. Everything else (compressed
variables, regions that do not cover whole chunks, non-local stores) goes through zarr.

Measured on the project's 2-core machine (Linux 6.18, ext4), per chunk file: creating zarr's
nested chunk folders cost ~2 ms (hence the flat ``c.I.J.K`` names, ``_store.FLAT_KEYS``), one
write() call of 2 MB or more 6-8x the kernel CPU of 1 MB calls, and zarr's pipeline 10-20 ms of
waiting for a small status chunk on a loaded machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
import threading
from collections.abc import Mapping

import numpy as np

__all__ = ["write_chunk", "write_many", "raw_chunks", "local_file", "write_all", "WRITE_PIECE"]


def raw_chunks(arr, region: tuple[slice, ...], values: np.ndarray):
    """``[(key, block)]`` of the zarr chunks that ``values`` fills, when ``arr`` stores chunks
    uncompressed (the bytes codec alone, little-endian, this dtype) and ``region`` is made of
    whole chunks, or of whole chunks up to the array's end (an edge chunk is stored at full chunk
    size, padded with the fill value, as zarr stores it); ``None`` otherwise. Those chunks'
    encoded form is their C-order bytes, so they go to the store without zarr's per-chunk
    copy-and-encode pipeline."""
    meta = arr.metadata
    codecs = getattr(meta, "codecs", None)
    if (codecs is None or len(codecs) != 1 or type(codecs[0]).__name__ != "BytesCodec"
            or getattr(arr, "shards", None) is not None or values.dtype != arr.dtype
            or values.dtype.byteorder == ">" or sys.byteorder != "little"):
        return None
    chunks = arr.chunks
    region = tuple(region) + tuple(slice(0, n) for n in values.shape[len(region):])  # trailing dims whole
    if len(region) != len(chunks) or any(r.start % c or ((r.stop - r.start) % c and r.stop != n)
                                         for r, c, n in zip(region, chunks, arr.shape)):
        return None
    values = np.ascontiguousarray(values)
    blocks = [range(r.start // c, -(-r.stop // c)) for r, c in zip(region, chunks)]
    out = []
    for idx in itertools.product(*blocks):
        sel = tuple(slice(i * c - r.start, min((i + 1) * c, r.stop) - r.start)
                    for i, r, c in zip(idx, region, chunks))
        part = values[sel]
        if part.shape == tuple(chunks):
            block = np.ascontiguousarray(part)
        else:  # an edge chunk: the part inside the array, the rest the fill value
            block = np.full(chunks, arr.fill_value, arr.dtype)
            block[tuple(slice(0, n) for n in part.shape)] = part
        out.append((meta.encode_chunk_key(idx), block))
    return out


def local_file(arr, key: str) -> str | None:
    """The file of chunk ``key`` of ``arr`` when it lives in a local directory store, else None."""
    store_path = arr.async_array.store_path
    root = getattr(store_path.store, "root", None)
    if type(store_path.store).__name__ != "LocalStore" or root is None:
        return None
    return os.path.join(os.fspath(root), *store_path.path.split("/"), *key.split("/"))


# Bytes per write() call. On the project's machine (Linux 6.18, ext4) one write() of 2 MB or more
# into a new file cost 6-8x more kernel CPU per byte (12-16 ms for 7.7 MB, once memory had been
# written for a while) than the same bytes in 1 MB calls (about 2 ms): the writer thread then
# took the core that the next chunk's compute needed.
WRITE_PIECE = 1 << 20


def write_all(fd: int, data) -> None:
    """All of ``data`` (bytes or a byte memoryview) to the open file ``fd``, in
    :data:`WRITE_PIECE` calls; a short write (signal, quota edge) continues where it stopped."""
    data = memoryview(data)
    for i in range(0, len(data), WRITE_PIECE):
        view = data[i:i + WRITE_PIECE]
        while view:
            view = view[os.write(fd, view):]


def _write_pieces(path: str, data: memoryview) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def _put_file(path: str, block: np.ndarray) -> None:
    """Write ``block``'s bytes to ``path`` through a temporary file and a rename (a reader never
    sees a half-written chunk), in :data:`WRITE_PIECE` calls. The writes release the GIL: the
    thread computing the next chunk is not held up, as it was by zarr's per-chunk hand-offs
    between its event loop and its threads."""
    tmp = f"{path}.{os.getpid()}-{threading.get_ident()}.partial"
    data = memoryview(block).cast("B")
    try:
        try:
            _write_pieces(tmp, data)
        except FileNotFoundError:  # the first write into this chunk's folder
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _write_pieces(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_many(items) -> None:
    """``array[region] = values`` for each item. Whole uncompressed chunks (:func:`raw_chunks`)
    of a local store are written as files on this thread (:func:`_put_file`); other stores get
    them as they are through the store; everything else goes through zarr, concurrently on its
    I/O loop."""
    try:
        from zarr.core.buffer import default_buffer_prototype
        from zarr.core.sync import sync
    except ImportError:  # another zarr layout: one at a time
        for arr, region, values in items:
            arr[region] = values
        return
    make = default_buffer_prototype().buffer.from_bytes
    jobs = []  # zarr's writes, started (as coroutines) only once the direct ones are done
    for arr, region, values in items:
        raw = raw_chunks(arr, region, values)
        if raw is None:
            jobs.append(lambda a=arr, r=region, v=values: a.async_array.setitem(r, v))
            continue
        for key, block in raw:
            file = local_file(arr, key)
            if file is None:
                jobs.append(lambda p=arr.async_array.store_path / key, b=block:
                            p.set(make(memoryview(b).cast("B"))))
            else:
                _put_file(file, block)

    async def write_all():
        await asyncio.gather(*(job() for job in jobs))
    if jobs:
        sync(write_all())


def write_chunk(arrays: Mapping, plan, k: int, results: Mapping[str, np.ndarray], status: np.ndarray) -> None:
    """Write chunk ``k``'s valid points into its region: outputs first, then status."""
    start, size = plan.chunk_region(k)
    region = tuple(slice(s, s + n) for s, n in zip(start, size))
    write_many([(arrays[name], region, values.reshape(size + values.shape[1:]))
                for name, values in results.items()])
    write_many([(arrays["status"], region, status.reshape(size))])
