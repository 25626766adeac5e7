"""Concurrency: 8 threads calling every op, and separate layer instances, at once
give the results of serial runs.

Each thread runs the whole list of calls below in its own order, all threads
starting together; every result must equal the serial one bit for bit. Sharing
one layer between threads is not safe (a layer keeps its last forward's state,
see the README's Guarantees); separate layers are.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import poolnd
from poolnd import _parallel, nn

THREADS = 8
X = np.random.default_rng(7).integers(-4, 5, (2, 3, 17, 19)).astype(np.float32)
X[0, 0, 3, 4] = np.nan
SAMPLES = np.random.default_rng(8).random((2, 3, 2))


def _functional_calls():
    """(name, thunk) for every op and backward in ``poolnd.__all__``."""
    out, idx = poolnd.max_pool2d(X, 3, 2, 1, return_indices=True)
    a_out, a_idx = poolnd.adaptive_max_pool2d(X, (5, 4), return_indices=True)
    f_out, f_idx = poolnd.fractional_max_pool2d(X, 2, (6, 7), return_indices=True,
                                                samples=SAMPLES)
    g = np.ones_like(out)
    return {
        "max_pool": lambda: poolnd.max_pool(X, (3, 3), 2, 1, return_indices=True),
        "max_pool1d": lambda: poolnd.max_pool1d(X, 4, 3),
        "max_pool2d": lambda: poolnd.max_pool2d(X, 2, nan_policy="omit"),
        "max_pool3d": lambda: poolnd.max_pool3d(X, 2, 1, dilation=2),
        "max_pool_backward": lambda: poolnd.max_pool_backward(g, idx, X.shape, (3, 3), 2, 1),
        "avg_pool": lambda: poolnd.avg_pool(X, (3, 2), 1, 1, count_include_pad=False),
        "avg_pool1d": lambda: poolnd.avg_pool1d(X, 3),
        "avg_pool2d": lambda: poolnd.avg_pool2d(X, 5, 1, 2, ceil_mode=True),
        "avg_pool3d": lambda: poolnd.avg_pool3d(X, 2),
        "avg_pool_backward": lambda: poolnd.avg_pool_backward(g, X.shape, (3, 3), 2, 1),
        "lp_pool": lambda: poolnd.lp_pool(np.abs(X), 2, (2, 3)),
        "lp_pool1d": lambda: poolnd.lp_pool1d(X, 1, 2),
        "lp_pool2d": lambda: poolnd.lp_pool2d(X, float("inf"), 3),
        "lp_pool3d": lambda: poolnd.lp_pool3d(np.abs(X), 3, 2),
        "lp_pool_backward": lambda: poolnd.lp_pool_backward(np.ones((2, 3, 8, 6)), np.abs(X),
                                                            2, (2, 3)),
        "adaptive_max_pool": lambda: poolnd.adaptive_max_pool(X, (4, 6), return_indices=True),
        "adaptive_max_pool1d": lambda: poolnd.adaptive_max_pool1d(X, 5),
        "adaptive_max_pool2d": lambda: poolnd.adaptive_max_pool2d(X, 3, nan_policy="omit"),
        "adaptive_max_pool3d": lambda: poolnd.adaptive_max_pool3d(X, (2, 4, 4)),
        "adaptive_max_pool_backward": lambda: poolnd.adaptive_max_pool_backward(
            np.ones_like(a_out), a_idx, X.shape, (5, 4)),
        "adaptive_avg_pool": lambda: poolnd.adaptive_avg_pool(X, (4, 6)),
        "adaptive_avg_pool1d": lambda: poolnd.adaptive_avg_pool1d(X, 7),
        "adaptive_avg_pool2d": lambda: poolnd.adaptive_avg_pool2d(X, 5),
        "adaptive_avg_pool3d": lambda: poolnd.adaptive_avg_pool3d(X, 2),
        "adaptive_avg_pool_backward": lambda: poolnd.adaptive_avg_pool_backward(
            np.ones((2, 3, 5, 4)), X.shape, (5, 4)),
        "fractional_max_pool": lambda: poolnd.fractional_max_pool(
            X, (2, 2), output_size=(6, 7), samples=SAMPLES, return_indices=True),
        "fractional_max_pool2d": lambda: poolnd.fractional_max_pool2d(X, 3, output_ratio=0.5,
                                                                      samples=SAMPLES),
        "fractional_max_pool3d": lambda: poolnd.fractional_max_pool3d(
            X, 2, output_size=(2, 5, 5), samples=np.full((2, 3), 0.3)),
        "fractional_max_pool_backward": lambda: poolnd.fractional_max_pool_backward(
            np.ones_like(f_out), f_idx, X.shape, (2, 2), (6, 7)),
        "max_unpool": lambda: poolnd.max_unpool(out, idx, (3, 3), 2, 1, output_size=X.shape),
        "max_unpool1d": lambda: poolnd.max_unpool1d(*poolnd.max_pool1d(X, 2, return_indices=True),
                                                    2),
        "max_unpool2d": lambda: poolnd.max_unpool2d(out, idx, 3, 2, 1, X.shape),
        "max_unpool3d": lambda: poolnd.max_unpool3d(*poolnd.max_pool3d(X, 2, return_indices=True),
                                                    2, output_size=X.shape),
        "max_unpool_backward": lambda: poolnd.max_unpool_backward(X, idx, (3, 3), 2, 1,
                                                                  X.shape[-2:]),
        "get_num_threads": poolnd.get_num_threads,
    }


def _layer_calls():
    """Each call makes its own layer: forward, then backward of ones."""
    def run(make, x=X, *extra):
        def call():
            layer = make()
            y = layer(x, *extra)
            y = y[0] if isinstance(y, tuple) else y
            return y, layer.backward(np.ones(y.shape, np.float32))
        return call

    out, idx = poolnd.max_pool2d(X, 2, return_indices=True)
    return {
        "MaxPool2d": run(lambda: nn.MaxPool2d(3, 2, 1)),
        "MaxPoolNd": run(lambda: nn.MaxPoolNd((2, 2, 2), return_indices=True)),
        "AvgPool2d": run(lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True)),
        "AvgPoolNd": run(lambda: nn.AvgPoolNd((2, 3), axes=(1, 3))),
        "LPPool2d": run(lambda: nn.LPPool2d(2, 3)),
        "AdaptiveMaxPool2d": run(lambda: nn.AdaptiveMaxPool2d((5, 4))),
        "AdaptiveAvgPool3d": run(lambda: nn.AdaptiveAvgPool3d(2)),
        "FractionalMaxPool2d": run(lambda: nn.FractionalMaxPool2d(2, (6, 7), samples=SAMPLES)),
        "MaxUnpool2d": run(lambda: nn.MaxUnpool2d(2), out, idx, X.shape),
    }.items()


def _flatten(result):
    if isinstance(result, (tuple, list)):
        return [a for r in result for a in _flatten(r)]
    return [np.asarray(result)]


def _assert_identical(got, want, name):
    got, want = _flatten(got), _flatten(want)
    assert len(got) == len(want), name
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, name
        np.testing.assert_array_equal(g, w, err_msg=name)


def _run_at_once(calls, threads=THREADS):
    """Every thread runs every call (each in its own rotated order), all starting together."""
    names = list(calls)
    barrier = threading.Barrier(threads)
    results = [None] * threads
    errors = []

    def work(t):
        try:
            barrier.wait()
            order = names[t % len(names):] + names[:t % len(names)]
            results[t] = {name: calls[name]() for name in order}
        except BaseException as error:  # reported below, with the thread
            errors.append((t, error))

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0][1]
    return results


@pytest.fixture(params=["serial kernels", "split kernels"])
def split(request, monkeypatch):
    """Also split these small calls over poolnd's own threads, inside each user thread."""
    if request.param == "split kernels":
        monkeypatch.setattr(_parallel, "_SMALL_WORK", 0)
    return request.param


