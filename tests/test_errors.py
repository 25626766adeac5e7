"""docs/SPEC.md section 6: bad input is a ValueError or TypeError that names the
argument and the offending value, raised before any work, leaving every input
as it was."""

from __future__ import annotations

import re

import numpy as np
import pytest

import poolnd
import poolnd.nn

X = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)


def _raises_unmodified(exc, match, fn, *args, **kwargs):
    """Assert fn raises exc matching `match` and writes to none of its arrays."""
    arrays = [a for a in (*args, *kwargs.values()) if isinstance(a, np.ndarray)]
    copies = [a.copy() for a in arrays]
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)
    for a, c in zip(arrays, copies):
        np.testing.assert_array_equal(a, c)


# --- sizes -------------------------------------------------------------------


@pytest.mark.parametrize("op", [poolnd.max_pool, poolnd.avg_pool])
def test_kernel_size_zero_is_rejected(op):
    _raises_unmodified(ValueError, r"kernel_size.*0", op, X, (2, 0))


@pytest.mark.parametrize("op", [poolnd.max_pool, poolnd.avg_pool])
def test_negative_stride_is_rejected(op):
    _raises_unmodified(ValueError, r"stride.*-1", op, X, (2, 2), stride=(1, -1))


@pytest.mark.parametrize("op", [poolnd.max_pool, poolnd.avg_pool])
def test_zero_dilation_is_rejected(op):
    _raises_unmodified(ValueError, r"dilation.*0", op, X, (2, 2), dilation=0)


@pytest.mark.parametrize("name, kwargs, value", [
    ("kernel_size", {"kernel_size": (2, 2.5)}, r"2\.5"),
    ("stride", {"kernel_size": (2, 2), "stride": 1.5}, r"1\.5"),
    ("dilation", {"kernel_size": (2, 2), "dilation": (1, 2.0)}, r"2\.0"),
    ("padding", {"kernel_size": (2, 2), "padding": 0.5}, r"0\.5"),
])
def test_non_integer_sizes_are_rejected(name, kwargs, value):
    _raises_unmodified((TypeError, ValueError), rf"{name}.*{value}", poolnd.max_pool, X, **kwargs)


def test_bool_kernel_size_is_not_a_size():
    # True == 1 in Python, but a flag passed as a size is almost surely a mistake
    _raises_unmodified((TypeError, ValueError), r"kernel_size.*True", poolnd.max_pool2d, X, True)


def test_negative_padding_is_rejected():
    _raises_unmodified(ValueError, r"padding.*-1", poolnd.max_pool, X, (2, 2), padding=(0, -1))


def test_bad_padding_string_is_rejected():
    _raises_unmodified(ValueError, r"padding.*'full'", poolnd.avg_pool, X, (2, 2),
                       padding="full")


def test_divisor_override_zero_is_rejected():
    _raises_unmodified(ValueError, r"divisor_override.*0", poolnd.avg_pool, X, (2, 2),
                       divisor_override=0)


# --- which axes, how many ----------------------------------------------------


def test_bare_int_kernel_size_without_axes_says_how_to_fix():
    # the message names the argument and points at axes= (or a tuple, or max_pool2d)
    _raises_unmodified(ValueError, r"(?s)kernel_size.*2.*axes", poolnd.max_pool, X, 2)
    _raises_unmodified(ValueError, r"(?s)kernel_size.*2.*axes", poolnd.avg_pool, X, 2)


def test_kernel_size_and_axes_disagree_on_n():
    _raises_unmodified(ValueError, r"kernel_size.*\(2, 2, 2\)", poolnd.max_pool, X, (2, 2, 2),
                       axes=(1, 2))


def test_stride_tuple_of_wrong_length_is_rejected():
    _raises_unmodified(ValueError, r"stride.*\(1, 1, 1\)", poolnd.max_pool2d, X, 2,
                       stride=(1, 1, 1))


