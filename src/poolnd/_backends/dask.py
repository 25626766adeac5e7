"""Pooling of Dask arrays: one NumPy pooling call per output block, given the halo it needs.

``max_pool``, ``avg_pool``, ``lp_pool``, ``adaptive_max_pool`` and
``adaptive_avg_pool`` send a ``dask.array.Array`` here (:func:`is_dask_array`
looks at the type's module, so Dask is imported only when a Dask array
arrives) and get back a lazy Dask array equal to what the NumPy path gives
for the whole array.

>>> import dask.array as da, numpy as np, poolnd
>>> x = da.from_array(np.arange(64.0).reshape(8, 8), chunks=4)
>>> y = poolnd.max_pool(x, (3, 3), stride=2, padding=1)
>>> y.chunks  # block j: the windows that start in input chunk j
((3, 1), (3, 1))
>>> y.compute()
array([[ 9., 11., 13., 15.],
       [25., 27., 29., 31.],
       [41., 43., 45., 47.],
       [57., 59., 61., 63.]])

How, per pooled axis, from the global plan (``_geometry.plan_pool``):

- Output blocks follow the input's chunks: block ``j`` holds the windows
  whose first position lies in input chunk ``j`` (those starting in the left
  padding go to the first block). Aligned, non-overlapping windows
  (``kernel == stride`` dividing the chunks) so read exactly one chunk each.
- Block ``[o0, o1)`` reads input positions ``lo = o0*s - pb`` up to
  ``hi = (o1-1)*s - pb + e`` (``e`` the dilated window). Its part inside the
  input, ``[a, b)``, is cut out (neighbouring blocks' parts overlap by the
  halo), and the rest becomes the block's own padding: ``a - lo`` before,
  ``min(hi, L + pa) - b`` after. Stopping the after-padding at the global
  padded end keeps ``count_include_pad`` divisors of ``ceil_mode`` windows as
  in the global call; such windows lie only in the last block, which needs
  ``ceil_mode`` to keep them, so every block runs with the global
  ``ceil_mode`` (the others fit their windows exactly, where it changes
  nothing).
- Block starts are multiples of ``k / gcd(k, s)``, so that a block's padded
  line starts at a multiple of ``k`` from the global one: large windows sum
  in blocks of ``k`` (``_kernels.running``), and this keeps those sums, and
  so the rounding, identical to the global call's.

Adaptive pooling has no padding: block ``j`` holds the adaptive windows that
start in input chunk ``j`` and reads from its first window's start to its
last one's end (``_geometry.plan_adaptive``'s windows). The family pools the
piece with those windows moved into it, not with the windows of the piece's
own length; the average also takes the whole call's output lengths and inner
batch size, which pick its kernels and so its order of summing. Global
pooling (output size 1 everywhere) of pooled axes in several chunks would be
one task reading all of them: it is refused (``TypeError``), as a tree
reduction of float64 partial sums would not round as the NumPy path does.

One task per output block cuts its parts out of the input chunks it needs,
joins them and pools them: the graph holds the input's tasks and one task
per output block. Nothing gathers the whole array.
"""

from __future__ import annotations

import itertools
import math
import operator
from dataclasses import dataclass
from functools import partial

import numpy as np

from .._dtypes import as_real_array, avg_dtypes, float_dtype, float_result_dtypes
from .._families.adaptive import adaptive_avg_piece, adaptive_max_piece
from .._families.lp import plan_lp
from .._geometry import (
    NAN_POLICIES,
    AdaptivePlan,
    PoolPlan,
    check_choice,
    check_divisor,
    check_flag,
    check_norm_type,
    plan_adaptive,
    plan_pool,
    window_extent,
    window_start,
)
from . import numpy as _numpy

# --------------------------------------------------------------------------- the block plan


