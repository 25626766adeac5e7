"""``poolnd pool`` and ``poolnd pyramid``: pooling of files through Dask.

Formats go by name: ``.npy`` (read through a memory map and written chunk by
chunk), Zarr stores (a directory named ``*.zarr``, or any directory holding a
Zarr array; read and written chunk by chunk), TIFF (``.tif``, ``.tiff``;
tifffile) and PNG/JPEG images (``.png``, ``.jpg``, ``.jpeg``; Pillow), the
last two read and written whole. Every input becomes a Dask array, so Zarr
and ``.npy`` data larger than memory stream through in chunks.

Outputs are written next to their final name and renamed into place when
complete, so a failed run leaves no partial result, and an existing output is
replaced only with ``--force``. Mistakes (a missing file, a bad argument, an
unknown format) raise ``ValueError``, ``TypeError`` or ``OSError``, which
``poolnd.cli`` prints as one line with exit status 2.

This module's top level stays light: NumPy, Dask, Zarr, tifffile and Pillow
load inside the commands.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The progress bar appears for work that lasts longer than this (seconds).
PROGRESS_AFTER_S = 1.0
# How long --scheduler waits for the scheduler to answer (seconds).
SCHEDULER_TIMEOUT_S = 10

_NPY = (".npy",)
_ZARR = (".zarr",)
_TIFF = (".tif", ".tiff")
_IMAGE = (".png", ".jpg", ".jpeg")
_FORMATS = ".npy, .zarr (a Zarr store), .tif/.tiff, .png, .jpg/.jpeg"


# --------------------------------------------------------------------------- the parsers


def add_parser(commands: Any) -> None:
    """Add ``poolnd pool`` and ``poolnd pyramid`` to the command line (see :mod:`poolnd.cli`)."""
    pool = commands.add_parser(
        "pool", help="pool a .npy, Zarr, TIFF, PNG or JPEG file into another",
        description="Pool INPUT into OUTPUT; the formats go by name (" + _FORMATS + "). "
        "Without --axes, an image pools its height and width, other inputs their last N "
        "axes (N = the number of --kernel values, every axis for one value).")
    pool.add_argument("input", metavar="INPUT")
    pool.add_argument("output", metavar="OUTPUT")
    pool.add_argument("--op", choices=("max", "avg", "lp"), default="max",
                      help="max, average or LP pooling (default max)")
    pool.add_argument("--kernel", type=int, nargs="+", required=True, metavar="K",
                      help="window length, one value for every pooled axis or one per axis")
    pool.add_argument("--stride", type=int, nargs="+", metavar="S",
                      help="window step (default: the kernel)")
    pool.add_argument("--padding", nargs="+", metavar="P", default=["0"],
                      help="'same', 'valid', or per axis an int or BEFORE:AFTER (max, avg)")
    pool.add_argument("--dilation", type=int, nargs="+", metavar="D", default=[1],
                      help="spacing of the window's taps (max, avg)")
    pool.add_argument("--ceil-mode", action="store_true",
                      help="round the output length up (keeps the edge windows)")
    pool.add_argument("--norm-type", type=float, default=2.0, metavar="P",
                      help="the p of LP pooling (default 2)")
    _common_arguments(pool)
    pool.set_defaults(run=run_pool)

    pyramid = commands.add_parser(
        "pyramid", help="write a multiscale pyramid (Zarr group with OME-NGFF metadata)",
        description="Write INPUT and LEVELS - 1 levels below it into the Zarr group OUTPUT: "
        "array i+1 is array i pooled by FACTOR with ceil_mode, all in INPUT's dtype (integer "
        "averages are rounded). Without --axes, an image pools its height and width, other "
        "inputs every axis.")
    pyramid.add_argument("input", metavar="INPUT")
    pyramid.add_argument("output", metavar="OUTPUT.zarr")
    pyramid.add_argument("--levels", type=int, required=True, metavar="N",
                         help="number of arrays written, the input (level 0) included")
    pyramid.add_argument("--op", choices=("avg", "max"), default="avg",
                         help="average or max pooling (default avg)")
    pyramid.add_argument("--factor", type=int, default=2, metavar="F",
                         help="pooling factor per level on every pooled axis (default 2)")
    _common_arguments(pyramid)
    pyramid.set_defaults(run=run_pyramid)


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--axes", type=int, nargs="+", metavar="A",
                        help="the pooled axes (negative counts from the end)")
    parser.add_argument("--force", action="store_true", help="replace an existing OUTPUT")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on this dask.distributed scheduler (default: local threads); "
                        "its workers must see INPUT and OUTPUT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


# --------------------------------------------------------------------------- formats


def _format(path: Path, role: str) -> str:
    """``npy``, ``zarr``, ``tiff`` or ``image``, from the name (and for Zarr, the contents)."""
    suffix = path.suffix.lower()
    if suffix in _NPY:
        return "npy"
    if suffix in _ZARR or (role == "INPUT" and path.is_dir()
                           and any((path / n).exists() for n in ("zarr.json", ".zarray"))):
        return "zarr"
    if suffix in _TIFF:
        return "tiff"
    if suffix in _IMAGE:
        return "image"
    raise ValueError(f"{role} {str(path)!r}: unsupported format {suffix or '(no extension)'!r}; "
                     f"poolnd reads and writes {_FORMATS}")


@dataclass(frozen=True)
class _NpyFile:
    """A ``.npy`` file as Dask reads and writes it: opened by path in whichever process
    touches it (a memory map does not travel to other processes)."""

    path: str
    shape: tuple[int, ...]
    dtype: Any
    ndim: int

    def __getitem__(self, key):
        import numpy as np

        return np.array(np.load(self.path, mmap_mode="r")[key])

    def __setitem__(self, key, value):
        import numpy as np

        target = np.load(self.path, mmap_mode="r+")
        target[key] = value
        target.flush()


def _read(path: Path):
    """``(dask array, format)`` for INPUT, lazily where the format allows."""
    import numpy as np

    da = _require("dask.array", "dask", "reading files")
    kind = _format(path, "INPUT")
    if kind == "npy":
        header = np.load(path, mmap_mode="r")
        source = _NpyFile(str(path), header.shape, header.dtype, header.ndim)
        return da.from_array(source, chunks=_auto_chunks(da, header.shape, header.dtype)), kind
    if kind == "zarr":
        zarr = _require("zarr", "dask", "reading Zarr")
        try:
            node = zarr.open(store=str(path), mode="r")
        except Exception as error:  # zarr's own errors name no common base class
            raise ValueError(f"INPUT {str(path)!r} is not a readable Zarr store: {error}") from None
        if not hasattr(node, "shape"):
            names = ", ".join(sorted(node.array_keys())) or "none"
            raise ValueError(f"INPUT {str(path)!r} is a Zarr group; name one of its arrays "
                             f"({names}) as {str(path)!r}/NAME")
        return da.from_array(node, chunks=node.chunks), kind
    if kind == "tiff":
        tifffile = _require("tifffile", "images", "reading TIFF")
        data = tifffile.imread(path)
    else:
        image = _require("PIL.Image", "images", "reading PNG and JPEG")
        try:
            with image.open(path) as picture:
                if picture.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
                    picture = picture.convert("RGBA" if "A" in picture.mode else "RGB")
                data = np.asarray(picture)
        except image.UnidentifiedImageError as error:
            raise ValueError(f"INPUT {str(path)!r}: {error}") from None
    return da.from_array(data, chunks=_auto_chunks(da, data.shape, data.dtype)), kind


def _auto_chunks(da, shape, dtype):
    """Dask's automatic chunks (about 128 MiB), equal along every axis where they can be."""
    return da.core.normalize_chunks("auto", shape, dtype=dtype)


