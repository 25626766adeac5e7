"""Faults: an unwritable numba cache, and calls interrupted by KeyboardInterrupt.

- A ``NUMBA_CACHE_DIR`` that cannot be written still gives right results
  (``test_cache.py`` covers a read-only install falling back to the user cache).
- A forward or backward interrupted half-way (KeyboardInterrupt raised where
  a kernel would run) leaves its layer as it was: the last completed
  forward's backward still answers for it, and the next forward and backward
  are right. A layer's state is replaced only once a forward has finished.
- Dask jobs surviving a killed worker: ``tests/test_dask.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import poolnd
from poolnd import _parallel, nn
from poolnd._families import _prepared

X1 = np.random.default_rng(0).integers(-5, 6, (2, 3, 9, 8)).astype(np.float64)
X2 = np.random.default_rng(1).integers(-5, 6, (1, 3, 11, 10)).astype(np.float64)


def test_unwritable_numba_cache_dir_still_works(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")  # a file where the cache folder would go: not even root writes there
    env = {**os.environ, "NUMBA_CACHE_DIR": str(blocker / "cache")}
    script = ("import numpy as np, poolnd\n"
              "x = np.arange(96.0).reshape(2, 3, 4, 4) % 7\n"
              "out, idx = poolnd.max_pool2d(x, 3, 2, 1, return_indices=True)\n"
              "print(out.tolist(), idx.tolist(), poolnd.avg_pool2d(x, 2).tolist())")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    x = np.arange(96.0).reshape(2, 3, 4, 4) % 7
    out, idx = poolnd.max_pool2d(x, 3, 2, 1, return_indices=True)
    avg = poolnd.avg_pool2d(x, 2)
    assert proc.stdout.strip() == f"{out.tolist()} {idx.tolist()} {avg.tolist()}"
    assert not blocker.is_dir()


SAMPLES = np.full((3, 2), 0.4)
LAYERS = {
    "MaxPool2d": lambda: nn.MaxPool2d(3, 2, 1),
    "MaxPool2d indices": lambda: nn.MaxPool2d(2, return_indices=True),
    "AvgPool2d": lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True),
    "LPPool2d": lambda: nn.LPPool2d(2, 2),
    "LPPool2d inf": lambda: nn.LPPool2d(float("inf"), 3, 2),
    "AdaptiveMaxPool2d": lambda: nn.AdaptiveMaxPool2d((3, 4)),
    "AdaptiveAvgPool2d": lambda: nn.AdaptiveAvgPool2d((3, 4)),
    "FractionalMaxPool2d": lambda: nn.FractionalMaxPool2d(2, (4, 4), samples=SAMPLES),
    "MaxPoolNd 4 axes": lambda: nn.MaxPoolNd((1, 2, 2, 2)),
}


def _forward_backward(layer, x):
    y = layer(x)
    y = y[0] if isinstance(y, tuple) else y
    grad = np.arange(y.size, dtype=np.float64).reshape(y.shape) % 5
    return y, layer.backward(grad), grad


@pytest.fixture
def every_kernel_through_threads(monkeypatch):
    """Every kernel run goes through ``_parallel.run_in_threads``, where ``_Interrupt``
    raises: small prepared calls otherwise call their kernel directly, and the prepared
    calls kept from other tests would keep doing so."""
    monkeypatch.setattr(_parallel, "_SMALL_WORK", 0)
    monkeypatch.setattr(_prepared, "_prepared", {})


class _Interrupt:
    """``_parallel.run_in_threads``, raising KeyboardInterrupt on call ``at`` (0: the first)."""

    def __init__(self, at):
        self.at, self.calls, self.real = at, 0, _parallel.run_in_threads

    def __call__(self, *args):
        self.calls += 1
        if self.calls - 1 == self.at:
            raise KeyboardInterrupt
        return self.real(*args)


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("at", [0, 1])
def test_interrupted_forward_leaves_the_layer_as_it_was(name, at, monkeypatch,
                                                         every_kernel_through_threads):
    make = LAYERS[name]
    x2 = X2[0] if name.startswith("Fractional") else X2  # samples fix the batch shape
    x1 = X1[0] if name.startswith("Fractional") else X1
    _, want_g1, grad1 = _forward_backward(make(), x1)
    want_y2, want_g2, _ = _forward_backward(make(), x2)

    layer = make()
    layer(x1)
    interrupt = _Interrupt(at)
    monkeypatch.setattr(_parallel, "run_in_threads", interrupt)
    try:
        layer(x2)
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(_parallel, "run_in_threads", interrupt.real)
    if interrupt.calls <= at:
        pytest.skip(f"{name} runs fewer than {at + 1} kernels in its forward")
    # still the first forward's layer
    np.testing.assert_array_equal(layer.backward(grad1), want_g1)
    y2, g2, _ = _forward_backward(layer, x2)
    np.testing.assert_array_equal(y2, want_y2)
    np.testing.assert_array_equal(g2, want_g2)


@pytest.mark.parametrize("name", LAYERS)
def test_interrupted_backward_leaves_the_layer_usable(name, monkeypatch,
                                                      every_kernel_through_threads):
    make = LAYERS[name]
    x1 = X1[0] if name.startswith("Fractional") else X1
    _, want_g, grad = _forward_backward(make(), x1)
    layer = make()
    layer(x1)
    interrupt = _Interrupt(0)
    monkeypatch.setattr(_parallel, "run_in_threads", interrupt)
    with pytest.raises(KeyboardInterrupt):
        layer.backward(grad)
    monkeypatch.setattr(_parallel, "run_in_threads", interrupt.real)
    np.testing.assert_array_equal(layer.backward(grad), want_g)


def test_interrupt_in_the_calling_thread_waits_for_the_helpers(monkeypatch):
    """The calling thread's own range raising must not return while helper threads still
    write into the output: the next call's result is right."""
    monkeypatch.setattr(_parallel, "_SMALL_WORK", 0)
    before = poolnd.get_num_threads()
    poolnd.set_num_threads(4)
    x = np.random.default_rng(2).standard_normal((8, 64, 64))
    want = poolnd.avg_pool2d(x, 2)
    calls = []

    def kernel(*args):
        calls.append(args[-2:])
        if args[-2] == 0:  # the calling thread's range
            raise KeyboardInterrupt
    try:
        with pytest.raises(KeyboardInterrupt):
            _parallel.run_in_threads(kernel, 8, 10**7)
        assert len(calls) == 4  # the three helpers ran their ranges before the raise
        np.testing.assert_array_equal(poolnd.avg_pool2d(x, 2), want)
    finally:
        poolnd.set_num_threads(before)
