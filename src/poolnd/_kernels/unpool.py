"""Max-unpooling: scatter-add to flat indices, and its adjoint, a gather.

Both see ``(B, Q, C)`` values, ``(B, Q, C)`` flat indices into the ``P``
positions of the pooled axes, and ``(B, P, C)`` on the other side; the
caller checked every index is in ``[0, P)``. A job is a plane ``b``.
Channels-first data (``C == 1``) takes a loop over 1-d views, which the
compiler keeps free of the channel index arithmetic (about twice as fast).
"""


from ._cache import cached_kernel


@cached_kernel(nogil=True)
def scatter_add(values, index, out, b_lo, b_hi):
    """``out[b]`` zeroed, then ``out[b, index[b, q, c], c] += values[b, q, c]``, in order, so
    repeats add up the same way every time (also max pooling's backward from indices).

    The plane is zeroed here, not by the caller: one write per page, by the
    thread that then adds.
    """
    Q, C = values.shape[1], values.shape[2]
    for b in range(b_lo, b_hi):
        out[b] = 0
        v, i, o = values[b], index[b], out[b]
        if C == 1:
            v, i, o = v[:, 0], i[:, 0], o[:, 0]
            for q in range(Q):
                o[i[q]] += v[q]
        else:
            for q in range(Q):
                for c in range(C):
                    o[i[q, c], c] += v[q, c]


@cached_kernel(nogil=True)
def gather(source, index, out, b_lo, b_hi):
    """``out[b, q, c] = source[b, index[b, q, c], c]``."""
    Q, C = out.shape[1], out.shape[2]
    for b in range(b_lo, b_hi):
        s, i, o = source[b], index[b], out[b]
        if C == 1:
            s, i, o = s[:, 0], i[:, 0], o[:, 0]
            for q in range(Q):
                o[q] = s[i[q]]
        else:
            for q in range(Q):
                for c in range(C):
                    o[q, c] = s[i[q, c], c]


@cached_kernel(nogil=True)
def index_range(index, block, extremes, lo, hi):
    """``extremes[k] = min, max`` of block ``k`` of flat ``index`` (``block`` long),
    for ``k`` from ``lo`` to ``hi - 1``: the check that every index is in range,
    spread over the threads like the scatter it guards."""
    for k in range(lo, hi):
        run = index[k * block:(k + 1) * block]
        low = high = run[0]
        for i in range(1, run.size):
            low = min(low, run[i])
            high = max(high, run[i])
        extremes[k, 0], extremes[k, 1] = low, high
