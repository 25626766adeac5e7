"""poolnd.compat.d2l: the d2l book's pool2d."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import ref_avg_pool, ref_max_pool

from poolnd.compat.d2l import pool2d


def test_seed_example_max_and_avg():
    X = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    np.testing.assert_array_equal(pool2d(X, (2, 2)), [[4.0, 5.0], [7.0, 8.0]])
    np.testing.assert_array_equal(pool2d(X, (2, 2), "avg"), [[2.0, 3.0], [5.0, 6.0]])


@given(height=st.integers(1, 7), width=st.integers(1, 7), data=st.data(),
       mode=st.sampled_from(["max", "avg"]), seed=st.integers(0, 2**32 - 1))
def test_stride_one_without_padding_matches_the_reference(height, width, data, mode, seed):
    p_h, p_w = data.draw(st.integers(1, height)), data.draw(st.integers(1, width))
    X = np.random.default_rng(seed).standard_normal((height, width))
    out = pool2d(X, (p_h, p_w), mode)
    assert out.shape == (height - p_h + 1, width - p_w + 1)
    if mode == "max":
        np.testing.assert_array_equal(out, ref_max_pool(X, (p_h, p_w), 1)[0])
    else:
        np.testing.assert_allclose(out, ref_avg_pool(X, (p_h, p_w), 1), rtol=1e-12)


@pytest.mark.parametrize("mode", ["min", "sum", "MAX", "mean", None])
def test_any_other_mode_is_a_value_error_not_zeros(mode):
    X = np.arange(9.0).reshape(3, 3)
    with pytest.raises(ValueError, match=f"mode={mode!r} must be one of 'max', 'avg'"):
        pool2d(X, (2, 2), mode)


@pytest.mark.parametrize("pool_size, error, match", [
    ((0, 2), ValueError, "pool_size"),
    ((2, 2, 2), ValueError, "pool_size"),
    ((2.0, 2), TypeError, "pool_size"),
    ((4, 2), ValueError, "length 3, kernel_size 4"),
])
def test_bad_pool_size_is_a_clear_error(pool_size, error, match):
    with pytest.raises(error, match=match):
        pool2d(np.zeros((3, 3)), pool_size)


def test_nan_propagates_as_the_books_max_and_mean_do():
    X = np.array([[np.nan, 1.0, 2.0], [3.0, 4.0, 5.0]])
    for mode in ("max", "avg"):
        out = pool2d(X, (2, 2), mode)
        assert np.isnan(out[0, 0]) and not np.isnan(out[0, 1])


def test_leading_axes_are_batch_axes():
    X = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
    out = pool2d(X, (2, 3))
    for b, c in np.ndindex(2, 3):
        np.testing.assert_array_equal(out[b, c], pool2d(X[b, c], (2, 3)))
