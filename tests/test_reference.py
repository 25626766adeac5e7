"""poolnd against the brute-force reference, for what PyTorch lacks.

N >= 4, asymmetric and "same" padding, dilation in average pooling, integer,
bool and float16 dtypes, nan_policy="omit", channels-last and arbitrary axes,
zero-size batch axes, non-contiguous and read-only inputs, and the layers.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from reference import (
    geometry,
    ref_avg_pool,
    ref_avg_pool_backward,
    ref_max_pool,
    ref_max_pool_backward,
)

import poolnd
import poolnd.nn

INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
FLOAT_DTYPES = ["float16", "float32", "float64"]

# Each test sets its own budget; in all about 950 examples.
SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.filter_too_much, HealthCheck.too_slow],
}


# --- helpers -----------------------------------------------------------------


def _valid(shape, g):
    try:
        geometry(shape, g["kernel_size"], g["stride"], g["padding"], g["dilation"],
                 g["ceil_mode"], g["axes"])
    except ValueError:
        return False
    return True


@st.composite
def geometries(draw, n=None, max_len=5, max_kernel=3, max_dilation=2, max_batch_ndim=2,
               channels_last=False, any_axes=False, allow_invalid=False):
    """An input shape and a pooling geometry over it; valid unless allow_invalid."""
    n = draw(st.integers(1, 3)) if n is None else n
    lengths = [draw(st.integers(1, max_len)) for _ in range(n)]
    kernel = tuple(draw(st.integers(1, max_kernel)) for _ in range(n))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(n))
    dilation = tuple(draw(st.integers(1, max_dilation)) for _ in range(n))
    extents = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    form = draw(st.sampled_from(["int", "tuple", "pairs", "same", "valid"]))
    if form == "int":
        padding = draw(st.integers(0, max(extents) // 2))
    elif form == "tuple":
        padding = tuple(draw(st.integers(0, e // 2)) for e in extents)
    elif form == "pairs":
        padding = tuple((draw(st.integers(0, e - 1)), draw(st.integers(0, e - 1)))
                        for e in extents)
    else:
        padding = form
    batch_ndim = draw(st.integers(1 if channels_last else 0, max_batch_ndim))
    batch = [draw(st.integers(1, 3)) for _ in range(batch_ndim)]
    ndim = n + batch_ndim
    if channels_last:
        axes = tuple(range(ndim - 1 - n, ndim - 1))
    elif any_axes:
        axes = tuple(draw(st.permutations(range(ndim)))[:n])
        axes = tuple(a - ndim if draw(st.booleans()) else a for a in axes)
    else:
        axes = None
    shape = [0] * ndim
    pooled = [a % ndim for a in axes] if axes is not None else list(range(batch_ndim, ndim))
    for a, length in zip(pooled, lengths):
        shape[a] = length
    rest = iter(batch)
    for a in range(ndim):
        if a not in pooled:
            shape[a] = next(rest)
    # an int kernel_size is enough once axes fixes N
    kernel_arg = kernel[0] if axes is not None and len(set(kernel)) == 1 else kernel
    g = {"kernel_size": kernel_arg, "stride": draw(st.sampled_from([None, stride])),
         "padding": padding, "dilation": dilation, "ceil_mode": draw(st.booleans()),
         "axes": axes}
    if not allow_invalid:
        assume(_valid(tuple(shape), g))
    return tuple(shape), g


def _values(seed, shape, dtype, nan=False, extremes=False):
    """Values from a small pool, so that ties are common."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        pool = [0, 1, 2, 3] if dtype.kind == "u" else [-2, -1, 0, 1, 2]
        if extremes:
            pool += [info.min, info.min + 1, info.max - 1, info.max]
        return rng.choice(np.array(pool, dtype=dtype), size=shape)
    pool = [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0]
    if extremes:
        pool += [-np.inf, np.inf, np.finfo(dtype).min, np.finfo(dtype).max]
    x = rng.choice(np.array(pool, dtype=dtype), size=shape)
    if nan:
        x[rng.random(shape) < 0.25] = np.nan
    return x


def _make_read_only(x):
    x.flags.writeable = False
    return x


