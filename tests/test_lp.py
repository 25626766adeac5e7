"""LP pooling (docs/SPEC.md sections 2 to 5): ``(sum of x**p over each window) ** (1/p)``.

Against PyTorch 2.13 CPU's ``lp_pool1d/2d/3d`` and ``LPPool1d/2d/3d`` wherever PyTorch's
result is finite, and against the brute-force loops of ``reference.py`` for the rest:
four pooled axes, channels-last axes, integer and float16 dtypes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import ref_lp_pool, ref_lp_pool_backward
from test_reference import SETTINGS, _integer_grad
from test_reference import assert_close as assert_close_to_reference
from test_torch import LAYOUTS, assert_identical, from_planes, to_planes, with_layout

import poolnd
import poolnd.nn

NDIMS = pytest.mark.parametrize("n", [1, 2, 3])
MAX_LEN = {1: 12, 2: 8, 3: 5}
INF = float("inf")
TOL = {np.float32: 1e-6, np.float64: 1e-12}


# ---------------------------------------------------------------- cases


@st.composite
def lp_cases(draw, n, signed=None):
    """(x, norm_type, kernel, stride, ceil_mode): the last n axes pooled, lengths >= kernel
    (torch's avg_pool3d wants that), data of either float dtype, signed or not."""
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(n))
    stride = draw(st.one_of(st.none(), st.tuples(*(st.integers(1, 3) for _ in range(n)))))
    spatial = tuple(draw(st.integers(k, max(k, MAX_LEN[n]))) for k in kernel)
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(batch + spatial)
    x[rng.random(x.shape) < draw(st.sampled_from([0.0, 0.2]))] = 0.0  # zero windows too
    if not (draw(st.booleans()) if signed is None else signed):
        x = np.abs(x)
    norm_type = draw(st.one_of(st.sampled_from([1, 2, 3, 4, 0.5, 1.5, 2.5, INF]),
                               st.floats(0.25, 6.0)))
    return x.astype(dtype), norm_type, kernel, stride, draw(st.booleans())


def torch_lp(x, norm_type, kernel, stride, ceil_mode, grad=None):
    """torch's lp_pool{n}d on (planes, 1, *spatial) and autograd's gradient for ``grad``."""
    n, batch = len(kernel), x.shape[: x.ndim - len(kernel)]
    t = to_planes(x, n).requires_grad_(grad is not None)
    y = getattr(F, f"lp_pool{n}d")(t, norm_type, kernel if n > 1 else kernel[0], stride,
                                   ceil_mode)
    x_grad = None
    if grad is not None:
        y.backward(to_planes(grad, n))
        x_grad = from_planes(t.grad, batch)
    return from_planes(y, batch), x_grad


def power_sums(x, norm_type, kernel, stride, ceil_mode):
    """Per window K * mean of |x|**p (float64): the size of the terms a result is made of."""
    n = len(kernel)
    t = to_planes(np.abs(x).astype(np.float64) ** norm_type, n)
    avg = getattr(F, f"avg_pool{n}d")(t, kernel, stride, 0, ceil_mode)
    return from_planes(avg, x.shape[: x.ndim - n]) * math.prod(kernel)


def assert_lp_close(got, want, scale, norm_type):
    """Equal to float32 rounding (1e-6) or float64's (1e-12) wherever ``want`` is finite.

    Compared as window sums ``out**p`` against the sum of the terms' sizes: odd powers
    of signed data cancel, and then a root amplifies the rounding of the sum.
    """
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape)
    tol = TOL[want.dtype.type]
    finite = np.isfinite(want)
    assert np.isfinite(got[finite]).all()
    if norm_type == INF:
        np.testing.assert_array_equal(got[finite], want[finite])
        return
    got_s = got[finite].astype(np.float64) ** norm_type
    want_s = want[finite].astype(np.float64) ** norm_type
    bound = tol * (np.abs(want_s) + scale[finite])
    assert (np.abs(got_s - want_s) <= bound).all(), np.abs(got_s - want_s).max()


def assert_grad_close(got, want, scale):
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape)
    tol = TOL[want.dtype.type]
    finite = np.isfinite(want)
    assert np.isfinite(got[finite]).all()
    err = np.abs(got[finite].astype(np.float64) - want[finite])
    assert (err <= 4 * tol * (np.abs(want[finite]) + scale[finite])).all(), err.max()


# ---------------------------------------------------------------- against PyTorch


