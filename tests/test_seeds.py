"""The worked examples of the seed documents (MyGrad, Lucid, tinyml, NumPyNet,
d2l), with the numbers they print, wherever they agree with docs/SPEC.md."""

from __future__ import annotations

import numpy as np
from reference import ref_max_pool, ref_max_pool_backward

import poolnd
import poolnd.nn

# --- MyGrad: mygrad.nnet.layers.max_pool -------------------------------------


def test_mygrad_2d_pool_values_and_gradient():
    x = np.array([[0.0, 10.0, 8.0], [2.0, 7.0, 3.0], [5.0, 7.0, 20.0]])
    out, idx = poolnd.max_pool(x, (2, 2), 1, return_indices=True)
    np.testing.assert_array_equal(out, [[10.0, 10.0], [7.0, 20.0]])
    # out.sum().backward(): a gradient of ones, overlapping windows add up
    grad = poolnd.max_pool_backward(np.ones_like(out), idx, x.shape, (2, 2), 1)
    np.testing.assert_array_equal(grad, [[0.0, 2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def test_mygrad_1d_pool_over_rows():
    x = np.array([[0.0, 10.0, 8.0], [9.0, 7.0, 3.0], [5.0, 0.0, 20.0]])
    out = poolnd.max_pool(x, (2,), 1)
    np.testing.assert_array_equal(out, [[10.0, 10.0], [9.0, 7.0], [5.0, 20.0]])


def test_mygrad_4d_batch_shape():
    x = np.random.default_rng(0).random((10, 3, 12, 12))
    out = poolnd.max_pool(x, (2, 2), (2, 1))
    assert out.shape == (10, 3, 6, 11)


# --- Lucid: lucid.nn.MaxPool2d ------------------------------------------------


def test_lucid_unpadded_example():
    x = np.array([[[[1.0, 3.0], [2.0, 4.0]]]])
    layer = poolnd.nn.MaxPool2d(kernel_size=2, stride=2, padding=0)
    out = layer(x)
    np.testing.assert_array_equal(out, [[[[4.0]]]])
    grad = layer.backward(np.array([[[[1.0]]]]))
    np.testing.assert_array_equal(grad, [[[[0.0, 0.0], [0.0, 1.0]]]])


def test_lucid_padded_example_follows_the_output_formula():
    """Lucid prints a 3x3 output for a 3x3 input, kernel 2, stride 1, padding 1.

    The output-length formula of docs/SPEC.md section 1 (and PyTorch) gives
    (3 + 2 - 2) // 1 + 1 = 4 per axis, so poolnd returns 4x4 and Lucid's
    printed output is not followed. The values are checked against the
    reference, with padding acting as -inf.
    """
    x = np.array([[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]])
    layer = poolnd.nn.MaxPool2d(kernel_size=2, stride=1, padding=1)
    out = layer(x)
    assert out.shape == (1, 1, 4, 4)
    ref_out, ref_idx = ref_max_pool(x, (2, 2), 1, 1)
    np.testing.assert_array_equal(out, ref_out)
    # every window's maximum is an input value: padding never wins
    assert set(out.ravel()) <= set(x.ravel())
    ones = np.ones_like(out)
    np.testing.assert_array_equal(layer.backward(ones),
                                  ref_max_pool_backward(ones, ref_idx, x.shape, (2, 2), 1, 1))


def test_lucid_model_max_pool_part():
    """The model's pooling layer (kernel 2, stride 2) on its 4x4 input.

    Its printed output 16.0 is the maximum of the whole input, which the
    bottom-right window holds; the gradient of that window goes to one
    element only, as in the printed input gradient.
    """
    x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    layer = poolnd.nn.MaxPool2d(kernel_size=2, stride=2, padding=0)
    out = layer(x)
    assert out.shape == (1, 1, 2, 2)
    assert out[0, 0, -1, -1] == 16.0
    np.testing.assert_array_equal(out, ref_max_pool(x, (2, 2), 2)[0])
    grad_out = np.zeros_like(out)
    grad_out[0, 0, -1, -1] = 1.0
    grad = layer.backward(grad_out)
    assert grad.sum() == 1.0
    assert grad[0, 0, 3, 3] == 1.0


# --- tinyml: MaxPool2D with return_index ------------------------------------


def test_tinyml_example_and_window_argmax():
    a = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    out, idx = poolnd.max_pool(a, (2, 2), 1, return_indices=True)
    np.testing.assert_array_equal(out, [[5.0, 6.0], [8.0, 9.0]])
    # tinyml returns the argmax within the window; poolnd returns the flat
    # index in the input: flat = (i*s + wi)*W + (j*s + wj)
    width = a.shape[1]
    for i, j in np.ndindex(out.shape):
        window = a[i:i + 2, j:j + 2]
        wi, wj = np.unravel_index(np.argmax(window), window.shape)
        assert idx[i, j] == (i + wi) * width + (j + wj)
        assert a.ravel()[idx[i, j]] == out[i, j]


def test_tinyml_style_strided_indices_on_random_batch():
    x = np.random.default_rng(1).random((2, 3, 6, 8))
    out, idx = poolnd.max_pool2d(x, (2, 2), 2, return_indices=True)
    windows = x.reshape(2, 3, 3, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 3, 4, 4)
    local = windows.argmax(axis=-1)
    rows = np.arange(3)[:, None] * 2 + local // 2
    cols = np.arange(4)[None, :] * 2 + local % 2
    np.testing.assert_array_equal(idx, rows * 8 + cols)
    np.testing.assert_array_equal(out, windows.max(axis=-1))


# --- NumPyNet: channels-last (batch, w, h, c), nanmax ---------------------------


def test_numpynet_channels_last_same_padding_with_nan_omit():
    rng = np.random.default_rng(2)
    batch, w, h, c = (5, 10, 9, 3)
    x = rng.uniform(0.0, 1.0, size=(batch, w, h, c))
    x[rng.random(x.shape) < 0.1] = np.nan
    out, idx = poolnd.max_pool(x, (3, 3), 2, "same", axes=(1, 2), return_indices=True,
                               nan_policy="omit")
    ref_out, ref_idx = ref_max_pool(x, (3, 3), 2, "same", axes=(1, 2), nan_policy="omit")
    assert out.shape == (batch, 5, 5, c)  # ceil(10 / 2), ceil(9 / 2)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(idx, ref_idx)
    # the layer form of the same call
    layer = poolnd.nn.MaxPool2d(3, 2, "same", nan_policy="omit", channels_last=True)
    np.testing.assert_array_equal(layer(x), ref_out)


def test_numpynet_valid_pooling_drops_the_last_rows():
    # NumPyNet without padding cuts the rows and columns no window reaches
    x = np.random.default_rng(3).uniform(size=(5, 100, 100, 3))
    size, stride = 3, 2
    out = poolnd.max_pool(x, (size, size), stride, axes=(1, 2))
    cut = x[:, : (100 - size) // stride * stride + size, : (100 - size) // stride * stride + size]
    np.testing.assert_array_equal(out, poolnd.max_pool(cut, (size, size), stride, axes=(1, 2)))
    assert out.shape == (5, 49, 49, 3)


# --- d2l: 7.5 Pooling --------------------------------------------------------


def test_d2l_pool2d_max_and_avg():
    x = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    np.testing.assert_array_equal(poolnd.max_pool(x, (2, 2), 1), [[4.0, 5.0], [7.0, 8.0]])
    np.testing.assert_array_equal(poolnd.avg_pool(x, (2, 2), 1), [[2.0, 3.0], [5.0, 6.0]])


def test_d2l_stride_defaults_to_kernel_size():
    x = np.arange(16, dtype=np.float32).reshape((1, 1, 4, 4))
    np.testing.assert_array_equal(poolnd.nn.MaxPool2d(3)(x), [[[[10.0]]]])


def test_d2l_padding_and_stride():
    x = np.arange(16, dtype=np.float32).reshape((1, 1, 4, 4))
    out = poolnd.nn.MaxPool2d(3, padding=1, stride=2)(x)
    np.testing.assert_array_equal(out, [[[[5.0, 7.0], [13.0, 15.0]]]])


def test_d2l_rectangular_window():
    """The document shows the call but not its output; it is checked against
    the reference and against its own channels-last twin (the JAX and
    TensorFlow versions pad NHWC and pool axes 1 and 2)."""
    x = np.arange(16, dtype=np.float32).reshape((1, 1, 4, 4))
    out = poolnd.nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))(x)
    assert out.shape == (1, 1, 2, 2)
    np.testing.assert_array_equal(out, ref_max_pool(x, (2, 3), (2, 3), (0, 1))[0])
    nhwc = x.transpose(0, 2, 3, 1)
    twin = poolnd.max_pool(nhwc, (2, 3), (2, 3), (0, 1), axes=(1, 2))
    np.testing.assert_array_equal(twin.transpose(0, 3, 1, 2), out)


def test_d2l_two_channels_pool_separately():
    x = np.arange(16, dtype=np.float32).reshape((1, 1, 4, 4))
    x = np.concatenate((x, x + 1), 1)
    out = poolnd.nn.MaxPool2d(3, padding=1, stride=2)(x)
    np.testing.assert_array_equal(out, [[[[5.0, 7.0], [13.0, 15.0]], [[6.0, 8.0], [14.0, 16.0]]]])
    # channels-last, as the JAX and TensorFlow versions print it
    nhwc = poolnd.max_pool(x.transpose(0, 2, 3, 1), (3, 3), 2, 1, axes=(1, 2))
    np.testing.assert_array_equal(nhwc, [[[[5.0, 6.0], [7.0, 8.0]], [[13.0, 14.0], [15.0, 16.0]]]])
