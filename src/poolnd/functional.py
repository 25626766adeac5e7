"""The public pooling ops: plan, move axes, call a kernel, move back.

Every op checks its arguments through :func:`poolnd._geometry.plan_pool`
before any work, brings its input into the kernels' layout ``(B, *L, C)``
(one copy at most, none for contiguous input), runs a kernel and reshapes
the result back into the input's own axis order.
"""

from __future__ import annotations

import math

import numpy as np

from . import _parallel
from ._dask import is_dask_array as _is_dask
from ._geometry import PoolPlan, check_flag, plan_pool
from ._kernels import _rows
from ._kernels import max as _max_kernels
from ._kernels import unpool as _unpool_kernels
from ._kernels.avg import avg_pool_backward as _avg_backward_kernel
from ._kernels.running import running_pool as _running_pool

__all__ = [
    "adaptive_avg_pool",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_avg_pool_backward",
    "adaptive_max_pool",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "adaptive_max_pool_backward",
    "avg_pool",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "avg_pool_backward",
    "fractional_max_pool",
    "fractional_max_pool2d",
    "fractional_max_pool3d",
    "fractional_max_pool_backward",
    "lp_pool",
    "lp_pool1d",
    "lp_pool2d",
    "lp_pool3d",
    "lp_pool_backward",
    "max_pool",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "max_pool_backward",
    "max_unpool",
    "max_unpool1d",
    "max_unpool2d",
    "max_unpool3d",
    "max_unpool_backward",
]

_NAN_POLICIES = ("propagate", "omit")

# What a max pooling call reports besides values.
NO_POSITION = 0
WINDOW_POSITION = 1  # row-major tap number inside the window (the layers' compact state)
FLAT_INDEX = 2  # row-major index inside the pooled axes of the unpadded input (PyTorch's)
_KERNEL_AXES = 3  # the kernels pool three axes; fewer arrive padded with unit axes


# --------------------------------------------------------------------------- input checks


def _as_real_array(x, name: str) -> np.ndarray:
    """``np.asarray(x)``, refusing what has no order (complex, object, text, dates)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers or bools, got dtype {arr.dtype}")
    return arr


def _float_dtype(dtype: np.dtype) -> np.dtype:
    """The float dtype a gradient keeps: its own if float, else float64."""
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype the kernels run in: native byte order, float16 widened to float32."""
    dtype = dtype.newbyteorder("=")
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name}={value!r} must be one of {', '.join(map(repr, choices))}")


def _check_divisor(divisor_override) -> int:
    """0 stands for "no override" inside the kernels."""
    if divisor_override is None:
        return 0
    if isinstance(divisor_override, (bool, np.bool_)) or not isinstance(
        divisor_override, (int, np.integer)
    ):
        raise TypeError(f"divisor_override must be an int or None, got {divisor_override!r}")
    if divisor_override < 1:
        raise ValueError(f"divisor_override={divisor_override!r} must be >= 1")
    return int(divisor_override)


def _check_grad(grad_output, plan: PoolPlan) -> np.ndarray:
    grad = _as_real_array(grad_output, "grad_output")
    if grad.shape != plan.out_shape:
        raise ValueError(
            f"grad_output has shape {grad.shape} but {plan.op} of an input of shape "
            f"{plan.in_shape} gives {plan.out_shape}"
        )
    return grad


# --------------------------------------------------------------------------- layout


def _to_canonical(arr: np.ndarray, plan: PoolPlan, lengths, dtype) -> np.ndarray:
    """``arr`` (in the input's axis order) as a contiguous ``(B, *lengths, C)`` array."""
    if plan.perm != tuple(range(arr.ndim)):
        arr = arr.transpose(plan.perm)
    arr = np.ascontiguousarray(arr, dtype=dtype)  # the one copy, skipped when already in place
    return arr.reshape(math.prod(plan.outer_shape), *lengths, math.prod(plan.inner_shape))


