"""Integer averages: summed exactly in integers, never copied to floats, and an
integer ``dtype=`` that rounds each mean half to even (docs/SPEC.md section 2).

The oracle is ``reference.ref_avg_pool``, which sums integers as Python ints and
rounds with ``fractions.Fraction``: exact, whatever the dtype and window.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import ref_avg_pool

import poolnd
from poolnd import nn

INTEGERS = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]
SMALL_INTEGERS = INTEGERS[:6]  # their sums are exact in float64 too: results are bit for bit

# (kernel, stride, padding, dilation, ceil_mode, count_include_pad); the row walk's paths,
# the one-axis-at-a-time path of large windows (5x5 at stride 1) and a divisor override
GEOMETRIES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=1, dilation=(2, 1)),
    dict(kernel_size=5, stride=1, padding=2),
    dict(kernel_size=5, stride=1, padding=2, divisor_override=7),
]


def _with_extremes(dtype, shape, seed=0):
    """Random values of ``dtype`` over its whole range, both extremes included."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    x = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    x.flat[:4] = (info.min, info.max, info.max, info.min)
    return x


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("dtype", INTEGERS)
def test_integer_average_is_the_exact_mean(dtype, geometry):
    x = _with_extremes(dtype, (2, 3, 9, 11))
    got = poolnd.avg_pool2d(x, **geometry)
    want = ref_avg_pool(x, axes=(2, 3), **geometry)
    assert got.dtype == np.float64
    if dtype in SMALL_INTEGERS:
        np.testing.assert_array_equal(got, want)
    else:  # 64-bit values are summed in float64, as NumPy's mean does
        np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("dtype", SMALL_INTEGERS + [np.bool_])
def test_integer_dtype_rounds_the_exact_mean_half_to_even(dtype, geometry):
    x = np.random.default_rng(1).integers(0, 2, (2, 3, 9, 11)).astype(np.bool_) \
        if dtype == np.bool_ else _with_extremes(dtype, (2, 3, 9, 11), seed=1)
    out_dtype = np.uint8 if dtype == np.bool_ else dtype
    got = poolnd.avg_pool2d(x, dtype=out_dtype, **geometry)
    assert got.dtype == out_dtype
    np.testing.assert_array_equal(got, ref_avg_pool(x, axes=(2, 3), dtype=out_dtype,
                                                               **geometry))


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32])
def test_halves_round_to_even_both_signs(dtype):
    x = np.array([[1, 2, 2, 3, -1, -2, -3, -2, 5, 6]], dtype)
    got = poolnd.avg_pool1d(x, 2, dtype=dtype)
    # 1.5, 2.5, -1.5, -2.5, 5.5
    np.testing.assert_array_equal(got, np.array([[2, 2, -2, -2, 6]], dtype))


def test_means_out_of_range_clip_to_the_integer_dtype():
    x = np.array([[200, 250, -3, -1, 7, 9]], np.int16)
    np.testing.assert_array_equal(poolnd.avg_pool1d(x, 2, dtype=np.uint8), [[225, 0, 8]])
    np.testing.assert_array_equal(poolnd.avg_pool1d(x, 2, divisor_override=1, dtype=np.int8),
                                  [[127, -4, 16]])


def test_nan_has_no_integer_average():
    with pytest.raises(ValueError, match="NaN"):
        poolnd.avg_pool1d(np.array([[1.0, np.nan]]), 2, dtype=np.uint8)


def test_float_input_rounds_into_an_integer_dtype():
    x = np.array([[0.5, 0.5, 1.0, 2.0, 250.0, 251.0]], np.float32)
    np.testing.assert_array_equal(poolnd.avg_pool1d(x, 2, dtype=np.uint8),
                                  np.array([[0, 2, 250]], np.uint8))


