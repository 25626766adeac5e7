"""Max-unpooling (docs/SPEC.md sections 2 to 6).

Against PyTorch 2.13 CPU with indices that do not repeat (PyTorch keeps whichever
repeated value it writes last, poolnd sums them), and against the brute-force loops
of ``reference.py`` for repeated indices, four pooled axes, channels-last axes and
integer and bool dtypes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import ref_max_unpool, ref_max_unpool_backward
from test_reference import SETTINGS, _values, assert_same
from test_torch import LAYOUTS, arrays, assert_identical, from_planes, to_planes, with_layout

import poolnd
import poolnd.nn
from poolnd import _parallel, _positions

NDIMS = pytest.mark.parametrize("n", [1, 2, 3])
MAX_LEN = {1: 12, 2: 8, 3: 5}


# ---------------------------------------------------------------- cases


@st.composite
def pooled_cases(draw, n):
    """x, the (kernel, stride, padding, ceil_mode) of a max pooling whose windows do not
    overlap (stride >= kernel, so no index repeats), and the input's spatial shape."""
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(n))
    stride = tuple(draw(st.integers(k, k + 1)) for k in kernel)
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    spatial = tuple(draw(st.integers(max(1, k - 2 * p), MAX_LEN[n]))
                    for k, p in zip(kernel, padding))
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    x = draw(arrays(batch + spatial))
    return x, kernel, stride, padding, draw(st.booleans())


def torch_pool_then_unpool(x, kernel, stride, padding, ceil_mode, output_size, grad=None):
    """torch's pooled values and indices, its unpooling of them, and autograd's gradient
    of the unpooling for ``grad``."""
    n, batch = len(kernel), x.shape[: x.ndim - len(kernel)]
    y, idx = getattr(F, f"max_pool{n}d")(to_planes(x, n), kernel, stride, padding, 1,
                                        ceil_mode, True)
    y = y.detach().requires_grad_(grad is not None)
    size = None if output_size is None else output_size[-n:]
    u = getattr(F, f"max_unpool{n}d")(y, idx, kernel, stride, padding, size)
    y_grad = None
    if grad is not None:
        u.backward(to_planes(grad, n))
        y_grad = from_planes(y.grad, batch)
    return from_planes(y, batch), from_planes(idx, batch), from_planes(u, batch), y_grad


def output_size_choice(draw, x, kernel, stride, padding, ceil_mode):
    """None (the default length), the input's pooled lengths, or its whole shape.

    None only where the default holds the input: with padding it can be shorter, and
    the last indices would then fall outside it.
    """
    n = len(kernel)
    pooled = [(length + 2 * p - k + (s - 1 if ceil_mode else 0)) // s + 1
              for length, k, s, p in zip(x.shape[-n:], kernel, stride, padding)]
    pooled = [o - 1 if ceil_mode and (o - 1) * s >= length + p else o
              for o, length, s, p in zip(pooled, x.shape[-n:], stride, padding)]
    default = [(o - 1) * s + k - 2 * p for o, k, s, p in zip(pooled, kernel, stride, padding)]
    fits = all(d >= length for d, length in zip(default, x.shape[-n:]))
    return draw(st.sampled_from([None, x.shape[-n:], x.shape] if fits else
                                [x.shape[-n:], x.shape]))


# ---------------------------------------------------------------- against PyTorch


@NDIMS
@given(data=st.data())
def test_unpool_equals_torch_for_indices_that_do_not_repeat(n, data):
    x, kernel, stride, padding, ceil_mode = data.draw(pooled_cases(n))
    output_size = output_size_choice(data.draw, x, kernel, stride, padding, ceil_mode)
    y, idx, want, _ = torch_pool_then_unpool(x, kernel, stride, padding, ceil_mode,
                                             output_size)
    layout = data.draw(st.sampled_from(LAYOUTS))
    y_in, idx_in = with_layout(y, layout), with_layout(idx, layout)
    got = poolnd.max_unpool(y_in, idx_in, kernel, stride, padding, output_size)
    assert_identical(got, want)
    fn = getattr(poolnd, f"max_unpool{n}d")
    assert_identical(fn(y_in, idx_in, kernel, stride, padding, output_size), want)
    np.testing.assert_array_equal(y_in, y)


@NDIMS
@given(data=st.data())
def test_unpool_backward_equals_torch_autograd(n, data):
    x, kernel, stride, padding, ceil_mode = data.draw(pooled_cases(n))
    output_size = output_size_choice(data.draw, x, kernel, stride, padding, ceil_mode)
    _, idx, u, _ = torch_pool_then_unpool(x, kernel, stride, padding, ceil_mode, output_size)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    grad = rng.standard_normal(u.shape).astype(x.dtype)
    *_, want = torch_pool_then_unpool(x, kernel, stride, padding, ceil_mode, output_size, grad)
    got = poolnd.max_unpool_backward(grad, idx, kernel, stride, padding, output_size)
    assert_identical(got, want)  # a gather: exact


