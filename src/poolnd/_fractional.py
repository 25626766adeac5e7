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

from . import _parallel
from ._geometry import (
    FractionalPlan,
    check_flag,
    check_samples,
    fractional_starts,
    plan_fractional,
)
from ._kernels import fractional as _fractional_kernels
from .functional import (
    FLAT_INDEX,
    NO_POSITION,
    _as_kernel_array,
    _as_real_array,
    _check_flat_indices,
    _check_grad,
    _check_shape,
    _compute_dtype,
    _float_dtype,
    _from_canonical,
    _new_input_like,
    _position_dtype,
    _pytorch_named,
    _run_planes,
    _scatter_flat,
    _to_canonical,
)

__all__ = [
    "fractional_max_pool",
    "fractional_max_pool2d",
    "fractional_max_pool3d",
    "fractional_max_pool_backward",
]

_KERNEL_AXES = 3  # the kernels pool three axes; fewer arrive as unit axes


# --------------------------------------------------------------------------- samples


def _sample_dtype(dtype: np.dtype) -> np.dtype:
    """The float type the sequence is computed in: PyTorch uses the input's; ints use float64."""
    return dtype.newbyteorder("=") if dtype.kind == "f" else np.dtype(np.float64)


def _samples(plan: FractionalPlan, dtype: np.dtype, samples, rng) -> np.ndarray:
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
    missing = _KERNEL_AXES - len(starts)
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
    if len(kernel) > _KERNEL_AXES:
        return _in_two_stages(x, starts, kernel, kind)
    batch, channels = x.shape[0], x.shape[-1]
    outs = tuple(s.shape[2] for s in starts)
    out = np.empty((batch, *outs, channels), x.dtype)
    positions = None
    if kind != NO_POSITION:
        positions = np.empty(out.shape, _position_dtype(kind, math.prod(kernel)))
    (starts_d, starts_h, starts_w), k3 = _as_kernel_starts(starts, kernel)
    rows_out = _as_kernel_array(out)
    n_rows = rows_out.shape[0] * rows_out.shape[1] * rows_out.shape[2]
    _parallel.run(_fractional_kernels.fractional_max_pool, n_rows, x.size + out.size,
                  _as_kernel_array(x), rows_out,
                  rows_out if positions is None else _as_kernel_array(positions),
                  starts_d, starts_h, starts_w, k3, positions is not None, kind == FLAT_INDEX)
    return out, positions


