"""Dask arrays: lazy results equal to the NumPy path for every geometry and chunking.

The hypothesis tests compute on a ``dask.distributed.LocalCluster`` of two
worker processes (one per module) and compare with the NumPy path bit for
bit: values, dtypes, global indices and errors alike.
"""

import itertools
import logging
import os
import signal
import subprocess
import sys
import time
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolnd

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        with distributed.Client(cluster) as client:
            yield client


# --------------------------------------------------------------------------- strategies


@st.composite
def chunkings(draw, length, max_cuts):
    """Chunk sizes for one axis: a partition of ``length``, down to single elements.

    ``max_cuts`` keeps the task count (and the test's time) bounded.
    """
    if length <= 1:
        return (length,)
    cuts = draw(st.sets(st.integers(1, length - 1), max_size=min(max_cuts, length - 1)))
    bounds = [0, *sorted(cuts), length]
    return tuple(b - a for a, b in zip(bounds, bounds[1:]))


def _pooled_shape(draw):
    """1 to 3 pooled axes (in any order, up to 13 long) among 0 to 2 short batch axes."""
    n = draw(st.integers(1, 3))
    n_batch = draw(st.integers(0, 2))
    ndim = n + n_batch
    axes = tuple(draw(st.permutations(range(ndim)))[:n])
    axes = tuple(sorted(axes)) if draw(st.booleans()) else axes
    shape = [draw(st.integers(1, 3)) for _ in range(ndim)]
    for axis in axes:
        shape[axis] = draw(st.integers(1, 13))
    return n, n_batch, ndim, axes, shape