def _call_unmodified(fn, *args, **kwargs):
    """Call fn and check that no array argument was written to."""
    copies = [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in args]
    result = fn(*args, **kwargs)
    for a, c in zip(args, copies):
        if c is not None:
            np.testing.assert_array_equal(a, c, err_msg="an input was modified")
            assert a.dtype == c.dtype
    return result


def assert_same(actual, expected):
    """Exact equality (NaN equal to NaN) with the same dtype and shape."""
    assert isinstance(actual, np.ndarray)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_array_equal(actual, expected)


def assert_close(actual, expected):
    """Float32 rounding for float32, 1e-12 for float64, a float16 ulp for float16."""
    assert isinstance(actual, np.ndarray)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    tol = {np.float16: 2e-3, np.float32: 1e-6, np.float64: 1e-12}[expected.dtype.type]
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


def _ref_avg(x, g, **kwargs):
    """The reference average; float16 goes through float32, as poolnd accumulates."""
    if x.dtype == np.float16 and kwargs.get("dtype") is None:
        return ref_avg_pool(x.astype(np.float32), **g, **kwargs).astype(np.float16)
    return ref_avg_pool(x, **g, **kwargs)


def _integer_grad(seed, shape, dtype):
    """Small whole numbers: every scatter-add sum is exact in any float dtype."""
    return np.random.default_rng(seed).integers(-3, 4, size=shape).astype(dtype)


def check_max_pool(x, g, nan_policy="propagate"):
    out, idx = _call_unmodified(poolnd.max_pool, x, **g, return_indices=True,
                                nan_policy=nan_policy)
    ref_out, ref_idx = ref_max_pool(x, **g, nan_policy=nan_policy)
    assert_same(out, ref_out)
    assert_same(idx, ref_idx)
    plain = _call_unmodified(poolnd.max_pool, x, **g, nan_policy=nan_policy)
    assert_same(plain, ref_out)
    return out, idx


# --- max pooling -------------------------------------------------------------


@settings(max_examples=100, **SETTINGS)
@given(geometries(n=None), st.integers(0, 2**32 - 1), st.booleans())
def test_max_pool_matches_reference(case, seed, nan):
    shape, g = case
    check_max_pool(_values(seed, shape, np.float64, nan=nan, extremes=True), g)


@settings(max_examples=50, **SETTINGS)
@given(geometries(n=4, max_len=4, max_kernel=2, max_batch_ndim=1), st.integers(0, 2**32 - 1))
def test_max_pool_four_axes_matches_reference(case, seed):
    shape, g = case
    check_max_pool(_values(seed, shape, np.float32, nan=True), g)


def test_max_pool_five_axes_matches_reference():
    x = _values(5, (2, 3, 4, 3, 2, 3), np.float64, nan=True)
    g = {"kernel_size": (2, 3, 1, 2, 2), "stride": (1, 2, 1, 1, 2),
         "padding": ((1, 0), 1, 0, 0, 1), "dilation": (1, 1, 2, 1, 1), "ceil_mode": True,
         "axes": None}
    check_max_pool(x, g)


@settings(max_examples=60, **SETTINGS)
@given(geometries(n=None), st.integers(0, 2**32 - 1), st.sampled_from(FLOAT_DTYPES))
def test_nan_omit_skips_nan_and_all_nan_windows_take_first_element(case, seed, dtype):
    shape, g = case
    check_max_pool(_values(seed, shape, dtype, nan=True), g, nan_policy="omit")


def test_all_nan_window_with_omit_gives_nan_and_first_in_input_index():
    x = np.array([[np.nan, np.nan, 1.0], [np.nan, np.nan, 2.0]])
    out, idx = poolnd.max_pool(x, (2, 2), stride=1, padding=((1, 0), (1, 0)),
                               return_indices=True, nan_policy="omit")
    ref_out, ref_idx = ref_max_pool(x, (2, 2), 1, ((1, 0), (1, 0)), nan_policy="omit")
    assert_same(out, ref_out)
    assert_same(idx, ref_idx)


def test_nan_propagate_gives_index_of_last_nan_in_window():
    x = np.array([[np.nan, 5.0, np.nan, 1.0]])
    out, idx = poolnd.max_pool(x, (4,), return_indices=True)
    ref_out, ref_idx = ref_max_pool(x, (4,))
    assert_same(out, ref_out)
    assert_same(idx, ref_idx)


