"""Fractional max pooling (docs/SPEC.md sections 2 to 6).

Against PyTorch 2.13 CPU given the same ``_random_samples``: values and indices bit
for bit, in float32 and float64 (PyTorch computes the window sequence in the input's
float type). Against the brute-force loops of ``reference.py`` for four pooled axes,
channels-last axes, integer and bool dtypes. PyTorch orders the samples of its 2-d op
``(W, H)``; poolnd's ``samples[..., i]`` belongs to pooled axis ``i``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from reference import ref_fractional_max_pool, ref_fractional_starts, ref_max_unpool
from test_reference import SETTINGS, _integer_grad, _values, assert_same
from test_torch import LAYOUTS, arrays, assert_identical, from_planes, to_planes, with_layout

import poolnd
import poolnd.nn

NDIMS = pytest.mark.parametrize("n", [2, 3])
MAX_LEN = {2: 10, 3: 6}


# ---------------------------------------------------------------- cases


@st.composite
def fractional_geometries(draw, n, strict=False, max_len=10, max_kernel=3):
    """(spatial, kernel, output_size, output_ratio), one of the last two None.

    PyTorch's 3-d op wants ``out + k - 1 < L`` (``strict``); its 2-d op, and poolnd,
    ``<=``.
    """
    kernel, spatial, outs = [], [], []
    for _ in range(n):
        k = draw(st.integers(1, max_kernel))
        length = draw(st.integers(k + strict, max(k + strict, max_len)))
        kernel.append(k)
        spatial.append(length)
        outs.append(draw(st.integers(1, length - k + 1 - strict)))
    if draw(st.booleans()):
        return tuple(spatial), tuple(kernel), tuple(outs), None
    # a ratio that gives those lengths: int(L * ratio) == out
    ratios = tuple((out + 0.5) / length for out, length in zip(outs, spatial))
    assume(all(0 < r < 1 and int(length * r) == out
               for r, length, out in zip(ratios, spatial, outs)))
    return tuple(spatial), tuple(kernel), None, ratios


def to_torch_samples(samples, n):
    """poolnd's (*batch, N) samples as torch's (planes, 1, N), (W, H) for 2-d."""
    s = samples.reshape(-1, 1, n)
    return torch.from_numpy(np.ascontiguousarray(s[..., ::-1] if n == 2 else s))


def torch_fractional(x, kernel, output_size, output_ratio, samples, grad=None):
    n, batch = len(kernel), x.shape[: x.ndim - len(kernel)]
    t = to_planes(x, n).requires_grad_(grad is not None)
    fn = getattr(F, f"fractional_max_pool{n}d")
    y, idx = fn(t, kernel, output_size, output_ratio, True, to_torch_samples(samples, n))
    x_grad = None
    if grad is not None:
        y.backward(to_planes(grad, n))
        x_grad = from_planes(t.grad, batch)
    return from_planes(y, batch), from_planes(idx, batch), x_grad


@st.composite
def torch_cases(draw, n):
    spatial, kernel, output_size, output_ratio = draw(
        fractional_geometries(n, strict=n == 3, max_len=MAX_LEN[n]))
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    x = draw(arrays(batch + spatial))  # float32 or float64; ties, NaN, -inf
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    samples = rng.random(batch + (n,)).astype(x.dtype)
    return x, kernel, output_size, output_ratio, samples


# ---------------------------------------------------------------- against PyTorch


@NDIMS
@given(data=st.data())
def test_values_and_indices_equal_torch_given_the_same_samples(n, data):
    x, kernel, output_size, output_ratio, samples = data.draw(torch_cases(n))
    layout = data.draw(st.sampled_from(LAYOUTS))
    want, want_idx, _ = torch_fractional(x, kernel, output_size, output_ratio, samples)
    x_in = with_layout(x, layout)
    got, idx = poolnd.fractional_max_pool(x_in, kernel, output_size, output_ratio,
                                          return_indices=True, samples=samples)
    assert_identical(got, want)
    assert_identical(idx, want_idx)
    fn = getattr(poolnd, f"fractional_max_pool{n}d")
    assert_identical(fn(x_in, kernel, output_size, output_ratio, samples=samples), want)
    np.testing.assert_array_equal(x_in, x)


@given(st.integers(20, 3000), st.integers(1, 4), st.data(),
       st.sampled_from([np.float32, np.float64]))
def test_long_axes_take_pytorchs_float_arithmetic(length, k, data, dtype):
    # Long axes make (i + u) * alpha land near whole numbers, where float32 and float64
    # disagree: indices of increasing rows show every window's start, for 64 samples.
    out = data.draw(st.integers(2, length - k + 1))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = np.broadcast_to(np.arange(length, dtype=dtype), (64, 1, 1, length))
    samples = rng.random((64, 1, 2)).astype(dtype)
    samples = np.minimum(samples, np.nextafter(dtype(1), dtype(0)))
    want, want_idx, _ = torch_fractional(x, (1, k), (1, out), None, samples)
    got, idx = poolnd.fractional_max_pool2d(x, (1, k), (1, out), return_indices=True,
                                            samples=samples)
    assert_identical(got, want)
    assert_identical(idx, want_idx)


def test_float32_input_takes_float32_sequence():
    # a case where the float32 and float64 sequences differ (found by search)
    u = np.float32(0.8888887)
    in_float32 = ref_fractional_starts(u, 28, 27, 1, np.float32)
    assert in_float32 != ref_fractional_starts(u, 28, 27, 1, np.float64)
    x = np.arange(28, dtype=np.float32)
    _, idx = poolnd.fractional_max_pool(x, (1,), 27, return_indices=True, samples=[u])
    assert idx.tolist() == in_float32
    _, want_idx, _ = torch_fractional(x.reshape(1, 1, 28), (1, 1), (1, 27), None,
                                      np.array([0, u], np.float32))
    assert idx.tolist() == want_idx.ravel().tolist()


def test_float16_equals_torch():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float16)
    samples = rng.random((2, 3, 2)).astype(np.float16)
    want, want_idx, _ = torch_fractional(x, (2, 3), (4, 5), None, samples)
    got, idx = poolnd.fractional_max_pool2d(x, (2, 3), (4, 5), return_indices=True,
                                            samples=samples)
    assert_identical(got, want)
    assert_identical(idx, want_idx)


@NDIMS
@given(data=st.data())
def test_backward_equals_torch_autograd(n, data):
    x, kernel, output_size, output_ratio, samples = data.draw(torch_cases(n))
    _, idx = poolnd.fractional_max_pool(x, kernel, output_size, output_ratio,
                                        return_indices=True, samples=samples)
    grad = _integer_grad(data.draw(st.integers(0, 2**32 - 1)), idx.shape, x.dtype)
    _, _, want = torch_fractional(x, kernel, output_size, output_ratio, samples, grad)
    got = poolnd.fractional_max_pool_backward(grad, idx, x.shape, kernel, output_size,
                                              output_ratio)
    assert_identical(got, want)  # small integer gradients: every sum is exact


@NDIMS
@given(data=st.data())
def test_layers_equal_torch_modules(n, data):
    x, kernel, output_size, output_ratio, samples = data.draw(torch_cases(n))
    return_indices = data.draw(st.booleans())
    layer = getattr(poolnd.nn, f"FractionalMaxPool{n}d")(
        kernel, output_size, output_ratio, return_indices, samples=samples)
    twin = getattr(torch.nn, f"FractionalMaxPool{n}d")(
        kernel, output_size, output_ratio, True, _random_samples=to_torch_samples(samples, n))
    batch = x.shape[: x.ndim - n]
    t = to_planes(x, n).requires_grad_(True)
    y, y_idx = twin(t)
    grad = _integer_grad(data.draw(st.integers(0, 2**32 - 1)), tuple(y.shape), x.dtype)
    y.backward(torch.from_numpy(grad))
    grad = grad.reshape(batch + tuple(y.shape[2:]))
    layer(np.flip(x, axis=-1).copy())  # backward must use the latest forward
    got = layer(x)
    if return_indices:
        assert_identical(got[0], from_planes(y, batch))
        assert_identical(got[1], from_planes(y_idx, batch))
    else:
        assert_identical(got, from_planes(y, batch))
    assert_identical(layer.backward(grad), from_planes(t.grad, batch))


# ---------------------------------------------------------------- against the reference


@st.composite
def reference_cases(draw, n, channels_last=False):
    spatial, kernel, output_size, output_ratio = draw(
        fractional_geometries(n, max_len=4 if n > 3 else 6, max_kernel=2 if n > 3 else 3))
    lead = (draw(st.integers(1, 2)),)
    if channels_last:
        shape, axes = (*lead, *spatial, draw(st.integers(1, 3))), tuple(range(1, n + 1))
    else:
        shape, axes = (*lead, *spatial), None
    return shape, kernel, output_size, output_ratio, axes


def check_against_reference(x, kernel, output_size, output_ratio, axes, samples):
    out, idx = poolnd.fractional_max_pool(x, kernel, output_size, output_ratio, axes=axes,
                                          return_indices=True, samples=samples)
    want, want_idx = ref_fractional_max_pool(x, kernel, output_size, output_ratio,
                                             samples=samples, axes=axes)
    assert_same(out, want)
    assert_same(idx, want_idx)
    # the gradient is a scatter-add to the indices: the reference unpooling, to x's lengths
    grad = _integer_grad(1, out.shape, np.float32)
    lengths = [x.shape[a] for a in (axes or range(x.ndim - len(kernel), x.ndim))]
    assert_same(poolnd.fractional_max_pool_backward(grad, idx, x.shape, kernel, output_size,
                                                    output_ratio, axes=axes),
                ref_max_unpool(grad, idx, kernel, output_size=lengths, axes=axes))
    return out, idx


@settings(max_examples=25, **SETTINGS)
@given(reference_cases(4), st.integers(0, 2**32 - 1))
def test_four_axes_match_reference(case, seed):
    shape, kernel, output_size, output_ratio, axes = case
    x = _values(seed, shape, np.float32, nan=True)
    samples = np.random.default_rng(seed).random(shape[:1] + (4,)).astype(np.float32)
    check_against_reference(x, kernel, output_size, output_ratio, axes, samples)


@settings(max_examples=30, **SETTINGS)
@given(st.sampled_from([2, 3]).flatmap(lambda n: reference_cases(n, channels_last=True)),
       st.integers(0, 2**32 - 1), st.sampled_from(["float64", "int16", "bool"]))
def test_channels_last_and_integer_dtypes_match_reference(case, seed, dtype):
    shape, kernel, output_size, output_ratio, axes = case
    x = _values(seed, shape, dtype, nan=dtype == "float64")
    samples = np.random.default_rng(seed).random((shape[0], shape[-1], len(axes)))
    out, idx = check_against_reference(x, kernel, output_size, output_ratio, axes, samples)
    layer = poolnd.nn.FractionalMaxPoolNd(kernel, output_size, output_ratio,
                                          channels_last=True, samples=samples)
    assert_same(layer(x), out)
    grad = _integer_grad(seed, out.shape, np.float64)
    assert_same(layer.backward(grad), poolnd.fractional_max_pool_backward(
        grad, idx, x.shape, kernel, output_size, output_ratio, axes=axes))


def test_ties_go_to_first_maximum_and_nan_to_the_last():
    x = np.array([[1.0, 1.0, 0.0], [np.nan, 2.0, np.nan]])
    out, idx = poolnd.fractional_max_pool(x, (1, 3), (2, 1), return_indices=True,
                                          samples=[0.5, 0.5])
    np.testing.assert_array_equal(out, [[1.0], [np.nan]])
    np.testing.assert_array_equal(idx, [[0], [5]])


def test_layer_keeps_one_byte_window_positions():
    layer = poolnd.nn.FractionalMaxPool2d(3, output_ratio=0.5, rng=1)
    x = _values(2, (2, 3, 10, 12), np.float64, nan=True)
    y = layer(x)
    _, positions, _ = layer._newest()  # (plan, positions, starts) of the pending forward
    assert positions.dtype == np.uint8
    assert not np.shares_memory(positions, x)
    grad = _integer_grad(3, y.shape, np.float64)
    # the same samples again (same seed) give the flat indices the gradient goes to
    _, idx = poolnd.fractional_max_pool2d(x, 3, None, 0.5, True, rng=1)
    assert_same(layer.backward(grad),
                poolnd.fractional_max_pool_backward(grad, idx, x.shape, (3, 3), None, 0.5))


# ---------------------------------------------------------------- samples and rng


def test_same_seed_same_windows_and_layers_draw_anew_each_call():
    x = np.random.default_rng(0).standard_normal((4, 3, 20, 20))
    # 8 outputs on 20: alpha = 18/7, so the windows move with the samples
    a = poolnd.fractional_max_pool2d(x, 2, output_ratio=0.4, rng=42)
    assert_same(poolnd.fractional_max_pool2d(x, 2, output_ratio=0.4, rng=42), a)
    assert_same(poolnd.fractional_max_pool2d(x, 2, output_ratio=0.4,
                                             rng=np.random.default_rng(42)), a)
    assert not np.array_equal(poolnd.fractional_max_pool2d(x, 2, output_ratio=0.4, rng=43), a)
    layer = poolnd.nn.FractionalMaxPool2d(2, output_ratio=0.4, rng=42)
    assert_same(layer(x), a)
    assert not np.array_equal(layer(x), a)  # a new draw from the same generator


def test_samples_broadcast_over_batch_axes():
    x = np.random.default_rng(1).standard_normal((2, 3, 9, 9))
    one = poolnd.fractional_max_pool2d(x, 2, 4, samples=[0.3, 0.7])
    assert_same(one, poolnd.fractional_max_pool2d(x, 2, 4, samples=np.tile([0.3, 0.7],
                                                                           (2, 3, 1))))
    per_channel = np.random.default_rng(2).random((3, 2))  # broadcasts over axis 0
    got = poolnd.fractional_max_pool2d(x, 2, 4, samples=per_channel)
    for b in range(2):
        assert_same(got[b], poolnd.fractional_max_pool2d(x[b], 2, 4, samples=per_channel))


# ---------------------------------------------------------------- errors


X = np.zeros((2, 3, 8, 8))


@pytest.mark.parametrize("kwargs, exc, match", [
    ({}, ValueError, "output_size and output_ratio.*neither"),
    ({"output_size": 3, "output_ratio": 0.5}, ValueError, "output_size and output_ratio.*both"),
    ({"output_ratio": 0.0}, ValueError, r"output_ratio=0\.0.*\(0, 1\)"),
    ({"output_ratio": 1.0}, ValueError, r"output_ratio=1\.0"),
    ({"output_ratio": (0.5, math.nan)}, ValueError, "output_ratio.*nan"),
    ({"output_ratio": "half"}, TypeError, "output_ratio.*half"),
    ({"output_ratio": 0.1}, ValueError, r"output_ratio.*int\(8 \* 0\.1\) = 0"),
    ({"output_size": 0}, ValueError, "output_size=0"),
    ({"output_size": (3, 2.5)}, TypeError, r"output_size.*2\.5"),
    ({"output_size": (8, 3)}, ValueError, "length 8, too short for 8 windows of kernel_size 2"),
    ({"output_size": 3, "samples": np.zeros((2, 2))}, ValueError, r"samples.*\(2, 2\)"),
    ({"output_size": 3, "samples": [0.5, 1.0]}, ValueError, r"samples.*\[0, 1\).*1\.0"),
    ({"output_size": 3, "samples": [-0.1, 0.5]}, ValueError, r"samples.*\[0, 1\)"),
    ({"output_size": 3, "samples": [math.nan, 0.5]}, ValueError, r"samples.*\[0, 1\)"),
    ({"output_size": 3, "samples": [0.5j, 0.5]}, TypeError, "samples"),
    ({"output_size": 3, "samples": [0.5, 0.5], "rng": 1}, ValueError, "samples or rng"),
    ({"output_size": 3, "rng": "seed"}, TypeError, "rng.*seed"),
])
def test_bad_arguments_are_rejected_naming_them(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        poolnd.fractional_max_pool2d(X, 2, **kwargs)


def test_layer_checks_its_arguments_when_made():
    with pytest.raises(ValueError, match="output_ratio"):
        poolnd.nn.FractionalMaxPool2d(2, output_ratio=1.5)
    with pytest.raises(ValueError, match="output_size and output_ratio"):
        poolnd.nn.FractionalMaxPool2d(2)
    layer = poolnd.nn.FractionalMaxPool2d(2, 3)
    with pytest.raises(ValueError, match="forward"):
        layer.backward(np.ones((2, 3, 3, 3)))
    layer(X)
    with pytest.raises(ValueError, match="grad_output"):
        layer.backward(np.ones((2, 3, 3, 4)))


def test_backward_rejects_bad_indices_and_gradients():
    _, idx = poolnd.fractional_max_pool2d(X, 2, 3, return_indices=True, rng=0)
    grad = np.ones(idx.shape)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 64\)"):
        poolnd.fractional_max_pool_backward(grad, idx + 64, X.shape, (2, 2), 3)
    with pytest.raises(ValueError, match="indices must be integers"):
        poolnd.fractional_max_pool_backward(grad, idx.astype(float), X.shape, (2, 2), 3)
    with pytest.raises(ValueError, match="grad_output"):
        poolnd.fractional_max_pool_backward(grad[..., :2], idx, X.shape, (2, 2), 3)


def test_zero_size_batch_axis_gives_empty_results():
    x = np.zeros((0, 3, 8, 8), np.float32)
    out, idx = poolnd.fractional_max_pool2d(x, 2, 3, return_indices=True)
    assert out.shape == idx.shape == (0, 3, 3, 3) and out.dtype == np.float32
    layer = poolnd.nn.FractionalMaxPool2d(2, 3)
    assert layer(x).shape == (0, 3, 3, 3)
    assert layer.backward(np.zeros((0, 3, 3, 3))).shape == x.shape
