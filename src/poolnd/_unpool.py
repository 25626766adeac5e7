"""Max-unpooling (PyTorch's ``max_unpool``) and its gradient.

``max_unpool`` puts each value at the flat index ``max_pool`` reported for
it, in an array of zeros shaped like the pooled input. Where indices repeat
the values are summed, in order, so the result never depends on threads
(PyTorch keeps one of them, whichever it writes last). Its gradient is the
gather back from the same indices.
"""

from __future__ import annotations

import math

import numpy as np

from . import _parallel
from ._geometry import PoolPlan, plan_unpool
from ._kernels import unpool as _unpool_kernels
from .functional import (
    _as_real_array,
    _check_flat_indices,
    _compute_dtype,
    _float_dtype,
    _from_canonical,
    _new_input_like,
    _pytorch_named,
    _to_canonical,
)

__all__ = [
    "max_unpool",
    "max_unpool1d",
    "max_unpool2d",
    "max_unpool3d",
    "max_unpool_backward",
]


def _flat_canonical(arr: np.ndarray, plan: PoolPlan, lengths, dtype) -> np.ndarray:
    """``arr`` as ``(B, prod(lengths), C)``: the pooled axes flattened, batch axes folded."""
    planes, channels = math.prod(plan.outer_shape), math.prod(plan.inner_shape)
    return _to_canonical(arr, plan, lengths, dtype).reshape(planes, math.prod(lengths), channels)


def _gather_flat(source: np.ndarray, indices: np.ndarray, plan: PoolPlan) -> np.ndarray:
    """``source`` (shaped as the plan's input) at flat ``indices`` (shaped as its output)."""
    values = _flat_canonical(source, plan, plan.lengths, _compute_dtype(source.dtype))
    index = _flat_canonical(indices, plan, plan.out_lengths, np.int64)
    out = np.empty(index.shape, values.dtype)
    _parallel.run(_unpool_kernels.gather, out.shape[0], 2 * out.size, values, index, out)
    return _from_canonical(out, plan, plan.out_lengths)


def _max_unpool_planned(x: np.ndarray, indices, plan: PoolPlan):
    """The unpooled array and the checked indices."""
    indices = _check_flat_indices(indices, plan)
    # bool sums in int64, so that repeated True stays True; float16 sums in float32
    compute = np.dtype(np.int64) if x.dtype == np.bool_ else _compute_dtype(x.dtype)
    values = _flat_canonical(x, plan, plan.out_lengths, compute)
    index = _flat_canonical(indices, plan, plan.out_lengths, np.int64)
    out = _new_input_like(plan, compute, flat=True)
    _parallel.run(_unpool_kernels.scatter_add, out.shape[0], out.size + values.size, values,
                  index, out)
    out = _from_canonical(out, plan, plan.lengths)
    return out.astype(x.dtype, copy=False), indices


def _max_unpool(x, indices, kernel_size, stride, padding, output_size, axes, *, op, n=None):
    x = _as_real_array(x, "x")
    plan = plan_unpool(op, x.shape, kernel_size, stride, padding, output_size, axes, n)
    return _max_unpool_planned(x, indices, plan)[0]


def max_unpool(x, indices, kernel_size, stride=None, padding=0, output_size=None, *, axes=None):
    """Put each value of ``x`` at its flat index in zeros shaped like the pooled input.

    >>> import numpy as np, poolnd
    >>> x = np.array([[1., 5., 2.], [0., 3., 4.]])
    >>> y, idx = poolnd.max_pool(x, (2,), return_indices=True)
    >>> poolnd.max_unpool(y, idx, (2,))
    array([[0., 5.],
           [0., 3.]])
    >>> poolnd.max_unpool(y, idx, (2,), output_size=x.shape)
    array([[0., 5., 0.],
           [0., 3., 0.]])

    The inverse of :func:`max_pool` with ``return_indices=True`` (PyTorch's
    ``max_unpool``). The output length per pooled axis is
    ``(L - 1)*stride + kernel_size - padding_before - padding_after`` unless
    ``output_size`` (the pooled axes' lengths, or the whole output shape) gives one
    within ``stride`` of it. Where indices repeat, the values are summed (PyTorch
    keeps one of them). The output has ``x``'s dtype.

    Parameters
    ----------
    x : array_like
        The pooled values.
    indices : array_like of int
        Flat row-major indices within the output's pooled axes, shaped as ``x``.
    kernel_size, stride, padding, axes
        The pooling's arguments, as in :func:`max_pool` (padding as numbers).
    output_size : tuple of int, optional
    """
    return _max_unpool(x, indices, kernel_size, stride, padding, output_size, axes,
                       op="max_unpool")


def max_unpool_backward(grad_output, indices, kernel_size, stride=None, padding=0,
                        output_size=None, *, axes=None):
    """Gradient of :func:`max_unpool` with respect to ``x``: ``grad_output`` gathered at
    ``indices`` (``x``'s shape is that of ``indices``).

    >>> import numpy as np, poolnd
    >>> poolnd.max_unpool_backward(np.arange(4.0).reshape(1, 4), [[1, 2]], (2,))
    array([[1., 2.]])
    """
    return _max_unpool_backward(grad_output, indices, kernel_size, stride, padding, output_size,
                                axes, op="max_unpool_backward")


def _max_unpool_backward(grad_output, indices, kernel_size, stride, padding, output_size, axes,
                         *, op, n=None):
    indices = np.asarray(indices)
    plan = plan_unpool(op, indices.shape, kernel_size, stride, padding, output_size, axes, n)
    return _unpool_backward_planned(grad_output, _check_flat_indices(indices, plan), plan)


def _unpool_backward_planned(grad_output, indices: np.ndarray, plan: PoolPlan) -> np.ndarray:
    grad = _as_real_array(grad_output, "grad_output")
    if grad.shape != plan.in_shape:
        raise ValueError(
            f"grad_output has shape {grad.shape} but {plan.op} of an input of shape "
            f"{plan.out_shape} gives {plan.in_shape}"
        )
    result = _float_dtype(grad.dtype)
    grad = grad.astype(_compute_dtype(result), copy=False)
    return _gather_flat(grad, indices, plan).astype(result, copy=False)


# --------------------------------------------------------------------------- 1d/2d/3d names


def _max_unpool_fixed(n: int):
    name = f"max_unpool{n}d"

    def unpool(x, indices, kernel_size, stride=None, padding=0, output_size=None, *, axes=None):
        return _max_unpool(x, indices, kernel_size, stride, padding, output_size, axes, op=name,
                           n=n)

    return _pytorch_named(unpool, name, n, "Max-unpooling", "max_unpool")


max_unpool1d, max_unpool2d, max_unpool3d = (_max_unpool_fixed(n) for n in (1, 2, 3))