def test_every_op_from_8_threads_at_once_matches_serial(split):
    calls = _functional_calls()
    assert set(calls) | {"set_num_threads"} == set(poolnd.__all__)
    serial = {name: fn() for name, fn in calls.items()}
    for results in _run_at_once(calls):
        for name in calls:
            _assert_identical(results[name], serial[name], name)


def test_separate_layers_in_8_threads_match_serial(split):
    calls = dict(_layer_calls())
    serial = {name: fn() for name, fn in calls.items()}
    for results in _run_at_once(calls):
        for name in calls:
            _assert_identical(results[name], serial[name], name)


def test_thread_pool_grows_safely_while_threads_call(monkeypatch):
    """Threads that each need a bigger helper pool than the last one may replace it at once:
    no call may land on a pool another thread just shut down."""
    monkeypatch.setattr(_parallel, "_SMALL_WORK", 0)
    before = poolnd.get_num_threads()
    x = np.random.default_rng(1).standard_normal((64, 16, 16))
    want = poolnd.max_pool2d(x, 2)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        for threads in [*range(2, 12)] * 3:
            monkeypatch.setattr(_parallel, "_pool", None)
            monkeypatch.setattr(_parallel, "_pool_size", 0)
            poolnd.set_num_threads(threads)
            for results in _run_at_once({"max_pool2d": lambda: poolnd.max_pool2d(x, 2)}):
                _assert_identical(results["max_pool2d"], want, "max_pool2d")
    finally:
        sys.setswitchinterval(switch)
        poolnd.set_num_threads(before)


def test_a_shared_layer_answers_the_newest_forward_of_any_thread():
    """What the README documents: each forward's state waits in the layer, and a backward
    answers the newest waiting forward, whichever thread ran it."""
    layer = nn.MaxPool2d(2)
    small, large = X[:1], X
    thread = threading.Thread(target=layer, args=(large,))
    layer(small)
    thread.start()
    thread.join()
    with pytest.raises(ValueError, match="grad_output"):  # the newest is the other thread's
        layer.backward(np.ones((1, 3, 8, 9), np.float32))
    grad = layer.backward(np.ones((2, 3, 8, 9), np.float32))
    assert grad.shape == large.shape
    grad = layer.backward(np.ones((1, 3, 8, 9), np.float32))  # then this thread's
    assert grad.shape == small.shape
    with pytest.raises(ValueError, match="before forward"):
        layer.backward(np.ones((1, 3, 8, 9), np.float32))