@NDIMS
@given(data=st.data())
def test_any_distinct_indices_equal_torch(n, data):
    # not only max pooling's: any indices inside the output, none repeated
    spatial = tuple(data.draw(st.integers(1, MAX_LEN[n] // 2)) for _ in range(n))
    batch = (data.draw(st.integers(1, 3)),)
    y = data.draw(arrays(batch + spatial))
    size = math.prod(2 * s for s in spatial)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    idx = np.stack([rng.choice(size, math.prod(spatial), replace=False) for _ in range(batch[0])]
                   ).reshape(y.shape)
    want = getattr(F, f"max_unpool{n}d")(torch.tensor(y), torch.tensor(idx), 2)
    assert_identical(poolnd.max_unpool(y, idx, (2,) * n), want.numpy())


@NDIMS
@given(data=st.data())
def test_unpool_layers_equal_torch_modules(n, data):
    x, kernel, stride, padding, ceil_mode = data.draw(pooled_cases(n))
    output_size = output_size_choice(data.draw, x, kernel, stride, padding, ceil_mode)
    batch = x.shape[: x.ndim - n]
    y, idx, want, _ = torch_pool_then_unpool(x, kernel, stride, padding, ceil_mode,
                                             output_size)
    layer = getattr(poolnd.nn, f"MaxUnpool{n}d")(kernel, stride, padding)
    twin = getattr(torch.nn, f"MaxUnpool{n}d")(kernel, stride, padding)
    t = to_planes(y, n).requires_grad_(True)
    u = twin(t, to_planes(idx, n), None if output_size is None else output_size[-n:])
    grad = np.random.default_rng(0).standard_normal(u.shape).astype(x.dtype)
    u.backward(torch.from_numpy(grad))
    grad = grad.reshape(want.shape)
    layer(y, np.zeros_like(idx), output_size)  # backward must use the latest forward
    assert_identical(layer(y, idx, output_size), from_planes(u, batch))
    assert_identical(layer.backward(grad), from_planes(t.grad, batch))


def test_unpool_inverts_max_pool_on_its_maxima():
    x = np.array([[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 8.0, 7.0]])
    y, idx = poolnd.max_pool(x, (2, 2), return_indices=True)
    np.testing.assert_array_equal(poolnd.max_unpool(y, idx, (2, 2)),
                                  [[0.0, 5.0, 0.0, 0.0], [0.0, 0.0, 8.0, 0.0]])


# ---------------------------------------------------------------- against the reference


@settings(max_examples=40, **SETTINGS)
@given(st.integers(1, 4), st.integers(0, 2**32 - 1),
       st.sampled_from(["float64", "int16", "bool"]))
def test_repeated_indices_sum(n, seed, dtype):
    # overlapping windows (stride 1) report the same maximum more than once
    rng = np.random.default_rng(seed)
    shape = (2, *rng.integers(2, 5 if n < 4 else 4, n))
    x = _values(seed, shape, dtype)
    y, idx = poolnd.max_pool(x, (2,) * n, 1, return_indices=True)
    got = poolnd.max_unpool(y, idx, (2,) * n, 1, output_size=shape)
    assert_same(got, ref_max_unpool(y, idx, (2,) * n, 1, output_size=shape))
    grad = rng.integers(-3, 4, shape).astype(np.float64)
    assert_same(poolnd.max_unpool_backward(grad, idx, (2,) * n, 1, output_size=shape),
                ref_max_unpool_backward(grad, idx, (2,) * n, 1, output_size=shape))


def test_repeated_index_sums_not_keeps_last():
    y = np.array([[1.0, 2.0, 4.0]])
    idx = np.array([[3, 3, 0]])
    # default length (3 - 1)*2 + 2 = 6; torch would keep 1.0 or 2.0 at index 3
    np.testing.assert_array_equal(poolnd.max_unpool(y, idx, (2,)),
                                  [[4.0, 0.0, 0.0, 3.0, 0.0, 0.0]])


@settings(max_examples=30, **SETTINGS)
@given(st.sampled_from([1, 2, 3]), st.integers(0, 2**32 - 1), st.booleans())
def test_channels_last_axes_match_reference(n, seed, as_layer):
    rng = np.random.default_rng(seed)
    shape = (2, *rng.integers(2, 6, n), 3)
    axes = tuple(range(1, n + 1))
    x = _values(seed, shape, np.float32, nan=True)
    kernel, stride = tuple(rng.integers(1, 3, n)), tuple(rng.integers(1, 3, n))
    y, idx = poolnd.max_pool(x, kernel, stride, axes=axes, return_indices=True)
    if as_layer:
        layer = poolnd.nn.MaxUnpoolNd(kernel, stride, channels_last=True)
        got = layer(y, idx, shape)
    else:
        got = poolnd.max_unpool(y, idx, kernel, stride, output_size=shape, axes=axes)
    want = ref_max_unpool(y, idx, kernel, stride, output_size=shape, axes=axes)
    assert_same(got, want)
    grad = _values(seed + 1, shape, np.float64)
    got_grad = (layer.backward(grad) if as_layer else
                poolnd.max_unpool_backward(grad, idx, kernel, stride, output_size=shape,
                                           axes=axes))
    assert_same(got_grad, ref_max_unpool_backward(grad, idx, kernel, stride, output_size=shape,
                                                  axes=axes))


def test_asymmetric_padding_sets_the_default_length():
    y = np.ones((1, 3))
    idx = np.array([[0, 2, 3]])
    got = poolnd.max_unpool(y, idx, (3,), 2, ((1, 2),))
    assert got.shape == (1, (3 - 1) * 2 + 3 - 1 - 2)  # (L - 1)*s + k - before - after = 4
    np.testing.assert_array_equal(got, ref_max_unpool(y, idx, (3,), 2, ((1, 2),)))


def test_zero_size_batch_axis_gives_empty_zeros():
    y, idx = np.zeros((0, 3, 2, 2), np.float32), np.zeros((0, 3, 2, 2), np.int64)
    got = poolnd.max_unpool2d(y, idx, 2)
    assert got.shape == (0, 3, 4, 4) and got.dtype == np.float32


# ---------------------------------------------------------------- errors


Y = np.ones((2, 3, 2, 2))
IDX = np.zeros((2, 3, 2, 2), np.int64)


@pytest.mark.parametrize("indices, kwargs, exc, match", [
    (IDX + 16, {}, ValueError, r"indices must lie in \[0, 16\).*16"),
    (IDX - 1, {}, ValueError, r"indices must lie in \[0, 16\).*-1"),
    (IDX[..., :1], {}, ValueError, r"indices must be integers of shape \(2, 3, 2, 2\)"),
    (IDX.astype(float), {}, ValueError, "indices must be integers"),
    (IDX, {"output_size": (6, 4)}, ValueError, r"output_size.*between 2 and 6.*got 6"),
    (IDX, {"output_size": (4, 4, 4)}, ValueError, r"output_size=\(4, 4, 4\) has 3 values"),
    (IDX, {"output_size": (2, 4, 4, 4)}, ValueError, r"output_size.*axis 1 length 4.*3"),
    (IDX, {"output_size": (4.0, 4)}, TypeError, "output_size"),
    (IDX, {"padding": "same"}, ValueError, "padding='same'"),
    (IDX, {"padding": 3}, ValueError, "output would be empty"),
    (IDX, {"stride": 0}, ValueError, "stride=0"),
])
def test_bad_arguments_are_rejected_before_any_work(indices, kwargs, exc, match):
    before = indices.copy()
    with pytest.raises(exc, match=match):
        poolnd.max_unpool2d(Y, indices, 2, **kwargs)
    np.testing.assert_array_equal(indices, before)


@pytest.mark.parametrize("layout", ["contiguous", "reversed", "fortran", "strided"])
def test_range_check_in_blocks_finds_one_bad_index_anywhere(monkeypatch, layout):
    # the check reads large int64 indices in blocks over the threads; force that path
    monkeypatch.setattr(_positions, "_INDEX_BLOCK", 7)
    monkeypatch.setattr(_parallel, "_SMALL_WORK", 0)
    x = _values(5, (3, 2, 6, 8), np.float64)
    y, idx = poolnd.max_pool2d(x, 2, return_indices=True)
    assert_same(poolnd.max_unpool2d(y, with_layout(idx, layout), 2),
                ref_max_unpool(y, idx, (2, 2)))
    for where, bad in [((0, 0, 0, 0), -1), ((2, 1, 2, 3), 48), ((1, 0, 1, 2), -(2**40))]:
        wrong = idx.copy()
        wrong[where] = bad
        with pytest.raises(ValueError, match=rf"indices must lie in \[0, 48\).*{bad}"):
            poolnd.max_unpool2d(y, with_layout(wrong, layout), 2)


def test_backward_rejects_gradients_and_indices_that_do_not_fit():
    with pytest.raises(ValueError, match=r"grad_output has shape \(2, 3, 4, 3\).*\(2, 3, 4, 4\)"):
        poolnd.max_unpool_backward(np.ones((2, 3, 4, 3)), IDX, (2, 2))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 16\)"):
        poolnd.max_unpool_backward(np.ones((2, 3, 4, 4)), IDX + 20, (2, 2))


def test_layer_errors_and_repr():
    layer = poolnd.nn.MaxUnpool2d(2)
    assert repr(layer) == "MaxUnpool2d(kernel_size=2, stride=2, padding=0)"
    with pytest.raises(ValueError, match="forward"):
        layer.backward(np.ones((2, 3, 4, 4)))
    layer(Y, IDX)
    with pytest.raises(ValueError, match="grad_output"):
        layer.backward(np.ones((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="indices"):
        layer(Y, IDX + 99)
