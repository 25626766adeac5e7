"""The sliding-window engine that max, average and LP pooling share.

The row walk of :mod:`poolnd._kernels._rows` over canonical input, and for
large overlapping windows the one-axis-at-a-time passes of
:mod:`poolnd._kernels.running` (doubling along rows, running folds across them).
"""

from __future__ import annotations

import math

import numpy as np

from .. import _parallel
from .._geometry import PoolPlan
from .._kernels import _rows, running
from .._layout import (
    as_kernel_args,
    as_row_array,
    from_canonical,
    in_place,
    plan_rows,
    read_only,
    run_rows,
    to_canonical,
    window_geometry,
)

# Sums need no divisors (the max kernels take the same arguments as the average's).
NO_DIVISORS = tuple(read_only(np.ones(1)) for _ in range(3))  # as avg's: see read_only


# From this many elements in a window on, and when each element lies in this many
# windows on average, pool one axis at a time by running folds. Windows that barely
# overlap read each element about once anyway: the row walk does that in one pass.
_LARGE_WINDOW = 16


_OVERLAP = 4


def is_large_window(geometry) -> bool:
    kernel, stride, dilation = geometry[:3]
    return (math.prod(kernel) >= _LARGE_WINDOW and all(d == 1 for d in dilation)
            and math.prod(kernel) >= _OVERLAP * math.prod(stride))


def forward_rows(x, out, positions, geometry, reduction, identity, flat_index=False,
                  divisors=None):
    """The row walk of ``_kernels._rows`` over canonical ``x`` with up to three pooled axes."""
    k, s, d, p, _, _ = as_kernel_args(geometry)
    channels = x.shape[-1]
    divisors = NO_DIVISORS if divisors is None else divisors
    kernel = _rows.row_kernel(reduction, positions is not None,
                              flat_index and positions is not None, channels, k, s, d, p,
                              divisors, x.shape[-2], out.shape[-2], x.dtype)
    rows_out = as_row_array(out)
    rows_pos = rows_out if positions is None else as_row_array(positions)
    run_rows(kernel, as_row_array(x), rows_out, rows_pos, channels, k, s, d, p, identity,
              divisors)


def prepared_row_walk(plan: PoolPlan, x: np.ndarray, reduction: int, identity, *,
                      write=None, positions=None, flat_index: bool = False,
                      divisors=NO_DIVISORS):
    """``x -> (values, positions)``: the row walk of :func:`forward_rows` for one plan
    and inputs laid out as ``x`` (in the dtype the kernel reads), its kernel, views and
    arguments chosen once, for a prepared call (see ``._prepared``).

    Values are written in ``write`` (default ``x``'s dtype); ``positions`` is their
    dtype, or None for none. Results are allocated in the input's axis order when the
    canonical layout keeps it, so the kernel writes them through views.
    """
    dtype = x.dtype
    write = dtype if write is None else np.dtype(write)
    k, s, d, p, _, _ = as_kernel_args(window_geometry(plan))
    channels, rows, out_rows = plan_rows(plan)
    kernel = _rows.row_kernel(reduction, positions is not None,
                              flat_index and positions is not None, channels, k, s, d, p,
                              divisors, plan.lengths[-1], plan.out_lengths[-1], dtype)
    in_order = plan.in_order  # a property, computed: once here, not at every call
    out_shape = plan.out_shape if in_order else out_rows
    # the key holds the layout: an input in place now is in place at every call
    reads_in_place = in_place(x, plan, dtype)
    run = _parallel.prepared_run(kernel, math.prod(out_rows[:3]),
                                 math.prod(rows) + math.prod(out_rows),
                                 channels, k, s, d, p, identity, divisors)

    # a tiny call costs microseconds: no reshape, and no call, that is not needed
    rows_as_out = out_shape == out_rows

    def shaped(result):
        return from_canonical(result, plan, plan.out_lengths)

    def call(x):
        if reads_in_place:
            x_rows = x.reshape(rows)
        else:
            x_rows = to_canonical(x, plan, plan.lengths, dtype).reshape(rows)
        x_rows.flags.writeable = False  # the kernel's types: as run_rows gives it
        out = np.empty(out_shape, write)
        at = out if positions is None else np.empty(out_shape, positions)
        if rows_as_out:
            run(x_rows, out, at)
        else:
            run(x_rows, out.reshape(out_rows), at.reshape(out_rows))
        if in_order:
            return out, (None if positions is None else at)
        return shaped(out), (None if positions is None else shaped(at))

    return call