def test_padding_tuple_of_wrong_length_is_rejected():
    _raises_unmodified((TypeError, ValueError), r"padding.*\(1, 1, 1\)", poolnd.avg_pool2d, X, 2,
                       padding=(1, 1, 1))


def test_fixed_n_name_disagreeing_with_kernel_size():
    _raises_unmodified(ValueError, r"kernel_size.*\(2, 2, 2\)", poolnd.max_pool2d, X, (2, 2, 2))


def test_more_pooled_axes_than_input_dimensions():
    _raises_unmodified(ValueError, r"3.*2", poolnd.max_pool3d, np.ones((4, 4)), 2)


@pytest.mark.parametrize("axes", [(1, 1), (1, -3), (-1, 3)])
def test_repeated_axes_are_rejected(axes):
    # -3 is axis 1 and -1 is axis 3 of a 4-d input
    _raises_unmodified(ValueError, "axes.*" + re.escape(str(axes)), poolnd.max_pool, X, (2, 2),
                       axes=axes)


@pytest.mark.parametrize("axes, bad", [((0, 4), "4"), ((-5, 1), "-5")])
def test_out_of_range_axes_are_rejected(axes, bad):
    _raises_unmodified(ValueError, rf"axes.*{bad}", poolnd.avg_pool, X, (2, 2), axes=axes)


# --- windows that miss the input, empty outputs ------------------------------


def test_window_wholly_in_padding_is_rejected():
    # kernel 2 with 2 padding before: the first window covers positions -2, -1
    _raises_unmodified(ValueError, r"(?s)axis 3.*5.*padding", poolnd.max_pool, X, (1, 2),
                       stride=1, padding=((0, 0), (2, 0)))


def test_dilated_window_with_no_tap_in_the_input_is_rejected():
    # length 1, kernel 2, dilation 2, padding 1: the taps fall on -1 and 1
    x = np.ones((3, 1))
    _raises_unmodified(ValueError, r"(?s)axis 1.*1.*dilation", poolnd.max_pool, x, (2,),
                       padding=1, dilation=2)
    _raises_unmodified(ValueError, r"(?s)axis 1.*1.*dilation", poolnd.avg_pool, x, (2,),
                       padding=1, dilation=2)


def test_output_length_below_one_is_rejected():
    # axis 2 has length 4, a window of 5 does not fit
    _raises_unmodified(ValueError, r"(?s)axis 2.*4.*5", poolnd.max_pool, X, (5, 1))
    _raises_unmodified(ValueError, r"(?s)axis 2.*4.*5", poolnd.avg_pool, X, (5, 1))


# --- dtypes and policies -----------------------------------------------------


@pytest.mark.parametrize("op", [poolnd.max_pool, poolnd.avg_pool])
def test_complex_input_is_a_type_error(op):
    _raises_unmodified(TypeError, r"complex", op, X.astype(np.complex128), (2, 2))


@pytest.mark.parametrize("op", [poolnd.max_pool, poolnd.avg_pool])
def test_object_input_is_a_type_error(op):
    _raises_unmodified(TypeError, r"object", op, X.astype(object), (2, 2))


def test_bad_nan_policy_is_rejected():
    _raises_unmodified(ValueError, r"nan_policy.*'ignore'", poolnd.max_pool, X, (2, 2),
                       nan_policy="ignore")


# --- backward: shapes and indices --------------------------------------------


def _forward():
    out, idx = poolnd.max_pool(X, (2, 2), return_indices=True)
    assert out.shape == (2, 3, 2, 2)
    return out, idx


def test_max_backward_grad_of_wrong_shape_is_rejected():
    _, idx = _forward()
    grad = np.ones((2, 3, 2, 3))
    _raises_unmodified(ValueError, r"grad_output.*\(2, 3, 2, 3\)", poolnd.max_pool_backward,
                       grad, idx, X.shape, (2, 2))


def test_avg_backward_grad_of_wrong_shape_is_rejected():
    grad = np.ones((2, 3, 3, 2))
    _raises_unmodified(ValueError, r"grad_output.*\(2, 3, 3, 2\)", poolnd.avg_pool_backward,
                       grad, X.shape, (2, 2))


