"""Adaptive max and average pooling (docs/SPEC.md sections 2 to 6).

Against PyTorch 2.13 CPU wherever it has the op (1-, 2- and 3-d, last axes), and
against the brute-force loops of ``reference.py`` for the rest: four and more pooled
axes, channels-last and arbitrary axes, integer and bool dtypes, ``nan_policy="omit"``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from reference import (
    adaptive_windows,
    ref_adaptive_avg_pool,
    ref_adaptive_avg_pool_backward,
    ref_adaptive_max_pool,
    ref_adaptive_max_pool_backward,
)
from test_reference import _values, assert_same
from test_reference import assert_close as assert_close_to_reference
from test_torch import (
    LAYOUTS,
    Sum,
    arrays,
    assert_close,
    assert_identical,
    assert_max_layer_equals_twin,
    batch_shapes,
    from_planes,
    normals_like,
    small_ints_like,
    to_planes,
    with_layout,
)

import poolnd
import poolnd.nn

NDIMS = pytest.mark.parametrize("n", [1, 2, 3])
MAX_LEN = {1: 12, 2: 9, 3: 5}  # per pooled axis
SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.filter_too_much]}


# ---------------------------------------------------------------- cases


@st.composite
def output_sizes(draw, lengths):
    """Per axis an output length from 1 to a little past the input (windows then overlap
    and repeat), now and then None (keep the axis)."""
    return tuple(draw(st.integers(1, length + 3)) if draw(st.integers(0, 5)) else None
                 for length in lengths)


def resolved(sizes, lengths):
    """``None`` replaced by the axis length, as torch's 1-d and 3-d ops want plain ints."""
    return tuple(length if s is None else s for s, length in zip(sizes, lengths))


@st.composite
def torch_cases(draw, n):
    """(x, output_size) with the last n axes pooled, data as in test_torch (NaN, -inf, ties)."""
    spatial = tuple(draw(st.integers(1, MAX_LEN[n])) for _ in range(n))
    x = draw(arrays(draw(batch_shapes()) + spatial))
    return x, draw(output_sizes(spatial))


def torch_adaptive(kind, x, sizes, grad=None):
    """torch's adaptive_{kind}_pool{n}d on (planes, 1, *spatial): outputs, and autograd's
    input gradient for ``grad``."""
    n, batch = len(sizes), x.shape[: x.ndim - len(sizes)]
    t = to_planes(x, n).requires_grad_(grad is not None)
    fn = getattr(F, f"adaptive_{kind}_pool{n}d")
    sizes = resolved(sizes, x.shape[-n:])
    y = fn(t, sizes, True) if kind == "max" else fn(t, sizes)
    values = y[0] if kind == "max" else y
    x_grad = None
    if grad is not None:
        values.backward(to_planes(grad, n))
        x_grad = from_planes(t.grad, batch)
    outs = (from_planes(y[0], batch), from_planes(y[1], batch)) if kind == "max" else (
        from_planes(y, batch),)
    return outs, x_grad


def torch_avg_sum(x, sizes, grad=None):
    """torch's average (and gradient) as a Sum: with the same op on magnitudes as the scale."""
    (y,), x_grad = torch_adaptive("avg", x, sizes, grad)
    abs_grad = None if grad is None else np.abs(grad).astype(np.float64)
    (y_scale,), grad_scale = torch_adaptive("avg", np.abs(x).astype(np.float64), sizes,
                                            abs_grad)
    return Sum(y, y_scale), None if grad is None else Sum(x_grad, grad_scale)


def out_shape(x_shape, sizes):
    n = len(sizes)
    return x_shape[: len(x_shape) - n] + resolved(sizes, x_shape[-n:])


# ---------------------------------------------------------------- against torch


@NDIMS
@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_adaptive_max_pool_values_and_indices_equal_torch(n, data):
    x, sizes = data.draw(torch_cases(n))
    x_in = with_layout(x, data.draw(st.sampled_from(LAYOUTS)))
    before = x_in.copy()
    (want, want_idx), _ = torch_adaptive("max", x, sizes)
    got, got_idx = poolnd.adaptive_max_pool(x_in, sizes, return_indices=True)
    assert_identical(got, want)
    assert_identical(got_idx, want_idx)
    # PyTorch's positional order, and the values alone
    named = getattr(poolnd, f"adaptive_max_pool{n}d")
    compact = sizes[0] if len(set(sizes)) == 1 and sizes[0] is not None else sizes
    assert_identical(named(x_in, compact), want)
    np.testing.assert_array_equal(x_in, before, strict=True)