@pytest.mark.parametrize("side", [181, 182])  # 65,535 x 181^2 fits int32, x 182^2 does not
def test_uint16_maximum_over_a_large_window_does_not_overflow(side):
    x = np.full((side + 1, side + 1), 65535, np.uint16)
    assert np.all(poolnd.avg_pool2d(x, side, 1) == 65535.0)
    assert np.all(poolnd.avg_pool2d(x, side, 1, dtype=np.uint16) == 65535)
    # dilated: the row walk, not the one-axis-at-a-time folds
    assert np.all(poolnd.avg_pool(x[None], (side // 2,) * 2, 1, dilation=2, axes=(1, 2),
                                  dtype=np.uint16) == 65535)


def test_int64_sums_past_int32_are_exact():
    x = np.full((1, 70000), 2**31 - 1, np.int32)
    np.testing.assert_array_equal(poolnd.avg_pool1d(x, 70000), [[2**31 - 1]])


def test_four_axes_round_once_at_the_end():
    x = _with_extremes(np.uint8, (2, 5, 4, 5, 6), seed=4)
    geometry = dict(kernel_size=(2, 3, 2, 3), stride=(1, 2, 2, 1), axes=(1, 2, 3, 4))
    np.testing.assert_array_equal(poolnd.avg_pool(x, dtype=np.uint8, **geometry),
                                  ref_avg_pool(x, dtype=np.uint8, **geometry))
    np.testing.assert_array_equal(poolnd.avg_pool(x, **geometry), ref_avg_pool(x, **geometry))


@settings(max_examples=30, deadline=None)
@given(dtype=st.sampled_from(SMALL_INTEGERS), width=st.integers(1, 40),
       kernel=st.integers(1, 4), stride=st.integers(1, 3), channels=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_few_channels_last_integer_averages(dtype, width, kernel, stride, channels, seed):
    x = _with_extremes(dtype, (kernel + 2, width + kernel - 1, channels), seed=seed)
    got = poolnd.avg_pool(x, kernel, stride, axes=(0, 1), dtype=dtype)
    np.testing.assert_array_equal(got, ref_avg_pool(x, kernel, stride, axes=(0, 1),
                                                     dtype=dtype))


def test_an_integer_average_reads_the_input_in_place():
    # a float64 copy of this input would be 32 MiB; the float64 result is 8 MiB
    x = np.ones((2048, 2048), np.uint8)
    poolnd.avg_pool2d(x, 2)  # compile first: numba's own allocations are not the op's
    tracemalloc.start()
    try:
        poolnd.avg_pool2d(x, 2)
        nn.AvgPool2d(2)(x[None])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_integer_dtype_layer_and_dask_agree_with_the_function():
    x = _with_extremes(np.uint8, (4, 16, 16), seed=5)
    want = poolnd.avg_pool2d(x, 2, dtype=np.uint8)
    da = pytest.importorskip("dask.array")
    lazy = poolnd.avg_pool2d(da.from_array(x, chunks=(2, 8, 8)), 2, dtype=np.uint8)
    assert lazy.dtype == np.uint8
    np.testing.assert_array_equal(lazy.compute(), want)


@pytest.mark.parametrize("dtype", [np.bool_, "U3", np.complex64, "datetime64[s]"])
def test_dtype_must_be_a_float_or_an_integer(dtype):
    with pytest.raises(TypeError, match="dtype"):
        poolnd.avg_pool2d(np.ones((4, 4), np.uint8), 2, dtype=dtype)


@pytest.mark.parametrize("channels", [1, 3, 4])  # the whole-row loops of 2x2 windows
@pytest.mark.parametrize("dtype, out_dtype", [(np.uint8, np.uint8), (np.int16, np.int16),
                                              (np.uint16, np.uint16), (np.int16, np.uint8),
                                              (np.uint8, np.float32)])
def test_2x2_windows_round_every_remainder_half_to_even(channels, dtype, out_dtype):
    """Rows of 2x2 windows wholly inside, every output width from 1 to 40: sums of each
    remainder modulo 4, both signs and the extremes, rounded in integers (half to even,
    clipped to the output's range) or divided in floats, as the exact reference does."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(channels)
    for width in range(1, 41):
        x = rng.integers(info.min, info.max, (4, 2 * width, channels), dtype=dtype,
                         endpoint=True)
        corner = x[:2, :4]  # windows of extremes only
        corner[...] = np.array([info.min, info.max], dtype)[rng.integers(0, 2, corner.shape)]
        small = x[2:]  # small values: sums of every remainder, negative ones where signed
        small[...] = rng.integers(-3 if info.min < 0 else 0, 4, small.shape)
        got = poolnd.avg_pool(x, 2, axes=(0, 1), dtype=out_dtype)
        np.testing.assert_array_equal(got, ref_avg_pool(x, 2, axes=(0, 1), dtype=out_dtype))
        planes = np.ascontiguousarray(np.moveaxis(x, -1, 0))  # channels first: C of 1
        np.testing.assert_array_equal(poolnd.avg_pool2d(planes, 2, dtype=out_dtype),
                                      ref_avg_pool(planes, 2, axes=(1, 2), dtype=out_dtype))
