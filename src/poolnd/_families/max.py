"""Max pooling: values, positions, and the gradient from either."""

from __future__ import annotations

import math

import numpy as np

from .._dtypes import as_real_array, gradient_dtypes, max_compute_dtype, max_identity
from .._geometry import (
    NAN_POLICIES,
    PoolPlan,
    check_choice,
    check_flag,
    check_grad,
    check_shape,
    plan_pool,
)
from .._kernels import max as _max_kernels
from .._kernels.reductions import MAX, MAX_OMIT_NAN
from .._layout import (
    KERNEL_AXES,
    as_kernel_args,
    as_row_array,
    from_canonical,
    in_place,
    in_two_stages,
    max_results_back,
    new_input_like,
    plan_rows,
    run_planes,
    stage_geometry,
    to_canonical,
    window_geometry,
)
from .._parallel import prepared_run
from .._positions import (
    FLAT_INDEX,
    NO_POSITION,
    WINDOW_POSITION,
    flat_to_window,
    position_dtype,
    scatter_flat,
    scatter_to_input,
    window_to_flat,
)
from ._prepared import layout, prepared, prepared_for
from ._windows import forward_rows, is_large_window, pool_separably, prepared_row_walk


def _max_canonical(x: np.ndarray, geometry, kind: int, omit_nan: bool):
    """Max-pool canonical ``x`` of shape ``(B, *L, C)``; returns values and positions.

    More than three pooled axes are pooled in two stages, the last three axes
    first: the first maximum in row-major order of the whole window is the
    first maximum over the leading axes of the first maxima over the rest,
    and the same holds for the NaN rules.
    """
    omit_nan = omit_nan and x.dtype.kind == "f"  # integers have no NaN: one kernel fewer
    reduction = MAX_OMIT_NAN if omit_nan else MAX
    lowest = max_identity(x.dtype, omit_nan)
    if kind == NO_POSITION and is_large_window(geometry):
        return pool_separably(x, geometry, reduction, lowest)[0], None
    if x.ndim - 2 > KERNEL_AXES:
        # positions are flat indices here (window positions are derived from them)
        return in_two_stages(x, lambda part, axes: _max_canonical(
            part, stage_geometry(geometry, axes), kind, omit_nan))
    kernel, outs = geometry[0], geometry[5]
    out = np.empty((x.shape[0], *outs, x.shape[-1]), x.dtype)
    positions = None
    if kind != NO_POSITION:
        positions = np.empty(out.shape, position_dtype(kind, math.prod(kernel)))
    forward_rows(x, out, positions, geometry, reduction, lowest, kind == FLAT_INDEX)
    return out, positions


def max_pool_planned(x: np.ndarray, plan: PoolPlan, kind: int, omit_nan: bool):
    """Values and positions of ``kind`` for a checked input, in the input's axis order."""
    canonical = to_canonical(x, plan, plan.lengths, max_compute_dtype(x.dtype))
    out, positions = _max_canonical(canonical, window_geometry(plan), kind, omit_nan)
    return max_results_back(out, positions, plan, x.dtype)


def max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, axes, return_indices,
              nan_policy, *, op, n=None):
    x = as_real_array(x, "x")
    geometry = (kernel_size, stride, padding, dilation, ceil_mode, axes)

    def prepare():  # the checks too: a repeated call skips them with the rest
        check_choice("nan_policy", nan_policy, NAN_POLICIES)
        with_indices = check_flag("return_indices", return_indices)
        _, call = max_pool_call(x, geometry, FLAT_INDEX if with_indices else NO_POSITION,
                                nan_policy == "omit", op, n)
        return call if with_indices else lambda x: call(x)[0]

    return prepared_for(x, ("max_pool", op, n), (geometry, return_indices, nan_policy),
                        prepare)(x)


def max_pool_call(x: np.ndarray, geometry: tuple, kind: int, omit_nan: bool, op: str, n=None):
    """``(plan, call)``: max pooling of inputs laid out as ``x`` with the arguments
    ``geometry`` (kernel_size to axes, as given), ``call(x) -> (values, positions)``,
    prepared once per layout and arguments (see :mod:`._prepared`)."""

    def prepare():
        plan = plan_pool(op, x.shape, *geometry, n)
        return plan, _prepare(plan, x, kind, omit_nan)

    return prepared_for(x, ("max", kind, omit_nan, op, n), geometry, prepare)