@NDIMS
@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_adaptive_avg_pool_equals_torch(n, data):
    x, sizes = data.draw(torch_cases(n))
    x_in = with_layout(x, data.draw(st.sampled_from(LAYOUTS)))
    before = x_in.copy()
    want, _ = torch_avg_sum(x, sizes)
    assert_close(poolnd.adaptive_avg_pool(x_in, sizes), want)
    assert_close(getattr(poolnd, f"adaptive_avg_pool{n}d")(x_in, sizes), want)
    np.testing.assert_array_equal(x_in, before, strict=True)


@NDIMS
@settings(max_examples=30, **SETTINGS)
@given(data=st.data())
def test_adaptive_max_pool_backward_equals_torch_autograd(n, data):
    x, sizes = data.draw(torch_cases(n))
    grad = small_ints_like(data.draw, out_shape(x.shape, sizes), x.dtype)
    (_, idx), want = torch_adaptive("max", x, sizes, grad)
    # exact: small integer gradients make every scatter-add sum exact in any order
    assert_identical(poolnd.adaptive_max_pool_backward(grad, idx, x.shape, sizes), want)


@NDIMS
@settings(max_examples=30, **SETTINGS)
@given(data=st.data())
def test_adaptive_avg_pool_backward_equals_torch_autograd(n, data):
    x, sizes = data.draw(torch_cases(n))
    grad = normals_like(data.draw, out_shape(x.shape, sizes), x.dtype)
    _, want = torch_avg_sum(x, sizes, grad)
    assert_close(poolnd.adaptive_avg_pool_backward(grad, x.shape, sizes), want)


@NDIMS
@settings(max_examples=25, **SETTINGS)
@given(data=st.data())
def test_adaptive_max_layers_equal_torch_modules(n, data):
    x, sizes = data.draw(torch_cases(n))
    return_indices = data.draw(st.booleans())
    grad = small_ints_like(data.draw, out_shape(x.shape, sizes), x.dtype)
    if data.draw(st.booleans()):
        layer = poolnd.nn.AdaptiveMaxPoolNd(sizes, return_indices)
    else:
        layer = getattr(poolnd.nn, f"AdaptiveMaxPool{n}d")(sizes, return_indices)
    twin = getattr(torch.nn, f"AdaptiveMaxPool{n}d")(resolved(sizes, x.shape[-n:]),
                                                     return_indices)
    assert_max_layer_equals_twin(layer, twin, x, grad, n, return_indices)


@NDIMS
@settings(max_examples=25, **SETTINGS)
@given(data=st.data())
def test_adaptive_avg_layers_equal_torch_modules(n, data):
    x, sizes = data.draw(torch_cases(n))
    grad = normals_like(data.draw, out_shape(x.shape, sizes), x.dtype)
    want, want_grad = torch_avg_sum(x, sizes, grad)  # for the scale of the terms
    twin = getattr(torch.nn, f"AdaptiveAvgPool{n}d")(resolved(sizes, x.shape[-n:]))
    t = to_planes(x, n).requires_grad_(True)
    y = twin(t)
    y.backward(to_planes(grad, n))
    batch = x.shape[:-n]
    layer = getattr(poolnd.nn, f"AdaptiveAvgPool{n}d")(sizes)
    layer(np.flip(x, axis=-1).copy())
    assert_close(layer(x), Sum(from_planes(y, batch), want.scale))
    assert_close(layer.backward(grad), Sum(from_planes(t.grad, batch), want_grad.scale))


