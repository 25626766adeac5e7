"""Every shape rule of poolnd: arguments in, one frozen plan per call out.

The functional ops and the layers call :func:`plan_pool` and nothing else to
learn which axes are pooled, how long the output is and where each window
sits. Every argument error of docs/SPEC.md §1 and §6 is raised here, before any work.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from functools import lru_cache, wraps

import numpy as np

from ._dtypes import as_array, as_real_array


@dataclass(frozen=True)
class PoolPlan:
    """Where every window of one pooling call sits.

    Per-axis tuples are in the order of ``axes`` (the pooled axes as given).
    ``perm`` moves the input to the canonical layout ``(B, *lengths, C)``:
    batch axes before the pooled block, the pooled axes in order, then the
    batch axes that follow the last pooled axis (channels-last stays cheap).
    """

    op: str
    in_shape: tuple[int, ...]
    axes: tuple[int, ...]
    lengths: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pad_before: tuple[int, ...]
    pad_after: tuple[int, ...]
    out_lengths: tuple[int, ...]
    perm: tuple[int, ...]
    outer_shape: tuple[int, ...]
    inner_shape: tuple[int, ...]

    @property
    def ndim(self) -> int:
        """Number of pooled axes, N."""
        return len(self.axes)

    @property
    def window_size(self) -> int:
        """Number of taps in one window."""
        return math.prod(self.kernel)

    @property
    def in_order(self) -> bool:
        """Whether the canonical layout keeps the input's axis order (``perm`` moves none)."""
        return self.perm == tuple(range(len(self.in_shape)))

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Shape of the output in the input's own axis order."""
        shape = list(self.in_shape)
        for axis, out in zip(self.axes, self.out_lengths):
            shape[axis] = out
        return tuple(shape)


def _plan_cache(function):
    """Plans are cached by their arguments and by the arguments' ``repr``: ``True`` and
    ``1``, ``2.0`` and ``2`` are equal and hash alike, but only ints are sizes, so a
    call with ``True`` must not be answered by the plan of a call with ``1``."""
    cached = lru_cache(maxsize=512)(lambda text, *arguments: function(*arguments))

    @wraps(function)
    def plan(*arguments):
        return cached(repr(arguments), *arguments)

    return plan


def plan_pool(
    op: str,
    shape: tuple[int, ...],
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode=False,
    axes=None,
    n: int | None = None,
) -> PoolPlan:
    """Check the arguments of a pooling call and return its plan.

    ``op`` names the public function for error messages; ``n`` is the number
    of pooled axes fixed by the op's name (2 for ``max_pool2d``), if any.
    """
    return _plan_cached(
        op,
        tuple(int(s) for s in shape),
        freeze(kernel_size),
        freeze(stride),
        freeze(padding),
        freeze(dilation),
        check_flag("ceil_mode", ceil_mode),
        freeze(axes),
        n,
    )


