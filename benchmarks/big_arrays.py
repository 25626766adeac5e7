"""Big arrays, measured (a benchmark, not a test): prints figures, asserts nothing.

1. ``poolnd pyramid`` of a Zarr volume (default 1024**3 uint16, 2 GiB, in
   128**3 chunks), run as the command in a child process, beside the same
   pyramid written with ``dask.array.coarsen`` (``np.mean``, rounded half to
   even into the input's dtype, as ``poolnd pyramid`` does) on the same
   chunks, also in a child process: each one's wall time and peak resident
   memory, and whether the two pyramids are equal.
2. Non-overlapping pooling of the same chunked in-memory Dask array by
   poolnd, by ``dask.array.coarsen`` (``np.max``, ``np.mean``) and by
   ``skimage.measure.block_reduce`` per chunk (``map_blocks``), on Dask's
   threaded scheduler: interleaved runs, medians, and each one's time over
   poolnd's.

    python benchmarks/big_arrays.py                       # both, as in the README
    python benchmarks/big_arrays.py --size 256 --skip-pyramid   # a quick look

The Zarr stores go under ``--dir`` (default: the system's temporary folder)
and are deleted afterwards. scikit-image is optional: without it, its column
says so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import dask
import dask.array as da
import numpy as np

import poolnd


def make_volume(path: Path, size: int, chunk: int, dtype: np.dtype) -> float:
    """A ``size**3`` Zarr array of noise, written chunk by chunk; returns seconds."""
    import zarr

    started = time.perf_counter()
    array = zarr.create_array(store=str(path), shape=(size,) * 3, chunks=(chunk,) * 3,
                              dtype=dtype)
    rng = np.random.default_rng(0)
    for z in range(0, size, chunk):  # one slab of chunks at a time: bounded memory here too
        shape = (min(chunk, size - z), size, size)
        if dtype.kind == "f":
            slab = rng.random(shape, dtype=dtype)
        else:
            slab = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, shape, dtype=dtype,
                                endpoint=True)
        array[z:z + slab.shape[0]] = slab
    return time.perf_counter() - started


def run_child(command: list[str]) -> tuple[float, float]:
    """``command`` in a child process: (seconds, that child's peak RSS in GiB)."""
    started = time.perf_counter()
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage, not all children's
    if status != 0:
        raise SystemExit(f"{command[:4]} failed with wait status {status}")
    return time.perf_counter() - started, usage.ru_maxrss / 2**20  # KiB on Linux


def pyramid(source: Path, target: Path, levels: int) -> tuple[float, float]:
    """``poolnd pyramid`` in a child process: (seconds, peak RSS in GiB)."""
    return run_child([sys.executable, "-m", "poolnd", "pyramid", str(source), str(target),
                      "--levels", str(levels), "--no-progress"])


def coarsen_pyramid(source: Path, target: Path, levels: int) -> tuple[float, float]:
    """The same pyramid with ``dask.array.coarsen``, in a child process (see
    :func:`_coarsen_child`): (seconds, peak RSS in GiB)."""
    return run_child([sys.executable, __file__, "--coarsen-child", str(source), str(target),
                      str(levels)])


def _coarsen_child(source: str, target: str, levels: int) -> None:
    """Level 0 copied, then each level the 2x2x2 mean of the one before (read back from
    the store, as ``poolnd pyramid`` does), rounded half to even into the input's dtype."""
    import zarr

    dask.config.set(scheduler="threads")
    x = zarr.open_array(source, mode="r")
    group = zarr.open_group(target, mode="w", zarr_format=3)
    level = da.from_array(x, chunks=x.chunks)
    for i in range(levels):
        if i:
            previous = group[str(i - 1)]
            mean = da.coarsen(np.mean, da.from_array(previous, chunks=previous.chunks),
                              dict.fromkeys(range(3), 2), trim_excess=True)
            level = da.rint(mean).astype(x.dtype) if x.dtype.kind in "iu" else mean.astype(
                x.dtype)
        sink = group.create_array(str(i), shape=level.shape, dtype=level.dtype,
                                  chunks=x.chunks)
        da.store(level.rechunk(x.chunks), sink, lock=False)


def same_pyramids(a: Path, b: Path, levels: int) -> bool:
    """Whether two pyramids hold the same numbers at every level."""
    import zarr

    first, second = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    return all(bool(da.all(da.from_array(first[str(i)]) == da.from_array(second[str(i)]))
                    .compute()) for i in range(levels))


def _block_reduce(func):
    try:
        from skimage.measure import block_reduce
    except ImportError:
        return None
    return lambda x, k: x.map_blocks(partial(block_reduce, block_size=(k,) * x.ndim, func=func),
                                     chunks=tuple(tuple(-(-c // k) for c in cs)
                                                  for cs in x.chunks), dtype=np.float32)


def compare(size: int, chunk: int, repeat: int, kernel: int) -> None:
    """poolnd beside coarsen and block_reduce: medians of interleaved runs."""
    data = np.random.default_rng(1).random((size,) * 3, dtype=np.float32)
    x = da.from_array(data, chunks=(chunk,) * 3)
    axes = {a: kernel for a in range(3)}
    contenders = {
        "max": {
            "poolnd": lambda: poolnd.max_pool(x, (kernel,) * 3),
            "coarsen": lambda: da.coarsen(np.max, x, axes),
            "block_reduce": (lambda f: f and (lambda: f(x, kernel)))(_block_reduce(np.max)),
        },
        "mean": {
            "poolnd": lambda: poolnd.avg_pool(x, (kernel,) * 3),
            "coarsen": lambda: da.coarsen(np.mean, x, axes),
            "block_reduce": (lambda f: f and (lambda: f(x, kernel)))(_block_reduce(np.mean)),
        },
    }
    print(f"\nnon-overlapping {kernel}x{kernel}x{kernel} windows on a {size}^3 float32 Dask "
          f"array ({data.nbytes / 2**20:.0f} MiB, chunks {chunk}^3, threaded scheduler, "
          f"{os.cpu_count()} cores), median of {repeat} interleaved runs:")
    for op, runs in contenders.items():
        reference = runs["poolnd"]().compute()
        for name, make in runs.items():  # the same answer, once (mean within float32 rounding)
            if make is not None and name != "poolnd":
                np.testing.assert_allclose(make().compute(), reference, rtol=1e-5)
        times = {name: [] for name, make in runs.items() if make is not None}
        for _ in range(repeat):
            for name in times:
                lazy = runs[name]()
                started = time.perf_counter()
                lazy.compute()
                times[name].append(time.perf_counter() - started)
        best = statistics.median(times["poolnd"])
        cells = [f"{name} {statistics.median(t) * 1e3:7.1f} ms ({statistics.median(t) / best:.2f}x)"
                 for name, t in times.items()]
        if runs["block_reduce"] is None:
            cells.append("block_reduce: skipped (pip install scikit-image)")
        print(f"  {op:5s} " + "   ".join(cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="edge of the pyramid's volume")
    parser.add_argument("--dtype", default="uint16", help="the pyramid volume's dtype")
    parser.add_argument("--chunk", type=int, default=128, help="chunk edge")
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--compare-size", type=int, default=512,
                        help="edge of the in-memory array for the comparison")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--skip-pyramid", action="store_true")
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument("--coarsen-child", nargs=3, metavar=("SOURCE", "TARGET", "LEVELS"),
                        help=argparse.SUPPRESS)  # coarsen_pyramid's own child process
    args = parser.parse_args()
    if args.coarsen_child:
        _coarsen_child(*args.coarsen_child[:2], int(args.coarsen_child[2]))
        return 0
    dask.config.set(scheduler="threads")
    if not args.skip_pyramid:
        work = Path(tempfile.mkdtemp(prefix="poolnd-big-", dir=args.dir))
        try:
            source = work / "volume.zarr"
            dtype = np.dtype(args.dtype)
            made = make_volume(source, args.size, args.chunk, dtype)
            gib = args.size**3 * dtype.itemsize / 2**30
            print(f"wrote a {args.size}^3 {dtype} Zarr volume ({gib:.2f} GiB, chunks "
                  f"{args.chunk}^3) in {made:.1f} s")
            ours, theirs = work / "pyramid.zarr", work / "coarsen.zarr"
            for name, write, target in (("poolnd pyramid", pyramid, ours),
                                        ("dask.array.coarsen", coarsen_pyramid, theirs)):
                seconds, peak = write(source, target, args.levels)
                print(f"{name} --levels {args.levels}: {seconds:.1f} s, peak RSS {peak:.2f} "
                      f"GiB ({gib / seconds * 1024:.0f} MiB/s of level 0)", flush=True)
            print(f"the two pyramids are equal: {same_pyramids(ours, theirs, args.levels)}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if not args.skip_compare:
        poolnd.max_pool(np.zeros((4, 4, 4), np.float32), (2, 2, 2))  # compile outside the runs
        compare(args.compare_size, args.chunk, args.repeat, 2)
        compare(args.compare_size, args.chunk, args.repeat, 4)
    return 0


if __name__ == "__main__":
    sys.exit(main())
