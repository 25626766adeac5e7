"""Brute-force reference pooling, the oracle for what PyTorch lacks.

Every function here is a plain loop over batch positions, output positions and
window taps, written to be read side by side with SPEC.md, sections 1 to 3.
Nothing is shared with poolnd: the geometry is worked out again from the
contract. Only meant for small arrays.
"""

from __future__ import annotations

import itertools

import numpy as np

# --- geometry (SPEC section 1) -----------------------------------------------


def _as_tuple(value, n, name):
    if isinstance(value, (int, np.integer)):
        return (int(value),) * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise ValueError(f"{name} has {len(value)} entries, expected {n}")
    return value


def pooled_axes(ndim, kernel_size, axes):
    """The pooled axes, in the order given (that order fixes the flat index)."""
    if axes is None:
        if isinstance(kernel_size, (int, np.integer)):
            raise ValueError("a bare int kernel_size needs axes= to fix N")
        n = len(kernel_size)
        return tuple(range(ndim - n, ndim))
    axes = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
    normalized = tuple(a + ndim if a < 0 else a for a in axes)
    if len(set(normalized)) != len(normalized) or not all(0 <= a < ndim for a in normalized):
        raise ValueError(f"bad axes {axes} for {ndim} dimensions")
    return normalized


def out_length(length, k, s, d, before, after, ceil_mode):
    """PyTorch's output length, with the ceil_mode last-window rule."""
    e = d * (k - 1) + 1
    numerator = length + before + after - e + (s - 1 if ceil_mode else 0)
    out = numerator // s + 1
    if ceil_mode and (out - 1) * s >= length + before:
        out -= 1
    return out


def same_padding(length, k, s, d):
    """TensorFlow's "same": out = ceil(L/s), the odd pad goes after."""
    e = d * (k - 1) + 1
    out = -(-length // s)
    total = max((out - 1) * s + e - length, 0)
    return total // 2, total - total // 2


def geometry(shape, kernel_size, stride, padding, dilation, ceil_mode, axes):
    """Per pooled axis: (length, k, s, d, before, after, out), plus the axes.

    Raises ValueError where SPEC section 1 does: an output length < 1 or a
    window none of whose taps lands in the input.
    """
    ax = pooled_axes(len(shape), kernel_size, axes)
    n = len(ax)
    k = _as_tuple(kernel_size, n, "kernel_size")
    s = k if stride is None else _as_tuple(stride, n, "stride")
    d = _as_tuple(dilation, n, "dilation")
    lengths = [shape[a] for a in ax]
    if isinstance(padding, str):
        if padding == "valid":
            pads = [(0, 0)] * n
        elif padding == "same":
            pads = [same_padding(lengths[i], k[i], s[i], d[i]) for i in range(n)]
        else:
            raise ValueError(f"bad padding {padding!r}")
    elif isinstance(padding, (int, np.integer)):
        pads = [(int(padding), int(padding))] * n
    else:
        padding = tuple(padding)
        if len(padding) != n:
            raise ValueError(f"padding has {len(padding)} entries, expected {n}")
        pads = [(int(p), int(p)) if isinstance(p, (int, np.integer)) else tuple(p)
                for p in padding]
    plan = []
    for i in range(n):
        before, after = pads[i]
        out = out_length(lengths[i], k[i], s[i], d[i], before, after, ceil_mode)
        if out < 1:
            raise ValueError(f"axis {ax[i]}: output length {out} < 1")
        for o in range(out):
            taps = [o * s[i] - before + t * d[i] for t in range(k[i])]
            if not any(0 <= p < lengths[i] for p in taps):
                raise ValueError(f"axis {ax[i]}: window {o} misses the input")
        plan.append((lengths[i], k[i], s[i], d[i], before, after, out))
    return ax, plan


def _windows(plan):
    """Every output position, as a tuple of per-axis output indices."""
    return itertools.product(*(range(p[6]) for p in plan))


def _taps(plan, o):
    """Every tap of window `o`: its position per axis (may lie in padding)."""
    per_axis = [
        [o[i] * s - before + t * d for t in range(k)]
        for i, (_, k, s, d, before, _, _) in enumerate(plan)
    ]
    return itertools.product(*per_axis)


def _inside(plan, pos):
    return all(0 <= p < plan[i][0] for i, p in enumerate(pos))


def _inside_padded(plan, pos):
    return all(-plan[i][4] <= p < plan[i][0] + plan[i][5] for i, p in enumerate(pos))


def _flat(plan, pos):
    """Row-major flat index of `pos` within the pooled axes."""
    flat = 0
    for i, p in enumerate(pos):
        flat = flat * plan[i][0] + p
    return flat


def _unflat(plan, flat):
    pos = []
    for length, *_ in reversed(plan):
        pos.append(flat % length)
        flat //= length
    return tuple(reversed(pos))


def _to_back(x, ax):
    """Move the pooled axes, in the given order, to the end."""
    n = len(ax)
    return np.moveaxis(x, ax, tuple(range(x.ndim - n, x.ndim)))


def _from_back(y, ax):
    n = len(ax)
    return np.moveaxis(y, tuple(range(y.ndim - n, y.ndim)), ax)


def _isnan(v):
    return isinstance(v, np.floating) and bool(np.isnan(v))


# --- forward passes (SPEC section 2) -----------------------------------------


def ref_max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                 axes=None, nan_policy="propagate"):
    """Max pooling: returns (out, indices), out in x's dtype, indices int64."""
    if nan_policy not in ("propagate", "omit"):
        raise ValueError(f"bad nan_policy {nan_policy!r}")
    x = np.asarray(x)
    ax, plan = geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    xb = _to_back(x, ax)
    batch_shape = xb.shape[: x.ndim - len(ax)]
    out_shape = tuple(p[6] for p in plan)
    out = np.zeros(batch_shape + out_shape, dtype=x.dtype)
    idx = np.zeros(batch_shape + out_shape, dtype=np.int64)
    for b in itertools.product(*(range(n) for n in batch_shape)):
        for o in _windows(plan):
            best, best_flat, first_flat = None, None, None
            for pos in _taps(plan, o):
                if not _inside(plan, pos):
                    continue  # padding is virtual -inf: it never wins
                v = xb[b + pos]
                flat = _flat(plan, pos)
                if first_flat is None:
                    first_flat = flat
                if nan_policy == "omit":
                    if _isnan(v):
                        continue
                    if best is None or v > best:
                        best, best_flat = v, flat
                elif best is None or v > best or _isnan(v):
                    best, best_flat = v, flat
            if best is None:  # only reachable with "omit" on an all-NaN window
                best, best_flat = np.nan, first_flat
            out[b + o] = best
            idx[b + o] = best_flat
    return _from_back(out, ax), _from_back(idx, ax)


