"""Kernels compiled once and kept on disk, safely when processes compile at once.

numba keeps one index file per function that maps each compiled signature to
a data file, numbered in the order they come. Two processes that compile
different signatures of one function at the same time can both take the next
number: the index then names one signature's file while the other's machine
code is in it, and a later process loads the wrong code ("can't unbox array").
Here a data file is named by a hash of its signature instead, and written
before the index names it: different signatures never share a file, and at
worst a process's index entry is lost to another's, which costs a compile.

A damaged file (cut short, emptied, bytes changed) would otherwise fail every
later run, each the same way: unpickling, LLVM or unboxing errors that never
name the cache. Each data file starts with a SHA-256 of the rest, checked
before anything is unpickled, and an index or data file that cannot be read
counts as a miss: the kernel compiles again and the files are written anew.
When numba finds nowhere to write a cache (install, NUMBA_CACHE_DIR and home
all read-only), kernels compile in memory in each process instead.

numba's index key holds a pickle of the kernel's closure variables. A kernel
whose closure holds a jitted function (a loop chosen in Python) would pickle
that function with a name random to each process, and no later process would
find its own key: closure variables are keyed here by what they are instead.
"""

import hashlib
import pickle

from numba import njit
from numba.core.caching import FunctionCache, IndexDataCacheFile, _cache_log
from numba.core.dispatcher import Dispatcher
from numba.core.serialize import dumps


class _SignatureNamedFiles(IndexDataCacheFile):
    def _name(self, key):
        # repr, not pickle: a key's pickle depends on which of its equal type objects are
        # the same object, which differs between a process that compiled and one that
        # loaded, so a name made from it would miss the file another process wrote
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:20]
        return self._data_name_pattern.replace("{number:d}", digest)

    def save(self, key, data):
        name = self._name(key)
        self._save_data(name, data)  # before the index names it
        overloads = self._load_index()
        overloads[key] = name
        self._save_index(overloads)

    def load(self, key):
        # The index says only whether the entry is fresh; the file's name comes from the
        # key, so that damage to the index cannot point one signature to another's code.
        return self._load_data(self._name(key)) if key in self._load_index() else None

    def _load_index(self):
        try:
            overloads = super()._load_index()
        except Exception:  # damaged: any pickle error, EOFError, UnicodeDecodeError, ...
            return {}  # the next save writes it anew
        return overloads if isinstance(overloads, dict) else {}

    def _save_data(self, name, data):
        data = self._dump(data)
        with self._open_for_write(self._data_path(name)) as f:
            f.write(hashlib.sha256(data).digest() + data)
        _cache_log("[cache] data saved to %r", self._data_path(name))

    def _load_data(self, name):
        try:
            with open(self._data_path(name), "rb") as f:
                digest, data = f.read(32), f.read()
        except OSError:  # removed since the index named it
            return None
        # a damaged file may unpickle into bad machine code: check it before unpickling
        if hashlib.sha256(data).digest() != digest:
            _cache_log("[cache] damaged, to compile again: %r", self._data_path(name))
            return None
        _cache_log("[cache] data loaded from %r", self._data_path(name))
        return pickle.loads(data)


def _stable(value):
    """``value`` as a key: a jitted function as its name, code and closure, all else as it is."""
    if isinstance(value, Dispatcher):
        function = value.py_func
        cells = tuple(_stable(cell.cell_contents) for cell in function.__closure__ or ())
        code = function.__code__.co_code
        return "jitted", function.__module__, function.__qualname__, code, cells
    return value


class _StableClosureKeys(FunctionCache):
    def _index_key(self, sig, codegen):
        sig, magic, (code_hash, _) = super()._index_key(sig, codegen)
        closure = self._py_func.__closure__ or ()
        cells = dumps(tuple(_stable(cell.cell_contents) for cell in closure)) if closure else b""
        return sig, magic, (code_hash, hashlib.sha256(cells).hexdigest())


def cached_kernel(**options):
    """``numba.njit(cache=True, **options)``, its data files named by signature."""

    def compile_later(function):
        try:
            dispatcher = njit(cache=True, **options)(function)
        except RuntimeError:  # "no locator available": nowhere writable, so compile in memory
            return njit(**options)(function)
        cache = getattr(dispatcher, "_cache", None)
        if type(cache) is FunctionCache:  # numba's own, as this module expects
            cache.__class__ = _StableClosureKeys
        cache_file = getattr(cache, "_cache_file", None)
        if type(cache_file) is IndexDataCacheFile:
            cache_file.__class__ = _SignatureNamedFiles
        return dispatcher

    return compile_later