def test_ties_go_to_first_maximum():
    x = np.array([[1.0, 3.0, 3.0], [3.0, 0.0, 3.0], [3.0, 3.0, 3.0]])
    out, idx = poolnd.max_pool(x, (2, 2), stride=1, padding=1, return_indices=True)
    ref_out, ref_idx = ref_max_pool(x, (2, 2), 1, 1)
    assert_same(out, ref_out)
    assert_same(idx, ref_idx)


@settings(max_examples=90, **SETTINGS)
@given(geometries(n=None, max_batch_ndim=1), st.integers(0, 2**32 - 1),
       st.sampled_from(INT_DTYPES + ["bool", "float16"]))
def test_max_pool_keeps_integer_bool_and_float16_dtypes(case, seed, dtype):
    shape, g = case
    out, _ = check_max_pool(_values(seed, shape, dtype, extremes=True), g)
    assert out.dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_padding_never_wins_over_integer_minimum(dtype):
    # all windows overhang the input, and every element is the dtype's minimum
    x = np.full((2, 3, 3), np.iinfo(dtype).min, dtype=dtype)
    out, idx = poolnd.max_pool(x, (3, 3), stride=2, padding=1, return_indices=True)
    ref_out, ref_idx = ref_max_pool(x, (3, 3), 2, 1)
    assert_same(out, ref_out)
    assert_same(idx, ref_idx)


# --- average pooling ---------------------------------------------------------


@st.composite
def avg_options(draw):
    return {"count_include_pad": draw(st.booleans()),
            "divisor_override": draw(st.sampled_from([None, None, 1, 3, 7]))}


@settings(max_examples=100, **SETTINGS)
@given(geometries(n=None, max_dilation=3), avg_options(), st.integers(0, 2**32 - 1),
       st.sampled_from(FLOAT_DTYPES))
def test_avg_pool_matches_reference(case, opts, seed, dtype):
    shape, g = case
    x = _values(seed, shape, dtype, extremes=False)
    out = _call_unmodified(poolnd.avg_pool, x, **g, **opts)
    assert_close(out, _ref_avg(x, g, **opts))


@settings(max_examples=40, **SETTINGS)
@given(geometries(n=4, max_len=4, max_kernel=2, max_batch_ndim=1), avg_options(),
       st.integers(0, 2**32 - 1))
def test_avg_pool_four_axes_matches_reference(case, opts, seed):
    shape, g = case
    x = _values(seed, shape, np.float64)
    assert_close(_call_unmodified(poolnd.avg_pool, x, **g, **opts), _ref_avg(x, g, **opts))


@settings(max_examples=60, **SETTINGS)
@given(geometries(n=None, max_batch_ndim=1), avg_options(), st.integers(0, 2**32 - 1),
       st.sampled_from(INT_DTYPES + ["bool"]), st.sampled_from([None, "float32", "float64"]))
def test_avg_pool_of_integers_and_bools_is_float64_unless_dtype_given(case, opts, seed, dtype,
                                                                      out_dtype):
    shape, g = case
    x = _values(seed, shape, dtype, extremes=True)
    out = _call_unmodified(poolnd.avg_pool, x, **g, **opts, dtype=out_dtype)
    assert out.dtype == np.dtype(out_dtype or "float64")
    expected = ref_avg_pool(x, **g, **opts, dtype=out_dtype)
    if out_dtype == "float32":
        # like np.mean(dtype=float32), the sum may run in float32: its rounding
        # grows with the window and the largest input (int64 extremes lose bits)
        n = len(g["axes"] or g["kernel_size"])
        taps = int(np.prod(np.broadcast_to(g["kernel_size"], (n,))))
        largest = float(np.max(np.abs(x.astype(np.float64)), initial=0.0))
        bound = taps * np.finfo(np.float32).eps * largest
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=max(bound, 1e-6))
    else:
        assert_close(out, expected)


# --- backward passes ---------------------------------------------------------


@settings(max_examples=80, **SETTINGS)
@given(geometries(n=None), st.integers(0, 2**32 - 1), st.sampled_from(FLOAT_DTYPES),
       st.sampled_from(["propagate", "omit"]))
