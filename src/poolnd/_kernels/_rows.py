"""The row walk every forward kernel shares.

Each parallel job owns one output row ``(b, od, oh)``. All windows of that
row read the same input rows (their taps on ``D`` and ``H`` agree), so the
job visits each of those input rows once, in row-major tap order, folds the
row's taps of every window and merges the result into the output row: the
first input row sets the outputs, the others merge into them.

For a maximum, folding a run of taps and then merging with the same rule
gives exactly the tap-by-tap result, ties and NaN included. For a sum it is
the sum, grouped by rows.

Layout: ``x`` is ``(B, D, H, W*C)`` and ``out`` ``(B, OD, OH, OW*C)``: the
inner batch axis ``C`` stays beside ``W``, so channels-last data is read in
place. ``reduction`` is a literal in every compiled kernel, so each inner
loop is specialised and carries no test of it.
"""

from numba import njit, prange

from ._windows import inside_outputs, taps_in_input

MAX = 0  # NaN wins, as in PyTorch: ``v > best or isnan(v)``
MAX_OMIT_NAN = 1  # NaN is skipped unless the whole window is NaN
SUM = 2


@njit(inline="always")
def _wins(v, best, reduction):
    # v != v is the NaN test (it folds away for integers)
    if reduction == MAX_OMIT_NAN:
        return (v > best) | ((best != best) & (v == v))
    return (v > best) | (v != v)


@njit(inline="always")
def _fold_output(x_row, out_row, pos_row, first, ow, tw_lo, tw_hi, origin, C, sw, dw, code,
                 code_ow, code_tap, with_positions, reduction):
    """Fold taps ``tw_lo..tw_hi-1`` of window ``ow`` (at ``origin + ow*sw``) into the output."""
    start = origin + ow * sw
    for c in range(C):
        i = ow * C + c
        best = x_row[(start + tw_lo * dw) * C + c]
        if reduction == SUM:
            for tw in range(tw_lo + 1, tw_hi):
                best += x_row[(start + tw * dw) * C + c]
            out_row[i] = best if first else out_row[i] + best
            continue
        best_tw = tw_lo
        for tw in range(tw_lo + 1, tw_hi):
            v = x_row[(start + tw * dw) * C + c]
            wins = _wins(v, best, reduction)
            best = v if wins else best
            best_tw = tw if wins else best_tw
        position = code + code_ow * ow + code_tap * best_tw
        if first:
            out_row[i] = best
            if with_positions:
                pos_row[i] = position
        else:
            # a select, not a branch, so that the loop over outputs vectorises
            held = out_row[i]
            wins = _wins(best, held, reduction)
            out_row[i] = best if wins else held
            if with_positions:
                pos_row[i] = position if wins else pos_row[i]


@njit(inline="always")
def _fold_inside(x_row, out_row, pos_row, first, ow_lo, ow_hi, pw, C, kw, sw, dw, code, code_ow,
                 code_tap, with_positions, reduction):
    """Fold one input row into the windows ``ow_lo..ow_hi-1``, which lie wholly inside it.

    The views start at the first such window, so that no index can be
    negative and the compiler vectorises the loop.
    """
    x_in = x_row[(ow_lo * sw - pw) * C:]
    out_in, pos_in = out_row[ow_lo * C:], pos_row[ow_lo * C:]
    code_in = code + code_ow * ow_lo
    for j in range(ow_hi - ow_lo):
        _fold_output(x_in, out_in, pos_in, first, j, 0, kw, 0, C, sw, dw, code_in, code_ow,
                     code_tap, with_positions, reduction)


