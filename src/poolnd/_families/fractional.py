"""Fractional max pooling (Graham, 2014; PyTorch's ``fractional_max_pool``) and its gradient.

Each pooled axis of each plane gets one sample ``u`` in ``[0, 1)``; from it
PyTorch's sequence gives the start of every window (``_geometry.fractional_starts``),
and every window is ``kernel_size`` long. Given the same samples, values and
indices equal PyTorch's bit for bit. The maxima follow max pooling's rules:
ties go to the first maximum in row-major window order, NaN wins.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _parallel
from .._dtypes import as_real_array, gradient_dtypes, max_compute_dtype
from .._geometry import (
    FractionalPlan,
    check_flag,
    check_grad,
    check_samples,
    check_shape,
    fractional_starts,
    plan_fractional,
)
from .._kernels import fractional as _fractional_kernels
from .._layout import (
    KERNEL_AXES,
    TRAILING,
    as_kernel_array,
    from_canonical,
    in_two_stages,
    max_results_back,
    new_input_like,
    run_planes,
    to_canonical,
)
from .._positions import (
    FLAT_INDEX,
    NO_POSITION,
    position_dtype,
    scatter_to_input,
)

# --------------------------------------------------------------------------- samples


def _sample_dtype(dtype: np.dtype) -> np.dtype:
    """The float type the sequence is computed in: PyTorch uses the input's; ints use float64."""
    return dtype.newbyteorder("=") if dtype.kind == "f" else np.dtype(np.float64)


def fractional_samples(plan: FractionalPlan, dtype: np.dtype, samples, rng) -> np.ndarray:
    """``(planes, N)`` samples in ``dtype``: the given ones, or drawn from ``rng``."""
    real = _sample_dtype(dtype)
    planes = math.prod(plan.batch_shape)
    if samples is not None:
        if rng is not None:
            raise ValueError("give samples or rng, not both")
        given = check_samples(samples, plan.batch_shape, plan.ndim)
        return given.reshape(planes, plan.ndim).astype(real)
    try:
        generator = np.random.default_rng(rng)
    except (TypeError, ValueError):
        raise TypeError(
            f"rng must be a numpy Generator, a seed or None, got {rng!r}"
        ) from None
    drawn = generator.random((planes, plan.ndim)).astype(real)
    # rounding to a narrower float may reach 1: keep every sample below it
    return np.minimum(drawn, np.nextafter(real.type(1), real.type(0)))


def _starts(plan: FractionalPlan, samples: np.ndarray) -> list[np.ndarray]:
    """Per pooled axis, every window's start as ``(B, C, out)`` (the kernels' planes)."""
    planes, channels = math.prod(plan.outer_shape), math.prod(plan.inner_shape)
    return [s.reshape(planes, channels, out)
            for s, out in zip(fractional_starts(samples, plan), plan.out_lengths)]


def _as_kernel_starts(starts, kernel):
    """Starts and kernel widened to three axes: unit windows at 0 on the missing ones."""
    planes, channels = starts[0].shape[:2]
    missing = KERNEL_AXES - len(starts)
    unit = np.zeros((planes, channels, 1), np.int64)
    return (unit,) * missing + tuple(starts), (1,) * missing + tuple(kernel)


# --------------------------------------------------------------------------- pooling


def _fractional_canonical(x: np.ndarray, starts, kernel, kind: int):
    """Pool canonical ``x`` ``(B, *L, C)``; returns values and positions of ``kind``.

    More than three pooled axes go in two stages, the last three first, as in
    max pooling: the first maximum of a window in row-major order is the first
    maximum over the leading axes of the first maxima over the rest (NaN
    rules alike). Positions are then flat indices.
    """
    batch, channels = x.shape[0], x.shape[-1]
    if len(kernel) > KERNEL_AXES:
        def stage(part, axes):
            # trailing: plane (b, l) of leading position l uses plane b's starts;
            # leading: channel t*C + c (trailing output t) uses channel c's starts
            if axes is TRAILING:
                part_starts = [np.repeat(s, part.shape[0] // batch, axis=0) for s in starts[axes]]
            else:
                part_starts = [np.tile(s, (1, part.shape[-1] // channels, 1))
                               for s in starts[axes]]
            return _fractional_canonical(part, part_starts, kernel[axes], kind)
        return in_two_stages(x, stage)
    outs = tuple(s.shape[2] for s in starts)
    out = np.empty((batch, *outs, channels), x.dtype)
    positions = None
    if kind != NO_POSITION:
        positions = np.empty(out.shape, position_dtype(kind, math.prod(kernel)))
    (starts_d, starts_h, starts_w), k3 = _as_kernel_starts(starts, kernel)
    rows_out = as_kernel_array(out)
    n_rows = rows_out.shape[0] * rows_out.shape[1] * rows_out.shape[2]
    _parallel.run_in_threads(
        _fractional_kernels.fractional_max_pool, n_rows, x.size + out.size, as_kernel_array(x),
        rows_out, rows_out if positions is None else as_kernel_array(positions),
        starts_d, starts_h, starts_w, k3, positions is not None, kind == FLAT_INDEX)
    return out, positions


def fractional_planned(x: np.ndarray, plan: FractionalPlan, samples: np.ndarray, kind: int):
    """Values, positions of ``kind`` (input's axis order) and the kernels' starts."""
    starts = _starts(plan, samples)
    canonical = to_canonical(x, plan, plan.lengths, max_compute_dtype(x.dtype))
    out, positions = _fractional_canonical(canonical, starts, plan.kernel, kind)
    return (*max_results_back(out, positions, plan, x.dtype), starts)


def fractional_max_pool(x, kernel_size, output_size, output_ratio, axes, return_indices,
                         samples, rng, *, op, n=None):
    x = as_real_array(x, "x")
    return_indices = check_flag("return_indices", return_indices)
    plan = plan_fractional(op, x.shape, kernel_size, output_size, output_ratio, axes, n)
    kind = FLAT_INDEX if return_indices else NO_POSITION
    samples = fractional_samples(plan, x.dtype, samples, rng)
    out, indices, _ = fractional_planned(x, plan, samples, kind)
    return (out, indices) if return_indices else out






def fractional_max_pool_backward(grad_output, indices, input_shape, kernel_size, output_size,
                                  output_ratio, axes, *, op, n=None):
    shape = check_shape(input_shape)
    plan = plan_fractional(op, shape, kernel_size, output_size, output_ratio, axes, n)
    return scatter_to_input(grad_output, indices, plan)


# --------------------------------------------------------------------------- layer state


def fractional_backward_window(grad, positions, starts, plan: FractionalPlan) -> np.ndarray:
    """Gradient for a layer from its window positions and starts (up to three axes)."""
    grad = check_grad(grad, plan)
    result, compute = gradient_dtypes(grad.dtype)
    grad_in = new_input_like(plan, compute)
    grad = as_kernel_array(to_canonical(grad, plan, plan.out_lengths, compute))
    positions = as_kernel_array(to_canonical(positions, plan, plan.out_lengths,
                                               positions.dtype))
    (starts_d, starts_h, starts_w), k3 = _as_kernel_starts(starts, plan.kernel)
    run_planes(_fractional_kernels.fractional_max_pool_backward_window, grad, grad_in, grad,
                positions, starts_d, starts_h, starts_w, as_kernel_array(grad_in), k3)
    return from_canonical(grad_in, plan, plan.lengths).astype(result, copy=False)


# --------------------------------------------------------------------------- 2d/3d names