def _in_two_stages(x, starts, kernel, kind):
    lead = len(kernel) - _KERNEL_AXES
    batch, lengths, channels = x.shape[0], x.shape[1:-1], x.shape[-1]
    lead_size, tail_size = math.prod(lengths[:lead]), math.prod(lengths[lead:])
    # stage one: plane (b, l) of the leading positions l uses plane b's starts
    tail_starts = [np.repeat(s, lead_size, axis=0) for s in starts[lead:]]
    tail_out, tail_index = _fractional_canonical(
        x.reshape(batch * lead_size, *lengths[lead:], channels), tail_starts, kernel[lead:], kind
    )
    outs = tuple(s.shape[2] for s in starts)
    inner = math.prod(outs[lead:]) * channels
    # stage two: channel t*C + c (tail output t) uses channel c's starts
    lead_starts = [np.tile(s, (1, inner // channels, 1)) for s in starts[:lead]]
    out, lead_index = _fractional_canonical(
        tail_out.reshape(batch, *lengths[:lead], inner), lead_starts, kernel[:lead], kind
    )
    out = out.reshape(batch, *outs, channels)
    if kind == NO_POSITION:
        return out, None
    lead_index = lead_index.reshape(batch, -1, inner)
    chosen = np.take_along_axis(tail_index.reshape(batch, lead_size, inner), lead_index, axis=1)
    return out, (lead_index * tail_size + chosen).reshape(out.shape)


def _fractional_planned(x: np.ndarray, plan: FractionalPlan, samples: np.ndarray, kind: int):
    """Values, positions of ``kind`` (input's axis order) and the kernels' starts."""
    compute = _compute_dtype(x.dtype)
    if x.dtype == np.bool_:
        compute = np.dtype(np.uint8)  # numba compares bools as small ints
    starts = _starts(plan, samples)
    canonical = _to_canonical(x, plan, plan.lengths, compute)
    out, positions = _fractional_canonical(canonical, starts, plan.kernel, kind)
    out = _from_canonical(out, plan, plan.out_lengths).astype(x.dtype, copy=False)
    if positions is not None:
        positions = _from_canonical(positions, plan, plan.out_lengths)
    return out, positions, starts


def _fractional_max_pool(x, kernel_size, output_size, output_ratio, axes, return_indices,
                         samples, rng, *, op, n=None):
    x = _as_real_array(x, "x")
    return_indices = check_flag("return_indices", return_indices)
    plan = plan_fractional(op, x.shape, kernel_size, output_size, output_ratio, axes, n)
    kind = FLAT_INDEX if return_indices else NO_POSITION
    out, indices, _ = _fractional_planned(x, plan, _samples(plan, x.dtype, samples, rng), kind)
    return (out, indices) if return_indices else out


def fractional_max_pool(x, kernel_size, output_size=None, output_ratio=None, *, axes=None,
                        return_indices=False, samples=None, rng=None):
    """Fractional max pooling over N axes: windows of ``kernel_size`` at pseudo-random starts.

    >>> import numpy as np, poolnd
    >>> x = np.arange(25.0).reshape(5, 5)
    >>> poolnd.fractional_max_pool(x, (2, 2), output_size=(2, 3), samples=[0.5, 0.25])
    array([[ 6.,  7.,  9.],
           [21., 22., 24.]])

    Parameters
    ----------
    x : array_like
        Input; any real dtype (the output has the same dtype).
    kernel_size : int or tuple of int
        Window length per pooled axis.
    output_size : int or tuple of int, optional
        Output length per pooled axis; each needs ``output + kernel_size - 1 <= L``.
    output_ratio : float or tuple of float, optional
        Instead of ``output_size``: each in ``(0, 1)``, the length is ``int(L * ratio)``.
    axes : tuple of int, optional
        The pooled axes, in order; default the last N.
    return_indices : bool
        Also return int64 flat indices within the pooled axes (PyTorch's format).
    samples : array_like, optional
        One number in ``[0, 1)`` per plane and pooled axis, shaped (or broadcastable
        to) the batch axes in the input's order, then N: ``(B, C, N)`` for an
        ``(B, C, H, W)`` input. ``samples[..., i]`` belongs to pooled axis ``i``.
        PyTorch's ``_random_samples`` for 3-d are in this order; for 2-d PyTorch
        orders them ``(W, H)``, so pass ``_random_samples[..., ::-1]``. The sequence is
        computed in the input's float dtype (float64 for integers), as PyTorch does.
    rng : numpy.random.Generator or int, optional
        Where samples are drawn from when none are given (default: fresh entropy).
    """
    return _fractional_max_pool(x, kernel_size, output_size, output_ratio, axes, return_indices,
                                samples, rng, op="fractional_max_pool")


def fractional_max_pool_backward(grad_output, indices, input_shape, kernel_size,
                                 output_size=None, output_ratio=None, *, axes=None):
    """Gradient of :func:`fractional_max_pool`: each output's gradient is added to the
    input element its index names.

    >>> import numpy as np, poolnd
    >>> poolnd.fractional_max_pool_backward(np.ones((1, 2)), [[1, 2]], (1, 4), (2,),
    ...                                     output_size=2)
    array([[0., 1., 1., 0.]])
    """
    return _fractional_max_pool_backward(grad_output, indices, input_shape, kernel_size,
                                         output_size, output_ratio, axes,
                                         op="fractional_max_pool_backward")


def _fractional_max_pool_backward(grad_output, indices, input_shape, kernel_size, output_size,
                                  output_ratio, axes, *, op, n=None):
    shape = _check_shape(input_shape)
    plan = plan_fractional(op, shape, kernel_size, output_size, output_ratio, axes, n)
    grad = _check_grad(grad_output, plan)
    return _scatter_flat(grad, _check_flat_indices(indices, plan), plan)


# --------------------------------------------------------------------------- layer state


def _fractional_backward_window(grad, positions, starts, plan: FractionalPlan) -> np.ndarray:
    """Gradient for a layer from its window positions and starts (up to three axes)."""
    grad = _check_grad(grad, plan)
    result = _float_dtype(grad.dtype)
    compute = _compute_dtype(result)
    grad_in = _new_input_like(plan, compute)
    grad = _as_kernel_array(_to_canonical(grad, plan, plan.out_lengths, compute))
    positions = _as_kernel_array(_to_canonical(positions, plan, plan.out_lengths,
                                               positions.dtype))
    (starts_d, starts_h, starts_w), k3 = _as_kernel_starts(starts, plan.kernel)
    _run_planes(_fractional_kernels.fractional_max_pool_backward_window, grad, grad_in, grad,
                positions, starts_d, starts_h, starts_w, _as_kernel_array(grad_in), k3)
    return _from_canonical(grad_in, plan, plan.lengths).astype(result, copy=False)


# --------------------------------------------------------------------------- 2d/3d names


def _fractional_fixed(n: int):
    name = f"fractional_max_pool{n}d"

    def pool(x, kernel_size, output_size=None, output_ratio=None, return_indices=False, *,
             axes=None, samples=None, rng=None):
        return _fractional_max_pool(x, kernel_size, output_size, output_ratio, axes,
                                    return_indices, samples, rng, op=name, n=n)

    return _pytorch_named(pool, name, n, "Fractional max pooling", "fractional_max_pool",
                          "; ``samples`` are in the pooled axes' order")


fractional_max_pool2d, fractional_max_pool3d = (_fractional_fixed(n) for n in (2, 3))
