"""LP pooling: ``(sum over each window of x**p) ** (1/p)``, and its gradient.

Built on average pooling, as PyTorch builds it: ``s = avg_pool(x**p) * K``
(``K`` the kernel's size), then ``s ** (1/p)``. Where a ``ceil_mode`` window
overhangs the input's end, the average divides by the taps inside, so ``s``
is that window's sum scaled by ``K / taps`` (PyTorch's result, kept).
No absolute value is taken, again as in PyTorch: see :func:`lp_pool`.
``norm_type=inf`` is max pooling of ``|x|``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _parallel
from .._dtypes import as_real_array, float_result_dtypes, gradient_dtypes
from .._geometry import PoolPlan, check_grad, check_norm_type, plan_pool
from .._kernels import lp as _lp_kernels
from .._layout import from_canonical, to_canonical, window_geometry
from .._positions import (
    FLAT_INDEX,
    NO_POSITION,
    WINDOW_POSITION,
    flat_to_window,
    gather_flat,
    scatter_flat,
)
from .avg import avg_backward_canonical, avg_canonical
from .max import max_backward_from_window, max_pool_planned

# --------------------------------------------------------------------------- element-wise steps


def _elementwise(kernel, arrays, q, *scalars):
    """``kernel(*flat arrays, *scalars, q, shortcut)`` of ``_kernels.lp``, on the threads."""
    flat = [a.reshape(-1) for a in arrays]
    size = flat[0].size
    _parallel.run_in_threads(kernel, size, 2 * size, *flat, *scalars, q, _lp_kernels.how(q))


def plan_lp(op, shape, kernel_size, stride, ceil_mode, axes, n):
    return plan_pool(op, shape, kernel_size, stride, 0, 1, ceil_mode, axes, n)


def _lp_canonical(x: np.ndarray, plan: PoolPlan, p: float, result: np.dtype):
    """``(avg, out)`` for canonical ``x``: the average of ``x**p`` per window and the result.

    Exponents are cast to ``x``'s dtype first, as PyTorch casts them. A ``result``
    narrower than ``x`` (float16, computed in float32) is rounded to after each of
    PyTorch's steps, ``x**p``, the average, ``* K`` and the root, as PyTorch's half
    ops round: ``300**2`` is inf and ``(-1e-7)**3`` zero, as there.
    """
    narrow = result.itemsize < x.dtype.itemsize

    def real(exponent):  # cast to the result's dtype, as PyTorch casts it, computed in x's
        return x.dtype.type(result.type(exponent))

    powered = np.empty_like(x)
    _elementwise(_lp_kernels.power, (x, powered), real(p))
    if narrow:
        _round_through(powered, result)
    avg = avg_canonical(powered, window_geometry(plan), True, 0)
    out = avg.copy()
    if narrow:
        _round_through(avg, result)
        np.multiply(avg, plan.window_size, out=out)
        _round_through(out, result)
        _elementwise(_lp_kernels.scaled_power, (out,), real(1.0 / p), x.dtype.type(1))
        _round_through(out, result)
    else:
        _elementwise(_lp_kernels.scaled_power, (out,), real(1.0 / p),
                     x.dtype.type(plan.window_size))
    return avg, out


def _round_through(values: np.ndarray, dtype: np.dtype) -> None:
    """Round ``values`` in place to the nearest value of the narrower ``dtype``."""
    with np.errstate(over="ignore"):  # past the range is inf, as the narrow op gives
        values[...] = values.astype(dtype)


def _chain_factor(avg: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``d out / d avg`` times ``p`` (the ``p`` cancels against ``d x**p / dx``).

    ``out = (avg * K) ** (1/p)``, so this is ``out / avg``; where the average is
    zero the gradient is zero (PyTorch's rule: its ``relu`` blocks it there).
    """
    factor = np.zeros_like(out)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(out, avg, out=factor, where=avg != 0)
    return factor


def _lp_backward_canonical(weighted: np.ndarray, x: np.ndarray, plan: PoolPlan, p: float):
    """From ``grad * out/avg`` per window to the input: spread as an average, times ``x**(p-1)``."""
    grad_in = avg_backward_canonical(weighted, plan.lengths, window_geometry(plan), True, 0)
    if p != 1:  # x ** 0 is one, NaN and zero included
        _elementwise(_lp_kernels.times_power, (grad_in, x.astype(grad_in.dtype, copy=False)),
                     grad_in.dtype.type(p - 1))
    return grad_in


