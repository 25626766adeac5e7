"""Drop-in front ends for the pooling layers of the seed libraries.

Each module keeps one library's names, argument order and data layout, so
that swapping the import is the only change, and runs poolnd's ops and
layers underneath (no kernels of its own):

- :mod:`poolnd.compat.numpynet`: NumPyNet's channels-last ``Maxpool_layer``;
- :mod:`poolnd.compat.tinyml`: tinyml's NCHW ``MaxPool2D`` with window-local indices;
- :mod:`poolnd.compat.d2l`: the d2l book's ``pool2d``.

Lucid's ``nn.MaxPool2d(kernel_size, stride, padding)`` is PyTorch-shaped, so
its front end is :class:`poolnd.nn.MaxPool2d` itself.

>>> import numpy as np
>>> from poolnd.compat.d2l import pool2d
>>> pool2d(np.arange(9.0).reshape(3, 3), (2, 2))
array([[4., 5.],
       [7., 8.]])
"""

__all__ = ["d2l", "numpynet", "tinyml"]
