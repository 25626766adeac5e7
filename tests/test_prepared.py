"""Prepared calls (``poolnd._families._prepared``): a repeated call reuses what its first
call chose, and never a choice made for other strides, dtypes, flags or arguments."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from reference import ref_avg_pool, ref_avg_pool_backward, ref_max_pool, ref_max_pool_backward
from test_reference import assert_same

import poolnd
from poolnd import nn
from poolnd._families import _prepared

SHAPE = (2, 3, 8, 9)


def _values(seed, shape=SHAPE, dtype=np.float64):
    x = np.random.default_rng(seed).integers(-3, 4, shape).astype(dtype)
    if x.dtype.kind == "f":
        x[0, 0, 1, 2] = np.nan
    return x


def _layouts(x):
    """The same values and shape in other memory layouts (other strides)."""
    yield "contiguous", x
    yield "fortran", np.asfortranarray(x)
    yield "reversed", np.ascontiguousarray(x[..., ::-1])[..., ::-1]
    wide = np.zeros((*x.shape[:-1], 2 * x.shape[-1]), x.dtype)
    wide[..., ::2] = x
    yield "strided", wide[..., ::2]
    swapped = np.ascontiguousarray(np.swapaxes(x, 0, 1))
    yield "swapped axes", np.swapaxes(swapped, 0, 1)


@pytest.mark.parametrize("return_indices", [False, True])
def test_one_shape_in_every_layout_pools_right(return_indices):
    x = _values(1)
    want, want_idx = ref_max_pool(x, (3, 2), (2, 2), 1)
    for name, arr in _layouts(x):  # same shape each time: only the strides differ
        got = poolnd.max_pool2d(arr, (3, 2), 2, 1, return_indices=return_indices)
        if return_indices:
            got, idx = got
            assert_same(idx, want_idx)
        assert_same(got, want)
        np.testing.assert_array_equal(arr, x, err_msg=name)  # the input is not written


def test_one_shape_in_every_dtype_and_byte_order_pools_right():
    for dtype in (np.float64, np.float32, ">f4", np.int16, np.uint8, np.float16, np.bool_):
        x = np.nan_to_num(np.abs(_values(2))).astype(dtype)
        got = poolnd.max_pool2d(x, 2)
        assert got.dtype == x.dtype, dtype
        assert_same(got, ref_max_pool(x, (2, 2))[0])


def test_an_average_in_every_layout_dtype_and_result_dtype_pools_right():
    # the average's forward is prepared per layout, dtype and arguments: each must miss
    for dtype in (np.float64, np.float32, ">f4", np.float16, np.int16, np.uint8, np.bool_):
        x = np.abs(np.nan_to_num(_values(4))).astype(dtype)
        for result in (None, np.uint8, np.float32):
            want = ref_avg_pool(x, (3, 2), 2, 1, ceil_mode=True, count_include_pad=False,
                                dtype=result)
            for name, arr in _layouts(x):
                for _ in range(2):  # the call that prepares, then one that finds it
                    got = poolnd.avg_pool2d(arr, (3, 2), 2, 1, True, False, dtype=result)
                    assert got.dtype == want.dtype.newbyteorder("="), (dtype, result, name)
                    np.testing.assert_allclose(got, want, err_msg=name,
                                               rtol=1e-3 if got.dtype == np.float16 else 1e-6)
    layer = nn.AvgPool2d(2, channels_last=True)
    x = _values(5)
    for _ in range(2):
        np.testing.assert_allclose(layer(np.moveaxis(x, 1, -1)),
                                   np.moveaxis(ref_avg_pool(x, (2, 2)), 1, -1))


def test_a_repeated_average_to_integers_still_refuses_nan():
    x = np.abs(np.nan_to_num(_values(6)))
    poolnd.avg_pool2d(x, 2, dtype=np.uint8)
    poolnd.avg_pool2d(x, 2, dtype=np.uint8)  # prepared
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="x holds NaN"):
        poolnd.avg_pool2d(x, 2, dtype=np.uint8)


def test_other_arguments_miss_and_are_checked_again():
    x = _values(3)
    for kernel, stride in [((2, 2), None), ((2, 3), None), ((2, 3), 1), ((3, 3), (1, 2))]:
        assert_same(poolnd.max_pool2d(x, kernel, stride), ref_max_pool(x, kernel, stride)[0])
        assert_same(poolnd.max_pool2d(x, kernel[0] if kernel[0] == kernel[1] else kernel,
                                      stride), ref_max_pool(x, kernel, stride)[0])
    poolnd.max_pool2d(x, 1)
    with pytest.raises(TypeError, match="kernel_size"):  # True is not 1, though True == 1
        poolnd.max_pool2d(x, True)
    poolnd.max_pool2d(x, 2, nan_policy="omit")
    with pytest.raises(ValueError, match="nan_policy"):
        poolnd.max_pool2d(x, 2, nan_policy="bogus")
    with pytest.raises((TypeError, ValueError), match="kernel_size"):
        poolnd.max_pool2d(x, 2.5)
    poolnd.max_pool2d(x, 2)
    with pytest.raises(TypeError, match="kernel_size"):  # 2.0 == 2, but sizes are ints
        poolnd.max_pool2d(x, 2.0)
    poolnd.adaptive_avg_pool2d(x, 2)  # the plans' own cache keeps them apart too
    with pytest.raises(TypeError, match="output_size"):
        poolnd.adaptive_avg_pool2d(x, 2.0)


def test_arguments_that_are_not_plain_values_are_pooled_but_never_kept():
    x = _values(3)
    for kernel in ([2, 2], np.array([2, 2]), (2, np.array(2))):
        _prepared._prepared.clear()
        assert_same(poolnd.max_pool2d(x, kernel), ref_max_pool(x, (2, 2))[0])
        assert _prepared._prepared == {}, kernel
    # a NumPy scalar's repr names its type and value: kept
    for kernel in ((2, 2), np.int64(2)):
        assert_same(poolnd.max_pool2d(x, kernel), ref_max_pool(x, (2, 2))[0])
        assert any(repr(kernel) in call_key[-1] for call_key in _prepared._prepared), kernel


def _layouts_kept():
    """The input layouts of the prepared calls kept."""
    return {call_key[0] for call_key in _prepared._prepared}


def test_an_unaligned_input_of_a_prepared_layout_is_a_layout_of_its_own():
    # numba types an unaligned array apart, and a prepared call runs the version of its
    # kernel its first call found: shape, strides and dtype alone must not meet it
    x = _values(3)
    buffer = np.zeros(x.nbytes + 1, np.uint8)
    unaligned = np.frombuffer(buffer.data, x.dtype, x.size, offset=1).reshape(x.shape)
    unaligned[...] = x
    assert not unaligned.flags.aligned and unaligned.strides == x.strides
    _prepared._prepared.clear()
    for given in (x, unaligned, x):
        assert_same(poolnd.max_pool2d(given, 2), ref_max_pool(x, (2, 2))[0])
    assert len(_layouts_kept()) == 2
    layer = nn.MaxPool2d(2)
    y = layer(x)
    want, idx = ref_max_pool(x, (2, 2))
    expected = ref_max_pool_backward(np.ones_like(y), idx, x.shape, (2, 2))
    grad = np.frombuffer(np.zeros(y.nbytes + 1, np.uint8).data, y.dtype, y.size,
                         offset=1).reshape(y.shape)
    grad[...] = 1
    read_only = np.ones_like(y)
    read_only.flags.writeable = False
    for g in (np.ones_like(y), grad, read_only, np.ones_like(y)):
        assert_same(layer(x), want)
        assert_same(layer.backward(g), expected)


def test_read_only_input_is_pooled_and_stays_read_only():
    x = _values(4)
    poolnd.max_pool2d(x, 2)  # prepared with a writable array of the same layout
    x.flags.writeable = False
    assert_same(poolnd.max_pool2d(x, 2), ref_max_pool(x, (2, 2))[0])
    assert not x.flags.writeable


def test_layer_across_layouts_and_shapes_trains_right():
    layer = nn.MaxPool2d(3, 2, 1)
    for seed, shape in [(5, SHAPE), (6, (1, 3, 8, 9)), (7, SHAPE)]:
        x = _values(seed, shape)
        want, idx = ref_max_pool(x, (3, 3), 2, 1)
        for _, arr in _layouts(x):
            y = layer(arr)
            assert_same(y, want)
            grad = np.arange(y.size, dtype=np.float64).reshape(y.shape) % 5
            assert_same(layer.backward(grad), ref_max_pool_backward(grad, idx, x.shape, (3, 3),
                                                                    2, 1))


def test_threads_calling_at_once_get_their_own_results():
    inputs = [_values(10 + i, shape) for i, shape in
              enumerate([SHAPE, (1, 3, 8, 9), SHAPE, (2, 3, 9, 8)] * 2)]
    wants = [ref_max_pool(x, (2, 2))[0] for x in inputs]
    results = [None] * len(inputs)
    start = threading.Barrier(len(inputs))

    def work(i):
        start.wait()
        results[i] = [poolnd.max_pool2d(inputs[i], 2) for _ in range(20)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, wants):
        for y in got:
            assert_same(y, want)


def test_prepared_calls_keep_no_data():
    """A prepared call keeps shapes, a kernel and scalars, never an array of the sizes it
    pools: the cache would otherwise hold every input's worth of memory."""
    x = np.zeros((4, 8, 64, 64), np.float32)
    poolnd.max_pool2d(x, 3, 2, 1)
    nn.MaxPool2d(2)(x)

    def arrays_in(value, seen):
        if id(value) in seen:
            return 0
        seen.add(id(value))
        if isinstance(value, np.ndarray):
            return value.nbytes
        if isinstance(value, (tuple, list)):
            return sum(arrays_in(v, seen) for v in value)
        if callable(value) and getattr(value, "__closure__", None):
            return sum(arrays_in(c.cell_contents, seen) for c in value.__closure__)
        return 0

    # per entry: tiny constant arrays (the sums' unit divisors) are fine, an input's are not
    kept = [arrays_in(entry, set()) for entry in _prepared._prepared.values()]
    assert kept and max(kept) < 1024, max(kept)