def test_max_backward_indices_of_wrong_shape_are_rejected():
    out, idx = _forward()
    _raises_unmodified(ValueError, r"indices.*\(2, 3, 2\)", poolnd.max_pool_backward, out,
                       idx[..., 0], X.shape, (2, 2))


@pytest.mark.parametrize("bad", [20, 99, -1])
def test_max_backward_indices_out_of_range_are_rejected(bad):
    # the pooled axes hold 4 * 5 = 20 elements: valid indices are 0..19
    out, idx = _forward()
    idx = idx.copy()
    idx[1, 2, 1, 0] = bad
    _raises_unmodified(ValueError, rf"indices.*{bad}", poolnd.max_pool_backward, out, idx,
                       X.shape, (2, 2))


def test_max_backward_complex_grad_is_a_type_error():
    out, idx = _forward()
    _raises_unmodified(TypeError, r"complex", poolnd.max_pool_backward,
                       out.astype(np.complex64), idx, X.shape, (2, 2))


def test_read_only_inputs_of_a_failing_call_stay_intact():
    out, idx = _forward()
    idx = idx.copy()
    idx[0, 0, 0, 0] = 10_000
    for a in (out, idx):
        a.flags.writeable = False
    _raises_unmodified(ValueError, r"indices.*10000", poolnd.max_pool_backward, out, idx,
                       X.shape, (2, 2))


# --- found by fuzzing (tests/test_fuzz.py) -------------------------------------


@pytest.mark.parametrize("kwargs, name", [
    ({"kernel_size": (2, 2**63)}, "kernel_size"),
    ({"kernel_size": (2, 2), "stride": 2**64 + 3}, "stride"),
    ({"kernel_size": (2, 2), "padding": ((0, 0), (2**63, 0))}, "padding"),
    ({"kernel_size": (2, 2), "dilation": (1, -(2**63) - 1)}, "dilation"),
])
def test_sizes_past_int64_are_a_value_error_naming_them(kwargs, name):
    # they used to reach numba as uint64 (a new compilation) or overflow in NumPy
    _raises_unmodified(ValueError, rf"{name}.*int64", poolnd.max_pool, X, **kwargs)


@pytest.mark.parametrize("op, args", [
    (poolnd.adaptive_max_pool2d, ((2, 2**63),)),
    (poolnd.adaptive_avg_pool2d, (10**30,)),
    (poolnd.fractional_max_pool2d, (2, (2, 2**63))),
])
def test_output_sizes_past_int64_are_a_value_error(op, args):
    _raises_unmodified(ValueError, r"output_size.*int64", op, X, *args)


def test_adaptive_windows_whose_bounds_overflow_int64_are_rejected():
    # 2**62 outputs of an axis of length 5: (i+1) * L does not fit in int64
    _raises_unmodified(ValueError, r"(?s)axis 1.*5.*int64", poolnd.adaptive_avg_pool_backward,
                       np.ones((1, 1)), (1, 5), (1, 2**62))


@pytest.mark.parametrize("op", [poolnd.adaptive_max_pool, poolnd.adaptive_avg_pool])
def test_adaptive_output_sizes_whose_plan_cannot_fit_in_memory_are_refused(op):
    # 2**40 outputs need 16 TiB of window bounds, even for an empty batch
    _raises_unmodified(ValueError, r"output_size=1099511627776 needs .* GiB .* memory", op,
                       np.zeros((0, 4)), 2**40, axes=(1,))


def test_huge_padding_and_dilation_are_refused_without_huge_memory():
    # 2**31 windows start in the padding; they used to be checked all at once (48 GiB)
    _raises_unmodified(ValueError, r"(?s)axis 3.*dilation 2147483648.*no input element",
                       poolnd.max_pool, X, (1, 2), 1, ((0, 0), (2**31, 2**31)), (1, 2**31))