def test_max_pool_backward_matches_reference(case, seed, grad_dtype, nan_policy):
    shape, g = case
    x = _values(seed, shape, np.float64, nan=True)
    _, idx = check_max_pool(x, g, nan_policy=nan_policy)
    grad = _integer_grad(seed, idx.shape, grad_dtype)
    gx = _call_unmodified(poolnd.max_pool_backward, grad, idx, shape, **g)
    assert_same(gx, ref_max_pool_backward(grad, idx, shape, **g))


@settings(max_examples=30, **SETTINGS)
@given(geometries(n=4, max_len=4, max_kernel=2, max_batch_ndim=1), st.integers(0, 2**32 - 1))
def test_max_pool_backward_four_axes_matches_reference(case, seed):
    shape, g = case
    _, idx = check_max_pool(_values(seed, shape, np.float32), g)
    grad = _integer_grad(seed, idx.shape, np.float32)
    gx = _call_unmodified(poolnd.max_pool_backward, grad, idx, shape, **g)
    assert_same(gx, ref_max_pool_backward(grad, idx, shape, **g))


@settings(max_examples=80, **SETTINGS)
@given(geometries(n=None, max_dilation=3), avg_options(), st.integers(0, 2**32 - 1),
       st.sampled_from(FLOAT_DTYPES))
def test_avg_pool_backward_matches_reference(case, opts, seed, grad_dtype):
    shape, g = case
    out_shape = ref_avg_pool(np.zeros(shape), **g, **opts).shape
    grad = _integer_grad(seed, out_shape, grad_dtype)
    gx = _call_unmodified(poolnd.avg_pool_backward, grad, shape, **g, **opts)
    if grad_dtype == "float16":
        expected = ref_avg_pool_backward(grad.astype(np.float32), shape, **g, **opts)
        expected = expected.astype(np.float16)
    else:
        expected = ref_avg_pool_backward(grad, shape, **g, **opts)
    assert_close(gx, expected)


@settings(max_examples=30, **SETTINGS)
@given(geometries(n=4, max_len=4, max_kernel=2, max_batch_ndim=1), avg_options(),
       st.integers(0, 2**32 - 1))
def test_avg_pool_backward_four_axes_matches_reference(case, opts, seed):
    shape, g = case
    out_shape = ref_avg_pool(np.zeros(shape), **g, **opts).shape
    grad = _integer_grad(seed, out_shape, np.float64)
    gx = _call_unmodified(poolnd.avg_pool_backward, grad, shape, **g, **opts)
    assert_close(gx, ref_avg_pool_backward(grad, shape, **g, **opts))


@pytest.mark.parametrize("shape, g, axes", [
    # long rows (vector loops and their tails), odd W at stride 2, the ring of spread rows
    # wrapping many times, windows on D that overlap, and gaps no window covers
    ((2, 3, 41, 37), {"kernel_size": (3, 3), "stride": 2, "padding": 1}, None),
    ((1, 2, 40, 45), {"kernel_size": (5, 4), "stride": 1, "dilation": (3, 2)}, None),
    ((2, 9, 8, 33), {"kernel_size": (3, 3, 2), "stride": (2, 2, 3), "ceil_mode": True}, None),
    ((2, 30, 31), {"kernel_size": (2, 1), "stride": (3, 4), "padding": (1, 0)}, None),
    # channels-last rows at stride 3 (the interleave's general loop)
    ((2, 19, 23, 5), {"kernel_size": (4, 5), "stride": 3, "padding": 2}, (1, 2)),
])
def test_avg_pool_backward_matches_reference_on_long_rows(shape, g, axes):
    opts = {"count_include_pad": False}
    out_shape = ref_avg_pool(np.zeros(shape), **g, **opts, axes=axes).shape
    grad = np.random.default_rng(3).standard_normal(out_shape)
    gx = _call_unmodified(poolnd.avg_pool_backward, grad, shape, **g, **opts, axes=axes)
    assert_close(gx, ref_avg_pool_backward(grad, shape, **g, **opts, axes=axes))


# --- layouts: channels-last, arbitrary axes, zero-size, strided, read-only ---


