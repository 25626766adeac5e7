"""Adaptive pooling: PyTorch's windows, ``start = (i*L)//O``, ``end = ceil((i+1)*L/O)``.

Arrays come as rows: ``x`` is ``(B, D, H, W*C)`` and ``out`` ``(B, OD, OH, OW*C)``,
the inner batch axis ``C`` beside ``W`` (channels-last data is read in place).
``starts[a][i]`` and ``ends[a][i]`` bound window ``i`` on pooled axis ``a``
(0: D, 1: H, 2: W); a window is the product of its three intervals. The
caller checks everything, so kernels trust their arguments.

Forward jobs are output rows ``(b, od, oh)``; backward jobs are planes ``b``
(windows may overlap within a plane, so a plane is walked by one thread).
Every kernel takes the range of jobs it does, last.
"""

import numpy as np
from numba import njit

from ._cache import cached_kernel
from .reductions import MAX, MAX_OMIT_NAN, beats, held_by_last_tap, same

# Taps summed in the input's own float type before the sum moves to float64.
_BLOCK = 4096


@njit(forceinline=True)
def _job_row(job, OD, OH):
    """Output row ``(b, od, oh)`` of job number ``job``."""
    b, rest = divmod(job, OD * OH)
    od, oh = divmod(rest, OH)
    return b, od, oh


# --------------------------------------------------------------------------- average


@cached_kernel(nogil=True)
def adaptive_avg_forward(x, out, C, starts, ends, job_lo, job_hi):
    """Window means, summed in float64.

    The window's input rows are added up first, one vector add per row for
    all windows of the output row at once; then each window sums its columns
    of that row. Separating the two keeps the long loop free of dependencies.
    """
    WC = x.shape[3]
    OD, OH, OW = out.shape[1], out.shape[2], out.shape[3] // C
    row = np.empty(WC, np.float64)
    for job in range(job_lo, job_hi):
        b, od, oh = _job_row(job, OD, OH)
        d0, d1 = starts[0][od], ends[0][od]
        h0, h1 = starts[1][oh], ends[1][oh]
        row[:] = 0.0
        for i_d in range(d0, d1):
            for i_h in range(h0, h1):
                x_row = x[b, i_d, i_h]
                for j in range(WC):
                    row[j] += x_row[j]
        n_rows = (d1 - d0) * (h1 - h0)
        for ow in range(OW):
            w0, w1 = starts[2][ow], ends[2][ow]
            count = n_rows * (w1 - w0)
            for c in range(C):
                total = 0.0
                for i_w in range(w0, w1):
                    total += row[i_w * C + c]
                out[b, od, oh, ow * C + c] = total / count


@cached_kernel(nogil=True)
def adaptive_avg_global(x, out, C, job_lo, job_hi):
    """Global means: ``x`` is ``(B, P*C)``, every pooled axis folded into ``P``; ``out``
    is ``(B, C)``.

    One channel (NCHW) sums a contiguous run, in blocks; several channels
    add whole rows of ``C`` at once, which vectorises by itself.
    """
    P = x.shape[1] // C
    acc = np.empty(C, np.float64)
    for b in range(job_lo, job_hi):
        if C == 1:
            run = x[b]
            total = 0.0
            for lo in range(0, P, _BLOCK):
                total += _block_sum(run[lo:lo + _BLOCK])
            out[b, 0] = total / P
            continue
        acc[:] = 0.0
        plane = x[b].reshape(P, C)
        for p in range(P):
            for c in range(C):
                acc[c] += plane[p, c]
        for c in range(C):
            out[b, c] = acc[c] / P


@cached_kernel(nogil=True, fastmath={"reassoc"})
def _block_sum(run):
    """Sum of a short run in its own float type (float64 sums of blocks keep it exact enough).

    Reassociation (only; NaN and inf keep their meaning) lets the compiler
    keep several partial sums in vector registers, so this runs at the speed
    of the memory instead of one add latency per element.
    """
    total = run[0]
    for i in range(1, run.size):
        total += run[i]
    return total


@cached_kernel(nogil=True)
def adaptive_avg_backward(grad_out, grad_in, C, starts, ends, b_lo, b_hi):
    """Give every input element ``grad / count`` of each window that holds it.

    The adjoint of the forward, step by step: spread the output row's shares
    over one input row, then add that row to every input row of the window.
    The plane is zeroed here first (see :func:`poolnd._kernels.unpool.scatter_add`).
    """
    WC = grad_in.shape[3]
    OD, OH, OW = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3] // C
    row = np.empty(WC, np.float64)
    for b in range(b_lo, b_hi):
        grad_in[b] = 0
        for od in range(OD):
            d0, d1 = starts[0][od], ends[0][od]
            for oh in range(OH):
                h0, h1 = starts[1][oh], ends[1][oh]
                n_rows = (d1 - d0) * (h1 - h0)
                row[:] = 0.0
                for ow in range(OW):
                    w0, w1 = starts[2][ow], ends[2][ow]
                    count = n_rows * (w1 - w0)
                    for c in range(C):
                        share = grad_out[b, od, oh, ow * C + c] / count
                        for i_w in range(w0, w1):
                            row[i_w * C + c] += share
                for i_d in range(d0, d1):
                    for i_h in range(h0, h1):
                        g_row = grad_in[b, i_d, i_h]
                        for j in range(WC):
                            g_row[j] += row[j]


# --------------------------------------------------------------------------- maximum


@cached_kernel(nogil=True)
def adaptive_max_values(x, out, C, starts, ends, omit_nan, shifts, job_lo, job_hi):
    _max_windows(x, out, out, C, starts, ends, omit_nan, False, False, shifts, job_lo, job_hi)