def _require(module: str, extra: str, feature: str):
    from ._optional import require

    return require(module, extra, f"poolnd: {feature}")


# --------------------------------------------------------------------------- running


class _Runner:
    """Computes Dask work locally (threads) or on a ``dask.distributed`` scheduler."""

    def __init__(self, address: str | None, progress: bool):
        self.client = None
        self.progress = progress
        if address is not None:
            distributed = _require("distributed", "dask", "--scheduler")
            try:
                self.client = distributed.Client(address, timeout=SCHEDULER_TIMEOUT_S)
            except (OSError, TimeoutError) as error:
                raise OSError(f"cannot reach the scheduler at {address!r}: {error}") from None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def compute(self, work, label: str):
        """``work`` (a Dask collection) computed, with a progress bar for long work."""
        import dask

        if self.progress:
            print(label, file=sys.stderr, flush=True)
        if self.client is None:
            from dask.diagnostics import ProgressBar

            bar = (ProgressBar(minimum=PROGRESS_AFTER_S, out=sys.stderr) if self.progress
                   else contextlib.nullcontext())
            with bar:
                return dask.compute(work, scheduler="threads")[0]
        future = self.client.compute(work)
        if self.progress:
            from distributed import progress

            progress(future)
        return future.result()


# --------------------------------------------------------------------------- checks and output


