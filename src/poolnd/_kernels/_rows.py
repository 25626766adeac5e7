"""The row walk every forward kernel shares.

Each parallel job owns one output row ``(b, od, oh)``. All windows of that
row read the same input rows (their taps on ``D`` and ``H`` agree), so the
job visits each of those input rows once, in row-major tap order, and merges
the row's taps into every window of the output row.

The output row starts at the reduction's identity (-inf, NaN for "omit",
the dtype's minimum, or 0 for sums) and each window's position starts at its
first tap inside the input; every tap then merges, in row-major order. For
a maximum that is exactly the tap-by-tap rule, ties and NaN included. Sums
are held in a scratch row of the identity's dtype (integer input sums
exactly in a wide integer) and each is divided once into the output row,
rounded half to even when that is an integer row.

Layout: ``x`` is ``(B, D, H, W*C)`` and ``out`` ``(B, OD, OH, OW*C)``: the
inner batch axis ``C`` stays beside ``W``, so channels-last data is read in
place.

Positions are found after the values (see :func:`_locate_inside`): each
window's taps are compared with its maximum, last to first, and under MAX a
row whose maxima hold a NaN is searched again for each window's last NaN.
They are kept as codes in an int64 scratch row: tap ``tw`` of input row
code ``code`` is ``code + tw*code_tap``, and the job turns each code into
the reported position, ``code + ow*code_ow + code_0``, once at the end
(narrow position dtypes in the inner loop would stop it vectorising).

Three inner loops, picked per call so that the compiler vectorises each:
- a common window shape, ``C == 1`` or an image's 3 or 4 channels: the
  shape's sizes and ``C`` are literals, the taps and channels unroll and the
  loop runs over the windows (for images, across pixels, not along 3
  channels);
- ``C == 1`` and stride 1: over the contiguous windows, three taps per
  pass with each window's best in a register;
- otherwise window by window, over the ``C`` contiguous channels
  (channels-last data), three taps per pass with each channel's best in a
  register; the windows that overhang the row's ends go tap by tap.
Each input row is still merged into the output row in a pass of its own: a
pass that merges a single tap becomes masked stores (see ``_fold_taps``).
The loops index views that start where they start: an index offset by a
variable stops the compiler from vectorising.

Rows that go straight into the output: where every input row of an output
row's windows lies inside the input, rows of 2x2 windows (all inside on
``W`` too) and of 3x3 stride-2 windows (the row's edge windows in the same
loop) are folded with each window's taps in registers, its value and
position written once (:func:`_make_two_row_loop`,
:func:`_make_three_row_loop`). The walk takes the other rows, and the rows
whose maxima hold a NaN.

Two ways of inlining, chosen per helper. ``inline="always"`` copies the
helper's code into the caller's before typing: for the kernel's body and
the helpers its loops call with array views or literal flags (a call would
count references on each view, and the flags' dead branches are pruned only
in the caller). It costs compile time at every call site, so the rest
(helpers of scalars, and a loop called once per input row) are
``forceinline``: typed once, and inlined by LLVM, which makes the same
code. That halved the compile time of a kernel.

:func:`forward_kernel` makes one kernel per reduction, with or without
positions, and per literal shape, compiled on first use; where rows may go
straight into the output, that loop is a kernel of its own and the walk
compiles only when a call has rows for it (a first 2x2 maximum compiled in
3.3 s with both in one kernel, 1.3 s without the walk). Kernels take a
range of jobs; ``poolnd._parallel`` spreads ranges over threads.
"""

import math
from functools import cache

import numpy as np
from numba import njit, types
from numba.extending import overload
from numba.np.numpy_support import as_dtype

from ._cache import cached_kernel
from ._windows import inside_outputs, per_output, taps_in_input
from .reductions import MAX, MAX_OMIT_NAN, SUM, beats

# (C, kw, sw, dw) of the rows that get a loop with literal sizes: one channel (or
# channels-first data), 2x2 windows of RGB and RGBA images, and (C = 0: any other C, which
# the loop reads from the row; see literal_shape) the 2x2 and 3x3 stride-2 windows of
# channels-last networks. Each one is a kernel of its own, compiled on first use, so the
# list is short
LITERAL_SHAPES = ((1, 2, 2, 1), (1, 3, 2, 1), (1, 4, 4, 1), (3, 2, 2, 1), (4, 2, 2, 1),
                  (0, 2, 2, 1), (0, 3, 2, 1))
GENERIC = len(LITERAL_SHAPES)
# How many rows high (kh, with kd == 1) a shape's windows must be to go straight into the
# output, when every input row of an output row's windows lies inside the input: 2x2
# windows (see _make_two_row_loop) and the 3x3 stride-2 windows of ResNet's and CIFAR
# networks' pooling (see _make_three_row_loop); 0 for never. Indexed by any shape, GENERIC
# last.
WHOLE_ROW_HEIGHT = (*({(2, 2): 2, (3, 2): 3}.get((kw, sw), 0) for _, kw, sw, _ in LITERAL_SHAPES),
                    0)


# Sums of 3x3 stride-2 windows go straight into the output on rows of at most this many
# windows; on longer rows the walk's tap-by-tap passes, which vectorise across the row, are
# faster (float32, 2 threads: rows of 16 windows 10.6 -> 7.3 ms, of 28 6.3 -> 3.9 ms, of
# 56 13.2 -> 15.3 ms)
_SHORT_SUM_ROW = 32


def _store(row, i, value):
    """``row[i] = value``; into an integer row rounded half to even, clipped to its range."""


# not inlined into numba's IR: that stops the compiler vectorising the loop it is in
# (2x slower on uint8 rows); LLVM inlines it all the same
@overload(_store)
def _store_typed(row, i, value):
    if isinstance(row.dtype, types.Integer):
        info = np.iinfo(as_dtype(row.dtype))
        lowest, highest = float(info.min), float(info.max)

        def store_rounded(row, i, value):
            row[i] = min(max(np.rint(value), lowest), highest)
        return store_rounded

    def store(row, i, value):
        row[i] = value
    return store


def _store_mean(row, i, total, shift):
    """``_store(row, i, total / 2**shift)``, for ``shift >= 1`` a constant of the caller's."""


