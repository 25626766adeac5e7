"""Average pooling: window sums over a divisor, and the adjoint spread.

The divisor follows PyTorch: ``divisor_override`` when positive; else, with
``count_include_pad``, the taps inside the padded extent; else the taps
inside the input. Sums accumulate in float64.
"""

from numba import njit, prange

from ._windows import taps_in_input, taps_in_padded


@njit(inline="always")
def _divisor(span_d, span_h, span_w, padded_d, padded_h, padded_w, include_pad, override):
    if override > 0:
        return override
    if include_pad:
        return padded_d * padded_h * padded_w
    return span_d * span_h * span_w


@njit(parallel=True, cache=True, nogil=True)
def avg_pool_forward(x, out, kernel, stride, dilation, pad, pad_after, include_pad, override):
    B, D, H, W, C = x.shape
    OD, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    ad, ah, aw = pad_after
    for job in prange(B * OD * OH):
        b = job // (OD * OH)
        od = job // OH % OD
        oh = job % OH
        d0, td_lo, td_hi = taps_in_input(od, D, kd, sd, dd, pd)
        h0, th_lo, th_hi = taps_in_input(oh, H, kh, sh, dh, ph)
        padded_d = taps_in_padded(od, D, kd, sd, dd, pd, ad)
        padded_h = taps_in_padded(oh, H, kh, sh, dh, ph, ah)
        for ow in range(OW):
            w0, tw_lo, tw_hi = taps_in_input(ow, W, kw, sw, dw, pw)
            divisor = _divisor(td_hi - td_lo, th_hi - th_lo, tw_hi - tw_lo, padded_d, padded_h,
                               taps_in_padded(ow, W, kw, sw, dw, pw, aw), include_pad, override)
            for c in range(C):
                total = 0.0
                for td in range(td_lo, td_hi):
                    for th in range(th_lo, th_hi):
                        for tw in range(tw_lo, tw_hi):
                            total += x[b, d0 + td * dd, h0 + th * dh, w0 + tw * dw, c]
                out[b, od, oh, ow, c] = total / divisor


@njit(parallel=True, cache=True, nogil=True)
def avg_pool_backward(grad_out, grad_in, kernel, stride, dilation, pad, pad_after, include_pad,
                      override):
    """Give every input element ``grad / divisor`` of each window that holds it."""
    B, D, H, W, C = grad_in.shape
    OD, OH, OW = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3]
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    ad, ah, aw = pad_after
    # planes are independent; within a plane windows may overlap, so it is walked in order
    for b in prange(B):
        for od in range(OD):
            d0, td_lo, td_hi = taps_in_input(od, D, kd, sd, dd, pd)
            padded_d = taps_in_padded(od, D, kd, sd, dd, pd, ad)
            for oh in range(OH):
                h0, th_lo, th_hi = taps_in_input(oh, H, kh, sh, dh, ph)
                padded_h = taps_in_padded(oh, H, kh, sh, dh, ph, ah)
                for ow in range(OW):
                    w0, tw_lo, tw_hi = taps_in_input(ow, W, kw, sw, dw, pw)
                    divisor = _divisor(td_hi - td_lo, th_hi - th_lo, tw_hi - tw_lo, padded_d,
                                       padded_h, taps_in_padded(ow, W, kw, sw, dw, pw, aw),
                                       include_pad, override)
                    for c in range(C):
                        share = grad_out[b, od, oh, ow, c] / divisor
                        for td in range(td_lo, td_hi):
                            for th in range(th_lo, th_hi):
                                for tw in range(tw_lo, tw_hi):
                                    grad_in[b, d0 + td * dd, h0 + th * dh, w0 + tw * dw, c] += share
