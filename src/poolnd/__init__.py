"""poolnd: N-dimensional pooling for NumPy arrays, with backward passes.

>>> import numpy as np, poolnd
>>> poolnd.max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2)
array([[[[ 5.,  7.],
         [13., 15.]]]])
"""

from ._parallel import get_num_threads, set_num_threads
from .functional import (
    avg_pool,
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    avg_pool_backward,
    max_pool,
    max_pool1d,
    max_pool2d,
    max_pool3d,
    max_pool_backward,
)

__version__ = "0.1.0"

__all__ = [
    "avg_pool",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "avg_pool_backward",
    "get_num_threads",
    "max_pool",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "max_pool_backward",
    "set_num_threads",
]
