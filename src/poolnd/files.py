"""``poolnd pool`` and ``poolnd pyramid``: pooling of files through Dask.

Formats go by name: ``.npy`` (read through a memory map and written chunk by
chunk), Zarr stores (a directory named ``*.zarr``, or any directory holding a
Zarr array; read and written chunk by chunk), TIFF (``.tif``, ``.tiff``;
tifffile) and PNG/JPEG images (``.png``, ``.jpg``, ``.jpeg``; Pillow), the
last two read and written whole. Every input becomes a Dask array, so Zarr
and ``.npy`` data larger than memory stream through in chunks.

A TIFF's axes come from the file (tifffile's letters: ``YXS`` for RGB,
``ZYX`` for a volume, ``QYX`` or ``IYX`` for pages of unknown meaning), and
only its space axes (Z, Y, X) are pooled unless ``--axes`` says otherwise.

Outputs are written next to their final name (``.NAME.partial-PID``) and
renamed into place when complete, so a failed or interrupted run leaves no
partial result, and an existing output is replaced only with ``--force``.
Partials left by processes that no longer run (killed with SIGKILL, a power
cut) are removed by the next run to the same output. Mistakes (a missing
file, a bad argument, an unknown format, a damaged input, a full disk) raise
``ValueError``, ``TypeError`` or ``OSError``, which ``poolnd.cli`` prints as
one line with exit status 2.

This module's top level stays light: NumPy, Dask, Zarr, tifffile and Pillow
load inside the commands.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The progress bar appears for work that lasts longer than this (seconds).
PROGRESS_AFTER_S = 1.0
# How long --scheduler waits for the scheduler to answer (seconds).
SCHEDULER_TIMEOUT_S = 10
# How long a failed run waits for the tasks still running on the scheduler's workers
# (seconds): they write into the partial output, which is removed next.
CANCEL_WAIT_S = 60
# The longest file name most file systems take (bytes).
NAME_MAX = 255

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
        "Without --axes, an image or TIFF pools its space axes (Y, X, and Z where a TIFF "
        "names one; the last N of them for N --kernel values), never its colours, channels, "
        "time or pages; .npy and Zarr inputs pool their last N axes (every axis for one "
        "--kernel value).")
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
        "averages are rounded). Without --axes, an image or TIFF pools its space axes (Y, X, "
        "and Z where a TIFF names one), other inputs every axis.")
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
    parser.add_argument("--allow-missing-chunks", action="store_true",
                        help="read the chunks missing from a Zarr INPUT as its fill value "
                        "(without this, missing chunks are an error; Zarr writers leave out "
                        "chunks that hold only the fill value)")


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


def _read(path: Path, allow_missing_chunks: bool = False):
    """``(dask array, axes)`` for INPUT, lazily where the format allows.

    ``axes`` names each axis with tifffile's letters (``YXS``, ``ZYX``, ``QYX``)
    for TIFF and images, and is None for ``.npy`` and Zarr, whose axes are unnamed.
    """
    da = _require("dask.array", "dask", "reading files")
    kind = _format(path, "INPUT")
    if kind == "npy":
        header = _open_npy(path)
        source = _NpyFile(str(path), header.shape, header.dtype, header.ndim)
        return da.from_array(source, chunks=_auto_chunks(da, header.shape, header.dtype)), None
    if kind == "zarr":
        array = _open_zarr(path, allow_missing_chunks)
        return da.from_array(_ZarrInput(array, str(path)), chunks=array.chunks), None
    data, axes = _read_tiff(path) if kind == "tiff" else _read_image(path)
    return da.from_array(data, chunks=_auto_chunks(da, data.shape, data.dtype)), axes


def _open_npy(path: Path):
    """``path`` as a read-only memory map; what is not a whole ``.npy`` file is a ValueError."""
    import numpy as np

    with open(path, "rb") as file:
        if file.read(6) != b"\x93NUMPY":  # else NumPy takes it for a pickle
            raise ValueError(f"INPUT {str(path)!r} is not a .npy file (it does not start "
                             f"with NumPy's header)")
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, EOFError) as error:  # a cut file, Python objects, a bad header
        raise ValueError(f"INPUT {str(path)!r} is not a readable .npy file: {error}") from None


def _open_zarr(path: Path, allow_missing_chunks: bool):
    zarr = _require("zarr", "dask", "reading Zarr")
    try:
        node = zarr.open(store=str(path), mode="r")
    except Exception as error:  # zarr's own errors name no common base class
        raise ValueError(f"INPUT {str(path)!r} is not a readable Zarr store: {error}") from None
    if not hasattr(node, "shape"):
        names = ", ".join(sorted(node.array_keys())) or "none"
        raise ValueError(f"INPUT {str(path)!r} is a Zarr group; name one of its arrays "
                         f"({names}) as {str(path)!r}/NAME")
    missing, stored_as = _missing_chunks(node)
    if missing and not allow_missing_chunks:
        raise ValueError(f"INPUT {str(path)!r}: {missing} of {stored_as} are missing from the "
                         f"store and would read as the fill value {node.fill_value}; pass "
                         f"--allow-missing-chunks if that is intended")
    return node


def _missing_chunks(array) -> tuple[int, str]:
    """How many of a Zarr array's stored objects (chunks, or shards) are missing, and
    ``'N chunks'`` (or shards), the number there should be."""
    # zarr counts a stored shard as all the chunks it can hold
    objects = array.shards or array.chunks
    expected = math.prod(-(-n // m) for n, m in zip(array.shape, objects))
    per_object = math.prod(m // c for m, c in zip(objects, array.chunks))
    unit = "shards" if array.shards else "chunks"
    return expected - array.nchunks_initialized // per_object, f"{expected} {unit}"


@dataclass(frozen=True)
class _ZarrInput:
    """A Zarr array as Dask reads it: a chunk that cannot be decoded is a ValueError
    naming the store, not the codec's own error (Zstd's RuntimeError, for one)."""

    array: Any
    path: str

    @property
    def shape(self):
        return self.array.shape

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def ndim(self):
        return self.array.ndim

    def __getitem__(self, key):
        try:
            return self.array[key]
        except Exception as error:  # codecs raise errors of every kind
            where = ", ".join(f"{k.start}:{k.stop}" if isinstance(k, slice) else str(k)
                              for k in key)
            raise ValueError(f"INPUT {self.path!r}: cannot read [{where}]: "
                             f"{type(error).__name__}: {error}") from None


class _Collected(logging.Handler):
    """Keeps the records logged to it."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def _read_tiff(path: Path):
    """``(data, axes)``: the first series of a TIFF, and its axes as tifffile names them.

    tifffile logs what it cannot read (a bad page offset, a cut file) and carries on
    with fewer pages or fails later; either way the file is refused, on one line.
    """
    tifffile = _require("tifffile", "images", "reading TIFF")
    logger = logging.getLogger("tifffile")
    collected, propagate = _Collected(), logger.propagate
    logger.addHandler(collected)
    logger.propagate = False
    try:
        with tifffile.TiffFile(path) as tiff:
            series = tiff.series[0] if tiff.series else None
            data = series.asarray() if series is not None else None
    except Exception as error:  # tifffile raises what the damage leads to
        problem = f"{type(error).__name__}: {error}"
    else:
        problem = None if series is not None else "no image in it"
    finally:
        logger.removeHandler(collected)
        logger.propagate = propagate
    if problem is None and collected.records:
        problem = collected.records[0].getMessage()
    if problem is not None:
        raise ValueError(f"INPUT {str(path)!r} is not a readable TIFF file: {problem}")
    return data, series.axes


