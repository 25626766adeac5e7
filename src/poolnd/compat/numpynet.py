"""NumPyNet's ``Maxpool_layer``, on poolnd's kernels.

>>> import numpy as np
>>> from poolnd.compat.numpynet import Maxpool_layer
>>> x = np.arange(16.0).reshape(1, 4, 4, 1)       # (batch, w, h, c)
>>> layer = Maxpool_layer(size=2, stride=2)
>>> layer.forward(inpt=x).output[0, :, :, 0]
array([[ 5.,  7.],
       [13., 15.]])
>>> layer.delta = np.ones(layer.out_shape)        # the upstream gradient
>>> delta = np.zeros(x.shape)
>>> _ = layer.backward(delta=delta)              # adds into delta, in place
>>> delta[0, :, :, 0]
array([[0., 0., 0., 0.],
       [0., 1., 0., 1.],
       [0., 0., 0., 0.],
       [0., 1., 0., 1.]])

``Maxpool_layer(size, stride=None, pad=False, input_shape=None)`` pools axes 1
and 2 of channels-last ``(batch, w, h, c)`` input: ``size[0]`` and
``stride[0]`` along ``w``, ``size[1]`` and ``stride[1]`` along ``h``. ``size``
and ``stride`` are an int or a pair; ``stride=None`` (or ``0``) means ``size``.

- ``forward(inpt)`` sets ``.output`` (float64, whatever the input's dtype),
  sets ``.delta`` to zeros of the output's shape, and returns the layer.
- The caller sets ``.delta`` to the upstream gradient; ``backward(delta)``
  then *adds* the input gradient into ``delta`` (an array of the input's
  shape) in place, and returns the layer. Where windows overlap, their
  gradients add up.
- As every poolnd layer (:class:`poolnd.nn.SavedForwards`), a layer used
  twice in one pass keeps both forwards, and each ``backward`` answers the
  newest forward not yet answered, with the ``.delta`` set for it; a
  ``backward`` with no forward waiting is a ``ValueError``, and ``eval()``
  keeps nothing.
- ``pad=False`` drops the rows and columns that no window reaches ("valid");
  ``pad=True`` is TensorFlow's "same": ``ceil(w / stride)`` outputs, the odd
  padding row after (``pad_top``, ``pad_bottom``, ``pad_left``, ``pad_right``
  say how much).
- NaN is skipped, as ``np.nanmax`` skips it (poolnd's ``nan_policy="omit"``);
  padding never wins. Ties go to the first maximum in row-major window order.
- ``layer(previous_layer)`` joins it to a network, taking ``input_shape`` from
  ``previous_layer.out_shape``; ``out_shape`` is ``(batch, out_w, out_h, c)``.

Where it differs from NumPyNet, on purpose: an input whose windows are all
NaN gives NaN and sends its gradient to the window's first input element
(NumPyNet's ``np.nanargmax`` raises ``ValueError: All-NaN slice``); in a
window holding NaN whose other values are all ``-inf``, the gradient goes to
a ``-inf`` (``np.nanargmax`` may name the NaN); ``input_shape`` may be left
out (the first input sets it); bad arguments are a ``ValueError`` or
``TypeError`` naming them, when the layer is made.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._families.max import max_backward_from_window, max_pool_call
from .._geometry import check_flag, freeze, is_int, plan_pool, positive_ints
from .._positions import WINDOW_POSITION
from ..nn import SavedForwards

__all__ = ["Maxpool_layer"]

_AXES = (1, 2)  # (batch, w, h, c): w and h are pooled


class Maxpool_layer(SavedForwards):  # noqa: N801  (NumPyNet's name)
    """NumPyNet's channels-last max pooling layer (see the module's text).

    >>> import numpy as np
    >>> layer = Maxpool_layer(size=3, stride=2, pad=True, input_shape=(5, 100, 100, 3))
    >>> layer.out_shape
    (5, 50, 50, 3)
    >>> (layer.pad_top, layer.pad_bottom, layer.pad_left, layer.pad_right)
    (0, 1, 0, 1)
    """

    def __init__(self, size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
                 pad: bool = False, input_shape: tuple[int, int, int, int] | None = None) -> None:
        self.size = positive_ints("size", freeze(size), 2)
        if stride is None or (is_int(stride) and stride == 0):
            stride = self.size  # NumPyNet: no stride (None or 0) means the window's size
        self.stride = positive_ints("stride", freeze(stride), 2)
        self.pad = check_flag("pad", pad)
        self.pad_top = self.pad_bottom = self.pad_left = self.pad_right = 0
        self.input_shape = None
        self.output = self.delta = None
        if input_shape is not None:
            self._set_input_shape(input_shape)

    @property
    def _geometry(self) -> tuple:
        # kernel_size, stride, padding, dilation, ceil_mode, axes: max pooling's arguments
        return (self.size, self.stride, "same" if self.pad else 0, 1, False, _AXES)

    def _set_input_shape(self, shape) -> None:
        shape = freeze(shape)
        if not isinstance(shape, tuple) or len(shape) != 4:
            raise ValueError(f"input_shape must be (batch, w, h, c), got {shape!r}")
        self._take_plan(plan_pool("Maxpool_layer", shape, *self._geometry))

    def _take_plan(self, plan) -> None:
        self.input_shape = plan.in_shape
        self.pad_top, self.pad_left = plan.pad_before
        self.pad_bottom, self.pad_right = plan.pad_after
        self._out_shape = plan.out_shape

    @property
    def out_shape(self) -> tuple[int, int, int, int] | None:
        """``(batch, out_w, out_h, c)``, or ``None`` until the input's shape is known."""
        return None if self.input_shape is None else self._out_shape

    def __call__(self, previous_layer: object) -> Maxpool_layer:
        """Join the layer to ``previous_layer``: NumPyNet's way of building a network."""
        shape = getattr(previous_layer, "out_shape", None)
        if shape is None:
            raise ValueError(f"Maxpool_layer cannot follow {type(previous_layer).__name__}: "
                             f"it has no out_shape")
        self._set_input_shape(shape)
        return self

    def forward(self, inpt: ArrayLike) -> Maxpool_layer:
        """Pool ``inpt`` ``(batch, w, h, c)``: sets ``.output`` and zero ``.delta``."""
        x = np.asarray(inpt)
        if x.ndim != 4:
            raise ValueError(f"inpt must have shape (batch, w, h, c), got {x.shape}")
        if self.input_shape is not None and x.shape[1:] != self.input_shape[1:]:
            raise ValueError(f"inpt has shape {x.shape} but the layer's input_shape is "
                             f"{self.input_shape}: (w, h, c) must agree")
        if x.dtype.kind != "f":
            # NumPyNet pools in float64; float input keeps its dtype, as widening a
            # float to float64 is exact and keeps its order (same maxima, same ties)
            x = x.astype(np.float64)
        plan, call = max_pool_call(x, self._geometry, WINDOW_POSITION, True, "Maxpool_layer")
        out, positions = call(x)
        self._save(plan, positions)
        self._take_plan(plan)  # the batch may change from call to call
        self.output = out.astype(np.float64, copy=False)
        self.delta = np.zeros(self.output.shape)
        return self

    def backward(self, delta: np.ndarray) -> Maxpool_layer:
        """Add the gradient for ``self.delta`` into ``delta`` (the input's shape), in place,
        for the newest forward not yet answered."""
        return super().backward(delta)

    def _backward(self, delta, plan, positions):
        if not isinstance(delta, np.ndarray):
            raise TypeError(f"delta must be a NumPy array (it is updated in place), got "
                            f"{type(delta).__name__}")
        if delta.dtype.kind != "f":
            raise TypeError(f"delta must hold floats, got dtype {delta.dtype}")
        if delta.shape != plan.in_shape:
            raise ValueError(f"delta has shape {delta.shape} but the input of the forward it "
                             f"answers had shape {plan.in_shape}")
        upstream = np.asarray(self.delta)
        if upstream.shape != plan.out_shape:
            raise ValueError(f"layer.delta has shape {upstream.shape} but the output of the "
                             f"forward it answers has shape {plan.out_shape}")
        grad = max_backward_from_window(upstream, positions, plan)
        np.add(delta, grad, out=delta, casting="same_kind")
        return self

    def __repr__(self) -> str:
        return (f"Maxpool_layer(size={self.size}, stride={self.stride}, pad={self.pad}, "
                f"input_shape={self.input_shape})")