@dataclass(frozen=True)
class _AxisBlocks:
    """Output blocks along one pooled axis and the input each one reads.

    Per block: the output range ``[o0, o1)``, the input range ``[a, b)`` it
    reads and its own padding ``(before, after)``.
    """

    out_starts: tuple[int, ...]
    out_ends: tuple[int, ...]
    in_starts: tuple[int, ...]
    in_ends: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]

    @property
    def out_chunks(self) -> tuple[int, ...]:
        return tuple(o1 - o0 for o0, o1 in zip(self.out_starts, self.out_ends))

    @property
    def in_chunks(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.in_starts, self.in_ends))


def _axis_blocks(chunks: tuple[int, ...], plan: PoolPlan, i: int) -> _AxisBlocks:
    """The blocks of pooled axis ``i`` (see the module's docstring)."""
    length, k, s, d = plan.lengths[i], plan.kernel[i], plan.stride[i], plan.dilation[i]
    before, after, out = plan.pad_before[i], plan.pad_after[i], plan.out_lengths[i]
    extent = window_extent(k, d)
    align = k // math.gcd(k, s)
    starts, position = {0}, 0
    for chunk in chunks[:-1]:
        position += chunk
        first = -(-(position + before) // s)  # the first window starting at or after position
        first = -(-first // align) * align
        if first < out:
            starts.add(first)
    out_starts = tuple(sorted(starts))
    out_ends = (*out_starts[1:], out)
    in_starts, in_ends, padding = [], [], []
    for o0, o1 in zip(out_starts, out_ends):
        lo = window_start(o0, s, before)
        hi = window_start(o1 - 1, s, before) + extent
        a, b = max(lo, 0), min(hi, length)
        in_starts.append(a)
        in_ends.append(b)
        padding.append((a - lo, min(hi, length + after) - b))
    return _AxisBlocks(out_starts, out_ends, tuple(in_starts), tuple(in_ends), tuple(padding))


def _check_dask_input(x, op: str) -> None:
    """What the NumPy path checks on the array itself, without computing anything."""
    as_real_array(np.empty(0, x.dtype), "x")  # the same dtype rule and message
    if any(math.isnan(n) for n in x.shape):
        raise ValueError(f"{op}: x has unknown chunk sizes (shape {x.shape}); call "
                         f"x.compute_chunk_sizes() first")


def _reads(x, plan: PoolPlan, blocks: list[_AxisBlocks]):
    """Per axis of ``x``, per output block: the input chunks it reads, each as
    ``(chunk index, start, end)`` within that chunk. Batch axes read their own chunk."""
    pooled = dict(zip(plan.axes, blocks))
    reads = []
    for axis, chunks in enumerate(x.chunks):
        if axis not in pooled:
            reads.append([((c, 0, size),) for c, size in enumerate(chunks)])
            continue
        bounds = np.cumsum((0, *chunks)).tolist()
        per_block = []
        for a, b in zip(pooled[axis].in_starts, pooled[axis].in_ends):
            first = int(np.searchsorted(bounds[1:], a, side="right"))  # first to end after a
            last = int(np.searchsorted(bounds[:-1], b, side="left"))  # past the last before b
            per_block.append(tuple((c, max(a, bounds[c]) - bounds[c],
                                    min(b, bounds[c + 1]) - bounds[c])
                                   for c in range(first, last) if chunks[c]))
        reads.append(per_block)
    return reads


def _map_blocks(x, plan, blocks: list[_AxisBlocks], pool, dtype, with_indices: bool = False):
    """Pool every block of ``x`` with ``pool(piece, where)``, ``where`` the block's number
    along each pooled axis; the lazy result (and indices).

    One task per output block: it cuts what it reads from each input chunk
    it needs, joins the parts and pools them.
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    reads = _reads(x, plan, blocks)
    out_chunks = list(x.chunks)
    for axis, axis_blocks in zip(plan.axes, blocks):
        out_chunks[axis] = axis_blocks.out_chunks
    func = partial(_pool_block, pool=pool, axes=plan.axes,
                   in_starts=tuple(b.in_starts for b in blocks),
                   lengths=plan.lengths if with_indices else None)
    name = f"poolnd-{plan.op}-{tokenize(x.name, plan, pool, with_indices)}"
    layer = {}
    for index in itertools.product(*(range(len(per_block)) for per_block in reads)):
        parts = [per_block[i] for per_block, i in zip(reads, index)]
        cuts = tuple(tuple((start, end) for _, start, end in part) for part in parts)
        layer[(name, *index)] = (func, _nested_keys(x.name, parts), cuts, index)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[x])
    meta = np.empty((0,) * x.ndim, dtype)
    result = da.Array(graph, name, chunks=tuple(out_chunks), meta=meta)
    if not with_indices:
        return result
    # each block returned (values, indices); two cheap look-ups pull them apart
    values = result.map_blocks(operator.itemgetter(0), dtype=dtype, meta=meta)
    indices = result.map_blocks(operator.itemgetter(1), dtype=np.int64,
                                meta=np.empty((0,) * x.ndim, np.int64))
    return values, indices


def _nested_keys(name, parts, prefix=()):
    """The keys of the chunks a block reads, nested one list per axis (as ``np.block`` takes)."""
    axis = len(prefix)
    if axis == len(parts):
        return (name, *prefix)
    return [_nested_keys(name, parts, (*prefix, c)) for c, _, _ in parts[axis]]


def _join(nested, cuts, index=()):
    """The parts named by ``cuts`` of the chunks in ``nested``, joined into one array."""
    axis = len(index)
    if axis == len(cuts):
        return nested[tuple(slice(*cuts[a][i]) for a, i in enumerate(index))]
    parts = [_join(sub, cuts, (*index, i)) for i, sub in enumerate(nested)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=axis)


def _pool_block(nested, cuts, block_id, *, pool, axes, in_starts, lengths):
    """One output block: ``pool`` it; global indices if asked."""
    piece = _join(nested, cuts)
    where = tuple(block_id[axis] for axis in axes)
    if lengths is None:
        return pool(piece, where)
    values, local = pool(piece, where)
    # flat indices within the piece -> within the pooled axes of the whole input
    coords = np.unravel_index(local, tuple(piece.shape[axis] for axis in axes))
    offsets = tuple(starts[k] for starts, k in zip(in_starts, where))
    shifted = tuple(c + a for c, a in zip(coords, offsets))
    return values, np.ravel_multi_index(shifted, lengths).astype(np.int64, copy=False)


# --------------------------------------------------------------------------- the ops


def max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, axes, return_indices,
             nan_policy, *, op, n=None):
    """:func:`poolnd.max_pool` of a Dask array: a lazy Dask array (and global flat indices)."""
    _check_dask_input(x, op)
    check_choice("nan_policy", nan_policy, NAN_POLICIES)
    return_indices = check_flag("return_indices", return_indices)
    plan = plan_pool(op, x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes, n)
    blocks = _pool_blocks(x, plan)
    pool = partial(_padded, _numpy.max_pool, _paddings(blocks), op=op, kernel_size=plan.kernel,
                   stride=plan.stride, dilation=plan.dilation, ceil_mode=ceil_mode,
                   axes=plan.axes, return_indices=return_indices, nan_policy=nan_policy)
    return _map_blocks(x, plan, blocks, pool, x.dtype, with_indices=return_indices)


def avg_pool(x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad,
             divisor_override, axes, dtype, *, op, n=None):
    """:func:`poolnd.avg_pool` of a Dask array: a lazy Dask array."""
    _check_dask_input(x, op)
    include_pad = check_flag("count_include_pad", count_include_pad)
    check_divisor(divisor_override)
    plan = plan_pool(op, x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes, n)
    result = avg_dtypes(x.dtype, dtype).result
    blocks = _pool_blocks(x, plan)
    pool = partial(_padded, _numpy.avg_pool, _paddings(blocks), op=op, kernel_size=plan.kernel,
                   stride=plan.stride, dilation=plan.dilation, ceil_mode=ceil_mode,
                   axes=plan.axes, count_include_pad=include_pad,
                   divisor_override=divisor_override, dtype=dtype)
    return _map_blocks(x, plan, blocks, pool, result)


def lp_pool(x, norm_type, kernel_size, stride, ceil_mode, axes, *, op, n=None):
    """:func:`poolnd.lp_pool` of a Dask array: a lazy Dask array."""
    _check_dask_input(x, op)
    check_norm_type(norm_type)
    plan = plan_lp(op, x.shape, kernel_size, stride, ceil_mode, axes, n)
    result, _ = float_result_dtypes(x.dtype)
    # LP pooling has no padding, so no block gets any: it runs as it is
    pool = partial(_unpadded, _numpy.lp_pool, norm_type, op=op, kernel_size=plan.kernel,
                   stride=plan.stride, ceil_mode=ceil_mode, axes=plan.axes)
    return _map_blocks(x, plan, _pool_blocks(x, plan), pool, result)


def _pool_blocks(x, plan: PoolPlan) -> list[_AxisBlocks]:
    return [_axis_blocks(x.chunks[axis], plan, i) for i, axis in enumerate(plan.axes)]


def _paddings(blocks: list[_AxisBlocks]):
    return tuple(b.padding for b in blocks)


def _padded(numpy_op, paddings, piece, where, **arguments):
    padding = tuple(pads[k] for pads, k in zip(paddings, where))
    return numpy_op(piece, padding=padding, **arguments)


def _unpadded(numpy_op, norm_type, piece, where, **arguments):
    return numpy_op(piece, norm_type, **arguments)


# --------------------------------------------------------------------------- adaptive pooling


def _adaptive_axis_blocks(chunks: tuple[int, ...], length: int, out: int) -> _AxisBlocks:
    """The blocks of one adaptively pooled axis: block ``j`` holds the windows that start
    in input chunk ``j`` (window ``i`` covers ``(i*L)//O`` up to ``ceil((i+1)*L/O)``) and
    reads from its first window's start to its last one's end. No padding."""
    starts, position = {0}, 0
    for chunk in chunks[:-1]:
        position += chunk
        first = -(-position * out // length)  # the first window starting at or after position
        if first < out:
            starts.add(first)
    out_starts = tuple(sorted(starts))
    out_ends = (*out_starts[1:], out)
    return _AxisBlocks(out_starts, out_ends,
                       tuple(o0 * length // out for o0 in out_starts),
                       tuple(-(-o1 * length // out) for o1 in out_ends),
                       ((0, 0),) * len(out_starts))


def _adaptive_blocks(x, plan: AdaptivePlan, op: str, instead: str) -> list[_AxisBlocks]:
    """The blocks of every pooled axis; global pooling of several chunks is refused."""
    if all(o == 1 for o in plan.out_lengths) and any(
            sum(1 for c in x.chunks[axis] if c) > 1 for axis in plan.axes):
        raise TypeError(
            f"{op} to output size 1 on every pooled axis (global pooling) of a Dask array "
            f"whose pooled axes span several chunks would read all of them in one task. "
            f"{instead}, or rechunk so that each pooled axis is one chunk "
            f"(arr.rechunk({{axis: -1}})): then each task reads one chunk."
        )
    return [_adaptive_axis_blocks(x.chunks[axis], length, out)
            for axis, length, out in zip(plan.axes, plan.lengths, plan.out_lengths)]


def _windows(blocks: list[_AxisBlocks], plan: AdaptivePlan):
    """What each block needs to rebuild its windows (not the plan's arrays: an axis may
    have very many)."""
    return tuple((b.out_starts, b.out_ends, b.in_starts, length, out)
                 for b, length, out in zip(blocks, plan.lengths, plan.out_lengths))


def _adaptive_piece(family_op, windows, piece, where, **arguments):
    """Pool one block with its windows, as ``plan_adaptive`` places them, moved into the piece."""
    starts, ends = [], []
    for (out_starts, out_ends, in_starts, length, out), k in zip(windows, where):
        i = np.arange(out_starts[k], out_ends[k], dtype=np.int64)
        starts.append(i * length // out - in_starts[k])
        ends.append(((i + 1) * length + out - 1) // out - in_starts[k])
    return family_op(piece, starts=tuple(starts), ends=tuple(ends), **arguments)


def adaptive_max_pool(x, output_size, axes, return_indices, nan_policy, *, op, n=None):
    """:func:`poolnd.adaptive_max_pool` of a Dask array: a lazy Dask array (and global
    flat indices)."""
    _check_dask_input(x, op)
    return_indices = check_flag("return_indices", return_indices)
    check_choice("nan_policy", nan_policy, NAN_POLICIES)
    plan = plan_adaptive(op, x.shape, output_size, axes, n)
    blocks = _adaptive_blocks(x, plan, op, "arr.max(axis=...) (arr.nanmax for nan_policy="
                              "'omit') is a lazy tree reduction, without indices")
    pool = partial(_adaptive_piece, adaptive_max_piece, _windows(blocks, plan), op=op,
                   axes=plan.axes, return_indices=return_indices, nan_policy=nan_policy)
    return _map_blocks(x, plan, blocks, pool, x.dtype, with_indices=return_indices)


def adaptive_avg_pool(x, output_size, axes, *, op, n=None):
    """:func:`poolnd.adaptive_avg_pool` of a Dask array: a lazy Dask array."""
    _check_dask_input(x, op)
    plan = plan_adaptive(op, x.shape, output_size, axes, n)
    blocks = _adaptive_blocks(x, plan, op, "arr.mean(axis=...) is a lazy tree reduction "
                              "(its sums may round differently in the last bits)")
    # the whole call's output lengths and inner batch size pick the kernels (see the family)
    pool = partial(_adaptive_piece, adaptive_avg_piece, _windows(blocks, plan), op=op,
                   axes=plan.axes, whole_out_lengths=plan.out_lengths,
                   whole_channels=math.prod(plan.inner_shape))
    return _map_blocks(x, plan, blocks, pool, float_dtype(x.dtype))


# --------------------------------------------------------------------------- not lazy yet


def _not_lazy(name: str, instead: str):
    def refuse(*args, op, n=None, **kwargs):
        raise TypeError(
            f"{op} does not take Dask arrays: computing one here would load it whole into "
            f"memory. {instead}"
        )

    refuse.__name__ = refuse.__qualname__ = name
    return refuse


_COMPUTE = ("Pass arr.compute() (or a NumPy block inside arr.map_blocks) if it fits in "
            "memory.")
_BACKWARD = ("Backward passes of Dask arrays are not lazy yet: pass NumPy arrays "
             "(arr.compute()).")
fractional_max_pool = _not_lazy("fractional_max_pool", _COMPUTE)
max_unpool = _not_lazy("max_unpool", _COMPUTE)
max_pool_backward = _not_lazy("max_pool_backward", _BACKWARD)
avg_pool_backward = _not_lazy("avg_pool_backward", _BACKWARD)
lp_pool_backward = _not_lazy("lp_pool_backward", _BACKWARD)
adaptive_max_pool_backward = _not_lazy("adaptive_max_pool_backward", _BACKWARD)
adaptive_avg_pool_backward = _not_lazy("adaptive_avg_pool_backward", _BACKWARD)
fractional_max_pool_backward = _not_lazy("fractional_max_pool_backward", _BACKWARD)
max_unpool_backward = _not_lazy("max_unpool_backward", _BACKWARD)
