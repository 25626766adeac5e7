"""poolnd.mygrad: the same values and gradients as MyGrad's own max_pool, and a working graph."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolnd

mg = pytest.importorskip("mygrad")
from mygrad.nnet.layers import max_pool as mygrad_max_pool  # noqa: E402

from poolnd import mygrad as pm  # noqa: E402


def _values_and_grad(pool_function, data, *args, upstream=None, **kwargs):
    """Pool ``data`` in a MyGrad graph, back-propagate ``upstream``; return values and x.grad."""
    x = mg.Tensor(data)
    out = pool_function(x, *args, **kwargs)
    weights = np.ones(out.shape, out.dtype) if upstream is None else upstream
    (out * weights).sum().backward()
    return out.data, x.grad


# -- the seed document's three examples ----------------------------------------

def test_seed_example_2x2_stride_1_values_and_gradient():
    x = mg.Tensor([[0., 10., 8.], [2., 7., 3.], [5., 7., 20.]])
    out = pm.max_pool(x, pool=(2, 2), stride=1)
    np.testing.assert_array_equal(out.data, [[10., 10.], [7., 20.]])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [[0., 2., 0.], [0., 1., 0.], [0., 0., 1.]])


def test_seed_example_1d_pooling_of_each_row():
    x = mg.Tensor([[0., 10., 8.], [9., 7., 3.], [5., 0., 20.]])
    out = pm.max_pool(x, pool=(2,), stride=1)
    np.testing.assert_array_equal(out.data, [[10., 10.], [9., 7.], [5., 20.]])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [[0., 2., 0.], [1., 1., 0.], [1., 0., 1.]])


def test_seed_example_4d_with_stride_2_1_matches_mygrad():
    data = np.random.default_rng(0).random((10, 3, 12, 12))
    ours = _values_and_grad(pm.max_pool, data, (2, 2), (2, 1))
    theirs = _values_and_grad(mygrad_max_pool, data, (2, 2), (2, 1))
    assert ours[0].shape == (10, 3, 6, 11)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])


# -- random geometries against MyGrad's own max_pool ----------------------------

@st.composite
def tiling_geometries(draw):
    """Shapes, pools and strides that MyGrad accepts: windows tile each axis exactly."""
    n = draw(st.integers(1, 3))
    pool = tuple(draw(st.integers(1, 3)) for _ in range(n))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(n))
    outputs = [draw(st.integers(1, 4)) for _ in range(n)]
    lengths = tuple((o - 1) * s + p for o, s, p in zip(outputs, stride, pool))
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    ties = draw(st.booleans())  # small integers make ties common: the first maximum wins
    return batch + lengths, pool, stride, dtype, ties


@settings(max_examples=60, deadline=None)
@given(tiling_geometries(), st.integers(0, 2**32 - 1))
def test_random_geometries_equal_mygrad_values_and_gradients(geometry, seed):
    shape, pool, stride, dtype, ties = geometry
    rng = np.random.default_rng(seed)
    data = (rng.integers(0, 3, shape) if ties else rng.standard_normal(shape)).astype(dtype)
    stride_arg = stride[0] if len(set(stride)) == 1 else stride  # MyGrad's int form too
    out_shape = mygrad_max_pool(data, pool, stride_arg).shape
    upstream = rng.standard_normal(out_shape).astype(dtype)
    ours = _values_and_grad(pm.max_pool, data, pool, stride_arg, upstream=upstream)
    theirs = _values_and_grad(mygrad_max_pool, data, pool, stride_arg, upstream=upstream)
    np.testing.assert_array_equal(ours[0], theirs[0])
    assert ours[0].dtype == theirs[0].dtype == dtype
    np.testing.assert_array_equal(ours[1], theirs[1])
    assert ours[1].dtype == dtype


# -- poolnd's geometry beyond MyGrad: the functional ops are the reference ----

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_padding_dilation_and_ceil_mode_follow_poolnd(dtype):
    data = np.random.default_rng(1).standard_normal((2, 3, 9, 8)).astype(dtype)
    geometry = dict(padding=1, dilation=(1, 2), ceil_mode=True)
    upstream = np.random.default_rng(2).standard_normal(
        poolnd.max_pool(data, (3, 2), 2, **geometry).shape).astype(dtype)
    out, grad = _values_and_grad(pm.max_pool, data, (3, 2), 2, upstream=upstream, **geometry)
    expected, indices = poolnd.max_pool(data, (3, 2), 2, **geometry, return_indices=True)
    np.testing.assert_array_equal(out, expected)
    # overlapping windows: summed in float64 and rounded once, as MyGrad does
    summed = poolnd.max_pool_backward(upstream.astype(np.float64), indices, data.shape, (3, 2), 2,
                                      **geometry)
    np.testing.assert_array_equal(grad, summed.astype(dtype))
    assert grad.dtype == dtype


def test_nan_policy_omit_skips_nan():
    data = np.array([[np.nan, 1.0, 2.0, np.nan]])
    out, grad = _values_and_grad(pm.max_pool, data, (2,), 2, nan_policy="omit")
    np.testing.assert_array_equal(out, [[1.0, 2.0]])
    np.testing.assert_array_equal(grad, [[0.0, 1.0, 1.0, 0.0]])


# -- the averaging ops: finite differences -------------------------------------

def _numerical_gradient(function, data, upstream, step=1e-6):
    grad = np.zeros_like(data)
    for i in np.ndindex(data.shape):
        shifted = data.copy()
        shifted[i] += step
        above = (function(shifted) * upstream).sum()
        shifted[i] -= 2 * step
        below = (function(shifted) * upstream).sum()
        grad[i] = (above - below) / (2 * step)
    return grad


AVERAGING = {
    "avg_pool": (lambda x: pm.avg_pool(x, (3, 2), 2, padding=1, ceil_mode=True,
                                       count_include_pad=False)),
    "avg_pool dilated": lambda x: pm.avg_pool(x, (2, 2), 1, dilation=2),
    "lp_pool p=2": lambda x: pm.lp_pool(x, 2, (2, 3), 2),
    "lp_pool p=3.5": lambda x: pm.lp_pool(x, 3.5, (3, 2), 1, ceil_mode=True),
    "adaptive_avg_pool": lambda x: pm.adaptive_avg_pool(x, (3, 2)),
}


@pytest.mark.parametrize("name", AVERAGING)
def test_averaging_gradients_match_finite_differences(name):
    function = AVERAGING[name]
    rng = np.random.default_rng(3)
    data = rng.uniform(0.5, 2.0, (2, 5, 7))  # positive: LP pooling is smooth there
    x = mg.Tensor(data)
    out = function(x)
    upstream = rng.standard_normal(out.shape)
    (out * upstream).sum().backward()
    numerical = _numerical_gradient(lambda d: function(d).data, data, upstream)
    np.testing.assert_allclose(x.grad, numerical, rtol=1e-5, atol=1e-7)


def test_adaptive_max_pool_routes_gradient_to_the_maxima():
    data = np.random.default_rng(4).standard_normal((3, 10, 7))
    upstream = np.random.default_rng(5).standard_normal((3, 4, 3))
    out, grad = _values_and_grad(pm.adaptive_max_pool, data, (4, 3), upstream=upstream)
    expected, indices = poolnd.adaptive_max_pool(data, (4, 3), return_indices=True)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(
        grad, poolnd.adaptive_max_pool_backward(upstream, indices, data.shape, (4, 3)))


# -- the graph ----------------------------------------------------------------

def test_output_takes_part_in_a_larger_expression():
    rng = np.random.default_rng(6)
    data = rng.standard_normal((2, 3, 4, 6)).astype(np.float32)
    scale = rng.standard_normal((2, 3, 2, 3)).astype(np.float32)
    x = mg.Tensor(data)
    w = mg.Tensor(scale)
    loss = (pm.max_pool(x, (2, 2), 2) * w).reshape(2, -1).sum()
    loss.backward()
    out, indices = poolnd.max_pool(data, (2, 2), 2, return_indices=True)
    np.testing.assert_array_equal(w.grad, out)
    np.testing.assert_array_equal(
        x.grad, poolnd.max_pool_backward(scale, indices, data.shape, (2, 2), 2))
    assert loss.item() == pytest.approx(float((out * scale).sum()), rel=1e-6)


def test_two_pooling_ops_in_one_graph_add_their_gradients():
    data = np.random.default_rng(7).standard_normal((1, 6, 6))
    x = mg.Tensor(data)
    (pm.max_pool(x, (2, 2), 2).sum() + pm.avg_pool(x, (3, 3), 3).sum()).backward()
    _, indices = poolnd.max_pool(data, (2, 2), 2, return_indices=True)
    expected = (poolnd.max_pool_backward(np.ones((1, 3, 3)), indices, data.shape, (2, 2), 2)
                + np.full(data.shape, 1 / 9))
    np.testing.assert_allclose(x.grad, expected, rtol=1e-15)


@pytest.mark.parametrize("constant", [None, True, False])
def test_constant_means_what_it_means_in_mygrad(constant):
    data = np.random.default_rng(8).standard_normal((4, 4))
    ours = pm.max_pool(mg.Tensor(data), (2, 2), 2, constant=constant)
    theirs = mygrad_max_pool(mg.Tensor(data), (2, 2), 2, constant=constant)
    assert ours.constant == theirs.constant
    x = mg.Tensor(data)
    pm.max_pool(x, (2, 2), 2, constant=constant).sum().backward()
    assert (x.grad is None) == bool(constant)


def test_integer_input_gives_a_constant_like_mygrad():
    data = np.arange(16).reshape(4, 4)
    ours = pm.max_pool(data, (2, 2), 2)
    theirs = mygrad_max_pool(data, (2, 2), 2)
    np.testing.assert_array_equal(ours.data, theirs.data)
    assert ours.dtype == theirs.dtype
    assert ours.constant and theirs.constant


def test_input_is_not_modified():
    data = np.random.default_rng(9).standard_normal((2, 4, 4))
    before = data.copy()
    x = mg.Tensor(data)
    pm.max_pool(x, (2, 2), 2).sum().backward()
    np.testing.assert_array_equal(x.data, before)


# -- errors ------------------------------------------------------------------

def test_bad_geometry_is_poolnd_value_error():
    with pytest.raises(ValueError, match="kernel_size"):
        pm.max_pool(mg.Tensor(np.ones((2, 2))), (3, 3), 1)
    with pytest.raises(ValueError, match="nan_policy"):
        pm.max_pool(mg.Tensor(np.ones((2, 2))), (2, 2), 1, nan_policy="ignore")


def test_missing_mygrad_names_the_extra():
    code = ("import sys; sys.modules['mygrad'] = None\n"
            "try:\n    import poolnd.mygrad\nexcept ImportError as e:\n    print(e)\n")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout
    assert "pip install 'poolnd[mygrad]'" in printed


def test_max_gradients_are_arrays_of_their_own_so_mygrad_does_not_copy_them():
    from poolnd.nn import AdaptiveMaxPool2d, FractionalMaxPool2d, MaxPool2d

    x = np.random.default_rng(10).standard_normal((2, 3, 8, 8), dtype=np.float32)
    for layer in (MaxPool2d(2), AdaptiveMaxPool2d(3), FractionalMaxPool2d(2, output_size=5)):
        y = layer(x)
        grad = layer.backward(np.ones_like(y))
        assert grad.base is None and grad.flags.c_contiguous, type(layer).__name__
    out, indices = poolnd.max_pool(x, 2, axes=(2, 3), return_indices=True)
    assert poolnd.max_pool_backward(out, indices, x.shape, (2, 2)).base is None


@pytest.mark.parametrize("call, name", [
    (lambda x: pm.max_pool(x, 2, 2), "pool"),
    (lambda x: pm.avg_pool(x, 2, 2), "pool"),
    (lambda x: pm.lp_pool(x, 2, 2), "pool"),
    (lambda x: pm.adaptive_max_pool(x, 2), "output_size"),
    (lambda x: pm.adaptive_avg_pool(x, 2), "output_size"),
])
def test_a_bare_int_pool_names_mygrads_argument_not_a_layer(call, name):
    # poolnd.mygrad.max_pool(t, 2, 2) once spoke of MaxPoolNd (and of MaxPoolNd2d)
    with pytest.raises(TypeError) as refused:
        call(mg.tensor(np.zeros((4, 4))))
    message = str(refused.value)
    assert f"{name}=2 " in message and f"{name}=(2, 2)" in message
    assert "Nd" not in message