@NDIMS
@given(data=st.data())
def test_lp_pool_equals_torch_where_torch_is_finite(n, data):
    x, p, kernel, stride, ceil_mode = data.draw(lp_cases(n))
    layout = data.draw(st.sampled_from(LAYOUTS))
    want, _ = torch_lp(x, p, kernel, stride, ceil_mode)
    x_in = with_layout(x, layout)
    got = poolnd.lp_pool(x_in, p, kernel, stride, ceil_mode)
    assert_lp_close(got, want, power_sums(x, p, kernel, stride, ceil_mode), p)
    named = getattr(poolnd, f"lp_pool{n}d")(x_in, p, kernel, stride, ceil_mode)
    assert_identical(named, got)
    np.testing.assert_array_equal(x_in, x)


@NDIMS
@given(data=st.data())
def test_lp_pool_backward_equals_torch_autograd(n, data):
    # No cancellation: a root of a cancelled sum amplifies rounding in both libraries.
    x, p, kernel, stride, ceil_mode = data.draw(lp_cases(n, signed=False))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    out_shape = poolnd.lp_pool(x, p, kernel, stride, ceil_mode).shape
    grad = rng.standard_normal(out_shape).astype(x.dtype)
    _, want = torch_lp(x, p, kernel, stride, ceil_mode, grad)
    got = poolnd.lp_pool_backward(grad, x, p, kernel, stride, ceil_mode)
    _, scale = torch_lp(x.astype(np.float64), p, kernel, stride, ceil_mode,
                        np.abs(grad).astype(np.float64))
    assert_grad_close(got, want, np.abs(scale))


@NDIMS
@given(data=st.data())
def test_lp_backward_of_signed_data_for_integer_and_infinite_powers(n, data):
    x, _, kernel, stride, ceil_mode = data.draw(lp_cases(n, signed=True))
    p = data.draw(st.sampled_from([1, 2, 4, INF]))
    out_shape = poolnd.lp_pool(x, p, kernel, stride, ceil_mode).shape
    grad = _integer_grad(data.draw(st.integers(0, 2**32 - 1)), out_shape, x.dtype)
    _, want = torch_lp(x, p, kernel, stride, ceil_mode, grad)
    got = poolnd.lp_pool_backward(grad, x, p, kernel, stride, ceil_mode)
    if p == INF:
        assert_identical(got, want)  # +-grad scattered: small integers, exact sums
    else:
        _, scale = torch_lp(np.abs(x).astype(np.float64), p, kernel, stride, ceil_mode,
                            np.abs(grad).astype(np.float64))
        assert_grad_close(got, want, np.abs(scale))


@NDIMS
@given(data=st.data())
def test_lp_layers_equal_torch_modules(n, data):
    x, p, kernel, stride, ceil_mode = data.draw(lp_cases(n, signed=False))
    k = kernel if n > 1 else kernel[0]
    layer = getattr(poolnd.nn, f"LPPool{n}d")(p, k, stride, ceil_mode)
    twin = getattr(torch.nn, f"LPPool{n}d")(p, k, stride, ceil_mode)
    assert repr(layer) == repr(twin)
    t = to_planes(x, n).requires_grad_(True)
    y = twin(t)
    grad = np.random.default_rng(0).standard_normal(y.shape).astype(x.dtype)
    y.backward(torch.from_numpy(grad))
    batch = x.shape[: x.ndim - n]
    grad = grad.reshape(batch + tuple(y.shape[2:]))
    layer(np.flip(x, axis=-1).copy())  # backward must use the latest forward
    got = layer(x)
    assert_lp_close(got, from_planes(y, batch), power_sums(x, p, kernel, stride, ceil_mode), p)
    _, scale = torch_lp(x.astype(np.float64), p, kernel, stride, ceil_mode,
                        np.abs(grad).astype(np.float64))
    assert_grad_close(layer.backward(grad), from_planes(t.grad, batch), np.abs(scale))


def test_negative_inputs_behave_as_in_pytorch():
    # no absolute value: p=1 sums signs, odd p may give a negative sum (NaN root),
    # a fractional p a NaN power; even p and inf see |x|
    x = np.array([[[-1.0, -2.0]]])
    want = {1: -3.0, 2: math.sqrt(5.0), 3: math.nan, 0.5: math.nan, INF: 2.0}
    for p, value in want.items():
        got = poolnd.lp_pool1d(x, p, 2)
        np.testing.assert_array_equal(got, [[[value]]])
        np.testing.assert_array_equal(got, F.lp_pool1d(torch.tensor(x), p, 2).numpy())