def _paths(args) -> tuple[Path, Path]:
    source, target = Path(args.input), Path(args.output)
    if not source.exists():
        raise FileNotFoundError(f"INPUT {args.input!r} does not exist")
    if target.exists() and not args.force:
        raise FileExistsError(f"OUTPUT {args.output!r} exists; pass --force to replace it")
    if target.resolve() == source.resolve():
        raise ValueError(f"OUTPUT {args.output!r} is INPUT; write to another path")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"OUTPUT {args.output!r}: folder {str(target.parent)!r} "
                                f"does not exist")
    return source, target


@contextlib.contextmanager
def _written_in_place(target: Path):
    """A temporary path beside ``target`` that becomes ``target`` when the block succeeds."""
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    _remove(partial)
    try:
        yield partial
        _remove(target)
        os.replace(partial, target)
    finally:
        _remove(partial)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _regular_chunks(array, like=None) -> tuple[int, ...]:
    """One chunk shape for a whole array (Zarr's rule): ``like``'s, or the array's largest."""
    chunks = like if like is not None else array.chunksize
    return tuple(max(1, min(c, n)) for c, n in zip(chunks, array.shape))


def _write(array, target: Path, runner: _Runner, label: str, source_kind: str,
           source_dtype) -> None:
    """Compute ``array`` into ``target``, in the format its name says."""
    import numpy as np

    kind = _format(target, "OUTPUT")
    _check_image_output(array, target, source_dtype)
    with _written_in_place(target) as partial:
        if kind == "npy":
            if array.size == 0:
                np.save(partial, np.empty(array.shape, array.dtype), allow_pickle=False)
            else:
                np.lib.format.open_memmap(partial, "w+", array.dtype, array.shape).flush()
                sink = _NpyFile(str(partial), array.shape, array.dtype, array.ndim)
                _store(array, sink, runner, label)
            # np.save adds .npy to a name without it; the partial name has none
            if not partial.exists() and partial.with_suffix(".npy").exists():
                os.replace(partial.with_suffix(".npy"), partial)
        elif kind == "zarr":
            zarr = _require("zarr", "dask", "writing Zarr")
            chunks = _regular_chunks(array)
            sink = zarr.create_array(store=str(partial), shape=array.shape, dtype=array.dtype,
                                     chunks=chunks, zarr_format=3)
            _store(array.rechunk(chunks), sink, runner, label)
        else:
            data = runner.compute(array, label)
            if kind == "tiff":
                _require("tifffile", "images", "writing TIFF").imwrite(partial, data)
            else:
                _write_image(data, partial, target, source_dtype)


def _store(array, sink, runner: _Runner, label: str) -> None:
    import dask.array as da

    runner.compute(da.store(array, sink, lock=False, compute=False), label)


