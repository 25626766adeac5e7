"""Compile waits said aloud: the line the commands print when numba compiles, and
``poolnd compile``, which fills numba's disk cache ahead of first use; and fewer
kernels to compile (read-only inputs share the writable ones' kernels, rare dtypes
take the loop without literal sizes, which gives the same bits)."""

import io
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import poolnd
from poolnd import cli, compiling, demo, files
from poolnd._families import _prepared
from poolnd._kernels import _rows
from poolnd._kernels.reductions import MAX, SUM

NOTICE = "compiling kernels (first use only; `poolnd compile` does it ahead) ...\n"


def _fresh_kernel():
    """A numba function no process has compiled: its first call compiles."""
    return numba.njit(lambda v: v + 1)


def test_the_notice_is_one_line_when_numba_compiles_and_none_when_it_loads():
    kernel = _fresh_kernel()
    stream = io.StringIO()
    with compiling.compile_notice("poolnd pool", stream):
        kernel(1)
        kernel(2.0)  # a second compile: still one line
    assert stream.getvalue() == f"poolnd pool: {NOTICE}"
    stream = io.StringIO()
    with compiling.compile_notice("poolnd pool", stream):
        kernel(3)  # compiled already: nothing to say
    assert stream.getvalue() == ""


@pytest.mark.parametrize("argv, module, name", [
    (["pool", "in.npy", "out.npy", "--kernel", "2"], files, "run_pool"),
    (["pyramid", "in.npy", "out.zarr", "--levels", "2"], files, "run_pyramid"),
    (["pool", "in.npy", "out.npy", "--kernel", "2", "--no-progress"], files, "run_pool"),
    (["demo"], demo, "main"),
])
def test_the_commands_say_when_they_compile(argv, module, name, capsys, monkeypatch):
    kernel = _fresh_kernel()
    monkeypatch.setattr(module, name, lambda *args: kernel(1) and 0)  # the run compiles
    assert cli.main(argv) == 0
    quiet = "--no-progress" in argv
    assert capsys.readouterr().err == ("" if quiet else f"poolnd {argv[0]}: {NOTICE}")


def _in_fresh_cache(cache, *argv):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env,
                          timeout=600)


def test_poolnd_compile_fills_the_cache_for_later_processes(tmp_path):
    # the smallest op, two dtypes in two processes
    done = _in_fresh_cache(tmp_path, "-m", "poolnd", "compile", "--ops", "adaptive_avg",
                           "--dtypes", "float32,float64", "--jobs", "2")
    assert done.returncode == 0, done.stderr
    assert "2 op and dtype pairs in 2 processes" in done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["adaptive_avg float32",
                                                          "adaptive_avg float64"]
    assert all(" functions compiled in " in line for line in lines[:2]), done.stdout
    assert lines[2].startswith("compiled ") and "later processes load them" in lines[2]
    later = _in_fresh_cache(tmp_path, "-c", "from poolnd.compiling import exercise; "
                            "print(exercise('adaptive_avg', 'float32')[0])")
    assert later.stdout.strip() == "0", later.stderr  # nothing left to compile


def test_poolnd_compile_uses_every_core_by_default(monkeypatch):
    seen = {}

    def run(args):
        seen["jobs"] = args.jobs
        return 0

    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    monkeypatch.setattr(compiling, "run", run)
    assert cli.main(["compile"]) == 0
    assert seen == {"jobs": 7}


