"""numba's on-disk cache: a read-only install falls back to a user cache; processes share it;
damaged cache files are compiled again; with nowhere to cache, kernels compile in memory.

Each test runs fresh interpreters on a small problem, so the kernels compile
cold there; the cache directories are temporary.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import poolnd

# One small call, printed so that the parent can compare it with its own result.
SCRIPT = """
import sys, numpy as np, poolnd
x = (np.arange(2 * 3 * 7 * 6) % 11).astype(sys.argv[1]).reshape(2, 3, 7, 6)
out, idx = poolnd.max_pool2d(x, 3, 2, 1, return_indices=True)
print(poolnd.__file__)
print(repr(out.tolist()), repr(idx.tolist()))
"""


def _expected(dtype="float64"):
    x = (np.arange(2 * 3 * 7 * 6) % 11).astype(dtype).reshape(2, 3, 7, 6)
    out, idx = poolnd.max_pool2d(x, 3, 2, 1, return_indices=True)
    return f"{out.tolist()!r} {idx.tolist()!r}"


def _run(env, cwd, dtype="float64"):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, dtype], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc, package=None):
    """The result the process printed, after checking which poolnd it imported."""
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    imported, result = out.strip().splitlines()
    if package is not None:
        assert Path(imported).parent == package
    return result


def _cache_files(folder: Path):
    return sorted(p.name for p in folder.rglob("*.nbi"))


def test_read_only_install_caches_in_the_user_cache(tmp_path):
    package = tmp_path / "site" / "poolnd"
    shutil.copytree(Path(poolnd.__file__).parent, package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    folders = [package, *(p for p in package.rglob("*") if p.is_dir())]
    for folder in folders:
        # a file where the cache folder would go stops even root from caching there
        (folder / "__pycache__").write_text("")
        folder.chmod(0o555)
    user_cache = tmp_path / "user-cache"
    env = {**os.environ, "PYTHONPATH": str(package.parent), "XDG_CACHE_HOME": str(user_cache),
           "HOME": str(tmp_path)}
    env.pop("NUMBA_CACHE_DIR", None)
    try:
        assert _finish(_run(env, tmp_path), package) == _expected()
        assert not list(package.rglob("*.nbi")), "the read-only package was written to"
        assert _cache_files(user_cache), "nothing was cached in the user cache"
        # a second process loads what the first one cached, with the same result
        assert _finish(_run(env, tmp_path), package) == _expected()
    finally:
        for folder in folders:
            folder.chmod(0o755)


def test_processes_compiling_at_once_share_one_cache(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    procs = [_run(env, tmp_path) for _ in range(3)]  # all start with an empty cache
    assert [_finish(p) for p in procs] == [_expected()] * 3
    cached = _cache_files(tmp_path / "cache")
    assert cached
    assert _finish(_run(env, tmp_path)) == _expected()
    assert _cache_files(tmp_path / "cache") == cached  # the later process compiled nothing new


def test_processes_compiling_different_signatures_at_once_each_keep_their_own_code(tmp_path):
    # numba numbers a function's data files in order, and two processes compiling other
    # signatures at once could take the same number: a later process would then load one
    # signature's machine code for another. poolnd names each file by its signature.
    dtypes = ["float32", "float64", "int16", "uint8"]
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    procs = [_run(env, tmp_path, dtype) for dtype in dtypes]  # one empty cache, all at once
    assert [_finish(p) for p in procs] == [_expected(d) for d in dtypes]
    for dtype in dtypes:  # later processes load what is cached: each its own signature's code
        assert _finish(_run(env, tmp_path, dtype)) == _expected(dtype)
    data_files = [p.name for p in (tmp_path / "cache").rglob("*.nbc")]
    assert data_files and not any(name.split(".")[-2].isdigit() for name in data_files)


# The cheapest call: one kernel, so one index file and one data file.
TINY = ("import numpy as np, poolnd\n"
        "print(poolnd.max_pool1d(np.arange(12, dtype=np.float32).reshape(1, 3, 4), 2).tolist())")


def _tiny(env, cwd, prelude=""):
    return subprocess.Popen([sys.executable, "-c", prelude + TINY], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _tiny_expected():
    return repr(poolnd.max_pool1d(np.arange(12, dtype=np.float32).reshape(1, 3, 4), 2).tolist())


def _flip_middle(data):
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 8]) + data[middle + 8:]


DAMAGE = {"truncated": lambda data: data[:len(data) // 2], "emptied": lambda data: b"",
          "flipped": _flip_middle}


def test_damaged_cache_files_are_compiled_again(tmp_path):
    pristine = tmp_path / "pristine"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(pristine)}
    out, err = _tiny(env, tmp_path).communicate(timeout=600)
    assert out.strip() == _tiny_expected(), err
    assert {p.suffix for p in pristine.rglob("*.nb?")} == {".nbi", ".nbc"}
    runs = {}
    for suffix in (".nbi", ".nbc"):  # each damaged alone: a damaged index hides the data file
        for how, damage in DAMAGE.items():
            cache = tmp_path / f"{how}{suffix}"
            shutil.copytree(pristine, cache)
            damaged = {p: damage(p.read_bytes()) for p in cache.rglob("*" + suffix)}
            for path, data in damaged.items():
                path.write_bytes(data)
            runs[cache.name] = damaged, _tiny({**env, "NUMBA_CACHE_DIR": str(cache)}, tmp_path)
    for name, (damaged, proc) in runs.items():
        out, err = proc.communicate(timeout=600)
        assert (proc.returncode, out.strip()) == (0, _tiny_expected()), f"{name}: {err}"
        for path, data in damaged.items():  # the damaged file was written anew
            assert path.read_bytes() != data, f"{name}: {path.name} was left damaged"


# Every one of numba's locators declines a folder it cannot write, and when all decline
# (a read-only install, NUMBA_CACHE_DIR and home read-only: a usual container),
# njit(cache=True) raises "no locator available" as the function is decorated. Emptying the
# locator list is that situation exactly; making every folder read-only would not do, as
# chmod does not stop root and numba looks in more places than a test can close.
NO_LOCATOR = "from numba.core import caching\ncaching.CacheImpl._locator_classes = []\n"


def test_nowhere_to_cache_compiles_in_memory(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("NUMBA_CACHE_LOCATOR_CLASSES", None)  # would replace the list emptied above
    out, err = _tiny(env, tmp_path, NO_LOCATOR).communicate(timeout=600)
    assert out.strip() == _tiny_expected(), err
    assert not (tmp_path / "cache").exists()


def test_a_second_process_loads_every_signature_the_first_compiled(tmp_path):
    """One kernel function compiled for two signatures (max pooling with and without
    positions) in one process: a later process loads both and compiles nothing. Data
    files named by a pickle of the key missed here, as the key's pickle differed between
    a process that compiled and one that loaded."""
    script = ("import numpy as np, poolnd\n"
              "x = np.arange(2 * 3 * 9 * 9, dtype=np.float32).reshape(2, 3, 9, 9)\n"
              "poolnd.max_pool2d(x, 3, 2, 1)\n"
              "poolnd.max_pool2d(x, 3, 2, 1, return_indices=True)\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "NUMBA_DEBUG_CACHE": "1"}
    env.pop("NUMBA_DISABLE_JIT", None)
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, timeout=600) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert "data saved" in runs[0].stdout + runs[0].stderr  # the first compiled
    second = runs[1].stdout + runs[1].stderr
    assert "data saved" not in second, second  # the second loaded all it needed
    assert "data loaded" in second