def _write_image(data, partial, target: Path, source_dtype) -> None:
    """PNG or JPEG: averages of integer images are rounded back to the image's dtype.

    ``data`` may be a tiny stand-in with the result's dtype and trailing axes,
    written to memory, to check before any work that the format can hold it.
    """
    import numpy as np

    image = _require("PIL.Image", "images", "writing PNG and JPEG")
    if data.dtype.kind == "f" and np.dtype(source_dtype).kind in "iub":
        data = _round_to(data, source_dtype)
    fmt = "PNG" if target.suffix.lower() == ".png" else "JPEG"
    try:
        image.fromarray(data).save(partial, format=fmt)
    except (TypeError, KeyError, OSError, ValueError) as error:
        raise ValueError(f"OUTPUT {str(target)!r}: {fmt} cannot hold an array of "
                         f"{data.ndim} axes and dtype {data.dtype} ({error}); write .tif, "
                         f".npy or .zarr instead") from None


def _check_image_output(array, target: Path, source_dtype) -> None:
    """Fail before any work if PNG/JPEG cannot hold ``array``'s dtype and axes."""
    import io

    import numpy as np

    if _format(target, "OUTPUT") == "image":
        stand_in = np.zeros((1, 1, *array.shape[2:]), array.dtype)
        _write_image(stand_in, io.BytesIO(), target, source_dtype)


def _round_to(data, dtype):
    """``data`` rounded (half to even) and clipped into the integer (or bool) ``dtype``."""
    import numpy as np

    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return np.rint(data) != 0
    info = np.iinfo(dtype)
    return np.clip(np.rint(data), info.min, info.max).astype(dtype)


# --------------------------------------------------------------------------- arguments


def _sizes(values):
    """One value for every axis (an int), or one per axis (a tuple)."""
    if values is None:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _padding(values: list[str]):
    if len(values) == 1 and values[0] in ("same", "valid"):
        return values[0]
    parsed = []
    for text in values:
        try:
            parsed.append(tuple(int(v) for v in text.split(":")) if ":" in text else int(text))
        except ValueError:
            raise ValueError(f"--padding {' '.join(values)}: each value must be an int or "
                             f"BEFORE:AFTER, or the one word 'same' or 'valid'") from None
    return parsed[0] if len(parsed) == 1 else tuple(parsed)


def _default_axes(args_axes, kind: str, ndim: int, n_kernel: int):
    """The pooled axes: ``--axes``; else an image's height and width; else the last N
    (N = the number of kernel values, every axis for one value)."""
    if args_axes is not None:
        return tuple(args_axes)
    if kind == "image" and ndim in (2, 3) and n_kernel <= 2:
        return (0, 1)
    return tuple(range(ndim - n_kernel if n_kernel > 1 else 0, ndim))


# --------------------------------------------------------------------------- the commands


def run_pool(args) -> int:
    """``poolnd pool``: returns the exit status."""
    import poolnd

    source, target = _paths(args)
    _format(target, "OUTPUT")  # an unknown format fails before any work
    x, kind = _read(source)
    axes = _default_axes(args.axes, kind, x.ndim, len(args.kernel))
    kernel, stride = _sizes(args.kernel), _sizes(args.stride)
    if args.op == "lp":
        if args.padding != ["0"] or args.dilation != [1]:
            raise ValueError("--op lp takes no --padding or --dilation (as PyTorch's lp_pool)")
        y = poolnd.lp_pool(x, args.norm_type, kernel, stride, args.ceil_mode, axes=axes)
    else:
        op = poolnd.max_pool if args.op == "max" else poolnd.avg_pool
        y = op(x, kernel, stride, _padding(args.padding), _sizes(args.dilation),
               args.ceil_mode, axes=axes)
    runner = _Runner(args.scheduler, not args.no_progress)
    try:
        _write(y, target, runner, f"poolnd pool: {x.shape} -> {y.shape} {y.dtype}", kind,
               x.dtype)
    finally:
        runner.close()
    return 0


