"""Max pooling: forward with the winning position, backward by scatter-add.

Ties go to the first maximum in row-major window order (strict ``>``).
Under ``MAX`` a NaN always wins (PyTorch: ``v > best or isnan(v)``, so the
last NaN is chosen); under ``MAX_OMIT_NAN`` NaN is skipped unless the whole
window is NaN, which then reports its first element. The forwards are the
shared row walk of ``_rows``, one compiled kernel per choice of what to
report.
"""

import numpy as np
from numba import njit, prange

from ._rows import MAX, MAX_OMIT_NAN, pool_rows

_NO_DIVISORS = (np.ones(1), np.ones(1), np.ones(1))


@njit(parallel=True, cache=True, nogil=True)
def max_pool_values(x, out, C, kernel, stride, dilation, pad):
    pool_rows(x, out, out, C, False, kernel, stride, dilation, pad, False, MAX, _NO_DIVISORS)


@njit(parallel=True, cache=True, nogil=True)
def max_pool_values_omit_nan(x, out, C, kernel, stride, dilation, pad):
    pool_rows(x, out, out, C, False, kernel, stride, dilation, pad, False, MAX_OMIT_NAN,
              _NO_DIVISORS)


@njit(parallel=True, cache=True, nogil=True)
def max_pool_positions(x, out, position, C, flat_index, kernel, stride, dilation, pad):
    pool_rows(x, out, position, C, flat_index, kernel, stride, dilation, pad, True, MAX,
              _NO_DIVISORS)


@njit(parallel=True, cache=True, nogil=True)
def max_pool_positions_omit_nan(x, out, position, C, flat_index, kernel, stride, dilation, pad):
    pool_rows(x, out, position, C, flat_index, kernel, stride, dilation, pad, True, MAX_OMIT_NAN,
              _NO_DIVISORS)


@njit(parallel=True, cache=True, nogil=True)
def max_pool_backward_window(grad_out, position, grad_in, kernel, stride, dilation, pad):
    """Add each output's gradient to the input element at its window position."""
    B, OD, OH, OW, C = grad_out.shape
    _, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    # planes are independent; within a plane windows may overlap, so it is walked in order
    for b in prange(B):
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


@njit(parallel=True, cache=True, nogil=True)
def scatter_add_flat(grad_out, index, grad_in):
    """``grad_in[b, index[b, q, c], c] += grad_out[b, q, c]``, in output order."""
    B, Q, C = grad_out.shape
    for b in prange(B):
        for q in range(Q):
            for c in range(C):
                grad_in[b, index[b, q, c], c] += grad_out[b, q, c]