def freeze(value):
    """Lists and arrays become tuples, so that arguments can key the plan cache."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, np.ndarray):
        return freeze(value.tolist())
    return value


def pool_arguments(op, kernel_size, stride=None, padding=0, dilation=1, axes=None,
                   n: int | None = None):
    """The checks of :func:`plan_pool` that need no input (layers run them when made):
    ``(N, kernel, stride, dilation, padding pairs)``, the pairs None for ``"same"``."""
    ndim_pooled = _pooled_ndim(op, kernel_size, axes, n)
    kernel = positive_ints("kernel_size", kernel_size, ndim_pooled)
    stride = kernel if stride is None else positive_ints("stride", stride, ndim_pooled)
    dilation = positive_ints("dilation", dilation, ndim_pooled)
    return ndim_pooled, kernel, stride, dilation, _explicit_padding(padding, ndim_pooled)


@_plan_cache
def _plan_cached(op, shape, kernel_size, stride, padding, dilation, ceil_mode, axes, n):
    ndim_pooled, kernel, stride, dilation, pads = pool_arguments(
        op, kernel_size, stride, padding, dilation, axes, n)
    axes = _normalize_axes(op, axes, ndim_pooled, len(shape))
    lengths = tuple(shape[a] for a in axes)
    pad_before, pad_after = pads or _same_padding(lengths, kernel, stride, dilation)

    out_lengths = []
    for i in range(ndim_pooled):
        out = _out_length(i, axes[i], lengths[i], kernel[i], stride[i], dilation[i],
                          pad_before[i], pad_after[i], ceil_mode)
        out_lengths.append(out)

    perm, outer_shape, inner_shape = _layout(shape, axes)
    return PoolPlan(
        op=op,
        in_shape=shape,
        axes=axes,
        lengths=lengths,
        kernel=kernel,
        stride=stride,
        dilation=dilation,
        pad_before=pad_before,
        pad_after=pad_after,
        out_lengths=tuple(out_lengths),
        perm=perm,
        outer_shape=outer_shape,
        inner_shape=inner_shape,
    )


def _layout(shape, axes):
    """``perm`` to the kernels' layout ``(B, *L, C)``, and the shapes folded into B and C.

    B gathers the batch axes before the last pooled axis, C those after it, so
    channels-last data needs no copy.
    """
    pooled = set(axes)
    inner = [a for a in range(max(axes) + 1, len(shape)) if a not in pooled]
    outer = [a for a in range(len(shape)) if a not in pooled and a not in inner]
    return ((*outer, *axes, *inner), tuple(shape[a] for a in outer),
            tuple(shape[a] for a in inner))


def check_flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _pooled_ndim(op, kernel_size, axes, n, name="kernel_size"):
    """N, the number of pooled axes: from the op's name, ``axes`` or a tuple ``kernel_size``.

    ``name`` is the size argument that may fix N (``output_size`` for adaptive pooling).
    """
    sources = []
    if n is not None:
        sources.append((n, f"{op} pools {n} axes"))
    if axes is not None:
        if is_int(axes):
            raise TypeError(f"axes must be a tuple of ints, got {axes!r}; write axes=({axes},)")
        if not isinstance(axes, tuple) or not axes:
            raise TypeError(f"axes must be a non-empty tuple of ints, got {axes!r}")
        if not all(is_int(axis) for axis in axes):
            raise TypeError(f"axes must hold ints, got {axes!r}")
        sources.append((len(axes), f"axes={axes!r} names {len(axes)}"))
    if isinstance(kernel_size, tuple):
        if not kernel_size:
            raise ValueError(f"{name}=() is empty: give at least one length")
        sources.append((len(kernel_size), f"{name}={kernel_size!r} has {len(kernel_size)}"))
    if not sources:
        # the 2-d twin that fixes N: max_pool2d for max_pool, MaxPool2d for MaxPoolNd
        twin = f"{op[:-2]}2d" if op.endswith("Nd") else f"{op}2d"
        hint = "" if op.endswith("_backward") else f", or use {twin}"
        raise ValueError(
            f"{op}: {name}={kernel_size!r} does not say how many axes to pool; pass a "
            f"tuple such as {name}=({kernel_size}, {kernel_size}), or axes=(-2, -1){hint}"
        )
    ndim = sources[0][0]
    for count, said in sources[1:]:
        if count != ndim:
            raise ValueError(f"{op}: number of pooled axes disagrees: {sources[0][1]}, {said}")
    return ndim


def _normalize_axes(op, axes, ndim_pooled, ndim):
    if ndim < ndim_pooled:
        raise ValueError(
            f"{op} pools {ndim_pooled} axes but the input has only {ndim} dimension(s)"
        )
    if axes is None:
        return tuple(range(ndim - ndim_pooled, ndim))
    normalized = []
    for axis in axes:  # ints: _pooled_ndim checked them
        if not -ndim <= axis < ndim:
            raise ValueError(f"axes={axes!r}: axis {axis} is out of range for {ndim}-d input")
        normalized.append(int(axis) % ndim)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"axes={axes!r} names the same axis twice")
    return tuple(normalized)


def positive_ints(name, value, ndim):
    """An int or an N-tuple of ints, each >= 1, as an N-tuple."""
    values = _ints(name, value, ndim)
    for v in values:
        if v < 1:
            raise ValueError(f"{name}={value!r}: every value must be >= 1, got {v}")
    return values


def _ints(name, value, ndim):
    if is_int(value):
        return (_int64(name, value, value),) * ndim
    if isinstance(value, tuple):
        if len(value) != ndim:
            raise ValueError(
                f"{name}={value!r} has {len(value)} values but {ndim} axes are pooled"
            )
        if all(is_int(v) for v in value):
            return tuple(_int64(name, value, v) for v in value)
    raise TypeError(f"{name} must be an int or a tuple of {ndim} ints, got {value!r}")


# Every length, size and position is an int64 in the kernels: no geometry number, and
# no padded extent of an axis, may reach this.
INT64_LIMIT = 2**63


def _int64(name, value, v) -> int:
    """``v`` (one entry of argument ``name``, given as ``value``) as an int that fits int64."""
    v = int(v)
    if not -INT64_LIMIT < v < INT64_LIMIT:
        raise ValueError(f"{name}={value!r}: {v} does not fit in an int64")
    return v


def _explicit_padding(padding, ndim):
    """(before, after) padding per axis, or None for ``"same"`` (which needs the lengths)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * ndim, (0,) * ndim
        if padding == "same":
            return None
        raise ValueError(f"padding={padding!r} must be 'valid', 'same', an int or a tuple")
    if isinstance(padding, tuple) and len(padding) == ndim:
        pairs = []
        for p in padding:
            if is_int(p):
                p = _int64("padding", padding, p)
                pairs.append((p, p))
            elif isinstance(p, tuple) and len(p) == 2 and all(is_int(q) for q in p):
                pairs.append(tuple(_int64("padding", padding, q) for q in p))
            else:
                raise TypeError(
                    f"padding={padding!r}: each entry must be an int or a (before, after) pair"
                )
    else:
        pairs = [(p, p) for p in _ints("padding", padding, ndim)]
    for before, after in pairs:
        if before < 0 or after < 0:
            raise ValueError(f"padding={padding!r}: padding must be >= 0")
    return tuple(int(b) for b, _ in pairs), tuple(int(a) for _, a in pairs)


