"""Adaptive max and average pooling: the output size is given, PyTorch picks the windows.

Window ``i`` of an axis of length ``L`` pooled to ``O`` outputs covers
``(i*L)//O`` up to ``ceil((i+1)*L/O)`` (excluded), see
:func:`poolnd._geometry.plan_adaptive`. As in :mod:`poolnd.functional`,
every op plans (all checks), brings its input into the kernels' layout
``(B, *L, C)``, runs a kernel and reshapes the result back. More than three
pooled axes are pooled in two stages, the last three axes first: windows are
products of per-axis intervals, so the maximum (first maximum, NaN rules and
all) and the mean come out the same.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import _parallel
from .._dtypes import as_real_array, float_result_dtypes, gradient_dtypes, max_compute_dtype
from .._geometry import (
    NAN_POLICIES,
    AdaptivePlan,
    check_choice,
    check_flag,
    check_grad,
    check_shape,
    plan_adaptive,
)
from .._kernels import adaptive as _kernels
from .._layout import (
    KERNEL_AXES,
    LEADING,
    TRAILING,
    as_row_array,
    backward_in_two_stages,
    from_canonical,
    in_two_stages,
    max_results_back,
    new_input_like,
    run_planes,
    run_rows,
    to_canonical,
)
from .._positions import (
    FLAT_INDEX,
    NO_POSITION,
    WINDOW_POSITION,
    position_dtype,
    scatter_flat,
    scatter_to_input,
)

# --------------------------------------------------------------------------- helpers


def _bounds(starts, ends):
    """Window bounds for the kernels: three int64 arrays each, unit windows in front."""
    missing = KERNEL_AXES - len(starts)
    starts = ((0,),) * missing + tuple(starts)
    ends = ((1,),) * missing + tuple(ends)
    return (tuple(np.array(s, np.int64) for s in starts),
            tuple(np.array(e, np.int64) for e in ends))


def _out_lengths(starts):
    return tuple(len(s) for s in starts)


def _shifts(starts, ends):
    """Where each pooled axis's offset sits in a window position, and the bits in all.

    A max layer keeps each maximum's offsets inside its window as bit fields,
    the last axis lowest: ``t0 << shifts[0] | t1 << shifts[1] | ...``. Each
    field is just wide enough for the axis's widest window, so an 8 x 8 window
    takes six bits, and the fields come apart with shifts and masks.
    """
    bits = [(int(np.max(np.subtract(es, ss))) - 1).bit_length()
            for ss, es in zip(starts, ends)]
    return tuple(sum(bits[a + 1:]) for a in range(len(bits))), sum(bits)


def _kernel_shifts(starts, ends):
    """``shifts[0]``, ``shifts[1]`` of the kernels' three axes (unit axes in front, whose
    fields are empty: they start where the whole position ends)."""
    shifts, bits = _shifts(starts, ends)
    return ((bits,) * (KERNEL_AXES - len(shifts)) + shifts)[:2]


def _window_position_dtype(starts, ends):
    return position_dtype(WINDOW_POSITION, 1 << _shifts(starts, ends)[1])


# --------------------------------------------------------------------------- max pooling


def _max_canonical(x, starts, ends, kind: int, omit_nan: bool):
    """Adaptive max pooling of canonical ``x`` ``(B, *L, C)``: values and positions."""
    if len(starts) > KERNEL_AXES:  # positions are flat indices here
        return in_two_stages(x, lambda part, axes: _max_canonical(
            part, starts[axes], ends[axes], kind, omit_nan))
    out = np.empty((x.shape[0], *_out_lengths(starts), x.shape[-1]), x.dtype)
    channels, bounds, shifts = x.shape[-1], _bounds(starts, ends), _kernel_shifts(starts, ends)
    if kind == NO_POSITION:
        run_rows(_kernels.adaptive_max_values, as_row_array(x), as_row_array(out), channels,
                  *bounds, omit_nan, shifts)
        return out, None
    flat = kind == FLAT_INDEX
    positions = np.empty(out.shape, np.int64 if flat else _window_position_dtype(starts, ends))
    run_rows(_kernels.adaptive_max_positions, as_row_array(x), as_row_array(out),
              as_row_array(positions), channels, *bounds, omit_nan, flat, shifts)
    return out, positions


def adaptive_max_planned(x: np.ndarray, plan: AdaptivePlan, kind: int, omit_nan: bool):
    """Values and positions of ``kind`` for a checked input, in the input's axis order."""
    canonical = to_canonical(x, plan, plan.lengths, max_compute_dtype(x.dtype))
    if kind == WINDOW_POSITION and plan.ndim > KERNEL_AXES:
        out, flat = _max_canonical(canonical, plan.starts, plan.ends, FLAT_INDEX, omit_nan)
        positions = _flat_to_adaptive_window(flat, plan)
    else:
        out, positions = _max_canonical(canonical, plan.starts, plan.ends, kind, omit_nan)
    return max_results_back(out, positions, plan, x.dtype)