@overload(_store_mean)
def _store_mean_typed(row, i, total, shift):
    """An integer sum into an integer row is rounded in integers: through float64 (its
    rint and clipping) the loop ran three times as long on uint8 images, and so it did
    with a shift the compiler could not see as a constant."""
    if isinstance(row.dtype, types.Integer) and isinstance(total, types.Integer) and (
            np.can_cast(as_dtype(row.dtype), as_dtype(total))):
        info = np.iinfo(as_dtype(row.dtype))
        wide = as_dtype(total).type
        lowest, highest = wide(info.min), wide(info.max)

        def store_shifted(row, i, total, shift):
            # half to even: the floor of the quotient, plus one where the remainder is over
            # half, or half and that floor odd
            half_less_one = (wide(1) << (shift - 1)) - 1
            q = (total + half_less_one + ((total >> shift) & 1)) >> shift
            row[i] = min(max(q, lowest), highest)
        return store_shifted

    def store(row, i, total, shift):
        _store(row, i, total * (0.5 ** shift))
    return store


@njit(inline="always")
def _merge(acc, i, v, reduction):
    """Merge one tap's value into output ``i``: a select, not a branch, so that loops
    vectorise."""
    held = acc[i]
    if reduction == SUM:
        acc[i] = held + v
        return
    acc[i] = v if beats(v, held, reduction) else held


@njit(inline="always")
def _merge_run(x_run, acc_run, n, reduction):
    """Merge ``x_run[:n]`` into ``acc_run[:n]``.

    Views that start together: an index offset by a variable would stop the
    compiler from vectorising. Callers make each view once per run.
    """
    for j in range(n):
        _merge(acc_run, j, x_run[j], reduction)


@njit(inline="always")
def _fold_window(x_row, acc, ow, tw_lo, tw_hi, start, C, dw, reduction):
    """Merge taps ``tw_lo..tw_hi-1`` of the window at ``start`` into output ``ow``, per channel."""
    if C == 1:  # an edge window of a row: views would cost more than they save
        for tw in range(tw_lo, tw_hi):
            _merge(acc, ow, x_row[start + tw * dw], reduction)
        return
    acc_w = acc[ow * C:(ow + 1) * C]
    for tw in range(tw_lo, tw_hi):
        x_at = (start + tw * dw) * C
        _merge_run(x_row[x_at:x_at + C], acc_w, C, reduction)


@njit(inline="always")
def _locate_window(x_row, best, codes, ow, tw_lo, tw_hi, start, C, dw, code, code_tap):
    """:func:`_locate_inside` for the edge window ``ow``, taps ``tw_lo..tw_hi-1``."""
    for c in range(C):
        i = ow * C + c
        m, p = best[i], codes[i]
        for t in range(tw_hi - tw_lo):
            tw = tw_hi - 1 - t
            p = code + tw * code_tap if x_row[(start + tw * dw) * C + c] == m else p
        codes[i] = p


@njit(inline="always")
def _locate_inside(x_row, best, codes, ow_lo, ow_hi, pw, C, kw, sw, dw, code, code_tap):
    """Take, for each inside window ``ow_lo..ow_hi-1`` of a row, the code of each of its
    taps in ``x_row`` that equals the window's maximum ``best``, visiting them last to
    first, so that the one taken last is the first maximum in row-major order when the
    rows too are visited last to first (a NaN maximum equals no tap: see
    :func:`_locate_last_nan`).

    Positions are found after the values: each select here tests one comparison, and
    the loop vectorises, where merging value and position together (a compound test)
    became a mispredicted branch per tap, six times as slow.
    """
    x_in = x_row[(ow_lo * sw - pw) * C:]
    best_in = best[ow_lo * C:ow_hi * C]
    codes_in = codes[ow_lo * C:ow_hi * C]
    for j in range(ow_hi - ow_lo):
        for c in range(C):  # in a literal loop C and kw are literals: both unroll
            i = j * C + c
            m, p = best_in[i], codes_in[i]
            for t in range(kw):
                tw = kw - 1 - t
                p = code + tw * code_tap if x_in[(j * sw + tw * dw) * C + c] == m else p
            codes_in[i] = p


@cache
def _make_literal_loops(reduction, shape):
    """The loops over a row's inside windows for ``(C, kw, sw, dw)`` literal: the fold of
    values, and the search for positions."""
    C_literal, kw, sw, dw = LITERAL_SHAPES[shape]

    @njit(inline="always")
    def fold_inside(x_row, acc, ow_lo, ow_hi, pw, C_, kw_, sw_, dw_):
        # the row's sizes are this loop's literals, not the arguments; views from the
        # first inside window: no index is negative, none is offset
        C = C_literal if C_literal != 0 else C_
        x_in = x_row[(ow_lo * sw - pw) * C:]
        acc_in = acc[ow_lo * C:ow_hi * C]
        if reduction == SUM:  # tap by tap into the sums: this order vectorises best
            for j in range(ow_hi - ow_lo):
                for tw in range(kw):
                    for c in range(C):
                        acc_in[j * C + c] += x_in[(j * sw + tw * dw) * C + c]
            return
        for j in range(ow_hi - ow_lo):
            for c in range(C):  # C and kw are literals: the channels and taps unroll
                best = acc_in[j * C + c]
                for tw in range(kw):
                    v = x_in[(j * sw + tw * dw) * C + c]
                    best = v if beats(v, best, reduction) else best
                acc_in[j * C + c] = best

    @njit(inline="always")
    def locate_inside(x_row, best, codes, ow_lo, ow_hi, pw, C_, kw_, sw_, dw_, code, code_tap):
        C = C_literal if C_literal != 0 else C_
        _locate_inside(x_row, best, codes, ow_lo, ow_hi, pw, C, kw, sw, dw, code, code_tap)

    return fold_inside, locate_inside


def _row_fold_jit(with_positions):
    """How a whole-row loop's per-row fold is compiled.

    With positions: typed once and inlined by LLVM, as fast as inlined into numba's IR
    (which types it again in the kernel), and a kernel's first compile takes 2 s less.
    Values alone: inlined into the IR, where a call per row cost 40% (9.3 against
    13.3 ms on CIFAR's batch, 3x3 stride 2, one thread).
    """
    return njit(forceinline=True) if with_positions else njit(inline="always")


