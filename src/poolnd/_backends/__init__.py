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

import numpy as np

from .._dtypes import is_dask_array
from . import numpy as _numpy


def backend_for(*arrays) -> ModuleType:
    """The backend that pools ``arrays``: Dask if any of them is a Dask array."""
    for array in arrays:  # the common case, decided at once (a loop: no generator's cost)
        if type(array) is not np.ndarray:
            break
    else:
        return _numpy
    for array in arrays:
        refuse_autograd(array)
    if any(is_dask_array(a) for a in arrays):
        from . import dask  # Dask is imported only when a Dask array arrives

        return dask
    return _numpy


def refuse_autograd(x, name: str | None = None) -> None:
    """Refuse a tensor that records gradients (torch's ``requires_grad``): NumPy cannot
    read it (torch raises a RuntimeError inside ``np.asarray``), and a result pooled
    outside its autograd would leave its graph without a word."""
    if getattr(x, "requires_grad", False) is not True:
        return
    what = f"{type(x).__module__}.{type(x).__qualname__} of shape {tuple(x.shape)}"
    given = f"{name} is a {what}" if name else f"got a {what}"
    raise TypeError(f"{given} that requires grad; poolnd pools NumPy arrays, outside torch's "
                    f"autograd: pass {name or 'tensor'}.detach().numpy(), and take the "
                    f"gradient with poolnd's backward functions or a layer's backward()")