@pytest.mark.parametrize("layer_class", [nn.MaxPool2d, nn.MaxPool1d, nn.MaxPoolNd])
def test_a_layers_repeated_forward_is_prepared_once(layer_class, monkeypatch):
    from poolnd._families import max as max_family

    layer = layer_class(2, axes=(2, 3)) if layer_class is nn.MaxPoolNd else layer_class(2)
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 8))
    layer.eval()
    first = layer(x)
    made = []
    real = max_family._prepare
    monkeypatch.setattr(max_family, "_prepare", lambda *args: made.append(args) or real(*args))
    for _ in range(3):
        np.testing.assert_array_equal(layer(x), first)
    assert made == [], "the layer's forward was planned again"


@pytest.mark.parametrize("channels_last", [False, True])
def test_a_max_layers_backward_is_right_for_gradients_in_every_layout_and_dtype(channels_last):
    # the backward is prepared once per gradient layout: each layout and dtype must miss
    layer = nn.MaxPool2d(2, channels_last=channels_last)
    x = _values(8)
    want, idx = ref_max_pool(x, (2, 2))
    x_in = np.moveaxis(x, 1, -1) if channels_last else x
    for dtype in (np.float64, np.float32, np.float16, np.int64):
        grad = (np.arange(want.size).reshape(want.shape) % 7).astype(dtype)
        expected = ref_max_pool_backward(grad.astype(np.float64), idx, x.shape, (2, 2), 2, 0)
        for name, arr in _layouts(np.moveaxis(grad, 1, -1) if channels_last else grad):
            layer(x_in)
            got = layer.backward(arr)
            assert got.dtype == (np.float64 if dtype == np.int64 else dtype), name
            got = np.moveaxis(got, -1, 1) if channels_last else got
            np.testing.assert_array_equal(got.astype(np.float64), expected, err_msg=name)
    layer(x_in)
    with pytest.raises(ValueError, match="grad_output has shape"):
        layer.backward(np.ones((2, 3, 4, 5)))