@settings(max_examples=50, **SETTINGS)
@given(geometries(n=2, channels_last=True), st.integers(0, 2**32 - 1))
def test_channels_last_indices_are_flat_within_pooled_axes(case, seed):
    shape, g = case
    x = _values(seed, shape, np.float64, nan=True)
    _, idx = check_max_pool(x, g)
    # for NHWC the index is h*W + w, whatever the batch and channel position
    width = shape[g["axes"][1]]
    assert np.all((idx >= 0) & (idx < shape[g["axes"][0]] * width))
    _check_backwards_and_average(x, idx, g, seed)


def _check_backwards_and_average(x, idx, g, seed):
    """Max backward from ``idx``, average forward and backward, all against the reference."""
    grad = _integer_grad(seed, idx.shape, np.float64)
    assert_same(poolnd.max_pool_backward(grad, idx, x.shape, **g),
                ref_max_pool_backward(grad, idx, x.shape, **g))
    assert_close(poolnd.avg_pool(x, **g), ref_avg_pool(x, **g))
    assert_close(poolnd.avg_pool_backward(grad, x.shape, **g),
                 ref_avg_pool_backward(grad, x.shape, **g))


@settings(max_examples=60, **SETTINGS)
@given(geometries(n=None, any_axes=True), st.integers(0, 2**32 - 1))
def test_arbitrary_axes_match_reference(case, seed):
    # axes may be negative, non-consecutive and in any order; the order given
    # is the order of kernel_size entries and of the flat index
    shape, g = case
    x = _values(seed, shape, np.float64, nan=True)
    _, idx = check_max_pool(x, g)
    _check_backwards_and_average(x, idx, g, seed)


def test_non_consecutive_axes_zero_and_two():
    x = _values(7, (5, 3, 4), np.float64, nan=True)
    g = {"kernel_size": (2, 3), "stride": (2, 1), "padding": ((0, 1), (1, 1)), "dilation": 1,
         "ceil_mode": False, "axes": (0, 2)}
    check_max_pool(x, g)
    assert_close(poolnd.avg_pool(x, **g), ref_avg_pool(x, **g))


@settings(max_examples=20, **SETTINGS)
@given(geometries(n=None, max_batch_ndim=2, any_axes=True), st.data())
def test_zero_size_batch_axes_give_empty_results(case, data):
    shape, g = case
    ndim = len(shape)
    pooled = {a % ndim for a in g["axes"]}
    batch_axes = [a for a in range(ndim) if a not in pooled]
    assume(batch_axes)
    shape = list(shape)
    shape[data.draw(st.sampled_from(batch_axes))] = 0
    shape = tuple(shape)
    x = np.zeros(shape, dtype=np.float32)
    out, idx = check_max_pool(x, g)
    assert out.size == 0
    assert_same(poolnd.max_pool_backward(out, idx, shape, **g),
                ref_max_pool_backward(out, idx, shape, **g))
    assert_close(poolnd.avg_pool(x, **g), ref_avg_pool(x, **g))
    assert_close(poolnd.avg_pool_backward(out, shape, **g), ref_avg_pool_backward(out, shape, **g))


def _strided_view(x, layout):
    """A view equal to x but laid out differently in memory."""
    if layout == "transposed":
        return np.ascontiguousarray(x.T).T
    if layout == "stepped":
        big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
        big[..., ::2] = x
        return big[..., ::2]
    if layout == "reversed":
        flip = (slice(None, None, -1),) * min(x.ndim, 2)
        if x.ndim > 2:
            flip = flip[:1] + (Ellipsis,) + flip[1:]
        return np.ascontiguousarray(x[flip])[flip]
    raise AssertionError(layout)


@settings(max_examples=50, **SETTINGS)
@given(geometries(n=None, any_axes=True), st.integers(0, 2**32 - 1),
       st.sampled_from(["transposed", "stepped", "reversed"]), st.booleans())
def test_non_contiguous_and_read_only_inputs(case, seed, layout, read_only):
    shape, g = case
    x = _values(seed, shape, np.float64, nan=True)
    view = _strided_view(x, layout)
    if read_only:
        _make_read_only(view)
    out, idx = _call_unmodified(poolnd.max_pool, view, **g, return_indices=True)
    ref_out, ref_idx = ref_max_pool(x, **g)
    assert_same(out, ref_out)
    assert_same(idx, ref_idx)
    assert_close(_call_unmodified(poolnd.avg_pool, view, **g), ref_avg_pool(x, **g))
    grad = _strided_view(_integer_grad(seed, idx.shape, np.float64), layout)
    idx_view = _strided_view(ref_idx, layout)
    if read_only:
        _make_read_only(grad)
        _make_read_only(idx_view)
    assert_same(_call_unmodified(poolnd.max_pool_backward, grad, idx_view, shape, **g),
                ref_max_pool_backward(grad, ref_idx, shape, **g))
    assert_close(_call_unmodified(poolnd.avg_pool_backward, grad, shape, **g),
                 ref_avg_pool_backward(grad, shape, **g))


