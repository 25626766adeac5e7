"""poolnd's table of ops (``poolnd._ops.OPS``) drives these checks: every public function
is in it, and every op, on every geometry it is benchmarked on, equals PyTorch forward and
backward (bit for bit where the table says exact), equals its brute-force reference
(``ref_<name>`` and ``ref_<backward>`` of ``tests/reference.py``) on small inputs of several
layouts and dtypes, and is lazy on Dask arrays or refuses them as the table says. The same
rows are ``poolnd bench``'s."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import reference
import torch

import poolnd
from poolnd._ops import OPS, public_functions

SHAPE = (2, 3, 15, 17)
CASES = [(op, geometry) for op in OPS for geometry in op.geometries]
IDS = [f"{op.named(2)} {geometry.label}" for op, geometry in CASES]
DRAWN_OTHERWISE = "PyTorch draws other windows (the reference check takes the same samples)"


@dataclass(frozen=True)
class SmallInput:
    """A small input for the reference checks (the references are Python loops)."""

    shape: tuple[int, ...]
    axes: tuple[int, ...]  # the pooled axes, always given: the N-d functions need N
    dtype: type
    nan: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)  # only for ops that take them


SMALL_INPUTS = {
    "float64": SmallInput((2, 3, 9, 8), (-2, -1), np.float64),
    "float32 NaN": SmallInput((2, 3, 9, 8), (-2, -1), np.float32, nan=True),
    "int16 channels-last": SmallInput((2, 9, 8, 3), (1, 2), np.int16),
    "4 axes": SmallInput((2, 5, 4, 6, 5), (1, 2, 3, 4), np.float32, nan=True),
    "nan_policy omit": SmallInput((2, 3, 9, 8), (-2, -1), np.float64, nan=True,
                                  kwargs={"nan_policy": "omit"}),
}


def _takes(function, names):
    return set(names) <= set(inspect.signature(function).parameters)


REFERENCE_CASES = [pytest.param(op, geometry, small, id=f"{op.name} {geometry.label} {label}")
                   for op, geometry in CASES for label, small in SMALL_INPUTS.items()
                   if _takes(op.function, small.kwargs)]


def _input(dtype, seed=0):
    # values from a small set: ties in max windows; 5% NaN in float32
    rng = np.random.default_rng(seed)
    x = rng.integers(-4, 5, SHAPE).astype(dtype)
    if dtype == np.float32:
        x[rng.random(SHAPE) < 0.05] = np.nan
    return x


def _same(actual, expected, exact):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    if exact:
        np.testing.assert_array_equal(actual, expected, strict=True)
    else:
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6, equal_nan=True)


def _outputs(result):
    return result if isinstance(result, tuple) else (result,)


def _torch_kwargs(geometry):
    return geometry.kwargs if geometry.torch_kwargs is None else geometry.torch_kwargs


def _unpool_inputs(x, kernel):
    """Max pooling's values and indices: what unpooling takes (of whole windows, so that
    unpooling's default output size is the input's)."""
    h, w = (n // kernel * kernel for n in x.shape[-2:])
    x = np.ascontiguousarray(x[..., :h, :w])
    out, idx = torch.nn.functional.max_pool2d(torch.from_numpy(x), kernel, return_indices=True)
    return out.numpy(), idx.numpy()


def test_the_table_names_every_public_function():
    functions = {name for name in poolnd.__all__ if callable(getattr(poolnd, name))
                 and name not in ("get_num_threads", "set_num_threads")}
    assert set(public_functions()) == functions
    assert all(public_functions()[name] is getattr(poolnd, name) for name in functions)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op, geometry", CASES, ids=IDS)
def test_each_op_equals_torch_on_its_geometries(op, geometry, dtype):
    if not op.torch or op.random:
        pytest.skip(f"{op.name}: {DRAWN_OTHERWISE}")
    x = _input(dtype)
    name = op.named(2)
    if op.takes_indices:
        x, idx = _unpool_inputs(np.nan_to_num(x), geometry.args[0])
        args = (x, idx)
    else:
        args = (x,)
    got = getattr(poolnd, name)(*args, *geometry.args, **geometry.kwargs)
    want = getattr(torch.nn.functional, name)(*map(torch.from_numpy, args), *geometry.args,
                                              **_torch_kwargs(geometry))
    for g, w in zip(got if isinstance(got, tuple) else (got,),
                    want if isinstance(want, tuple) else (want,)):
        _same(g, w.numpy(), op.exact or g.dtype == np.int64)


@pytest.mark.parametrize("op, geometry", CASES, ids=IDS)
def test_each_layer_trains_as_torch_on_its_geometries(op, geometry):
    """The layer's forward and backward against PyTorch's module and autograd."""
    if not op.torch or op.random:
        pytest.skip(f"{op.name}: {DRAWN_OTHERWISE}")
    x = np.nan_to_num(_input(np.float64, seed=1))
    inputs = _unpool_inputs(x, geometry.args[0]) if op.takes_indices else (x,)
    layer = getattr(poolnd.nn, f"{op.layer}2d")(*geometry.args, **geometry.kwargs)
    module = getattr(torch.nn, f"{op.layer}2d")(*geometry.args, **_torch_kwargs(geometry))
    leaf = torch.from_numpy(inputs[0]).requires_grad_()
    want = module(leaf, *map(torch.from_numpy, inputs[1:]))
    got = layer(*inputs)
    want, got = (want[0], got[0]) if isinstance(want, tuple) else (want, got)
    grad = np.random.default_rng(2).standard_normal(got.shape)
    want.backward(torch.from_numpy(grad))
    _same(got, want.detach().numpy(), op.exact)
    _same(layer.backward(grad), leaf.grad.numpy(), op.exact and not op.takes_indices)


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
def test_each_op_is_lazy_on_dask_as_the_table_says(op):
    da = pytest.importorskip("dask.array")
    x = np.nan_to_num(_input(np.float64))
    geometry = op.geometries[0]
    args = _unpool_inputs(x, geometry.args[0]) if op.takes_indices else (x,)
    lazy = (da.from_array(args[0], chunks=(1, 3, 8, 8)), *args[1:])
    call = getattr(poolnd, op.named(2))
    if op.lazy_on_dask:
        out = call(*lazy, *geometry.args, **geometry.kwargs)
        assert isinstance(out, da.Array)
        np.testing.assert_array_equal(out.compute(),
                                      call(*args, *geometry.args, **geometry.kwargs))
    else:
        with pytest.raises(TypeError, match=f"{op.named(2)} does not take Dask arrays"):
            call(*lazy, *geometry.args, **geometry.kwargs)


def _reference(name):
    return getattr(reference, f"ref_{name}")


def test_every_op_has_a_brute_force_reference():
    """A new row without its references fails here, not only in the checks that use them."""
    missing = [f"ref_{name}" for op in OPS for name in (op.name, op.backward)
               if not callable(getattr(reference, f"ref_{name}", None))]
    assert not missing, f"tests/reference.py lacks {missing}"


def _reference_inputs(op, geometry, small, rng):
    """The op's arrays: the input, or for unpooling the reference max pooling's values and
    indices (of whole windows, so that unpooling's default output size is the input's)."""
    x = rng.integers(-4, 5, small.shape).astype(small.dtype)  # ties in max windows
    if small.nan:
        x[rng.random(small.shape) < 0.1] = np.nan
    if not op.takes_indices:
        return (x,)
    kernel = geometry.args[0]
    pooled = {a % x.ndim for a in small.axes}
    x = x[tuple(slice(n // kernel * kernel) if a in pooled else slice(None)
                for a, n in enumerate(x.shape))]
    return reference.ref_max_pool(x, kernel, axes=small.axes)


@pytest.mark.parametrize("op, geometry, small", REFERENCE_CASES)
def test_each_op_and_its_backward_equal_the_reference(op, geometry, small):
    """Forward and backward against ``ref_<name>`` and ``ref_<backward>``, called with the same
    arguments; for fractional pooling the same samples, where PyTorch draws its own."""
    rng = np.random.default_rng(3)
    inputs = _reference_inputs(op, geometry, small, rng)
    kwargs = {**geometry.kwargs, **small.kwargs, "axes": small.axes}
    if op.random:  # one sample per pooled axis and batch position: shape batch + (N,)
        batch = [n for a, n in enumerate(inputs[0].shape)
                 if a not in {a % inputs[0].ndim for a in small.axes}]
        kwargs["samples"] = rng.random((*batch, len(small.axes)))
    got = _outputs(op.function(*inputs, *geometry.args, **kwargs))
    # the references of max-type ops always return the indices
    want = _outputs(_reference(op.name)(*inputs, *geometry.args, **{
        k: v for k, v in kwargs.items() if k != "return_indices"}))
    for g, w in zip(got, want):
        _same(g, w, op.exact or g.dtype == np.int64)

    # docs/SPEC.md section 3: the gradient, then indices, the input's shape or the input
    # itself, as the backward names them, then the forward's own arguments
    backward = getattr(poolnd, op.backward)
    parameters = inspect.signature(backward).parameters
    known = {"x": inputs[0], "input_shape": inputs[0].shape}
    if op.takes_indices or len(want) > 1:
        known["indices"] = inputs[1] if op.takes_indices else want[1]
    leading = [known[name] for name in list(parameters)[1:] if name in known]
    grad_dtype = small.dtype if np.issubdtype(small.dtype, np.floating) else np.float64
    grad = rng.integers(-4, 5, want[0].shape).astype(grad_dtype)  # sums of them are exact
    backward_kwargs = {k: v for k, v in kwargs.items() if k in parameters}
    _same(backward(grad, *leading, *geometry.args, **backward_kwargs),
          _reference(op.backward)(grad, *leading, *geometry.args, **backward_kwargs), op.exact)
