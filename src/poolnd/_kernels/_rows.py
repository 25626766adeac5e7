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
place.

The inner loop over a row is compiled once per choice of reduction, of
whether positions are kept, of first row or later row, and for a few common
window shapes with literal sizes: each such loop carries no test of any of
them, so the compiler vectorises it. Kernels take a range of jobs (output
rows, or planes for the backwards); ``poolnd._parallel`` spreads the ranges
over threads.
"""

from functools import cache

from numba import njit, types
from numba.extending import overload

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


# (C, kw, sw, dw) of the windows that get a loop with literal sizes
LITERAL_SHAPES = ((1, 2, 2, 1), (1, 3, 2, 1))

@cache
def _make_fold_inside(first, with_positions, reduction, shape):
    """The loop that folds one input row into every window of one output row.

    The windows wholly inside the row come first, through views that start at
    the first of them, so that no index can be negative and the loop
    vectorises; then the few that overhang the row's ends. ``shape`` fixes
    ``(C, kw, sw, dw)`` as literals, or is None.
    """
    literal = shape is not None
    C_, kw_, sw_, dw_ = shape if literal else (1, 1, 1, 1)

    @njit(nogil=True)
    def fold_inside(x_row, out_row, pos_row, ow_lo, ow_hi, pw, C, kw, sw, dw, code, code_ow,
                    code_tap, W, OW):
        if literal:
            C, kw, sw, dw = C_, kw_, sw_, dw_
        x_in = x_row[(ow_lo * sw - pw) * C:]
        out_in, pos_in = out_row[ow_lo * C:], pos_row[ow_lo * C:]
        code_in = code + code_ow * ow_lo
        for j in range(ow_hi - ow_lo):
            _fold_output(x_in, out_in, pos_in, first, j, 0, kw, 0, C, sw, dw, code_in, code_ow,
                         code_tap, with_positions, reduction)
        for i in range(ow_lo + OW - ow_hi):
            ow = i if i < ow_lo else ow_hi + i - ow_lo  # the left edge, then the right
            _, tw_lo, tw_hi = taps_in_input(ow, W, kw, sw, dw, pw)
            _fold_output(x_row, out_row, pos_row, first, ow, tw_lo, tw_hi, -pw, C, sw, dw, code,
                         code_ow, code_tap, with_positions, reduction)

    return fold_inside


def _row_loop(with_positions, reduction, first, shape, *args):
    """Run the row loop compiled for these literal choices (see the overload below)."""


@overload(_row_loop, prefer_literal=True)
def _row_loop_typed(with_positions, reduction, first, shape, *args):
    choices = (with_positions, reduction, first, shape)
    if not all(isinstance(c, types.Literal) for c in choices):
        return None
    with_positions, reduction, first, shape = (c.literal_value for c in choices)
    loop = _make_fold_inside(first, with_positions, reduction,
                             LITERAL_SHAPES[shape] if shape < len(LITERAL_SHAPES) else None)

    def run(with_positions, reduction, first, shape, *args):
        loop(*args)

    return run


@njit(inline="always")
def _fold_inside(with_positions, reduction, first, literal, x_row, out_row, pos_row, ow_lo,
                 ow_hi, pw, C, kw, sw, dw, code, code_ow, code_tap, W, OW):
    """Fold one input row into its inside windows with the loop compiled for this case."""
    a = (x_row, out_row, pos_row, ow_lo, ow_hi, pw, C, kw, sw, dw, code, code_ow, code_tap, W, OW)
    # every choice must reach _row_loop as a literal, hence one call per case
    if first and literal == 0:
        _row_loop(with_positions, reduction, True, 0, a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                  a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14])
    elif first and literal == 1:
        _row_loop(with_positions, reduction, True, 1, a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                  a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14])
    elif first:
        _row_loop(with_positions, reduction, True, 2, a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                  a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14])
    elif literal == 0:
        _row_loop(with_positions, reduction, False, 0, a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                  a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14])
    elif literal == 1:
        _row_loop(with_positions, reduction, False, 1, a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                  a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14])
    else:
        _row_loop(with_positions, reduction, False, 2, a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                  a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14])


@njit(inline="always")
def _codes(flat_index, i_d, i_h, H, W, pw, td, th, kh, kw, sw, dw):
    """Position of tap ``tw`` of window ``ow`` in row ``(i_d, i_h)``: ``code + ow*a + tw*b``."""
    if flat_index:
        return (i_d * H + i_h) * W - pw, sw, dw
    return (td * kh + th) * kw, 0, 1


@njit(inline="always")
def pool_rows(x, out, position, C, flat_index, kernel, stride, dilation, pad, divisors, job_lo,
              job_hi, with_positions, reduction):
    """Reduce the windows of output rows ``job_lo..job_hi-1`` of ``x`` into ``out``.

    Job ``j`` is output row ``(b, od, oh)`` in row-major order. ``position``
    (shaped as ``out``) receives, when ``with_positions``, the flat index of
    each maximum within ``D, H, W`` (``flat_index``) or its row-major tap
    number inside the window. Sums are divided by
    ``divisors[0][od] * divisors[1][oh] * divisors[2][ow]``.
    """
    D, H, W = x.shape[1], x.shape[2], x.shape[3] // C
    OD, OH, OW = out.shape[1], out.shape[2], out.shape[3] // C
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    ow_lo, ow_hi = inside_outputs(W, kw, sw, dw, pw, OW)
    shape = (C, kw, sw, dw)
    literal = 0 if shape == LITERAL_SHAPES[0] else 1 if shape == LITERAL_SHAPES[1] else 2
    for job in range(job_lo, job_hi):
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
                x_row = x[b, i_d, i_h]
                first = td == td_lo and th == th_lo
                _fold_inside(with_positions, reduction, first, literal, x_row, out_row, pos_row,
                             ow_lo, ow_hi, pw, C, kw, sw, dw, code, code_ow, code_tap, W, OW)
        if reduction == SUM:
            scale = divisors[0][od] * divisors[1][oh]
            for ow in range(OW):
                for c in range(C):
                    out_row[ow * C + c] /= scale * divisors[2][ow]