@st.composite
def cases(draw, op):
    """An input with its chunks and a pooling call's arguments (valid or not)."""
    n, n_batch, ndim, axes, shape = _pooled_shape(draw)
    dtype = draw(st.sampled_from(["float32", "float64", "int16", "uint8"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = (rng.integers(0, 50, size=shape) if dtype in ("int16", "uint8")
         else rng.standard_normal(shape) * 10).astype(dtype)
    if op == "lp":
        x = np.abs(x)
    chunks = tuple(draw(chunkings(length, 3 if axis in axes else 1))
                   for axis, length in enumerate(shape))
    ints = st.integers(1, 5)
    kernel = tuple(draw(ints) for _ in range(n))
    stride = draw(st.none() | st.tuples(*(st.integers(1, 4),) * n))
    kwargs = dict(kernel_size=kernel, stride=stride, ceil_mode=draw(st.booleans()),
                  axes=axes if draw(st.booleans()) or axes != tuple(range(n_batch, ndim))
                  else None)
    if op != "lp":
        kwargs["dilation"] = tuple(draw(st.integers(1, 2)) for _ in range(n))
        kwargs["padding"] = draw(
            st.sampled_from(["same", "valid"])
            | st.integers(0, 2)
            | st.tuples(*(st.tuples(st.integers(0, 3), st.integers(0, 3)),) * n)
        )
    return x, chunks, kwargs


def _same_as_numpy(numpy_call, dask_call, client, indices=False):
    """``dask_call()`` computes on the cluster to ``numpy_call()``'s result, or both raise alike."""
    try:
        expected = numpy_call()
    except ValueError as error:
        with pytest.raises(ValueError) as raised:
            dask_call()  # raised while building the graph, before any work
        assert str(raised.value) == str(error)
        return
    lazy = dask_call()
    got = client.compute(lazy, sync=True) if not indices else client.gather(
        client.compute(list(lazy)))
    for want, have in zip(expected if indices else [expected], got if indices else [got]):
        assert have.dtype == want.dtype
        np.testing.assert_array_equal(have, want)


# --------------------------------------------------------------------------- equal to NumPy


@settings(max_examples=40, deadline=None)
@given(case=cases("max"), nan_policy=st.sampled_from(["propagate", "omit"]),
       return_indices=st.booleans(), with_nan=st.booleans())
def test_max_pool_of_dask_equals_numpy(client, case, nan_policy, return_indices, with_nan):
    x, chunks, kwargs = case
    if with_nan and x.dtype.kind == "f" and x.size:
        x = x.copy()
        x.flat[:: 3] = np.nan
    kwargs.update(nan_policy=nan_policy, return_indices=return_indices)
    dx = da.from_array(x, chunks=chunks)
    _same_as_numpy(lambda: poolnd.max_pool(x, **kwargs), lambda: poolnd.max_pool(dx, **kwargs),
                   client, indices=return_indices)


@settings(max_examples=40, deadline=None)
@given(case=cases("avg"), count_include_pad=st.booleans(),
       divisor_override=st.none() | st.integers(1, 7))
def test_avg_pool_of_dask_equals_numpy(client, case, count_include_pad, divisor_override):
    x, chunks, kwargs = case
    kwargs.update(count_include_pad=count_include_pad, divisor_override=divisor_override)
    dx = da.from_array(x, chunks=chunks)
    _same_as_numpy(lambda: poolnd.avg_pool(x, **kwargs), lambda: poolnd.avg_pool(dx, **kwargs),
                   client)


@settings(max_examples=25, deadline=None)
@given(case=cases("lp"), norm_type=st.sampled_from([1, 2, 3, 1.5, float("inf")]))
def test_lp_pool_of_dask_equals_numpy(client, case, norm_type):
    x, chunks, kwargs = case
    dx = da.from_array(x, chunks=chunks)
    _same_as_numpy(lambda: poolnd.lp_pool(x, norm_type, **kwargs),
                   lambda: poolnd.lp_pool(dx, norm_type, **kwargs), client)


@pytest.mark.parametrize("chunks", [(2, 5, 7, 3, 4), (3, 3, 2, 4, 8), (3, 16, 16, 16, 16)])
def test_four_pooled_axes_large_windows_and_channels_last(client, chunks):
    # large windows (>= 16 taps) take the running-sum path, four axes the two-stage one
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 11, 9, 10, 8)).astype(np.float32)
    dx = da.from_array(x, chunks=chunks)
    for kwargs in (dict(kernel_size=(3, 2, 3, 2), stride=(2, 1, 2, 3), padding=1, ceil_mode=True,
                        axes=(0, 1, 2, 3)),
                   dict(kernel_size=(5, 4), stride=(2, 3), padding="same", axes=(1, 3)),
                   dict(kernel_size=(6, 6), stride=(4, 5), padding=(3, 2), ceil_mode=True,
                        count_include_pad=False)):
        for op in (poolnd.avg_pool, poolnd.max_pool):
            if op is poolnd.max_pool:
                kwargs = {k: v for k, v in kwargs.items() if k != "count_include_pad"}
            np.testing.assert_array_equal(client.compute(op(dx, **kwargs), sync=True),
                                          op(x, **kwargs))


def test_large_stride_one_windows_sum_alike_when_blocks_split_the_channels(client):
    # a block's inner batch size (here 1 of 2 channels) once picked another way of summing
    # the last axis than the whole call's, and its sums rounded differently
    x = np.random.default_rng(1).uniform(0, 25, (3, 2, 3, 1, 2)).astype(np.float32)
    dx = da.from_array(x, chunks=(3, 2, 3, 1, 1))
    kwargs = dict(kernel_size=(3, 2, 3), stride=1, axes=(0, 1, 2))
    for op in (poolnd.avg_pool, partial(poolnd.lp_pool, norm_type=1)):
        np.testing.assert_array_equal(client.compute(op(dx, **kwargs), sync=True),
                                      op(x, **kwargs))


@st.composite
def adaptive_cases(draw):
    """An input with its chunks and an adaptive pooling call's arguments.

    Output sizes run past the axis's length (windows then overlap) and may be
    ``None``; chunks may be smaller than a window. Floats may hold NaN, ties
    and signed zeros (the max's first-maximum and NaN rules).
    """
    n, _, _, axes, shape = _pooled_shape(draw)
    dtype = draw(st.sampled_from(["float32", "float64", "float16", "int16", "uint8"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype in ("int16", "uint8"):
        x = rng.integers(0, 50, size=shape).astype(dtype)
    else:
        x = rng.standard_normal(shape) * 10
        if draw(st.booleans()):
            x = np.round(x / 5)  # ties and -0.0
        x[rng.random(shape) < draw(st.sampled_from([0, 0.3, 1]))] = np.nan
        x = x.astype(dtype)
    chunks = tuple(draw(chunkings(length, 3 if axis in axes else 1))
                   for axis, length in enumerate(shape))
    output_size = tuple(draw(st.none() | st.integers(1, 20)) for _ in range(n))
    if draw(st.booleans()) and None not in output_size:
        output_size = output_size[0]  # a bare int: every pooled axis alike
    return x, chunks, output_size, axes


def _refused_as_global(chunks, output_size, axes, shape):
    """Global pooling of pooled axes in several chunks: refused, not read in one task."""
    sizes = output_size if isinstance(output_size, tuple) else (output_size,) * len(axes)
    outs = [shape[a] if s is None else s for s, a in zip(sizes, axes)]
    return all(o == 1 for o in outs) and any(
        sum(1 for c in chunks[a] if c) > 1 for a in axes)


@settings(max_examples=40, deadline=None)
@given(case=adaptive_cases(), nan_policy=st.sampled_from(["propagate", "omit"]),
       return_indices=st.booleans())
def test_adaptive_max_pool_of_dask_equals_numpy(client, case, nan_policy, return_indices):
    x, chunks, output_size, axes = case
    kwargs = dict(axes=axes, return_indices=return_indices, nan_policy=nan_policy)
    dx = da.from_array(x, chunks=chunks)
    if _refused_as_global(chunks, output_size, axes, x.shape):
        with pytest.raises(TypeError, match="global pooling"):
            poolnd.adaptive_max_pool(dx, output_size, **kwargs)
        return
    _same_as_numpy(lambda: poolnd.adaptive_max_pool(x, output_size, **kwargs),
                   lambda: poolnd.adaptive_max_pool(dx, output_size, **kwargs), client,
                   indices=return_indices)


@settings(max_examples=40, deadline=None)
@given(case=adaptive_cases())
def test_adaptive_avg_pool_of_dask_equals_numpy(client, case):
    x, chunks, output_size, axes = case
    dx = da.from_array(x, chunks=chunks)
    if _refused_as_global(chunks, output_size, axes, x.shape):
        with pytest.raises(TypeError, match="global pooling"):
            poolnd.adaptive_avg_pool(dx, output_size, axes=axes)
        return
    _same_as_numpy(lambda: poolnd.adaptive_avg_pool(x, output_size, axes=axes),
                   lambda: poolnd.adaptive_avg_pool(dx, output_size, axes=axes), client)


@pytest.mark.parametrize("chunks", [(40, 3, 30, 20, 2), (7, 6, 11, 20, 1), (40, 2, 30, 7, 3)])
def test_adaptive_four_pooled_axes_and_channels(client, chunks):
    # four axes go in two stages; output sizes of 1 on some of them pick the global kernel
    # for a stage, which the blocks must pick too (even where a block has one window)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 6, 30, 20, 3)).astype(np.float32)
    dx = da.from_array(x, chunks=chunks)
    for output_size in ((1, 2, 1, 1), (3, 1, 1, 2), (1, 6, 1, 1), (7, 4, 9, 25)):
        want = poolnd.adaptive_avg_pool(x, output_size, axes=(0, 1, 2, 3))
        got = poolnd.adaptive_avg_pool(dx, output_size, axes=(0, 1, 2, 3))
        np.testing.assert_array_equal(client.compute(got, sync=True), want)
        values, indices = poolnd.adaptive_max_pool(dx, output_size, axes=(0, 1, 2, 3),
                                                   return_indices=True)
        want = poolnd.adaptive_max_pool(x, output_size, axes=(0, 1, 2, 3), return_indices=True)
        for have, expected in zip(client.gather(client.compute([values, indices])), want):
            np.testing.assert_array_equal(have, expected)


def test_global_adaptive_pooling_of_dask_is_per_chunk_or_refused():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 300, 70, 3)).astype(np.float32)
    # each pooled axis one chunk: one task per chunk. One channel per chunk still sums as
    # the whole call does, channel by channel (one channel alone would sum in blocks)
    dx = da.from_array(x, chunks=(1, 300, 70, 1))
    with dask.config.set(scheduler="synchronous"):
        np.testing.assert_array_equal(poolnd.adaptive_avg_pool(dx, 1, axes=(1, 2)).compute(),
                                      poolnd.adaptive_avg_pool(x, 1, axes=(1, 2)))
        np.testing.assert_array_equal(poolnd.adaptive_max_pool(dx, 1, axes=(1, 2)).compute(),
                                      poolnd.adaptive_max_pool(x, 1, axes=(1, 2)))
    # pooled axes in several chunks: one task would read them all
    dx = da.from_array(x, chunks=(1, 100, 70, 3))
    with pytest.raises(TypeError, match=r"adaptive_avg_pool2d\b.*Dask.*arr\.mean"):
        poolnd.adaptive_avg_pool2d(dx.transpose(0, 3, 1, 2), 1)
    with pytest.raises(TypeError, match=r"adaptive_max_pool\b.*Dask.*arr\.max"):
        poolnd.adaptive_max_pool(dx, (1, 1), axes=(1, 2))


def test_adaptive_blocks_read_only_the_chunks_their_windows_cover():
    from dask.core import flatten, get_dependencies

    x = np.random.default_rng(6).standard_normal((2, 96, 96)).astype(np.float32)
    dx = da.from_array(x, chunks=(1, 16, 16))
    output_size = (5, 40)  # windows longer than a chunk along one axis, shorter along the other
    out = poolnd.adaptive_avg_pool(dx, output_size, axes=(1, 2))
    plan = poolnd._geometry.plan_adaptive("adaptive_avg_pool", x.shape, output_size, (1, 2))
    graph = dict(out.__dask_graph__())
    bounds = [np.cumsum((0, *out.chunks[axis])) for axis in (1, 2)]
    for key in flatten(out.__dask_keys__()):
        _, b, i, j = key
        want = [{b}]
        for index, edges, starts, ends in zip((i, j), bounds, plan.starts, plan.ends):
            # its windows are those that start in input chunk `index`
            assert all(index * 16 <= s < (index + 1) * 16
                       for s in starts[edges[index]:edges[index + 1]])
            lo, hi = starts[edges[index]], ends[edges[index + 1] - 1]  # what they cover
            want.append({c for c in range(6) if c * 16 < hi and lo < (c + 1) * 16})
        read = {k[1:] for k in get_dependencies(graph, key)}
        assert read == set(itertools.product(*want)), key
    with dask.config.set(scheduler="synchronous"):
        np.testing.assert_array_equal(out.compute(),
                                      poolnd.adaptive_avg_pool(x, output_size, axes=(1, 2)))


def test_named_ops_and_layers_take_dask_arrays():
    x = np.arange(2 * 9 * 10, dtype=np.float64).reshape(2, 9, 10) % 7
    dx = da.from_array(x, chunks=(1, 4, 3))
    with dask.config.set(scheduler="synchronous"):
        np.testing.assert_array_equal(poolnd.max_pool2d(dx, 3, 2, 1).compute(),
                                      poolnd.max_pool2d(x, 3, 2, 1))
        np.testing.assert_array_equal(poolnd.avg_pool1d(dx, 4, ceil_mode=True).compute(),
                                      poolnd.avg_pool1d(x, 4, ceil_mode=True))
        np.testing.assert_array_equal(poolnd.lp_pool2d(dx, 2, 2).compute(),
                                      poolnd.lp_pool2d(x, 2, 2))


# --------------------------------------------------------------------------- lazy, blockwise


class _Failing:
    """An array-like that fails when read: only building a graph may touch it."""

    shape, dtype, ndim = (4, 40, 40), np.dtype(np.float32), 3

    def __getitem__(self, key):
        raise AssertionError("read during graph construction")


def test_result_is_lazy():
    dx = da.from_array(_Failing(), chunks=(2, 10, 10))
    out = poolnd.avg_pool(dx, (3, 3), stride=2, padding="same")
    assert isinstance(out, da.Array)
    assert out.shape == (4, 20, 20)
    values, indices = poolnd.max_pool(dx, (2, 2), return_indices=True)
    assert (values.dtype, indices.dtype) == (np.float32, np.int64)


def test_aligned_windows_map_chunks_one_to_one():
    dx = da.ones((4, 64, 48), chunks=(1, 16, 16), dtype=np.float32)
    out = poolnd.max_pool(dx, (4, 4))
    assert out.chunks == ((1,) * 4, (4,) * 4, (4,) * 3)
    # the input's layer and one pooling layer: no slicing, joining or rechunking
    assert len(out.dask.layers) == 2


def test_each_block_reads_only_its_chunk_and_halo():
    from dask.core import get_dependencies

    x = np.random.default_rng(2).standard_normal((2, 96, 96)).astype(np.float32)
    dx = da.from_array(x, chunks=(1, 16, 16))
    kwargs = dict(kernel_size=(5, 5), stride=3, padding=2, ceil_mode=True)
    out = poolnd.avg_pool(dx, **kwargs)
    graph = dict(out.__dask_graph__())
    reads = [get_dependencies(graph, key) for key in out.__dask_keys__() for key in key
             for key in key]
    assert len(reads) == 2 * 6 * 6
    # a halo shorter than a chunk: one chunk, or two neighbours along each axis
    assert max(len(keys) for keys in reads) <= 4
    np.testing.assert_array_equal(out.compute(scheduler="synchronous"),
                                  poolnd.avg_pool(x, **kwargs))


# --------------------------------------------------------------------------- errors, imports


def test_errors_come_before_any_work():
    dx = da.from_array(_Failing(), chunks=(2, 10, 10))
    with pytest.raises(ValueError, match="nan_policy"):
        poolnd.max_pool(dx, (2, 2), nan_policy="ignore")
    with pytest.raises(ValueError, match="kernel_size"):
        poolnd.max_pool(dx, 2)
    with pytest.raises(ValueError, match="divisor_override"):
        poolnd.avg_pool(dx, (2, 2), divisor_override=0)
    with pytest.raises(ValueError, match="norm_type"):
        poolnd.lp_pool(dx, -1, (2, 2))
    with pytest.raises(TypeError, match="dtype complex"):
        poolnd.max_pool(da.zeros((4, 4), dtype=complex), (2, 2))
    unknown = da.ones(10, chunks=5)[da.ones(10, chunks=5) > 0]
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        poolnd.max_pool(unknown, (2,))


def test_docstring_examples_run():
    import doctest

    from poolnd._backends import dask as dask_backend

    result = doctest.testmod(dask_backend, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_numpy_calls_never_import_dask():
    code = ("import sys, numpy as np, poolnd; poolnd.max_pool(np.ones((4, 4)), (2, 2)); "
            "poolnd.avg_pool(np.ones((4, 4)), (2, 2)); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dask'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- a lost worker


def test_a_killed_worker_loses_nothing(client):
    x = np.random.default_rng(3).standard_normal((8, 64, 64)).astype(np.float32)

    def slow(block):  # defined here so that it travels by value to the workers
        time.sleep(0.25)
        return block

    dx = da.from_array(x, chunks=(1, 32, 32)).map_blocks(slow, dtype=x.dtype)
    future = client.compute(poolnd.max_pool(dx, (3, 3), stride=2, padding=1))
    pids = client.run(os.getpid)
    deadline = time.monotonic() + 60
    while not all(client.processing().values()):  # both workers busy with the job
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.6)
    assert not future.done()
    victim = sorted(pids)[0]
    os.kill(pids[victim], signal.SIGKILL)
    got = future.result(timeout=120)
    np.testing.assert_array_equal(got, poolnd.max_pool(x, (3, 3), stride=2, padding=1))
    assert pids[victim] not in client.run(os.getpid).values()  # it was really lost


# --------------------------------------------------------------------------- every public op


class _Unreadable(_Failing):
    shape = (2, 4, 8, 8)


def _public_calls(dx, idx, shape):
    """Every public function of poolnd with a Dask array as its array argument."""
    x = np.ones(shape)
    return {
        **{name: (dx, (2, 2)) for name in ("max_pool", "avg_pool", "adaptive_max_pool",
                                            "adaptive_avg_pool")},
        **{f"{op}{n}d": (dx, 2) for op in ("max_pool", "avg_pool", "adaptive_max_pool",
                                           "adaptive_avg_pool") for n in (1, 2, 3)},
        "lp_pool": (dx, 2, (2, 2)),
        **{f"lp_pool{n}d": (dx, 2, 2) for n in (1, 2, 3)},
        "fractional_max_pool": (dx, (2, 2), (3, 3)),
        "fractional_max_pool2d": (dx, 2, 3),
        "fractional_max_pool3d": (dx, 2, 3),
        "max_unpool": (dx, idx, (2, 2)),
        **{f"max_unpool{n}d": (dx, idx, 2) for n in (1, 2, 3)},
        "max_pool_backward": (dx, idx, shape, (2, 2)),
        "avg_pool_backward": (dx, shape, (2, 2)),
        "lp_pool_backward": (dx, x, 2, (2, 2)),
        "adaptive_max_pool_backward": (dx, idx, shape, (4, 4)),
        "adaptive_avg_pool_backward": (dx, shape, (4, 4)),
        "fractional_max_pool_backward": (dx, idx, shape, (2, 2), (4, 4)),
        "max_unpool_backward": (dx, idx, (2, 2)),
    }


LAZY = {"max_pool", "avg_pool", "lp_pool", "adaptive_max_pool", "adaptive_avg_pool"}


def test_every_public_op_is_lazy_on_dask_or_refuses_it():
    """A Dask array is pooled lazily, or refused with a TypeError naming the op: never
    computed. The input cannot be read at all, so any computing fails the test."""
    dx = da.from_array(_Unreadable(), chunks=(1, 4, 4, 4))
    idx = np.zeros((2, 4, 4, 4), np.int64)
    calls = _public_calls(dx, idx, (2, 4, 8, 8))
    functions = {name for name in poolnd.__all__ if callable(getattr(poolnd, name))
                 and name not in ("get_num_threads", "set_num_threads")
                 and not isinstance(getattr(poolnd, name), type)}
    assert set(calls) == functions  # every public op is fed a Dask array
    for name, args in calls.items():
        op = getattr(poolnd, name)
        if name.rstrip("123d") in LAZY and not name.endswith("backward"):
            out = op(*args)
            assert isinstance(out, da.Array), name
        else:
            with pytest.raises(TypeError, match=rf"(?s){name}\b.*Dask|Dask.*{name}"):
                op(*args)
    # Dask indices with NumPy values are refused too
    with pytest.raises(TypeError, match="Dask"):
        poolnd.max_pool_backward(np.ones((2, 4, 4, 4)), dx[:, :, :4, :4], (2, 4, 8, 8), (2, 2))


def test_every_layer_refuses_dask_arrays():
    dx = da.from_array(_Unreadable(), chunks=(1, 4, 4, 4))
    layers = [cls for name in poolnd.nn.__all__ if (cls := getattr(poolnd.nn, name))]
    for cls in layers:
        n = 2 if cls.__name__.endswith("Nd") else None
        size = (2,) * (n or int(cls.__name__[-2]))
        if cls.__name__.startswith(("Adaptive",)):
            layer = cls(size)
        elif cls.__name__.startswith("LPPool"):
            layer = cls(2, size)
        elif cls.__name__.startswith("Fractional"):
            layer = cls(size, output_ratio=0.5)
        else:
            layer = cls(size)
        with pytest.raises(TypeError, match="x is a Dask array"):
            if cls.__name__.startswith("MaxUnpool"):
                layer(dx, np.zeros(dx.shape, np.int64))
            else:
                layer(dx)