@pytest.mark.parametrize("shape", [(2, 3, 56, 56), (2, 70, 70), (1, 2, 1, 1), (4, 5000)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_average_equals_torch(shape, dtype):
    # PyTorch computes output size 1 with mean(); poolnd with its own global kernel,
    # which sums long runs in blocks (70 x 70 and 5000 are more than one block)
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(dtype)
    n = 1 if len(shape) == 2 else 2
    grad = rng.standard_normal(shape[:-n] + (1,) * n).astype(dtype)
    want, want_grad = torch_avg_sum(x, (1,) * n, grad)
    assert_close(getattr(poolnd, f"adaptive_avg_pool{n}d")(x, 1), want)
    assert_close(poolnd.adaptive_avg_pool_backward(grad, shape, (1,) * n), want_grad)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_channels_last_equals_torch_on_transpose(n):
    rng = np.random.default_rng(n)
    spatial = (7, 5, 6)[:n]
    x = rng.standard_normal((2, *spatial, 3)).astype(np.float32)  # channels last
    x.flat[[3, 17, 18]] = np.nan
    axes = tuple(range(1, n + 1))
    first = np.moveaxis(x, -1, 1)  # the same data channels-first, for torch
    sizes = (4, 2, 3)[:n]
    (want, want_idx), _ = torch_adaptive("max", first, sizes)
    got, got_idx = poolnd.adaptive_max_pool(x, sizes, axes=axes, return_indices=True)
    assert_identical(got, np.moveaxis(want, 1, -1))
    assert_identical(got_idx, np.moveaxis(want_idx, 1, -1))
    want_avg, _ = torch_avg_sum(first, sizes)
    assert_close(poolnd.adaptive_avg_pool(x, sizes, axes=axes),
                 want_avg.map(lambda a: np.moveaxis(a, 1, -1)))
    assert_close(poolnd.adaptive_avg_pool(x, 1, axes=axes),
                 torch_avg_sum(first, (1,) * n)[0].map(lambda a: np.moveaxis(a, 1, -1)))


# ---------------------------------------------------------------- worked examples


def test_windows_are_pytorchs_and_may_overlap():
    # 5 -> 2: [0, 3) and [2, 5), so element 2 is in both windows; 3 -> 5: windows repeat
    assert adaptive_windows(5, 2) == [(0, 3), (2, 5)]
    x = np.array([1.0, 5.0, 2.0, 0.0, 3.0])
    out, idx = poolnd.adaptive_max_pool1d(x, 2, True)
    assert_same(out, np.array([5.0, 3.0]))
    assert_same(idx, np.array([1, 4]))
    assert_same(poolnd.adaptive_avg_pool1d(x, 2), np.array([8 / 3, 5 / 3]))
    # each window's gradient is split over its 3 elements; element 2 gets from both
    assert_same(poolnd.adaptive_avg_pool_backward(np.array([3.0, 6.0]), (5,), (2,)),
                np.array([1.0, 1.0, 3.0, 2.0, 2.0]))
    out, idx = poolnd.adaptive_max_pool1d(np.array([1.0, 7.0, 2.0]), 5, True)
    assert_same(out, np.array([1.0, 7.0, 7.0, 7.0, 2.0]))
    assert_same(poolnd.adaptive_max_pool_backward(np.ones(5), idx, (3,), (5,)),
                np.array([1.0, 3.0, 1.0]))


def test_ties_go_to_first_maximum_in_row_major_order():
    # maxima at (0, 1) and (1, 0): row-major order meets (0, 1) first
    x = np.array([[0.0, 4.0], [4.0, 0.0]])
    out, idx = poolnd.adaptive_max_pool2d(x, 1, True)
    assert_same(out, np.array([[4.0]]))
    assert_same(idx, np.array([[1]]))
    # signed zeros tie: the first one is kept, sign and all
    out = poolnd.adaptive_max_pool1d(np.array([-0.0, 0.0, -1.0]), 1)
    assert np.signbit(out[0])


@settings(max_examples=30, **SETTINGS)
@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 8), st.integers(1, 8),
       st.integers(0, 2**32 - 1))
def test_signed_zero_ties_keep_torchs_first_zero_in_2d(h, w, oh, ow, seed):
    # windows of only zeros and -1: which zero wins (and so the sign) depends on the
    # walk's order across rows and columns, which the kernels must reproduce
    rng = np.random.default_rng(seed)
    x = rng.choice(np.array([-0.0, 0.0, -1.0], np.float32), (2, 3, h, w))
    (want, want_idx), _ = torch_adaptive("max", x, (oh, ow))
    got, got_idx = poolnd.adaptive_max_pool2d(x, (oh, ow), True)
    assert_identical(got_idx, want_idx)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    layer = poolnd.nn.AdaptiveMaxPool2d((oh, ow))
    np.testing.assert_array_equal(np.signbit(layer.forward(x)), np.signbit(want))


