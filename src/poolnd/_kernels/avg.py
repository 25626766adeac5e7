"""Average pooling's backward: the adjoint spread of window sums over a divisor.

The divisor of window ``(od, oh, ow)`` is ``divisors[0][od] *
divisors[1][oh] * divisors[2][ow]``; the caller builds those per-axis
factors from PyTorch's rule, so the kernels only sum and divide.
"""

import numpy as np

from ._cache import cached_kernel
from ._windows import per_output, taps_in_input, window_starts


@cached_kernel(nogil=True, error_model="numpy")  # divisors are >= 1: no zero test
def avg_pool_backward(grad_out, grad_in, C, kernel, stride, dilation, pad, divisors, b_lo, b_hi):
    """Give every input element ``grad / divisor`` of each window that holds it.

    Layout as the forward's: ``(B, D, H, W*C)`` in, ``(B, OD, OH, OW*C)``
    out. A job is a plane: planes are independent, and within a plane
    windows may overlap, so it is walked in output order. The window is a
    box, so each output row's shares are first spread along ``W`` into one
    row, which is then added to every input row the windows cover.
    """
    D, H, WC = grad_in.shape[1:]
    OD, OH, OWC = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3]
    W, OW = WC // C, OWC // C
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    # per output of a row: the divisor's factor on W, and where its window starts
    divisor_of_output = per_output(divisors[2], OWC, C)
    out_offset = window_starts(OWC, C, sw)
    shares = np.empty(OWC, grad_in.dtype)
    spread = np.empty(WC, grad_in.dtype)
    for b in range(b_lo, b_hi):
        grad_in[b] = 0  # here, not by the caller: one write per page, by the thread that adds
        for od in range(OD):
            d0, td_lo, td_hi = taps_in_input(od, D, kd, sd, dd, pd)
            for oh in range(OH):
                h0, th_lo, th_hi = taps_in_input(oh, H, kh, sh, dh, ph)
                scale = divisors[0][od] * divisors[1][oh]
                g_row = grad_out[b, od, oh]
                for i in range(OWC):  # one division per output, as PyTorch does
                    shares[i] = g_row[i] / (scale * divisor_of_output[i])
                spread[:] = 0
                for tw in range(kw):  # tap by tap: no add waits for the one before
                    # the outputs whose tap tw lands inside the row
                    ow_lo = max(0, -((tw * dw - pw) // sw))
                    ow_hi = min(OW, (W - 1 + pw - tw * dw) // sw + 1)
                    shift = (tw * dw - pw) * C
                    for i in range(ow_lo * C, ow_hi * C):
                        spread[out_offset[i] + shift] += shares[i]
                for td in range(td_lo, td_hi):
                    for th in range(th_lo, th_hi):
                        row = grad_in[b, d0 + td * dd, h0 + th * dh]
                        for i in range(WC):
                            row[i] += spread[i]