def _starts_grid(plan: AdaptivePlan, ndim: int):
    """Per pooled axis, the window starts along axis ``1 + a`` of ``(B, *O, C)``."""
    for a, starts in enumerate(plan.starts):
        shape = [1] * ndim
        shape[1 + a] = -1
        yield np.array(starts).reshape(shape)


def _flat_to_adaptive_window(flat: np.ndarray, plan: AdaptivePlan) -> np.ndarray:
    """Canonical flat indices as window positions (bit fields, see :func:`_shifts`)."""
    shifts, _ = _shifts(plan.starts, plan.ends)
    taps = np.zeros(flat.shape, np.int64)
    per_axis = np.unravel_index(flat, plan.lengths)
    for position, start, shift in zip(per_axis, _starts_grid(plan, flat.ndim), shifts):
        taps |= (position - start) << shift
    return taps.astype(_window_position_dtype(plan.starts, plan.ends))


def _adaptive_window_to_flat(taps: np.ndarray, plan: AdaptivePlan) -> np.ndarray:
    """Undo :func:`_flat_to_adaptive_window` (canonical layout)."""
    shifts, bits = _shifts(plan.starts, plan.ends)
    taps = taps.astype(np.int64)
    flat = np.zeros(taps.shape, np.int64)
    for start, shift, length, end in zip(_starts_grid(plan, taps.ndim), shifts, plan.lengths,
                                         (bits, *shifts)):
        flat = flat * length + start + ((taps >> shift) & ((1 << (end - shift)) - 1))
    return flat


def adaptive_max_backward_window(grad_output, positions: np.ndarray, plan: AdaptivePlan):
    """Gradient for a max layer from its stored window positions."""
    grad = check_grad(grad_output, plan)
    result, compute = gradient_dtypes(grad.dtype)
    canonical_positions = to_canonical(positions, plan, plan.out_lengths, positions.dtype)
    if plan.ndim > KERNEL_AXES:
        flat = from_canonical(_adaptive_window_to_flat(canonical_positions, plan), plan,
                               plan.out_lengths)
        return scatter_flat(grad, flat, plan)
    grad = to_canonical(grad, plan, plan.out_lengths, compute)
    grad_in = new_input_like(plan, compute)
    starts, _ = _bounds(plan.starts, plan.ends)
    run_planes(_kernels.adaptive_max_backward_window, grad, grad_in, as_row_array(grad),
                as_row_array(canonical_positions), as_row_array(grad_in),
                grad.shape[-1], starts, _kernel_shifts(plan.starts, plan.ends))
    return from_canonical(grad_in, plan, plan.lengths).astype(result, copy=False)


def adaptive_max_pool(x, output_size, axes, return_indices, nan_policy, *, op, n=None):
    x = as_real_array(x, "x")
    return_indices = check_flag("return_indices", return_indices)
    check_choice("nan_policy", nan_policy, NAN_POLICIES)
    plan = plan_adaptive(op, x.shape, output_size, axes, n)
    kind = FLAT_INDEX if return_indices else NO_POSITION
    out, indices = adaptive_max_planned(x, plan, kind, nan_policy == "omit")
    return (out, indices) if return_indices else out


def adaptive_max_piece(x, axes, starts, ends, return_indices, nan_policy, *, op):
    """Adaptive max pooling of ``x``, a piece of a larger call's input, with that call's
    windows: per pooled axis (in the order of ``axes``) their ``starts`` and ``ends``
    within the piece. Indices are flat within the piece's pooled axes. Every window's
    maximum depends on its taps alone, so it is the whole call's. For the Dask backend;
    trusts its arguments.
    """
    plan = _piece_plan(op, x.shape, axes, starts, ends)
    kind = FLAT_INDEX if return_indices else NO_POSITION
    out, indices = adaptive_max_planned(x, plan, kind, nan_policy == "omit")
    return (out, indices) if return_indices else out


def _piece_plan(op, shape, axes, starts, ends) -> AdaptivePlan:
    """The plan of pooling ``shape`` over ``axes`` with the given windows (int64 arrays)."""
    plan = plan_adaptive(op, shape, tuple(len(s) for s in starts), axes)
    return dataclasses.replace(plan, starts=tuple(np.asarray(s, np.int64) for s in starts),
                               ends=tuple(np.asarray(e, np.int64) for e in ends))






def adaptive_max_pool_backward(grad_output, indices, input_shape, output_size, axes, *, op,
                                n=None):
    plan = plan_adaptive(op, check_shape(input_shape), output_size, axes, n)
    return scatter_to_input(grad_output, indices, plan)


# --------------------------------------------------------------------------- average pooling