def test_nan_propagate_takes_last_nan_and_omit_skips_nan():
    x = np.array([np.nan, 5.0, np.nan, 1.0])
    out, idx = poolnd.adaptive_max_pool1d(x, 1, True)
    assert np.isnan(out[0]) and idx[0] == 2
    out, idx = poolnd.adaptive_max_pool(x, (1,), return_indices=True, nan_policy="omit")
    assert out[0] == 5.0 and idx[0] == 1
    out, idx = poolnd.adaptive_max_pool(np.full(4, np.nan), (2,), return_indices=True,
                                        nan_policy="omit")
    assert np.isnan(out).all()
    assert_same(idx, np.array([0, 2]))  # an all-NaN window reports its first element


def test_none_keeps_an_axis():
    x = np.arange(24.0).reshape(2, 3, 4)
    assert_same(poolnd.adaptive_avg_pool(x, (None, 2)), poolnd.avg_pool(x, (1, 2)))
    assert poolnd.adaptive_max_pool(x, (None, None, 1)).shape == (2, 3, 1)


# ---------------------------------------------------------------- against the reference


@st.composite
def reference_cases(draw, n=None, channels_last=False, max_len=5):
    """An input shape with n pooled axes anywhere (or just before the last), and sizes."""
    n = draw(st.integers(1, 4)) if n is None else n
    batch_ndim = draw(st.integers(1 if channels_last else 0, 2))
    ndim = n + batch_ndim
    if channels_last:
        axes = tuple(range(ndim - 1 - n, ndim - 1))
    else:
        axes = tuple(draw(st.permutations(range(ndim)))[:n])
        axes = tuple(a - ndim if draw(st.booleans()) else a for a in axes)
    shape = [draw(st.integers(1, 3)) for _ in range(ndim)]
    for a in axes:
        shape[a] = draw(st.integers(1, max_len))
    assume(math.prod(shape) <= 600)
    lengths = [shape[a] for a in axes]
    return tuple(shape), axes, draw(output_sizes(lengths))


def check_against_reference(x, sizes, axes, nan_policy="propagate", seed=0):
    """Forwards, both backwards and the layers, each against the reference loops."""
    out, idx = poolnd.adaptive_max_pool(x, sizes, axes=axes, return_indices=True,
                                        nan_policy=nan_policy)
    want, want_idx = ref_adaptive_max_pool(x, sizes, axes=axes, nan_policy=nan_policy)
    assert_same(out, want)
    assert_same(idx, want_idx)
    grad = np.random.default_rng(seed).integers(-3, 4, out.shape).astype(np.float64)
    assert_same(poolnd.adaptive_max_pool_backward(grad, idx, x.shape, sizes, axes=axes),
                ref_adaptive_max_pool_backward(grad, idx, x.shape, sizes, axes=axes))
    layer = poolnd.nn.AdaptiveMaxPoolNd(sizes, axes=axes, nan_policy=nan_policy)
    assert_same(layer(x), want)
    assert_same(layer.backward(grad),
                ref_adaptive_max_pool_backward(grad, idx, x.shape, sizes, axes=axes))
    avg = poolnd.adaptive_avg_pool(x, sizes, axes=axes)
    assert_close_to_reference(avg, ref_adaptive_avg_pool(x, sizes, axes=axes))
    want_grad = ref_adaptive_avg_pool_backward(grad, x.shape, sizes, axes=axes)
    assert_close_to_reference(poolnd.adaptive_avg_pool_backward(grad, x.shape, sizes, axes=axes),
                              want_grad)
    layer = poolnd.nn.AdaptiveAvgPoolNd(sizes, axes=axes)
    layer(x)
    assert_close_to_reference(layer.backward(grad), want_grad)


@settings(max_examples=60, **SETTINGS)
@given(reference_cases(), st.integers(0, 2**32 - 1), st.sampled_from(["propagate", "omit"]))
def test_any_axes_and_up_to_four_pooled_axes_match_reference(case, seed, nan_policy):
    shape, axes, sizes = case
    x = _values(seed, shape, np.float64, nan=True)
    check_against_reference(x, sizes, axes, nan_policy, seed)


@settings(max_examples=20, **SETTINGS)
@given(reference_cases(n=4, max_len=4), st.integers(0, 2**32 - 1))
def test_four_pooled_axes_float32_match_reference(case, seed):
    shape, axes, sizes = case
    check_against_reference(_values(seed, shape, np.float32, nan=True), sizes, axes, seed=seed)


def test_five_pooled_axes_match_reference():
    x = _values(3, (2, 3, 4, 3, 5, 2), np.float64, nan=True)
    for sizes in [(2, 3, 2, 4, 1), (1, 1, 1, 1, 1), (3, None, 5, 2, 2)]:
        check_against_reference(x, sizes, None)
        check_against_reference(x, sizes, None, "omit")


