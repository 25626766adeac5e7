"""LP pooling's element-wise powers; the window sums are average pooling's.

``x ** q`` with PyTorch's shortcuts for the common exponents (``x*x``,
``x*x*x``, ``sqrt``), so that results agree with PyTorch's bit for bit where
it takes them too. Arrays are flat; a job is one element.
"""

import numpy as np
from numba import njit

from ._cache import cached_kernel

GENERAL = 0
ONE = 1
SQUARE = 2
CUBE = 3
SQRT = 4


def how(q) -> int:
    """Which shortcut ``x ** q`` takes."""
    return {1.0: ONE, 2.0: SQUARE, 3.0: CUBE, 0.5: SQRT}.get(float(q), GENERAL)


@njit(forceinline=True)
def _power(v, q, shortcut):
    if shortcut == ONE:
        return v
    if shortcut == SQUARE:
        return v * v
    if shortcut == CUBE:
        return v * v * v
    if shortcut == SQRT:
        return np.sqrt(v)
    return v ** q


@cached_kernel(nogil=True)
def power(x, out, q, shortcut, lo, hi):
    """``out = x ** q``."""
    for i in range(lo, hi):
        out[i] = _power(x[i], q, shortcut)


@cached_kernel(nogil=True)
def scaled_power(s, scale, q, shortcut, lo, hi):
    """``s = (s * scale) ** q`` in place: PyTorch's ``avg * K`` then the root."""
    for i in range(lo, hi):
        s[i] = _power(s[i] * scale, q, shortcut)


@cached_kernel(nogil=True)
def times_power(g, x, q, shortcut, lo, hi):
    """``g *= x ** q`` in place (the chain rule's last factor)."""
    for i in range(lo, hi):
        g[i] *= _power(x[i], q, shortcut)