@pytest.mark.parametrize("argv, message", [
    (["--ops", "mean"], "--ops 'mean': choose from max, avg"),
    (["--dtypes", "complex64"], "--dtypes 'complex64': choose from bool"),
    (["--jobs", "0"], "--jobs 0"),
])
def test_poolnd_compile_mistakes_are_one_line(argv, message, capsys):
    assert cli.main(["compile", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("poolnd compile: error: ") and message in err and err.count("\n") == 1


def test_read_only_and_writable_inputs_share_one_kernel():
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 8))
    read_only = x.copy()
    read_only.flags.writeable = False
    for given in (x, read_only, x[..., ::2]):
        np.testing.assert_array_equal(poolnd.max_pool2d(given, 2),
                                      poolnd.max_pool2d(given.copy(), 2))
    kernel = _rows.forward_kernel(MAX, False, False,
                                  _rows.literal_shape(1, 2, 2, 1, MAX, x.dtype, False))
    assert kernel.whole.signatures
    # every compiled signature reads its input as read-only, so none is compiled twice
    assert not any(signature[0].mutable
                   for part in (kernel.whole, kernel.walk) for signature in part.signatures)


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_the_loops_with_and_without_literal_sizes_give_the_same_bits(dtype, monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 4, (2, 3, 9, 12)).astype(dtype)  # ties in most windows
    if dtype == "float32":
        x[0, 1, 2:5, 3] = np.nan
        x[1] += rng.standard_normal((3, 9, 12)).astype(dtype) * 1e-3

    five = np.concatenate([x, x[:, :2]], axis=1)  # five channels

    def every_path():
        return [*poolnd.max_pool2d(x, 2, return_indices=True), poolnd.avg_pool2d(x, 2),
                poolnd.avg_pool2d(x, 2, padding=1), poolnd.avg_pool2d(x, (3, 2), stride=2),
                *poolnd.max_pool2d(x, 4, return_indices=True),
                *poolnd.max_pool(np.moveaxis(x, 1, -1), 2, axes=(1, 2), return_indices=True),
                *[part for kernel, stride, padding in ((2, 2, 0), (3, 2, 1))  # any C: 5
                  for part in poolnd.max_pool(np.moveaxis(five, 1, -1), kernel, stride, padding,
                                              axes=(1, 2), return_indices=True)],
                poolnd.max_pool(np.moveaxis(five, 1, -1), 2, axes=(1, 2)),
                poolnd.avg_pool(np.moveaxis(five, 1, -1), 2, axes=(1, 2))]

    literal = every_path()
    assert _rows.literal_shape(1, 2, 2, 1, SUM, x.dtype, False) != _rows.GENERIC
    monkeypatch.setattr(_rows, "LITERAL_DTYPES", frozenset())
    monkeypatch.setattr(_prepared, "_prepared", {})  # choose the loops again
    assert _rows.literal_shape(1, 2, 2, 1, SUM, x.dtype, False) == _rows.GENERIC
    for want, got in zip(literal, every_path(), strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_the_walk_compiles_only_for_a_call_with_rows_for_it():
    """A first 2x2 maximum whose rows all go straight into the output compiles the
    whole-row kernel alone; a NaN maximum (its position is the walk's) compiles the
    walk, and both give the same values and positions as the generic walk."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 1, 6, 8)).astype(np.float32)
    shape = _rows.literal_shape(1, 2, 2, 1, MAX, x.dtype, True)
    fresh = _rows.forward_kernel.__wrapped__(MAX, True, True, shape)  # not the shared one
    generic = _rows.forward_kernel(MAX, True, True, _rows.GENERIC)
    assert isinstance(fresh, _rows.WholeRowsFirst) and not fresh.walk.signatures

    def pooled(kernel, x):
        out = np.full((2, 1, 3, 4), -1, np.float32)
        at = np.full(out.shape, -1, np.int64)
        x_rows = x.reshape(2, 1, 6, 8)
        x_rows.flags.writeable = False
        kernel(x_rows, out, at, 1, (1, 2, 2), (1, 2, 2), (1, 1, 1), (0, 0, 0),
               np.float32(-np.inf), (np.ones(1),) * 3, 0, 6)
        return out, at

    for want, got in zip(pooled(generic, x), pooled(fresh, x), strict=True):
        np.testing.assert_array_equal(got, want)
    assert not fresh.walk.signatures
    x[1, 0, 3, 4:6] = np.nan  # window (1, 2) of plane 1: its last NaN is tap 3
    for want, got in zip(pooled(generic, x), pooled(fresh, x), strict=True):
        np.testing.assert_array_equal(got, want)
    assert fresh.walk.signatures
    assert pooled(fresh, x)[1][1, 0, 1, 2] == 3 * 8 + 5


def test_a_rows_divisor_is_the_same_in_python_and_in_the_kernels():
    """row_kernel decides in Python whether any row can go straight into the output, the
    kernels row by row: the two forms of the shared divisor must agree, or rows would be
    skipped by a walk that runs alone."""
    for divisors, n in [([2.0, 2.0, 2.0], 3), ([2.0, 3.0, 3.0], 3), ([3.0, 3.0, 2.0], 3),
                        ([3.0, 3.0, 2.0], 2), ([4.0], 1), ([1.0, 2.0], 0),
                        ([3.0] * 2047 + [2.0], 2048), ([3.0] * 2048, 2048)]:
        row = np.array(divisors)
        assert _rows._row_divisor_of(row, n) == _rows._row_divisor.py_func(row, n), (
            divisors, n)
