"""Max pooling's backward from window positions: each gradient goes to its window's winner.

The forwards are the row walk of ``_rows``; the backward from flat indices
is unpooling's scatter-add. The kernel takes the range of planes it does,
last.
"""

import numpy as np

from ._cache import cached_kernel
from ._windows import window_starts


@cached_kernel(nogil=True)
def max_pool_backward_window(grad_out, position, grad_in, C, kernel, stride, dilation, pad, b_lo,
                             b_hi):
    """Add each output's gradient to the input element at its window position.

    Layout as the forward's: ``(B, D, H, W*C)`` in, ``(B, OD, OH, OW*C)``
    out. A job is a plane: planes are independent, and within a plane
    windows may overlap, so it is walked in output order. Each plane is flat
    here, and tables give every output's window start and every tap's offset
    from it, so no position is divided.
    """
    _, D, H, WC = grad_in.shape
    OD, OH, OWC = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3]
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    tap_offset = np.empty(kd * kh * kw, np.int64)
    for td in range(kd):
        for th in range(kh):
            for tw in range(kw):
                tap_offset[(td * kh + th) * kw + tw] = (td * dd * H + th * dh) * WC + tw * dw * C
    out_offset = window_starts(OWC, C, sw)
    for b in range(b_lo, b_hi):
        plane = grad_in[b].reshape(D * H * WC)
        plane[:] = 0  # here, not by the caller: one write per page, by the thread that adds
        for od in range(OD):
            for oh in range(OH):
                # where window (od, oh, 0) would start, padding included
                origin = ((od * sd - pd) * H + oh * sh - ph) * WC - pw * C
                g_row, p_row = grad_out[b, od, oh], position[b, od, oh]
                for i in range(OWC):
                    plane[origin + out_offset[i] + tap_offset[p_row[i]]] += g_row[i]
