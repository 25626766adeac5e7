"""Average pooling's backward: the adjoint spread of window sums over a divisor.

The divisor of window ``(od, oh, ow)`` is ``divisors[0][od] *
divisors[1][oh] * divisors[2][ow]``; the caller builds those per-axis
factors from PyTorch's rule, so the kernels only sum and divide.
"""

import numpy as np
from numba import njit

from ._cache import cached_kernel
from ._windows import per_output


@njit(forceinline=True)
def _covering(length, k, s, d, pad, n_out):
    """For each position ``x < length`` on one axis: the outputs whose windows hold it,
    ascending, in ``found[x, :count[x]]``. Made once per call: no division per row."""
    found = np.empty((length, k), np.int64)
    count = np.zeros(length, np.int64)
    for o in range(n_out):
        for t in range(k):
            x = o * s - pad + t * d
            if 0 <= x < length:
                found[x, count[x]] = o
                count[x] += 1
    return found, count


@njit(forceinline=True)
def _tap_runs(W, OW, C, kw, sw, dw, pw):
    """Per tap along ``W``: the residue of its positions modulo ``sw``, and the run of
    shares ``[lo, lo+n)`` it adds to that residue's phase row from ``at``."""
    runs = np.zeros((kw, 4), np.int64)
    for tw in range(kw):
        offset = tw * dw - pw  # tap tw of window ow reads w = ow*sw + offset
        residue = offset % sw
        ow_lo = max(0, -(offset // sw))  # the windows whose tap tw lands in the row
        ow_hi = max(ow_lo, min(OW, (W - 1 - offset) // sw + 1))
        # element by element: a tuple stored into a row compiles numba's shape check and
        # its message (1.5 s of a first call)
        runs[tw, 0], runs[tw, 1] = residue, ow_lo * C
        runs[tw, 2], runs[tw, 3] = (ow_hi - ow_lo) * C, (ow_lo + (offset - residue) // sw) * C
    return runs


@njit(inline="always")
def _spread_row(g_row, divisor, divisor_of_output, shares, phases, spread, tap_runs, W, C, sw):
    """``spread[w]``: the shares ``g / divisor`` of the row's windows that hold ``w``.

    Along ``W`` a window's taps sit ``sw`` apart, so each tap's shares land on
    one residue of ``w`` modulo ``sw``: they are added, contiguously, into
    that residue's phase row, and the phases are then interleaved.
    """
    for i in range(shares.size):  # one division per output, as PyTorch does
        shares[i] = g_row[i] / (divisor * divisor_of_output[i])
    phases[:] = 0  # positions no window holds stay 0
    for tw in range(tap_runs.shape[0]):
        residue, lo, n, at = tap_runs[tw]
        phase = phases[residue, at:at + n]
        tap_shares = shares[lo:lo + n]
        for i in range(n):
            phase[i] += tap_shares[i]
    if sw == 2 and C == 1:  # the common stride, spelled out so that it vectorises
        for q in range(W // 2):
            spread[2 * q] = phases[0, q]
            spread[2 * q + 1] = phases[1, q]
        if W % 2:
            spread[W - 1] = phases[0, W // 2]
        return
    for residue in range(sw):
        for q in range((W - residue + sw - 1) // sw):
            w = q * sw + residue
            for c in range(C):
                spread[w * C + c] = phases[residue, q * C + c]


def backward_kernel(C, kernel, stride, dilation, pad, W, OW):
    """The backward kernel for windows of this geometry on rows of ``W`` inputs and
    ``OW`` outputs: one that copies each window's share where the windows tile the
    input (stride = kernel, no padding or dilation, none past the end of a row; a
    ``ceil_mode`` window there goes the general way), one that spreads them
    otherwise. Chosen here, so that a first call compiles only the one it runs."""
    if (tuple(kernel) == tuple(stride) and set(dilation) == {1} and set(pad) == {0}
            and OW * kernel[2] <= W):
        return tiles_backward_one_channel if C == 1 else tiles_backward
    return spread_backward


@cached_kernel(nogil=True, error_model="numpy")  # divisors are >= 1: no zero test
def spread_backward(grad_out, grad_in, C, kernel, stride, dilation, pad, divisors, b_lo, b_hi):
    """Give every input element ``grad / divisor`` of each window that holds it.

    Layout as the forward's: ``(B, D, H, W*C)`` in, ``(B, OD, OH, OW*C)``
    out. A job is a plane. Each input row is written once, as the sum of
    the spread rows of the output rows whose windows cover it, in output
    order. A spread row is made when the walk down ``H`` first needs it and
    kept in a ring of ``ring`` rows: the output rows that cover one input
    row lie within that many consecutive rows.
    """
    D, H, WC = grad_in.shape[1:]
    OD, OH, OWC = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3]
    W, OW = WC // C, OWC // C
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    ring = (kh - 1) * dh // sh + 1
    ods, n_ods = _covering(D, kd, sd, dd, pd, OD)
    ohs, n_ohs = _covering(H, kh, sh, dh, ph, OH)
    slot_of = np.arange(OH) % ring  # where each output row's spread row is kept
    tap_runs = _tap_runs(W, OW, C, kw, sw, dw, pw)
    divisor_of_output = per_output(divisors[2], OWC, C)
    shares = np.empty(OWC, grad_in.dtype)
    phases = np.empty((sw, (W + sw - 1) // sw * C), grad_in.dtype)
    spread = np.empty((kd, ring, WC), grad_in.dtype)
    for b in range(b_lo, b_hi):
        for d in range(D):
            n_d = n_ods[d]
            made = 0  # output rows 0..made-1 of each covering od are spread
            for h in range(H):
                n_h = n_ohs[h]
                row = grad_in[b, d, h]
                if n_d == 0 or n_h == 0:
                    row[:] = 0
                    continue
                while made <= ohs[h, n_h - 1]:
                    for jd in range(n_d):
                        od = ods[d, jd]
                        _spread_row(grad_out[b, od, made], divisors[0][od] * divisors[1][made],
                                    divisor_of_output, shares, phases,
                                    spread[jd, slot_of[made]], tap_runs, W, C, sw)
                    made += 1
                first = spread[0, slot_of[ohs[h, 0]]]
                for i in range(WC):
                    row[i] = first[i]
                for jd in range(n_d):
                    for jh in range(1 if jd == 0 else 0, n_h):
                        more = spread[jd, slot_of[ohs[h, jh]]]
                        for i in range(WC):
                            row[i] += more[i]


@cached_kernel(nogil=True, error_model="numpy")
def tiles_backward(grad_out, grad_in, C, kernel, stride, dilation, pad, divisors, b_lo, b_hi):
    """:func:`spread_backward` where the windows tile the input (see
    :func:`backward_kernel`; ``stride``, ``dilation`` and ``pad`` are not read):
    each element is in one window at most, so its row is a copy of that window
    row's shares, each share repeated ``kw`` times; the rest is 0."""
    _copy_shares(grad_out, grad_in, C, kernel, divisors, b_lo, b_hi)


@cached_kernel(nogil=True, error_model="numpy")
def tiles_backward_one_channel(grad_out, grad_in, C, kernel, stride, dilation, pad, divisors,
                               b_lo, b_hi):
    """:func:`tiles_backward` with ``C`` a constant 1 (planes of NCHW data): the rows'
    index arithmetic folds away; the digits' (32, 16, 8, 8) backward took 95 -> 20-30 us."""
    _copy_shares(grad_out, grad_in, 1, kernel, divisors, b_lo, b_hi)


@njit(forceinline=True)
def _copy_shares(grad_out, grad_in, C, kernel, divisors, b_lo, b_hi):
    """The loop of :func:`tiles_backward`."""
    D, H = grad_in.shape[1:3]
    OD, OH, OWC = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3]
    OW = OWC // C
    kd, kh, kw = kernel
    divisor_of_output = per_output(divisors[2], OWC, C)
    shares = np.empty(OWC, grad_in.dtype)
    for b in range(b_lo, b_hi):
        for d in range(D):
            od = d // kd
            for h in range(H):
                oh = h // kh
                row = grad_in[b, d, h]
                if od >= OD or oh >= OH:
                    row[:] = 0
                    continue
                if h % kh == 0:  # one division per output, as PyTorch does
                    g_row, scale = grad_out[b, od, oh], divisors[0][od] * divisors[1][oh]
                    for i in range(OWC):
                        shares[i] = g_row[i] / (scale * divisor_of_output[i])
                if kw == 2 and C == 1:  # the common window, spelled out so that it vectorises
                    for q in range(OW):
                        row[2 * q] = shares[q]
                        row[2 * q + 1] = shares[q]
                else:
                    for ow in range(OW):
                        for tw in range(kw):
                            for c in range(C):
                                row[(ow * kw + tw) * C + c] = shares[ow * C + c]
                row[OW * kw * C:] = 0
