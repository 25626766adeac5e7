"""The pooling families on NumPy arrays: max, avg, lp, adaptive, fractional, unpool.

Each module plans its op (every check in :mod:`poolnd._geometry`), brings the
arrays into the kernels' layout (:mod:`poolnd._layout`), runs its kernels and
shapes the result back. Each exposes the op under its public name with the
public arguments in order plus ``op=`` and ``n=`` (see :mod:`poolnd._backends`),
and what the layers of :mod:`poolnd.nn` keep and need for their backward.
"""
