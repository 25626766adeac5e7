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

from functools import cache

import numpy as np
from numba import njit

from ._cache import cached_kernel
from ._windows import per_output
from .reductions import SUM, fold


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


@njit(inline="always")
def _doubled_rows(rows, levels, first, m, k, C, identity, reduction):
    """Rows ``(G, W*C)`` of vectors of ``C``: output ``o < m`` of row ``g`` folds its elements
    ``first + o .. first + o + k - 1`` (those outside the row hold ``identity``).

    ``levels`` ``(3, G*P*C)``, ``P = m + k - 1``: each row padded to ``P``
    places, end to end, so that each level is one pass over all the rows (a pass
    per row would cost its set-up and remainder loop in every row). Where a
    level reads past the end of a row it is never read again. Returns which
    of ``levels`` holds the results: output ``o`` of row ``g`` at ``(g*P + o)*C``.
    """
    P, length = m + k - 1, rows.shape[1] // C
    lo = min(max(-first, 0), P)  # the places before the row, then those inside it
    hi = max(min(length - first, P), lo)
    for g in range(rows.shape[0]):
        # slices indexed by loop counters only: an index that may be negative (an offset
        # added) takes numba's wraparound test, and the loop no longer vectorises
        start = g * P * C
        levels[0, start:start + lo * C] = identity
        inside = levels[0, start + lo * C:start + hi * C]
        part = rows[g, (lo + first) * C:(hi + first) * C]
        for i in range(inside.shape[0]):
            inside[i] = part[i]
        levels[0, start + hi * C:start + P * C] = identity
    total = levels.shape[1]
    used = total - (P - m) * C  # to the last row's last output
    p, w = 0, 1  # levels[p] holds level w
    started, offset = False, 0
    while True:
        if reduction == SUM and k & w:  # the next run of the window: w elements at offset
            sums, part = levels[2, :used], levels[p, offset * C:offset * C + used]
            for i in range(used):
                sums[i] = sums[i] + part[i] if started else part[i]
            started, offset = True, offset + w
        if 2 * w > k:
            break
        now, shifted = levels[p, :total - w * C], levels[p, w * C:total]
        wider = levels[1 - p, :total - w * C]
        for i in range(wider.shape[0]):
            wider[i] = fold(now[i], shifted[i], reduction)
        p, w = 1 - p, 2 * w
    if reduction == SUM:
        return 2
    # the window is level w at its start and at its end (w <= k < 2w)
    now, shifted = levels[p, :used], levels[p, (k - w) * C:(k - w) * C + used]
    result = levels[1 - p, :used]
    for i in range(used):
        result[i] = fold(now[i], shifted[i], reduction)
    return 1 - p


@njit(inline="always")
def _store_rows(done, out_rows, divisors, across):
    """Rows ``done`` into ``out_rows`` (as wide or narrower), divided by ``divisors[o] *
    across[i]`` unless ``divisors`` is empty; whether any quotient is infinite or NaN."""
    nonfinite = False
    for o in range(out_rows.shape[0]):
        part, into = done[o], out_rows[o]
        if divisors.shape[0] == 0:
            for i in range(into.shape[0]):  # a loop, not a slice assignment: that costs a call
                into[i] = part[i]
        else:
            divisor = divisors[o]
            for i in range(into.shape[0]):
                quotient = part[i] / (divisor * across[i])
                into[i] = quotient
                nonfinite |= quotient - quotient != 0  # a test that vectorises, a branch not
    return nonfinite


# rows pooled together by doubling_kernel: enough that a level's pass is long, few enough
# that its levels stay in cache
_ROWS_AT_ONCE = 16