@cache
def _make_two_row_loop(with_positions, flat_index, reduction, shape):
    """An output row of 2x2 windows, all inside the input, ``(C, kw, sw, dw)`` literal,
    folded straight into the output: each window's taps held in registers, its value and
    position written once, no scratch row and nothing to finish (a row whose maxima hold
    a NaN then goes the row walk, for its last NaN's position). On short rows (MNIST's
    14 windows) the scratch row's passes cost more than the folds.

    ``x_0``, ``x_1`` are the two input rows and ``code_0``, ``code_1`` their first taps'
    codes. The position is the first maximum's (see :func:`_first_of_four`), computed
    (``code + j*code_ow + code_first``), not loaded from a table; a sum is divided by
    the window's size, 4 (the caller checks that every divisor of the row is that size):
    the compiler vectorises a loop only when it can check, at run time, that the rows it
    writes overlap none it reads, and it makes at most 8 such checks, so no table of
    divisors is read.
    """
    C_literal, kw, sw, dw = LITERAL_SHAPES[shape]
    assert kw == 2, "whole rows are rows of 2x2 windows"

    @_row_fold_jit(with_positions)
    def fold_row(x_0, x_1, x_2, out_row, pos_row, code_0, code_1, code_tap, code_ow,
                 code_first, identity, W, pw, ow_lo, ow_hi, row_lo, row_hi):
        C = C_literal if C_literal != 0 else x_0.shape[0] // W
        for j in range(out_row.shape[0] // C):
            for c in range(C):  # C (but for any C) and kw are literals: they unroll
                # not the identity, an argument: from a constant zero (an exact one for
                # integers) or the first tap, the compiler may narrow the lanes and fold the
                # first merge; from the identity, uint8 sums and 2x2 maxima with positions
                # ran 3 and 2 times as long. The same bits: the first tap beats -inf or
                # equals the dtype's minimum, and a sum's identity is zero.
                best = identity - identity if reduction == SUM else x_0[j * sw * C + c]
                for th in range(2):
                    x_th = x_0 if th == 0 else x_1
                    for tw in range(kw):
                        v = x_th[(j * sw + tw * dw) * C + c]
                        if reduction == SUM:
                            best += v
                        else:
                            best = v if beats(v, best, reduction) else best
                i = j * C + c
                if reduction == SUM:
                    _store_mean(out_row, i, best, 2)
                    continue
                out_row[i] = best
                if not with_positions:
                    continue
                at = (j * sw) * C + c
                tap = _first_of_four(x_0[at], x_0[at + dw * C], x_1[at], x_1[at + dw * C])
                if flat_index:
                    pos_row[i] = ((code_1 if tap >= 2 else code_0) + (tap & 1) * code_tap
                                  + j * code_ow + code_first)
                else:  # the tap's number is the position
                    pos_row[i] = tap

    return fold_row


@njit(forceinline=True)
def _first_of_four(a_0, a_1, a_2, a_3):
    """The number of the first maximum of four taps in row-major order, NaN aside (a row
    whose maxima hold a NaN is searched again): a tree of single comparisons, held in
    int32 beside float32 lanes. A MNIST 2x2 forward with tap numbers took 1.8 times as
    long as its values alone, where comparing each tap with the maximum as int64 codes
    took 2.35 times."""
    first = a_1 > a_0  # on a tie the earlier tap
    second = a_3 > a_2
    best_first = a_1 if first else a_0
    best_second = a_3 if second else a_2
    tap_first = np.int32(1) if first else np.int32(0)
    tap_second = np.int32(3) if second else np.int32(2)
    return tap_second if best_second > best_first else tap_first


@cache
def _make_three_row_loop(with_positions, flat_index, reduction, shape):
    """An output row of 3-wide windows three rows high whose input rows ``x_0``, ``x_1``,
    ``x_2`` all lie inside the input, ``(C, kw, sw, dw)`` literal, folded straight into
    the output: the inside windows ``ow_lo..ow_hi-1`` with their 9 taps in registers,
    then the one or two windows that overhang the row's ends, tap by tap.

    CIFAR's k3 s2 p1 forward (rows of 16 windows), one thread: 15.0 ms for
    the values and 35.9 with tap numbers in the row walk, 9.7 and 15.4 folded
    so. A sum adds the taps in the walk's order and is divided by the window's
    size, 9, as the walk's is (the caller checks that every divisor of the row,
    the edge windows' too, is that size).
    """
    C_literal, kw, sw, dw = LITERAL_SHAPES[shape]
    assert kw == 3, "three rows: 3-wide windows"
    size = 9.0  # the divisor of every window of a row whose windows' sums are divided here

    @_row_fold_jit(with_positions)
    def fold_row(x_0, x_1, x_2, out_row, pos_row, code_0, code_1, code_tap, code_ow,
                 code_first, identity, W, pw, ow_lo, ow_hi, row_lo, row_hi):
        C = C_literal if C_literal != 0 else x_0.shape[0] // W
        # views from the first inside window: no index is negative, none is offset
        at_0 = (ow_lo * sw - pw) * C
        y_0, y_1, y_2 = x_0[at_0:], x_1[at_0:], x_2[at_0:]
        out_in, pos_in = out_row[ow_lo * C:ow_hi * C], pos_row[ow_lo * C:ow_hi * C]
        for j in range(ow_hi - ow_lo):
            for c in range(C):
                at = j * sw * C + c
                # a sum from a constant zero, as in the two-row loop
                best = identity - identity if reduction == SUM else y_0[at]
                for th in range(3):
                    y_th = y_0 if th == 0 else (y_1 if th == 1 else y_2)
                    for tw in range(kw):
                        v = y_th[at + tw * dw * C]
                        if reduction == SUM:
                            best += v
                        else:
                            best = v if beats(v, best, reduction) else best
                i = j * C + c
                if reduction == SUM:
                    _store(out_in, i, best / size)
                    continue
                out_in[i] = best
                if not with_positions:
                    continue
                # the first maximum of each row of three, then of the rows' bests
                best_0, tap_0 = _first_of_three(y_0[at], y_0[at + dw * C], y_0[at + 2 * dw * C])
                best_1, tap_1 = _first_of_three(y_1[at], y_1[at + dw * C], y_1[at + 2 * dw * C])
                best_2, tap_2 = _first_of_three(y_2[at], y_2[at + dw * C], y_2[at + 2 * dw * C])
                second = best_1 > best_0
                best_01 = best_1 if second else best_0
                row = np.int32(1) if second else np.int32(0)
                tap = tap_1 if second else tap_0
                third = best_2 > best_01
                row = np.int32(2) if third else row
                tap = tap_2 if third else tap
                row = min(max(row, row_lo), row_hi)  # a stand-in row's maxima are its own
                pos_in[i] = _three_row_position(row, tap, ow_lo + j, flat_index, code_0,
                                                code_1, code_tap, code_ow, code_first)
        for e in range(ow_lo + out_row.shape[0] // C - ow_hi):
            ow = e if e < ow_lo else ow_hi + e - ow_lo  # the left edge, then the right
            start, tw_lo, tw_hi = taps_in_input(ow, W, kw, sw, dw, pw)
            for c in range(C):
                if reduction == SUM:
                    total = identity - identity
                    for th in range(3):
                        x_th = x_0 if th == 0 else (x_1 if th == 1 else x_2)
                        for tw in range(tw_lo, tw_hi):
                            total += x_th[(start + tw * dw) * C + c]
                    _store(out_row, ow * C + c, total / size)
                    continue
                first = (start + tw_lo * dw) * C + c
                best = strict = x_0[first]
                row, tap = np.int32(0), np.int32(tw_lo)
                for th in range(3):
                    x_th = x_0 if th == 0 else (x_1 if th == 1 else x_2)
                    for tw in range(tw_lo, tw_hi):
                        v = x_th[(start + tw * dw) * C + c]
                        best = v if beats(v, best, reduction) else best
                        later = v > strict  # the first maximum, NaN aside
                        strict = v if later else strict
                        row = np.int32(th) if later else row
                        tap = np.int32(tw) if later else tap
                out_row[ow * C + c] = best
                if with_positions:
                    pos_row[ow * C + c] = _three_row_position(
                        min(max(row, row_lo), row_hi), tap, ow, flat_index, code_0, code_1,
                        code_tap, code_ow, code_first)

    return fold_row


@njit(forceinline=True)
def _first_of_three(a_0, a_1, a_2):
    """The first maximum of three taps and its number, NaN aside: single comparisons."""
    later = a_1 > a_0
    best = a_1 if later else a_0
    tap = np.int32(1) if later else np.int32(0)
    later = a_2 > best
    return (a_2 if later else best), (np.int32(2) if later else tap)


@njit(forceinline=True)
def _three_row_position(row, tap, ow, flat_index, code_0, code_1, code_tap, code_ow,
                        code_first):
    """The position of tap ``tap`` of input row ``row`` (0 to 2) in window ``ow``: its
    number in the window, or its flat index from the first two rows' codes (the rows
    are evenly spaced: no select among three codes)."""
    if not flat_index:
        return row * 3 + tap
    return code_0 + row * (code_1 - code_0) + tap * code_tap + ow * code_ow + code_first


def _literal_values(*arguments):
    """The values of an overload's literal arguments, or None while any is not yet literal
    (numba then types the call again with literals)."""
    if not all(isinstance(a, types.Literal) for a in arguments):
        return None
    return tuple(a.literal_value for a in arguments)


def _fold_whole_row(shape, with_positions, flat_index, reduction, x_0, x_1, x_2, out_row,
                    pos_row, code_0, code_1, code_tap, code_ow, code_first, identity, W,
                    pw, ow_lo, ow_hi, row_lo, row_hi):
    """Fold an output row of whole inside windows straight into it (see the overload)."""


@overload(_fold_whole_row, prefer_literal=True, inline="always")
def _fold_whole_row_typed(shape, with_positions, flat_index, reduction, x_0, x_1, x_2, out_row,
                          pos_row, code_0, code_1, code_tap, code_ow, code_first,
                          identity, W, pw, ow_lo, ow_hi, row_lo, row_hi):
    """The loop for literal ``shape``, ``with_positions``, ``flat_index`` and
    ``reduction``; nothing for a shape without one (its kernels never take that branch).

    An overload, inlined after typing: inlined before typing (chosen in Python, as the
    loop over inside windows is), the same loop ran 1.5 times as slow on 2x2 maxima.
    """
    choices = _literal_values(shape, with_positions, flat_index, reduction)
    if choices is None:
        return None
    shape_, positions_, flat_index_, reduction_ = choices
    height = WHOLE_ROW_HEIGHT[shape_]
    if not height:
        def nothing(shape, with_positions, flat_index, reduction, x_0, x_1, x_2, out_row,
                    pos_row, code_0, code_1, code_tap, code_ow, code_first, identity, W,
                    pw, ow_lo, ow_hi, row_lo, row_hi):
            pass
        return nothing
    loop = (_make_two_row_loop if height == 2 else _make_three_row_loop)(
        positions_, flat_index_, reduction_, shape_)

    def run(shape, with_positions, flat_index, reduction, x_0, x_1, x_2, out_row, pos_row,
            code_0, code_1, code_tap, code_ow, code_first, identity, W, pw, ow_lo,
            ow_hi, row_lo, row_hi):
        loop(x_0, x_1, x_2, out_row, pos_row, code_0, code_1, code_tap, code_ow,
             code_first, identity, W, pw, ow_lo, ow_hi, row_lo, row_hi)

    return run


@cache
def _make_generic_loops(reduction):
    """The loops over a row's inside windows for any ``(C, kw, sw, dw)``: the fold of
    values, and the search for positions."""

    @njit(inline="always")
    def fold_inside(x_row, acc, ow_lo, ow_hi, pw, C, kw, sw, dw):
        _fold_inside_generic(x_row, acc, ow_lo, ow_hi, pw, C, kw, sw, dw, reduction)

    return fold_inside, _locate_inside


@njit(forceinline=True)
def _fold_inside_generic(x_row, acc, ow_lo, ow_hi, pw, C, kw, sw, dw, reduction):
    # at stride 1 the inside windows' taps form one contiguous run per tap; otherwise
    # window by window, each run over the window's C channels
    n_runs, n = (1, (ow_hi - ow_lo) * C) if sw == 1 else (ow_hi - ow_lo, C)
    for ow in range(ow_lo, ow_lo + n_runs):
        _fold_taps(x_row, (ow * sw - pw) * C, dw * C, acc[ow * C:ow * C + n], n, kw, reduction)


@njit(inline="always")
def _fold_taps(x_row, at, step, acc_run, n, kw, reduction):
    """Merge ``kw`` runs of ``n`` elements, ``x_row[at + tw*step:][:n]``, into ``acc_run``.

    Three taps per pass with each output's best in a register, the last
    ``kw % 3`` one by one: a pass that merges one tap stores back the value it
    loaded wherever the tap loses, and the compiler makes that a masked store,
    which on AMD cores costs several times the merge itself.
    """
    for _ in range(0, kw - 2, 3):
        _merge_three(x_row[at:], x_row[at + step:], x_row[at + 2 * step:], acc_run, n,
                     reduction)
        at += 3 * step
    for _ in range(kw - kw % 3, kw):
        _merge_run(x_row[at:], acc_run, n, reduction)
        at += step


@njit(inline="always")
def _merge_three(x_0, x_1, x_2, acc_w, n, reduction):
    """Merge ``x_0[:n]``, ``x_1[:n]``, ``x_2[:n]``, in that order, into ``acc_w``, each
    output's best held in a register."""
    for c in range(n):
        best = acc_w[c]
        if reduction == SUM:
            acc_w[c] = best + x_0[c] + x_1[c] + x_2[c]
            continue
        v = x_0[c]
        best = v if beats(v, best, reduction) else best
        v = x_1[c]
        best = v if beats(v, best, reduction) else best
        v = x_2[c]
        acc_w[c] = v if beats(v, best, reduction) else best


# The dtypes networks and images hold (float16 is pooled as float32, bools as uint8).
LITERAL_DTYPES = frozenset(map(np.dtype, ("float32", "float64", "uint8", "uint16", "int16")))

# Values of 2x2 windows on rows of up to this many channels go straight into the output
# as well: (64, 32, 32, C) float32, one process, against the walk, maxima and averages
# 3.0x and 5.3x as fast at C = 2, 2.3x and 1.8x at 8, 1.7x and 1.3x at 16, 1.4x and 1.0x
# at 32; 3x3 stride-2 windows only at C = 2 (1.7x), 0.6 to 0.8x from 8 on
_FEW_CHANNELS = 16


def literal_shape(C, kw, sw, dw, reduction, dtype, with_positions):
    """Which loop with literal sizes a kernel reading ``dtype`` should run (``GENERIC``:
    none).

    Each literal shape is one more kernel to compile, for each dtype: so not
    under ``MAX_OMIT_NAN``, and not for the dtypes outside ``LITERAL_DTYPES``,
    which are rare. Either loop gives the same bits: sums add the taps in the
    same order. The shapes for any ``C`` serve maxima with positions (a layer's
    forward), whose rows then go straight into the output, each window's first
    maximum found by a tree of comparisons: a (32, 112, 112, 64) MaxPool2d(3, 2,
    1) step with ``channels_last=True`` 64-65 -> 33-42 ms, CIFAR's (128, 32, 32,
    64) 22-36 -> 14-15 ms. Values alone stay in the walk, whose passes along a
    row of many channels were faster (that CIFAR maximum 1.6 ms, 3.8 to 5.1
    straight in), but for 2x2 windows of up to ``_FEW_CHANNELS``.
    """
    if reduction == MAX_OMIT_NAN or dtype not in LITERAL_DTYPES:
        return GENERIC
    if (C, kw, sw, dw) in LITERAL_SHAPES:
        return LITERAL_SHAPES.index((C, kw, sw, dw))
    if (0, kw, sw, dw) in LITERAL_SHAPES and (with_positions
                                              or (kw == 2 and C <= _FEW_CHANNELS)):
        return LITERAL_SHAPES.index((0, kw, sw, dw))
    return GENERIC


def row_kernel(reduction, with_positions, flat_index, C, kernel, stride, dilation, pad,
               divisors, W, OW, dtype):
    """The forward kernel of one call, on rows of ``W`` windows of ``C`` to ``OW``: the
    :func:`forward_kernel` of its literal shape, the walk alone where none of the call's
    rows go straight into the output (so that the other kernel is never compiled: a 3-d
    2x2x2 maximum, an average of rows too long for it or without padding counted)."""
    shape = literal_shape(C, kernel[2], stride[2], dilation[2], reduction, dtype,
                          with_positions)
    kernels = forward_kernel(reduction, with_positions, flat_index, shape)
    ow_lo, ow_hi = inside_outputs.py_func(W, kernel[2], stride[2], dilation[2], pad[2], OW)
    w_divisor = _row_divisor_of(divisors[2], OW) if reduction == SUM else 0.0
    if isinstance(kernels, WholeRowsFirst) and not _goes_whole.py_func(
            WHOLE_ROW_HEIGHT[shape], kernel, ow_lo, ow_hi, OW, reduction, w_divisor):
        return kernels.walk
    return kernels


@njit(forceinline=True)
def _goes_whole(whole_height, kernel, ow_lo, ow_hi, OW, reduction, w_divisor):
    """Whether a call's rows may go straight into the output (each one then by
    :func:`_is_whole`): windows one row deep and ``whole_height`` high (see
    ``WHOLE_ROW_HEIGHT``); two rows high, every window inside on ``W`` too; three, the
    edge windows in the loop, and sums on short rows only; sums, whose rows' windows
    share a divisor on ``W`` (``w_divisor``, see :func:`_row_divisor`)."""
    return (whole_height != 0 and kernel[0] == 1 and kernel[1] == whole_height
            and (whole_height == 3 or (ow_lo == 0 and ow_hi == OW))
            and (whole_height == 2 or reduction != SUM or OW <= _SHORT_SUM_ROW)
            and (reduction != SUM or w_divisor != 0))


@njit(forceinline=True)
def _row_divisor(divisors_on_w, OW):
    """The divisor on ``W`` that all ``OW`` windows of a row share (a sum's), or 0 where
    they differ (padding not counted at the row's ends)."""
    w_divisor = divisors_on_w[0] if OW > 0 else 0.0
    for ow in range(OW):
        w_divisor = w_divisor if divisors_on_w[ow] == w_divisor else 0.0
    return w_divisor


def _row_divisor_of(divisors_on_w, OW):
    """:func:`_row_divisor` for Python's caller, by NumPy's reductions (the divisors are
    finite, so all are equal where the least is the greatest): the loop, run in Python
    at each unprepared call, took 0.3 ms on a row of 2048 windows; in the kernels it
    compiles in less time than the reductions (a first 2x2 average 0.5 to 1 s sooner)."""
    if OW == 0:
        return 0.0
    row = divisors_on_w[:OW]
    least = row.min()
    return float(least) if row.max() == least else 0.0


@cache
def forward_kernel(reduction, with_positions, flat_index, shape):
    """The forward kernel for one reduction, with or without positions (flat indices
    within ``D, H, W``, or tap numbers in the window), for one window shape.

    ``shape`` is :func:`literal_shape` of the call; for a literal shape the
    row's sizes are compile-time constants. A shape whose rows may go straight
    into the output gets a :class:`WholeRowsFirst` of two kernels, the walk
    compiled only when a call has rows for it; the others get the walk alone.
    Each kernel compiles on its first call only, and is cached on disk like
    the others.
    """
    literal = shape != GENERIC
    whole_height = WHOLE_ROW_HEIGHT[shape]
    # maxima of rows whose windows overhang the input's top or bottom go straight in too;
    # not sums: a row of zeros as the stand-in slowed every row's loop (CIFAR, 10 -> 16 ms)
    edges = whole_height == 3 and reduction != SUM
    C_, kw_, sw_, dw_ = LITERAL_SHAPES[shape] if literal else (1, 1, 1, 1)
    # the loop over inside windows is chosen here, not by a numba overload: an overload
    # inlined into numba's IR is first compiled on its own as well (a tenth of a kernel's
    # compile time); the whole-row loop stays one (see _fold_whole_row_typed)
    fold_inside, locate_inside = (_make_literal_loops(reduction, shape) if literal
                                  else _make_generic_loops(reduction))

    # typed once and inlined by LLVM at both of its calls: called once per output row
    @njit(forceinline=True)
    def locate(x, b, out_row, codes, d0, h0, td_lo, td_hi, th_lo, th_hi, dd, dh, H, W, kh, C,
               kw, sw, dw, pw, ow_lo, ow_hi, OW, flat_index, code_tap):
        """Codes of the row's maxima (see _locate_inside): the window's input rows last to
        first."""
        n_h = th_hi - th_lo
        n_rows = (td_hi - td_lo) * n_h
        for k in range(n_rows):
            r = n_rows - 1 - k
            td, th = td_lo + r // n_h, th_lo + r % n_h
            i_d, i_h = d0 + td * dd, h0 + th * dh
            code = _row_code(flat_index, i_d, i_h, H, W, td, th, kh, kw)
            x_row = x[b, i_d, i_h]
            locate_inside(x_row, out_row, codes, ow_lo, ow_hi, pw, C, kw, sw, dw, code, code_tap)
            for e in range(ow_lo + OW - ow_hi):
                ow = e if e < ow_lo else ow_hi + e - ow_lo
                start, tw_lo, tw_hi = taps_in_input(ow, W, kw, sw, dw, pw)
                _locate_window(x_row, out_row, codes, ow, tw_lo, tw_hi, start, C, dw, code,
                               code_tap)

    # the sizes both kernels start from; inlined into numba's IR for the literal ones
    @njit(inline="always")
    def sizes(x, out, C, kernel, stride, dilation, pad, divisors):
        """``(C, kw, sw, dw, D, H, W, OD, OH, OW, ow_lo, ow_hi, whole_rows, w_divisor)``:
        ``whole_rows`` whether the call's rows may go straight into the output (each
        row then by :func:`_is_whole`), ``w_divisor`` the divisor on ``W`` every
        window of a row shares (sums; 0 where they differ)."""
        if literal:  # the row's sizes are constants (C too, but in the shape for any C)
            C, kw, sw, dw = (C_ if C_ != 0 else C), kw_, sw_, dw_
        else:
            kw, sw, dw = kernel[2], stride[2], dilation[2]
        D, H, W = x.shape[1], x.shape[2], x.shape[3] // C
        OD, OH, OW = out.shape[1], out.shape[2], out.shape[3] // C
        ow_lo, ow_hi = inside_outputs(W, kw, sw, dw, pad[2], OW)
        w_divisor = _row_divisor(divisors[2], OW) if reduction == SUM else 0.0
        whole_rows = _goes_whole(whole_height, kernel, ow_lo, ow_hi, OW, reduction, w_divisor)
        return C, kw, sw, dw, D, H, W, OD, OH, OW, ow_lo, ow_hi, whole_rows, w_divisor

    # error_model="numpy": no test for division by zero (divisors are >= 1) in the loops
    @cached_kernel(nogil=True, error_model="numpy")
    def walk(x, out, position, C, kernel, stride, dilation, pad, identity, divisors, job_lo,
             job_hi):
        """Reduce the windows of output rows ``job_lo..job_hi-1`` of ``x`` into ``out``,
        skipping the rows that went straight into it (:func:`_is_whole`, their maxima
        free of NaN where positions are found).

        Job ``j`` is output row ``(b, od, oh)`` in row-major order. ``position``
        (shaped as ``out``) receives, when ``with_positions``, the flat index of
        each maximum within ``D, H, W`` (``flat_index``) or its row-major tap
        number inside the window. ``identity`` starts every output. Sums are
        divided by ``divisors[0][od] * divisors[1][oh] * divisors[2][ow]``.
        """
        kd, kh, _ = kernel
        sd, sh, _ = stride
        dd, dh, _ = dilation
        pd, ph, pw = pad
        C, kw, sw, dw, D, H, W, OD, OH, OW, ow_lo, ow_hi, whole_rows, w_divisor = sizes(
            x, out, C, kernel, stride, dilation, pad, divisors)
        codes = np.empty(OW * C if with_positions else 0, np.int64)
        sums = np.full(OW * C if reduction == SUM else 0, identity)
        # a tap's code: flat index less ``ow*sw - pw``, or tap number; see _row_code
        code_tap, code_ow, code_0 = (dw, sw, -pw) if flat_index else (1, 0, 0)
        # per output of a row: what its code lacks, and its divisor's factor on W
        code_of_output = np.empty(OW * C if with_positions else 0, np.int64)
        divisor_of_output = per_output(divisors[2], OW * C if reduction == SUM else 0, C)
        # a division costs several times a merge: where every divisor of a row is a power of
        # two (2x2 windows, no padding), multiplying by its inverse gives the same bits
        inverse_of_output = 1.0 / divisor_of_output
        powers_of_two_on_w = True
        for v in divisor_of_output:
            powers_of_two_on_w &= is_power_of_two(v)
        for i in range(code_of_output.size):
            code_of_output[i] = i // C * code_ow + code_0
        b, od, oh = job_lo // (OD * OH), job_lo // OH % OD, job_lo % OH
        for _ in range(job_lo, job_hi):
            out_row, pos_row = out[b, od, oh], position[b, od, oh]
            if whole_rows and _is_whole(od, oh, D, H, kh, sd, sh, dh, pd, ph, divisors,
                                        w_divisor, kh * kw, reduction, edges) and not (
                                            with_positions and _has_nan(out_row)):
                oh, od, b = _next_row(oh, od, b, OH, OD)
                continue
            d0, td_lo, td_hi = taps_in_input(od, D, kd, sd, dd, pd)
            h0, th_lo, th_hi = taps_in_input(oh, H, kh, sh, dh, ph)
            # a maximum's divisors are a placeholder of one element: read them for sums only
            scale = divisors[0][od] * divisors[1][oh] if reduction == SUM else 1.0
            acc = sums if reduction == SUM else out_row
            acc[:] = identity
            if with_positions:  # each window's first tap inside the input
                codes[:] = _row_code(flat_index, d0 + td_lo * dd, h0 + th_lo * dh, H, W, td_lo,
                                     th_lo, kh, kw)
                for e in range(ow_lo + OW - ow_hi):
                    ow = e if e < ow_lo else ow_hi + e - ow_lo
                    tw_lo = taps_in_input(ow, W, kw, sw, dw, pw)[1]
                    for c in range(C):
                        codes[ow * C + c] += tw_lo * code_tap
            for td in range(td_lo, td_hi):
                for th in range(th_lo, th_hi):
                    i_d, i_h = d0 + td * dd, h0 + th * dh
                    x_row = x[b, i_d, i_h]
                    fold_inside(x_row, acc, ow_lo, ow_hi, pw, C, kw, sw, dw)
                    for e in range(ow_lo + OW - ow_hi):
                        ow = e if e < ow_lo else ow_hi + e - ow_lo  # the left edge, then the right
                        start, tw_lo, tw_hi = taps_in_input(ow, W, kw, sw, dw, pw)
                        _fold_window(x_row, acc, ow, tw_lo, tw_hi, start, C, dw, reduction)
            if with_positions:  # found after the values, for the first maxima
                locate(x, b, out_row, codes, d0, h0, td_lo, td_hi, th_lo, th_hi, dd, dh, H, W, kh,
                       C, kw, sw, dw, pw, ow_lo, ow_hi, OW, flat_index, code_tap)
                # under MAX a NaN tap makes its window's maximum a NaN: its last NaN's
                if reduction == MAX and _has_nan(out_row):
                    _locate_last_nan(x, b, out_row, codes, d0, h0, td_lo, td_hi, th_lo, th_hi,
                                     dd, dh, H, W, kh, C, kw, sw, dw, pw, flat_index, code_tap)
                # loops over the whole row, not array expressions (those would allocate)
                for i in range(OW * C):
                    pos_row[i] = codes[i] + code_of_output[i]
            if reduction == SUM and powers_of_two_on_w and is_power_of_two(scale):
                inverse = 1.0 / scale
                for i in range(OW * C):
                    _store(out_row, i, acc[i] * (inverse * inverse_of_output[i]))
            elif reduction == SUM:
                for i in range(OW * C):
                    _store(out_row, i, acc[i] / (scale * divisor_of_output[i]))
            oh, od, b = _next_row(oh, od, b, OH, OD)

    if whole_height == 0:
        return walk

    @cached_kernel(nogil=True, error_model="numpy")
    def whole(x, out, position, C, kernel, stride, dilation, pad, identity, divisors, job_lo,
              job_hi):
        """:func:`walk`'s results for the rows that go straight into the output (see
        :func:`_is_whole`). Returns whether the walk has rows left: rows that do not,
        or maxima that hold a NaN (a NaN maximum's position is its last NaN's: rare)."""
        kh, (sd, sh, _), dh, (pd, ph, pw) = kernel[1], stride, dilation[1], pad
        C, kw, sw, dw, D, H, W, OD, OH, OW, ow_lo, ow_hi, whole_rows, w_divisor = sizes(
            x, out, C, kernel, stride, dilation, pad, divisors)
        if not whole_rows:
            return True
        code_tap, code_ow, code_0 = (dw, sw, -pw) if flat_index else (1, 0, 0)
        b, od, oh = job_lo // (OD * OH), job_lo // OH % OD, job_lo % OH
        walked = 0
        for _ in range(job_lo, job_hi):
            if _is_whole(od, oh, D, H, kh, sd, sh, dh, pd, ph, divisors, w_divisor, kh * kw,
                         reduction, edges):
                d0 = od * sd - pd
                h0, th_lo, th_hi = taps_in_input(oh, H, kh, sh, dh, ph)
                x_0 = _tap_row(x, b, d0, h0, 0, th_lo, th_hi, dh)
                x_1 = _tap_row(x, b, d0, h0, 1, th_lo, th_hi, dh)
                x_2 = _tap_row(x, b, d0, h0, 2, th_lo, th_hi, dh) if whole_height == 3 else x_1
                _fold_whole_row(
                    shape, with_positions, flat_index, reduction, x_0, x_1, x_2,
                    out[b, od, oh], position[b, od, oh],
                    _row_code(flat_index, d0, h0, H, W, 0, 0, kh, kw),
                    _row_code(flat_index, d0, h0 + dh, H, W, 0, 1, kh, kw),
                    code_tap, code_ow, code_0, identity, W, pw, ow_lo, ow_hi,
                    np.int32(th_lo), np.int32(th_hi - 1))  # int32 as the loop's rows
            else:
                walked += 1
            oh, od, b = _next_row(oh, od, b, OH, OD)
        # a NaN maximum's position is the walk's to find: one pass over the job's rows,
        # which lie together (a check per row cost 7 ns, as much as the position of each
        # of a row's 16 windows)
        if with_positions and reduction == MAX and walked == 0:
            return _has_nan(out.reshape(out.size)[job_lo * OW * C:job_hi * OW * C])
        return walked != 0

    return WholeRowsFirst(whole, walk)


class WholeRowsFirst:
    """A forward kernel in two: ``whole``, the rows that go straight into the output,
    then, where it says rows are left, ``walk`` over the same jobs.

    Called as one kernel (``kernel(*args, lo, hi)``), and, like numba's
    dispatchers, compiled for a prepared call's types (:meth:`compile`). The
    walk compiles on the first call that needs it: a first use on rows that all
    go straight into the output (the 2x2 pooling of networks) compiles half as
    much code.
    """

    def __init__(self, whole, walk):
        self.whole, self.walk = whole, walk

    def __call__(self, *args) -> None:
        if self.whole(*args):
            self.walk(*args)

    def typeof_pyval(self, value):
        return self.whole.typeof_pyval(value)

    def compile(self, signature):
        """``kernel(*args)`` for arguments of ``signature``, past numba's type dispatch."""
        whole, walk = self.whole.compile(signature), None

        def run(*args) -> None:
            nonlocal walk
            if whole(*args):
                if walk is None:
                    walk = self.walk.compile(signature)
                walk(*args)

        return run


@njit
def _locate_last_nan(x, b, out_row, codes, d0, h0, td_lo, td_hi, th_lo, th_hi, dd, dh, H, W, kh,
                     C, kw, sw, dw, pw, flat_index, code_tap):
    """The code of each NaN maximum's last NaN tap, in row-major order (PyTorch's rule).

    Rare, so a plain loop, window by window and tap by tap, compiled once for
    every kernel of a dtype: a second vectorised search, as for the maxima,
    was a tenth of a kernel's compile time.
    """
    for i in range(out_row.shape[0]):
        if out_row[i] == out_row[i]:
            continue
        ow, c = i // C, i % C
        start, tw_lo, tw_hi = taps_in_input(ow, W, kw, sw, dw, pw)
        for td in range(td_lo, td_hi):
            for th in range(th_lo, th_hi):
                i_d, i_h = d0 + td * dd, h0 + th * dh
                x_row = x[b, i_d, i_h]
                code = _row_code(flat_index, i_d, i_h, H, W, td, th, kh, kw)
                for tw in range(tw_lo, tw_hi):
                    v = x_row[(start + tw * dw) * C + c]
                    if v != v:
                        codes[i] = code + tw * code_tap


@njit(forceinline=True)
def _next_row(oh, od, b, OH, OD):
    """The output row after ``(b, od, oh)``, without a division."""
    oh += 1
    if oh == OH:
        oh, od = 0, od + 1
        if od == OD:
            od, b = 0, b + 1
    return oh, od, b


@njit(forceinline=True)
def _is_whole(od, oh, D, H, kh, sd, sh, dh, pd, ph, divisors, w_divisor, n_taps, reduction,
              edges):
    """Whether output row ``(od, oh)``, of windows one row deep and ``kh`` high, goes
    straight into the output: its input rows lie inside the input, or with ``edges``
    its input plane does (rows outside have stand-ins: see :func:`_tap_row`); and, for
    sums, every divisor of it is the window's size ``n_taps`` (a row's divisors on
    ``W`` are all ``w_divisor``, or 0 where they differ)."""
    d0, h0 = od * sd - pd, oh * sh - ph
    inside = d0 >= 0 and d0 < D and (edges or (h0 >= 0 and h0 + (kh - 1) * dh < H))
    if reduction != SUM:
        return inside
    return inside and divisors[0][od] * divisors[1][oh] * w_divisor == n_taps


@njit(forceinline=True)
def _tap_row(x, b, d0, h0, th, th_lo, th_hi, dh):
    """The input row of tap row ``th`` of a window whose tap rows ``th_lo..th_hi-1`` lie
    inside the input, or for a row outside its stand-in, the nearest tap row inside: the
    same maxima, and a first maximum found in a stand-in is its row's own (a stand-in
    above comes before that row, one below after it), whose position the loop gives."""
    return x[b, d0, h0 + min(max(th, th_lo), th_hi - 1) * dh]


@njit(forceinline=True)
def _has_nan(row):
    """Whether ``row`` holds a NaN (never, for integers)."""
    found = 0  # an integer OR, which vectorises
    for i in range(row.shape[0]):
        found |= np.uint8(row[i] != row[i])
    return found != 0


@njit(forceinline=True)
def is_power_of_two(v):
    """Whether float ``v > 0`` is a power of two, so that ``1 / v`` is exact."""
    return math.frexp(v)[0] == 0.5


@njit(forceinline=True)
def _row_code(flat_index, i_d, i_h, H, W, td, th, kh, kw):
    """Code of tap 0 in input row ``(i_d, i_h)``, tap row ``(td, th)`` of the window."""
    if flat_index:
        return (i_d * H + i_h) * W
    return (td * kh + th) * kw
