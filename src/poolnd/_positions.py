"""Where each maximum is: the position codes, their checks, scatter and gather.

Three kinds: none; the row-major tap number inside the window (a layer's
compact state, in the smallest unsigned type that fits); and PyTorch's flat
row-major index inside the pooled axes of the unpadded input.
"""

from __future__ import annotations

import math

import numpy as np

from . import _parallel
from ._dtypes import as_array, compute_dtype, gradient_dtypes
from ._geometry import PoolPlan, check_grad, window_start
from ._kernels import unpool as _unpool_kernels
from ._layout import from_canonical, new_input_like, run_planes, to_canonical

# What a max pooling call reports besides values.
NO_POSITION = 0


WINDOW_POSITION = 1  # row-major tap number inside the window (the layers' compact state)


FLAT_INDEX = 2  # row-major index inside the pooled axes of the unpadded input (PyTorch's)


def position_dtype(kind: int, window_size: int) -> np.dtype:
    if kind == FLAT_INDEX:
        return np.dtype(np.int64)
    for dtype in (np.uint8, np.uint16, np.uint32):
        if window_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def check_flat_indices(indices, plan: PoolPlan) -> np.ndarray:
    """Flat indices of the forward's output shape, each inside the pooled axes."""
    indices = as_array(indices, "indices")
    if indices.shape != plan.out_shape or indices.dtype.kind not in "iu":
        raise ValueError(
            f"indices must be integers of shape {plan.out_shape}, got {indices.dtype} "
            f"of shape {indices.shape}"
        )
    size = math.prod(plan.lengths)
    low, high = index_range(indices)
    if low < 0 or high >= size:
        raise ValueError(
            f"indices must lie in [0, {size}) for pooled axes of lengths {plan.lengths}; "
            f"got values from {low} to {high}"
        )
    return indices


_INDEX_BLOCK = 1 << 16


def index_range(indices: np.ndarray) -> tuple[int, int]:
    """The least and greatest index, ``(0, 0)`` for none; int64 indices in any dense
    layout (PyTorch's and poolnd's own) are read once, in parallel when large."""
    if indices.size == 0:
        return 0, 0
    flat = np.ravel(indices, order="K")  # a view, unless the layout has gaps
    if flat.dtype != np.int64:  # rare: not worth a kernel per integer type
        return int(flat.min()), int(flat.max())
    extremes = np.empty((-(-flat.size // _INDEX_BLOCK), 2), np.int64)
    _parallel.run_in_threads(_unpool_kernels.index_range, len(extremes), flat.size, flat,
                             _INDEX_BLOCK, extremes)
    return int(extremes[:, 0].min()), int(extremes[:, 1].max())


def scatter_flat(grad: np.ndarray, indices: np.ndarray, plan: PoolPlan) -> np.ndarray:
    """Scatter-add ``grad`` to the input elements named by flat ``indices``."""
    result, compute = gradient_dtypes(grad.dtype)
    planes, channels = math.prod(plan.outer_shape), math.prod(plan.inner_shape)
    flat_out = (planes, math.prod(plan.out_lengths), channels)
    grad_in = new_input_like(plan, compute, flat=True)
    grad = to_canonical(grad, plan, plan.out_lengths, compute).reshape(flat_out)
    indices = to_canonical(indices, plan, plan.out_lengths, np.int64).reshape(flat_out)
    run_planes(_unpool_kernels.scatter_add, grad, grad_in, grad, indices, grad_in)
    return from_canonical(grad_in, plan, plan.lengths).astype(result, copy=False)


def scatter_to_input(grad_output, indices, plan: PoolPlan) -> np.ndarray:
    """The backward of every op that reports flat indices: checks, then scatter-add."""
    return scatter_flat(check_grad(grad_output, plan), check_flat_indices(indices, plan), plan)


def flat_canonical(arr: np.ndarray, plan: PoolPlan, lengths, dtype) -> np.ndarray:
    """``arr`` as ``(B, prod(lengths), C)``: the pooled axes flattened, batch axes folded."""
    planes, channels = math.prod(plan.outer_shape), math.prod(plan.inner_shape)
    return to_canonical(arr, plan, lengths, dtype).reshape(planes, math.prod(lengths), channels)


def gather_flat(source: np.ndarray, indices: np.ndarray, plan: PoolPlan) -> np.ndarray:
    """``source`` (shaped as the plan's input) at flat ``indices`` (shaped as its output)."""
    values = flat_canonical(source, plan, plan.lengths, compute_dtype(source.dtype))
    index = flat_canonical(indices, plan, plan.out_lengths, np.int64)
    out = np.empty(index.shape, values.dtype)
    _parallel.run_in_threads(_unpool_kernels.gather, out.shape[0], 2 * out.size, values, index, out)
    return from_canonical(out, plan, plan.out_lengths)


def _output_grid(plan: PoolPlan):
    """Per pooled axis, the output positions broadcast over the output's shape."""
    grids = []
    for i, axis in enumerate(plan.axes):
        shape = [1] * len(plan.in_shape)
        shape[axis] = plan.out_lengths[i]
        grids.append(np.arange(plan.out_lengths[i]).reshape(shape))
    return grids


def flat_to_window(flat: np.ndarray, plan: PoolPlan) -> np.ndarray:
    taps = np.zeros(flat.shape, np.int64)
    positions = np.unravel_index(flat, plan.lengths)
    for i, grid in enumerate(_output_grid(plan)):
        start = window_start(grid, plan.stride[i], plan.pad_before[i])
        taps = taps * plan.kernel[i] + (positions[i] - start) // plan.dilation[i]
    return taps.astype(position_dtype(WINDOW_POSITION, plan.window_size))


def window_to_flat(taps: np.ndarray, plan: PoolPlan) -> np.ndarray:
    per_axis = np.unravel_index(taps, plan.kernel)
    flat = np.zeros(taps.shape, np.int64)
    for i, grid in enumerate(_output_grid(plan)):
        start = window_start(grid, plan.stride[i], plan.pad_before[i])
        position = start + per_axis[i] * plan.dilation[i]
        flat = flat * plan.lengths[i] + position
    return flat
