"""Kernels compiled once and kept on disk, safely when processes compile at once.

numba keeps one index file per function that maps each compiled signature to
a data file, numbered in the order they come. Two processes that compile
different signatures of one function at the same time can both take the next
number: the index then names one signature's file while the other's machine
code is in it, and a later process loads the wrong code ("can't unbox array").
Here a data file is named by a hash of its signature instead, and written
before the index names it: different signatures never share a file, and at
worst a process's index entry is lost to another's, which costs a compile.
"""

import hashlib
import pickle

from numba import njit
from numba.core.caching import IndexDataCacheFile


class _SignatureNamedFiles(IndexDataCacheFile):
    def save(self, key, data):
        digest = hashlib.sha256(pickle.dumps(key)).hexdigest()[:20]
        name = self._data_name_pattern.replace("{number:d}", digest)
        self._save_data(name, data)
        overloads = self._load_index()
        overloads[key] = name
        self._save_index(overloads)


def cached_kernel(**options):
    """``numba.njit(cache=True, **options)``, its data files named by signature."""

    def compile_later(function):
        dispatcher = njit(cache=True, **options)(function)
        cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
        if type(cache_file) is IndexDataCacheFile:  # numba's own, as this module expects
            cache_file.__class__ = _SignatureNamedFiles
        return dispatcher

    return compile_later
