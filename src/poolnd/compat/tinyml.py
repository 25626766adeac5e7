"""tinyml's ``MaxPool2D`` layer, on poolnd's kernels.

>>> import numpy as np
>>> from poolnd.compat.tinyml import MaxPool2D
>>> pool = MaxPool2D("pool", (1, 3, 3), (2, 2), 1, return_index=True)
>>> x = np.array([[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]])
>>> out, index = pool.forward(x)
>>> out[0, 0]
array([[5., 6.],
       [8., 9.]])
>>> index[0, 0]  # the position inside each 2x2 window: row * 2 + column
array([[3, 3],
       [3, 3]])
>>> pool.backward(np.ones_like(out))[0, 0]
array([[0., 0., 0.],
       [0., 1., 1.],
       [0., 1., 1.]])

``MaxPool2D(name, input_dim, size, stride, return_index=False)`` pools the
last two axes of ``(N, C, H, W)`` input. ``input_dim`` is ``(C, H, W)``, and as
in tinyml the windows must tile each axis exactly: ``(H - size[0])`` and
``(W - size[1])`` must be multiples of the stride. ``forward(input)`` returns
the output, and with ``return_index=True`` also the position of each maximum
inside its window (``row * size[1] + column``, int64, tinyml's format; not
PyTorch's flat index). ``backward(in_gradient)`` returns the gradient for the
last forward; where windows overlap, their gradients add up.

The same numbers as tinyml, outputs, indices and gradients, for every input
tinyml accepts: ties go to the first maximum in row-major window order, and a
window holding NaN gives NaN and names its *first* NaN, as ``np.argmax`` does
(poolnd's own ``nan_policy="propagate"`` names the last one, as PyTorch does;
this front end moves the index to the first). The gradient comes back in the
input's dtype for float input, as tinyml's does.

Where it differs from tinyml, on purpose:

- tinyml's shape check compares the width against the kernel *height*
  (``W - size[0]``), so it refuses some valid non-square settings with an
  ``AssertionError`` in ``forward``; this one checks ``W - size[1]``.
- bad settings are a ``ValueError`` or ``TypeError`` naming the argument,
  raised when the layer is made (tinyml raises a bare ``Exception``), and so
  is an input whose ``(C, H, W)`` is not ``input_dim``.
- ``size`` and ``stride`` may be an int or a pair (tinyml needs a pair and an
  int); integer input gets a float64 gradient (tinyml's is truncated to the
  input's integer dtype).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._geometry import check_flag, freeze, plan_pool, positive_ints
from .._positions import flat_to_window, window_to_flat
from ..functional import max_pool2d, max_pool_backward
from ..nn import SavedForwards

__all__ = ["MaxPool2D"]


class MaxPool2D(SavedForwards):
    """tinyml's max pooling layer for ``(N, C, H, W)`` input (see the module's text).

    >>> import numpy as np
    >>> pool = MaxPool2D("pool1", (16, 64, 64), (2, 2), 2)
    >>> pool.out_dim
    (16, 32, 32)
    >>> pool.forward(np.zeros((8, 16, 64, 64), np.float32)).shape
    (8, 16, 32, 32)
    """

    def __init__(self, name: str, input_dim: tuple[int, int, int], size: int | tuple[int, int],
                 stride: int | tuple[int, int], return_index: bool = False) -> None:
        self.name = name
        self.type = "MaxPool2D"
        self.parameters: list = []  # tinyml's networks collect every layer's parameters
        dims = freeze(input_dim)
        if not isinstance(dims, tuple) or len(dims) != 3:
            raise TypeError(f"input_dim must be (channels, height, width), got {input_dim!r}")
        self.input_channel, self.input_height, self.input_width = positive_ints(
            "input_dim", dims, 3)
        kernel = positive_ints("size", freeze(size), 2)
        steps = positive_ints("stride", freeze(stride), 2)
        self.size, self.stride = size, stride
        self.return_index = check_flag("return_index", return_index)
        self._plan = plan_pool("MaxPool2D", (1, *self.input_dim), kernel, steps, n=2)
        for axis, length, k, s in zip(("height", "width"), self._plan.lengths, kernel, steps):
            if (length - k) % s:
                raise ValueError(
                    f"MaxPool2D: input {axis} {length} is not tiled exactly by size {k} and "
                    f"stride {s}: ({length} - {k}) % {s} = {(length - k) % s}; tinyml needs "
                    f"({axis} - size) to be a multiple of the stride"
                )
        self.out_height, self.out_width = self._plan.out_lengths
        self.out_dim = (self.input_channel, self.out_height, self.out_width)
        self._kernel, self._steps = kernel, steps

    @property
    def input_dim(self) -> tuple[int, int, int]:
        return (self.input_channel, self.input_height, self.input_width)

    def forward(self, input: ArrayLike) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The pooled input, and with ``return_index=True`` each maximum's window position."""
        x = np.asarray(input)
        if x.ndim != 4 or x.shape[1:] != self.input_dim:
            raise ValueError(f"MaxPool2D {self.name!r}: input must have shape (N, "
                             f"{', '.join(map(str, self.input_dim))}), got {x.shape}")
        out, flat = max_pool2d(x, self._kernel, self._steps, return_indices=True)
        plan = plan_pool("MaxPool2D", x.shape, self._kernel, self._steps, n=2)
        if out.dtype.kind == "f":
            flat = _first_nan(x, out, flat, plan)
        self._save(plan, flat, x.dtype if x.dtype.kind == "f" else None)
        if self.return_index:
            return out, flat_to_window(flat, plan).astype(np.int64)
        return out

    __call__ = forward

    def backward(self, in_gradient: ArrayLike) -> np.ndarray:
        """The gradient with respect to the input of the newest forward not yet answered."""
        return super().backward(in_gradient)

    def _backward(self, in_gradient, plan, flat, dtype):
        grad = max_pool_backward(in_gradient, flat, plan.in_shape, self._kernel, self._steps)
        return grad if dtype is None else grad.astype(dtype, copy=False)

    def summary(self) -> list:
        """tinyml's summary row: type, name, weights, output shape."""
        return [self.type, self.name, "N/A", self.out_dim]

    def __repr__(self) -> str:
        return (f"MaxPool2D({self.name!r}, input_dim={self.input_dim}, size={self.size!r}, "
                f"stride={self.stride!r}, return_index={self.return_index})")


def _first_nan(x: np.ndarray, out: np.ndarray, flat: np.ndarray, plan) -> np.ndarray:
    """``flat`` with each NaN window's index moved to its first NaN (``np.argmax``'s rule).

    poolnd names the last NaN (PyTorch's rule); only windows whose maximum is
    NaN are looked at again, so input without NaN costs one pass over ``out``.
    """
    hit = np.isnan(out)
    if not hit.any():
        return flat
    kh, kw = plan.kernel
    sh, sw = plan.stride
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    taps = flat_to_window(flat, plan).astype(np.int64)
    taps[hit] = np.isnan(windows[hit].reshape(-1, kh * kw)).argmax(axis=1)
    return window_to_flat(taps, plan)
