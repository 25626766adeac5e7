"""Average pooling and its gradient (PyTorch's divisors, any number of axes)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .._dtypes import as_real_array, avg_dtypes, gradient_dtypes
from .._geometry import (
    PoolPlan,
    check_divisor,
    check_flag,
    check_grad,
    check_shape,
    plan_pool,
    window_start,
)
from .._kernels.avg import backward_kernel
from .._kernels.reductions import SUM
from .._layout import (
    KERNEL_AXES,
    LEADING,
    as_kernel_args,
    as_row_array,
    backward_in_two_stages,
    from_canonical,
    in_place,
    in_two_stages,
    plan_rows,
    read_only,
    run_planes,
    stage_geometry,
    to_canonical,
    window_geometry,
)
from .._parallel import prepared_run
from ._prepared import layout, prepared, prepared_for
from ._windows import forward_rows, is_large_window, pool_separably, prepared_row_walk


@lru_cache(maxsize=256)
def divisors(lengths, geometry, include_pad: bool, override: int):
    """Per-axis factors of every window's divisor, widened to three axes (PyTorch's rule).

    ``override`` replaces the divisor; else ``include_pad`` counts the taps
    inside the padded extent (explicit padding counts, the ``ceil_mode``
    overhang past it does not), and otherwise the taps inside the input.
    Kept per geometry (a training loop asks the same each step), so read-only.
    """
    kernel, stride, dilation, before, after, outs = geometry
    factors = []
    for length, k, s, d, pad, pad_after, n_out in zip(lengths, kernel, stride, dilation, before,
                                                      after, outs):
        if override:
            factors.append(np.ones(n_out))
            continue
        # a window holds k taps unless it starts before the input or ends past the last
        # tap counted: only those edge windows are worked out (a row may be 2**25 long)
        count = np.full(n_out, float(k))
        last_counted = length + pad_after - 1 if include_pad else length - 1
        first_right = max(0, (last_counted + pad - (k - 1) * d) // s + 1)
        edges = np.union1d(np.arange(min(-(-pad // s), n_out)), np.arange(first_right, n_out))
        start = window_start(edges, s, pad)
        count[edges] = np.minimum(k, (last_counted - start) // d + 1)
        if not include_pad:  # less the taps before the input
            count[edges] -= np.where(start >= 0, 0, (d - 1 - start) // d)
        factors.append(count)
    if override:
        factors[0] *= override
    missing = KERNEL_AXES - len(factors)
    return tuple(read_only(f) for f in (*(np.ones(1),) * missing, *factors))


def avg_canonical(x, geometry, include_pad: bool, override: int, accumulate=None, write=None):
    """Average-pool canonical ``x`` ``(B, *L, C)``; more than three axes go in two stages.

    Window sums are held in ``accumulate`` and divided into ``write`` (both
    ``x.dtype`` unless given; an integer ``write`` rounds half to even). The
    divisor is a product over axes (or the override), so the last three axes
    may be summed and divided first and the leading ones after.
    """
    accumulate = x.dtype if accumulate is None else accumulate
    write = x.dtype if write is None else write
    n = x.ndim - 2
    outs = geometry[5]
    # Summed one axis at a time, a window whose partial sums overflow can give NaN
    # (inf - inf) where a sum in PyTorch's row-major order gives inf; any non-finite
    # total (rare: one cheap sum finds it) is therefore summed again window by window.
    if is_large_window(geometry):
        factors = divisors(x.shape[1:-1], geometry, include_pad, override)[-n:]
        # divided as they are summed, where the sums are rounded as written
        in_pass = write == accumulate and write.kind == "f"
        sums, nonfinite = pool_separably(x, geometry, SUM, accumulate.type(0),
                                         factors if in_pass else None)
        if nonfinite is None:  # sums still
            with np.errstate(over="ignore", invalid="ignore"):  # the check's own sum
                finite = np.isfinite(sums.sum())
            if finite:
                return _divided(sums, factors, write)
        elif not nonfinite.any():  # means, all finite
            return sums
    if n > KERNEL_AXES:
        between = write if write.kind == "f" else np.dtype(np.float64)  # not rounded yet

        def stage(part, axes):
            last = axes is LEADING
            return avg_canonical(part, stage_geometry(geometry, axes), include_pad,
                                 _stage_override(override, axes), None if last else accumulate,
                                 write if last else between), None
        return in_two_stages(x, stage)[0]
    out = np.empty((x.shape[0], *outs, x.shape[-1]), write)
    forward_rows(x, out, None, geometry, SUM, accumulate.type(0),
                  divisors=divisors(x.shape[1:-1], geometry, include_pad, override))
    return out


def _stage_override(override: int, axes: slice) -> int:
    """A stage's divisor override: the whole one divides once, in the leading stage;
    the trailing stage then divides by 1 (0 would mean its windows' own counts)."""
    if axes is LEADING:
        return override
    return 1 if override else 0


def _divided(sums, factors, write):
    """Window sums ``(B, *O, C)`` divided once by their divisors (the products of the
    per-axis ``factors``, exact in float64), as ``write`` (an integer dtype: rounded half
    to even and clipped to its range, as the kernels store it)."""
    quotient = sums if sums.dtype.kind == "f" else sums.astype(np.float64)
    divisor = np.ones((1,) * quotient.ndim)
    for axis, factor in enumerate(factors):
        shape = [1] * quotient.ndim
        shape[axis + 1] = factor.size
        divisor = divisor * factor.reshape(shape)
    np.divide(quotient, divisor, out=quotient, casting="unsafe")
    if write.kind != "f":
        info = np.iinfo(write)
        np.clip(np.rint(quotient, out=quotient), info.min, info.max, out=quotient)
    return quotient.astype(write, copy=False)


def avg_backward_canonical(grad, lengths, geometry, include_pad: bool, override: int):
    """Adjoint of :func:`avg_canonical`: ``grad`` ``(B, *O, C)`` to ``(B, *lengths, C)``."""
    batch, channels = grad.shape[0], grad.shape[-1]
    if grad.ndim - 2 > KERNEL_AXES:
        return backward_in_two_stages(grad, lengths, lambda part, axes: avg_backward_canonical(
            part, lengths[axes], stage_geometry(geometry, axes), include_pad,
            _stage_override(override, axes)))
    grad_in = np.empty((batch, *lengths, channels), grad.dtype)
    k, s, d, p, _, _ = as_kernel_args(geometry)
    kernel = backward_kernel(channels, k, s, d, p, lengths[-1], grad.shape[-2])
    run_planes(kernel, grad, grad_in, as_row_array(grad), as_row_array(grad_in),
                channels, k, s, d, p, divisors(lengths, geometry, include_pad, override))
    return grad_in


def _refuse_nan(x, result: np.dtype) -> None:
    if np.isnan(x).any():
        raise ValueError(f"x holds NaN, which has no average in dtype={result}; "
                         "pool in a float dtype, or replace the NaN first")


def avg_pool_planned(x, plan: PoolPlan, include_pad: bool, override: int, dtype=None):
    dtypes = avg_dtypes(x.dtype, dtype, math.prod(plan.kernel))
    if dtypes.result.kind != "f" and x.dtype.kind == "f":
        _refuse_nan(x, dtypes.result)
    canonical = to_canonical(x, plan, plan.lengths, dtypes.read)
    out = avg_canonical(canonical, window_geometry(plan), include_pad, override,
                        dtypes.accumulate, dtypes.write)
    return from_canonical(out, plan, plan.out_lengths).astype(dtypes.result, copy=False)


def avg_backward_planned(grad, plan: PoolPlan, include_pad: bool, override: int):
    """The gradient of an average, prepared once per layout of the gradient (a training
    loop's every backward is alike; see max's ``max_backward_from_window``)."""
    if type(grad) is not np.ndarray:
        return _backward_planned(grad, plan, include_pad, override)
    call_key = ("avg_backward_planned", plan, include_pad, override, layout(grad))
    return prepared(call_key, lambda: _prepare_backward(grad, plan, include_pad, override))(grad)


def _prepare_backward(grad, plan: PoolPlan, include_pad: bool, override: int):
    """``grad -> gradient`` for one plan and layout: a gradient in place goes straight to
    the kernel, the rest the general way."""
    grad = check_grad(grad, plan)  # refuses a wrong shape before anything is kept
    compute = gradient_dtypes(grad.dtype)[1]  # the result's dtype too, where in place
    if not (plan.ndim <= KERNEL_AXES and in_place(grad, plan, compute)):
        return lambda grad: _backward_planned(grad, plan, include_pad, override)
    geometry = window_geometry(plan)
    k, s, d, p, _, _ = as_kernel_args(geometry)
    factors = divisors(plan.lengths, geometry, include_pad, override)
    channels, in_rows, out_rows = plan_rows(plan)
    kernel = backward_kernel(channels, k, s, d, p, plan.lengths[-1], plan.out_lengths[-1])
    run = prepared_run(kernel, in_rows[0], math.prod(in_rows) + math.prod(out_rows),
                       channels, k, s, d, p, factors)

    def call(grad):
        grad_in = np.empty(plan.in_shape, compute)
        run(grad.reshape(out_rows), grad_in.reshape(in_rows))
        return grad_in

    return call


def _backward_planned(grad, plan: PoolPlan, include_pad: bool, override: int):
    grad = check_grad(grad, plan)
    result, compute = gradient_dtypes(grad.dtype)
    canonical = to_canonical(grad, plan, plan.out_lengths, compute)
    grad_in = avg_backward_canonical(canonical, plan.lengths, window_geometry(plan),
                                      include_pad, override)
    return from_canonical(grad_in, plan, plan.lengths).astype(result, copy=False)


def avg_pool(x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad,
              divisor_override, axes, dtype, *, op, n=None):
    x = as_real_array(x, "x")
    geometry = (kernel_size, stride, padding, dilation, ceil_mode, axes)

    def prepare():  # the checks too: a repeated call skips them with the rest
        include_pad = check_flag("count_include_pad", count_include_pad)
        override = check_divisor(divisor_override)
        return avg_pool_call(x, geometry, include_pad, override, dtype, op, n)[1]

    return prepared_for(x, ("avg_pool", op, n),
                        (geometry, count_include_pad, divisor_override, dtype), prepare)(x)


def avg_pool_call(x: np.ndarray, geometry: tuple, include_pad: bool, override: int, dtype,
                  op: str, n=None):
    """``(plan, call)``: average pooling of inputs laid out as ``x`` with the arguments
    ``geometry`` (kernel_size to axes, as given), ``call(x) -> averages``, prepared once
    per layout and arguments (see :mod:`._prepared`)."""

    def prepare():
        plan = plan_pool(op, x.shape, *geometry, n)
        return plan, _prepare(plan, x, include_pad, override, dtype)

    return prepared_for(x, ("avg", op, n), (geometry, include_pad, override, dtype), prepare)


def _prepare(plan: PoolPlan, x: np.ndarray, include_pad: bool, override: int, dtype):
    """``x -> averages`` for one plan and inputs laid out as ``x``: the row walk of up to
    three axes over input in the dtype it is read in is prepared (see
    :func:`prepared_row_walk`); the rest goes the general way."""
    dtypes = avg_dtypes(x.dtype, dtype, plan.window_size)  # refuses a bad dtype: nothing kept
    geometry = window_geometry(plan)
    if (plan.ndim > KERNEL_AXES or is_large_window(geometry) or dtypes.read != x.dtype
            or dtypes.write != dtypes.result):
        return lambda x: avg_pool_planned(x, plan, include_pad, override, dtype)
    walk = prepared_row_walk(plan, x, SUM, dtypes.accumulate.type(0), write=dtypes.write,
                             divisors=divisors(plan.lengths, geometry, include_pad, override))
    if dtypes.result.kind != "f" and x.dtype.kind == "f":
        def call(x):
            _refuse_nan(x, dtypes.result)
            return walk(x)[0]
        return call
    return lambda x: walk(x)[0]


def avg_pool_backward(grad_output, input_shape, kernel_size, stride, padding, dilation,
                       ceil_mode, count_include_pad, divisor_override, axes, *, op, n=None):
    shape = check_shape(input_shape)
    include_pad = check_flag("count_include_pad", count_include_pad)
    override = check_divisor(divisor_override)
    plan = plan_pool(op, shape, kernel_size, stride, padding, dilation, ceil_mode, axes, n)
    return avg_backward_planned(grad_output, plan, include_pad, override)
