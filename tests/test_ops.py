"""poolnd's table of ops (``poolnd._ops.OPS``) drives these checks: every public function
is in it, and every op, on every geometry it is benchmarked on, equals PyTorch forward and
backward (bit for bit where the table says exact), and is lazy on Dask arrays or refuses
them as the table says. The same rows are ``poolnd bench``'s."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import poolnd
from poolnd._ops import OPS, public_functions

SHAPE = (2, 3, 15, 17)
CASES = [(op, geometry) for op in OPS for geometry in op.geometries]
IDS = [f"{op.named(2)} {geometry.label}" for op, geometry in CASES]


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
        pytest.skip(f"{op.name}: PyTorch's windows are drawn otherwise (tests/test_fractional)")
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
    if not op.torch or op.random or geometry.kwargs:
        pytest.skip(f"{op.name} {geometry.label}: no PyTorch layer with these arguments")
    x = np.nan_to_num(_input(np.float64, seed=1))
    inputs = _unpool_inputs(x, geometry.args[0]) if op.takes_indices else (x,)
    layer = getattr(poolnd.nn, f"{op.layer}2d")(*geometry.args)
    module = getattr(torch.nn, f"{op.layer}2d")(*geometry.args)
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
