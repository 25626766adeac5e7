"""Numerics: float16 sums in float32, inf in every op, integer extremes with
padding, and what LP pooling does when ``x**p`` overflows.

What ``test_reference.py`` and ``test_lp.py`` already hold is not repeated:
small float16 windows against the reference, max pooling of every integer
dtype's minimum under padding, signed and integer LP powers.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from reference import (
    ref_adaptive_avg_pool,
    ref_adaptive_max_pool,
    ref_avg_pool,
    ref_fractional_max_pool,
    ref_lp_pool,
    ref_max_pool,
    ref_max_unpool,
)

import poolnd
from poolnd import nn

# --- float16 accumulates in float32 -----------------------------------------

# 4096 values from {0.25, 0.5, 1, 2}: every partial sum is exact in float32, while a float16
# sum stops growing at 2048 (2048 + 1 rounds back to 2048) and would lose most of the total
WIDE = np.random.default_rng(3).choice(np.array([0.25, 0.5, 1, 2], np.float16), (2, 4096))


def _mean16(x, axis=-1):
    """The float32 mean rounded once to float16: what float32 accumulation gives."""
    return x.astype(np.float32).mean(axis=axis).astype(np.float16)


@pytest.mark.parametrize("dilation", [1, 2])  # one axis at a time; the row walk
def test_float16_average_of_a_long_window_is_summed_in_float32(dilation):
    x = np.concatenate([WIDE, WIDE], axis=-1)[:, :dilation * 4095 + 1]
    taps = x[:, ::dilation]
    out = poolnd.avg_pool1d(x, 4096, dilation=dilation)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out[:, 0], _mean16(taps))


def test_float16_average_of_a_large_3d_window_is_summed_in_float32():
    x = WIDE.reshape(2, 16, 16, 16)
    out = poolnd.avg_pool3d(x, 16)
    np.testing.assert_array_equal(out.reshape(2), _mean16(WIDE))


def test_float16_adaptive_average_layer_and_lp_are_summed_in_float32():
    np.testing.assert_array_equal(poolnd.adaptive_avg_pool1d(WIDE, 1)[:, 0], _mean16(WIDE))
    np.testing.assert_array_equal(nn.AvgPool1d(4096)(WIDE)[:, 0], _mean16(WIDE))
    want = np.sqrt((WIDE.astype(np.float32) ** 2).sum(axis=-1)).astype(np.float16)
    np.testing.assert_array_equal(poolnd.lp_pool1d(WIDE, 2, 4096)[:, 0], want)


def test_float16_average_backward_divides_in_float32():
    grad = np.full((1, 1), 1000.0, np.float16)
    back = poolnd.avg_pool_backward(grad, (1, 3000), (3000,))
    assert back.dtype == np.float16
    np.testing.assert_array_equal(back, np.full((1, 3000), np.float32(1000) / 3000, np.float16))


# --- inf in every op ----------------------------------------------------------

INF = np.array([[[1.0, np.inf, -2.0, 0.5, -np.inf],
                 [-np.inf, -np.inf, 3.0, np.inf, 2.0],
                 [0.0, -1.0, -np.inf, 4.0, np.inf],
                 [2.0, 2.0, 1.0, -np.inf, -3.0]]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inf_in_every_forward_matches_the_reference(dtype):
    x = INF.astype(dtype)
    with np.errstate(invalid="ignore"):
        out, idx = poolnd.max_pool2d(x, 2, 1, 1, return_indices=True)
        want, want_idx = ref_max_pool(x, (2, 2), 1, 1)
        np.testing.assert_array_equal(out, want)
        np.testing.assert_array_equal(idx, want_idx)
        np.testing.assert_array_equal(poolnd.avg_pool2d(x, 2, 1, 1),
                                      ref_avg_pool(x, (2, 2), 1, 1))  # inf - inf is NaN
        got, want = poolnd.adaptive_max_pool2d(x, (3, 2)), ref_adaptive_max_pool(x, (3, 2))[0]
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(poolnd.adaptive_avg_pool2d(x, (3, 2)),
                                      ref_adaptive_avg_pool(x, (3, 2)))
        a = np.abs(x)
        np.testing.assert_array_equal(poolnd.lp_pool2d(a, 2, 2, 1),
                                      ref_lp_pool(a, 2, (2, 2), 1).astype(dtype))
        np.testing.assert_array_equal(poolnd.lp_pool2d(x, np.inf, 2, 1),
                                      ref_lp_pool(x, np.inf, (2, 2), 1).astype(dtype))
        samples = np.array([[0.3, 0.7]])
        got = poolnd.fractional_max_pool2d(x, 2, (2, 3), samples=samples, return_indices=True)
        want = ref_fractional_max_pool(x, (2, 2), (2, 3), samples=samples)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        np.testing.assert_array_equal(poolnd.max_unpool2d(out, idx, 2, 1, 1, x.shape),
                                      ref_max_unpool(out, idx, (2, 2), 1, 1, x.shape))


def test_inf_gradients_flow_to_the_maximum():
    layer = nn.MaxPool2d(2, 1, 1)
    y = layer(INF)
    grad = layer.backward(np.ones_like(y))
    assert grad.sum() == y.size  # every output's gradient lands on an input element
    assert np.all(grad[INF == -np.inf][:-1] >= 0)


# --- integer extremes: padding never wins, in layers and backward too ------------


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int64, np.uint64])
def test_integer_minimum_under_padding_gets_the_gradient(dtype):
    low = np.iinfo(dtype).min
    x = np.full((1, 5, 5), low, dtype)
    layer = nn.MaxPool2d(3, 2, 1)
    y = layer(x)
    assert y.dtype == dtype and np.all(y == low)
    grad = layer.backward(np.ones(y.shape))
    assert grad.sum() == y.size  # nothing went to the padding
    _, idx = poolnd.max_pool2d(x, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(idx, ref_max_pool(x, (3, 3), 2, 1)[1])


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_averages_of_integer_extremes_are_computed_in_float64(dtype):
    info = np.iinfo(dtype)
    x = np.array([[info.min, info.max, info.max, info.max]], dtype)
    want = x.astype(np.float64).reshape(1, 2, 2).mean(axis=-1)
    np.testing.assert_allclose(poolnd.avg_pool1d(x, 2), want, rtol=1e-15)


# --- LP pooling overflow: documented, as PyTorch -------------------------------


def test_lp_pool_overflows_to_inf_where_x_to_the_p_does():
    # 1e20 ** 2 is past float32's range (3.4e38): the float32 result is inf, as in PyTorch;
    # float64 has the range
    x = np.full((1, 2), 1e20)
    with np.errstate(over="ignore"):
        assert poolnd.lp_pool1d(x.astype(np.float32), 2, 2)[0, 0] == np.inf
    np.testing.assert_allclose(poolnd.lp_pool1d(x, 2, 2)[0, 0], np.sqrt(2) * 1e20)


def test_lp_pool_gradient_where_the_forward_overflowed_is_not_finite():
    x = np.full((1, 2), 1e20, np.float32)
    with np.errstate(all="ignore"):
        grad = poolnd.lp_pool_backward(np.ones((1, 1), np.float32), x, 2, (2,))
    assert grad.dtype == np.float32 and not np.isfinite(grad).any()


def test_lp_pool_underflow_gives_zero_and_a_zero_gradient():
    # 1e-30 ** 2 underflows float32 to 0: the window's sum is 0, and so is its gradient
    x = np.full((1, 2), 1e-30, np.float32)
    with np.errstate(under="ignore"):
        assert poolnd.lp_pool1d(x, 2, 2)[0, 0] == 0
        np.testing.assert_array_equal(
            poolnd.lp_pool_backward(np.ones((1, 1), np.float32), x, 2, (2,)), np.zeros((1, 2)))


# --- large windows whose sums overflow ----------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel, stride", [((2, 8), None), ((4, 4), 1), ((16, 1), (2, 1)),
                                            ((1, 17), 1)])
def test_large_window_averages_overflow_as_torch_sums_do(dtype, kernel, stride):
    """Windows of 16 taps or more are summed one axis at a time; where a partial sum
    overflows, the result is PyTorch's (its row-major sum), inf and not NaN."""
    torch = pytest.importorskip("torch")
    big = np.finfo(dtype).max / 4
    rng = np.random.default_rng(len(kernel) * kernel[0] + kernel[1])
    x = (rng.choice([-1.0, 1.0, 0.5], (2, 3, 20, 20)) * big).astype(dtype)
    x[0, 0, 0::2], x[0, 0, 1::2] = big, -big  # rows of +big then -big: inf - inf per row
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # poolnd's own overflow check warns no user
        got = poolnd.avg_pool2d(x, kernel, stride)
    want = torch.nn.functional.avg_pool2d(torch.from_numpy(x), kernel, stride).numpy()
    assert np.isinf(want).any()
    np.testing.assert_array_equal(got, want)