def _divisor(plan, o, count_include_pad, divisor_override):
    if divisor_override is not None:
        return divisor_override
    count = 0
    for pos in _taps(plan, o):
        if count_include_pad:
            # explicit padding counts; a ceil_mode overhang past it does not
            count += _inside_padded(plan, pos)
        else:
            count += _inside(plan, pos)
    return count


def ref_avg_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                 count_include_pad=True, divisor_override=None, *, axes=None, dtype=None):
    """Average pooling, summed in float64; float in -> same dtype, else float64."""
    x = np.asarray(x)
    ax, plan = geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    if dtype is None:
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    xb = _to_back(x, ax)
    batch_shape = xb.shape[: x.ndim - len(ax)]
    out = np.zeros(batch_shape + tuple(p[6] for p in plan), dtype=np.float64)
    for b in itertools.product(*(range(n) for n in batch_shape)):
        for o in _windows(plan):
            total = 0.0
            for pos in _taps(plan, o):
                if _inside(plan, pos):
                    total += float(xb[b + pos])
            out[b + o] = total / _divisor(plan, o, count_include_pad, divisor_override)
    return _from_back(out, ax).astype(dtype)


# --- backward passes (SPEC section 3) ----------------------------------------


def _grad_dtype(grad):
    return grad.dtype if np.issubdtype(grad.dtype, np.floating) else np.dtype(np.float64)


def ref_max_pool_backward(grad, indices, input_shape, kernel_size, stride=None, padding=0,
                          dilation=1, ceil_mode=False, *, axes=None):
    """Scatter-add of grad to the chosen elements, summed in float64."""
    grad = np.asarray(grad)
    indices = np.asarray(indices)
    input_shape = tuple(input_shape)
    ax, plan = geometry(input_shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    gb = _to_back(grad, ax)
    ib = _to_back(indices, ax)
    batch_shape = gb.shape[: grad.ndim - len(ax)]
    gx = np.zeros(batch_shape + tuple(p[0] for p in plan), dtype=np.float64)
    for b in itertools.product(*(range(n) for n in batch_shape)):
        for o in _windows(plan):
            gx[b + _unflat(plan, int(ib[b + o]))] += float(gb[b + o])
    return _from_back(gx, ax).astype(_grad_dtype(grad))


def ref_avg_pool_backward(grad, input_shape, kernel_size, stride=None, padding=0, dilation=1,
                          ceil_mode=False, count_include_pad=True, divisor_override=None, *,
                          axes=None):
    """Each input element gets grad/divisor of every window that holds it."""
    grad = np.asarray(grad)
    input_shape = tuple(input_shape)
    ax, plan = geometry(input_shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    gb = _to_back(grad, ax)
    batch_shape = gb.shape[: grad.ndim - len(ax)]
    gx = np.zeros(batch_shape + tuple(p[0] for p in plan), dtype=np.float64)
    for b in itertools.product(*(range(n) for n in batch_shape)):
        for o in _windows(plan):
            share = float(gb[b + o]) / _divisor(plan, o, count_include_pad, divisor_override)
            for pos in _taps(plan, o):
                if _inside(plan, pos):
                    gx[b + pos] += share
    return _from_back(gx, ax).astype(_grad_dtype(grad))

