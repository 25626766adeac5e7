"""Large windows: one axis at a time, at a cost per output that does not grow with the window.

A box window is separable: the maximum (or sum) over the box is the maximum
(or sum) along one axis of the maxima (or sums) along the others, so the
axes are pooled one after another. Along one axis, van Herk and Gil-Werman's
scheme cuts the padded line into blocks of ``k``: ``ahead[j]`` folds block
``j // k`` from its start up to ``j``, ``behind[j]`` from ``j`` to the
block's end, and the window ``[j, j + k)`` is ``behind[j]`` folded with
``ahead[j + k - 1]`` (just ``behind[j]`` when it starts a block), three
folds per element whatever ``k`` is.

Values only: which element wins a tie is not tracked. The folds are those of
:mod:`.reductions`: NaN wins under ``MAX``, is skipped under ``MAX_OMIT_NAN``;
``SUM`` adds, and the caller divides.
"""

import numpy as np
from numba import njit

from ._cache import cached_kernel
from .reductions import fold


@njit(inline="always")
def _value(line, i, identity):
    """Element ``i`` of ``line``, or ``identity`` outside it."""
    return line[i] if 0 <= i < line.shape[0] else identity


@njit(inline="always")
def _next(place, step, k):
    """``(place + step) % k`` for ``0 <= place < k``, without a division in the common case."""
    place += step
    while place >= k:
        place -= k
    return place


@njit(inline="always")
def _running_line(line, result, ahead, behind, k, s, pad, identity, reduction):
    """One line of scalars: ``result[o]`` folds ``line[o*s - pad : o*s - pad + k]``."""
    n = ahead.shape[0]
    place = 0  # j % k, kept by counting: a division per element would cost more than the fold
    for j in range(n):
        v = _value(line, j - pad, identity)
        ahead[j] = v if place == 0 else fold(ahead[j - 1], v, reduction)
        place = _next(place, 1, k)
    place = (n - 1) % k
    for j in range(n - 1, -1, -1):
        v = _value(line, j - pad, identity)
        block_end = place == k - 1 or j == n - 1
        behind[j] = v if block_end else fold(v, behind[j + 1], reduction)
        place = _next(place, k - 1, k)
    place = 0
    for o in range(result.shape[0]):
        j = o * s
        result[o] = behind[j] if place == 0 else fold(behind[j], ahead[j + k - 1], reduction)
        place = _next(place, s, k)


@njit(inline="always")
def _running_lines(lines, results, ahead, behind, k, s, pad, identity, reduction):
    """The same over lines of vectors ``(L, R)``, the inner loops over ``R``."""
    n, R = ahead.shape
    for j in range(n):
        now, before = ahead[j], ahead[j - 1]
        inside, block_start = 0 <= j - pad < lines.shape[0], j % k == 0
        for r in range(R):
            v = lines[j - pad, r] if inside else identity
            now[r] = v if block_start else fold(before[r], v, reduction)
    for j in range(n - 1, -1, -1):
        now, after = behind[j], behind[min(j + 1, n - 1)]
        inside, block_end = 0 <= j - pad < lines.shape[0], j % k == k - 1 or j == n - 1
        for r in range(R):
            v = lines[j - pad, r] if inside else identity
            now[r] = v if block_end else fold(v, after[r], reduction)
    for o in range(results.shape[0]):
        j = o * s
        first, last, target = behind[j], ahead[j + k - 1], results[o]
        block_start = j % k == 0
        for r in range(R):
            target[r] = first[r] if block_start else fold(first[r], last[r], reduction)


@cached_kernel(nogil=True)
def running_pool(x, out, k, s, pad, identity, reduction, job_lo, job_hi):
    """Pool ``x`` ``(A, L, R)`` along ``L`` into ``out`` ``(A, n_out, R)``; jobs are lines ``a``.

    Window ``o`` covers positions ``o*s - pad .. o*s - pad + k - 1``; those
    outside ``[0, L)`` hold ``identity``.
    """
    R, n_out = x.shape[2], out.shape[1]
    n = (n_out - 1) * s + k  # the padded line the windows cover
    ahead = np.empty((n, R), out.dtype)
    behind = np.empty((n, R), out.dtype)
    for a in range(job_lo, job_hi):
        if R == 1:  # views of single elements would cost more than the folds
            _running_line(x[a, :, 0], out[a, :, 0], ahead[:, 0], behind[:, 0], k, s, pad,
                          identity, reduction)
        else:
            _running_lines(x[a], out[a], ahead, behind, k, s, pad, identity, reduction)