@settings(max_examples=30, **SETTINGS)
@given(reference_cases(n=2, channels_last=True, max_len=7), st.integers(0, 2**32 - 1))
def test_channels_last_matches_reference(case, seed):
    shape, axes, sizes = case
    x = _values(seed, shape, np.float64, nan=True)
    check_against_reference(x, sizes, axes, seed=seed)
    # the layer's channels_last=True pools the same axes
    layer = poolnd.nn.AdaptiveMaxPool2d(sizes, channels_last=True)
    assert_same(layer(x), ref_adaptive_max_pool(x, sizes, axes=axes)[0])


@pytest.mark.parametrize("dtype", ["int16", "uint8", "bool", "float16"])
@pytest.mark.parametrize("nan_policy", ["propagate", "omit"])
def test_integer_bool_and_float16_dtypes_match_reference(dtype, nan_policy):
    for seed in range(4):
        x = _values(seed, (2, 7, 6, 3), dtype, extremes=True)
        sizes = [(3, 4), (1, 1), (9, None), (2, 5)][seed]
        out, idx = poolnd.adaptive_max_pool(x, sizes, axes=(1, 2), return_indices=True,
                                            nan_policy=nan_policy)
        want, want_idx = ref_adaptive_max_pool(x, sizes, axes=(1, 2), nan_policy=nan_policy)
        assert out.dtype == np.dtype(dtype)
        assert_same(out, want)
        assert_same(idx, want_idx)
        avg = poolnd.adaptive_avg_pool(x, sizes, axes=(1, 2))
        if dtype == "float16":  # summed in float32 and above
            want_avg = ref_adaptive_avg_pool(x.astype(np.float32), sizes, axes=(1, 2))
            assert_close_to_reference(avg, want_avg.astype(np.float16))
        else:
            assert avg.dtype == np.float64
            assert_close_to_reference(avg, ref_adaptive_avg_pool(x, sizes, axes=(1, 2)))


def test_integer_gradient_comes_back_as_float64():
    x = np.arange(12.0).reshape(3, 4)
    _, idx = poolnd.adaptive_max_pool2d(x, 2, True)
    grad = np.ones((2, 2), np.int32)
    got = poolnd.adaptive_max_pool_backward(grad, idx, x.shape, (2, 2))
    assert_same(got, ref_adaptive_max_pool_backward(grad, idx, x.shape, (2, 2)))
    got = poolnd.adaptive_avg_pool_backward(grad, x.shape, (2, 2))
    assert_same(got, ref_adaptive_avg_pool_backward(grad, x.shape, (2, 2)))


def test_zero_size_batch_axes_give_empty_results():
    x = np.zeros((0, 3, 5, 4))
    assert poolnd.adaptive_max_pool(x, (2, 2)).shape == (0, 3, 2, 2)
    out, idx = poolnd.adaptive_max_pool(x, (2, 2), axes=(1, 2), return_indices=True)
    assert out.shape == idx.shape == (0, 2, 2, 4)
    assert poolnd.adaptive_avg_pool(x, 1, axes=(1, 2)).shape == (0, 1, 1, 4)
    assert poolnd.adaptive_avg_pool_backward(np.zeros((0, 3, 1, 1)), x.shape, (1, 1)).shape \
        == x.shape


def test_thread_count_never_changes_a_result():
    x = _values(1, (8, 60, 80, 3), np.float32, nan=True)  # big enough for threads
    grad = _values(2, (8, 7, 9, 3), np.float32)
    threads = poolnd.get_num_threads()

    def run():
        out, idx = poolnd.adaptive_max_pool(x, (7, 9), axes=(1, 2), return_indices=True)
        return (out, idx, poolnd.adaptive_avg_pool(x, (7, 9), axes=(1, 2)),
                poolnd.adaptive_avg_pool(x, 1, axes=(1, 2)),
                poolnd.adaptive_avg_pool_backward(grad, x.shape, (7, 9), axes=(1, 2)))

    try:
        poolnd.set_num_threads(1)
        one = run()
        poolnd.set_num_threads(3)
        for a, b in zip(one, run()):
            assert_same(b, a)
    finally:
        poolnd.set_num_threads(threads)


# ---------------------------------------------------------------- layers