def _avg_canonical(x, starts, ends, whole=None):
    """Adaptive mean of canonical ``x`` ``(B, *L, C)``; a mean of means over a product
    window is its mean, so more than three axes go in two stages.

    ``whole``: when ``x`` is a piece of a larger call (the Dask backend), that
    call's ``(out_lengths, C)``. Its shape, not the piece's, picks the stages
    and the kernels, which sum in different orders: so a piece's means are
    those of the whole call, bit for bit.
    """
    out_lengths, whole_channels = whole or (_out_lengths(starts), x.shape[-1])
    is_global = all(o == 1 for o in out_lengths)
    if len(starts) > KERNEL_AXES and not is_global:
        def stage(part, axes):
            # the leading stage's inner batch axis is the trailing outputs by channels
            channels = whole_channels
            if axes is LEADING:
                channels *= math.prod(out_lengths[TRAILING])
            return _avg_canonical(part, starts[axes], ends[axes],
                                  (out_lengths[axes], channels)), None
        return in_two_stages(x, stage)[0]
    batch, channels = x.shape[0], x.shape[-1]
    if is_global and channels == 1 < whole_channels:
        # the whole call sums channel by channel, not in blocks as one channel alone would
        # be: a zero channel beside this one keeps it on that path
        two = np.concatenate([x, np.zeros_like(x)], axis=-1)
        return _avg_canonical(two, starts, ends, whole)[..., :1]
    out = np.empty((batch, *_out_lengths(starts), channels), x.dtype)
    if is_global:  # global pooling: one window, the whole plane
        planes = x.reshape(batch, math.prod(x.shape[1:]))
        _parallel.run_in_threads(_kernels.adaptive_avg_global, batch, x.size, planes,
                                 out.reshape(batch, channels), channels)
        return out
    run_rows(_kernels.adaptive_avg_forward, as_row_array(x), as_row_array(out), channels,
              *_bounds(starts, ends))
    return out


def _avg_backward_canonical(grad, lengths, starts, ends):
    """Adjoint of :func:`_avg_canonical`: ``grad`` ``(B, *O, C)`` to ``(B, *lengths, C)``."""
    batch, channels = grad.shape[0], grad.shape[-1]
    if len(starts) > KERNEL_AXES:
        return backward_in_two_stages(grad, lengths, lambda part, axes: _avg_backward_canonical(
            part, lengths[axes], starts[axes], ends[axes]))
    grad_in = np.empty((batch, *lengths, channels), grad.dtype)  # zeroed by the kernel
    run_planes(_kernels.adaptive_avg_backward, grad, grad_in, as_row_array(grad),
                as_row_array(grad_in), channels, *_bounds(starts, ends))
    return grad_in


def adaptive_avg_planned(x: np.ndarray, plan: AdaptivePlan) -> np.ndarray:
    result, compute = float_result_dtypes(x.dtype)
    canonical = to_canonical(x, plan, plan.lengths, compute)
    out = _avg_canonical(canonical, plan.starts, plan.ends)
    return from_canonical(out, plan, plan.out_lengths).astype(result, copy=False)


def adaptive_avg_backward_planned(grad_output, plan: AdaptivePlan) -> np.ndarray:
    grad = check_grad(grad_output, plan)
    result, compute = gradient_dtypes(grad.dtype)
    canonical = to_canonical(grad, plan, plan.out_lengths, compute)
    grad_in = _avg_backward_canonical(canonical, plan.lengths, plan.starts, plan.ends)
    return from_canonical(grad_in, plan, plan.lengths).astype(result, copy=False)


def adaptive_avg_pool(x, output_size, axes, *, op, n=None):
    x = as_real_array(x, "x")
    return adaptive_avg_planned(x, plan_adaptive(op, x.shape, output_size, axes, n))


def adaptive_avg_piece(x, axes, starts, ends, whole_out_lengths, whole_channels, *, op):
    """Adaptive average pooling of ``x``, a piece of a larger call's input, with that
    call's windows: per pooled axis (in the order of ``axes``) their ``starts`` and
    ``ends`` within the piece, and the call's output lengths and inner batch size
    (the product of the batch axes after the pooled ones): see :func:`_avg_canonical`.
    Each mean is the whole call's, bit for bit. For the Dask backend; trusts its arguments.
    """
    plan = _piece_plan(op, x.shape, axes, starts, ends)
    result, compute = float_result_dtypes(x.dtype)
    canonical = to_canonical(x, plan, plan.lengths, compute)
    out = _avg_canonical(canonical, plan.starts, plan.ends, (whole_out_lengths, whole_channels))
    return from_canonical(out, plan, plan.out_lengths).astype(result, copy=False)






def adaptive_avg_pool_backward(grad_output, input_shape, output_size, axes, *, op, n=None):
    plan = plan_adaptive(op, check_shape(input_shape), output_size, axes, n)
    return adaptive_avg_backward_planned(grad_output, plan)


# --------------------------------------------------------------------------- 1d/2d/3d names