def test_an_averages_divisors_are_kept_per_geometry_and_cannot_be_written():
    from poolnd._families.avg import divisors

    x = _values(9)
    want = poolnd.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
    kept = divisors(x.shape[2:], ((3, 3), (2, 2), (1, 1), (1, 1), (1, 1), want.shape[2:]),
                    False, 0)
    assert kept is divisors(x.shape[2:], ((3, 3), (2, 2), (1, 1), (1, 1), (1, 1),
                                          want.shape[2:]), False, 0)
    for factor in kept:  # shared by every later call: no caller may change them
        with pytest.raises(ValueError, match="read-only"):
            factor[0] = 1.0
    np.testing.assert_array_equal(kept[1], [2.0, 3.0, 3.0, 3.0])  # edge windows hold fewer
    assert_same(poolnd.avg_pool2d(x, 3, 2, 1, count_include_pad=False), want)


@pytest.mark.parametrize("channels_last", [False, True])
def test_an_average_layers_backward_is_right_for_gradients_in_every_layout_and_dtype(
        channels_last):
    layer = nn.AvgPool2d(3, 2, 1, count_include_pad=False, channels_last=channels_last)
    x = _values(11)
    x_in = np.moveaxis(x, 1, -1) if channels_last else x
    out_shape = layer(x_in).shape
    for dtype in (np.float64, np.float32, np.int64):
        grad = (np.arange(np.prod(out_shape)).reshape(out_shape) % 7).astype(dtype)
        grad_nchw = np.moveaxis(grad, -1, 1) if channels_last else grad
        expected = ref_avg_pool_backward(grad_nchw.astype(np.float64), x.shape, (3, 3), 2, 1,
                                         count_include_pad=False)
        for name, arr in _layouts(grad):
            layer(x_in)
            got = layer.backward(arr)
            assert got.dtype == (np.float64 if dtype == np.int64 else dtype), name
            got = np.moveaxis(got, -1, 1) if channels_last else got
            np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=name)
    layer(x_in)
    with pytest.raises(ValueError, match="grad_output has shape"):
        layer.backward(np.ones((2, 3, 4, 6)))
