"""Max pooling: forward with the winning tap, backward by scatter-add.

Ties go to the first maximum in row-major window order (strict ``>``).
With ``omit_nan`` False a NaN always wins (PyTorch: ``v > best or isnan(v)``,
so the last NaN is chosen); with it True NaN is skipped unless the whole
window is NaN, which then reports its first element.
"""

from numba import njit, prange

from ._windows import taps_in_input

NO_POSITION = 0  # values only
WINDOW_POSITION = 1  # row-major tap number inside the window (the layers' compact state)
FLAT_INDEX = 2  # row-major index inside the pooled axes of the unpadded input (PyTorch's)


@njit(parallel=True, cache=True, nogil=True)
def max_pool_forward(x, out, position, position_kind, omit_nan, kernel, stride, dilation, pad):
    B, D, H, W, C = x.shape
    OD, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    # one job per output row, so that a single plane still fills every core
    for job in prange(B * OD * OH):
        b = job // (OD * OH)
        od = job // OH % OD
        oh = job % OH
        d0, td_lo, td_hi = taps_in_input(od, D, kd, sd, dd, pd)
        h0, th_lo, th_hi = taps_in_input(oh, H, kh, sh, dh, ph)
        for ow in range(OW):
            w0, tw_lo, tw_hi = taps_in_input(ow, W, kw, sw, dw, pw)
            for c in range(C):
                best = x[b, d0 + td_lo * dd, h0 + th_lo * dh, w0 + tw_lo * dw, c]
                best_td, best_th, best_tw = td_lo, th_lo, tw_lo
                for td in range(td_lo, td_hi):
                    for th in range(th_lo, th_hi):
                        for tw in range(tw_lo, tw_hi):
                            v = x[b, d0 + td * dd, h0 + th * dh, w0 + tw * dw, c]
                            # v != v is the NaN test; it folds away for integers
                            if omit_nan:
                                wins = v > best or (best != best and v == v)
                            else:
                                wins = v > best or v != v
                            if wins:
                                best = v
                                best_td, best_th, best_tw = td, th, tw
                out[b, od, oh, ow, c] = best
                if position_kind == WINDOW_POSITION:
                    position[b, od, oh, ow, c] = (best_td * kh + best_th) * kw + best_tw
                elif position_kind == FLAT_INDEX:
                    i_d = d0 + best_td * dd
                    i_h = h0 + best_th * dh
                    i_w = w0 + best_tw * dw
                    position[b, od, oh, ow, c] = (i_d * H + i_h) * W + i_w


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
