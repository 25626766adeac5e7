"""Max-unpooling (PyTorch's ``max_unpool``) and its gradient.

``max_unpool`` puts each value at the flat index ``max_pool`` reported for
it, in an array of zeros shaped like the pooled input. Where indices repeat
the values are summed, in order, so the result never depends on threads
(PyTorch keeps one of them, whichever it writes last). Its gradient is the
gather back from the same indices.
"""

from __future__ import annotations

import numpy as np

from .. import _parallel
from .._dtypes import as_array, as_real_array, compute_dtype, gradient_dtypes
from .._geometry import PoolPlan, plan_unpool
from .._kernels import unpool as _unpool_kernels
from .._layout import from_canonical, new_input_like
from .._positions import check_flat_indices, flat_canonical, gather_flat


def max_unpool_planned(x: np.ndarray, indices, plan: PoolPlan):
    """The unpooled array and the checked indices."""
    indices = check_flat_indices(indices, plan)
    # bool sums in int64, so that repeated True stays True; float16 sums in float32
    compute = np.dtype(np.int64) if x.dtype == np.bool_ else compute_dtype(x.dtype)
    values = flat_canonical(x, plan, plan.out_lengths, compute)
    index = flat_canonical(indices, plan, plan.out_lengths, np.int64)
    out = new_input_like(plan, compute, flat=True)
    _parallel.run_in_threads(_unpool_kernels.scatter_add, out.shape[0],
                             out.size + values.size, values, index, out)
    out = from_canonical(out, plan, plan.lengths)
    return out.astype(x.dtype, copy=False), indices


def max_unpool(x, indices, kernel_size, stride, padding, output_size, axes, *, op, n=None):
    x = as_real_array(x, "x")
    plan = plan_unpool(op, x.shape, kernel_size, stride, padding, output_size, axes, n)
    return max_unpool_planned(x, indices, plan)[0]


def max_unpool_backward(grad_output, indices, kernel_size, stride, padding, output_size, axes,
                         *, op, n=None):
    indices = as_array(indices, "indices")
    plan = plan_unpool(op, indices.shape, kernel_size, stride, padding, output_size, axes, n)
    return unpool_backward_planned(grad_output, check_flat_indices(indices, plan), plan)


def unpool_backward_planned(grad_output, indices: np.ndarray, plan: PoolPlan) -> np.ndarray:
    grad = as_real_array(grad_output, "grad_output")
    if grad.shape != plan.in_shape:
        raise ValueError(
            f"grad_output has shape {grad.shape} but {plan.op} of an input of shape "
            f"{plan.out_shape} gives {plan.in_shape}"
        )
    result, compute = gradient_dtypes(grad.dtype)
    grad = grad.astype(compute, copy=False)
    return gather_flat(grad, indices, plan).astype(result, copy=False)