def _prepare(plan: PoolPlan, x: np.ndarray, kind: int, omit_nan: bool):
    """The per-call work of max pooling for one plan and inputs laid out as ``x``:
    ``x -> (values, positions)``.

    The row walk of up to three axes in the input's own dtype is prepared (see
    :func:`prepared_row_walk`); the rest goes the general way.
    """
    dtype = x.dtype
    geometry = window_geometry(plan)
    if kind == WINDOW_POSITION and plan.ndim > KERNEL_AXES:
        return lambda x: max_pool_with_window_positions(x, plan, omit_nan)
    if (max_compute_dtype(dtype) != dtype or plan.ndim > KERNEL_AXES
            or (kind == NO_POSITION and is_large_window(geometry))):
        return lambda x: max_pool_planned(x, plan, kind, omit_nan)
    omit_nan = omit_nan and dtype.kind == "f"
    return prepared_row_walk(plan, x, MAX_OMIT_NAN if omit_nan else MAX,
                             max_identity(dtype, omit_nan),
                             positions=(None if kind == NO_POSITION
                                        else position_dtype(kind, plan.window_size)),
                             flat_index=kind == FLAT_INDEX)


def max_pool_backward(grad_output, indices, input_shape, kernel_size, stride, padding, dilation,
                       ceil_mode, axes, *, op, n=None):
    shape = check_shape(input_shape)
    plan = plan_pool(op, shape, kernel_size, stride, padding, dilation, ceil_mode, axes, n)
    return scatter_to_input(grad_output, indices, plan)


def max_pool_with_window_positions(x: np.ndarray, plan: PoolPlan, omit_nan: bool):
    """Values and window positions (the compact state a max layer keeps)."""
    if plan.ndim <= KERNEL_AXES:
        return max_pool_planned(x, plan, WINDOW_POSITION, omit_nan)
    out, flat = max_pool_planned(x, plan, FLAT_INDEX, omit_nan)
    return out, flat_to_window(flat, plan)


def max_backward_from_window(grad, positions: np.ndarray, plan: PoolPlan):
    """Gradient for a max layer from its stored window positions, prepared once per
    layout of the gradient and positions (a training loop's every backward is alike)."""
    if type(grad) is not np.ndarray:
        return _backward_from_window(grad, positions, plan)
    # a plan holds plain values, so its equality is exact: it may be part of the key
    call_key = ("max_backward_from_window", plan, layout(grad), layout(positions))
    return prepared(call_key, lambda: _prepare_backward(grad, positions, plan))(grad, positions)


def _prepare_backward(grad, positions: np.ndarray, plan: PoolPlan):
    """``(grad, positions) -> gradient`` for one plan and layout: arrays in place go
    straight to the kernel, the rest the general way."""
    grad = check_grad(grad, plan)  # refuses a wrong shape before anything is kept
    compute = gradient_dtypes(grad.dtype)[1]  # the result's dtype too, where in place
    if not (plan.ndim <= KERNEL_AXES and in_place(grad, plan, compute)
            and positions.flags.c_contiguous):
        return lambda grad, positions: _backward_from_window(grad, positions, plan)
    k, s, d, p, _, _ = as_kernel_args(window_geometry(plan))
    channels, in_rows, out_rows = plan_rows(plan)
    run = prepared_run(_max_kernels.max_pool_backward_window, in_rows[0],
                       math.prod(in_rows) + math.prod(out_rows), channels, k, s, d, p)

    def call(grad, positions):
        grad_in = np.empty(plan.in_shape, compute)
        run(grad.reshape(out_rows), positions.reshape(out_rows), grad_in.reshape(in_rows))
        return grad_in

    return call


def _backward_from_window(grad: np.ndarray, positions: np.ndarray, plan: PoolPlan):
    grad = check_grad(grad, plan)
    if plan.ndim > KERNEL_AXES:
        return scatter_flat(grad, window_to_flat(positions, plan), plan)
    result, compute = gradient_dtypes(grad.dtype)
    grad_in = new_input_like(plan, compute)
    k, s, d, p, _, _ = as_kernel_args(window_geometry(plan))
    grad = as_row_array(to_canonical(grad, plan, plan.out_lengths, compute))
    positions = as_row_array(to_canonical(positions, plan, plan.out_lengths, positions.dtype))
    run_planes(_max_kernels.max_pool_backward_window, grad, grad_in, grad, positions,
                as_row_array(grad_in), grad_in.shape[-1], k, s, d, p)
    return from_canonical(grad_in, plan, plan.lengths).astype(result, copy=False)