def _from_canonical(arr: np.ndarray, plan: PoolPlan, lengths) -> np.ndarray:
    """Undo :func:`_to_canonical`: back to the input's axis order (a view, or the
    array that ``arr`` views when that is it: see :func:`_new_input_like`)."""
    arr = arr.reshape(*plan.outer_shape, *lengths, *plan.inner_shape)
    if plan.perm != tuple(range(arr.ndim)):
        return arr.transpose(np.argsort(plan.perm))
    owner = arr.base
    if (isinstance(owner, np.ndarray) and owner.shape == arr.shape and owner.dtype == arr.dtype
            and owner.flags.c_contiguous and owner.ctypes.data == arr.ctypes.data):
        return owner
    return arr


def _new_input_like(plan: PoolPlan, dtype, *, flat: bool = False) -> np.ndarray:
    """A new input-shaped array for a backward kernel, as its canonical view
    ``(B, *lengths, C)`` (``flat``: ``(B, prod(lengths), C)``).

    It is allocated in the input's axis order, so that :func:`_from_canonical`
    returns an array that owns its memory rather than a view; MyGrad, for one,
    copies every gradient that is a view. It is not zeroed: each kernel zeroes
    the planes it then adds to, so that the first write to each page (a page
    fault) falls on the thread that uses it, not on the caller alone.
    """
    whole = np.empty((*plan.outer_shape, *plan.lengths, *plan.inner_shape), dtype)
    lengths = (math.prod(plan.lengths),) if flat else plan.lengths
    return whole.reshape(math.prod(plan.outer_shape), *lengths, math.prod(plan.inner_shape))


def _window_geometry(plan: PoolPlan):
    """Per-axis tuples the kernels take: kernel, stride, dilation, pad before and after, out."""
    return (plan.kernel, plan.stride, plan.dilation, plan.pad_before, plan.pad_after,
            plan.out_lengths)


def _head(geometry, n):
    return tuple(t[:n] for t in geometry)


def _tail(geometry, n):
    return tuple(t[-n:] for t in geometry)


def _as_kernel_args(geometry):
    """The geometry widened to three axes: unit windows on the missing leading axes."""
    missing = _KERNEL_AXES - len(geometry[0])
    fills = (1, 1, 1, 0, 0, 1)
    return tuple((fill,) * missing + tuple(t) for fill, t in zip(fills, geometry))


def _as_kernel_array(arr: np.ndarray) -> np.ndarray:
    """``(B, *L, C)`` with up to three pooled axes as the kernels' ``(B, D, H, W, C)``."""
    missing = _KERNEL_AXES - (arr.ndim - 2)
    return arr.reshape(arr.shape[0], *(1,) * missing, *arr.shape[1:])


def _run_rows(kernel, x_rows, out_rows, *args):
    """Run a forward kernel, one job per output row, over the threads."""
    n_rows = out_rows.shape[0] * out_rows.shape[1] * out_rows.shape[2]
    _parallel.run(kernel, n_rows, x_rows.size + out_rows.size, x_rows, out_rows, *args)


def _run_planes(kernel, grad_out, grad_in, *args):
    """Run a backward kernel, one job per plane (axis 0), over the threads."""
    _parallel.run(kernel, grad_in.shape[0], grad_in.size + grad_out.size, *args)


def _as_row_array(arr: np.ndarray) -> np.ndarray:
    """The kernels' layout with each row's ``W`` and ``C`` merged: ``(B, D, H, W*C)``."""
    arr = _as_kernel_array(arr)
    return arr.reshape(*arr.shape[:3], arr.shape[3] * arr.shape[4])


# --------------------------------------------------------------------------- max pooling


def _position_dtype(kind: int, window_size: int) -> np.dtype:
    if kind == FLAT_INDEX:
        return np.dtype(np.int64)
    for dtype in (np.uint8, np.uint16, np.uint32):
        if window_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def _max_canonical(x: np.ndarray, geometry, kind: int, omit_nan: bool):
    """Max-pool canonical ``x`` of shape ``(B, *L, C)``; returns values and positions.

    More than three pooled axes are pooled in two stages, the last three axes
    first: the first maximum in row-major order of the whole window is the
    first maximum over the leading axes of the first maxima over the rest,
    and the same holds for the NaN rules.
    """
    omit_nan = omit_nan and x.dtype.kind == "f"  # integers have no NaN: one kernel fewer
    reduction = _rows.MAX_OMIT_NAN if omit_nan else _rows.MAX
    lowest = _max_identity(x.dtype, omit_nan)
    if kind == NO_POSITION and _is_large_window(geometry):
        return _pool_separably(x, geometry, reduction, lowest), None
    if x.ndim - 2 > _KERNEL_AXES:
        return _max_in_two_stages(x, geometry, kind, omit_nan)
    kernel, outs = geometry[0], geometry[5]
    out = np.empty((x.shape[0], *outs, x.shape[-1]), x.dtype)
    positions = None
    if kind != NO_POSITION:
        positions = np.empty(out.shape, _position_dtype(kind, math.prod(kernel)))
    _forward_rows(x, out, positions, geometry, reduction, lowest, kind == FLAT_INDEX)
    return out, positions