def _read_image(path: Path):
    """``(data, axes)`` of a PNG or JPEG: ``YX``, or ``YXS`` with colours."""
    import numpy as np

    image = _require("PIL.Image", "images", "reading PNG and JPEG")
    try:
        with image.open(path) as picture:
            if picture.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
                picture = picture.convert("RGBA" if "A" in picture.mode else "RGB")
            data = np.asarray(picture)
    except (image.UnidentifiedImageError, OSError, ValueError) as error:  # OSError: cut
        raise ValueError(f"INPUT {str(path)!r}: {error}") from None
    return data, "YXS"[:data.ndim]


def _auto_chunks(da, shape, dtype):
    """Dask's automatic chunks (about 128 MiB), equal along every axis where they can be."""
    return da.core.normalize_chunks("auto", shape, dtype=dtype)


def _require(module: str, extra: str, feature: str):
    from ._optional import require

    return require(module, extra, f"poolnd: {feature}")


# --------------------------------------------------------------------------- running


class _Runner:
    """Computes Dask work locally (threads) or on a ``dask.distributed`` scheduler.

    Work that fails or is interrupted returns only once none of its tasks runs any
    more: they write into the partial output, which is removed right after.
    """

    def __init__(self, address: str | None, progress: bool):
        self.client = None
        self.status = progress  # one line per computation, naming what is written
        # a bar's redrawn line is noise in a log or a pipe
        self.progress = progress and sys.stderr.isatty()
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
        if self.status:
            print(label, file=sys.stderr, flush=True)
        if self.client is None:
            return self._compute_here(work)
        return self._compute_there(work)

    def _compute_here(self, work):
        from concurrent.futures import ThreadPoolExecutor

        import dask
        from dask.diagnostics import ProgressBar

        bar = (ProgressBar(minimum=PROGRESS_AFTER_S, out=sys.stderr) if self.progress
               else contextlib.nullcontext())
        # a pool of our own, to wait for its running tasks when the work fails
        pool = ThreadPoolExecutor(os.cpu_count())
        try:
            with bar:
                return dask.compute(work, scheduler="threads", pool=pool)[0]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _compute_there(self, work):
        import distributed

        future = self.client.compute(work)
        try:
            if self.progress:
                distributed.progress(future)
            return future.result()
        except BaseException as error:
            self._cancel(future, work.__dask_layers__())
            if isinstance(error, distributed.KilledWorker):
                raise OSError(f"a worker died running the work: {error}") from None
            raise

    def _cancel(self, future, names) -> None:
        """Cancels ``future``, then waits (at most CANCEL_WAIT_S) until no worker still
        runs a task of the layers ``names``: a task that has started runs to its end."""
        deadline = time.monotonic() + CANCEL_WAIT_S
        # a scheduler that cannot be reached any more runs nothing for us: no waiting then
        with contextlib.suppress(Exception):
            self.client.cancel(future, force=True)
            while (time.monotonic() < deadline
                   and any(self.client.run(_still_running, names, on_error="ignore").values())):
                time.sleep(0.1)


