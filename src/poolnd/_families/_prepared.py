"""Prepared calls: what a repeated call decides once.

A training loop calls one op on arrays of one shape many times. The first call
with a given input layout (:func:`layout`) and arguments plans it and
chooses its views and kernel; later calls with the same key only allocate the
result, run the kernel and shape the result. The key holds everything the
choices depend on, so a call with other strides, another dtype or other
arguments never meets a stale one. Arguments whose repr may not name them
exactly (lists, arrays, other objects) are not keys: those calls take the full
path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

_MOST = 512  # prepared calls kept; past that the cache starts again
_prepared: dict[Hashable, Any] = {}
_lock = threading.Lock()


# The characters of the repr of ints, floats, bools, None, strings (a layer's op name,
# "MaxPool2d", among them), NumPy scalars ("np.int64(2)") and tuples of them: such a
# repr names its value and type exactly; anything else (a list, an object's
# "<... at 0x...>", an array's "array(...)") is not used as a key.
_PLAIN = frozenset(" (),-.'_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


# NPY_ARRAY_ALIGNED | NPY_ARRAY_WRITEABLE: the flags, besides shape, strides and dtype,
# that numba's type of an array depends on (contiguity follows from shape and strides)
_TYPE_FLAGS = 0x100 | 0x400


def layout(a: np.ndarray) -> tuple:
    """All that a prepared call's views, kernel and kernel's compiled version depend on."""
    return a.shape, a.strides, a.dtype, a.flags.num & _TYPE_FLAGS


def prepared_for(x: np.ndarray, tag: Hashable, arguments: tuple,
                 prepare: Callable[[], Any]) -> Any:
    """The prepared call for inputs laid out as ``x``, the op's own ``tag`` (names and
    counts of poolnd's code, which equality tells apart) and the caller's
    ``arguments``, made by ``prepare()`` the first time.

    The arguments enter the key as their ``repr``, which keeps ``True`` and ``1``,
    ``2`` and ``2.0`` apart, where equality does not; the tag stays out of it (the
    ``repr`` costs about as much as the rest of the key).
    """
    text = repr(arguments)
    call_key = layout(x), tag, text
    found = _prepared.get(call_key)
    if found is not None:  # only plain keys are kept: one found needs no check
        return found
    if not _PLAIN.issuperset(text) or "array" in text:
        return prepare()
    return prepared(call_key, prepare)


def prepared(call_key: Hashable, prepare: Callable[[], Any]) -> Any:
    """The prepared call for ``call_key`` (exact values), made by ``prepare()`` the first
    time."""
    found = _prepared.get(call_key)
    if found is None:
        found = prepare()  # raises for bad arguments: nothing is kept
        with _lock:
            if len(_prepared) >= _MOST:
                _prepared.clear()
            _prepared[call_key] = found
    return found


def forget() -> None:
    """Drop every prepared call: the next call of each prepares it again."""
    with _lock:
        _prepared.clear()