# What one job of the fused two-axis pass keeps at hand (its strip's rows pooled, the
# running folds' two buffers, the strip's results): about half of one core's L2 cache.
_STRIP_BYTES = 3 << 19


def pool_separably(x, geometry, reduction, identity, factors=None):
    """``(values, nonfinite)``: ``(B, *L, C)`` pooled one axis at a time (see
    ``_kernels.running``), in the identity's dtype (a sum's accumulator).

    At stride 1 along the last axis, its rows are pooled by doubling, and the
    last two axes in one pass over strips of planes (``separable_kernel``);
    the other axes by running folds along them. The last axis's rows are
    vectors of ``C``, each element pooled on its own: a sum's rounding does not
    depend on ``C``, for the Dask backend's blocks may split the inner batch
    axes that make up ``C``.

    With ``factors`` (an average's per-axis divisors), where the pass that pools
    the last two axes is the last, it divides the sums while they are in
    cache, and ``nonfinite`` holds each of its jobs' flag of an infinite or NaN
    quotient; elsewhere ``nonfinite`` is None and the values are sums still.
    """
    kernel, stride, _, before, _, outs = geometry
    dtype = np.asarray(identity).dtype
    last, channels = len(kernel) - 1, x.shape[-1]
    by_folds, nonfinite = len(kernel), None  # the axes left to the running folds
    if stride[last] == 1 and last == 0:  # one pooled axis: its rows alone
        out = np.empty((x.shape[0], outs[0], channels), dtype)
        _parallel.run_in_threads(
            running.doubling_kernel(reduction), x.shape[0], x.size + out.size,
            x.reshape(x.shape[0], x.shape[1] * channels),
            out.reshape(x.shape[0], outs[0] * channels), channels, kernel[0], before[0],
            identity)
        return out, None
    if stride[last] == 1:  # the last two axes in one pass
        planes, height, width = math.prod(x.shape[:last]), x.shape[last], x.shape[last + 1]
        out = np.empty((*x.shape[:last], outs[last - 1], outs[last], channels), dtype)
        k, s, pad = kernel[last - 1], stride[last - 1], before[last - 1]
        strip = _strip(planes, height + 2 * ((outs[last - 1] - 1) * s + k) + outs[last - 1],
                       outs[last], channels * dtype.itemsize)
        jobs = planes * -(-outs[last] // strip)
        divides = last == 1 and factors is not None  # no pass after this one: it divides
        divisors = factors if divides else (np.empty(0), np.empty(0))
        flags = np.zeros(jobs if divides else 0, np.bool_)
        _parallel.run_in_threads(
            running.separable_kernel(reduction), jobs, x.size + out.size,
            x.reshape(planes, height, width * channels),
            out.reshape(planes, outs[last - 1], outs[last] * channels), channels, k, s, pad,
            kernel[last], before[last], strip, identity, *divisors, flags)
        x, by_folds, nonfinite = out, last - 1, flags if divides else None
    for axis in reversed(range(by_folds)):
        lines, length = math.prod(x.shape[:axis + 1]), x.shape[axis + 1]
        inner = math.prod(x.shape[axis + 2:])
        out = np.empty((*x.shape[:axis + 1], outs[axis], *x.shape[axis + 2:]), dtype)
        _parallel.run_in_threads(
            running.running_pool, lines, x.size + out.size, x.reshape(lines, length, inner),
            out.reshape(lines, outs[axis], inner), kernel[axis], stride[axis], before[axis],
            identity, reduction)
        x = out
    return x, nonfinite


def _strip(planes: int, lines: int, width: int, column_bytes: int) -> int:
    """Output columns per job of the two-axis pass: what a job keeps (``lines`` rows of a
    column each) within ``_STRIP_BYTES``, and a plane split so that every thread has work."""
    strip = max(1, _STRIP_BYTES // (lines * column_bytes))
    threads = _parallel.get_num_threads()
    if 0 < planes < threads:
        strip = min(strip, -(-width // -(-threads // planes)))
    return max(1, min(strip, width))