def _forward_rows(x, out, positions, geometry, reduction, identity, flat_index=False,
                  divisors=None):
    """The row walk of ``_kernels._rows`` over canonical ``x`` with up to three pooled axes."""
    k, s, d, p, _, _ = _as_kernel_args(geometry)
    channels = x.shape[-1]
    shape = _rows.literal_shape(channels, k[2], s[2], d[2], reduction)
    kernel = _rows.forward_kernel(reduction, positions is not None, shape)
    rows_out = _as_row_array(out)
    rows_pos = rows_out if positions is None else _as_row_array(positions)
    _run_rows(kernel, _as_row_array(x), rows_out, rows_pos, channels, flat_index, k, s, d, p,
              identity, _NO_DIVISORS if divisors is None else divisors)


def _max_identity(dtype: np.dtype, omit_nan: bool):
    """What every window starts from: nothing in the dtype beats it, NaN included."""
    if dtype.kind == "f":
        return dtype.type(np.nan if omit_nan else -np.inf)
    return np.iinfo(dtype).min


# Sums need no divisors (the max kernels take the same arguments as the average's).
_NO_DIVISORS = (np.ones(1), np.ones(1), np.ones(1))

# From this many elements in a window on, and when each element lies in this many
# windows on average, pool one axis at a time by running folds. Windows that barely
# overlap read each element about once anyway: the row walk does that in one pass.
_LARGE_WINDOW = 16
_OVERLAP = 4


def _is_large_window(geometry) -> bool:
    kernel, stride, dilation = geometry[:3]
    return (math.prod(kernel) >= _LARGE_WINDOW and all(d == 1 for d in dilation)
            and math.prod(kernel) >= _OVERLAP * math.prod(stride))


def _pool_separably(x, geometry, reduction, identity):
    """Values of ``(B, *L, C)`` pooled one axis at a time (see ``_kernels.running``).

    Along a contiguous axis (the last, with ``C == 1``) at stride 1 the row
    walk's tap-by-tap loop runs instead: it is vectorised there, where the
    running folds would be scalar.
    """
    kernel, stride, _, before, _, outs = geometry
    for axis in reversed(range(len(kernel))):
        lines, length = math.prod(x.shape[:axis + 1]), x.shape[axis + 1]
        inner = math.prod(x.shape[axis + 2:])
        out = np.empty((*x.shape[:axis + 1], outs[axis], *x.shape[axis + 2:]), x.dtype)
        if axis == len(kernel) - 1 and x.shape[-1] == 1 and stride[axis] == 1:
            _forward_rows(x.reshape(lines, length, 1), out.reshape(lines, outs[axis], 1), None,
                          tuple((t[axis],) for t in geometry), reduction, identity,
                          divisors=(np.ones(1), np.ones(1), np.ones(outs[axis])))
        else:
            _parallel.run(_running_pool, lines, x.size + out.size,
                          x.reshape(lines, length, inner), out.reshape(lines, outs[axis], inner),
                          kernel[axis], stride[axis], before[axis], identity, reduction)
        x = out
    return x


def _max_in_two_stages(x, geometry, kind, omit_nan):
    """Positions here are flat indices (window positions are derived from them)."""
    lead = len(geometry[0]) - _KERNEL_AXES
    batch, lengths, channels = x.shape[0], x.shape[1:-1], x.shape[-1]
    lead_size, tail_size = math.prod(lengths[:lead]), math.prod(lengths[lead:])
    tail_out, tail_index = _max_canonical(
        x.reshape(batch * lead_size, *lengths[lead:], channels),
        _tail(geometry, _KERNEL_AXES), kind, omit_nan,
    )
    inner = math.prod(geometry[5][lead:]) * channels
    out, lead_index = _max_canonical(
        tail_out.reshape(batch, *lengths[:lead], inner), _head(geometry, lead), kind, omit_nan
    )
    out = out.reshape(batch, *geometry[5], channels)
    if kind == NO_POSITION:
        return out, None
    lead_index = lead_index.reshape(batch, -1, inner)
    chosen = np.take_along_axis(tail_index.reshape(batch, lead_size, inner), lead_index, axis=1)
    return out, (lead_index * tail_size + chosen).reshape(out.shape)