def test_padded_axis_too_long_for_int64_positions_is_rejected():
    _raises_unmodified(ValueError, r"(?s)axis 3.*too long for int64", poolnd.avg_pool, X, (1, 2),
                       1, ((0, 0), (2**62, 2**62)), (1, 2**62))


def test_layers_keep_list_and_array_arguments_as_tuples():
    # an array argument once made repr(AvgPool3d(...)) raise "truth value ... is ambiguous"
    layer = poolnd.nn.AvgPoolNd(np.array([2, 2]), [1, 1], dilation=np.array([1, 1]))
    assert repr(layer) == ("AvgPoolNd(kernel_size=(2, 2), stride=(1, 1), padding=0, "
                           "dilation=(1, 1), ceil_mode=False, count_include_pad=True)")
    np.testing.assert_array_equal(layer(X), poolnd.avg_pool(X, (2, 2), 1))


# --- layers: their arguments are checked when they are made -------------------


def _layer_mistakes():
    """(class name, args, kwargs, the argument, its value) for every layer of poolnd.nn."""
    window = [((0,), {}, "kernel_size", 0), ((2,), {"stride": -1}, "stride", -1),
              ((2.0,), {}, "kernel_size", 2.0), ((2,), {"padding": -1}, "padding", -1),
              ((2,), {"dilation": 0}, "dilation", 0)]
    mistakes = {
        "MaxPool": window,
        "AvgPool": window,
        "LPPool": [((2, 0), {}, "kernel_size", 0), ((2, 2), {"stride": -1}, "stride", -1),
                   ((2, 2.0), {}, "kernel_size", 2.0)],
        "MaxUnpool": [((0,), {}, "kernel_size", 0), ((2,), {"stride": -1}, "stride", -1),
                      ((2.0,), {}, "kernel_size", 2.0), ((2,), {"padding": "same"}, "padding",
                                                          "same")],
        "FractionalMaxPool": [((0,), {"output_ratio": 0.5}, "kernel_size", 0),
                              ((2.0,), {"output_ratio": 0.5}, "kernel_size", 2.0),
                              ((2,), {"output_size": 0}, "output_size", 0)],
        "AdaptiveMaxPool": [((0,), {}, "output_size", 0), ((2.0,), {}, "output_size", 2.0)],
        "AdaptiveAvgPool": [((0,), {}, "output_size", 0), ((2.0,), {}, "output_size", 2.0)],
    }
    for name in poolnd.nn.__all__:
        kind, nd = name[:-2], name[-2:]
        for args, kwargs, argument, value in mistakes[kind]:
            if nd == "Nd":  # two axes, so that only the mistake is wrong
                kwargs = {**kwargs, "axes": (-2, -1)}
            yield pytest.param(name, args, kwargs, argument, value,
                               id=f"{name}-{argument}={value!r}")


@pytest.mark.parametrize("name, args, kwargs, argument, value", list(_layer_mistakes()))
def test_every_layer_refuses_bad_arguments_when_made(name, args, kwargs, argument, value):
    # MaxPool2d(0) and MaxPool2d(2, stride=-1) once constructed, failing at the first call
    with pytest.raises((ValueError, TypeError)) as made:
        getattr(poolnd.nn, name)(*args, **kwargs)
    assert argument in str(made.value) and repr(value) in str(made.value)


@pytest.mark.parametrize("layer, call", [
    (lambda: poolnd.nn.MaxPool2d(0), lambda: poolnd.max_pool2d(X, 0)),
    (lambda: poolnd.nn.AvgPool2d(2, stride=-1), lambda: poolnd.avg_pool2d(X, 2, stride=-1)),
    (lambda: poolnd.nn.MaxPool2d(2.0), lambda: poolnd.max_pool2d(X, 2.0)),
    (lambda: poolnd.nn.AvgPool2d(2, padding=(1, 2, 3)),
     lambda: poolnd.avg_pool2d(X, 2, padding=(1, 2, 3))),
])
def test_a_layer_refuses_what_its_op_refuses_with_the_same_message(layer, call):
    with pytest.raises((ValueError, TypeError)) as made:
        layer()
    with pytest.raises(type(made.value)) as called:
        call()
    assert str(made.value) == str(called.value)


