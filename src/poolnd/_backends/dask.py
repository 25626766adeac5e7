"""Pooling of Dask arrays: one NumPy pooling call per output block, given the halo it needs.

``max_pool``, ``avg_pool`` and ``lp_pool`` send a ``dask.array.Array`` here
(:func:`is_dask_array` looks at the type's module, so Dask is imported only
when a Dask array arrives) and get back a lazy Dask array equal to what the
NumPy path gives for the whole array.

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

from .._dtypes import as_real_array, avg_dtypes
from .._families.lp import plan_lp
from .._geometry import (
    NAN_POLICIES,
    PoolPlan,
    check_choice,
    check_divisor,
    check_flag,
    check_norm_type,
    plan_pool,
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
    extent = d * (k - 1) + 1
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
        lo = o0 * s - before
        hi = (o1 - 1) * s - before + extent
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


def _map_blocks(x, plan: PoolPlan, pool, dtype, with_indices: bool = False):
    """Pool every block of ``x`` with ``pool(piece, padding)``; the lazy result (and indices).

    One task per output block: it cuts what it reads from each input chunk
    it needs, joins the parts and pools them.
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    blocks = [_axis_blocks(x.chunks[axis], plan, i) for i, axis in enumerate(plan.axes)]
    reads = _reads(x, plan, blocks)
    out_chunks = list(x.chunks)
    for axis, axis_blocks in zip(plan.axes, blocks):
        out_chunks[axis] = axis_blocks.out_chunks
    tables = tuple((b.padding, b.in_starts) for b in blocks)
    func = partial(_pool_block, pool=pool, axes=plan.axes, tables=tables,
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


def _pool_block(nested, cuts, block_id, *, pool, axes, tables, lengths):
    """One output block: ``pool`` with the block's own padding; global indices if asked."""
    piece = _join(nested, cuts)
    padding = tuple(pads[block_id[axis]] for axis, (pads, _) in zip(axes, tables))
    if lengths is None:
        return pool(piece, padding)
    values, local = pool(piece, padding)
    # flat indices within the piece -> within the pooled axes of the whole input
    coords = np.unravel_index(local, tuple(piece.shape[axis] for axis in axes))
    offsets = tuple(starts[block_id[axis]] for axis, (_, starts) in zip(axes, tables))
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
    pool = partial(_padded, _numpy.max_pool, op=op, kernel_size=plan.kernel, stride=plan.stride,
                   dilation=plan.dilation, ceil_mode=ceil_mode, axes=plan.axes,
                   return_indices=return_indices, nan_policy=nan_policy)
    return _map_blocks(x, plan, pool, x.dtype, with_indices=return_indices)


def avg_pool(x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad,
             divisor_override, axes, dtype, *, op, n=None):
    """:func:`poolnd.avg_pool` of a Dask array: a lazy Dask array."""
    _check_dask_input(x, op)
    include_pad = check_flag("count_include_pad", count_include_pad)
    check_divisor(divisor_override)
    plan = plan_pool(op, x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes, n)
    result, _ = avg_dtypes(x.dtype, dtype)
    pool = partial(_padded, _numpy.avg_pool, op=op, kernel_size=plan.kernel, stride=plan.stride,
                   dilation=plan.dilation, ceil_mode=ceil_mode, axes=plan.axes,
                   count_include_pad=include_pad, divisor_override=divisor_override,
                   dtype=dtype)
    return _map_blocks(x, plan, pool, result)


def lp_pool(x, norm_type, kernel_size, stride, ceil_mode, axes, *, op, n=None):
    """:func:`poolnd.lp_pool` of a Dask array: a lazy Dask array."""
    _check_dask_input(x, op)
    check_norm_type(norm_type)
    plan = plan_lp(op, x.shape, kernel_size, stride, ceil_mode, axes, n)
    result, _ = avg_dtypes(x.dtype, None)
    # LP pooling has no padding, so no block gets any: it runs as it is
    pool = partial(_unpadded, _numpy.lp_pool, norm_type, op=op, kernel_size=plan.kernel,
                   stride=plan.stride, ceil_mode=ceil_mode, axes=plan.axes)
    return _map_blocks(x, plan, pool, result)


def _padded(numpy_op, piece, padding, **arguments):
    return numpy_op(piece, padding=padding, **arguments)


def _unpadded(numpy_op, norm_type, piece, padding, **arguments):
    return numpy_op(piece, norm_type, **arguments)


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
adaptive_max_pool = _not_lazy("adaptive_max_pool", _COMPUTE)
adaptive_avg_pool = _not_lazy("adaptive_avg_pool", "For global average pooling, "
                              "arr.mean(axis=...) is a lazy tree reduction; else " + _COMPUTE)
fractional_max_pool = _not_lazy("fractional_max_pool", _COMPUTE)
max_unpool = _not_lazy("max_unpool", _COMPUTE)
max_pool_backward = _not_lazy("max_pool_backward", _BACKWARD)
avg_pool_backward = _not_lazy("avg_pool_backward", _BACKWARD)
lp_pool_backward = _not_lazy("lp_pool_backward", _BACKWARD)
adaptive_max_pool_backward = _not_lazy("adaptive_max_pool_backward", _BACKWARD)
adaptive_avg_pool_backward = _not_lazy("adaptive_avg_pool_backward", _BACKWARD)
fractional_max_pool_backward = _not_lazy("fractional_max_pool_backward", _BACKWARD)
max_unpool_backward = _not_lazy("max_unpool_backward", _BACKWARD)
