"""``poolnd compile``, and the line the commands print when numba compiles.

numba compiles a kernel the first time a process meets its dtype and window
shape (seconds each) and keeps it in its on-disk cache; later processes load
it in milliseconds. :func:`compile_notice` says so when it happens, and
``poolnd compile`` compiles chosen ops and dtypes ahead, in several processes
at once, so that the first real call finds them in the cache.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

# what `poolnd compile` compiles unless told: the ops of the CLI and the demo, and the
# dtypes of images (uint8, uint16) and of networks (float32, float64)
DEFAULT_OPS = ("max", "avg")
DEFAULT_DTYPES = ("float32", "float64", "uint8", "uint16")
# every dtype poolnd pools
DTYPES = ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
          "float16", "float32", "float64")


@contextlib.contextmanager
def compile_notice(command: str, stream=None) -> Iterator[None]:
    """Print ``<command>: compiling kernels (first use only) ...`` once, on standard
    error, when numba starts compiling inside the block.

    numba fires its ``numba:compile`` event only for a real compile, never for a
    kernel loaded from its disk cache, so the line appears exactly when there is
    a wait to explain, and costs nothing otherwise. Compiles in other processes
    (a dask.distributed scheduler's workers) are not seen.
    """
    from numba.core import event

    said = threading.Event()  # kernels compile in Dask's threads too: one line in all

    class Notice(event.Listener):
        def on_start(self, _):
            if not said.is_set():
                said.set()
                print(f"{command}: compiling kernels (first use only; `poolnd compile` does "
                      f"it ahead) ...", file=stream or sys.stderr, flush=True)

        def on_end(self, _):
            pass

    with event.install_listener("numba:compile", Notice()):
        yield


# --------------------------------------------------------------------------- poolnd compile


def _table() -> dict[str, Any]:
    """The ops by their short names (``max`` for max_pool, ``max_unpool``)."""
    from ._ops import OPS

    return {op.name.removesuffix("_pool"): op for op in OPS}


def exercise(op_name: str, dtype_name: str) -> tuple[int, float]:
    """Run op ``op_name`` on a small 2-d ``dtype_name`` array in each of its table
    geometries (:mod:`poolnd._ops`): the function, its layer's forward and backward.
    Returns how many kernels numba compiled and the seconds it took."""
    import numpy as np
    from numba.core import event

    from . import functional, nn
    from ._dtypes import float_dtype

    op = _table()[op_name]
    x = np.arange(2 * 3 * 16 * 16).reshape(2, 3, 16, 16).astype(dtype_name)
    grad_dtype = float_dtype(x.dtype)
    arrays = [x]
    if x.dtype.kind == "f":  # a NaN sends rows that go straight into the output to the walk
        arrays.append(x.copy())
        arrays[-1][0, 0, 0, 0] = np.nan
    compiled = []

    class Count(event.Listener):
        def on_start(self, _):
            compiled.append(1)

        def on_end(self, _):
            pass

    started = time.perf_counter()
    with event.install_listener("numba:compile", Count()):
        for x, geometry in itertools.product(arrays, op.geometries):
            layer = getattr(nn, f"{op.layer}2d")(*geometry.args, **geometry.kwargs)
            if op.takes_indices:  # it unpools what max pooling gave
                inputs = functional.max_pool2d(x, *geometry.args, return_indices=True)
            else:
                inputs = (x,)
                getattr(functional, op.named(2))(x, *geometry.args, **geometry.kwargs)
            out = layer(*inputs)
            out = out[0] if isinstance(out, tuple) else out
            layer.backward(np.ones(out.shape, grad_dtype))
    return len(compiled), time.perf_counter() - started


def _names(text: str, known, what: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(f"--{what} {text!r}: choose from {', '.join(known)}")
    return names


def run(args) -> int:
    """``poolnd compile``: returns the exit status."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    ops = _names(args.ops, _table(), "ops")
    dtypes = _names(args.dtypes, DTYPES, "dtypes")
    if args.jobs < 1:
        raise ValueError(f"--jobs {args.jobs}: give at least 1")
    pairs = [(op, dtype) for op in ops for dtype in dtypes]
    jobs = min(args.jobs, len(pairs))
    print(f"poolnd compile: {len(pairs)} op and dtype pairs in {jobs} processes",
          file=sys.stderr, flush=True)
    started = time.perf_counter()
    total = 0
    # fresh processes (spawn), not forks of this one: numba's threads do not survive a fork
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        for (op, dtype), (count, seconds) in zip(pairs, pool.map(exercise, *zip(*pairs))):
            total += count
            done = (f"{count} functions compiled in {seconds:.1f} s" if count
                    else f"already compiled ({seconds:.2f} s from the cache)")
            print(f"{op} {dtype}: {done}", flush=True)
    print(f"compiled {total} functions in {time.perf_counter() - started:.1f} s; later "
          f"processes load them from numba's cache", flush=True)
    return 0


def add_parser(commands: Any) -> None:
    """Add ``poolnd compile`` to the command line (see :mod:`poolnd.cli`)."""
    parser = commands.add_parser(
        "compile", help="compile kernels ahead of their first use, into numba's disk cache",
        description="Compile the kernels of the chosen ops and dtypes now, in several "
        "processes at once, into numba's disk cache, so that their first use later takes "
        "milliseconds instead of seconds each.")
    # the op names come from poolnd._ops when the command runs: the parser stays light
    parser.add_argument("--ops", default=",".join(DEFAULT_OPS), metavar="OPS",
                        help="comma-separated op names without '_pool' (max, avg, lp, "
                        f"adaptive_max, ...; default {','.join(DEFAULT_OPS)})")
    parser.add_argument("--dtypes", default=",".join(DEFAULT_DTYPES), metavar="DTYPES",
                        help=f"comma-separated, from {', '.join(DTYPES)} "
                        f"(default {','.join(DEFAULT_DTYPES)})")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="processes compiling at once (default: every core)")
    parser.set_defaults(run=run)