def test_ceil_mode_window_over_the_end_is_scaled_like_pytorch():
    # windows [1, 1] and [1]: the short one's sum 1 is scaled by K/taps = 2
    x = np.ones((1, 1, 3))
    np.testing.assert_array_equal(poolnd.lp_pool1d(x, 1, 2, ceil_mode=True), [[[2.0, 2.0]]])
    np.testing.assert_array_equal(F.lp_pool1d(torch.tensor(x), 1, 2, ceil_mode=True).numpy(),
                                  [[[2.0, 2.0]]])


def test_window_of_zeros_passes_no_gradient():
    x = np.array([[0.0, 0.0, 3.0, 4.0]])
    grad = poolnd.lp_pool_backward(np.ones((1, 2)), x, 2, (2,))
    np.testing.assert_array_equal(grad[:, :2], 0.0)
    np.testing.assert_allclose(grad[:, 2:], [[0.6, 0.8]], rtol=1e-15)  # x / |x|


# ---------------------------------------------------------------- against the reference


@st.composite
def reference_cases(draw, n, channels_last=False):
    """(shape, kernel, stride, ceil_mode, axes) with lengths >= kernel."""
    kernel = tuple(draw(st.integers(1, 2 if n > 3 else 3)) for _ in range(n))
    stride = draw(st.one_of(st.none(), st.tuples(*(st.integers(1, 3) for _ in range(n)))))
    spatial = tuple(draw(st.integers(k, k + 3)) for k in kernel)
    if channels_last:
        shape = (draw(st.integers(1, 2)), *spatial, draw(st.integers(1, 3)))
        axes = tuple(range(1, n + 1))
    else:
        shape = (draw(st.integers(1, 2)), *spatial)
        axes = None
    return shape, kernel, stride, draw(st.booleans()), axes


@settings(max_examples=30, **SETTINGS)
@given(reference_cases(4), st.sampled_from([1, 2, 3, 2.5, INF]), st.integers(0, 2**32 - 1))
def test_four_axes_match_reference(case, p, seed):
    shape, kernel, stride, ceil_mode, axes = case
    x = np.abs(np.random.default_rng(seed).standard_normal(shape))
    got = poolnd.lp_pool(x, p, kernel, stride, ceil_mode, axes=axes)
    assert_close_to_reference(got, ref_lp_pool(x, p, kernel, stride, ceil_mode, axes=axes))
    grad = _integer_grad(seed, got.shape, np.float64)
    assert_close_to_reference(
        poolnd.lp_pool_backward(grad, x, p, kernel, stride, ceil_mode, axes=axes),
        ref_lp_pool_backward(grad, x, p, kernel, stride, ceil_mode, axes=axes))


@settings(max_examples=30, **SETTINGS)
@given(st.sampled_from([1, 2, 3]).flatmap(lambda n: reference_cases(n, channels_last=True)),
       st.sampled_from([1, 2, 3, INF]), st.integers(0, 2**32 - 1))
def test_channels_last_axes_match_reference(case, p, seed):
    shape, kernel, stride, ceil_mode, axes = case
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    got = poolnd.lp_pool(x, p, kernel, stride, ceil_mode, axes=axes)
    want = ref_lp_pool(x, p, kernel, stride, ceil_mode, axes=axes)
    assert got.dtype == want.dtype and got.shape == want.shape
    finite = np.isfinite(want) & (np.abs(want) > 1e-2)  # odd p: cancelled sums are not compared
    np.testing.assert_allclose(got[finite], want[finite], rtol=2e-5)
    layer = poolnd.nn.LPPoolNd(p, kernel, stride, ceil_mode, channels_last=True)
    assert_identical(layer(x), got)
    grad = _integer_grad(seed, got.shape, np.float32)
    assert_identical(layer.backward(grad),
                     poolnd.lp_pool_backward(grad, x, p, kernel, stride, ceil_mode, axes=axes))


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int64", "bool"])
def test_integer_and_bool_input_pools_to_float64(dtype):
    x = np.random.default_rng(3).integers(0, 5, (2, 5, 6)).astype(dtype)
    for p in (1, 2, INF):
        got = poolnd.lp_pool2d(x, p, 2, 1)
        assert got.dtype == np.float64
        assert_close_to_reference(got, ref_lp_pool(x, p, (2, 2), 1))