def _still_running(names, dask_worker=None) -> int:
    """On a worker, through ``Client.run``: how many tasks of the layers ``names`` run
    there (a fused task's key holds the name of its last layer, as in
    ``array-poolnd-store-map-<token>``)."""
    return sum(ts.state in ("executing", "long-running", "cancelled", "resumed")
               and any(name in str(ts.key) for name in names)
               for ts in dask_worker.state.tasks.values())


# --------------------------------------------------------------------------- checks and output


def _paths(args) -> tuple[Path, Path]:
    source, target = Path(args.input), Path(args.output)
    if not source.exists():
        raise FileNotFoundError(f"INPUT {args.input!r} does not exist")
    # replacing OUTPUT would delete INPUT, or write into it
    where, there = source.resolve(), target.resolve()
    if there == where:
        raise ValueError(f"OUTPUT {args.output!r} is INPUT; write to another path")
    if there in where.parents:
        raise ValueError(f"OUTPUT {args.output!r} contains INPUT {args.input!r}; write to "
                         f"another path")
    if where in there.parents:
        raise ValueError(f"OUTPUT {args.output!r} lies inside INPUT {args.input!r}; write to "
                         f"another path")
    if target.exists() and not args.force:
        raise FileExistsError(f"OUTPUT {args.output!r} exists; pass --force to replace it")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"OUTPUT {args.output!r}: folder {str(target.parent)!r} "
                                f"does not exist")
    return source, target


