"""Threads for the kernels: each call splits its jobs into contiguous ranges.

The kernels release the GIL (``nogil``), so a plain thread pool runs them in
parallel. Doing the split here, not with numba's ``prange``, keeps compile
times short and lets any number of user threads call poolnd at once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numba

# Below this many elements touched, one thread beats the cost of waking others (on the
# 2-core virtual machine poolnd is built on, a hand-off costs 0.2 to 0.4 ms, as much as
# pooling about a million elements: threads lose at 1.0 million and win at 1.5 million)
_SMALL_WORK = 1 << 20

_threads = max(1, int(numba.config.NUMBA_NUM_THREADS))
_pool: ThreadPoolExecutor | None = None  # the helpers of the calling thread
_pool_size = 0
_pool_lock = threading.Lock()  # user threads may grow the pool at once


def get_num_threads() -> int:
    """How many threads a pooling call uses (default ``NUMBA_NUM_THREADS``, the core count)."""
    return _threads


# Each thread beyond the cores costs a hand-off and a stack; this many is already absurd.
_MOST_THREADS = 256


def set_num_threads(n: int) -> None:
    """Use ``n`` threads per pooling call from now on (1 to 256)."""
    global _threads
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= _MOST_THREADS:
        raise ValueError(f"set_num_threads: n must be an int from 1 to {_MOST_THREADS}, "
                         f"got {n!r}")
    _threads = n  # the pool stays: a call hands out only n - 1 ranges to it


@contextlib.contextmanager
def split_every_call() -> Iterator[None]:
    """Within the block, every call splits its jobs over the threads, however little
    work it has: to measure what threads give a small call (``poolnd bench``'s threads
    row). Prepared calls choose at their first call (see :func:`prepared_run`): those
    made before or inside the block are to be forgotten on entering and leaving it."""
    global _SMALL_WORK
    before, _SMALL_WORK = _SMALL_WORK, 0
    try:
        yield
    finally:
        _SMALL_WORK = before


def prepared_run(kernel, n_jobs: int, work: int, *constants) -> Callable[..., None]:
    """``run(*arrays)``: what :func:`run_in_threads` does with ``kernel(*arrays,
    *constants, lo, hi)``, for a prepared call, whose arrays have the same types at
    every call (its key holds the layout and arguments they come from).

    Below the work that threads pay for, the run is one call of the kernel's
    compiled version, found at the first call: numba's dispatcher would find it
    again at every call (1.1 us, against 0.5 us), and a call through
    :func:`run_in_threads` costs 0.6 us more. Called with other types it would
    misread them: only prepared calls use it.
    """
    if work == 0:
        return _nothing
    if n_jobs > 1 and work >= _SMALL_WORK:  # the split is the thread count's at each call
        return lambda *arrays: run_in_threads(kernel, n_jobs, work, *arrays, *constants)
    compiled = None

    def run(*arrays) -> None:
        nonlocal compiled
        if compiled is None:
            args = (*arrays, *constants, 0, n_jobs)
            compile_for = getattr(kernel, "compile", None)  # absent under NUMBA_DISABLE_JIT
            compiled = (compile_for(tuple(map(kernel.typeof_pyval, args))) if compile_for
                        else kernel)
        compiled(*arrays, *constants, 0, n_jobs)

    return run


def _nothing(*arrays) -> None:
    pass


def run_in_threads(kernel, n_jobs: int, work: int, *args) -> None:
    """``kernel(*args, lo, hi)`` over ``0..n_jobs-1``, split across threads.

    ``work`` (elements read and written) decides whether threads pay off.
    """
    global _pool, _pool_size
    if work == 0:
        return  # an empty batch: nothing to read or write
    parts = min(_threads, n_jobs)
    if parts <= 1 or work < _SMALL_WORK:
        kernel(*args, 0, n_jobs)
        return
    bounds = [n_jobs * i // parts for i in range(parts + 1)]
    with _pool_lock:  # no thread submits to a pool that another thread is replacing
        if _pool_size < parts - 1:  # grown, never shrunk: a smaller count uses fewer of them
            if _pool is not None:
                _pool.shutdown(wait=False)  # what was submitted to it still runs
            _pool_size = parts - 1
            _pool = ThreadPoolExecutor(_pool_size, thread_name_prefix="poolnd")
        futures = [_pool.submit(kernel, *args, lo, hi)
                   for lo, hi in zip(bounds[1:], bounds[2:])]
    # the calling thread does the first range itself: one hand-off fewer
    try:
        kernel(*args, bounds[0], bounds[1])
    finally:
        for future in futures:  # every range is done before the call returns
            future.result()


