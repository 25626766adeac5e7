"""Max pooling: forward with the winning position, backward by scatter-add.

Ties go to the first maximum in row-major window order (strict ``>``).
With ``omit_nan`` False a NaN always wins (PyTorch: ``v > best or isnan(v)``,
so the last NaN is chosen); with it True NaN is skipped unless the whole
window is NaN, which then reports its first element.

The forward walks one output row at a time and, for each input row the
row's windows touch, folds that row's taps of every window and merges the
result into the output row. Folding a run of taps and then merging it with
the same rule gives exactly the tap-by-tap result, for ties and NaN alike.
"""

from numba import njit, prange

from ._windows import inside_outputs, taps_in_input


@njit(inline="always")
def _wins(v, best, omit_nan):
    # v != v is the NaN test (it folds away for integers)
    if omit_nan:
        return (v > best) | ((best != best) & (v == v))
    return (v > best) | (v != v)


@njit(inline="always")
def _fold_output(x_row, out_row, pos_row, first, ow, tw_lo, tw_hi, origin, C, sw, dw, code, code_ow,
                 code_tap, with_positions, omit_nan):
    """Fold taps ``tw_lo..tw_hi-1`` of window ``ow`` (at ``origin + ow*sw``) into the output."""
    start = origin + ow * sw
    for c in range(C):
        best = x_row[(start + tw_lo * dw) * C + c]
        best_tw = tw_lo
        for tw in range(tw_lo + 1, tw_hi):
            v = x_row[(start + tw * dw) * C + c]
            wins = _wins(v, best, omit_nan)
            best = v if wins else best
            best_tw = tw if wins else best_tw
        i = ow * C + c
        position = code + code_ow * ow + code_tap * best_tw
        if first:
            out_row[i] = best
            if with_positions:
                pos_row[i] = position
        else:
            # a select, not a branch, so that the loop over outputs vectorises
            held = out_row[i]
            wins = _wins(best, held, omit_nan)
            out_row[i] = best if wins else held
            if with_positions:
                pos_row[i] = position if wins else pos_row[i]


@njit(inline="always")
def _fold_inside(x_row, out_row, pos_row, first, ow_lo, ow_hi, pw, C, kw, sw, dw, code, code_ow,
                 code_tap, with_positions, omit_nan):
    """Fold one input row into the windows ``ow_lo..ow_hi-1``, which lie wholly inside it.

    The views start at the first such window, so that no index can be
    negative and the compiler vectorises the loop.
    """
    x_in = x_row[(ow_lo * sw - pw) * C:]
    out_in, pos_in = out_row[ow_lo * C:], pos_row[ow_lo * C:]
    code_in = code + code_ow * ow_lo
    for j in range(ow_hi - ow_lo):
        _fold_output(x_in, out_in, pos_in, first, j, 0, kw, 0, C, sw, dw, code_in, code_ow,
                     code_tap, with_positions, omit_nan)


@njit(nogil=True, cache=True)
def _fold_edges(x_row, out_row, pos_row, first, ow_lo, ow_hi, W, OW, C, kw, sw, dw, pw, code,
                code_ow, code_tap, with_positions, omit_nan):
    """Fold one input row into the windows that overhang its ends (few, so not inlined)."""
    for ow in range(OW):
        if ow_lo <= ow < ow_hi:
            continue
        _, tw_lo, tw_hi = taps_in_input(ow, W, kw, sw, dw, pw)
        _fold_output(x_row, out_row, pos_row, first, ow, tw_lo, tw_hi, -pw, C, sw, dw, code,
                     code_ow, code_tap, with_positions, omit_nan)


@njit(inline="always")
def _fold_row(x_row, out_row, pos_row, first, W, OW, C, kw, sw, dw, pw, code, code_ow, code_tap,
              with_positions, omit_nan):
    """Fold one input row into every window of one output row."""
    ow_lo, ow_hi = inside_outputs(W, kw, sw, dw, pw, OW)
    if first:
        _fold_inside_literal(x_row, out_row, pos_row, True, ow_lo, ow_hi, pw, C, kw, sw, dw,
                             code, code_ow, code_tap, with_positions, omit_nan)
    else:
        _fold_inside_literal(x_row, out_row, pos_row, False, ow_lo, ow_hi, pw, C, kw, sw, dw,
                             code, code_ow, code_tap, with_positions, omit_nan)
    if ow_lo > 0 or ow_hi < OW:
        _fold_edges(x_row, out_row, pos_row, first, ow_lo, ow_hi, W, OW, C, kw, sw, dw, pw,
                    code, code_ow, code_tap, with_positions, omit_nan)


