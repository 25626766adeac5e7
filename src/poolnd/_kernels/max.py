"""Max pooling: forward with the winning position, backward by scatter-add.

Ties go to the first maximum in row-major window order (strict ``>``).
Under ``MAX`` a NaN always wins (PyTorch: ``v > best or isnan(v)``, so the
last NaN is chosen); under ``MAX_OMIT_NAN`` NaN is skipped unless the whole
window is NaN, which then reports its first element. The forwards are the
shared row walk of ``_rows``, one compiled kernel per choice of what to
report. Every kernel takes the range of jobs it does, last.
"""

import numpy as np
from numba import njit

from ._rows import MAX, MAX_OMIT_NAN, pool_rows

_NO_DIVISORS = (np.ones(1), np.ones(1), np.ones(1))


@njit(nogil=True, cache=True)
def max_pool_values(x, out, C, kernel, stride, dilation, pad, job_lo, job_hi):
    pool_rows(x, out, out, C, False, kernel, stride, dilation, pad, _NO_DIVISORS, job_lo, job_hi,
              False, MAX)


@njit(nogil=True, cache=True)
def max_pool_values_omit_nan(x, out, C, kernel, stride, dilation, pad, job_lo, job_hi):
    pool_rows(x, out, out, C, False, kernel, stride, dilation, pad, _NO_DIVISORS, job_lo, job_hi,
              False, MAX_OMIT_NAN)


@njit(nogil=True, cache=True)
def max_pool_positions(x, out, position, C, flat_index, kernel, stride, dilation, pad, job_lo,
                       job_hi):
    pool_rows(x, out, position, C, flat_index, kernel, stride, dilation, pad, _NO_DIVISORS,
              job_lo, job_hi, True, MAX)


@njit(nogil=True, cache=True)
def max_pool_positions_omit_nan(x, out, position, C, flat_index, kernel, stride, dilation, pad,
                                job_lo, job_hi):
    pool_rows(x, out, position, C, flat_index, kernel, stride, dilation, pad, _NO_DIVISORS,
              job_lo, job_hi, True, MAX_OMIT_NAN)


@njit(nogil=True, cache=True)
def max_pool_backward_window(grad_out, position, grad_in, kernel, stride, dilation, pad, b_lo,
                             b_hi):
    """Add each output's gradient to the input element at its window position.

    A job is a plane: planes are independent, and within a plane windows may
    overlap, so it is walked in output order.
    """
    OD, OH, OW, C = grad_out.shape[1:]
    _, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    for b in range(b_lo, b_hi):
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


@njit(nogil=True, cache=True)
def scatter_add_flat(grad_out, index, grad_in, b_lo, b_hi):
    """``grad_in[b, index[b, q, c], c] += grad_out[b, q, c]``, plane by plane, in output order."""
    Q, C = grad_out.shape[1], grad_out.shape[2]
    for b in range(b_lo, b_hi):
        for q in range(Q):
            for c in range(C):
                grad_in[b, index[b, q, c], c] += grad_out[b, q, c]
