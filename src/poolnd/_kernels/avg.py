"""Average pooling's backward: the adjoint spread of window sums over a divisor.

The divisor of window ``(od, oh, ow)`` is ``divisors[0][od] *
divisors[1][oh] * divisors[2][ow]``; the caller builds those per-axis
factors from PyTorch's rule, so the kernels only sum and divide.
"""

import numpy as np
from numba import njit

from ._windows import taps_in_input


@njit(nogil=True, cache=True, error_model="numpy")  # divisors are >= 1: no zero test
def avg_pool_backward(grad_out, grad_in, kernel, stride, dilation, pad, divisors, b_lo, b_hi):
    """Give every input element ``grad / divisor`` of each window that holds it.

    A job is a plane: planes are independent, and within a plane windows may
    overlap, so it is walked in output order. The window is a box, so each
    output row's shares are first spread along ``W`` into one row, which is
    then added to every input row the windows cover.
    """
    D, H, W, C = grad_in.shape[1:]
    OD, OH, OW = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3]
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    divisor_of_output = np.empty(OW * C)  # the divisor's factor on W, per output of a row
    for i in range(OW * C):
        divisor_of_output[i] = divisors[2][i // C]
    shares = np.empty(OW * C, grad_in.dtype)
    spread = np.empty(W * C, grad_in.dtype)
    for b in range(b_lo, b_hi):
        for od in range(OD):
            d0, td_lo, td_hi = taps_in_input(od, D, kd, sd, dd, pd)
            for oh in range(OH):
                h0, th_lo, th_hi = taps_in_input(oh, H, kh, sh, dh, ph)
                scale = divisors[0][od] * divisors[1][oh]
                g_row = grad_out[b, od, oh].reshape(OW * C)
                for i in range(OW * C):  # one division per output, as PyTorch does
                    shares[i] = g_row[i] / (scale * divisor_of_output[i])
                spread[:] = 0
                for ow in range(OW):
                    w0, tw_lo, tw_hi = taps_in_input(ow, W, kw, sw, dw, pw)
                    for tw in range(tw_lo, tw_hi):
                        at = (w0 + tw * dw) * C
                        for c in range(C):
                            spread[at + c] += shares[ow * C + c]
                for td in range(td_lo, td_hi):
                    for th in range(th_lo, th_hi):
                        row = grad_in[b, d0 + td * dd, h0 + th * dh].reshape(W * C)
                        for i in range(W * C):
                            row[i] += spread[i]