def window_extent(kernel, dilation):
    """The span of a dilated window, ``d*(k-1)+1`` (docs/SPEC.md section 1)."""
    return dilation * (kernel - 1) + 1


def window_start(out, stride, before):
    """Where window ``out`` starts (ints or arrays): negative inside the left padding."""
    return out * stride - before


def _same_padding(lengths, kernel, stride, dilation):
    """TensorFlow's "same": ceil(L/s) outputs, any odd padding goes after."""
    before, after = [], []
    for length, k, s, d in zip(lengths, kernel, stride, dilation):
        extent = window_extent(k, d)
        out = -(-length // s)
        total = max((out - 1) * s + extent - length, 0)
        before.append(total // 2)
        after.append(total - total // 2)
    return tuple(before), tuple(after)


def _out_length(i, axis, length, k, s, d, before, after, ceil_mode):
    """PyTorch's output length, then the rule that every window holds an input element."""
    extent = window_extent(k, d)
    span = length + before + after - extent
    clash = (
        f"axis {axis} (pooled axis {i}) has length {length}, kernel_size {k}, stride {s}, "
        f"dilation {d}, padding ({before}, {after})"
    )
    if length + before + after + extent >= INT64_LIMIT:
        raise ValueError(f"{clash}: the padded axis and its window are too long for int64 "
                         f"positions")
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= length + before:
        out -= 1  # the last window must start inside the input or the left padding
    if out < 1:
        raise ValueError(
            f"{clash}: the window spans {extent} but the padded input is only "
            f"{length + before + after} long, so the output would be empty"
        )
    missed = _first_empty_window(length, k, s, d, before, out)
    if missed is not None:
        start = window_start(missed, s, before)
        raise ValueError(
            f"{clash}: window {missed} covers positions {start}..{start + extent - 1} "
            f"in steps of {d} and holds no input element"
        )
    return out


_CHUNK = 1 << 16


def _first_empty_window(length, k, s, d, before, out):
    """Index of the first window whose taps all fall in the padding, or None.

    A window that starts inside the input holds its first tap; one that starts
    at or past the end holds none. Only windows starting in the left padding
    need a closer look: their first in-input tap may jump past the input.
    """
    if before >= window_extent(k, d):
        return 0  # even the last tap of the first window is padding
    n_left = min(out, -(-before // s))  # windows with start < 0
    # a chunk at a time: n_left may be huge (a huge dilation and padding), the memory not
    for lo in range(0, n_left, _CHUNK):
        starts = window_start(np.arange(lo, min(n_left, lo + _CHUNK), dtype=np.int64), s, before)
        first_tap = (-starts + d - 1) // d
        holds = (first_tap <= k - 1) & (starts + first_tap * d <= length - 1)
        if not holds.all():
            return lo + int(np.argmin(holds))
    first_past_end = -(-(length + before) // s)  # first window with start >= length
    return first_past_end if first_past_end < out else None


# --------------------------------------------------------------------------- adaptive pooling


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: it holds arrays
class AdaptivePlan:
    """Where every window of one adaptive pooling call sits (PyTorch's windows).

    Window ``i`` of pooled axis ``a`` covers positions ``starts[a][i]`` up to
    ``ends[a][i]`` (excluded); a window is the product of its intervals. Starts
    and ends are read-only int64 arrays (an axis may have very many windows).
    The layout fields are those of :class:`PoolPlan`.
    """

    op: str
    in_shape: tuple[int, ...]
    axes: tuple[int, ...]
    lengths: tuple[int, ...]
    out_lengths: tuple[int, ...]
    starts: tuple[tuple[int, ...], ...]
    ends: tuple[tuple[int, ...], ...]
    perm: tuple[int, ...]
    outer_shape: tuple[int, ...]
    inner_shape: tuple[int, ...]

    ndim = PoolPlan.ndim
    out_shape = PoolPlan.out_shape


def plan_adaptive(op: str, shape: tuple[int, ...], output_size, axes=None,
                  n: int | None = None) -> AdaptivePlan:
    """Check the arguments of an adaptive pooling call and return its plan.

    N comes from ``n`` (the op's name), ``axes`` or a tuple ``output_size``, as
    in :func:`plan_pool`; ``None`` in ``output_size`` keeps that axis's length.
    """
    return _plan_adaptive_cached(op, tuple(int(s) for s in shape), freeze(output_size),
                                 freeze(axes), n)


def adaptive_arguments(op, output_size, axes=None, n: int | None = None):
    """The checks of :func:`plan_adaptive` that need no input (layers run them when made):
    ``(N, sizes)``, ``None`` in ``sizes`` for the axes kept as they are."""
    ndim_pooled = _pooled_ndim(op, output_size, axes, n, name="output_size")
    return ndim_pooled, _output_sizes(output_size, ndim_pooled)


@_plan_cache
def _plan_adaptive_cached(op, shape, output_size, axes, n):
    ndim_pooled, sizes = adaptive_arguments(op, output_size, axes, n)
    axes = _normalize_axes(op, axes, ndim_pooled, len(shape))
    lengths = tuple(shape[a] for a in axes)
    # None keeps the axis as it is
    out_lengths = tuple(length if size is None else size for size, length in zip(sizes, lengths))
    for i, (axis, length) in enumerate(zip(axes, lengths)):
        if length == 0:
            raise ValueError(
                f"{op}: axis {axis} (pooled axis {i}) has length 0, so every window of "
                f"output_size={output_size!r} would be empty"
            )
        if length * (out_lengths[i] + 1) >= INT64_LIMIT:
            raise ValueError(
                f"{op}: axis {axis} (pooled axis {i}) of length {length} pooled to "
                f"{out_lengths[i]} outputs: the window bounds do not fit in int64"
            )
    bounds_bytes = 2 * 8 * sum(out_lengths)  # int64 starts and ends per output position
    if bounds_bytes > _memory_bytes():
        raise ValueError(
            f"{op}: output_size={output_size!r} needs {bounds_bytes / 2**30:.3g} GiB for its "
            f"window bounds alone, more than this machine's memory "
            f"({_memory_bytes() / 2**30:.3g} GiB)"
        )
    # ceil((i+1)*L/O) in integers; every window holds at least one element when L >= 1
    starts = tuple(_frozen(np.arange(out, dtype=np.int64) * length // out)
                   for length, out in zip(lengths, out_lengths))
    ends = tuple(_frozen((np.arange(1, out + 1, dtype=np.int64) * length + out - 1) // out)
                 for length, out in zip(lengths, out_lengths))
    perm, outer_shape, inner_shape = _layout(shape, axes)
    return AdaptivePlan(op=op, in_shape=shape, axes=axes, lengths=lengths,
                        out_lengths=out_lengths, starts=starts, ends=ends, perm=perm,
                        outer_shape=outer_shape, inner_shape=inner_shape)


def _memory_bytes() -> int:
    """This machine's physical memory: a plan larger than it is refused, not attempted."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): no bound
        return INT64_LIMIT


def _frozen(array: np.ndarray) -> np.ndarray:
    """A read-only array: plans are cached and shared between calls."""
    array.flags.writeable = False
    return array


def _output_sizes(output_size, ndim):
    """``output_size`` (an int, or an N-tuple of ints and ``None``) as N sizes, each >= 1
    or None."""
    if isinstance(output_size, tuple):
        sizes = output_size  # its length was checked with N
    elif is_int(output_size):
        sizes = (output_size,) * ndim
    else:
        raise TypeError(
            f"output_size must be an int or a tuple of {ndim} ints or None, got {output_size!r}"
        )
    out = []
    for size in sizes:
        if size is None:
            out.append(None)
        elif not is_int(size):
            raise TypeError(
                f"output_size={output_size!r}: each entry must be an int or None, got {size!r}"
            )
        elif size < 1:
            raise ValueError(
                f"output_size={output_size!r}: every size must be >= 1 (or None), got {size}"
            )
        else:
            out.append(_int64("output_size", output_size, size))
    return tuple(out)


# --------------------------------------------------------------------------- LP pooling


def check_norm_type(norm_type) -> float:
    """LP pooling's ``p``: a real number > 0 (``inf`` included), as a float."""
    if isinstance(norm_type, (bool, np.bool_)) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"norm_type must be a real number > 0, got {norm_type!r}")
    p = float(norm_type)
    if not p > 0:  # also catches NaN
        raise ValueError(f"norm_type={norm_type!r} must be > 0 (inf for max pooling of |x|)")
    return p


# --------------------------------------------------------------------------- fractional pooling


@dataclass(frozen=True)
class FractionalPlan:
    """Shape of one fractional max pooling call (PyTorch's ``fractional_max_pool``).

    Every window spans ``kernel`` elements per axis; where they start is
    drawn per plane from the samples (:func:`fractional_starts`). The layout
    fields are those of :class:`PoolPlan`.
    """

    op: str
    in_shape: tuple[int, ...]
    axes: tuple[int, ...]
    lengths: tuple[int, ...]
    kernel: tuple[int, ...]
    out_lengths: tuple[int, ...]
    perm: tuple[int, ...]
    outer_shape: tuple[int, ...]
    inner_shape: tuple[int, ...]

    ndim = PoolPlan.ndim
    window_size = PoolPlan.window_size
    out_shape = PoolPlan.out_shape

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The shape of the batch (non-pooled) axes, in the input's order."""
        return (*self.outer_shape, *self.inner_shape)


def plan_fractional(op: str, shape: tuple[int, ...], kernel_size, output_size=None,
                    output_ratio=None, axes=None, n: int | None = None) -> FractionalPlan:
    """Check the arguments of a fractional max pooling call and return its plan.

    Exactly one of ``output_size`` and ``output_ratio`` (each in ``(0, 1)``;
    the length is ``int(L * ratio)``, PyTorch's rule) sets the output. N comes
    from ``n``, ``axes`` or a tuple among the sizes. Each axis needs
    ``out + kernel - 1 <= L``.
    """
    return _plan_fractional_cached(op, tuple(int(s) for s in shape), freeze(kernel_size),
                                   freeze(output_size), freeze(output_ratio), freeze(axes), n)


def fractional_arguments(op, kernel_size, output_size=None, output_ratio=None, axes=None,
                         n: int | None = None):
    """The checks of :func:`plan_fractional` that need no input (layers run them when made):
    ``(N, kernel, output lengths, ratios)``, the lengths None when ratios are given and
    the ratios None when lengths are."""
    _check_fractional_output(op, output_size, output_ratio)
    name, sizes = "kernel_size", kernel_size
    if not isinstance(kernel_size, tuple):  # a tuple output_size or output_ratio may fix N
        for other, value in (("output_size", output_size), ("output_ratio", output_ratio)):
            if isinstance(value, tuple):
                name, sizes = other, value
    ndim_pooled = _pooled_ndim(op, sizes, axes, n, name=name)
    kernel = positive_ints("kernel_size", kernel_size, ndim_pooled)
    if output_size is not None:
        return ndim_pooled, kernel, positive_ints("output_size", output_size, ndim_pooled), None
    ratios = output_ratio if isinstance(output_ratio, tuple) else (output_ratio,) * ndim_pooled
    if len(ratios) != ndim_pooled:
        raise ValueError(f"output_ratio={output_ratio!r} has {len(ratios)} values but "
                         f"{ndim_pooled} axes are pooled")
    return ndim_pooled, kernel, None, ratios


@_plan_cache
def _plan_fractional_cached(op, shape, kernel_size, output_size, output_ratio, axes, n):
    ndim_pooled, kernel, out_lengths, ratios = fractional_arguments(
        op, kernel_size, output_size, output_ratio, axes, n)
    axes = _normalize_axes(op, axes, ndim_pooled, len(shape))
    lengths = tuple(shape[a] for a in axes)
    if out_lengths is None:
        out_lengths = _ratio_lengths(op, ratios, axes, lengths)
    for i, (axis, length, k, out) in enumerate(zip(axes, lengths, kernel, out_lengths)):
        if out + k - 1 > length:
            raise ValueError(
                f"{op}: axis {axis} (pooled axis {i}) has length {length}, too short for "
                f"{out} windows of kernel_size {k}: output length + kernel_size - 1 must be "
                f"<= {length}"
            )
    perm, outer_shape, inner_shape = _layout(shape, axes)
    return FractionalPlan(op=op, in_shape=shape, axes=axes, lengths=lengths, kernel=kernel,
                          out_lengths=out_lengths, perm=perm, outer_shape=outer_shape,
                          inner_shape=inner_shape)


def _check_fractional_output(op, output_size, output_ratio) -> None:
    """Exactly one of ``output_size`` and ``output_ratio``; every ratio a number in ``(0, 1)``."""
    if (output_size is None) == (output_ratio is None):
        given = "neither" if output_size is None else "both"
        raise ValueError(f"{op} needs exactly one of output_size and output_ratio, got {given}")
    if output_ratio is None:
        return
    ratios = output_ratio if isinstance(output_ratio, (tuple, list)) else (output_ratio,)
    for ratio in ratios:
        if isinstance(ratio, (bool, np.bool_)) or not isinstance(ratio, numbers.Real):
            raise TypeError(
                f"output_ratio must be a number or a tuple of numbers, got {output_ratio!r}"
            )
        if not 0 < ratio < 1:  # also catches NaN
            raise ValueError(
                f"output_ratio={output_ratio!r}: every ratio must lie in (0, 1), got {ratio!r}"
            )


def _ratio_lengths(op, ratios, axes, lengths):
    """``int(L * ratio)`` per axis (one ratio per axis, checked already), each length >= 1."""
    out = []
    for i, (axis, length, ratio) in enumerate(zip(axes, lengths, ratios)):
        length_out = int(length * float(ratio))
        if length_out < 1:
            raise ValueError(
                f"{op}: axis {axis} (pooled axis {i}) has length {length}, and "
                f"output_ratio {ratio!r} leaves int({length} * {ratio!r}) = 0 outputs"
            )
        out.append(length_out)
    return tuple(out)


def check_samples(samples, batch_shape: tuple[int, ...], ndim: int) -> np.ndarray:
    """``samples`` broadcast to ``batch_shape + (N,)``, every value in ``[0, 1)``."""
    arr = as_array(samples, "samples")
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"samples must hold real numbers in [0, 1), got dtype {arr.dtype}")
    want = (*batch_shape, ndim)
    try:
        arr = np.broadcast_to(arr, want)
    except ValueError:
        raise ValueError(
            f"samples of shape {arr.shape} do not broadcast to {want}: the batch axes of the "
            f"input, then one sample per pooled axis"
        ) from None
    if arr.size:
        low, high = arr.min(), arr.max()
        if not (low >= 0 and high < 1):  # NaN fails both
            raise ValueError(f"samples must lie in [0, 1), got values from {low} to {high}")
    return arr


def fractional_starts(samples: np.ndarray, plan: FractionalPlan) -> list[np.ndarray]:
    """Per pooled axis, the start of every window of every plane: ``(planes, out)`` int64.

    PyTorch's sequence (``generate_intervals``), in the arithmetic of
    ``samples.dtype`` as PyTorch computes it in the input's dtype:
    ``alpha = (L - k) / (out - 1)``, ``start[i] = int((i + u) * alpha) -
    int(u * alpha)``, and the last window ends the axis. ``samples`` is
    ``(planes, N)``; column ``a`` belongs to pooled axis ``a``.
    """
    real = samples.dtype.type
    starts = []
    for a, (length, k, out) in enumerate(zip(plan.lengths, plan.kernel, plan.out_lengths)):
        u = samples[:, a]
        start = np.empty((u.shape[0], out), np.int64)
        if out > 1:
            alpha = real(length - k) / real(out - 1)
            i = np.arange(out - 1).astype(samples.dtype)  # the int converts to the float type
            start[:, :-1] = (((i + u[:, None]) * alpha).astype(np.int64)
                             - (u * alpha).astype(np.int64)[:, None])
        start[:, -1] = length - k
        if start.size and (start.min() < 0 or start.max() > length - k):
            # only reachable when the float type is too coarse for the axis (float16)
            raise ValueError(
                f"{plan.op}: samples put a window of axis {plan.axes[a]} outside its length "
                f"{length} (window starts from {start.min()} to {start.max()})"
            )
        starts.append(start)
    return starts


# --------------------------------------------------------------------------- max-unpooling


def plan_unpool(op: str, shape: tuple[int, ...], kernel_size, stride=None, padding=0,
                output_size=None, axes=None, n: int | None = None) -> PoolPlan:
    """Check the arguments of a max-unpooling call and return its plan.

    The plan is that of the max pooling the call inverts: its input
    (``in_shape``, ``lengths``) is the unpooled output and its output
    (``out_shape``, ``out_lengths``) is ``shape``, the array being unpooled.
    Each unpooled length is PyTorch's ``(L - 1)*s + k - pad_before - pad_after``
    unless ``output_size`` (N lengths, or the whole shape) says otherwise,
    within ``stride`` of it either way.
    """
    return _plan_unpool_cached(op, tuple(int(s) for s in shape), freeze(kernel_size),
                               freeze(stride), freeze(padding), freeze(output_size),
                               freeze(axes), n)


def unpool_arguments(op, kernel_size, stride=None, padding=0, axes=None,
                     n: int | None = None):
    """The checks of :func:`plan_unpool` that need no input (layers run them when made):
    ``(N, kernel, stride, (before, after) padding)``."""
    ndim_pooled = _pooled_ndim(op, kernel_size, axes, n)
    kernel = positive_ints("kernel_size", kernel_size, ndim_pooled)
    stride = kernel if stride is None else positive_ints("stride", stride, ndim_pooled)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding={padding!r} needs the pooled input's length; give "
                         f"numeric padding, or output_size")
    return ndim_pooled, kernel, stride, _explicit_padding(padding, ndim_pooled)


@_plan_cache
def _plan_unpool_cached(op, shape, kernel_size, stride, padding, output_size, axes, n):
    ndim_pooled, kernel, stride, (before, after) = unpool_arguments(
        op, kernel_size, stride, padding, axes, n)
    axes = _normalize_axes(op, axes, ndim_pooled, len(shape))
    lengths = tuple(shape[a] for a in axes)
    ones = (1,) * ndim_pooled
    default = tuple((length - 1) * s + k - b - a
                    for length, k, s, b, a in zip(lengths, kernel, stride, before, after))
    sizes = default if output_size is None else _unpool_sizes(op, output_size, shape, axes)
    for i, (axis, length) in enumerate(zip(axes, lengths)):
        if length < 1:
            raise ValueError(f"{op}: axis {axis} (pooled axis {i}) has length 0: nothing to "
                             f"unpool")
        low, high = default[i] - stride[i], default[i] + stride[i]
        if output_size is not None and not low < sizes[i] < high:
            raise ValueError(
                f"{op}: output_size={output_size!r}: axis {axis} (pooled axis {i}) must have "
                f"a length between {low} and {high} (exclusive), got {sizes[i]}"
            )
        if sizes[i] < 1:
            raise ValueError(
                f"{op}: axis {axis} (pooled axis {i}) of length {length} unpools to length "
                f"{sizes[i]} with kernel_size {kernel[i]}, stride {stride[i]}, padding "
                f"({before[i]}, {after[i]}); the output would be empty"
            )
    unpooled = list(shape)
    for axis, size in zip(axes, sizes):
        unpooled[axis] = size
    perm, outer_shape, inner_shape = _layout(shape, axes)
    return PoolPlan(op=op, in_shape=tuple(unpooled), axes=axes, lengths=sizes, kernel=kernel,
                    stride=stride, dilation=ones, pad_before=before, pad_after=after,
                    out_lengths=lengths, perm=perm, outer_shape=outer_shape,
                    inner_shape=inner_shape)


def _unpool_sizes(op, output_size, shape, axes):
    """N unpooled lengths from ``output_size``: N lengths, or a whole shape (batch axes kept)."""
    ndim = len(axes)
    if isinstance(output_size, tuple) and len(output_size) == len(shape) != ndim:
        for a, (want, have) in enumerate(zip(output_size, shape)):
            if a not in axes and want != have:
                raise ValueError(
                    f"{op}: output_size={output_size!r} gives axis {a} length {want}, but the "
                    f"input's batch axis {a} has length {have}"
                )
        output_size = tuple(output_size[a] for a in axes)
    elif isinstance(output_size, tuple) and len(output_size) != ndim:
        raise ValueError(
            f"output_size={output_size!r} has {len(output_size)} values: give {ndim} (the pooled "
            f"axes) or {len(shape)} (the whole shape)"
        )
    return _ints("output_size", output_size, ndim)


# --------------------------------------------------------------------------- arrays and choices


NAN_POLICIES = ("propagate", "omit")


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name}={value!r} must be one of {', '.join(map(repr, choices))}")


def check_divisor(divisor_override) -> int:
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


def check_grad(grad_output, plan: PoolPlan) -> np.ndarray:
    grad = as_real_array(grad_output, "grad_output")
    if grad.shape != plan.out_shape:
        raise ValueError(
            f"grad_output has shape {grad.shape} but {plan.op} of an input of shape "
            f"{plan.in_shape} gives {plan.out_shape}"
        )
    return grad


def check_shape(input_shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise TypeError(f"input_shape must be a tuple of ints, got {input_shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"input_shape={input_shape!r} has a negative length")
    return shape
