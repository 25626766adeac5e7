"""Average pooling: window sums over a divisor, and the adjoint spread.

The divisor of window ``(od, oh, ow)`` is ``divisors[0][od] *
divisors[1][oh] * divisors[2][ow]``; the caller builds those per-axis
factors from PyTorch's rule, so the kernels only sum and divide.
"""

from numba import njit

from ._rows import SUM, pool_rows
from ._windows import taps_in_input


@njit(nogil=True, cache=True)
def avg_pool_forward(x, out, C, kernel, stride, dilation, pad, divisors, job_lo, job_hi):
    pool_rows(x, out, out, C, False, kernel, stride, dilation, pad, divisors, job_lo, job_hi,
              False, SUM)


@njit(nogil=True, cache=True)
def avg_pool_backward(grad_out, grad_in, kernel, stride, dilation, pad, divisors, b_lo, b_hi):
    """Give every input element ``grad / divisor`` of each window that holds it.

    A job is a plane: planes are independent, and within a plane windows may
    overlap, so it is walked in output order.
    """
    D, H, W, C = grad_in.shape[1:]
    OD, OH, OW = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3]
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    for b in range(b_lo, b_hi):
        for od in range(OD):
            d0, td_lo, td_hi = taps_in_input(od, D, kd, sd, dd, pd)
            for oh in range(OH):
                h0, th_lo, th_hi = taps_in_input(oh, H, kh, sh, dh, ph)
                scale = divisors[0][od] * divisors[1][oh]
                for ow in range(OW):
                    w0, tw_lo, tw_hi = taps_in_input(ow, W, kw, sw, dw, pw)
                    divisor = scale * divisors[2][ow]
                    for c in range(C):
                        share = grad_out[b, od, oh, ow, c] / divisor
                        for td in range(td_lo, td_hi):
                            for th in range(th_lo, th_hi):
                                for tw in range(tw_lo, tw_hi):
                                    grad_in[b, d0 + td * dd, h0 + th * dh, w0 + tw * dw, c] += share
