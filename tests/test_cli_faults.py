"""``poolnd pool`` and ``poolnd pyramid`` under faults: damaged inputs, Zarr chunks that are
missing, an output that holds its input, a full disk, signals, work that fails half-way
(locally and on a dask.distributed scheduler), a worker that dies, and very long names.

Each ends with one line on standard error (exit status 2, or 130 and 143 for SIGINT and
SIGTERM) and leaves no partial output behind.
"""

import logging
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from poolnd import cli, files

pytest.importorskip("dask.array")
zarr = pytest.importorskip("zarr")


def _pool(*argv):
    return cli.main(["pool", *map(str, argv), "--no-progress"])


def _run(*argv, code=None):
    """``python -m poolnd ARGV`` (or ``python -c CODE ARGV``) in a child process."""
    start = ["-c", code] if code else ["-m", "poolnd"]
    return subprocess.run([sys.executable, *start, *map(str, argv)], capture_output=True,
                          text=True, timeout=300)


def _one_error_line(result, command="pool"):
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"poolnd {command}: error: "), lines[0]
    return lines[0]


def _partials(folder):
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name)


# --------------------------------------------------------------------------- damaged inputs


def _npy_of(content):
    def make(path):
        path.write_bytes(content)
    return make


def _zarr_with_a_corrupt_chunk(path):
    array = zarr.create_array(store=str(path), shape=(32, 32), dtype="f4", chunks=(16, 16))
    array[...] = np.random.default_rng(0).standard_normal((32, 32))
    (path / "c" / "0" / "1").write_bytes(b"garbage" * 10)


def _tiff_cut(fraction=None, at_page=None):
    def make(path):
        tifffile = pytest.importorskip("tifffile")
        with tifffile.TiffWriter(path) as tiff:  # five plain pages, no shape metadata
            for i in range(5):
                tiff.write(np.full((64, 64), i + 1, np.uint8), metadata=None)
        data = path.read_bytes()
        if at_page is not None:  # the file ends where a page starts: the others are lost
            with tifffile.TiffFile(path) as tiff:
                end = tiff.pages[at_page].offset
        else:
            end = int(len(data) * fraction)
        path.write_bytes(data[:end])
    return make


def _tiff_bad_first_page(path):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(path, np.zeros((5, 64, 64), np.uint8))
    data = bytearray(path.read_bytes())
    data[4:8] = (10**8).to_bytes(4, "little")  # the offset of the first page
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name, make, message", [
    ("empty.npy", _npy_of(b""), "is not a .npy file"),
    ("pickle.npy", _npy_of(pickle.dumps([1, 2, 3])), "is not a .npy file"),
    ("text.npy", _npy_of(b"1 2 3\n4 5 6\n"), "is not a .npy file"),
    ("objects.npy", lambda p: np.save(p, np.array([{}, 1], dtype=object), allow_pickle=True),
     "is not a readable .npy file"),  # a true .npy of Python objects: NumPy's pickle case
    ("short.npy", lambda p: p.write_bytes(_npy_bytes(np.arange(100.0))[:-80]),
     "is not a readable .npy file"),
    ("corrupt.zarr", _zarr_with_a_corrupt_chunk, "cannot read"),
    ("cut.tif", _tiff_cut(fraction=0.6), "is not a readable TIFF file"),
    ("cut at a page.tif", _tiff_cut(at_page=3), "is not a readable TIFF file"),
    ("bad page offset.tif", _tiff_bad_first_page, "is not a readable TIFF file"),
])
def test_a_damaged_input_is_one_line_naming_the_file(tmp_path, name, make, message):
    source = tmp_path / name
    make(source)
    result = _run("pool", source, tmp_path / "out.npy", "--kernel", "2", "--no-progress")
    assert result.returncode == 2
    line = _one_error_line(result)
    assert repr(str(source)) in line and message in line, line
    assert "allow_pickle" not in line and "pickled" not in line  # not NumPy's advice
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def _npy_bytes(array):
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# --------------------------------------------------------------------------- missing Zarr chunks


