"""Fractional max pooling: windows of a fixed size at pseudo-random starts.

Window ``(od, oh, ow)`` of plane ``(b, c)`` starts at
``(starts_d[b, c, od], starts_h[b, c, oh], starts_w[b, c, ow])``; the caller
made the starts (PyTorch's sequence) and checked that every window lies
inside the input. Which tap wins is the rule of :mod:`.reductions` (first
maximum in row-major window order; a NaN wins, so the last NaN is chosen).
"""

from numba import njit

from ._cache import cached_kernel
from .reductions import MAX, beats


@njit(inline="always")
def _fold_row(x_row, out_row, w_starts, c, kw, first):
    """Fold one input row's taps into every window of an output row (values only).

    ``first`` marks the window's first row, which sets the outputs; rows come
    in row-major order. A select, not a branch, since random data would
    mispredict every other comparison; the rule is the max kernels' (NaN wins).
    """
    for ow in range(out_row.shape[0]):
        w0 = w_starts[ow]
        best = x_row[w0] if first else out_row[ow, c]
        for tw in range(kw):
            v = x_row[w0 + tw]
            best = v if beats(v, best, MAX) else best
        out_row[ow, c] = best


@njit(inline="always")
def _fold_row_positions(x_row, out_row, pos_row, w_starts, c, kw, first, code, w_code):
    """As :func:`_fold_row`, also keeping where each maximum is.

    Tap ``tw`` of window ``ow`` has position ``code + w_code * w_starts[ow] + tw``.
    The taps compare with a plain ``>`` while a flag notes any NaN; a window
    that meets one (rarely) walks its taps again under the whole rule. The
    rule's compound test in the first walk would make the compiler branch on
    every tap.
    """
    for ow in range(out_row.shape[0]):
        w0 = w_starts[ow]
        base = code + w_code * w0
        held = x_row[w0] if first else out_row[ow, c]
        held_at = base if first else pos_row[ow, c]
        best, best_at = held, held_at
        nan = False
        for tw in range(kw):
            v = x_row[w0 + tw]
            greater = v > best
            best = v if greater else best
            best_at = base + tw if greater else best_at
            nan |= v != v
        if nan:
            best, best_at = held, held_at
            for tw in range(kw):
                v = x_row[w0 + tw]
                if beats(v, best, MAX):
                    best, best_at = v, base + tw
        out_row[ow, c] = best
        pos_row[ow, c] = best_at


@cached_kernel(nogil=True)
def fractional_max_pool(x, out, position, starts_d, starts_h, starts_w, kernel, with_positions,
                        flat_index, job_lo, job_hi):
    """Windows of output rows ``job_lo..job_hi-1``; a job is a row ``(b, od, oh)``.

    With ``with_positions``, ``position`` gets the flat index of each maximum
    within ``D, H, W`` (``flat_index``) or its row-major tap number in the window.
    """
    H, W, C = x.shape[2], x.shape[3], x.shape[4]
    OD, OH = out.shape[1], out.shape[2]
    kd, kh, kw = kernel
    for job in range(job_lo, job_hi):
        b = job // (OD * OH)
        od = job // OH % OD
        oh = job % OH
        out_row, pos_row = out[b, od, oh], position[b, od, oh]
        for c in range(C):
            d0 = starts_d[b, c, od]
            h0 = starts_h[b, c, oh]
            w_starts = starts_w[b, c]
            # the window's input rows, in row-major order
            for td in range(kd):
                for th in range(kh):
                    x_row = x[b, d0 + td, h0 + th, :, c]
                    first = td == 0 and th == 0
                    if not with_positions:
                        _fold_row(x_row, out_row, w_starts, c, kw, first)
                    elif flat_index:
                        code = ((d0 + td) * H + h0 + th) * W
                        _fold_row_positions(x_row, out_row, pos_row, w_starts, c, kw, first,
                                            code, 1)
                    else:
                        code = (td * kh + th) * kw
                        _fold_row_positions(x_row, out_row, pos_row, w_starts, c, kw, first,
                                            code, 0)


@cached_kernel(nogil=True)
def fractional_max_pool_backward_window(grad_out, position, starts_d, starts_h, starts_w,
                                        grad_in, kernel, b_lo, b_hi):
    """Add each output's gradient to the input element at its window position.

    A job is a plane: planes are independent, and within a plane windows may
    overlap, so it is walked in output order. The plane is zeroed here first
    (see :func:`poolnd._kernels.unpool.scatter_add`).
    """
    OD, OH, OW, C = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3], grad_out.shape[4]
    _, kh, kw = kernel
    for b in range(b_lo, b_hi):
        grad_in[b] = 0
        for od in range(OD):
            for oh in range(OH):
                for ow in range(OW):
                    for c in range(C):
                        t = position[b, od, oh, ow, c]
                        i_d = starts_d[b, c, od] + t // (kh * kw)
                        i_h = starts_h[b, c, oh] + t // kw % kh
                        i_w = starts_w[b, c, ow] + t % kw
                        grad_in[b, i_d, i_h, i_w, c] += grad_out[b, od, oh, ow, c]