def _max_pool_planned(x: np.ndarray, plan: PoolPlan, kind: int, omit_nan: bool):
    """Values and positions of ``kind`` for a checked input, in the input's axis order."""
    compute = _compute_dtype(x.dtype)
    if x.dtype == np.bool_:
        compute = np.dtype(np.uint8)  # numba compares bools as small ints
    canonical = _to_canonical(x, plan, plan.lengths, compute)
    out, positions = _max_canonical(canonical, _window_geometry(plan), kind, omit_nan)
    out = _from_canonical(out, plan, plan.out_lengths)
    if out.dtype != x.dtype:
        out = out.astype(x.dtype)  # float16 and bool come back, exactly
    if positions is not None:
        positions = _from_canonical(positions, plan, plan.out_lengths)
    return out, positions


def _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, axes, return_indices,
              nan_policy, *, op, n=None):
    if _is_dask(x):  # a lazy Dask array in, a lazy Dask array out (poolnd._dask)
        from . import _dask
        return _dask.max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, axes,
                              return_indices, nan_policy, op=op, n=n)
    x = _as_real_array(x, "x")
    _check_choice("nan_policy", nan_policy, _NAN_POLICIES)
    return_indices = check_flag("return_indices", return_indices)
    plan = plan_pool(op, x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes, n)
    kind = FLAT_INDEX if return_indices else NO_POSITION
    out, indices = _max_pool_planned(x, plan, kind, nan_policy == "omit")
    return (out, indices) if return_indices else out


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *, axes=None,
             return_indices=False, nan_policy="propagate"):
    """Max pooling over N axes of an array of any real dtype.

    >>> import numpy as np, poolnd
    >>> x = np.array([[0., 10., 8.], [2., 7., 3.], [5., 7., 20.]])
    >>> poolnd.max_pool(x, (2, 2), stride=1)
    array([[10., 10.],
           [ 7., 20.]])

    Parameters
    ----------
    x : array_like
        Input; any real dtype (the output has the same dtype).
    kernel_size : int or tuple of int
        Window length per pooled axis. A tuple fixes N; a bare int needs ``axes``.
    stride : int or tuple of int, optional
        Window step per axis; ``None`` means ``kernel_size``.
    padding : int, tuple, "valid" or "same"
        Virtual padding, which never wins (it acts as -inf). An int or N-tuple pads both
        sides; an N-tuple of ``(before, after)`` pairs pads each side; ``"same"`` gives
        ``ceil(L / stride)`` outputs (TensorFlow's rule).
    dilation : int or tuple of int
        Spacing between window taps.
    ceil_mode : bool
        Round the output length up (PyTorch's rule: the last window starts in the input
        or the left padding).
    axes : tuple of int, optional
        The pooled axes, in order; default the last N.
    return_indices : bool
        Also return int64 flat row-major indices of the maxima within the pooled axes of
        the unpadded input (PyTorch's format).
    nan_policy : {"propagate", "omit"}
        "propagate": a window holding NaN gives NaN (index of its last NaN).
        "omit": NaN is skipped; an all-NaN window gives NaN and its first element.
    """
    return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, axes, return_indices,
                     nan_policy, op="max_pool")


def max_pool_backward(grad_output, indices, input_shape, kernel_size, stride=None, padding=0,
                      dilation=1, ceil_mode=False, *, axes=None):
    """Gradient of :func:`max_pool` with respect to its input.

    Each output's gradient is added to the input element its index names;
    where windows overlap, contributions add up, in output order.

    >>> import numpy as np, poolnd
    >>> x = np.array([[0., 10., 8.], [2., 7., 3.], [5., 7., 20.]])
    >>> out, idx = poolnd.max_pool(x, (2, 2), 1, return_indices=True)
    >>> poolnd.max_pool_backward(np.ones_like(out), idx, x.shape, (2, 2), 1)
    array([[0., 2., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    """
    return _max_pool_backward(grad_output, indices, input_shape, kernel_size, stride, padding,
                              dilation, ceil_mode, axes, op="max_pool_backward")