# --- geometry errors agree with the reference --------------------------------


@settings(max_examples=40, **SETTINGS)
@given(geometries(n=None, max_dilation=3, allow_invalid=True))
def test_rejects_exactly_the_geometries_the_contract_rejects(case):
    # an empty output or a window with no tap inside the input is a ValueError
    shape, g = case
    x = np.zeros(shape)
    if _valid(shape, g):
        assert poolnd.max_pool(x, **g).shape == ref_max_pool(x, **g)[0].shape
        assert poolnd.avg_pool(x, **g).shape == ref_avg_pool(x, **g).shape
    else:
        with pytest.raises(ValueError):
            poolnd.max_pool(x, **g)
        with pytest.raises(ValueError):
            poolnd.avg_pool(x, **g)


# --- convenience names: PyTorch's positional order ---------------------------


@settings(max_examples=40, **SETTINGS)
@given(st.integers(1, 3).flatmap(lambda n: st.tuples(st.just(n), geometries(n=n))),
       st.integers(0, 2**32 - 1))
def test_fixed_n_names_take_pytorch_positional_order(case, seed):
    n, (shape, g) = case
    assume(not isinstance(g["padding"], str) and not _has_pairs(g["padding"]))
    assume(g["dilation"] == (1,) * n)
    if len(shape) == n:
        shape = (1,) + shape  # keep one batch axis so the names pool the last n axes
    x = _values(seed, shape, np.float64, nan=True)
    k, s, p, c = g["kernel_size"], g["stride"], g["padding"], g["ceil_mode"]
    max_fn = [poolnd.max_pool1d, poolnd.max_pool2d, poolnd.max_pool3d][n - 1]
    avg_fn = [poolnd.avg_pool1d, poolnd.avg_pool2d, poolnd.avg_pool3d][n - 1]
    ref_out, ref_idx = ref_max_pool(x, k, s, p, 1, c)
    out, idx = max_fn(x, k, s, p, 1, c, True)
    assert_same(out, ref_out)
    assert_same(idx, ref_idx)
    x = np.nan_to_num(x)
    for include_pad in (True, False):
        assert_close(avg_fn(x, k, s, p, c, include_pad),
                     ref_avg_pool(x, k, s, p, 1, c, include_pad))


def _has_pairs(padding):
    return isinstance(padding, tuple) and any(isinstance(p, tuple) for p in padding)


# --- layers ------------------------------------------------------------------


def _layer_arrays(layer):
    """The arrays a layer holds: its attributes and the states of its waiting forwards."""
    arrays = {name: v for name, v in vars(layer).items() if isinstance(v, np.ndarray)}
    for i, state in enumerate(layer._pending()):
        arrays.update({f"pending {i}[{j}]": v for j, v in enumerate(state)
                       if isinstance(v, np.ndarray)})
    return arrays


LAYER_CASES = [
    # (class, kernel, extra arguments, input shape); axes fixed by channels_last
    ("MaxPool1d", 3, {}, (2, 7, 3)),
    ("MaxPool2d", (2, 3), {"padding": 1}, (2, 5, 6, 3)),
    ("MaxPool3d", 2, {"stride": 1, "ceil_mode": True}, (2, 3, 4, 5, 2)),
    ("MaxPoolNd", (2, 2, 1, 3), {"stride": (1, 2, 1, 1), "padding": (1, 0, 0, 1)},
     (2, 3, 4, 2, 5, 2)),
    ("AvgPool1d", 3, {"count_include_pad": False, "padding": 1}, (2, 7, 3)),
    ("AvgPool2d", (2, 3), {"padding": 1, "divisor_override": 5}, (2, 5, 6, 3)),
    ("AvgPool3d", 2, {"stride": 1, "ceil_mode": True}, (2, 3, 4, 5, 2)),
    ("AvgPoolNd", (2, 2, 1, 3), {"stride": (1, 2, 1, 1), "padding": (1, 0, 0, 1)},
     (2, 3, 4, 2, 5, 2)),
]


