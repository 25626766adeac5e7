"""The kernels' layout: ``(B, *L, C)`` in, widened to three pooled axes.

Every op moves the pooled axes of its input into the canonical layout
``(B, *L, C)`` (batch axes before them folded into ``B``, those after into
``C``; one copy at most, none for contiguous input), and its result back. The
kernels see ``(B, D, H, W, C)``, or rows ``(B, D, H, W*C)``; fewer pooled axes
arrive widened with unit windows, more are pooled in two stages
(:func:`in_two_stages`).
"""

from __future__ import annotations

import math

import numpy as np

from . import _parallel
from ._geometry import PoolPlan

KERNEL_AXES = 3  # the kernels pool three axes; fewer arrive padded with unit axes


def to_canonical(arr: np.ndarray, plan: PoolPlan, lengths, dtype) -> np.ndarray:
    """``arr`` (in the input's axis order) as a contiguous ``(B, *lengths, C)`` array."""
    if plan.perm != tuple(range(arr.ndim)):
        arr = arr.transpose(plan.perm)
    arr = np.ascontiguousarray(arr, dtype=dtype)  # the one copy, skipped when already in place
    return arr.reshape(math.prod(plan.outer_shape), *lengths, math.prod(plan.inner_shape))


def from_canonical(arr: np.ndarray, plan: PoolPlan, lengths) -> np.ndarray:
    """Undo :func:`to_canonical`: back to the input's axis order (a view, or the
    array that ``arr`` views when that is it: see :func:`new_input_like`)."""
    arr = arr.reshape(*plan.outer_shape, *lengths, *plan.inner_shape)
    if plan.perm != tuple(range(arr.ndim)):
        return arr.transpose(np.argsort(plan.perm))
    owner = arr.base
    if (isinstance(owner, np.ndarray) and owner.shape == arr.shape and owner.dtype == arr.dtype
            and owner.flags.c_contiguous and owner.ctypes.data == arr.ctypes.data):
        return owner
    return arr


def max_results_back(out, positions, plan: PoolPlan, dtype):
    """A max kernel's canonical values (back in ``dtype``: float16 and bool return
    exactly) and positions (or None), in the input's axis order."""
    out = from_canonical(out, plan, plan.out_lengths).astype(dtype, copy=False)
    if positions is not None:
        positions = from_canonical(positions, plan, plan.out_lengths)
    return out, positions


def new_input_like(plan: PoolPlan, dtype, *, flat: bool = False) -> np.ndarray:
    """A new input-shaped array for a backward kernel, as its canonical view
    ``(B, *lengths, C)`` (``flat``: ``(B, prod(lengths), C)``).

    It is allocated in the input's axis order, so that :func:`from_canonical`
    returns an array that owns its memory rather than a view; MyGrad, for one,
    copies every gradient that is a view. It is not zeroed: each kernel zeroes
    the planes it then adds to, so that the first write to each page (a page
    fault) falls on the thread that uses it, not on the caller alone.
    """
    whole = np.empty((*plan.outer_shape, *plan.lengths, *plan.inner_shape), dtype)
    lengths = (math.prod(plan.lengths),) if flat else plan.lengths
    return whole.reshape(math.prod(plan.outer_shape), *lengths, math.prod(plan.inner_shape))


# The two stages' pooled axes, as slices of any per-axis sequence
TRAILING = slice(-KERNEL_AXES, None)
LEADING = slice(None, -KERNEL_AXES)


def in_two_stages(x: np.ndarray, pool):
    """Pool canonical ``x`` ``(B, *L, C)`` over more than three axes: the last three, then the rest.

    ``pool(part, axes)`` pools ``part`` over the axes that ``axes`` (``TRAILING``
    or ``LEADING``) picks out of ``L``, returning values and flat indices (or
    None). The trailing stage sees ``(B * prod(L[LEADING]), *L[TRAILING], C)``;
    the leading one sees its values as ``(B, *L[LEADING], inner)``, each
    trailing output and channel an inner batch element. That is one pooling
    when the reduction composes over a product window: a maximum (the first
    maximum in row-major order, NaN rules alike, is the first maximum over the
    leading axes of the first maxima over the rest), or a sum or mean.
    """
    batch, lengths, channels = x.shape[0], x.shape[1:-1], x.shape[-1]
    lead_size, tail_size = math.prod(lengths[LEADING]), math.prod(lengths[TRAILING])
    tail_out, tail_index = pool(x.reshape(batch * lead_size, *lengths[TRAILING], channels),
                                TRAILING)
    tail_outs = tail_out.shape[1:-1]
    out, lead_index = pool(
        tail_out.reshape(batch, *lengths[LEADING], math.prod(tail_outs) * channels), LEADING)
    out = out.reshape(batch, *out.shape[1:-1], *tail_outs, channels)
    if lead_index is None:
        return out, None
    # the leading stage says which leading position each window chose; the trailing
    # stage's index at that position says where inside the trailing axes
    lead_index = lead_index.reshape(batch, -1, lead_index.shape[-1])
    chosen = np.take_along_axis(tail_index.reshape(batch, lead_size, -1), lead_index, axis=1)
    return out, (lead_index * tail_size + chosen).reshape(out.shape)


