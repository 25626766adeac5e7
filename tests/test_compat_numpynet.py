"""poolnd.compat.numpynet: NumPyNet's channels-last Maxpool_layer against the reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import ref_max_pool, ref_max_pool_backward

import poolnd
from poolnd.compat.numpynet import Maxpool_layer

AXES = (1, 2)  # (batch, w, h, c)


def numpynet_same_padding(length, size, stride):
    """NumPyNet's own description of "same": (before, after) for one axis."""
    if length % stride == 0:
        total = max(size - stride, 0)
    else:
        total = max(size - length % stride, 0)
    return total >> 1, total - (total >> 1)


def reference(x, size, stride, pad, upstream):
    """Output and input gradient from the brute-force loops, NaN skipped."""
    padding = "same" if pad else 0
    out, idx = ref_max_pool(x, size, stride, padding, axes=AXES, nan_policy="omit")
    grad = ref_max_pool_backward(upstream, idx, x.shape, size, stride, padding, axes=AXES)
    return out, grad


# --- the seed document ----------------------------------------------------------


def test_seed_example_forward_then_backward_into_a_zero_delta():
    batch, w, h, c = (5, 100, 100, 3)
    rng = np.random.default_rng(0)
    inpt = rng.uniform(low=0.0, high=1.0, size=(batch, w, h, c))
    layer = Maxpool_layer(size=3, stride=2, pad=False)

    assert layer.forward(inpt=inpt) is layer
    output = layer.output
    assert output.shape == (batch, 49, 49, c) == layer.out_shape
    assert output.dtype == np.float64
    layer.delta = rng.uniform(0, 1, size=output.shape)
    delta = np.zeros(shape=inpt.shape)
    assert layer.backward(delta=delta) is layer

    # the same call through poolnd's functional API
    out, idx = poolnd.max_pool(inpt, (3, 3), 2, axes=AXES, return_indices=True,
                               nan_policy="omit")
    np.testing.assert_array_equal(output, out)
    np.testing.assert_array_equal(
        delta, poolnd.max_pool_backward(layer.delta, idx, inpt.shape, (3, 3), 2, axes=AXES))


# --- semantics, against the brute-force reference --------------------------------


@st.composite
def numpynet_settings(draw):
    size = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = draw(st.booleans())
    shape = (draw(st.integers(1, 2)), draw(st.integers(size[0], 7)),
             draw(st.integers(size[1], 7)), draw(st.integers(1, 3)))
    return shape, size, stride, pad


@given(setting=numpynet_settings(), seed=st.integers(0, 2**32 - 1),
       nan_share=st.sampled_from([0.0, 0.3]))
def test_forward_and_backward_match_the_reference(setting, seed, nan_share):
    """Channels-last, "same" or "valid", NaN skipped, overlapping windows accumulate."""
    shape, size, stride, pad = setting
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=shape).astype(np.float64)  # ties are common
    x[rng.random(shape) < nan_share] = np.nan
    layer = Maxpool_layer(size, stride, pad)
    layer.forward(x)
    layer.delta = rng.integers(-4, 5, size=layer.output.shape).astype(np.float64)
    delta = rng.standard_normal(shape)  # what earlier layers left there stays
    start = delta.copy()
    layer.backward(delta)
    ref_out, ref_grad = reference(x, size, stride, pad, layer.delta)
    np.testing.assert_array_equal(layer.output, ref_out)
    np.testing.assert_allclose(delta, start + ref_grad, rtol=1e-15, atol=0)


