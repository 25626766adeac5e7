"""poolnd against PyTorch's CPU pooling (docs/SPEC.md section 7), random 1-, 2- and 3-d geometries.

Only geometries PyTorch accepts are drawn: padding at most half the (undilated) kernel,
every output length >= 1. PyTorch computes on a contiguous (planes, 1, *spatial) copy,
so its flat indices (h*W + w) do not depend on the batch layout poolnd sees.
"""

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st
from reference import ref_max_pool

import poolnd
import poolnd.nn

MAX_LEN = {1: 12, 2: 12, 3: 8}  # per spatial axis; 3-d is kept smaller to stay fast
MAX_PLANES = 6  # product of the batch (and channel) axes
DTYPES = (np.float32, np.float64)
NDIMS = pytest.mark.parametrize("n", [1, 2, 3])


# ---------------------------------------------------------------- geometry


def out_len(length, k, s, p, d, ceil_mode):
    """PyTorch's output length for one axis (docs/SPEC.md section 1)."""
    e = d * (k - 1) + 1
    out = (length + 2 * p - e + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= length + p:
        out -= 1
    return out


def every_window_meets_input(length, k, s, p, d, out):
    # With dilation a window can straddle the whole input; PyTorch then returns -inf with an
    # out-of-range index, docs/SPEC.md asks a ValueError, so such geometries are not compared.
    return all(any(0 <= i * s - p + j * d < length for j in range(k)) for i in range(out))


@dataclass(frozen=True)
class Geometry:
    spatial: tuple
    kernel: tuple
    stride: tuple | None
    padding: tuple
    dilation: tuple
    ceil_mode: bool
    compact: bool  # pass int arguments where every axis agrees

    def max_arguments(self):
        """kernel_size, stride, padding, dilation, ceil_mode: max pooling's positional order."""
        return (self.kernel, self.arg("stride"), self.arg("padding"), self.arg("dilation"),
                self.ceil_mode)

    @property
    def n(self):
        return len(self.kernel)

    @property
    def out_spatial(self):
        strides = self.kernel if self.stride is None else self.stride
        return tuple(
            out_len(*a, self.ceil_mode)
            for a in zip(self.spatial, self.kernel, strides, self.padding, self.dilation)
        )

    def arg(self, name):
        """An argument as a user might pass it: an int when all axes agree and compact."""
        value = getattr(self, name)
        if self.compact and value is not None and len(set(value)) == 1:
            return value[0]
        return value


@st.composite
def geometries(draw, n, dilated=True, largest_kernel=4):
    """Max geometries are dilated; avg ones are not (torch's avg pooling has no dilation)."""
    kernel, stride, padding, dilation, spatial = [], [], [], [], []
    for _ in range(n):
        k = draw(st.integers(1, largest_kernel))
        d = draw(st.integers(1, 3)) if dilated else 1
        p = draw(st.integers(0, k // 2))
        lowest = max(1, d * (k - 1) + 1 - 2 * p)
        if n == 3 and not dilated:
            lowest = max(lowest, k)  # avg_pool3d rejects an input shorter than the kernel
        spatial.append(draw(st.integers(lowest, max(lowest, MAX_LEN[n], k + 4))))
        kernel.append(k)
        stride.append(draw(st.integers(1, max(4, k))))
        padding.append(p)
        dilation.append(d)
    geo = Geometry(
        spatial=tuple(spatial),
        kernel=tuple(kernel),
        stride=draw(st.sampled_from([tuple(stride), None])),
        padding=tuple(padding),
        dilation=tuple(dilation),
        ceil_mode=draw(st.booleans()),
        compact=draw(st.booleans()),
    )
    strides = geo.kernel if geo.stride is None else geo.stride
    axes = zip(geo.spatial, geo.kernel, strides, geo.padding, geo.dilation, geo.out_spatial)
    assume(all(every_window_meets_input(*a) for a in axes))
    return geo


@st.composite
def batch_shapes(draw, max_axes=2):
    """Zero, one or two batch axes; now and then one of them is empty."""
    shape = draw(st.lists(st.integers(1, 3), max_size=max_axes))
    assume(math.prod(shape) <= MAX_PLANES)
    if shape and draw(st.integers(0, 7)) == 0:
        shape[draw(st.integers(0, len(shape) - 1))] = 0
    return tuple(shape)


@st.composite
def arrays(draw, shape):
    """Small-integer data (ties everywhere) or normal data, sometimes with NaN and -inf."""
    dtype = draw(st.sampled_from(DTYPES))
    ties = draw(st.booleans())
    # Mostly finite: a window with NaN or -inf hides everything else about it.
    nan_rate = draw(st.sampled_from([0.0, 0.0, 0.05, 0.25]))
    neginf_rate = draw(st.sampled_from([0.0, 0.0, 0.05, 0.25]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-1, 2, shape).astype(float) if ties else rng.standard_normal(shape)
    x[rng.random(shape) < neginf_rate] = -np.inf
    x[rng.random(shape) < nan_rate] = np.nan
    return x.astype(dtype)


def small_ints_like(draw, shape, dtype):
    # Integer gradients make every sum exact, whatever order the terms are added in.
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.integers(-3, 4, shape).astype(dtype)


def normals_like(draw, shape, dtype):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.standard_normal(shape).astype(dtype)


LAYOUTS = ("contiguous", "reversed", "strided", "fortran", "readonly")


def with_layout(x, layout):
    """The same values as x, in a memory layout poolnd must accept (docs/SPEC.md section 2)."""
    if layout == "reversed":
        return np.flip(np.flip(x).copy())
    if layout == "strided":
        buf = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
        buf[..., ::2] = x
        return buf[..., ::2]
    if layout == "fortran":
        return np.asfortranarray(x)
    if layout == "readonly":
        x = x.copy()
        x.flags.writeable = False
    return x


# ---------------------------------------------------------------- torch side


def to_planes(x, n):
    """(planes, 1, *spatial) tensor copy of an array whose last n axes are pooled."""
    planes = math.prod(x.shape[:-n])
    t = torch.tensor(np.ascontiguousarray(x).reshape((planes, 1) + x.shape[-n:]))
    # Torch's own strides: NumPy's strides on unit axes can make torch take its channels-last
    # 3-d kernel, which indexes an all -inf window without the depth term.
    return t.clone(memory_format=torch.contiguous_format)


def from_planes(t, batch):
    t = t.detach().numpy()
    return t.reshape(batch + t.shape[2:])


def torch_max(x, geo, grad=None):
    """Values, indices and (if grad is given) autograd's input gradient."""
    n, batch = geo.n, x.shape[: -geo.n]
    t = to_planes(x, n).requires_grad_(grad is not None)
    fn = getattr(F, f"max_pool{n}d")
    y, idx = fn(t, geo.kernel, geo.stride, geo.padding, geo.dilation, geo.ceil_mode, True)
    x_grad = None
    if grad is not None:
        y.backward(to_planes(grad, n))
        x_grad = from_planes(t.grad, batch)
    return from_planes(y, batch), from_planes(idx, batch), x_grad


def torch_avg_raw(x, geo, count_include_pad, divisor_override, grad=None):
    n, batch = geo.n, x.shape[: -geo.n]
    t = to_planes(x, n).requires_grad_(grad is not None)
    if n == 1 and divisor_override is not None:
        # avg_pool1d has no divisor_override; a unit leading axis makes it a 2-d pool.
        stride = None if geo.stride is None else (1,) + geo.stride
        args = ((1,) + geo.kernel, stride, (0,) + geo.padding)
        y = F.avg_pool2d(t.unsqueeze(2), *args, geo.ceil_mode, count_include_pad, divisor_override)
        y = y.squeeze(2)
    elif n == 1:
        y = F.avg_pool1d(t, geo.kernel, geo.stride, geo.padding, geo.ceil_mode, count_include_pad)
    else:
        fn = getattr(F, f"avg_pool{n}d")
        args = (geo.kernel, geo.stride, geo.padding, geo.ceil_mode)
        y = fn(t, *args, count_include_pad, divisor_override)
    x_grad = None
    if grad is not None:
        y.backward(to_planes(grad, n))
        x_grad = from_planes(t.grad, batch)
    return from_planes(y, batch), x_grad


@dataclass(frozen=True)
class Sum:
    """A result that is a sum, with the same sum over the magnitudes of its terms."""

    value: np.ndarray
    scale: np.ndarray

    def map(self, fn):
        return Sum(fn(self.value), fn(self.scale))


def torch_avg(x, geo, count_include_pad, divisor_override, grad=None):
    """Output and (if grad is given) input gradient, each as a Sum."""
    y, x_grad = torch_avg_raw(x, geo, count_include_pad, divisor_override, grad)
    abs_grad = None if grad is None else np.abs(grad).astype(np.float64)
    y_scale, grad_scale = torch_avg_raw(
        np.abs(x).astype(np.float64), geo, count_include_pad, divisor_override, abs_grad
    )
    return Sum(y, y_scale), None if grad is None else Sum(x_grad, grad_scale)


# ---------------------------------------------------------------- assertions


def assert_identical(actual, expected):
    """Same dtype, shape and values, NaN matching NaN."""
    assert isinstance(actual, np.ndarray), type(actual)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_array_equal(actual, expected, strict=True)


def assert_close(actual, expected):
    """docs/SPEC.md section 7 tolerances (1e-6 in float32, 1e-12 in float64), relative to the terms.

    PyTorch sums float32 windows in float32, so a sum that cancels is only good to rounding
    of its terms' magnitudes: the bound grows with `expected.scale`, not just the result.
    """
    want, scale = expected.value, expected.scale
    assert isinstance(actual, np.ndarray), type(actual)
    assert actual.dtype == want.dtype, (actual.dtype, want.dtype)
    assert actual.shape == want.shape, (actual.shape, want.shape)
    tol = 1e-6 if want.dtype == np.float32 else 1e-12
    finite = np.isfinite(actual) & np.isfinite(want)
    with np.errstate(invalid="ignore"):
        near = np.abs(actual.astype(np.float64) - want) <= tol * (1 + np.abs(want) + scale)
        same = (actual == want) | (np.isnan(actual) & np.isnan(want))
    ok = same | (finite & near)
    assert ok.all(), (
        f"{(~ok).sum()} of {ok.size} differ beyond {tol:g}: "
        f"actual {actual[~ok][:5]}, expected {want[~ok][:5]}, scale {scale[~ok][:5]}"
    )


@st.composite
def cases(draw, n, dilated=True, batch_axes=2, largest_kernel=4):
    geo = draw(geometries(n, dilated, largest_kernel))
    batch = draw(batch_shapes(batch_axes))
    x = draw(arrays(batch + geo.spatial))
    return geo, x


# (count_include_pad, divisor_override); an override hides the count, so it is the rarer case
avg_options = st.tuples(
    st.booleans(), st.one_of(st.none(), st.none(), st.sampled_from([1, 2, 3, 7, 20]))
)


# ---------------------------------------------------------------- functional ops


@NDIMS
@given(data=st.data())
def test_max_pool_values_and_indices_equal_torch(n, data):
    geo, x = data.draw(cases(n))
    layout = data.draw(st.sampled_from(LAYOUTS))
    want, want_idx, _ = torch_max(x, geo)
    x_in = with_layout(x, layout)
    before = x_in.copy()
    got, got_idx = poolnd.max_pool(
        x_in,
        geo.kernel,
        stride=geo.arg("stride"),
        padding=geo.arg("padding"),
        dilation=geo.arg("dilation"),
        ceil_mode=geo.ceil_mode,
        return_indices=True,
    )
    assert_identical(got, want)
    assert_identical(got_idx, want_idx)
    plain = poolnd.max_pool(
        x_in,
        geo.kernel,
        geo.arg("stride"),
        geo.arg("padding"),
        geo.arg("dilation"),
        geo.ceil_mode,
    )
    assert_identical(plain, want)
    np.testing.assert_array_equal(x_in, before, strict=True)


@pytest.mark.parametrize("kernel", [(1, 4), (2, 5), (3, 6), (1, 7), (5, 1)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_stride_one_taps_folded_three_at_a_time_equal_torch(kernel, channels_last):
    """Long rows at stride 1, whose taps fold three per pass (the last kw % 3 one by one):
    ties from few distinct values, and NaN, give torch's values and indices."""
    rng = np.random.default_rng(sum(kernel))
    x = rng.integers(-2, 3, (2, 3, 9, 61)).astype(np.float32)
    x[rng.random(x.shape) < 0.02] = np.nan
    geo = Geometry(spatial=(9, 61), kernel=kernel, stride=(1, 1), padding=(0, kernel[1] // 2),
                   dilation=(1, 1), ceil_mode=False, compact=False)
    want, want_idx, _ = torch_max(x, geo)
    if channels_last:
        got, got_idx = poolnd.max_pool(np.ascontiguousarray(np.moveaxis(x, 1, -1)), kernel, 1,
                                       geo.padding, return_indices=True, axes=(1, 2))
        got, got_idx = np.moveaxis(got, -1, 1), np.moveaxis(got_idx, -1, 1)
    else:
        got, got_idx = poolnd.max_pool(x, kernel, 1, geo.padding, return_indices=True)
    assert_identical(got, want)
    assert_identical(got_idx, want_idx)


@NDIMS
@given(data=st.data())
def test_max_pool_backward_equals_torch_autograd(n, data):
    geo, x = data.draw(cases(n))
    grad = small_ints_like(data.draw, x.shape[:-n] + geo.out_spatial, x.dtype)
    _, idx, want = torch_max(x, geo, grad)
    got = poolnd.max_pool_backward(grad, idx, x.shape, *geo.max_arguments())
    # Exact: the gradients are small integers, so every scatter-add sum is exact in any order.
    assert_identical(got, want)


@NDIMS
@given(data=st.data(), options=avg_options)
def test_avg_pool_equals_torch(n, data, options):
    count_include_pad, divisor_override = options
    geo, x = data.draw(cases(n, dilated=False))
    layout = data.draw(st.sampled_from(LAYOUTS))
    want, _ = torch_avg(x, geo, count_include_pad, divisor_override)
    x_in = with_layout(x, layout)
    before = x_in.copy()
    got = poolnd.avg_pool(
        x_in,
        geo.kernel,
        stride=geo.arg("stride"),
        padding=geo.arg("padding"),
        ceil_mode=geo.ceil_mode,
        count_include_pad=count_include_pad,
        divisor_override=divisor_override,
    )
    assert_close(got, want)
    np.testing.assert_array_equal(x_in, before, strict=True)


@NDIMS
@given(data=st.data(), options=avg_options)
def test_large_windows_equal_torch(n, data, options):
    """Windows of 16 elements and more: the running folds where they overlap a lot, the
    row walk where they do not; both give torch's values."""
    count_include_pad, divisor_override = options
    geo, x = data.draw(cases(n, dilated=False, largest_kernel=9))
    arguments = dict(stride=geo.arg("stride"), padding=geo.arg("padding"),
                     ceil_mode=geo.ceil_mode)
    assert_identical(poolnd.max_pool(x, geo.kernel, **arguments), torch_max(x, geo)[0])
    assert_close(poolnd.avg_pool(x, geo.kernel, **arguments, count_include_pad=count_include_pad,
                                 divisor_override=divisor_override),
                 torch_avg(x, geo, count_include_pad, divisor_override)[0])


# Stride 1 along the last axis: rows pooled by doubling, the last two axes in one pass over
# strips of planes. One plane is split in strips between the threads; rows of vectors of C
# come from channels-last inputs; NaN and ties test the folds.
STRIDE_ONE_CASES = [
    # shape, kernel, padding, axes, stride
    ((1, 1, 40, 37), (15, 9), (7, 4), None, 1),
    ((2, 3, 31, 50), (5, 17), (2, 8), None, (2, 1)),
    ((1, 23, 29, 5), (9, 7), (4, 3), (1, 2), 1),
    ((3, 4, 50), (17,), (8,), None, 1),
    ((2, 19, 3), (16,), (0,), (1,), 1),
    ((2, 9, 10, 11, 2), (3, 4, 5), (1, 2, 2), (1, 2, 3), 1),
]


@pytest.mark.parametrize("shape, kernel, padding, axes, stride", STRIDE_ONE_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_stride_one_large_windows_equal_torch(shape, kernel, padding, axes, stride, dtype):
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-3, 4, shape).astype(dtype)  # ties everywhere
    x[rng.random(shape) < 0.02] = np.nan
    n = len(kernel)
    axes = tuple(range(-n, 0)) if axes is None else axes
    moved = np.moveaxis(x, axes, tuple(range(-n, 0)))  # torch pools the last axes
    geo = Geometry(moved.shape[-n:], kernel, (1,) * n if stride == 1 else stride, padding,
                   (1,) * n, False, False)
    arguments = dict(stride=geo.stride, padding=padding, axes=axes)
    want = torch_max(np.ascontiguousarray(moved), geo)[0]
    assert_identical(poolnd.max_pool(x, kernel, **arguments),
                     np.moveaxis(want, tuple(range(-n, 0)), axes))
    assert_identical(poolnd.max_pool(x, kernel, **arguments, nan_policy="omit"),
                     ref_max_pool(x, kernel, **arguments, nan_policy="omit")[0])
    finite = np.nan_to_num(x, nan=0.5)
    for count_include_pad in (True, False):
        want = torch_avg(np.ascontiguousarray(np.moveaxis(finite, axes, tuple(range(-n, 0)))),
                         geo, count_include_pad, None)[0]
        got = poolnd.avg_pool(finite, kernel, **arguments, count_include_pad=count_include_pad)
        assert_close(np.moveaxis(got, axes, tuple(range(-n, 0))), want)
        # NaN in a window gives NaN there, and the windows without one are still averaged
        got = poolnd.avg_pool(x, kernel, **arguments, count_include_pad=count_include_pad)
        assert_identical(np.isnan(got), np.isnan(poolnd.max_pool(x, kernel, **arguments)))


@NDIMS
@given(data=st.data(), options=avg_options)
def test_avg_pool_backward_equals_torch_autograd(n, data, options):
    count_include_pad, divisor_override = options
    geo, x = data.draw(cases(n, dilated=False))
    grad = normals_like(data.draw, x.shape[:-n] + geo.out_spatial, x.dtype)
    _, want = torch_avg(x, geo, count_include_pad, divisor_override, grad)
    # Positional, in the forward's order (docs/SPEC.md section 3): dilation sits after padding.
    got = poolnd.avg_pool_backward(
        grad,
        x.shape,
        geo.kernel,
        geo.arg("stride"),
        geo.arg("padding"),
        1,
        geo.ceil_mode,
        count_include_pad,
        divisor_override,
    )
    assert_close(got, want)


# ---------------------------------------------------------------- convenience names


@NDIMS
@given(data=st.data())
def test_max_poolnd_takes_torch_positional_order(n, data):
    geo, x = data.draw(cases(n))
    return_indices = data.draw(st.booleans())
    want, want_idx, _ = torch_max(x, geo)
    fn = getattr(poolnd, f"max_pool{n}d")
    got = fn(
        x,
        geo.arg("kernel"),
        geo.arg("stride"),
        geo.arg("padding"),
        geo.arg("dilation"),
        geo.ceil_mode,
        return_indices,
    )
    if return_indices:
        assert_identical(got[0], want)
        assert_identical(got[1], want_idx)
    else:
        assert_identical(got, want)


@NDIMS
@given(data=st.data(), options=avg_options)
def test_avg_poolnd_takes_torch_positional_order(n, data, options):
    count_include_pad, divisor_override = options
    if n == 1:
        divisor_override = None  # torch's avg_pool1d has no such argument
    geo, x = data.draw(cases(n, dilated=False))
    want, _ = torch_avg(x, geo, count_include_pad, divisor_override)
    fn = getattr(poolnd, f"avg_pool{n}d")
    args = [
        geo.arg("kernel"),
        geo.arg("stride"),
        geo.arg("padding"),
        geo.ceil_mode,
        count_include_pad,
    ]
    if n > 1:
        args.append(divisor_override)
    assert_close(fn(x, *args), want)


# ---------------------------------------------------------------- layers


def forward_other_data_first(layer, x):
    # A forward on other data first: backward must use the state of the latest forward.
    layer(np.flip(x, axis=-1).copy())


def assert_max_layer_equals_twin(layer, twin, x, grad, n, return_indices):
    """A max layer's forward (values, indices) and backward equal its torch.nn twin's.

    Exact for the same reason as the functional backward: integer gradients.
    """
    t = to_planes(x, n).requires_grad_(True)
    y = twin(t)
    (y[0] if return_indices else y).backward(to_planes(grad, n))
    batch = x.shape[:-n]

    forward_other_data_first(layer, x)
    got = layer(x)
    if return_indices:
        assert_identical(got[0], from_planes(y[0], batch))
        assert_identical(got[1], from_planes(y[1], batch))
    else:
        assert_identical(got, from_planes(y, batch))
    assert_identical(layer.backward(grad), from_planes(t.grad, batch))


@NDIMS
@given(data=st.data())
def test_max_layers_equal_torch_modules(n, data):
    geo, x = data.draw(cases(n))
    return_indices = data.draw(st.booleans())
    any_n = data.draw(st.booleans())
    grad = small_ints_like(data.draw, x.shape[:-n] + geo.out_spatial, x.dtype)
    kwargs = dict(
        stride=geo.arg("stride"),
        padding=geo.arg("padding"),
        dilation=geo.arg("dilation"),
        return_indices=return_indices,
        ceil_mode=geo.ceil_mode,
    )
    if any_n:
        layer = poolnd.nn.MaxPoolNd(geo.kernel, **kwargs)
    else:
        layer = getattr(poolnd.nn, f"MaxPool{n}d")(geo.arg("kernel"), **kwargs)
    twin = getattr(torch.nn, f"MaxPool{n}d")(
        geo.kernel, geo.stride, geo.padding, geo.dilation, return_indices, geo.ceil_mode
    )
    assert_max_layer_equals_twin(layer, twin, x, grad, n, return_indices)


@NDIMS
@given(data=st.data(), options=avg_options)
def test_avg_layers_equal_torch_modules(n, data, options):
    count_include_pad, divisor_override = options
    geo, x = data.draw(cases(n, dilated=False))
    any_n = data.draw(st.booleans())
    grad = normals_like(data.draw, x.shape[:-n] + geo.out_spatial, x.dtype)
    kwargs = dict(
        stride=geo.arg("stride"),
        padding=geo.arg("padding"),
        ceil_mode=geo.ceil_mode,
        count_include_pad=count_include_pad,
        divisor_override=divisor_override,
    )
    if any_n:
        layer = poolnd.nn.AvgPoolNd(geo.kernel, **kwargs)
    elif n == 1:
        del kwargs["divisor_override"]  # torch.nn.AvgPool1d has no such argument
        divisor_override = None
        layer = poolnd.nn.AvgPool1d(geo.arg("kernel"), **kwargs)
    else:
        layer = getattr(poolnd.nn, f"AvgPool{n}d")(geo.arg("kernel"), **kwargs)
    want, want_grad = torch_avg(x, geo, count_include_pad, divisor_override, grad)
    if n > 1 or divisor_override is None:
        # The module twin's own results; torch_avg still supplies the scale of the terms.
        twin_kwargs = {**kwargs, "stride": geo.stride, "padding": geo.padding}
        if n == 1:
            twin_kwargs.pop("divisor_override", None)
        t = to_planes(x, n).requires_grad_(True)
        y = getattr(torch.nn, f"AvgPool{n}d")(geo.kernel, **twin_kwargs)(t)
        y.backward(to_planes(grad, n))
        want = Sum(from_planes(y, x.shape[:-n]), want.scale)
        want_grad = Sum(from_planes(t.grad, x.shape[:-n]), want_grad.scale)

    forward_other_data_first(layer, x)
    assert_close(layer(x), want)
    assert_close(layer.backward(grad), want_grad)


# ---------------------------------------------------------------- channels-last


@st.composite
def channels_last_cases(draw, n, dilated=True):
    """(lead..., *spatial, C) data and the pooled axes, as positive or negative numbers."""
    geo = draw(geometries(n, dilated))
    lead = draw(st.lists(st.integers(0, 2), max_size=1))
    channels = draw(st.integers(1, 3))
    assume(math.prod(lead) * channels <= MAX_PLANES)
    x = draw(arrays(tuple(lead) + geo.spatial + (channels,)))
    axes = tuple(range(len(lead), len(lead) + n))
    if draw(st.booleans()):
        axes = tuple(a - x.ndim for a in axes)
    return geo, x, axes


def channels_first(x, n):
    return np.moveaxis(x, -1, -n - 1)


def channels_last(x, n):
    if isinstance(x, Sum):
        return x.map(lambda a: channels_last(a, n))
    return np.moveaxis(x, -n - 1, -1)


@NDIMS
@given(data=st.data())
def test_channels_last_max_pool_equals_torch_on_transpose(n, data):
    geo, x, axes = data.draw(channels_last_cases(n))
    grad_cf = small_ints_like(data.draw, channels_first(x, n).shape[:-n] + geo.out_spatial, x.dtype)
    want, want_idx, want_grad = torch_max(channels_first(x, n), geo, grad_cf)
    got, got_idx = poolnd.max_pool(
        x,
        geo.kernel,
        geo.arg("stride"),
        geo.arg("padding"),
        geo.arg("dilation"),
        geo.ceil_mode,
        axes=axes,
        return_indices=True,
    )
    assert_identical(got, channels_last(want, n))
    assert_identical(got_idx, channels_last(want_idx, n))
    got_grad = poolnd.max_pool_backward(channels_last(grad_cf, n), got_idx, x.shape,
                                        *geo.max_arguments(), axes=axes)
    assert_identical(got_grad, channels_last(want_grad, n))


@NDIMS
@given(data=st.data(), options=avg_options)
def test_channels_last_avg_pool_equals_torch_on_transpose(n, data, options):
    count_include_pad, divisor_override = options
    geo, x, axes = data.draw(channels_last_cases(n, dilated=False))
    grad_cf = normals_like(data.draw, channels_first(x, n).shape[:-n] + geo.out_spatial, x.dtype)
    want, want_grad = torch_avg(
        channels_first(x, n), geo, count_include_pad, divisor_override, grad_cf
    )
    # the forward's arguments after x, which the backward takes after the input's shape
    arguments = (geo.kernel, geo.arg("stride"), geo.arg("padding"), 1, geo.ceil_mode,
                 count_include_pad, divisor_override)
    got = poolnd.avg_pool(x, *arguments, axes=axes)
    assert_close(got, channels_last(want, n))
    got_grad = poolnd.avg_pool_backward(channels_last(grad_cf, n), x.shape, *arguments, axes=axes)
    assert_close(got_grad, channels_last(want_grad, n))


@NDIMS
@given(data=st.data(), options=avg_options)
def test_channels_last_layers_equal_torch_on_transpose(n, data, options):
    count_include_pad, divisor_override = options
    kind = data.draw(st.sampled_from(["max", "avg"]))
    geo, x, axes = data.draw(channels_last_cases(n, dilated=kind == "max"))
    where = data.draw(st.sampled_from([{"channels_last": True}, {"axes": axes}]))
    out_cf = channels_first(x, n).shape[:-n] + geo.out_spatial
    if kind == "max":
        grad_cf = small_ints_like(data.draw, out_cf, x.dtype)
        want, want_idx, want_grad = torch_max(channels_first(x, n), geo, grad_cf)
        layer = getattr(poolnd.nn, f"MaxPool{n}d")(
            geo.arg("kernel"),
            geo.arg("stride"),
            geo.arg("padding"),
            geo.arg("dilation"),
            return_indices=True,
            ceil_mode=geo.ceil_mode,
            **where,
        )
        forward_other_data_first(layer, x)
        got, got_idx = layer(x)
        assert_identical(got, channels_last(want, n))
        assert_identical(got_idx, channels_last(want_idx, n))
        assert_identical(layer.backward(channels_last(grad_cf, n)), channels_last(want_grad, n))
    else:
        if n == 1:
            divisor_override = None  # torch.nn.AvgPool1d has no such argument
        grad_cf = normals_like(data.draw, out_cf, x.dtype)
        want, want_grad = torch_avg(
            channels_first(x, n), geo, count_include_pad, divisor_override, grad_cf
        )
        extra = {} if n == 1 else {"divisor_override": divisor_override}
        layer = getattr(poolnd.nn, f"AvgPool{n}d")(
            geo.arg("kernel"),
            geo.arg("stride"),
            geo.arg("padding"),
            geo.ceil_mode,
            count_include_pad,
            **extra,
            **where,
        )
        forward_other_data_first(layer, x)
        assert_close(layer(x), channels_last(want, n))
        assert_close(layer.backward(channels_last(grad_cf, n)), channels_last(want_grad, n))


# ---------------------------------------------------------------- image channels


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5])  # 3 and 4 have loops of their own
@given(data=st.data())
def test_image_channels_2x2_windows_equal_torch(channels, data):
    """(H, W, C) images pooled 2x2 over (H, W), the images' loops and their edges, at every
    output width from 1 to 20: max with indices and gradient, and averages."""
    padding, ceil_mode = data.draw(st.sampled_from([0, 1])), data.draw(st.booleans())
    width = data.draw(st.integers(max(1, 2 - 2 * padding), 41))
    x = data.draw(arrays((data.draw(st.integers(2, 5)), width, channels)))
    planes = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 0)))
    t = planes.clone().requires_grad_(True)
    y, idx = F.max_pool2d(t, 2, 2, padding, 1, ceil_mode, True)
    grad = small_ints_like(data.draw, tuple(y.shape), x.dtype)
    y.backward(torch.from_numpy(grad))
    got, got_idx = poolnd.max_pool(x, 2, 2, padding, ceil_mode=ceil_mode, axes=(0, 1),
                                   return_indices=True)
    assert_identical(got, np.moveaxis(y.detach().numpy(), 0, -1))
    assert_identical(got_idx, np.moveaxis(idx.numpy(), 0, -1))
    got_grad = poolnd.max_pool_backward(np.moveaxis(grad, 0, -1), got_idx, x.shape, 2, 2,
                                        padding, ceil_mode=ceil_mode, axes=(0, 1))
    assert_identical(got_grad, np.moveaxis(t.grad.numpy(), 0, -1))
    average = F.avg_pool2d(planes, 2, 2, padding, ceil_mode).numpy()
    got = poolnd.avg_pool(x, 2, 2, padding, ceil_mode=ceil_mode, axes=(0, 1))
    np.testing.assert_allclose(got, np.moveaxis(average, 0, -1), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- short rows


SHORT_ROW_GEOMETRIES = [  # (kernel, stride, padding, dilation, ceil_mode)
    (2, 2, 0, 1, False), (3, 2, 1, 1, False), (3, 2, 0, 1, True), (2, 2, 1, 1, True),
    (3, 2, 1, 2, False), (4, 4, 0, 1, False), (2, 1, 0, 1, False),
]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("geometry", SHORT_ROW_GEOMETRIES, ids=str)
def test_short_rows_of_every_width_equal_torch(geometry, channels_last):
    """Output rows of 1 to 40 windows (each kernel path's boundaries: a row of whole
    windows, edge windows, the literal loops) with ties and NaN: max values, indices and
    the layer's gradient, and averages forward and backward."""
    kernel, stride, padding, dilation, ceil_mode = geometry
    extent = dilation * (kernel - 1) + 1
    rng = np.random.default_rng(kernel * 100 + stride * 10 + padding)
    for width in range(1, 41):
        length = max(1, (width - 1) * stride + extent - 2 * padding)
        x = rng.integers(-2, 3, (2, 3, 5, length)).astype(np.float32)
        x[rng.random(x.shape) < 0.05] = np.nan
        t = torch.from_numpy(x).requires_grad_(True)
        y, idx = F.max_pool2d(t, kernel, stride, padding, dilation, ceil_mode, True)
        grad = rng.integers(-3, 4, tuple(y.shape)).astype(np.float32)
        y.backward(torch.from_numpy(grad))
        # channels-last: the same numbers with the 3 channels last, pooled over axes (1, 2)
        move = (lambda a: np.moveaxis(a, 1, -1)) if channels_last else (lambda a: a)
        axes = (1, 2) if channels_last else (2, 3)
        layer = poolnd.nn.MaxPool2d(kernel, stride, padding, dilation, ceil_mode=ceil_mode,
                                    **({"channels_last": True} if channels_last else {}))
        got = layer(move(x))
        assert_identical(got, move(y.detach().numpy()))
        assert_identical(layer.backward(move(grad)), move(t.grad.numpy()))
        values, indices = poolnd.max_pool(move(x), kernel, stride, padding, dilation, ceil_mode,
                                          axes=axes, return_indices=True)
        assert_identical(values, got)
        assert_identical(indices, move(idx.numpy()))
        if dilation == 1 and padding <= kernel // 2:
            s = torch.from_numpy(np.nan_to_num(x)).requires_grad_(True)
            average = F.avg_pool2d(s, kernel, stride, padding, ceil_mode)
            average.backward(torch.from_numpy(grad))  # the same output shape as the max's
            np.testing.assert_allclose(
                poolnd.avg_pool(move(np.nan_to_num(x)), kernel, stride, padding,
                                ceil_mode=ceil_mode, axes=axes),
                move(average.detach().numpy()), rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(
                poolnd.avg_pool_backward(move(grad), move(x).shape,
                                         kernel, stride, padding, ceil_mode=ceil_mode,
                                         axes=axes),
                move(s.grad.numpy()), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64", "uint8", "int16"])
@pytest.mark.parametrize("geometry", [  # (padding, dilation, ceil_mode) of 3x3 stride-2 windows
    (1, 1, False), (0, 1, False), (0, 1, True), (1, (2, 1), True), ((1, 0), (3, 1), False)],
    ids=str)
def test_rows_of_3x3_stride_2_windows_folded_whole_equal_torch(dtype, geometry):
    """Rows of 3x3 stride-2 windows go straight into the output, the edge windows of a
    row too, and the rows whose windows overhang the input's top or bottom (their rows
    outside have stand-ins): at every output width from 1 to 24 and input heights 1 to
    3 and 9, with ties in most windows and no NaN (a NaN sends its rows to the walk),
    then with one NaN, the values, flat indices, window positions (through the layer's
    gradient) and the gradient, against PyTorch."""
    padding, dilation, ceil_mode = geometry
    rng = np.random.default_rng(3)
    for height, width in itertools.product((1, 2, 3, 9), range(1, 25)):
        length = max(1, 2 * (width - 1) + 3 - 2)
        x = rng.integers(0, 4, (2, 2, height, length)).astype(dtype)
        cases = [x]
        if dtype.startswith("float"):
            with_nan = x.copy()
            with_nan[1, 0, height // 2, length // 2] = np.nan
            cases.append(with_nan)
        for case in cases:
            t = torch.from_numpy(case.astype(np.float64)).requires_grad_(True)
            try:
                y, idx = F.max_pool2d(t, 3, 2, padding, dilation, ceil_mode, True)
            except RuntimeError:  # no output at this width: poolnd refuses it too
                with pytest.raises(ValueError):
                    poolnd.max_pool2d(case, 3, 2, padding, dilation, ceil_mode)
                continue
            grad = rng.integers(-3, 4, tuple(y.shape)).astype(np.float64)
            y.backward(torch.from_numpy(grad))
            values, indices = poolnd.max_pool2d(case, 3, 2, padding, dilation, ceil_mode,
                                                return_indices=True)
            assert values.dtype == case.dtype
            assert_identical(values.astype(np.float64), y.detach().numpy())
            assert_identical(indices, idx.numpy())
            layer = poolnd.nn.MaxPool2d(3, 2, padding, dilation, ceil_mode=ceil_mode)
            assert_identical(layer(case), values)
            assert_identical(layer.backward(grad), t.grad.numpy())


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("geometry", [(2, 2, 0), (3, 2, 1), (3, 2, 0)], ids=str)
@pytest.mark.parametrize("channels", [2, 5, 16])
def test_channels_last_rows_of_any_channel_count_folded_whole_equal_torch(dtype, geometry,
                                                                          channels):
    """Channels-last rows of 2x2 and 3x3 stride-2 windows with positions (and 2x2 values
    of up to 16 channels), of channel counts without a loop of their own (the loop reads
    C from the row), go straight into the output: heights and widths 1 to 9 (edge
    windows, rows over the padding), with ties in most windows and then one NaN,
    ceil_mode too, the values, flat indices, the layer's gradient (its window positions),
    and values alone and uint8 averages, against PyTorch on the transpose."""
    kernel, stride, padding = geometry
    rng = np.random.default_rng(channels)
    for height, width, ceil_mode in itertools.product(range(1, 10, 2), range(1, 10),
                                                      (False, True)):
        x = rng.integers(0, 4, (2, height, width, channels)).astype(dtype)
        cases = [x]
        if dtype.startswith("float"):
            cases.append(x.copy())
            cases[-1][1, height // 2, width // 2, channels // 2] = np.nan
        for case in cases:
            t = torch.from_numpy(np.moveaxis(case, -1, 1).astype(np.float64)).requires_grad_()
            try:
                y, idx = F.max_pool2d(t, kernel, stride, padding, 1, ceil_mode, True)
            except RuntimeError:  # no output at this size: poolnd refuses it too
                with pytest.raises(ValueError):
                    poolnd.max_pool(case, (kernel, kernel), stride, padding, axes=(1, 2),
                                    ceil_mode=ceil_mode)
                continue
            grad = rng.integers(-3, 4, tuple(y.shape)).astype(np.float64)
            y.backward(torch.from_numpy(grad))
            values, indices = poolnd.max_pool(case, (kernel, kernel), stride, padding,
                                              ceil_mode=ceil_mode, axes=(1, 2),
                                              return_indices=True)
            assert values.dtype == case.dtype
            assert_identical(np.moveaxis(values, -1, 1).astype(np.float64), y.detach().numpy())
            assert_identical(np.moveaxis(indices, -1, 1), idx.numpy())
            layer = poolnd.nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode,
                                        channels_last=True)
            assert_identical(layer(case), values)
            assert_identical(np.moveaxis(layer.backward(np.moveaxis(grad, 1, -1)), -1, 1),
                             t.grad.numpy())
            # values alone: straight in too for 2x2 windows of few channels
            assert_identical(poolnd.max_pool(case, (kernel, kernel), stride, padding,
                                             ceil_mode=ceil_mode, axes=(1, 2)), values)
            if not dtype.startswith("float"):  # sums of small whole numbers: exact
                want = F.avg_pool2d(t.detach(), kernel, stride, padding, ceil_mode).numpy()
                assert_identical(
                    np.moveaxis(poolnd.avg_pool(case, (kernel, kernel), stride, padding,
                                                ceil_mode=ceil_mode, axes=(1, 2)), -1, 1),
                    want)


@pytest.mark.parametrize("dtype", ["float32", "float64", "uint8", "int16"])
@pytest.mark.parametrize("padding, ceil_mode", [(1, False), (0, False), (0, True), (1, True)])
def test_rows_of_3x3_stride_2_averages_folded_whole_equal_torch(dtype, padding, ceil_mode):
    """Averages of the rows whose three input rows lie inside the input, every divisor 9
    (the edge windows' too), go straight into the output; the others (other divisors, an
    override, rows over the padding above or below) the walk. At every output width from
    1 to 24 and input heights 1 to 3 and 9, of small whole numbers (sums exact, so one
    correctly rounded division gives torch's bits), NaN included: the input's float
    dtype, float64 for integers, and integers rounded half to even."""
    rng = np.random.default_rng(4)
    low = -4 if dtype != "uint8" else 0
    for height, width in itertools.product((1, 2, 3, 9), range(1, 25)):
        length = max(1, 2 * (width - 1) + 3 - 2)
        x = rng.integers(low, 5, (2, 2, height, length)).astype(dtype)
        cases = [x]
        if dtype.startswith("float"):
            cases.append(x.copy())
            cases[-1][1, 0, height // 2, length // 2] = np.nan
        for case, (count_include_pad, override) in itertools.product(
                cases, [(True, None), (False, None), (True, 5)]):
            arguments = (3, 2, padding, ceil_mode, count_include_pad, override)
            try:
                want = F.avg_pool2d(torch.from_numpy(case.astype(np.float64)), *arguments)
            except RuntimeError:  # no output at this width: poolnd refuses it too
                with pytest.raises(ValueError):
                    poolnd.avg_pool2d(case, *arguments)
                continue
            want = want.numpy()
            got = poolnd.avg_pool2d(case, *arguments)
            assert_identical(got, want.astype(dtype) if dtype.startswith("float") else want)
            if not dtype.startswith("float"):
                info = np.iinfo(dtype)
                assert_identical(poolnd.avg_pool2d(case, *arguments, dtype=dtype),
                                 np.clip(np.rint(want), info.min, info.max).astype(dtype))


@pytest.mark.parametrize("kernel", [2, 3])
def test_tiling_average_backward_with_a_ceil_mode_window_past_the_end_equals_torch(kernel):
    """Windows that tile the input, the last one overhanging under ceil_mode (the tiling
    fast path must leave that one to the general path)."""
    rng = np.random.default_rng(kernel)
    for length in range(kernel, 4 * kernel + 2):
        x = torch.from_numpy(rng.standard_normal((2, 3, length + 1, length))).requires_grad_()
        y = F.avg_pool2d(x, kernel, kernel, 0, True)
        grad = rng.standard_normal(tuple(y.shape))
        y.backward(torch.from_numpy(grad))
        got = poolnd.avg_pool_backward(grad, tuple(x.shape), (kernel, kernel), kernel,
                                       ceil_mode=True)
        np.testing.assert_allclose(got, x.grad.numpy(), rtol=1e-12, atol=1e-12)
