"""Per-class work over large row-major matrices, in memory-bounded blocks and in parallel.

Discovery fits one small model per class group (rows whose label, or prediction, is the class).
At ImageNet scale the matrix (1.28M x 2048 float32 = 10.5 GB) does not fit in memory, so it is
read from a ``.npy`` file: groups are bundled into blocks of at most ``block_bytes`` of rows,
each worker reads just its block's rows from the file (positioned reads, no memory map), so
the resident memory of a worker stays near one block. Blocks run in worker processes (``n_jobs``), results
come back as they finish, with progress and cancellation between blocks.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

R = TypeVar("R")
ArraySource = np.ndarray | str | os.PathLike
GroupFn = Callable[[Any, np.ndarray, np.ndarray, Any], Any]
DEFAULT_BLOCK_BYTES = 256 * 2**20


def group_rows(group_of_row: np.ndarray, keep: Sequence[int] | np.ndarray | None = None) -> dict[int, np.ndarray]:
    """Sorted row indices of every group value (only those in ``keep``, when given)."""
    g = np.asarray(group_of_row)
    order = np.argsort(g, kind="stable")
    values, starts = np.unique(g[order], return_index=True)
    parts = np.split(order, starts[1:])
    wanted = None if keep is None else set(int(k) for k in keep)
    return {int(v): np.sort(p) for v, p in zip(values, parts) if wanted is None or int(v) in wanted}


def source_shape(source: ArraySource) -> tuple[tuple[int, ...], np.dtype]:
    if isinstance(source, np.ndarray):
        return source.shape, source.dtype
    arr = np.load(source, mmap_mode="r")
    shape, dtype = arr.shape, arr.dtype
    del arr
    return shape, dtype


def _blocks(groups: Mapping[Any, np.ndarray], row_bytes: int, block_bytes: int) -> list[list[Hashable]]:
    out: list[list[Hashable]] = []
    cur: list[Hashable] = []
    size = 0
    for key, rows in groups.items():
        b = len(rows) * row_bytes
        if cur and size + b > block_bytes:
            out.append(cur)
            cur, size = [], 0
        cur.append(key)
        size += b
    if cur:
        out.append(cur)
    return out


# --- worker side -------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(fn: GroupFn, source: ArraySource, context: Any, blas_threads: int) -> None:
    from threadpoolctl import threadpool_limits

    _WORKER.update(fn=fn, source=source, context=context, limits=threadpool_limits(blas_threads))


def _npy_layout(path: str) -> tuple[int, tuple[int, ...], np.dtype]:
    """(data offset, shape, dtype) of a C-ordered ``.npy`` file."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_2_0 if version == (2, 0) else np.lib.format.read_array_header_1_0
        shape, fortran, dtype = read_header(f)
        if fortran:
            raise ValueError(f"{path}: Fortran-ordered arrays are not supported; save it C-ordered")
        return f.tell(), tuple(shape), np.dtype(dtype)


def _read_rows(source: ArraySource, rows: np.ndarray) -> np.ndarray:
    """``source[rows]`` for sorted ``rows``; from a file by positioned reads of each run of
    consecutive rows (no memory map: the process's resident memory stays at the rows read, and
    the kernel does no read-ahead of pages nobody asked for)."""
    if isinstance(source, np.ndarray):
        return np.asarray(source[rows])
    offset, shape, dtype = _npy_layout(os.fspath(source))
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    out = np.empty((len(rows), *shape[1:]), dtype=dtype)
    view = out.reshape(-1).view(np.uint8).data
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= shape[0]):
        raise IndexError(f"row index out of range for {shape[0]} rows")
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    fd = os.open(source, os.O_RDONLY)
    try:
        pos = 0
        for run in np.split(rows, breaks) if len(rows) else []:
            nbytes = len(run) * row_bytes
            got = os.preadv(fd, [view[pos : pos + nbytes]], offset + int(run[0]) * row_bytes)
            if got != nbytes:
                raise OSError(f"{source}: short read ({got} of {nbytes} bytes) at row {int(run[0])}")
            pos += nbytes
    finally:
        os.close(fd)
    return out


def _run_block(keys: list[Hashable], rows: list[np.ndarray]) -> list[tuple[Hashable, Any]]:
    fn, source, context = _WORKER["fn"], _WORKER["source"], _WORKER["context"]
    out = []
    for key, r in zip(keys, rows):
        out.append((key, fn(key, r, _read_rows(source, r), context)))
    return out


# --- driver ------------------------------------------------------------------------------------
def map_groups(
    fn: GroupFn,
    source: ArraySource,
    groups: Mapping[Any, np.ndarray],
    context: Any = None,
    *,
    n_jobs: int = 1,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    progress: Callable[[int, int], None] | None = None,
    check: Callable[[], None] | None = None,
) -> dict[Any, Any]:
    """``{key: fn(key, rows, source[rows], context)}`` for every group.

    ``source`` is an array or the path of a ``.npy`` file (read through a memory map, one block
    at a time). With ``n_jobs > 1`` blocks run in that many worker processes (``fn`` and
    ``context`` must be picklable: module-level functions and plain data); each worker's BLAS is
    limited to one thread. ``progress(done_groups, total_groups)`` is called as blocks finish and
    ``check()`` (which may raise, e.g. on cancellation) before each block is submitted.
    """
    if not isinstance(source, np.ndarray):
        source = str(Path(source))
    shape, dtype = source_shape(source)
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
    blocks = _blocks(groups, max(1, row_bytes), max(1, block_bytes))
    total = len(groups)
    results: dict[Hashable, Any] = {}
    done = 0
    if progress:
        progress(0, total)
    if n_jobs <= 1 or len(blocks) <= 1:
        _init_worker(fn, source, context, blas_threads=max(1, os.cpu_count() or 1) if n_jobs <= 1 else 1)
        try:
            for keys in blocks:
                if check:
                    check()
                for key, res in _run_block(keys, [groups[k] for k in keys]):
                    results[key] = res
                done += len(keys)
                if progress:
                    progress(done, total)
        finally:
            _WORKER.clear()
        return results
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=_init_worker, initargs=(fn, source, context, 1)) as pool:
        pending: set[Future] = set()
        it: Iterator[list[Hashable]] = iter(blocks)
        try:
            while True:
                while len(pending) < 2 * n_jobs:  # a bounded queue: results do not pile up
                    next_keys: list[Hashable] | None = next(it, None)
                    if next_keys is None:
                        break
                    if check:
                        check()
                    pending.add(pool.submit(_run_block, next_keys, [groups[k] for k in next_keys]))
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    for key, res in fut.result():
                        results[key] = res
                        done += 1
                if progress:
                    progress(done, total)
        except BaseException:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results