def test_float16_keeps_its_dtype():
    x = np.abs(np.random.default_rng(4).standard_normal((2, 5, 6))).astype(np.float16)
    got = poolnd.lp_pool2d(x, 2, 2)
    want = ref_lp_pool(x.astype(np.float32), 2, (2, 2)).astype(np.float16)
    assert_close_to_reference(got, want)


def test_layer_with_infinite_norm_keeps_window_positions_and_signs():
    layer = poolnd.nn.LPPool2d(INF, 2)
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 6))
    y = layer(x)
    _, (positions, signs) = layer._newest()  # (plan, state) of the pending forward
    assert positions.dtype == np.uint8 and signs.dtype == np.int8 and signs.shape == y.shape
    grad = _integer_grad(6, y.shape, np.float64)
    assert_identical(layer.backward(grad), ref_lp_pool_backward(grad, x, INF, (2, 2)))


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("norm_type, exc", [
    (0, ValueError), (-1.5, ValueError), (-INF, ValueError), (math.nan, ValueError),
    ("2", TypeError), (None, TypeError), (True, TypeError), (1 + 1j, TypeError),
])
def test_bad_norm_type_is_rejected_naming_it(norm_type, exc):
    x = np.ones((2, 4, 4))
    with pytest.raises(exc, match="norm_type"):
        poolnd.lp_pool2d(x, norm_type, 2)
    with pytest.raises(exc, match="norm_type"):
        poolnd.lp_pool_backward(np.ones((2, 2, 2)), x, norm_type, (2, 2))
    with pytest.raises(exc, match="norm_type"):
        poolnd.nn.LPPool2d(norm_type, 2)


def test_lp_backward_grad_of_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"grad_output.*\(2, 3\).*\(2, 2\)"):
        poolnd.lp_pool_backward(np.ones((2, 3)), np.ones((4, 4)), 2, (2, 2))


def test_lp_layer_backward_before_forward_and_with_wrong_shape():
    layer = poolnd.nn.LPPool2d(2, 2)
    with pytest.raises(ValueError, match="forward"):
        layer.backward(np.ones((1, 2, 2)))
    layer(np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match="grad_output"):
        layer.backward(np.ones((1, 3, 2)))


def test_bare_int_kernel_without_n_is_rejected():
    with pytest.raises(ValueError, match="kernel_size"):
        poolnd.lp_pool(np.ones((4, 4)), 2, 2)


def test_zero_size_batch_axis_gives_empty_results():
    x = np.zeros((0, 3, 8, 8), np.float32)
    for p in (2, INF):
        assert poolnd.lp_pool2d(x, p, 2).shape == (0, 3, 4, 4)
        grad = poolnd.lp_pool_backward(np.zeros((0, 3, 4, 4), np.float32), x, p, (2, 2))
        assert grad.shape == x.shape and grad.dtype == np.float32


@pytest.mark.parametrize("p", [1, 2, 3, 0.5, 1.5, 4])
def test_float16_rounds_each_step_as_torch_does(p):
    """float16 is computed in float32 but rounded to float16 after ``x**p``, the average,
    ``* K`` and the root, with the exponents cast to float16: ``300**2`` overflows to inf
    and ``(-1.2e-7)**3`` underflows to zero there, as in PyTorch."""
    rng = np.random.default_rng(7)
    scales = np.array([1e-4, 1e-2, 1, 30, 300])[rng.integers(0, 5, (4, 3, 1, 1))]
    x = (rng.standard_normal((4, 3, 9, 10)) * scales).astype(np.float16)
    x[0, 0, :2, :2] = 300
    x[0, 1, :2, :2] = [[-1.2e-7, 0], [0, 0]]
    if p != int(p):
        x = np.abs(x)
    for k, s, ceil_mode in [(2, 2, False), (3, 2, True), (3, 1, False)]:
        got = poolnd.lp_pool2d(x, p, k, s, ceil_mode)
        want = F.lp_pool2d(torch.from_numpy(x), p, k, s, ceil_mode).numpy()
        assert_identical(got, want)
    assert poolnd.lp_pool1d(np.array([[[300, 300]]], np.float16), 2, 2)[0, 0, 0] == np.inf
    assert poolnd.lp_pool1d(np.array([[[-1.2e-7, 0]]], np.float16), 3, 2)[0, 0, 0] == 0
