"""The one place an op decides where its arrays are pooled.

``backend_for(*arrays)`` gives the module whose functions do an op's work:
:mod:`~poolnd._backends.dask` when any array is a Dask array, else
:mod:`~poolnd._backends.numpy`. Both name their functions after the public
ops and take the public arguments in order, then ``op=`` (the name errors
use) and ``n=`` (the number of pooled axes fixed by a name such as
``max_pool2d``). A new backend (say, CuPy) is one module here and its test.
"""

from __future__ import annotations

from types import ModuleType

from .._dtypes import is_dask_array
from . import numpy as _numpy


def backend_for(*arrays) -> ModuleType:
    """The backend that pools ``arrays``: Dask if any of them is a Dask array."""
    if any(is_dask_array(a) for a in arrays):
        from . import dask  # Dask is imported only when a Dask array arrives

        return dask
    return _numpy