@cache
def doubling_kernel(reduction):
    """``kernel(x, out, C, k, pad, identity, job_lo, job_hi)``: rows ``x`` ``(A, L*C)`` of
    vectors of ``C`` pooled at stride 1 into ``out`` ``(A, O*C)``, window ``o`` covering
    places ``o - pad .. o - pad + k - 1``; jobs are rows.

    One kernel for each reduction: as a constant it leaves no test in the loops.
    """
    @cached_kernel(nogil=True)
    def kernel(x, out, C, k, pad, identity, job_lo, job_hi):
        m, G = out.shape[1] // C, max(1, min(_ROWS_AT_ONCE, job_hi - job_lo))
        P = m + k - 1
        levels, no_divisors = np.empty((3, G * P * C), out.dtype), np.empty(0)
        for lo in range(job_lo, job_hi, G):
            lo = min(lo, job_hi - G)  # the last rows at once end at the last: some again
            result = levels[_doubled_rows(x[lo:lo + G], levels, -pad, m, k, C, identity,
                                          reduction)]
            _store_rows(result.reshape(G, P * C), out[lo:lo + G], no_divisors, no_divisors)
    return kernel


@cache
def separable_kernel(reduction):
    """``kernel(x, out, C, k, s, pad, k_row, pad_row, strip, identity, divisors, divisors_row,
    nonfinite, job_lo, job_hi)``: planes ``x`` ``(B, L, W*C)`` pooled into ``out``
    ``(B, O, O_row*C)``, along their rows at stride 1 by doubling, then along ``L`` by
    running folds. Jobs are strips of ``strip`` output columns of a plane, plane by plane.

    Sums are divided by ``divisors[o] * divisors_row[o_row]`` (exact in float64),
    unless ``divisors`` is empty; ``nonfinite[job]`` then says whether the job
    wrote any infinite or NaN quotient.

    What the first pass writes is still in cache for the second: no array in
    between goes through memory. Strips keep that so for large planes, and
    split a single plane between threads; an output's rounding does not depend
    on them.
    """
    # error_model="numpy": no test for division by zero (divisors are >= 1) in the loops
    @cached_kernel(nogil=True, error_model="numpy")
    def kernel(x, out, C, k, s, pad, k_row, pad_row, strip, identity, divisors, divisors_row,
               nonfinite, job_lo, job_hi):
        L, n_out, width = x.shape[1], out.shape[1], out.shape[2] // C
        strips, n, r = -(-width // strip), (n_out - 1) * s + k, strip * C
        G, P = max(1, min(_ROWS_AT_ONCE, L)), strip + k_row - 1
        # arrays of their own, not views of one: what one pass writes and the next reads
        # stays in cache, and LLVM knows they do not overlap
        levels = np.empty((3, G * P * C), out.dtype)
        pooled, done = np.empty((L, r), out.dtype), np.empty((n_out, r), out.dtype)
        ahead, behind = np.empty((n, r), out.dtype), np.empty((n, r), out.dtype)
        dividing = reduction == SUM and divisors.shape[0] > 0
        # the divisors along a row, one per element: a strip's are a slice of them
        across = per_output(divisors_row, width * C if dividing else 0, C)
        no_divisors = divisors[:0]
        for job in range(job_lo, job_hi):
            # the last strip ends at the row's end: all strips are as wide, and the columns
            # it shares with the one before get the same values again
            b, first = job // strips, min(job % strips * strip, width - strip)
            for h in range(0, L, G):
                h = min(h, L - G)  # the last rows at once end at the last: some again
                result = levels[_doubled_rows(x[b, h:h + G], levels, first - pad_row, strip,
                                              k_row, C, identity, reduction)]
                _store_rows(result.reshape(G, P * C), pooled[h:h + G], no_divisors, no_divisors)
            if strips == 1:  # into the output itself, divided there
                _running_lines(pooled, out[b], ahead, behind, k, s, pad, identity, reduction)
                if dividing:
                    nonfinite[job] = _store_rows(out[b], out[b], divisors, across)
                continue
            _running_lines(pooled, done, ahead, behind, k, s, pad, identity, reduction)
            flag = _store_rows(done, out[b, :, first * C:first * C + r],
                               divisors if dividing else no_divisors,
                               across[first * C:first * C + r])
            if dividing:
                nonfinite[job] = flag
    return kernel
