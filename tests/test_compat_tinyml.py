"""poolnd.compat.tinyml: tinyml's MaxPool2D, the same numbers as tinyml 0.0.6 itself."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import ref_max_pool, ref_max_pool_backward

from poolnd.compat.tinyml import MaxPool2D


@pytest.fixture(scope="module")
def tinyml_pooling():
    return pytest.importorskip("tinyml.layers.pooling")


def window_positions(indices, shape, kernel, stride):
    """Flat indices (h * W + w) as positions inside each window (row * kw + column)."""
    out_h, out_w = indices.shape[-2:]
    rows = indices // shape[-1] - (np.arange(out_h) * stride[0])[:, None]
    cols = indices % shape[-1] - np.arange(out_w) * stride[1]
    return rows * kernel[1] + cols


@st.composite
def tinyml_settings(draw, tinyml_accepts=True):
    """(N, C, H, W), size, stride with windows that tile H and W exactly.

    tinyml also checks ``W - size[0]`` against the stride (its bug); with
    ``tinyml_accepts`` only settings that pass that check are drawn.
    """
    stride = draw(st.integers(1, 3))
    kh = draw(st.integers(1, 4))
    widths = st.integers(1, 4)
    if tinyml_accepts:  # W - kh is then a multiple of the stride as well as W - kw
        widths = widths.filter(lambda kw: (kw - kh) % stride == 0)
    size = (kh, draw(widths))
    out_h, out_w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    height, width = (out_h - 1) * stride + size[0], (out_w - 1) * stride + size[1]
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), height, width)
    return shape, size, stride


def draw_input(rng, shape, dtype, nan_share=0.0):
    """Small integers, so that windows often hold ties; NaN in about ``nan_share``."""
    x = rng.integers(0, 3, size=shape).astype(dtype)
    if nan_share:
        x[rng.random(shape) < nan_share] = np.nan
    return x


# --- the seed document ----------------------------------------------------------


def test_seed_example_prints_5_6_8_9_and_routes_gradient_to_maxima():
    a = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    layer = MaxPool2D("pool", (1, 3, 3), (2, 2), 1)
    out = layer.forward(a.reshape(1, 1, 3, 3))
    np.testing.assert_array_equal(out[0, 0], [[5.0, 6.0], [8.0, 9.0]])
    # dl/dx_ij = dl/df where x_ij is its window's maximum, 0 elsewhere
    grad = layer.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    np.testing.assert_array_equal(grad[0, 0], [[0, 0, 0], [0, 1, 2], [0, 3, 4]])


# --- against tinyml itself --------------------------------------------------------


def _both(tinyml_pooling, shape, size, stride, return_index):
    dim = shape[1:]
    return (tinyml_pooling.MaxPool2D("t", dim, size, stride, return_index=return_index),
            MaxPool2D("p", dim, size, stride, return_index=return_index))


@given(setting=tinyml_settings(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**32 - 1))
def test_outputs_window_indices_and_gradients_equal_tinyml(tinyml_pooling, setting, dtype, seed):
    shape, size, stride = setting
    rng = np.random.default_rng(seed)
    x = draw_input(rng, shape, dtype)
    theirs, ours = _both(tinyml_pooling, shape, size, stride, return_index=True)
    (t_out, t_idx), (p_out, p_idx) = theirs.forward(x), ours.forward(x)
    np.testing.assert_array_equal(p_out, t_out)
    np.testing.assert_array_equal(p_idx, t_idx)  # ties: the first maximum of the window
    assert (p_out.dtype, p_idx.dtype) == (t_out.dtype, t_idx.dtype)
    # integer-valued gradients: overlapping windows' sums are exact in any order
    grad = rng.integers(-4, 5, size=t_out.shape).astype(dtype)
    t_grad, p_grad = theirs.backward(grad), ours.backward(grad)
    np.testing.assert_array_equal(p_grad, t_grad)
    assert p_grad.dtype == t_grad.dtype


@given(setting=tinyml_settings(), seed=st.integers(0, 2**32 - 1))
def test_nan_window_names_its_first_nan_as_tinyml_does(tinyml_pooling, setting, seed):
    shape, size, stride = setting
    rng = np.random.default_rng(seed)
    x = draw_input(rng, shape, np.float64, nan_share=0.4)
    theirs, ours = _both(tinyml_pooling, shape, size, stride, return_index=True)
    (t_out, t_idx), (p_out, p_idx) = theirs.forward(x), ours.forward(x)
    np.testing.assert_array_equal(p_out, t_out)  # NaN where the window holds NaN
    np.testing.assert_array_equal(p_idx, t_idx)
    grad = rng.integers(-4, 5, size=t_out.shape).astype(np.float64)
    np.testing.assert_array_equal(ours.backward(grad), theirs.backward(grad))


@given(setting=tinyml_settings(), seed=st.integers(0, 2**32 - 1))
def test_real_valued_gradients_match_tinyml_to_rounding(tinyml_pooling, setting, seed):
    """Overlapping windows add in another order than ``np.add.at``: equal to rounding."""
    shape, size, stride = setting
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape, dtype=np.float32)
    theirs, ours = _both(tinyml_pooling, shape, size, stride, return_index=False)
    np.testing.assert_array_equal(ours.forward(x), theirs.forward(x))
    grad = rng.standard_normal((shape[0], *theirs.out_dim), dtype=np.float32)
    np.testing.assert_allclose(ours.backward(grad), theirs.backward(grad), rtol=1e-6, atol=1e-6)


def test_gradient_comes_back_in_the_input_float_dtype_as_tinyml(tinyml_pooling):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4), dtype=np.float32)
    theirs, ours = _both(tinyml_pooling, x.shape, (2, 2), 2, return_index=False)
    grad = np.ones((2, 3, 2, 2))  # float64
    theirs.forward(x), ours.forward(x)
    t_grad, p_grad = theirs.backward(grad), ours.backward(grad)
    assert p_grad.dtype == t_grad.dtype == np.float32
    np.testing.assert_array_equal(p_grad, t_grad)


# --- where poolnd does the right thing -------------------------------------------


def test_width_is_checked_against_the_kernel_width_not_its_height(tinyml_pooling):
    """tinyml compares W - size[0] with the stride: (5 - 2) % 2 != 0 refuses this valid setting."""
    shape, size, stride = (2, 3, 4, 5), (2, 3), 2
    x = np.random.default_rng(1).standard_normal(shape)
    with pytest.raises(AssertionError):
        tinyml_pooling.MaxPool2D("t", shape[1:], size, stride).forward(x)
    out, idx = MaxPool2D("p", shape[1:], size, stride, return_index=True).forward(x)
    ref_out, ref_flat = ref_max_pool(x, size, stride)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(idx, window_positions(ref_flat, shape, size, (stride, stride)))


@given(setting=tinyml_settings(tinyml_accepts=False), seed=st.integers(0, 2**32 - 1))
def test_every_exact_tiling_matches_the_reference(setting, seed):
    shape, size, stride = setting
    rng = np.random.default_rng(seed)
    x = draw_input(rng, shape, np.float64)
    layer = MaxPool2D("p", shape[1:], size, stride, return_index=True)
    out, idx = layer.forward(x)
    ref_out, ref_flat = ref_max_pool(x, size, stride)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(idx, window_positions(ref_flat, shape, size, (stride, stride)))
    grad = rng.standard_normal(out.shape)
    np.testing.assert_allclose(layer.backward(grad),
                               ref_max_pool_backward(grad, ref_flat, shape, size, stride),
                               rtol=1e-12, atol=1e-12)


def test_int_input_gets_a_float64_gradient_not_a_truncated_one():
    x = np.arange(16).reshape(1, 1, 4, 4)
    layer = MaxPool2D("p", (1, 4, 4), (2, 2), 2)
    assert layer.forward(x).dtype == x.dtype
    grad = layer.backward(np.full((1, 1, 2, 2), 0.5))
    assert grad.dtype == np.float64
    assert grad.sum() == 2.0


def test_input_is_not_modified_and_may_be_read_only():
    x = np.random.default_rng(2).standard_normal((2, 2, 4, 4))
    x[0, 0, 0, :2] = np.nan
    x.flags.writeable = False
    before = x.copy()
    layer = MaxPool2D("p", (2, 4, 4), (2, 2), 2, return_index=True)
    layer.forward(x)
    np.testing.assert_array_equal(x, before)


# --- errors ---------------------------------------------------------------------


@pytest.mark.parametrize("input_dim, size, stride, axis", [
    ((1, 5, 4), (2, 2), 2, "height"),
    ((1, 4, 5), (2, 2), 2, "width"),
    ((3, 7, 7), (3, 2), 2, "width"),
])
def test_inexact_tiling_is_a_value_error_naming_the_axis(tinyml_pooling, input_dim, size,
                                                          stride, axis):
    with pytest.raises(Exception) as theirs:  # tinyml: a bare Exception
        tinyml_pooling.MaxPool2D("t", input_dim, size, stride)
    assert type(theirs.value) is Exception
    with pytest.raises(ValueError, match=f"input {axis} .* not tiled exactly"):
        MaxPool2D("p", input_dim, size, stride)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"size": (0, 2)}, ValueError, "size"),
    ({"size": (2, 2, 2)}, ValueError, "size"),
    ({"size": 2.0}, TypeError, "size"),
    ({"stride": 0}, ValueError, "stride"),
    ({"stride": 1.5}, TypeError, "stride"),
    ({"size": (5, 5)}, ValueError, "length 4, kernel_size 5"),
    ({"input_dim": (4, 4)}, TypeError, "input_dim"),
    ({"input_dim": (1, 0, 4)}, ValueError, "input_dim"),
    ({"return_index": 1}, TypeError, "return_index"),
])
def test_bad_settings_are_clear_errors_when_the_layer_is_made(kwargs, error, match):
    arguments = {"name": "p", "input_dim": (1, 4, 4), "size": (2, 2), "stride": 2, **kwargs}
    with pytest.raises(error, match=match):
        MaxPool2D(**arguments)


def test_input_of_another_shape_than_input_dim_is_a_value_error():
    layer = MaxPool2D("p", (3, 4, 4), (2, 2), 2)
    with pytest.raises(ValueError, match=r"\(N, 3, 4, 4\)"):
        layer.forward(np.zeros((2, 3, 6, 6)))
    with pytest.raises(ValueError, match=r"\(N, 3, 4, 4\)"):
        layer.forward(np.zeros((3, 4, 4)))


def test_backward_before_forward_and_wrong_gradient_shape_are_errors():
    layer = MaxPool2D("p", (1, 4, 4), (2, 2), 2)
    with pytest.raises(ValueError, match="before forward"):
        layer.backward(np.ones((1, 1, 2, 2)))
    layer.forward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="grad_output has shape"):
        layer.backward(np.ones((1, 1, 3, 3)))


def test_layer_looks_like_a_tinyml_layer():
    layer = MaxPool2D("pool1", (16, 64, 64), (2, 2), 2)
    assert (layer.name, layer.type, layer.parameters) == ("pool1", "MaxPool2D", [])
    assert (layer.out_height, layer.out_width, layer.out_dim) == (32, 32, (16, 32, 32))
    assert layer.summary() == ["MaxPool2D", "pool1", "N/A", (16, 32, 32)]
    x = np.zeros((1, 16, 64, 64))
    np.testing.assert_array_equal(layer(x), layer.forward(x))