@pytest.mark.parametrize("command", ["pool", "pyramid"])
def test_missing_zarr_chunks_are_refused_unless_allowed(tmp_path, command, capsys):
    data = np.arange(1.0, 1 + 48 * 48, dtype=np.float32).reshape(48, 48)
    array = zarr.create_array(store=str(tmp_path / "in.zarr"), shape=data.shape,
                              dtype=data.dtype, chunks=(16, 16))
    array[...] = data
    (tmp_path / "in.zarr" / "c" / "1" / "2").unlink()
    (tmp_path / "in.zarr" / "c" / "2" / "0").unlink()
    out = tmp_path / "out.zarr"
    flags = ["--kernel", "2"] if command == "pool" else ["--levels", "2"]
    assert cli.main([command, str(tmp_path / "in.zarr"), str(out), *flags,
                     "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "2 of 9 chunks are missing" in line and "--allow-missing-chunks" in line
    assert not out.exists() and _partials(tmp_path) == []
    # allowed: the missing chunks read as the fill value (0)
    assert cli.main([command, str(tmp_path / "in.zarr"), str(out), *flags, "--no-progress",
                     "--allow-missing-chunks"]) == 0
    result = zarr.open_array(str(out if command == "pool" else out / "0"), mode="r")[...]
    if command == "pyramid":
        result = result[::2, ::2]  # level 0 is the input: the blocks of pool's output
    assert result.shape == (24, 24) and np.count_nonzero(result == 0) == 2 * 8 * 8
    assert (result[8:16, 16:24] == 0).all() and (result[16:24, 0:8] == 0).all()


def test_outputs_of_zeros_read_back_without_missing_chunks(tmp_path):
    """poolnd's Zarr outputs store every chunk, also those that hold only zeros."""
    np.save(tmp_path / "in.npy", np.zeros((32, 32), np.float32))
    assert _pool(tmp_path / "in.npy", tmp_path / "a.zarr", "--kernel", "1") == 0
    assert _pool(tmp_path / "a.zarr", tmp_path / "b.zarr", "--kernel", "2") == 0
    assert cli.main(["pyramid", str(tmp_path / "b.zarr"), str(tmp_path / "p.zarr"),
                     "--levels", "2", "--no-progress"]) == 0
    assert cli.main(["pool", str(tmp_path / "p.zarr" / "1"), str(tmp_path / "c.npy"),
                     "--kernel", "2", "--no-progress"]) == 0


# --------------------------------------------------------------------------- OUTPUT and INPUT


def test_an_output_that_holds_the_input_is_refused(tmp_path, capsys):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("0", shape=(8, 8), dtype="f4")[...] = 1.0
    source = tmp_path / "g.zarr" / "0"
    assert _pool(source, tmp_path / "g.zarr", "--kernel", "2", "--force") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "contains INPUT" in line
    # through another spelling of the same folder, and inside the input
    assert _pool(source, tmp_path / "x" / ".." / "g.zarr", "--kernel", "2", "--force") == 2
    assert _pool(source, source / "inner.zarr", "--kernel", "2") == 2
    assert "lies inside INPUT" in capsys.readouterr().err
    np.testing.assert_array_equal(zarr.open_array(str(source), mode="r")[...], 1.0)
    assert sorted(p.name for p in source.iterdir()) == ["c", "zarr.json"]


# --------------------------------------------------------------------------- names


def test_a_long_output_name_works(tmp_path):
    np.save(tmp_path / "in.npy", np.arange(64.0).reshape(8, 8))
    for name in ("a" * 246 + ".npy", "é" * 121 + ".zarr"):  # 250 and 248 bytes
        assert _pool(tmp_path / "in.npy", tmp_path / name, "--kernel", "2") == 0
    np.testing.assert_array_equal(np.load(tmp_path / ("a" * 246 + ".npy")),
                                  [[9.0, 11, 13, 15], [25, 27, 29, 31], [41, 43, 45, 47],
                                   [57, 59, 61, 63]])


@pytest.mark.parametrize("name", ["out.npy", "a" * 251 + ".npy", "ü" * 125 + ".tif"])
def test_partial_names_fit_and_say_whose_they_are(tmp_path, name):
    partial = files._partial_path(tmp_path / name, 4194304)
    assert len(os.fsencode(partial.name)) <= 255
    assert partial.parent == tmp_path and partial.name.endswith(".partial-4194304")
    assert partial.name.startswith("." + name[:100])
    if len(os.fsencode(name)) > 200:  # cut: two long names apart only at the end differ
        other = files._partial_path(tmp_path / (name[:-5] + "b.npy"), 4194304)
        assert other.name != partial.name
    else:
        assert partial.name == f".{name}.partial-4194304"


# --------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (needs root and a kernel that lets us mount)."""
    if getattr(os, "geteuid", lambda: -1)() != 0:
        pytest.skip("mounting a 1 MiB tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                              capture_output=True, text=True)
    except OSError as error:
        pytest.skip(f"cannot mount a tmpfs: {error}")
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("name", ["out.npy", "out.zarr"])
def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, small_disk, name):
    data = np.random.default_rng(1).standard_normal((1200, 1200)).astype(np.float32)
    np.save(tmp_path / "in.npy", data)  # 5.5 MiB out, that Zarr's codec cannot shrink
    result = _run("pool", tmp_path / "in.npy", small_disk / name, "--kernel", "1",
                  "--no-progress")
    assert result.returncode == 2, result.stderr  # not killed by SIGBUS
    line = _one_error_line(result)
    assert "No space left on device" in line
    assert list(small_disk.iterdir()) == []


# --------------------------------------------------------------------------- signals


# Runs poolnd with every input chunk read slowly, so that a signal lands mid-run.
_SLOW = """
import sys, time
from poolnd import cli, files
read = files._NpyFile.__getitem__
def slow(self, key):
    time.sleep(0.2)
    return read(self, key)
files._NpyFile.__getitem__ = slow
files._auto_chunks = lambda da, shape, dtype: (1, *shape[1:])
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("name, status", [("SIGTERM", 143), ("SIGINT", 130)])
@pytest.mark.parametrize("output", ["out.zarr", "out.npy"])
def test_a_signal_removes_the_partial_output(tmp_path, name, status, output):
    np.save(tmp_path / "in.npy", np.ones((60, 32, 32), np.float32))
    child = subprocess.Popen([sys.executable, "-c", _SLOW, "pool", str(tmp_path / "in.npy"),
                              str(tmp_path / output), "--kernel", "2", "--no-progress"],
                             stderr=subprocess.PIPE, text=True)
    partial = tmp_path / f".{output}.partial-{child.pid}"
    deadline = time.monotonic() + 120
    while not partial.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert partial.exists(), "the run never started"
    time.sleep(0.5)
    child.send_signal(getattr(signal, name))
    _, err = child.communicate(timeout=120)
    assert child.returncode == status, err
    assert err.strip().splitlines() == [f"poolnd pool: interrupted by {name}"]
    time.sleep(0.5)  # nothing still running writes into the partial afterwards
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy"]


def test_stale_partials_of_dead_processes_are_removed(tmp_path, capsys):
    np.save(tmp_path / "in.npy", np.ones((4, 4), np.float32))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.zarr.partial-{dead.pid}"
    stale.mkdir()
    (stale / "zarr.json").write_text("{}")
    never = tmp_path / f".out.zarr.partial-{2**22 + 1000}"  # above Linux's largest PID
    never.write_text("")
    alive = tmp_path / f".out.zarr.partial-{os.getppid()}"  # pytest's parent: kept
    alive.write_text("")
    other = tmp_path / ".other.zarr.partial-1"  # another output's: kept
    other.write_text("")
    assert _pool(tmp_path / "in.npy", tmp_path / "out.zarr", "--kernel", "2") == 0
    assert _partials(tmp_path) == sorted([alive.name, other.name])
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all("removed the partial output" in line for line in lines)
    assert any(f"process {dead.pid} " in line for line in lines)


# --------------------------------------------------------------------------- work that fails


@pytest.fixture
def failing_reads(tmp_path, monkeypatch):
    """An input whose first chunk fails to read while the others are read slowly: the
    run fails while tasks still write into the partial output."""
    np.save(tmp_path / "in.npy", np.ones((4, 64, 64), np.float32))
    read = files._NpyFile.__getitem__

    def reader(self, key):
        if self.path.endswith("in.npy"):
            if key[0].start == 0:
                time.sleep(0.3)
                raise OSError("the disk went away")
            time.sleep(1.5)
        return read(self, key)
    monkeypatch.setattr(files._NpyFile, "__getitem__", reader)
    monkeypatch.setattr(files, "_auto_chunks", lambda da, shape, dtype: (1, *shape[1:]))
    return tmp_path / "in.npy"


@pytest.mark.parametrize("where", ["threads", "scheduler"])
def test_nothing_writes_into_the_partial_after_a_failure(tmp_path, failing_reads, where,
                                                         capsys):
    flags = []
    with _cluster(where == "scheduler", processes=False) as address:
        if address:
            flags = ["--scheduler", address]
        assert _pool(failing_reads, tmp_path / "out.zarr", "--kernel", "2", "--axes", "1",
                     "2", *flags) == 2
        time.sleep(2.5)  # the slow reads are over
    assert "the disk went away" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy"]


def _cluster(wanted, processes):
    import contextlib

    if not wanted:
        return contextlib.nullcontext(None)
    distributed = pytest.importorskip("distributed")

    @contextlib.contextmanager
    def started():
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=processes,
                                      dashboard_address=None,
                                      silence_logs=logging.CRITICAL) as cluster:
            yield cluster.scheduler_address
    return started()


def test_a_killed_worker_is_one_line(tmp_path, monkeypatch, capsys):
    dask = pytest.importorskip("dask")
    np.save(tmp_path / "in.npy", np.ones((8, 8), np.float32))

    def store_and_die(array, sink, runner, label):  # the worker process dies on the task
        runner.compute(dask.delayed(os._exit)(1), label)
    monkeypatch.setattr(files, "_store", store_and_die)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with _cluster(True, processes=True) as address:
            assert _pool(tmp_path / "in.npy", tmp_path / "out.zarr", "--kernel", "2",
                         "--scheduler", address) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("poolnd pool: error: a worker died")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy"]
