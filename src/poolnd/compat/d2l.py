"""The d2l book's ``pool2d`` (section 7.5), on poolnd's kernels.

>>> import numpy as np
>>> from poolnd.compat.d2l import pool2d
>>> X = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
>>> pool2d(X, (2, 2))
array([[4., 5.],
       [7., 8.]])
>>> pool2d(X, (2, 2), 'avg')
array([[2., 3.],
       [5., 6.]])

The book's function slides a ``(p_h, p_w)`` window with stride 1 and no
padding over a 2-d ``X`` and takes the maximum or the mean of each window.
This one does the same, with three differences, all on purpose:

- a ``mode`` other than ``"max"`` or ``"avg"`` is a ``ValueError`` (the book's
  loop silently returns an array of zeros);
- leading axes, if any, are batch axes: the last two axes are pooled;
- the output dtype is poolnd's: the input's dtype for ``"max"``; for ``"avg"``
  the float input's dtype, float64 for integers (the book writes into a
  zeros array, float32 in its PyTorch, MXNet and JAX versions).

NaN propagates, as with the book's ``.max()`` and ``.mean()``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._geometry import check_choice, freeze, positive_ints
from ..functional import avg_pool2d, max_pool2d

__all__ = ["pool2d"]

MODES = ("max", "avg")


def pool2d(X: ArrayLike, pool_size: int | tuple[int, int], mode: str = "max") -> np.ndarray:
    """Max or average pooling of the last two axes of ``X``, stride 1, no padding.

    >>> import numpy as np
    >>> pool2d(np.arange(16.0).reshape(4, 4), (3, 2), mode="max")
    array([[ 9., 10., 11.],
           [13., 14., 15.]])

    Parameters
    ----------
    X : array_like
        At least two axes; the last two are pooled.
    pool_size : int or (int, int)
        ``(p_h, p_w)``, the window's height and width (an int for both).
    mode : {"max", "avg"}
        The window's maximum or its mean.
    """
    check_choice("mode", mode, MODES)
    positive_ints("pool_size", freeze(pool_size), 2)  # names the book's argument in errors
    pool = max_pool2d if mode == "max" else avg_pool2d
    return pool(X, pool_size, 1)