def _partial_prefix(target: Path) -> str:
    """``.NAME.partial-``: a process writes ``target`` as this and its process id.

    A NAME too long for the file system's 255 bytes (with the rest) is cut, and a
    hash of the whole name keeps it apart from other names cut the same.
    """
    name = os.fsencode(target.name)
    room = NAME_MAX - len(b"..partial-") - 10  # 10 digits hold any process id
    if len(name) > room:
        digest = hashlib.sha256(name).hexdigest()[:16].encode()
        name = name[:room - len(digest) - 1] + b"~" + digest
    return f".{os.fsdecode(name)}.partial-"


def _partial_path(target: Path, pid: int) -> Path:
    return target.with_name(f"{_partial_prefix(target)}{pid}")


def _remove_stale_partials(target: Path, command: str) -> None:
    """Removes the partials of ``target`` whose process no longer runs (SIGKILL, a crash,
    a power cut), saying so on one line each. (The process id is this machine's: on a
    file system shared between machines, another machine's partial counts as stale.)"""
    prefix = _partial_prefix(target)
    for path in target.parent.iterdir():
        pid = path.name[len(prefix):]
        if path.name.startswith(prefix) and pid.isdigit() and not _running(int(pid)):
            _remove(path)
            print(f"poolnd {command}: removed the partial output {str(path)!r} of process "
                  f"{pid} (no longer running)", file=sys.stderr)


def _running(pid: int) -> bool:
    if os.name != "posix":  # no harmless way to ask: count it as running
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's, or not a process id
        return True
    return True


@contextlib.contextmanager
def _written_in_place(target: Path):
    """A temporary path beside ``target`` that becomes ``target`` when the block succeeds
    (an error, Ctrl-C and SIGTERM, which ``poolnd.cli`` raises as KeyboardInterrupt,
    remove it)."""
    partial = _partial_path(target, os.getpid())
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


def _write(array, target: Path, runner: _Runner, label: str,
           axes: str | None = None) -> None:
    """Compute ``array`` into ``target``, in the format its name says (a TIFF keeps the
    input's ``axes`` letters, where it has them)."""
    kind = _format(target, "OUTPUT")
    _check_image_output(array, target)
    with _written_in_place(target) as partial:
        if kind == "npy":
            _create_npy(partial, target, array.shape, array.dtype)
            if array.size:
                sink = _NpyFile(str(partial), array.shape, array.dtype, array.ndim)
                _store(array, sink, runner, label)
        elif kind == "zarr":
            zarr = _require("zarr", "dask", "writing Zarr")
            chunks = _regular_chunks(array)
            sink = zarr.create_array(store=str(partial), shape=array.shape, dtype=array.dtype,
                                     chunks=chunks, zarr_format=3, config=_EVERY_CHUNK)
            _store(array.rechunk(chunks), sink, runner, label)
        else:
            data = runner.compute(array, label)
            if kind == "tiff":
                _write_tiff(data, partial, axes)
            else:
                _write_image(data, partial, target)


# Zarr leaves out chunks that hold only the fill value unless told; poolnd's outputs
# store every chunk, so that reading them back finds none missing.
_EVERY_CHUNK = {"write_empty_chunks": True}


def _create_npy(partial: Path, target: Path, shape, dtype) -> None:
    """An ``.npy`` file of zeros with its disk space taken now: writing a memory map of a
    sparse file on a full disk kills the process with SIGBUS, where this raises OSError."""
    import numpy as np

    try:
        if math.prod(shape) == 0:  # nothing to map
            with open(partial, "wb") as file:
                np.save(file, np.empty(shape, dtype), allow_pickle=False)
            return
        header = np.lib.format.open_memmap(partial, "w+", dtype, shape)
        start, size = header.offset, header.offset + header.nbytes
        del header
        with open(partial, "r+b") as file:
            _reserve(file, start, size)
    except OSError as error:
        raise OSError(f"OUTPUT {str(target)!r}: cannot write {math.prod(shape)} values of "
                      f"{np.dtype(dtype)}: {error.strerror or error}") from None