@njit(inline="always")
def _fold_inside_literal(x_row, out_row, pos_row, first, ow_lo, ow_hi, pw, C, kw, sw, dw, code,
                         code_ow, code_tap, with_positions, omit_nan):
    """:func:`_fold_inside` with literal sizes for the common windows, which vectorise best."""
    if C == 1 and kw == 2 and sw == 2 and dw == 1:
        _fold_inside(x_row, out_row, pos_row, first, ow_lo, ow_hi, pw, 1, 2, 2, 1, code,
                     code_ow, code_tap, with_positions, omit_nan)
    elif C == 1 and kw == 3 and sw == 2 and dw == 1:
        _fold_inside(x_row, out_row, pos_row, first, ow_lo, ow_hi, pw, 1, 3, 2, 1, code,
                     code_ow, code_tap, with_positions, omit_nan)
    else:
        _fold_inside(x_row, out_row, pos_row, first, ow_lo, ow_hi, pw, C, kw, sw, dw, code,
                     code_ow, code_tap, with_positions, omit_nan)


@njit(inline="always")
def _max_pool(x, out, position, C, flat_index, kernel, stride, dilation, pad, with_positions,
              omit_nan):
    """Max-pool ``x`` ``(B, D, H, W*C)`` into ``out`` ``(B, OD, OH, OW*C)``.

    ``position`` (same shape as ``out``) receives, when ``with_positions``,
    either the flat index of the maximum within ``D, H, W`` (``flat_index``)
    or its row-major tap number inside the window. All windows of one output
    row share their in-bounds rows, so the first of those rows sets every
    output and the others merge into it.
    """
    B, D, H, W = x.shape[0], x.shape[1], x.shape[2], x.shape[3] // C
    OD, OH, OW = out.shape[1], out.shape[2], out.shape[3] // C
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    # one job per output row, so that a single plane still fills every core
    for job in prange(B * OD * OH):
        b = job // (OD * OH)
        od = job // OH % OD
        oh = job % OH
        d0, td_lo, td_hi = taps_in_input(od, D, kd, sd, dd, pd)
        h0, th_lo, th_hi = taps_in_input(oh, H, kh, sh, dh, ph)
        out_row = out[b, od, oh]
        pos_row = position[b, od, oh]
        for td in range(td_lo, td_hi):
            for th in range(th_lo, th_hi):
                i_d, i_h = d0 + td * dd, h0 + th * dh
                first = td == td_lo and th == th_lo
                code, code_ow, code_tap = _codes(flat_index, i_d, i_h, H, W, pw, td, th, kh, kw,
                                                 sw, dw)
                _fold_row(x[b, i_d, i_h], out_row, pos_row, first, W, OW, C, kw, sw, dw, pw,
                          code, code_ow, code_tap, with_positions, omit_nan)


@njit(inline="always")
def _codes(flat_index, i_d, i_h, H, W, pw, td, th, kh, kw, sw, dw):
    """Position of tap ``tw`` of window ``ow`` in row ``(i_d, i_h)``: ``code + ow*a + tw*b``."""
    if flat_index:
        return (i_d * H + i_h) * W - pw, sw, dw
    return (td * kh + th) * kw, 0, 1


# One compiled kernel per choice of what to report, so that each inner loop
# carries no test of it.


@njit(parallel=True, cache=True, nogil=True)
def max_pool_values(x, out, C, kernel, stride, dilation, pad):
    _max_pool(x, out, out, C, False, kernel, stride, dilation, pad, False, False)


@njit(parallel=True, cache=True, nogil=True)
def max_pool_values_omit_nan(x, out, C, kernel, stride, dilation, pad):
    _max_pool(x, out, out, C, False, kernel, stride, dilation, pad, False, True)


@njit(parallel=True, cache=True, nogil=True)
def max_pool_positions(x, out, position, C, flat_index, kernel, stride, dilation, pad):
    _max_pool(x, out, position, C, flat_index, kernel, stride, dilation, pad, True, False)


@njit(parallel=True, cache=True, nogil=True)
def max_pool_positions_omit_nan(x, out, position, C, flat_index, kernel, stride,
                                dilation, pad):
    _max_pool(x, out, position, C, flat_index, kernel, stride, dilation, pad, True, True)


@njit(parallel=True, cache=True, nogil=True)
def max_pool_backward_window(grad_out, position, grad_in, kernel, stride, dilation, pad):
    """Add each output's gradient to the input element at its window position."""
    B, OD, OH, OW, C = grad_out.shape
    _, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    # planes are independent; within a plane windows may overlap, so it is walked in order
    for b in prange(B):
        for od in range(OD):
            for oh in range(OH):
                for ow in range(OW):
                    for c in range(C):
                        t = position[b, od, oh, ow, c]
                        td = t // (kh * kw)
                        th = t // kw % kh
                        tw = t % kw
                        i_d = od * sd - pd + td * dd
                        i_h = oh * sh - ph + th * dh
                        i_w = ow * sw - pw + tw * dw
                        grad_in[b, i_d, i_h, i_w, c] += grad_out[b, od, oh, ow, c]


@njit(parallel=True, cache=True, nogil=True)
def scatter_add_flat(grad_out, index, grad_in):
    """``grad_in[b, index[b, q, c], c] += grad_out[b, q, c]``, in output order."""
    B, Q, C = grad_out.shape
    for b in prange(B):
        for q in range(Q):
            for c in range(C):
                grad_in[b, index[b, q, c], c] += grad_out[b, q, c]