def test_max_layer_keeps_window_positions_in_one_byte():
    layer = poolnd.nn.AdaptiveMaxPool2d((3, 4))
    x = _values(4, (2, 3, 10, 11), np.float64)
    y = layer(x)
    _, state = layer._newest()  # (plan, positions) of the pending forward
    assert state.dtype == np.uint8 and not np.shares_memory(state, x)
    _, idx = poolnd.adaptive_max_pool2d(x, (3, 4), True)
    grad = _values(5, y.shape, np.float64)
    assert_same(layer.backward(grad), poolnd.adaptive_max_pool_backward(grad, idx, x.shape,
                                                                        (3, 4)))


def test_max_layer_positions_widen_for_windows_over_256_taps():
    layer = poolnd.nn.AdaptiveMaxPool2d(1)
    x = _values(6, (2, 17, 17), np.float32)
    layer(x)
    assert layer._newest()[1].dtype == np.uint16
    _, idx = poolnd.adaptive_max_pool2d(x, 1, True)
    grad = np.full((2, 1, 1), 3.0, np.float32)
    assert_same(layer.backward(grad), poolnd.adaptive_max_pool_backward(grad, idx, x.shape, 1,
                                                                        axes=(1, 2)))


@pytest.mark.parametrize("cls_name", ["AdaptiveMaxPool2d", "AdaptiveAvgPool2d",
                                      "AdaptiveMaxPoolNd", "AdaptiveAvgPoolNd"])
def test_layer_backward_before_forward_raises(cls_name):
    layer = getattr(poolnd.nn, cls_name)((2, 2))
    with pytest.raises(ValueError, match=rf"{cls_name}\.backward\(\) called before forward"):
        layer.backward(np.ones((1, 2, 2)))


@pytest.mark.parametrize("cls_name", ["AdaptiveMaxPool2d", "AdaptiveAvgPool2d",
                                      "AdaptiveMaxPoolNd", "AdaptiveAvgPoolNd"])
def test_layer_backward_with_wrong_grad_shape_raises(cls_name):
    layer = getattr(poolnd.nn, cls_name)((2, 3))
    assert layer(np.ones((3, 4, 6))).shape == (3, 2, 3)
    with pytest.raises(ValueError, match=r"grad_output has shape \(3, 3, 2\).*\(3, 2, 3\)"):
        layer.backward(np.ones((3, 3, 2)))


def test_layer_reprs_follow_pytorch():
    assert repr(poolnd.nn.AdaptiveMaxPool2d(7)) == repr(torch.nn.AdaptiveMaxPool2d(7))
    assert repr(poolnd.nn.AdaptiveAvgPool3d((2, None, 1))) == repr(
        torch.nn.AdaptiveAvgPool3d((2, None, 1)))
    assert repr(poolnd.nn.AdaptiveAvgPool1d(3)) == repr(torch.nn.AdaptiveAvgPool1d(3))
    assert repr(poolnd.nn.AdaptiveMaxPool2d((3, 4), return_indices=True, nan_policy="omit")) \
        == "AdaptiveMaxPool2d(output_size=(3, 4), return_indices=True, nan_policy='omit')"
    assert repr(poolnd.nn.AdaptiveAvgPool2d(1, channels_last=True)) \
        == "AdaptiveAvgPool2d(output_size=1, axes=(-3, -2))"


def test_channels_last_layer_needs_to_know_n():
    with pytest.raises(ValueError, match=r"output_size=3.*tuple output_size"):
        poolnd.nn.AdaptiveMaxPoolNd(3, channels_last=True)
    with pytest.raises(ValueError, match=r"axes=\(1, 2\) or channels_last=True"):
        poolnd.nn.AdaptiveAvgPool2d(3, axes=(1, 2), channels_last=True)


# ---------------------------------------------------------------- errors (docs/SPEC.md section 6)

X = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
OPS = [poolnd.adaptive_max_pool, poolnd.adaptive_avg_pool]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("sizes, exc, match", [
    ((2, 0), ValueError, r"output_size=\(2, 0\).*>= 1.*got 0"),
    ((-1, None), ValueError, r"output_size=\(-1, None\).*got -1"),
    ((2, 2, 2), ValueError, r"output_size=\(2, 2, 2\) has 3"),
    ((2, 1.5), TypeError, r"output_size=\(2, 1\.5\).*int or None, got 1\.5"),
    ((True, 2), TypeError, r"output_size=\(True, 2\).*got True"),
    ((), ValueError, r"output_size=\(\) is empty"),
])
def test_bad_output_size_is_rejected(op, sizes, exc, match):
    with pytest.raises(exc, match=match):
        op(X, sizes, axes=(-2, -1)) if len(sizes) == 3 else op(X, sizes)