def _signs(values: np.ndarray) -> np.ndarray:
    """PyTorch's ``sign``: -1, 0 or 1, and 0 for NaN (so NaN passes no gradient)."""
    return (values > 0).astype(np.int8) - (values < 0).astype(np.int8)


def _max_of_abs(x: np.ndarray, plan: PoolPlan, kind: int):
    """``norm_type=inf``: max pooling of ``|x|`` (in the average's float dtype), the
    positions of ``kind``, and the signs of the chosen elements."""
    result, _ = float_result_dtypes(x.dtype)
    real = x.astype(result, copy=False)
    out, flat = max_pool_planned(np.abs(real), plan, FLAT_INDEX, False)
    signs = _signs(gather_flat(real, flat, plan))
    positions = flat if kind == FLAT_INDEX else flat_to_window(flat, plan)
    return out, positions, signs


# --------------------------------------------------------------------------- the ops


def lp_pool(x, norm_type, kernel_size, stride, ceil_mode, axes, *, op, n=None):
    x = as_real_array(x, "x")
    p = check_norm_type(norm_type)
    plan = plan_lp(op, x.shape, kernel_size, stride, ceil_mode, axes, n)
    result, compute = float_result_dtypes(x.dtype)
    if p == math.inf:
        return max_pool_planned(np.abs(x.astype(result, copy=False)), plan, NO_POSITION,
                                 False)[0]
    _, out = _lp_canonical(to_canonical(x, plan, plan.lengths, compute), plan, p, result)
    return from_canonical(out, plan, plan.out_lengths).astype(result, copy=False)






def lp_pool_backward(grad_output, x, norm_type, kernel_size, stride, ceil_mode, axes, *, op,
                      n=None):
    x = as_real_array(x, "x")
    p = check_norm_type(norm_type)
    plan = plan_lp(op, x.shape, kernel_size, stride, ceil_mode, axes, n)
    grad = check_grad(grad_output, plan)
    if p == math.inf:
        _, flat, signs = _max_of_abs(x, plan, FLAT_INDEX)
        return scatter_flat(grad * signs, flat, plan)
    result, compute = float_result_dtypes(x.dtype)
    x_canonical = to_canonical(x, plan, plan.lengths, compute)
    avg, out = _lp_canonical(x_canonical, plan, p, result)
    return _lp_backward_planned(grad, _chain_factor(avg, out), x_canonical, plan, p)


def _lp_backward_planned(grad, factor, x_canonical, plan: PoolPlan, p: float):
    """The gradient from ``grad`` (checked), the chain factor and canonical ``x``."""
    result, compute = gradient_dtypes(grad.dtype)
    weighted = to_canonical(grad, plan, plan.out_lengths, compute)
    weighted = weighted * factor.astype(compute, copy=False)
    grad_in = _lp_backward_canonical(weighted, x_canonical, plan, p)
    return from_canonical(grad_in, plan, plan.lengths).astype(result, copy=False)


# --------------------------------------------------------------------------- layer state


def lp_layer_forward(x: np.ndarray, plan: PoolPlan, p: float):
    """The output and what a layer keeps for its backward.

    Finite ``p``: canonical ``x`` and the chain factor per window. ``inf``: the
    window positions of the maxima (one byte each for small windows) and their signs.
    """
    if p == math.inf:
        out, positions, signs = _max_of_abs(x, plan, WINDOW_POSITION)
        return out, (positions, signs)
    result, compute = float_result_dtypes(x.dtype)
    x_canonical = to_canonical(x, plan, plan.lengths, compute)
    avg, out = _lp_canonical(x_canonical, plan, p, result)
    state = (_chain_factor(avg, out), x_canonical)
    return from_canonical(out, plan, plan.out_lengths).astype(result, copy=False), state


def lp_layer_backward(grad, state, plan: PoolPlan, p: float):
    grad = check_grad(grad, plan)
    if p == math.inf:
        positions, signs = state
        return max_backward_from_window(grad * signs, positions, plan)
    factor, x_canonical = state
    return _lp_backward_planned(grad, factor, x_canonical, plan, p)


# --------------------------------------------------------------------------- 1d/2d/3d names




