"""Every shape rule of poolnd: arguments in, one frozen plan per call out.

The functional ops and the layers call :func:`plan_pool` and nothing else to
learn which axes are pooled, how long the output is and where each window
sits. Every argument error of SPEC §1 and §5 is raised here, before any work.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


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
    def out_shape(self) -> tuple[int, ...]:
        """Shape of the output in the input's own axis order."""
        shape = list(self.in_shape)
        for axis, out in zip(self.axes, self.out_lengths):
            shape[axis] = out
        return tuple(shape)

    @property
    def canonical_in(self) -> tuple[int, ...]:
        """Input shape in the kernels' layout ``(B, *lengths, C)``."""
        return (math.prod(self.outer_shape), *self.lengths, math.prod(self.inner_shape))


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
        _freeze(kernel_size),
        _freeze(stride),
        _freeze(padding),
        _freeze(dilation),
        check_flag("ceil_mode", ceil_mode),
        _freeze(axes),
        n,
    )


def _freeze(value):
    """Lists and arrays become tuples, so that arguments can key the plan cache."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.ndarray):
        return _freeze(value.tolist())
    return value


@lru_cache(maxsize=512)
def _plan_cached(op, shape, kernel_size, stride, padding, dilation, ceil_mode, axes, n):
    ndim_pooled = _pooled_ndim(op, kernel_size, axes, n)
    axes = _normalize_axes(op, axes, ndim_pooled, len(shape))
    lengths = tuple(shape[a] for a in axes)
    kernel = _positive_ints("kernel_size", kernel_size, ndim_pooled)
    stride = kernel if stride is None else _positive_ints("stride", stride, ndim_pooled)
    dilation = _positive_ints("dilation", dilation, ndim_pooled)
    pad_before, pad_after = _padding(padding, lengths, kernel, stride, dilation)

    out_lengths = []
    for i in range(ndim_pooled):
        out = _out_length(i, axes[i], lengths[i], kernel[i], stride[i], dilation[i],
                          pad_before[i], pad_after[i], ceil_mode)
        out_lengths.append(out)

    pooled = set(axes)
    last = max(axes)
    inner = [a for a in range(last + 1, len(shape)) if a not in pooled]
    outer = [a for a in range(len(shape)) if a not in pooled and a not in inner]
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
        perm=(*outer, *axes, *inner),
        outer_shape=tuple(shape[a] for a in outer),
        inner_shape=tuple(shape[a] for a in inner),
    )


def check_flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _pooled_ndim(op, kernel_size, axes, n):
    """N, the number of pooled axes: from the op's name, ``axes`` or a tuple ``kernel_size``."""
    sources = []
    if n is not None:
        sources.append((n, f"{op} pools {n} axes"))
    if axes is not None:
        if _is_int(axes):
            raise TypeError(f"axes must be a tuple of ints, got {axes!r}; write axes=({axes},)")
        if not isinstance(axes, tuple) or not axes:
            raise TypeError(f"axes must be a non-empty tuple of ints, got {axes!r}")
        sources.append((len(axes), f"axes={axes!r} names {len(axes)}"))
    if isinstance(kernel_size, tuple):
        if not kernel_size:
            raise ValueError("kernel_size=() is empty: give at least one window length")
        sources.append((len(kernel_size), f"kernel_size={kernel_size!r} has {len(kernel_size)}"))
    if not sources:
        hint = "" if op.endswith("_backward") else f", or call {op}2d"
        raise ValueError(
            f"{op}: kernel_size={kernel_size!r} does not say how many axes to pool; pass a "
            f"tuple such as kernel_size=({kernel_size}, {kernel_size}), or axes=(-2, -1){hint}"
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
    for axis in axes:
        if not _is_int(axis):
            raise TypeError(f"axes must hold ints, got {axes!r}")
        if not -ndim <= axis < ndim:
            raise ValueError(f"axes={axes!r}: axis {axis} is out of range for {ndim}-d input")
        normalized.append(int(axis) % ndim)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"axes={axes!r} names the same axis twice")
    return tuple(normalized)


def _positive_ints(name, value, ndim):
    """An int or an N-tuple of ints, each >= 1, as an N-tuple."""
    values = _ints(name, value, ndim)
    for v in values:
        if v < 1:
            raise ValueError(f"{name}={value!r}: every value must be >= 1, got {v}")
    return values


def _ints(name, value, ndim):
    if _is_int(value):
        return (int(value),) * ndim
    if isinstance(value, tuple):
        if len(value) != ndim:
            raise ValueError(
                f"{name}={value!r} has {len(value)} values but {ndim} axes are pooled"
            )
        if all(_is_int(v) for v in value):
            return tuple(int(v) for v in value)
    raise TypeError(f"{name} must be an int or a tuple of {ndim} ints, got {value!r}")


def _padding(padding, lengths, kernel, stride, dilation):
    """(before, after) padding per axis from any accepted spelling of ``padding``."""
    ndim = len(lengths)
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * ndim, (0,) * ndim
        if padding == "same":
            return _same_padding(lengths, kernel, stride, dilation)
        raise ValueError(f"padding={padding!r} must be 'valid', 'same', an int or a tuple")
    if isinstance(padding, tuple) and len(padding) == ndim:
        pairs = []
        for p in padding:
            if _is_int(p):
                pairs.append((p, p))
            elif isinstance(p, tuple) and len(p) == 2 and all(_is_int(q) for q in p):
                pairs.append(p)
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


def _same_padding(lengths, kernel, stride, dilation):
    """TensorFlow's "same": ceil(L/s) outputs, any odd padding goes after."""
    before, after = [], []
    for length, k, s, d in zip(lengths, kernel, stride, dilation):
        extent = d * (k - 1) + 1
        out = -(-length // s)
        total = max((out - 1) * s + extent - length, 0)
        before.append(total // 2)
        after.append(total - total // 2)
    return tuple(before), tuple(after)


def _out_length(i, axis, length, k, s, d, before, after, ceil_mode):
    """PyTorch's output length, then the rule that every window holds an input element."""
    extent = d * (k - 1) + 1
    span = length + before + after - extent
    clash = (
        f"axis {axis} (pooled axis {i}) has length {length}, kernel_size {k}, stride {s}, "
        f"dilation {d}, padding ({before}, {after})"
    )
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
        start = missed * s - before
        raise ValueError(
            f"{clash}: window {missed} covers positions {start}..{start + extent - 1} "
            f"in steps of {d} and holds no input element"
        )
    return out


def _first_empty_window(length, k, s, d, before, out):
    """Index of the first window whose taps all fall in the padding, or None.

    A window that starts inside the input holds its first tap; one that starts
    at or past the end holds none. Only windows starting in the left padding
    need a closer look: their first in-input tap may jump past the input.
    """
    if before > d * (k - 1):
        return 0  # even the last tap of the first window is padding
    n_left = min(out, -(-before // s))  # windows with start < 0
    if n_left:
        starts = np.arange(n_left, dtype=np.int64) * s - before
        first_tap = (-starts + d - 1) // d
        holds = (first_tap <= k - 1) & (starts + first_tap * d <= length - 1)
        if not holds.all():
            return int(np.argmin(holds))
    first_past_end = -(-(length + before) // s)  # first window with start >= length
    return first_past_end if first_past_end < out else None