def run_pyramid(args) -> int:
    """``poolnd pyramid``: returns the exit status."""
    import poolnd
    from poolnd._geometry import plan_pool

    if args.levels < 1:
        raise ValueError(f"--levels {args.levels}: write at least 1 level (the input)")
    if args.factor < 2:
        raise ValueError(f"--factor {args.factor}: the factor must be >= 2")
    source, target = _paths(args)
    x, kind = _read(source)
    zarr = _require("zarr", "dask", "poolnd pyramid")
    axes = _default_axes(args.axes, kind, x.ndim, 1 if args.axes is None else len(args.axes))
    op = poolnd.avg_pool if args.op == "avg" else poolnd.max_pool
    factor = args.factor
    # the axes and the whole geometry are checked before any work
    plan_axes = plan_pool("poolnd pyramid", x.shape, factor, factor, 0, 1, True, axes).axes
    chunks = _regular_chunks(x)
    runner = _Runner(args.scheduler, not args.no_progress)
    try:
        with _written_in_place(target) as partial:
            group = zarr.open_group(store=str(partial), mode="w", zarr_format=3)
            level = x
            for i in range(args.levels):
                if i:
                    previous = group[str(i - 1)]
                    level = op(_from_zarr(previous), factor, factor, ceil_mode=True, axes=axes)
                    if level.dtype != x.dtype:  # integer averages come back to the input's type
                        level = level.map_blocks(_round_to, x.dtype, dtype=x.dtype)
                level_chunks = _regular_chunks(level, chunks)
                sink = group.create_array(str(i), shape=level.shape, dtype=level.dtype,
                                          chunks=level_chunks)
                _store(level.rechunk(level_chunks), sink, runner,
                       f"poolnd pyramid: level {i} of {args.levels - 1}, shape {level.shape}")
            group.attrs.update(_multiscales(source.name, x.ndim, plan_axes, kind, args))
    finally:
        runner.close()
    return 0


def _from_zarr(array):
    import dask.array as da

    return da.from_array(array, chunks=array.chunks)


def _multiscales(name: str, ndim: int, axes: tuple[int, ...], kind: str, args) -> dict:
    """OME-NGFF 0.5 ``multiscales`` metadata (Zarr v3) for the levels written.

    Pooled axes are ``space`` axes named ``z``, ``y``, ``x`` (``d0``, ``d1``, ...
    beyond three); an image's colour axis is ``c`` (``channel``); other axes are
    named ``dim_<axis>``. Level ``i`` scales the pooled axes by ``factor**i``
    and shifts them by ``(factor**i - 1) / 2`` (the centre of its first pixel).
    """
    import poolnd

    names = ("z", "y", "x")[-len(axes):] if len(axes) <= 3 else tuple(
        f"d{i}" for i in range(len(axes)))
    described = []
    for axis in range(ndim):
        if axis in axes:
            described.append({"name": names[axes.index(axis)], "type": "space"})
        elif kind == "image" and axis == ndim - 1:
            described.append({"name": "c", "type": "channel"})
        else:
            described.append({"name": f"dim_{axis}"})
    datasets = []
    for i in range(args.levels):
        step = args.factor ** i
        datasets.append({"path": str(i), "coordinateTransformations": [
            {"type": "scale", "scale": [float(step if a in axes else 1) for a in range(ndim)]},
            {"type": "translation",
             "translation": [(step - 1) / 2 if a in axes else 0.0 for a in range(ndim)]},
        ]})
    return {"ome": {"version": "0.5", "multiscales": [{
        "name": name,
        "axes": described,
        "datasets": datasets,
        "type": "mean" if args.op == "avg" else "max",
        "metadata": {"method": f"poolnd.{args.op}_pool", "version": poolnd.__version__,
                     "kwargs": {"kernel_size": args.factor, "stride": args.factor,
                                "ceil_mode": True}},
    }]}}
