"""Brute-force reference pooling, the oracle for what PyTorch lacks.

Every function here is a plain loop over batch positions, output positions and
window taps, written to be read side by side with docs/SPEC.md, sections 1 to 3.
Nothing is shared with poolnd: the geometry is worked out again from the
contract. Only meant for small arrays.

``ref_<name>`` is the reference of ``poolnd.<name>``, for each op of poolnd's
table (``poolnd._ops.OPS``) and its backward, and takes the same arguments; the
references of max-type ops always return ``(out, indices)``, so they take no
``return_indices``. ``tests/test_ops.py`` finds them by that name.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np

# --- geometry (docs/SPEC.md section 1) -----------------------------------------------


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

    Raises ValueError where docs/SPEC.md section 1 does: an output length < 1 or a
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


# --- forward passes (docs/SPEC.md section 2) -----------------------------------------


def _window_max(taps, nan_policy):
    """(value, flat index) of a window's maximum from its ``(value, flat)`` taps, in order.

    Strict ``>``: the first maximum wins. "propagate": ``v > best or isnan(v)``,
    so the last NaN wins. "omit": NaN is skipped; an all-NaN window gives NaN
    and its first element.
    """
    best, best_flat, first_flat = None, None, None
    for v, flat in taps:
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
        return np.nan, first_flat
    return best, best_flat


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
            # padding is virtual -inf: it never wins, so only taps inside take part
            taps = ((xb[b + pos], _flat(plan, pos)) for pos in _taps(plan, o)
                    if _inside(plan, pos))
            out[b + o], idx[b + o] = _window_max(taps, nan_policy)
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
    """Average pooling: float (and 64-bit integer) input summed in float64, other integer
    input summed exactly (Python ints, each mean correctly rounded); float in -> same
    dtype, else float64.
    An integer ``dtype`` rounds each exact mean half to even and clips it to the range."""
    x = np.asarray(x)
    ax, plan = geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode, axes)
    if dtype is None:
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    rounded = np.dtype(dtype).kind in "iu"
    exact = x.dtype.kind in "biu" and x.dtype.itemsize <= 4  # 64-bit: in float64, as NumPy
    xb = _to_back(x, ax)
    batch_shape = xb.shape[: x.ndim - len(ax)]
    out = np.zeros(batch_shape + tuple(p[6] for p in plan), dtype=object)
    for b in itertools.product(*(range(n) for n in batch_shape)):
        for o in _windows(plan):
            total = 0 if exact else 0.0
            for pos in _taps(plan, o):
                if _inside(plan, pos):
                    total += int(xb[b + pos]) if exact else float(xb[b + pos])
            divisor = _divisor(plan, o, count_include_pad, divisor_override)
            out[b + o] = round(Fraction(total) / divisor) if rounded else total / divisor
    if rounded:
        info = np.iinfo(dtype)
        out = np.clip(out, info.min, info.max)
    return _from_back(out, ax).astype(dtype)


# --- backward passes (docs/SPEC.md section 3) ----------------------------------------


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



# --- adaptive pooling (docs/SPEC.md sections 2 and 3) ---------------------------------


def adaptive_windows(length, out):
    """PyTorch's window per output i: start (i*L)//O, end ceil((i+1)*L/O), end excluded."""
    return [((i * length) // out, -(-((i + 1) * length) // out)) for i in range(out)]


def adaptive_geometry(shape, output_size, axes):
    """The pooled axes and, per pooled axis, the list of (start, end) windows."""
    if axes is None:
        n = len(output_size)
        axes = tuple(range(len(shape) - n, len(shape)))
    ax = tuple(a + len(shape) if a < 0 else a for a in axes)
    sizes = output_size
    if isinstance(sizes, (int, np.integer)):
        sizes = (sizes,) * len(ax)
    windows = []
    for a, size in zip(ax, sizes):
        out = shape[a] if size is None else int(size)  # None keeps the axis
        windows.append(adaptive_windows(shape[a], out))
    return ax, windows


def _adaptive_taps(windows, o):
    """Every position of window `o`, in row-major order."""
    return itertools.product(*(range(*windows[i][oi]) for i, oi in enumerate(o)))


def _adaptive_flat(lengths, pos):
    flat = 0
    for length, p in zip(lengths, pos):
        flat = flat * length + p
    return flat


def ref_adaptive_max_pool(x, output_size, *, axes=None, nan_policy="propagate"):
    """Adaptive max pooling: (out, indices); the rules of ref_max_pool, PyTorch's windows."""
    x = np.asarray(x)
    ax, windows = adaptive_geometry(x.shape, output_size, axes)
    xb = _to_back(x, ax)
    batch_shape = xb.shape[: x.ndim - len(ax)]
    lengths = xb.shape[x.ndim - len(ax):]
    out_shape = tuple(len(w) for w in windows)
    out = np.zeros(batch_shape + out_shape, dtype=x.dtype)
    idx = np.zeros(batch_shape + out_shape, dtype=np.int64)
    for b in itertools.product(*(range(n) for n in batch_shape)):
        for o in itertools.product(*(range(n) for n in out_shape)):
            taps = ((xb[b + pos], _adaptive_flat(lengths, pos))
                    for pos in _adaptive_taps(windows, o))
            out[b + o], idx[b + o] = _window_max(taps, nan_policy)
    return _from_back(out, ax), _from_back(idx, ax)


def ref_adaptive_avg_pool(x, output_size, *, axes=None):
    """Adaptive average pooling, summed in float64; float in -> same dtype, else float64."""
    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    ax, windows = adaptive_geometry(x.shape, output_size, axes)
    xb = _to_back(x, ax)
    batch_shape = xb.shape[: x.ndim - len(ax)]
    out_shape = tuple(len(w) for w in windows)
    out = np.zeros(batch_shape + out_shape, dtype=np.float64)
    for b in itertools.product(*(range(n) for n in batch_shape)):
        for o in itertools.product(*(range(n) for n in out_shape)):
            taps = [float(xb[b + pos]) for pos in _adaptive_taps(windows, o)]
            out[b + o] = sum(taps) / len(taps)
    return _from_back(out, ax).astype(dtype)


def ref_adaptive_max_pool_backward(grad, indices, input_shape, output_size, *, axes=None):
    """Scatter-add of grad to the elements the flat indices name, summed in float64."""
    grad, indices = np.asarray(grad), np.asarray(indices)
    ax, windows = adaptive_geometry(tuple(input_shape), output_size, axes)
    gb, ib = _to_back(grad, ax), _to_back(indices, ax)
    batch_shape = gb.shape[: grad.ndim - len(ax)]
    lengths = tuple(input_shape[a] for a in ax)
    gx = np.zeros(batch_shape + lengths, dtype=np.float64)
    for b in itertools.product(*(range(n) for n in batch_shape)):
        for o in itertools.product(*(range(len(w)) for w in windows)):
            gx[b + tuple(np.unravel_index(int(ib[b + o]), lengths))] += float(gb[b + o])
    return _from_back(gx, ax).astype(_grad_dtype(grad))


def ref_adaptive_avg_pool_backward(grad, input_shape, output_size, *, axes=None):
    """Each input element gets grad / (window size) of every window that holds it."""
    grad = np.asarray(grad)
    ax, windows = adaptive_geometry(tuple(input_shape), output_size, axes)
    gb = _to_back(grad, ax)
    batch_shape = gb.shape[: grad.ndim - len(ax)]
    gx = np.zeros(batch_shape + tuple(input_shape[a] for a in ax), dtype=np.float64)
    for b in itertools.product(*(range(n) for n in batch_shape)):
        for o in itertools.product(*(range(len(w)) for w in windows)):
            taps = list(_adaptive_taps(windows, o))
            for pos in taps:
                gx[b + pos] += float(gb[b + o]) / len(taps)
    return _from_back(gx, ax).astype(_grad_dtype(grad))


# --- LP pooling (docs/SPEC.md section 2) ---------------------------------------------


def _lp_geometry(shape, kernel_size, stride, ceil_mode, axes):
    return geometry(shape, kernel_size, stride, 0, 1, ceil_mode, axes)


def ref_lp_pool(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, axes=None):
    """(sum of x**p over the window's K taps) ** (1/p), in float64.

    PyTorch's details: no absolute value (np.power gives NaN for a negative
    base and a fractional exponent), and a ceil_mode window with only `count`
    taps inside the input has its sum scaled by K / count. norm_type=inf is
    the maximum of |x| (NaN propagates).
    """
    x = np.asarray(x)
    ax, plan = _lp_geometry(x.shape, kernel_size, stride, ceil_mode, axes)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
    p = float(norm_type)
    window_taps = int(np.prod([k for _, k, *_ in plan]))
    xb = _to_back(x, ax)
    batch_shape = xb.shape[: x.ndim - len(ax)]
    out = np.zeros(batch_shape + tuple(q[6] for q in plan), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for b in itertools.product(*(range(n) for n in batch_shape)):
            for o in _windows(plan):
                values = [np.float64(xb[b + pos]) for pos in _taps(plan, o) if _inside(plan, pos)]
                if p == np.inf:
                    out[b + o] = _window_max(((abs(v), 0) for v in values), "propagate")[0]
                    continue
                total = sum(np.power(v, p) for v in values)
                out[b + o] = np.power(total * window_taps / len(values), 1 / p)
    return _from_back(out, ax).astype(dtype)


def ref_lp_pool_backward(grad, x, norm_type, kernel_size, stride=None, ceil_mode=False, *,
                         axes=None):
    """d out / d x, summed over windows, in float64.

    Finite p: out = (S * K/count) ** (1/p) with S = sum of x**p, so each tap
    gets grad * out / S * x**(p-1); a window with S == 0 gives nothing. As in
    PyTorch's chain rule, each element's sum over its windows is then times its
    x**(p-1), also where no window holds it: 0 there, NaN for a NaN or inf x (p != 1).
    inf: the grad goes to the winning |x| (max pooling's rules), times its sign
    (0 for NaN, as PyTorch's sign).
    """
    grad, x = np.asarray(grad), np.asarray(x)
    ax, plan = _lp_geometry(x.shape, kernel_size, stride, ceil_mode, axes)
    p = float(norm_type)
    window_taps = int(np.prod([k for _, k, *_ in plan]))
    xb, gb = _to_back(x, ax), _to_back(grad, ax)
    batch_shape = xb.shape[: x.ndim - len(ax)]
    gx = np.zeros(xb.shape, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for b in itertools.product(*(range(n) for n in batch_shape)):
            for o in _windows(plan):
                g = float(gb[b + o])
                inside = [pos for pos in _taps(plan, o) if _inside(plan, pos)]
                values = [np.float64(xb[b + pos]) for pos in inside]
                if p == np.inf:
                    _, at = _window_max(((abs(v), i) for i, v in enumerate(values)), "propagate")
                    v = values[at]
                    gx[b + inside[at]] += g * (1.0 if v > 0 else -1.0 if v < 0 else 0.0)
                    continue
                total = sum(np.power(v, p) for v in values)
                if total == 0:
                    continue
                out = np.power(total * window_taps / len(values), 1 / p)
                for pos in inside:
                    gx[b + pos] += g * out / total
        if p != np.inf:
            gx *= np.power(xb.astype(np.float64), p - 1)
    return _from_back(gx, ax).astype(_grad_dtype(grad))


# --- fractional max pooling (docs/SPEC.md section 2) ----------------------------------


def ref_fractional_starts(u, length, out, k, dtype):
    """PyTorch's generate_intervals, one operation at a time in `dtype` arithmetic:
    alpha = (L - k) / (out - 1); start[i] = int((i + u) * alpha) - int(u * alpha);
    the last window ends the axis."""
    real = np.dtype(dtype).type
    u = real(u)
    if out == 1:
        return [length - k]
    alpha = real(length - k) / real(out - 1)
    starts = [int((real(i) + u) * alpha) - int(u * alpha) for i in range(out - 1)]
    return starts + [length - k]


def ref_fractional_max_pool(x, kernel_size, output_size=None, output_ratio=None, *, samples,
                            axes=None):
    """Fractional max pooling: returns (out, indices). `samples` broadcasts to the batch
    shape + (N,); samples[..., a] belongs to pooled axis a. The sequence runs in x's
    float dtype (float64 for integer input)."""
    x = np.asarray(x)
    ax = pooled_axes(x.ndim, kernel_size, axes)
    n = len(ax)
    k = _as_tuple(kernel_size, n, "kernel_size")
    lengths = [x.shape[a] for a in ax]
    if output_size is not None:
        outs = _as_tuple(output_size, n, "output_size")
    else:
        ratios = output_ratio if isinstance(output_ratio, tuple) else (output_ratio,) * n
        outs = tuple(int(length * r) for length, r in zip(lengths, ratios))
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
    xb = _to_back(x, ax)
    batch_shape = xb.shape[: x.ndim - n]
    samples = np.broadcast_to(np.asarray(samples), batch_shape + (n,))
    out = np.zeros(batch_shape + outs, dtype=x.dtype)
    idx = np.zeros(batch_shape + outs, dtype=np.int64)
    for b in itertools.product(*(range(m) for m in batch_shape)):
        starts = [ref_fractional_starts(samples[b + (a,)], lengths[a], outs[a], k[a], dtype)
                  for a in range(n)]
        for o in itertools.product(*(range(m) for m in outs)):
            ranges = [range(starts[a][o[a]], starts[a][o[a]] + k[a]) for a in range(n)]
            candidates = []
            for pos in itertools.product(*ranges):
                flat = 0
                for a in range(n):
                    flat = flat * lengths[a] + pos[a]
                candidates.append((xb[b + pos], flat))
            out[b + o], idx[b + o] = _window_max(candidates, "propagate")
    return _from_back(out, ax), _from_back(idx, ax)


def ref_fractional_max_pool_backward(grad, indices, input_shape, kernel_size, output_size=None,
                                     output_ratio=None, *, axes=None):
    """Scatter-add of grad to the elements the flat indices name, summed in float64 (the
    forward drew the windows; its indices are all the backward needs)."""
    grad, indices = np.asarray(grad), np.asarray(indices)
    input_shape = tuple(input_shape)
    ax = pooled_axes(len(input_shape), kernel_size, axes)
    n = len(ax)
    gb, ib = _to_back(grad, ax), _to_back(indices, ax)
    batch_shape = gb.shape[: grad.ndim - n]
    plan = [(input_shape[a],) for a in ax]  # _unflat needs the lengths only
    gx = np.zeros(batch_shape + tuple(input_shape[a] for a in ax), dtype=np.float64)
    for b in itertools.product(*(range(m) for m in batch_shape)):
        for o in itertools.product(*(range(m) for m in gb.shape[grad.ndim - n:])):
            gx[b + _unflat(plan, int(ib[b + o]))] += float(gb[b + o])
    return _from_back(gx, ax).astype(_grad_dtype(grad))


# --- max-unpooling (docs/SPEC.md sections 2 and 3) ------------------------------------


def _unpool_sizes(shape, ax, k, s, padding, output_size):
    n = len(ax)
    if isinstance(padding, (int, np.integer)):
        padding = (padding,) * n
    pads = [(p, p) if isinstance(p, (int, np.integer)) else tuple(p) for p in padding]
    if output_size is None:
        return tuple((shape[a] - 1) * s[i] + k[i] - sum(pads[i]) for i, a in enumerate(ax))
    output_size = tuple(output_size)
    if len(output_size) == len(shape) and len(shape) != n:
        return tuple(output_size[a] for a in ax)
    return output_size


def ref_max_unpool(x, indices, kernel_size, stride=None, padding=0, output_size=None, *,
                   axes=None):
    """Zeros of the unpooled shape; each value of x is added at its flat index (so
    repeated indices sum). Default length per axis: (L - 1)*s + k - pad_before - pad_after."""
    x, indices = np.asarray(x), np.asarray(indices)
    ax = pooled_axes(x.ndim, kernel_size, axes)
    n = len(ax)
    k = _as_tuple(kernel_size, n, "kernel_size")
    s = k if stride is None else _as_tuple(stride, n, "stride")
    sizes = _unpool_sizes(x.shape, ax, k, s, padding, output_size)
    xb, ib = _to_back(x, ax), _to_back(indices, ax)
    batch_shape = xb.shape[: x.ndim - n]
    if np.issubdtype(x.dtype, np.floating):
        acc = np.float64
    else:
        acc = np.uint64 if x.dtype.kind == "u" else np.int64
    out = np.zeros(batch_shape + sizes, dtype=acc)
    plan = [(size,) for size in sizes]  # _unflat needs the lengths only
    for b in itertools.product(*(range(m) for m in batch_shape)):
        for o in itertools.product(*(range(m) for m in xb.shape[x.ndim - n:])):
            out[b + _unflat(plan, int(ib[b + o]))] += xb[b + o]
    return _from_back(out, ax).astype(x.dtype)


def ref_max_unpool_backward(grad, indices, kernel_size, stride=None, padding=0,
                            output_size=None, *, axes=None):
    """The gather: grad_x at o is grad at the flat index indices[o]."""
    grad, indices = np.asarray(grad), np.asarray(indices)
    ax = pooled_axes(indices.ndim, kernel_size, axes)
    n = len(ax)
    gb, ib = _to_back(grad, ax), _to_back(indices, ax)
    batch_shape = ib.shape[: indices.ndim - n]
    plan = [(size,) for size in gb.shape[indices.ndim - n:]]
    gx = np.zeros(ib.shape, dtype=np.float64)
    for b in itertools.product(*(range(m) for m in batch_shape)):
        for o in itertools.product(*(range(m) for m in ib.shape[indices.ndim - n:])):
            gx[b + o] = gb[b + _unflat(plan, int(ib[b + o]))]
    return _from_back(gx, ax).astype(_grad_dtype(grad))
