"""Compile waits said aloud: the line the commands print when numba compiles, and
``poolnd compile``, which fills numba's disk cache ahead of first use."""

import io
import os
import subprocess
import sys

import numba
import pytest

from poolnd import cli, compiling, demo, files

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


@pytest.mark.parametrize("argv, message", [
    (["--ops", "mean"], "--ops 'mean': choose from max, avg"),
    (["--dtypes", "complex64"], "--dtypes 'complex64': choose from bool"),
    (["--jobs", "0"], "--jobs 0"),
])
def test_poolnd_compile_mistakes_are_one_line(argv, message, capsys):
    assert cli.main(["compile", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("poolnd compile: error: ") and message in err and err.count("\n") == 1