@cached_kernel(nogil=True)
def adaptive_max_positions(x, out, position, C, starts, ends, omit_nan, flat_index, shifts,
                           job_lo, job_hi):
    _max_windows(x, out, position, C, starts, ends, omit_nan, True, flat_index, shifts, job_lo,
                 job_hi)


@njit(inline="always")
def _max_windows(x, out, position, C, starts, ends, omit_nan, with_positions, flat_index,
                 shifts, job_lo, job_hi):
    """Window maxima and, with ``with_positions``, where they are.

    Two steps per output row, as the average does. First the window's input
    rows fold into one row, element by element, each element remembering
    which row won it: one vector loop per input row for all windows at once.
    Then each window picks, among its columns, the winner of a tap-by-tap
    walk in row-major order (:func:`_winning_tap`), and its value is read
    from the input at that tap, so ties, signed zeros and NaN payloads come
    out as the walk would give them.

    ``position`` gets the flat index ``(i_d*H + i_h)*W + i_w`` (``flat_index``)
    or the offsets inside the window as bit fields,
    ``td << shifts[0] | th << shifts[1] | tw``, which come apart without a division.
    The columns' keys in :func:`_winning_tap` use the same ``tw`` field.
    """
    H, WC = x.shape[2], x.shape[3]
    W = WC // C
    OD, OH, OW = out.shape[1], out.shape[2], out.shape[3] // C
    d_shift, h_shift = shifts
    w_bits = h_shift  # the W offset's field lies below it: as wide as the widest window needs
    w_mask = (1 << w_bits) - 1
    reduction = MAX_OMIT_NAN if omit_nan else MAX  # the max kernels' rule for ties and NaN
    col_best = np.empty(WC, x.dtype)  # per column of the output row: the best of its rows
    col_row = np.empty(WC, np.int64)  # and which of the window's rows holds it
    for job in range(job_lo, job_hi):
        b, od, oh = _job_row(job, OD, OH)
        d0, d1 = starts[0][od], ends[0][od]
        h0, h1 = starts[1][oh], ends[1][oh]
        n_h = h1 - h0
        x_first = x[b, d0, h0]
        for j in range(WC):
            col_best[j] = x_first[j]
            col_row[j] = 0
        for r in range(1, (d1 - d0) * n_h):
            x_row = x[b, d0 + r // n_h, h0 + r % n_h]
            for j in range(WC):
                v = x_row[j]
                wins = beats(v, col_best[j], reduction)  # a select: it vectorises
                col_best[j] = v if wins else col_best[j]
                col_row[j] = r if wins else col_row[j]
        for ow in range(OW):
            w0, w1 = starts[2][ow], ends[2][ow]
            for c in range(C):
                tap = _winning_tap(col_best, col_row, c, C, w0, w1, w_bits, reduction)
                r, i_w = tap >> w_bits, w0 + (tap & w_mask)
                td, th = r // n_h, r % n_h
                out[b, od, oh, ow * C + c] = x[b, d0 + td, h0 + th, i_w * C + c]
                if not with_positions:
                    continue
                if flat_index:
                    position[b, od, oh, ow * C + c] = ((d0 + td) * H + h0 + th) * W + i_w
                else:
                    position[b, od, oh, ow * C + c] = (td << d_shift | th << h_shift
                                                       | (i_w - w0))


@njit(inline="always")
def _winning_tap(col_best, col_row, c, C, w0, w1, w_bits, reduction):
    """Which tap of the window a row-major walk picks, from the bests of its columns
    ``col_best[w0*C + c : w1*C : C]``: ``row << w_bits | column - w0``.

    The walk's result is the fold of the columns' bests, and it holds the first
    or the last (:func:`held_by_last_tap`) of the taps equal to it: the least
    or greatest key ``(row, column)`` among the columns whose best is the
    result. The keys make each step a minimum or maximum, not a branch: which
    column wins is unpredictable.
    """
    best = col_best[w0 * C + c]
    for i_w in range(w0 + 1, w1):
        v = col_best[i_w * C + c]
        best = v if beats(v, best, reduction) else best
    last = held_by_last_tap(best, reduction)
    none = np.int64(-1) if last else np.int64(1) << 62
    at = none
    for i_w in range(w0, w1):
        i = i_w * C + c
        key = np.int64(col_row[i]) << w_bits | (i_w - w0)
        key = key if same(col_best[i], best) else none
        at = max(at, key) if last else min(at, key)
    return at


@cached_kernel(nogil=True)
def adaptive_max_backward_window(grad_out, position, grad_in, C, starts, shifts, b_lo, b_hi):
    """Add each output's gradient to the input element at its window position.

    A position holds the offsets inside its window as bit fields,
    ``td << shifts[0] | th << shifts[1] | tw`` (see :func:`_max_windows`).
    The plane is zeroed here first (see :func:`poolnd._kernels.unpool.scatter_add`).
    """
    OD, OH, OW = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3] // C
    d_shift, h_shift = shifts
    h_mask, w_mask = (1 << (d_shift - h_shift)) - 1, (1 << h_shift) - 1
    for b in range(b_lo, b_hi):
        grad_in[b] = 0
        for od in range(OD):
            d0 = starts[0][od]
            for oh in range(OH):
                h0 = starts[1][oh]
                for ow in range(OW):
                    w0 = starts[2][ow]
                    for c in range(C):
                        t = np.int64(position[b, od, oh, ow * C + c])
                        i_d = d0 + (t >> d_shift)
                        i_h = h0 + ((t >> h_shift) & h_mask)
                        i_w = w0 + (t & w_mask)
                        grad_in[b, i_d, i_h, i_w * C + c] += grad_out[b, od, oh, ow * C + c]
