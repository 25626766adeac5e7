"""Where the taps of one window fall, on one axis.

Tap ``t`` of window ``o`` reads position ``o*s - pad + t*d``. The plan
guarantees that every window holds at least one input element. The common
case, a window wholly inside the input, takes no division.
"""

import numpy as np
from numba import njit


@njit(forceinline=True)
def taps_in_input(o, length, k, s, d, pad):
    """Window ``o``'s first position and the taps ``lo..hi-1`` that land in the input."""
    start = o * s - pad
    last = start + (k - 1) * d
    if d == 1:  # no division in the common case
        return start, max(0, -start), min(k, length - start)
    lo = 0 if start >= 0 else (d - 1 - start) // d
    hi = k if last < length else (length - 1 - start) // d + 1
    return start, lo, hi


@njit(forceinline=True)
def inside_outputs(length, k, s, d, pad, n_out):
    """The outputs ``lo..hi-1`` whose windows lie wholly inside ``[0, length)``."""
    lo = min((pad + s - 1) // s, n_out)
    reach = length - 1 - (k - 1) * d + pad  # the last start that keeps the window inside
    hi = reach // s + 1 if reach >= 0 else 0
    return lo, min(max(hi, lo), n_out)


# Rows merge W and C: output i of a row is window i // C, channel i % C.


@njit(forceinline=True)
def per_output(per_window, n, C):
    """``per_window[i // C]`` for each output ``i < n`` of a row."""
    values = np.empty(n, per_window.dtype)
    for i in range(n):
        values[i] = per_window[i // C]
    return values


@njit(forceinline=True)
def window_starts(n, C, stride):
    """For each output ``i < n`` of a row, its window's first input, from window 0's."""
    starts = np.empty(n, np.int64)
    for i in range(n):
        starts[i] = i // C * stride * C + i % C
    return starts