def _reserve(file, start: int, size: int) -> None:
    """Takes the disk space of ``file``'s bytes ``start`` to ``size`` now."""
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(file.fileno(), start, size - start)
            return
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # EINVAL: not this disk
                raise
    file.seek(start)  # no fallocate: write the zeros
    for at in range(start, size, 1 << 24):
        file.write(bytes(min(1 << 24, size - at)))


def _write_tiff(data, partial: Path, axes: str | None) -> None:
    tifffile = _require("tifffile", "images", "writing TIFF")
    if axes is None:
        tifffile.imwrite(partial, data)
        return
    # RGB(A) samples are stored as colours, as they came; the axes letters go along
    samples = data.shape[axes.index("S")] if "S" in axes else 0
    colours = {"photometric": "rgb", "planarconfig": "contig" if axes[-1] == "S"
               else "separate"} if samples in (3, 4) else {"photometric": "minisblack"}
    tifffile.imwrite(partial, data, metadata={"axes": axes}, **colours)


def _store(array, sink, runner: _Runner, label: str) -> None:
    import dask.array as da

    runner.compute(da.store(array, sink, lock=False, compute=False), label)


def _write_image(data, partial, target: Path) -> None:
    """PNG or JPEG (:func:`_in_input_dtype` has rounded what pooled an integer image).

    ``data`` may be a tiny stand-in with the result's dtype and trailing axes,
    written to memory, to check before any work that the format can hold it.
    """
    image = _require("PIL.Image", "images", "writing PNG and JPEG")
    fmt = "PNG" if target.suffix.lower() == ".png" else "JPEG"
    try:
        image.fromarray(data).save(partial, format=fmt)
    except (TypeError, KeyError, OSError, ValueError) as error:
        raise ValueError(f"OUTPUT {str(target)!r}: {fmt} cannot hold an array of "
                         f"{data.ndim} axes and dtype {data.dtype} ({error}); write .tif, "
                         f".npy or .zarr instead") from None


def _check_image_output(array, target: Path) -> None:
    """Fail before any work if PNG/JPEG cannot hold ``array``'s dtype and axes."""
    import io

    import numpy as np

    if _format(target, "OUTPUT") == "image":
        stand_in = np.zeros((1, 1, *array.shape[2:]), array.dtype)
        _write_image(stand_in, io.BytesIO(), target)


def _average_in_input_dtype(x, *args, **kwargs):
    """:func:`poolnd.avg_pool`, integer input averaged straight into its own dtype (the
    kernels round half to even); others as :func:`_in_input_dtype` says."""
    import poolnd

    dtype = x.dtype if x.dtype.kind in "iu" else None
    return poolnd.avg_pool(x, *args, dtype=dtype, **kwargs)


def _in_input_dtype(pooled, source_dtype):
    """``pooled`` (a Dask array) in the integer or bool ``source_dtype`` it was pooled from,
    rounded half to even: what ``poolnd pool`` writes for an average of integers (and for
    anything written to PNG/JPEG), and every level of ``poolnd pyramid``. A float result
    of float input is left as it is."""
    import numpy as np

    if pooled.dtype.kind != "f" or np.dtype(source_dtype).kind not in "iub":
        return pooled
    return pooled.map_blocks(_round_to, source_dtype, dtype=source_dtype)


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


def _parse_padding(values: list[str]):
    if len(values) == 1 and values[0] in ("same", "valid"):
        return values[0]
    parsed = []
    for text in values:
        parts = text.split(":")
        try:
            if len(parts) > 2:
                raise ValueError(text)
            parsed.append(tuple(map(int, parts)) if len(parts) == 2 else int(text))
        except ValueError:
            raise ValueError(f"--padding {text}: each value must be an int or BEFORE:AFTER, "
                             f"or the one word 'same' or 'valid'") from None
    return parsed[0] if len(parsed) == 1 else tuple(parsed)


