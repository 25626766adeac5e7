"""Thread control: the split of work over threads never changes a result."""

import os
import subprocess
import sys

import numpy as np
import pytest

import poolnd
from poolnd import _parallel
from poolnd.nn import AvgPool2d, MaxPool2d


@pytest.fixture
def restore_threads():
    before = poolnd.get_num_threads()
    yield
    poolnd.set_num_threads(before)


def _results(x):
    out, idx = poolnd.max_pool2d(x, 3, 2, 1, return_indices=True)
    layer, avg = MaxPool2d(3, 2, 1), AvgPool2d(3, 2, 1, ceil_mode=True)
    y, a = layer(x), avg(x)
    return [out, idx, poolnd.avg_pool2d(x, 2), layer.backward(np.ones_like(y)),
            avg.backward(np.ones_like(a)),
            poolnd.max_pool_backward(np.ones_like(out), idx, x.shape, (3, 3), 2, 1)]


def test_results_do_not_depend_on_the_thread_count(restore_threads, monkeypatch):
    monkeypatch.setattr(_parallel, "_SMALL_WORK", 0)  # split even this small work
    x = np.random.default_rng(0).integers(-3, 4, (3, 5, 64, 70)).astype(np.float32)
    poolnd.set_num_threads(1)
    serial = _results(x)
    poolnd.set_num_threads(3)
    assert poolnd.get_num_threads() == 3
    for got, want in zip(_results(x), serial):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", 257, 2**63])
def test_set_num_threads_refuses_what_is_not_a_positive_int(bad, restore_threads):
    with pytest.raises(ValueError, match="set_num_threads"):
        poolnd.set_num_threads(bad)


def test_numba_num_threads_sets_the_default():
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    shown = subprocess.run([sys.executable, "-c", "import poolnd; print(poolnd.get_num_threads())"],
                           env=env, capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "1"