def backward_in_two_stages(grad: np.ndarray, lengths, backward) -> np.ndarray:
    """The adjoint of :func:`in_two_stages` for a linear pooling: ``grad`` ``(B, *O, C)``
    to ``(B, *lengths, C)``, the leading axes first. ``backward(part, axes)`` takes one
    stage's output gradient to its input's."""
    batch, outs, channels = grad.shape[0], grad.shape[1:-1], grad.shape[-1]
    mid = backward(grad.reshape(batch, *outs[LEADING], math.prod(outs[TRAILING]) * channels),
                   LEADING)
    grad_in = backward(mid.reshape(batch * math.prod(lengths[LEADING]), *outs[TRAILING],
                                   channels), TRAILING)
    return grad_in.reshape(batch, *lengths, channels)


def window_geometry(plan: PoolPlan):
    """Per-axis tuples the kernels take: kernel, stride, dilation, pad before and after, out."""
    return (plan.kernel, plan.stride, plan.dilation, plan.pad_before, plan.pad_after,
            plan.out_lengths)


def stage_geometry(geometry, axes: slice):
    """The per-axis tuples of :func:`window_geometry` for one stage's ``axes``."""
    return tuple(t[axes] for t in geometry)


def as_kernel_args(geometry):
    """The geometry widened to three axes: unit windows on the missing leading axes."""
    missing = KERNEL_AXES - len(geometry[0])
    fills = (1, 1, 1, 0, 0, 1)
    return tuple((fill,) * missing + tuple(t) for fill, t in zip(fills, geometry))


def as_kernel_array(arr: np.ndarray) -> np.ndarray:
    """``(B, *L, C)`` with up to three pooled axes as the kernels' ``(B, D, H, W, C)``."""
    missing = KERNEL_AXES - (arr.ndim - 2)
    return arr.reshape(arr.shape[0], *(1,) * missing, *arr.shape[1:])


def in_place(arr: np.ndarray, plan: PoolPlan, dtype) -> bool:
    """Whether ``arr`` is already what a kernel reads: in the input's axis order,
    C-contiguous and in ``dtype`` (then a reshape gives its row view, no copy)."""
    return (plan.in_order and arr.dtype == dtype
            and arr.flags.c_contiguous)


def read_only(arr: np.ndarray) -> np.ndarray:
    """A read-only view of ``arr``. numba compiles a kernel once per array type, writable or
    not: the inputs kernels only read reach them read-only, so that writable and
    read-only arrays (MyGrad's tensors, memory maps) share one compiled kernel."""
    view = arr.view()
    view.flags.writeable = False
    return view


def run_rows(kernel, x_rows, out_rows, *args):
    """Run a forward kernel, one job per output row, over the threads."""
    if x_rows.flags.writeable:
        x_rows = read_only(x_rows)
    n_rows = out_rows.shape[0] * out_rows.shape[1] * out_rows.shape[2]
    _parallel.run_in_threads(kernel, n_rows, x_rows.size + out_rows.size, x_rows, out_rows, *args)


def run_planes(kernel, grad_out, grad_in, *args):
    """Run a backward kernel, one job per plane (axis 0), over the threads."""
    _parallel.run_in_threads(kernel, grad_in.shape[0], grad_in.size + grad_out.size, *args)


def row_shape(batch: int, lengths, channels: int) -> tuple[int, int, int, int]:
    """The shape :func:`as_row_array` gives ``(batch, *lengths, channels)``, computed."""
    d, h, w = (1,) * (KERNEL_AXES - len(lengths)) + tuple(lengths)
    return batch, d, h, w * channels


def plan_rows(plan: PoolPlan):
    """``(channels, in_rows, out_rows)``: the inner batch size ``C`` of ``plan``'s canonical
    layout and the :func:`row_shape` of its input and of its output."""
    channels = math.prod(plan.inner_shape)
    in_rows = row_shape(math.prod(plan.outer_shape), plan.lengths, channels)
    return channels, in_rows, row_shape(in_rows[0], plan.out_lengths, channels)


def as_row_array(arr: np.ndarray) -> np.ndarray:
    """The kernels' layout with each row's ``W`` and ``C`` merged: ``(B, D, H, W*C)``."""
    arr = as_kernel_array(arr)
    return arr.reshape(*arr.shape[:3], arr.shape[3] * arr.shape[4])
