"""The reductions every kernel folds with, and the one rule of which value wins.

``MAX``: the larger value wins and a NaN beats everything, a later NaN
included (PyTorch's rule); among equal numbers the first tap in row-major
order is held, so a window's position is its first maximum, or its last NaN.
``MAX_OMIT_NAN``: a NaN is skipped; a window of NaN alone keeps its first.
``SUM``: taps add; the caller divides.

Kernels that track positions walk taps in row-major order and take a tap
when :func:`beats` says so; kernels that keep values alone fold two partial
results with :func:`fold`; kernels that find a position after the values
(adaptive max, from its columns' bests) ask :func:`held_by_last_tap` which
of the taps equal to the result the walk would have held. ``v != v`` is the
NaN test throughout: it folds away for integers.
"""

from numba import njit

MAX = 0
MAX_OMIT_NAN = 1
SUM = 2


@njit(forceinline=True)
def beats(v, best, reduction):
    """Whether tap value ``v``, met after ``best``, takes its place.

    Written with ``|`` and ``&``, not ``or``: one select, no branch, so loops vectorise.
    """
    if reduction == MAX_OMIT_NAN:
        return (v > best) | ((best != best) & (v == v))
    return (v > best) | (v != v)


@njit(forceinline=True)
def fold(a, b, reduction):
    """Partial result ``a``, then ``b``, folded: values only, so a tie may go either way.

    Each select tests one comparison, which the compiler keeps as a select (a
    compound test becomes a branch, and on unpredictable data a branch
    mispredicts half the time).
    """
    if reduction == SUM:
        return a + b
    larger = a if a >= b else b  # b when either is NaN
    if reduction == MAX_OMIT_NAN:
        return a if b != b else larger  # NaN only when both are
    return a if a != a else larger  # NaN when either is


@njit(forceinline=True)
def same(v, best):
    """Whether tap value ``v`` equals the result ``best`` (any NaN equals a NaN)."""
    return (v == best) | ((v != v) & (best != best))


@njit(forceinline=True)
def held_by_last_tap(best, reduction):
    """Whether, of the taps whose value is ``same`` as the result ``best``, a walk by
    :func:`beats` holds the last (a NaN under ``MAX``) rather than the first."""
    return reduction == MAX and best != best