def _max_pool_backward(grad_output, indices, input_shape, kernel_size, stride, padding, dilation,
                       ceil_mode, axes, *, op, n=None):
    shape = _check_shape(input_shape)
    plan = plan_pool(op, shape, kernel_size, stride, padding, dilation, ceil_mode, axes, n)
    grad = _check_grad(grad_output, plan)
    return _scatter_flat(grad, _check_flat_indices(indices, plan), plan)


def _check_flat_indices(indices, plan: PoolPlan) -> np.ndarray:
    """Flat indices of the forward's output shape, each inside the pooled axes."""
    indices = np.asarray(indices)
    if indices.shape != plan.out_shape or indices.dtype.kind not in "iu":
        raise ValueError(
            f"indices must be integers of shape {plan.out_shape}, got {indices.dtype} "
            f"of shape {indices.shape}"
        )
    size = math.prod(plan.lengths)
    low, high = _index_range(indices)
    if low < 0 or high >= size:
        raise ValueError(
            f"indices must lie in [0, {size}) for pooled axes of lengths {plan.lengths}; "
            f"got values from {low} to {high}"
        )
    return indices


_INDEX_BLOCK = 1 << 16


def _index_range(indices: np.ndarray) -> tuple[int, int]:
    """The least and greatest index, ``(0, 0)`` for none; int64 indices in any dense
    layout (PyTorch's and poolnd's own) are read once, in parallel when large."""
    if indices.size == 0:
        return 0, 0
    flat = np.ravel(indices, order="K")  # a view, unless the layout has gaps
    if flat.dtype != np.int64:  # rare: not worth a kernel per integer type
        return int(flat.min()), int(flat.max())
    extremes = np.empty((-(-flat.size // _INDEX_BLOCK), 2), np.int64)
    _parallel.run(_unpool_kernels.index_range, len(extremes), flat.size, flat, _INDEX_BLOCK,
                  extremes)
    return int(extremes[:, 0].min()), int(extremes[:, 1].max())


def _scatter_flat(grad: np.ndarray, indices: np.ndarray, plan: PoolPlan) -> np.ndarray:
    """Scatter-add ``grad`` to the input elements named by flat ``indices``."""
    result = _float_dtype(grad.dtype)
    compute = _compute_dtype(result)
    planes, channels = math.prod(plan.outer_shape), math.prod(plan.inner_shape)
    flat_out = (planes, math.prod(plan.out_lengths), channels)
    grad_in = _new_input_like(plan, compute, flat=True)
    grad = _to_canonical(grad, plan, plan.out_lengths, compute).reshape(flat_out)
    indices = _to_canonical(indices, plan, plan.out_lengths, np.int64).reshape(flat_out)
    _run_planes(_unpool_kernels.scatter_add, grad, grad_in, grad, indices, grad_in)
    return _from_canonical(grad_in, plan, plan.lengths).astype(result, copy=False)


def _check_shape(input_shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise TypeError(f"input_shape must be a tuple of ints, got {input_shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"input_shape={input_shape!r} has a negative length")
    return shape


# --------------------------------------------------------------------------- layer state


def _max_pool_with_window_positions(x: np.ndarray, plan: PoolPlan, omit_nan: bool):
    """Values and window positions (the compact state a max layer keeps)."""
    if plan.ndim <= _KERNEL_AXES:
        return _max_pool_planned(x, plan, WINDOW_POSITION, omit_nan)
    out, flat = _max_pool_planned(x, plan, FLAT_INDEX, omit_nan)
    return out, _flat_to_window(flat, plan)


def _max_backward_from_window(grad: np.ndarray, positions: np.ndarray, plan: PoolPlan):
    """Gradient for a max layer from its stored window positions."""
    grad = _check_grad(grad, plan)
    if plan.ndim > _KERNEL_AXES:
        return _scatter_flat(grad, _window_to_flat(positions, plan), plan)
    result = _float_dtype(grad.dtype)
    compute = _compute_dtype(result)
    grad_in = _new_input_like(plan, compute)
    k, s, d, p, _, _ = _as_kernel_args(_window_geometry(plan))
    grad = _as_row_array(_to_canonical(grad, plan, plan.out_lengths, compute))
    positions = _as_row_array(_to_canonical(positions, plan, plan.out_lengths, positions.dtype))
    _run_planes(_max_kernels.max_pool_backward_window, grad, grad_in, grad, positions,
                _as_row_array(grad_in), grad_in.shape[-1], k, s, d, p)
    return _from_canonical(grad_in, plan, plan.lengths).astype(result, copy=False)


def _output_grid(plan: PoolPlan):
    """Per pooled axis, the output positions broadcast over the output's shape."""
    grids = []
    for i, axis in enumerate(plan.axes):
        shape = [1] * len(plan.in_shape)
        shape[axis] = plan.out_lengths[i]
        grids.append(np.arange(plan.out_lengths[i]).reshape(shape))
    return grids


def _flat_to_window(flat: np.ndarray, plan: PoolPlan) -> np.ndarray:
    taps = np.zeros(flat.shape, np.int64)
    positions = np.unravel_index(flat, plan.lengths)
    for i, grid in enumerate(_output_grid(plan)):
        start = grid * plan.stride[i] - plan.pad_before[i]
        taps = taps * plan.kernel[i] + (positions[i] - start) // plan.dilation[i]
    return taps.astype(_position_dtype(WINDOW_POSITION, plan.window_size))


def _window_to_flat(taps: np.ndarray, plan: PoolPlan) -> np.ndarray:
    per_axis = np.unravel_index(taps, plan.kernel)
    flat = np.zeros(taps.shape, np.int64)
    for i, grid in enumerate(_output_grid(plan)):
        position = grid * plan.stride[i] - plan.pad_before[i] + per_axis[i] * plan.dilation[i]
        flat = flat * plan.lengths[i] + position
    return flat


# --------------------------------------------------------------------------- average pooling


def _avg_dtypes(x_dtype: np.dtype, dtype) -> tuple[np.dtype, np.dtype]:
    """(result dtype, compute dtype) of an average."""
    if dtype is not None:
        result = np.dtype(dtype)
        if result.kind != "f":
            raise TypeError(f"dtype must be a float dtype, got {dtype!r}")
    else:
        result = _float_dtype(x_dtype)
    return result, _compute_dtype(result)


def _divisors(lengths, geometry, include_pad: bool, override: int):
    """Per-axis factors of every window's divisor, widened to three axes (PyTorch's rule).

    ``override`` replaces the divisor; else ``include_pad`` counts the taps
    inside the padded extent (explicit padding counts, the ``ceil_mode``
    overhang past it does not), and otherwise the taps inside the input.
    """
    kernel, stride, dilation, before, after, outs = geometry
    factors = []
    for length, k, s, d, pad, pad_after, n_out in zip(lengths, kernel, stride, dilation, before,
                                                      after, outs):
        start = np.arange(n_out) * s - pad
        last_inside = np.minimum(k, (length - 1 - start) // d + 1)
        if override:
            count = np.ones(n_out)
        elif include_pad:
            count = np.minimum(k, (length + pad_after - 1 - start) // d + 1)
        else:
            count = last_inside - np.where(start >= 0, 0, (d - 1 - start) // d)
        factors.append(count.astype(np.float64))
    if override:
        factors[0] *= override
    missing = _KERNEL_AXES - len(factors)
    return (*(np.ones(1),) * missing, *factors)


def _avg_canonical(x, geometry, include_pad: bool, override: int):
    """Average-pool canonical ``x`` ``(B, *L, C)``; more than three axes go in two stages.

    The divisor is a product over axes (or the override), so the last three
    axes may be summed and divided first and the leading ones after.
    """
    n = x.ndim - 2
    outs = geometry[5]
    # Summed one axis at a time, a window whose partial sums overflow can give NaN
    # (inf - inf) where a sum in PyTorch's row-major order gives inf; any non-finite
    # total (rare: one cheap sum finds it) is therefore summed again window by window.
    large = _is_large_window(geometry)
    out = _pool_separably(x, geometry, _rows.SUM, x.dtype.type(0)) if large else None
    if large and np.isfinite(out.sum()):
        for axis, factor in enumerate(_divisors(x.shape[1:-1], geometry, include_pad, override)
                                      [-n:]):
            shape = [1] * out.ndim
            shape[axis + 1] = factor.size
            np.divide(out, factor.reshape(shape), out=out, casting="unsafe")
        return out
    if n > _KERNEL_AXES:
        lead = n - _KERNEL_AXES
        batch, lengths, channels = x.shape[0], x.shape[1:-1], x.shape[-1]
        tail = _avg_canonical(
            x.reshape(batch * math.prod(lengths[:lead]), *lengths[lead:], channels),
            _tail(geometry, _KERNEL_AXES), include_pad, 1 if override else 0,
        )
        inner = math.prod(outs[lead:]) * channels
        out = _avg_canonical(tail.reshape(batch, *lengths[:lead], inner),
                             _head(geometry, lead), include_pad, override)
        return out.reshape(batch, *outs, channels)
    out = np.empty((x.shape[0], *outs, x.shape[-1]), x.dtype)
    _forward_rows(x, out, None, geometry, _rows.SUM, x.dtype.type(0),
                  divisors=_divisors(x.shape[1:-1], geometry, include_pad, override))
    return out


def _avg_backward_canonical(grad, lengths, geometry, include_pad: bool, override: int):
    """Adjoint of :func:`_avg_canonical`: ``grad`` ``(B, *O, C)`` to ``(B, *lengths, C)``."""
    n = grad.ndim - 2
    outs = geometry[5]
    batch, channels = grad.shape[0], grad.shape[-1]
    if n > _KERNEL_AXES:
        lead = n - _KERNEL_AXES
        inner = math.prod(outs[lead:]) * channels
        mid = _avg_backward_canonical(grad.reshape(batch, *outs[:lead], inner), lengths[:lead],
                                      _head(geometry, lead), include_pad, override)
        grad_in = _avg_backward_canonical(
            mid.reshape(batch * math.prod(lengths[:lead]), *outs[lead:], channels),
            lengths[lead:], _tail(geometry, _KERNEL_AXES), include_pad, 1 if override else 0,
        )
        return grad_in.reshape(batch, *lengths, channels)
    grad_in = np.empty((batch, *lengths, channels), grad.dtype)
    k, s, d, p, _, _ = _as_kernel_args(geometry)
    _run_planes(_avg_backward_kernel, grad, grad_in, _as_row_array(grad), _as_row_array(grad_in),
                channels, k, s, d, p, _divisors(lengths, geometry, include_pad, override))
    return grad_in


def _avg_pool_planned(x, plan: PoolPlan, include_pad: bool, override: int, dtype=None):
    result, compute = _avg_dtypes(x.dtype, dtype)
    canonical = _to_canonical(x, plan, plan.lengths, compute)
    out = _avg_canonical(canonical, _window_geometry(plan), include_pad, override)
    return _from_canonical(out, plan, plan.out_lengths).astype(result, copy=False)


def _avg_backward_planned(grad, plan: PoolPlan, include_pad: bool, override: int):
    grad = _check_grad(grad, plan)
    result = _float_dtype(grad.dtype)
    canonical = _to_canonical(grad, plan, plan.out_lengths, _compute_dtype(result))
    grad_in = _avg_backward_canonical(canonical, plan.lengths, _window_geometry(plan),
                                      include_pad, override)
    return _from_canonical(grad_in, plan, plan.lengths).astype(result, copy=False)


def _avg_pool(x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad,
              divisor_override, axes, dtype, *, op, n=None):
    if _is_dask(x):  # a lazy Dask array in, a lazy Dask array out (poolnd._dask)
        from . import _dask
        return _dask.avg_pool(x, kernel_size, stride, padding, dilation, ceil_mode,
                              count_include_pad, divisor_override, axes, dtype, op=op, n=n)
    x = _as_real_array(x, "x")
    include_pad = check_flag("count_include_pad", count_include_pad)
    override = _check_divisor(divisor_override)
    plan = plan_pool(op, x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes, n)
    return _avg_pool_planned(x, plan, include_pad, override, dtype)


def avg_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
             count_include_pad=True, divisor_override=None, *, axes=None, dtype=None):
    """Average pooling over N axes.

    >>> import numpy as np, poolnd
    >>> x = np.arange(9.0).reshape(3, 3)
    >>> poolnd.avg_pool(x, (2, 2), stride=1)
    array([[2., 3.],
           [5., 6.]])

    Geometry arguments as in :func:`max_pool`. The divisor is ``divisor_override`` if
    given; else, with ``count_include_pad``, the taps inside the padded extent
    (explicit padding counts, the ``ceil_mode`` overhang does not); else the taps
    inside the input. Float input keeps its dtype (float16 is summed in higher
    precision); integer and bool input give float64 unless ``dtype`` names a float
    dtype.
    """
    return _avg_pool(x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad,
                     divisor_override, axes, dtype, op="avg_pool")


def avg_pool_backward(grad_output, input_shape, kernel_size, stride=None, padding=0, dilation=1,
                      ceil_mode=False, count_include_pad=True, divisor_override=None, *,
                      axes=None):
    """Gradient of :func:`avg_pool`: each input element gets ``grad / divisor`` of every
    window that holds it.

    >>> import numpy as np, poolnd
    >>> poolnd.avg_pool_backward(np.ones((1, 2)), (2, 4), (2, 2))
    array([[0.25, 0.25, 0.25, 0.25],
           [0.25, 0.25, 0.25, 0.25]])
    """
    return _avg_pool_backward(grad_output, input_shape, kernel_size, stride, padding, dilation,
                              ceil_mode, count_include_pad, divisor_override, axes,
                              op="avg_pool_backward")


def _avg_pool_backward(grad_output, input_shape, kernel_size, stride, padding, dilation,
                       ceil_mode, count_include_pad, divisor_override, axes, *, op, n=None):
    shape = _check_shape(input_shape)
    include_pad = check_flag("count_include_pad", count_include_pad)
    override = _check_divisor(divisor_override)
    plan = plan_pool(op, shape, kernel_size, stride, padding, dilation, ceil_mode, axes, n)
    return _avg_backward_planned(grad_output, plan, include_pad, override)


# --------------------------------------------------------------------------- 1d/2d/3d names


def _pytorch_named(fn, name: str, n: int, what: str, full: str, note: str = ""):
    """``fn``, the wrapper for N = ``n``, named as in PyTorch, its doc pointing at ``full``."""
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"{what} over the last {n} axes (or ``axes``), in PyTorch's argument order."
                  f"\n\nSee :func:`{full}` for the arguments{note}.")
    return fn


def _max_pool_fixed(n: int):
    name = f"max_pool{n}d"

    def pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
             return_indices=False, *, axes=None, nan_policy="propagate"):
        return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, axes,
                         return_indices, nan_policy, op=name, n=n)

    return _pytorch_named(pool, name, n, "Max pooling", "max_pool")


def _avg_pool_fixed(n: int):
    name = f"avg_pool{n}d"

    def pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None, *, dilation=1, axes=None, dtype=None):
        return _avg_pool(x, kernel_size, stride, padding, dilation, ceil_mode,
                         count_include_pad, divisor_override, axes, dtype, op=name, n=n)

    return _pytorch_named(pool, name, n, "Average pooling", "avg_pool")


max_pool1d, max_pool2d, max_pool3d = (_max_pool_fixed(n) for n in (1, 2, 3))
avg_pool1d, avg_pool2d, avg_pool3d = (_avg_pool_fixed(n) for n in (1, 2, 3))

# Adaptive pooling lives in its own module, which builds on the helpers above.
from ._adaptive import (  # noqa: E402
    adaptive_avg_pool,
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
    adaptive_avg_pool_backward,
    adaptive_max_pool,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    adaptive_max_pool3d,
    adaptive_max_pool_backward,
)
from ._fractional import (  # noqa: E402
    fractional_max_pool,
    fractional_max_pool2d,
    fractional_max_pool3d,
    fractional_max_pool_backward,
)
from ._lp import lp_pool, lp_pool1d, lp_pool2d, lp_pool3d, lp_pool_backward  # noqa: E402
from ._unpool import (  # noqa: E402
    max_unpool,
    max_unpool1d,
    max_unpool2d,
    max_unpool3d,
    max_unpool_backward,
)