def _layer_n(kernel, cls_name):
    if cls_name.endswith("Nd"):
        return len(kernel)
    return int(cls_name[-2])


@pytest.mark.parametrize("cls_name, kernel, extra, shape", LAYER_CASES,
                         ids=[c[0] for c in LAYER_CASES])
def test_layer_matches_functional_channels_last(cls_name, kernel, extra, shape):
    n = _layer_n(kernel, cls_name)
    axes = tuple(range(len(shape) - 1 - n, len(shape) - 1))
    layer = getattr(poolnd.nn, cls_name)(kernel, **extra, channels_last=True)
    x = _values(11, shape, np.float32, nan=cls_name.startswith("Max"))
    x_copy = x.copy()
    y = layer(x)
    np.testing.assert_array_equal(x, x_copy)
    grad = _integer_grad(12, y.shape, np.float32)
    gx = layer.backward(grad)
    kw = dict(extra, axes=axes)
    if cls_name.startswith("Max"):
        out, idx = poolnd.max_pool(x, kernel, **kw, return_indices=True)
        assert_same(y, out)
        assert_same(gx, poolnd.max_pool_backward(grad, idx, x.shape, kernel, **kw))
        assert_same(gx, ref_max_pool_backward(grad, idx, x.shape, kernel, **kw))
    else:
        assert_same(y, poolnd.avg_pool(x, kernel, **kw))
        assert_same(gx, poolnd.avg_pool_backward(grad, x.shape, kernel, **kw))
    assert_same(layer.forward(x), y)


@pytest.mark.parametrize("cls_name, kernel, extra, shape",
                         [c for c in LAYER_CASES if c[0].startswith("Max")],
                         ids=[c[0] for c in LAYER_CASES if c[0].startswith("Max")])
def test_max_layer_keeps_window_positions_not_input_or_flat_indices(cls_name, kernel, extra,
                                                                    shape):
    layer = getattr(poolnd.nn, cls_name)(kernel, **extra, channels_last=True)
    x = _values(13, shape, np.float64)
    layer(x)
    arrays = _layer_arrays(layer)
    assert arrays, "the layer keeps no array for its backward pass"
    for name, value in arrays.items():
        assert value is not x and not np.shares_memory(value, x), name
        assert value.dtype != np.int64, name
        # windows here have at most 256 taps, so one byte per position
        assert value.dtype.kind == "u" and value.dtype.itemsize == 1, (name, value.dtype)


def test_max_layer_uses_two_bytes_for_windows_over_256_taps():
    layer = poolnd.nn.MaxPool2d((17, 17), stride=1)
    x = _values(14, (1, 18, 18), np.float32)
    y = layer(x)
    for name, value in _layer_arrays(layer).items():
        assert value.dtype == np.uint16, (name, value.dtype)
    _, idx = poolnd.max_pool(x, (17, 17), stride=1, return_indices=True)
    grad = _integer_grad(15, y.shape, np.float32)
    assert_same(layer.backward(grad), poolnd.max_pool_backward(grad, idx, x.shape, (17, 17), 1))


@pytest.mark.parametrize("cls_name", ["MaxPool2d", "AvgPool2d", "MaxPoolNd", "AvgPoolNd"])
def test_layer_backward_before_forward_raises(cls_name):
    layer = getattr(poolnd.nn, cls_name)((2, 2))
    with pytest.raises(ValueError, match="forward"):
        layer.backward(np.ones((1, 2, 2)))


@pytest.mark.parametrize("cls_name", ["MaxPool2d", "AvgPool2d", "MaxPoolNd", "AvgPoolNd"])
def test_layer_backward_with_wrong_grad_shape_raises(cls_name):
    layer = getattr(poolnd.nn, cls_name)((2, 2))
    y = layer(np.ones((3, 4, 6)))
    assert y.shape == (3, 2, 3)
    with pytest.raises(ValueError, match=r"\(3, 3, 2\)|\(3, 2, 3\)"):
        layer.backward(np.ones((3, 3, 2)))