@given(length=st.integers(1, 20), size=st.integers(1, 5), stride=st.integers(1, 5))
def test_pad_true_splits_padding_as_numpynet_does(length, size, stride):
    layer = Maxpool_layer((size, 1), (stride, 1), pad=True, input_shape=(1, length, 3, 1))
    before, after = numpynet_same_padding(length, size, stride)
    assert (layer.pad_top, layer.pad_bottom, layer.pad_left, layer.pad_right) == (
        before, after, 0, 0)
    # NumPyNet's output length: (w + pads - size) // stride + 1
    assert layer.out_shape == (1, (length + before + after - size) // stride + 1, 3, 1)


def test_overlapping_windows_add_their_gradients():
    # MyGrad's docstring example, channels-last: the 10 is the maximum of two windows
    x = np.array([[0.0, 10.0, 8.0], [2.0, 7.0, 3.0], [5.0, 7.0, 20.0]]).reshape(1, 3, 3, 1)
    layer = Maxpool_layer(size=2, stride=1).forward(x)
    np.testing.assert_array_equal(layer.output[0, :, :, 0], [[10.0, 10.0], [7.0, 20.0]])
    layer.delta = np.ones(layer.out_shape)
    delta = np.zeros(x.shape)
    layer.backward(delta)
    np.testing.assert_array_equal(delta[0, :, :, 0], [[0, 2, 0], [0, 1, 0], [0, 0, 1]])


def test_nan_is_skipped_and_all_nan_windows_give_nan():
    x = np.array([[np.nan, 1.0, np.nan, np.nan], [0.5, np.nan, np.nan, np.nan]]).reshape(1, 2, 4, 1)
    layer = Maxpool_layer(size=2).forward(x)
    np.testing.assert_array_equal(layer.output[0, :, :, 0], [[1.0, np.nan]])
    layer.delta = np.ones(layer.out_shape)
    delta = np.zeros(x.shape)
    layer.backward(delta)
    # the all-NaN window sends its gradient to its first element (NumPyNet raises instead)
    np.testing.assert_array_equal(delta[0, :, :, 0], [[0, 1, 1, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32, np.uint8, np.bool_])
def test_output_is_float64_whatever_the_input(dtype):
    x = (np.random.default_rng(3).random((2, 6, 6, 2)) * 100).astype(dtype)
    layer = Maxpool_layer(3, 2, pad=True).forward(x)
    assert layer.output.dtype == np.float64
    assert layer.delta.dtype == np.float64 and not layer.delta.any()
    ref_out, _ = ref_max_pool(x.astype(np.float64), (3, 3), 2, "same", axes=AXES)
    np.testing.assert_array_equal(layer.output, ref_out)


@pytest.mark.parametrize("stride", [None, 0])
def test_no_stride_means_the_window_size(stride):
    layer = Maxpool_layer(size=(2, 3), stride=stride)
    assert (layer.size, layer.stride) == ((2, 3), (2, 3))


def test_backward_adds_in_place_into_a_float32_delta():
    x = np.random.default_rng(4).standard_normal((1, 4, 4, 2))
    layer = Maxpool_layer(2).forward(x)
    layer.delta = np.full(layer.out_shape, 0.5)
    delta = np.ones(x.shape, np.float32)
    view = delta[:]  # NumPyNet's networks pass views of the previous layer's delta
    layer.backward(view)
    assert delta.dtype == np.float32
    assert delta.sum() == x.size + 0.5 * np.prod(layer.out_shape)


def test_input_is_not_modified():
    x = np.random.default_rng(5).standard_normal((2, 5, 5, 3))
    x[0, 0, 0, 0] = np.nan
    x.flags.writeable = False
    before = x.copy()
    Maxpool_layer(3, 2, pad=True).forward(x)
    np.testing.assert_array_equal(x, before)


def test_joining_a_network_takes_the_previous_out_shape():
    class Previous:
        out_shape = (8, 28, 28, 16)

    layer = Maxpool_layer(2)(Previous())
    assert layer.input_shape == (8, 28, 28, 16)
    assert layer.out_shape == (8, 14, 14, 16)
    assert Maxpool_layer(2).out_shape is None


def test_the_batch_may_change_between_calls():
    layer = Maxpool_layer(2, input_shape=(8, 4, 4, 1))
    layer.forward(np.zeros((3, 4, 4, 1)))
    assert layer.out_shape == layer.output.shape == layer.delta.shape == (3, 2, 2, 1)


# --- errors ---------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, match", [
    ({"size": 0}, ValueError, "size"),
    ({"size": (2, 2, 2)}, ValueError, "size"),
    ({"size": 2.5}, TypeError, "size"),
    ({"stride": (1, 2, 3)}, ValueError, "stride"),
    ({"stride": -1}, ValueError, "stride"),
    ({"pad": "same"}, TypeError, "pad"),
    ({"input_shape": (4, 4, 1)}, ValueError, "input_shape"),
    ({"input_shape": (1, 1, 4, 1)}, ValueError, "length 1, kernel_size 2"),
])
def test_bad_settings_are_clear_errors_when_the_layer_is_made(kwargs, error, match):
    with pytest.raises(error, match=match):
        Maxpool_layer(**{"size": 2, **kwargs})