@pytest.mark.parametrize("name", ["adaptive_max_pool2d", "adaptive_avg_pool2d"])
@pytest.mark.parametrize("size, exc, match", [
    (True, TypeError, r"output_size must be an int.*got True"),
    (None, TypeError, r"output_size must be an int.*got None"),
    (2.0, TypeError, r"output_size must be an int.*got 2\.0"),
    ("7", TypeError, r"output_size must be an int.*got '7'"),
])
def test_output_size_that_is_not_an_int_is_rejected(name, size, exc, match):
    with pytest.raises(exc, match=match):
        getattr(poolnd, name)(X, size)


@pytest.mark.parametrize("op", OPS)
def test_bare_int_output_size_without_axes_says_how_to_fix(op):
    with pytest.raises(ValueError, match=r"(?s)output_size=2 does not say.*axes"):
        op(X, 2)


@pytest.mark.parametrize("op", OPS)
def test_wrong_number_of_axes_is_rejected(op):
    with pytest.raises(ValueError, match=r"axes=\(1, 2, 3\) names 3"):
        op(X, (2, 2), axes=(1, 2, 3))
    with pytest.raises(ValueError, match=r"axis 7 is out of range"):
        op(X, (2, 2), axes=(1, 7))
    with pytest.raises(ValueError, match=r"pools 3 axes but the input has only 2"):
        op(np.ones((3, 3)), (1, 1, 1))


@pytest.mark.parametrize("op", OPS)
def test_empty_pooled_axis_is_rejected(op):
    with pytest.raises(ValueError, match=r"axis 2 \(pooled axis 0\) has length 0"):
        op(np.ones((2, 3, 0, 4)), (2, 2))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [np.complex64, object, "U3", "datetime64[s]"])
def test_unordered_dtypes_are_rejected(op, dtype):
    with pytest.raises(TypeError, match=r"x must hold real numbers or bools, got dtype"):
        op(np.zeros((3, 4), dtype=dtype), (2, 2))


def test_bad_flags_and_nan_policy_are_rejected():
    with pytest.raises(ValueError, match=r"nan_policy='ignore'"):
        poolnd.adaptive_max_pool(X, (2, 2), nan_policy="ignore")
    with pytest.raises(TypeError, match=r"return_indices must be True or False, got 1"):
        poolnd.adaptive_max_pool2d(X, 2, 1)
    with pytest.raises(ValueError, match=r"nan_policy='ignore'"):
        poolnd.nn.AdaptiveMaxPool2d(2, nan_policy="ignore")


def test_backward_checks_shapes_and_indices_before_any_work():
    out, idx = poolnd.adaptive_max_pool2d(X, (2, 3), True)
    grad = np.ones_like(out)
    with pytest.raises(ValueError, match=r"grad_output has shape \(2, 3, 3, 2\)"):
        poolnd.adaptive_max_pool_backward(np.ones((2, 3, 3, 2)), idx, X.shape, (2, 3))
    with pytest.raises(ValueError, match=r"indices must be integers of shape"):
        poolnd.adaptive_max_pool_backward(grad, idx[..., :1], X.shape, (2, 3))
    with pytest.raises(ValueError, match=r"indices must be integers"):
        poolnd.adaptive_max_pool_backward(grad, idx.astype(float), X.shape, (2, 3))
    for bad in (-1, 20):
        wrong = idx.copy()
        wrong[1, 2, 1, 0] = bad
        with pytest.raises(ValueError, match=rf"indices must lie in \[0, 20\).*{bad}"):
            poolnd.adaptive_max_pool_backward(grad, wrong, X.shape, (2, 3))
    with pytest.raises(ValueError, match=r"grad_output has shape \(2, 3, 2, 2\)"):
        poolnd.adaptive_avg_pool_backward(np.ones((2, 3, 2, 2)), X.shape, (2, 3))
    with pytest.raises(TypeError, match=r"input_shape must be a tuple of ints"):
        poolnd.adaptive_avg_pool_backward(grad, "shape", (2, 3))
    with pytest.raises(TypeError, match=r"grad_output must hold real numbers"):
        poolnd.adaptive_avg_pool_backward(grad.astype(complex), X.shape, (2, 3))