# tifffile's letters for the axes of space, pooled by default
_SPACE = "ZYX"


def _default_axes(args_axes, source: Path, axes: str | None, ndim: int, n_kernel: int):
    """The pooled axes: ``--axes``; else, where the file names its axes (TIFF, images),
    the last N of its space axes Z, Y, X (N = the number of kernel values, all of them
    for one value); else the last N axes (every axis for one value)."""
    if args_axes is not None:
        return tuple(args_axes)
    if axes is None:
        return tuple(range(ndim - n_kernel if n_kernel > 1 else 0, ndim))
    space = tuple(i for i, letter in enumerate(axes) if letter in _SPACE)
    if n_kernel > len(space):
        raise ValueError(f"INPUT {str(source)!r} has {len(space)} space axes "
                         f"({', '.join(axes[i] for i in space) or 'none'} of its axes {axes}) "
                         f"for {n_kernel} kernel values; name the pooled axes with --axes")
    return space if n_kernel == 1 else space[-n_kernel:]


# --------------------------------------------------------------------------- the commands


def run_pool(args) -> int:
    """``poolnd pool``: returns the exit status."""
    import poolnd

    source, target = _paths(args)
    _format(target, "OUTPUT")  # an unknown format fails before any work
    _remove_stale_partials(target, args.command)
    x, letters = _read(source, args.allow_missing_chunks)
    axes = _default_axes(args.axes, source, letters, x.ndim, len(args.kernel))
    kernel, stride = _sizes(args.kernel), _sizes(args.stride)
    if args.op == "lp":
        if args.padding != ["0"] or args.dilation != [1]:
            raise ValueError("--op lp takes no --padding or --dilation (as PyTorch's lp_pool)")
        y = poolnd.lp_pool(x, args.norm_type, kernel, stride, args.ceil_mode, axes=axes)
    else:
        op = poolnd.max_pool if args.op == "max" else _average_in_input_dtype
        y = op(x, kernel, stride, _parse_padding(args.padding), _sizes(args.dilation),
               args.ceil_mode, axes=axes)
    if args.op == "avg" or _format(target, "OUTPUT") == "image":
        y = _in_input_dtype(y, x.dtype)
    runner = _Runner(args.scheduler, not args.no_progress)
    try:
        _write(y, target, runner, f"poolnd pool: {x.shape} -> {y.shape} {y.dtype}", letters)
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
    _check_group_name(Path(args.output))
    source, target = _paths(args)
    _remove_stale_partials(target, args.command)
    x, letters = _read(source, args.allow_missing_chunks)
    zarr = _require("zarr", "dask", "poolnd pyramid")
    axes = _default_axes(args.axes, source, letters, x.ndim,
                         1 if args.axes is None else len(args.axes))
    op = _average_in_input_dtype if args.op == "avg" else poolnd.max_pool
    factor = args.factor
    # the axes and the whole geometry are checked before any work
    plan_axes = plan_pool("poolnd pyramid", x.shape, factor, factor, 0, 1, True, axes).axes
    described = _ngff_axes(x.ndim, plan_axes, letters)
    # levels are stored in NGFF's order (time, then the others, then space): x moved so
    order = sorted(range(x.ndim), key=lambda a: _NGFF_RANK.get(described[a]["type"], 1))
    x = x.transpose(order)
    axes = tuple(order.index(a) for a in plan_axes)
    _check_levels(args.levels, x.shape, axes, factor)
    chunks = _regular_chunks(x)
    runner = _Runner(args.scheduler, not args.no_progress)
    try:
        with _written_in_place(target) as partial:
            group = zarr.open_group(store=str(partial), mode="w", zarr_format=3)
            level = x
            for i in range(args.levels):
                if i:
                    previous = group[str(i - 1)]
                    level = _in_input_dtype(op(_from_zarr(previous), factor, factor,
                                               ceil_mode=True, axes=axes), x.dtype)
                level_chunks = _regular_chunks(level, chunks)
                sink = group.create_array(str(i), shape=level.shape, dtype=level.dtype,
                                          chunks=level_chunks, config=_EVERY_CHUNK)
                _store(level.rechunk(level_chunks), sink, runner,
                       f"poolnd pyramid: level {i} of {args.levels - 1}, shape {level.shape}")
            group.attrs.update(_multiscales(source.name, [described[a] for a in order], axes,
                                            args))
    finally:
        runner.close()
    return 0