@pytest.mark.parametrize("op", [poolnd.max_pool, poolnd.avg_pool, poolnd.max_pool2d,
                                poolnd.avg_pool2d, poolnd.lp_pool2d])
def test_a_float_kernel_size_is_refused_even_when_whole(op):
    args = (2, 2.0) if op is poolnd.lp_pool2d else (2.0,)
    kwargs = {"axes": (-2, -1)} if op in (poolnd.max_pool, poolnd.avg_pool) else {}
    _raises_unmodified(TypeError, r"kernel_size.*2\.0", op, X, *args, **kwargs)


def _twin_named_in(message):
    return re.search(r"or (?:call|use) (\w+)", message).group(1)


@pytest.mark.parametrize("make", [
    *(pytest.param(lambda name=name: getattr(poolnd.nn, name)(2), id=name)
      for name in poolnd.nn.__all__ if name.endswith("Nd") and "Fractional" not in name
      and "LP" not in name),
    pytest.param(lambda: poolnd.nn.LPPoolNd(2, 2), id="LPPoolNd"),
    pytest.param(lambda: poolnd.nn.FractionalMaxPoolNd(2, output_ratio=0.5),
                 id="FractionalMaxPoolNd"),
])
def test_the_hint_for_a_bare_int_names_a_layer_that_exists(make):
    # MaxPoolNd(2) once suggested "MaxPoolNd2d"
    with pytest.raises(ValueError, match="does not say how many axes") as made:
        make()
    assert hasattr(poolnd.nn, _twin_named_in(str(made.value)))


@pytest.mark.parametrize("op", [poolnd.max_pool, poolnd.avg_pool, poolnd.adaptive_max_pool,
                                poolnd.adaptive_avg_pool])
def test_the_hint_for_a_bare_int_names_an_op_that_exists(op):
    with pytest.raises(ValueError, match="does not say how many axes") as called:
        op(X, 2)
    assert hasattr(poolnd, _twin_named_in(str(called.value)))


@pytest.mark.parametrize("call", [
    lambda t: poolnd.max_pool2d(t, 2),
    lambda t: poolnd.avg_pool(t, (2, 2)),
    lambda t: poolnd.nn.MaxPool2d(2)(t),
    lambda t: poolnd.nn.AdaptiveAvgPool2d(1)(t),
])
def test_a_torch_tensor_that_requires_grad_is_a_type_error(call):
    torch = pytest.importorskip("torch")
    tensor = torch.zeros(1, 1, 4, 4, requires_grad=True)
    with pytest.raises(TypeError, match=r"torch\.Tensor of shape \(1, 1, 4, 4\) that requires "
                                        r"grad.*detach\(\)\.numpy\(\)"):
        call(tensor)
    assert call(tensor.detach()).shape[-2:] in ((2, 2), (1, 1))  # without grad: pooled


@pytest.mark.parametrize("layer", [
    poolnd.nn.MaxPool2d(2), poolnd.nn.AvgPool2d(2), poolnd.nn.LPPool2d(2, 2),
    poolnd.nn.AdaptiveMaxPool2d(1), poolnd.nn.AdaptiveAvgPool2d(1),
], ids=lambda layer: type(layer).__name__)
def test_a_layers_backward_refuses_a_gradient_that_requires_grad(layer):
    torch = pytest.importorskip("torch")
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    y = layer(x)
    grad = torch.ones(y.shape, requires_grad=True)
    with pytest.raises(TypeError, match=r"grad_output is a torch\.Tensor of shape "
                                        r"\(1, 1, \d, \d\) that requires grad"):
        layer.backward(grad)
    # the refused call left the forward's state: the detached gradient is answered
    assert layer.backward(grad.detach()).shape == x.shape
