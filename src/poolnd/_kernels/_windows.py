"""Where the taps of one window fall, on one axis."""

from numba import njit


@njit(inline="always")
def taps_in_input(o, length, k, s, d, pad):
    """Window ``o``'s first position and its taps ``lo..hi-1`` that land in the input.

    Tap ``t`` reads position ``start + t*d``; the plan guarantees lo < hi.
    """
    start = o * s - pad
    lo = 0 if start >= 0 else (d - 1 - start) // d
    hi = min(k, (length - 1 - start) // d + 1)
    return start, lo, hi


@njit(inline="always")
def taps_in_padded(o, length, k, s, d, pad, pad_after):
    """How many taps of window ``o`` land in the padded extent ``[-pad, length + pad_after)``."""
    start = o * s - pad
    return min(k, (length + pad_after - 1 - start) // d + 1)