def _check_group_name(target: Path) -> None:
    """A pyramid is a Zarr group: an OUTPUT named as another format's file is a mistake."""
    suffix = target.suffix.lower()
    if suffix in (*_NPY, *_TIFF, *_IMAGE):
        raise ValueError(f"OUTPUT {str(target)!r}: a pyramid is a Zarr group (a folder with "
                         f"one array per level), not a {suffix} file; name it "
                         f"{str(target.with_suffix('.zarr'))!r}")


def _check_levels(levels: int, shape: tuple[int, ...], axes: tuple[int, ...],
                  factor: int) -> None:
    """Refuse levels past the first that is 1 along every pooled axis (each would repeat
    it), before any work."""
    from poolnd._geometry import plan_pool

    for i in range(1, levels):
        if all(shape[a] == 1 for a in axes):
            raise ValueError(f"--levels {levels}: level {i - 1} (shape {shape}) is already 1 "
                             f"along every pooled axis, so this pyramid has at most {i} "
                             f"levels; pass --levels {i} or fewer")
        shape = plan_pool("poolnd pyramid", shape, factor, factor, 0, 1, True, axes).out_shape


def _from_zarr(array):
    import dask.array as da

    return da.from_array(array, chunks=array.chunks)


# OME-NGFF names and types of tifffile's axis letters; other letters (pages of
# unknown meaning: Q, I) get a neutral name, dim_<axis>, and the type "custom"
_NGFF_AXES = {"Z": ("z", "space"), "Y": ("y", "space"), "X": ("x", "space"),
              "C": ("c", "channel"), "S": ("c", "channel"), "T": ("t", "time")}
# NGFF's order of axes: time, then channel (or custom), then space
_NGFF_RANK = {"time": 0, "space": 2}


def _ngff_axes(ndim: int, pooled: tuple[int, ...], letters: str | None) -> list[dict]:
    """The ``axes`` of OME-NGFF metadata, in the input's order: from the file's axis
    letters where it has them, else pooled axes are ``space`` axes ``z``, ``y``, ``x``
    (``d0``, ``d1``, ... beyond three) and the others ``dim_<axis>``, of type ``custom``
    (a stack's axis is not space unless it is pooled)."""
    if letters is None:
        names = ("z", "y", "x")[-len(pooled):] if len(pooled) <= 3 else tuple(
            f"d{i}" for i in range(len(pooled)))
        return [{"name": names[pooled.index(axis)], "type": "space"} if axis in pooled
                else {"name": f"dim_{axis}", "type": "custom"} for axis in range(ndim)]
    described = []
    for axis, letter in enumerate(letters):
        name, kind = _NGFF_AXES.get(letter, (f"dim_{axis}", "custom"))
        if any(d["name"] == name for d in described):  # names are unique: C and S both
            name = f"dim_{axis}"
        described.append({"name": name, "type": kind})
    return described


def _multiscales(name: str, described: list[dict], axes: tuple[int, ...], args) -> dict:
    """OME-NGFF 0.5 ``multiscales`` metadata (Zarr v3) for the levels written.

    ``described`` names the stored axes (:func:`_ngff_axes`, in NGFF's order);
    level ``i`` scales the pooled ``axes`` by ``factor**i`` and shifts them by
    ``(factor**i - 1) / 2`` (the centre of its first pixel).
    """
    import poolnd

    ndim = len(described)
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