@njit(inline="always")
def _fold_inside_literal(x_row, out_row, pos_row, first, ow_lo, ow_hi, pw, C, kw, sw, dw, code,
                         code_ow, code_tap, with_positions, reduction):
    """:func:`_fold_inside` with literal sizes for the common windows, which vectorise best."""
    if C == 1 and kw == 2 and sw == 2 and dw == 1:
        _fold_inside(x_row, out_row, pos_row, first, ow_lo, ow_hi, pw, 1, 2, 2, 1, code,
                     code_ow, code_tap, with_positions, reduction)
    elif C == 1 and kw == 3 and sw == 2 and dw == 1:
        _fold_inside(x_row, out_row, pos_row, first, ow_lo, ow_hi, pw, 1, 3, 2, 1, code,
                     code_ow, code_tap, with_positions, reduction)
    else:
        _fold_inside(x_row, out_row, pos_row, first, ow_lo, ow_hi, pw, C, kw, sw, dw, code,
                     code_ow, code_tap, with_positions, reduction)


@njit(nogil=True, cache=True)
def _fold_edges(x_row, out_row, pos_row, first, ow_lo, ow_hi, W, OW, C, kw, sw, dw, pw, code,
                code_ow, code_tap, with_positions, reduction):
    """Fold one input row into the windows that overhang its ends (few, so not inlined)."""
    for ow in range(OW):
        if ow_lo <= ow < ow_hi:
            continue
        _, tw_lo, tw_hi = taps_in_input(ow, W, kw, sw, dw, pw)
        _fold_output(x_row, out_row, pos_row, first, ow, tw_lo, tw_hi, -pw, C, sw, dw, code,
                     code_ow, code_tap, with_positions, reduction)


@njit(inline="always")
def _fold_row(x_row, out_row, pos_row, first, W, OW, C, kw, sw, dw, pw, code, code_ow, code_tap,
              with_positions, reduction):
    """Fold one input row into every window of one output row."""
    ow_lo, ow_hi = inside_outputs(W, kw, sw, dw, pw, OW)
    # a literal ``first`` keeps the merge out of the first row's loop
    if first:
        _fold_inside_literal(x_row, out_row, pos_row, True, ow_lo, ow_hi, pw, C, kw, sw, dw,
                             code, code_ow, code_tap, with_positions, reduction)
    else:
        _fold_inside_literal(x_row, out_row, pos_row, False, ow_lo, ow_hi, pw, C, kw, sw, dw,
                             code, code_ow, code_tap, with_positions, reduction)
    if ow_lo > 0 or ow_hi < OW:
        _fold_edges(x_row, out_row, pos_row, first, ow_lo, ow_hi, W, OW, C, kw, sw, dw, pw,
                    code, code_ow, code_tap, with_positions, reduction)


@njit(inline="always")
def _codes(flat_index, i_d, i_h, H, W, pw, td, th, kh, kw, sw, dw):
    """Position of tap ``tw`` of window ``ow`` in row ``(i_d, i_h)``: ``code + ow*a + tw*b``."""
    if flat_index:
        return (i_d * H + i_h) * W - pw, sw, dw
    return (td * kh + th) * kw, 0, 1


@njit(inline="always")
def pool_rows(x, out, position, C, flat_index, kernel, stride, dilation, pad, with_positions,
              reduction, divisors):
    """Reduce every window of ``x`` into ``out``, one parallel job per output row.

    ``position`` (shaped as ``out``) receives, when ``with_positions``, the
    flat index of each maximum within ``D, H, W`` (``flat_index``) or its
    row-major tap number inside the window. Sums are divided by
    ``divisors[0][od] * divisors[1][oh] * divisors[2][ow]``.
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
        out_row, pos_row = out[b, od, oh], position[b, od, oh]
        for td in range(td_lo, td_hi):
            for th in range(th_lo, th_hi):
                i_d, i_h = d0 + td * dd, h0 + th * dh
                code, code_ow, code_tap = _codes(flat_index, i_d, i_h, H, W, pw, td, th, kh, kw,
                                                 sw, dw)
                _fold_row(x[b, i_d, i_h], out_row, pos_row, td == td_lo and th == th_lo, W, OW,
                          C, kw, sw, dw, pw, code, code_ow, code_tap, with_positions, reduction)
        if reduction == SUM:
            scale = divisors[0][od] * divisors[1][oh]
            for ow in range(OW):
                for c in range(C):
                    out_row[ow * C + c] /= scale * divisors[2][ow]
