"""Bounds: under ``NUMBA_BOUNDSCHECK=1`` every kernel checks every index.

CI runs the whole suite with ``NUMBA_BOUNDSCHECK=1`` on a fresh install, so
every kernel compiles with the checks; elsewhere give such a run a cache of
its own (``NUMBA_CACHE_DIR``): numba's on-disk cache could otherwise hand back
kernels compiled without them. These tests run only in that mode and prove it is
live: a deliberately out-of-bounds numba function, and one of poolnd's own
cached kernels called with an index just past its array, must raise
``IndexError`` (without the checks they would read the neighbouring memory).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from numba import config, njit

from poolnd._kernels import unpool

pytestmark = pytest.mark.skipif(os.environ.get("NUMBA_BOUNDSCHECK") != "1",
                                reason="only under NUMBA_BOUNDSCHECK=1")


def test_bounds_checks_are_on():
    assert config.BOUNDSCHECK


def test_an_out_of_bounds_read_in_numba_raises():
    @njit
    def one_past_the_end(a):
        return a[a.shape[0]]

    with pytest.raises(IndexError):
        one_past_the_end(np.zeros(4))


def test_poolnd_kernels_come_from_a_bounds_checked_build():
    # plane 0 asks for position 4 of 4: past its plane (plane 1 sits right after it)
    source = np.arange(8.0).reshape(2, 4, 1)
    index = np.array([[[4]], [[0]]], np.int64)
    with pytest.raises(IndexError):
        unpool.gather(source, index, np.zeros((2, 1, 1)), 0, 2)