def test_forward_errors_name_the_input():
    layer = Maxpool_layer(2, input_shape=(1, 4, 4, 3))
    with pytest.raises(ValueError, match="inpt has shape"):
        layer.forward(np.zeros((1, 4, 4, 2)))
    with pytest.raises(ValueError, match=r"inpt must have shape \(batch, w, h, c\)"):
        Maxpool_layer(2).forward(np.zeros((4, 4)))


def _gradient(layer, x, upstream):
    """What ``backward`` adds into a zero delta of ``x``'s shape."""
    delta = np.zeros(x.shape)
    layer.delta = upstream
    layer.backward(delta)
    return delta


def test_a_layer_used_twice_answers_backwards_in_reverse_order():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((2, 6, 6, 2)), rng.standard_normal((3, 6, 6, 2))
    grad_a, grad_b = rng.standard_normal((2, 3, 3, 2)), rng.standard_normal((3, 3, 3, 2))
    want_a = _gradient(Maxpool_layer(2).forward(a), a, grad_a)
    want_b = _gradient(Maxpool_layer(2).forward(b), b, grad_b)

    layer = Maxpool_layer(2)
    layer.forward(a)
    layer.forward(b)
    np.testing.assert_array_equal(_gradient(layer, b, grad_b), want_b)
    np.testing.assert_array_equal(_gradient(layer, a, grad_a), want_a)
    with pytest.raises(ValueError, match=r"Maxpool_layer\.backward\(\) .* more often than "
                                         r"forward"):
        _gradient(layer, a, grad_a)


def test_backward_before_forward_is_the_layers_shared_error():
    with pytest.raises(ValueError, match=r"^Maxpool_layer\.backward\(\) called before "
                                         r"forward\(\), or more often than forward\(\)"):
        Maxpool_layer(2, input_shape=(1, 4, 4, 1)).backward(np.zeros((1, 4, 4, 1)))
    layer = Maxpool_layer(2).eval()
    layer.forward(np.zeros((1, 4, 4, 1)))
    with pytest.raises(ValueError, match=r"eval mode.*layer\.train\(\)"):
        layer.backward(np.zeros((1, 4, 4, 1)))


def test_backward_errors_name_the_argument():
    layer = Maxpool_layer(2)
    layer.forward(np.zeros((1, 4, 4, 1)))
    with pytest.raises(TypeError, match="delta must be a NumPy array"):
        layer.backward(np.zeros((1, 4, 4, 1)).tolist())
    with pytest.raises(TypeError, match="delta must hold floats"):
        layer.backward(np.zeros((1, 4, 4, 1), np.int64))
    with pytest.raises(ValueError, match="delta has shape"):
        layer.backward(np.zeros((1, 2, 2, 1)))
    layer.delta = np.ones((1, 3, 3, 1))
    with pytest.raises(ValueError, match="layer.delta has shape"):
        layer.backward(np.zeros((1, 4, 4, 1)))
