"""poolnd's pooling as MyGrad operations: a drop-in for ``mygrad.nnet.layers.max_pool``.

>>> import mygrad as mg
>>> from poolnd.mygrad import max_pool
>>> x = mg.Tensor([[0., 10., 8.], [2., 7., 3.], [5., 7., 20.]])
>>> out = max_pool(x, pool=(2, 2), stride=1)
>>> out
Tensor([[10., 10.],
        [ 7., 20.]])
>>> out.sum().backward()
>>> x.grad
array([[0., 2., 0.],
       [0., 1., 0.],
       [0., 0., 1.]])

Each function takes MyGrad's positional arguments (``x, pool, stride``, the
trailing ``len(pool)`` axes pooled) and ``constant=`` with MyGrad's meaning,
plus poolnd's geometry as keywords. The result is a ``mygrad.Tensor`` in
MyGrad's graph; its backward runs poolnd's kernels and gives ``x.grad`` in
``x``'s dtype. Each call builds a :mod:`poolnd.nn` layer, which keeps only what
its backward needs (for max pooling, one byte per output for windows up to
256 elements). MyGrad is an optional dependency: ``pip install 'poolnd[mygrad]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import nn
from ._geometry import window_extent
from ._optional import require
from ._types import NanPolicy, Padding, Size

require("mygrad", "mygrad", "poolnd.mygrad")

from mygrad.operation_base import Operation  # noqa: E402  (after the friendly check)
from mygrad.tensor_base import Tensor  # noqa: E402

__all__ = ["adaptive_avg_pool", "adaptive_max_pool", "avg_pool", "lp_pool", "max_pool"]


class LayerOperation(Operation):
    """One poolnd layer as a node of MyGrad's graph: its forward, and its backward for ``x``."""

    can_return_view = False  # layers always return new arrays

    def __call__(self, x: Tensor, layer: Any) -> np.ndarray:
        self.variables = (x,)
        self.layer = layer
        return layer(x.data)

    def backward_var(self, grad: np.ndarray, index: int, **kwargs: Any) -> np.ndarray:
        x = self.variables[index]
        return self.layer.backward(grad).astype(x.dtype, copy=False)


class MaxPoolOperation(LayerOperation):
    """Max pooling's node. MyGrad adds up the gradients of overlapping windows in
    float64 and rounds once to ``x``'s dtype; so does this, so that ``x.grad`` is
    bit-for-bit MyGrad's. Windows that do not overlap need no sums."""

    def backward_var(self, grad: np.ndarray, index: int, **kwargs: Any) -> np.ndarray:
        plan = self.layer._newest()[0]
        extents = map(window_extent, plan.kernel, plan.dilation)
        if any(s < e for s, e in zip(plan.stride, extents)):  # windows overlap
            grad = np.asarray(grad, dtype=np.float64)
        return super().backward_var(grad, index, **kwargs)


def pooled(x: Tensor | ArrayLike, layer: Any, constant: bool | None = None,
           operation: type[LayerOperation] = LayerOperation) -> Tensor:
    """``layer(x)`` as a ``mygrad.Tensor`` that back-propagates through ``layer.backward``."""
    return Tensor._op(operation, x, op_args=(layer,), constant=constant)


def _per_axis(value: Any, name: str) -> Any:
    """MyGrad's rule: ``pool`` (or ``output_size``) gives one size per pooled axis, the
    last ``len(pool)`` axes; a bare int names no axes."""
    if isinstance(value, (tuple, list, np.ndarray)):
        return value
    raise TypeError(f"{name}={value!r} must be a tuple with one value per pooled axis (the "
                    f"last len({name}) axes are pooled, as in MyGrad); for the last two axes "
                    f"write {name}=({value!r}, {value!r})")


def max_pool(x: Tensor | ArrayLike, pool: Sequence[int], stride: Size, *, padding: Padding = 0,
             dilation: Size = 1, ceil_mode: bool = False, nan_policy: NanPolicy = "propagate",
             constant: bool | None = None) -> Tensor:
    """Max pooling over the last ``len(pool)`` axes of ``x``, as MyGrad's ``max_pool``.

    Equal to ``mygrad.nnet.layers.max_pool(x, pool, stride, constant=constant)``
    wherever MyGrad accepts the geometry (windows that tile the input exactly),
    values and gradients; beyond it, poolnd's ``padding``, ``dilation``,
    ``ceil_mode`` and ``nan_policy`` (see :func:`poolnd.max_pool`). Ties send
    the gradient to the first maximum, as MyGrad does.

    >>> import mygrad as mg, numpy as np
    >>> x = mg.Tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    >>> max_pool(x, (3, 3), 2, padding=1).shape
    (1, 1, 2, 2)
    """
    layer = nn.MaxPoolNd(_per_axis(pool, "pool"), stride, padding, dilation,
                         ceil_mode=ceil_mode, nan_policy=nan_policy)
    return pooled(x, layer, constant, MaxPoolOperation)


def avg_pool(x: Tensor | ArrayLike, pool: Sequence[int], stride: Size, *, padding: Padding = 0,
             dilation: Size = 1, ceil_mode: bool = False, count_include_pad: bool = True,
             divisor_override: int | None = None, constant: bool | None = None) -> Tensor:
    """Average pooling over the last ``len(pool)`` axes of ``x`` (see :func:`poolnd.avg_pool`).

    >>> import mygrad as mg
    >>> x = mg.Tensor([[1., 2., 3., 4.]])
    >>> out = avg_pool(x, (2,), 2)
    >>> out.backward()
    >>> out, x.grad
    (Tensor([[1.5, 3.5]]), array([[0.5, 0.5, 0.5, 0.5]]))
    """
    layer = nn.AvgPoolNd(_per_axis(pool, "pool"), stride, padding, ceil_mode,
                         count_include_pad, divisor_override, dilation=dilation)
    return pooled(x, layer, constant)


def lp_pool(x: Tensor | ArrayLike, norm_type: float, pool: Sequence[int],
            stride: Size | None = None, *, ceil_mode: bool = False,
            constant: bool | None = None) -> Tensor:
    """LP pooling over the last ``len(pool)`` axes of ``x`` (see :func:`poolnd.lp_pool`).

    >>> import mygrad as mg
    >>> lp_pool(mg.Tensor([[3., 4., 1., 0.]]), 2, (2,))
    Tensor([[5., 1.]])
    """
    return pooled(x, nn.LPPoolNd(norm_type, _per_axis(pool, "pool"), stride, ceil_mode), constant)


def adaptive_max_pool(x: Tensor | ArrayLike, output_size: Sequence[int | None], *,
                      nan_policy: NanPolicy = "propagate",
                      constant: bool | None = None) -> Tensor:
    """Adaptive max pooling of the last ``len(output_size)`` axes (see
    :func:`poolnd.adaptive_max_pool`).

    >>> import mygrad as mg, numpy as np
    >>> adaptive_max_pool(mg.Tensor(np.arange(10.0)), (3,))
    Tensor([3., 6., 9.])
    """
    layer = nn.AdaptiveMaxPoolNd(_per_axis(output_size, "output_size"), nan_policy=nan_policy)
    return pooled(x, layer, constant)


def adaptive_avg_pool(x: Tensor | ArrayLike, output_size: Sequence[int | None], *,
                      constant: bool | None = None) -> Tensor:
    """Adaptive average pooling of the last ``len(output_size)`` axes; ``(1, 1)`` is
    global average pooling (see :func:`poolnd.adaptive_avg_pool`).

    >>> import mygrad as mg, numpy as np
    >>> adaptive_avg_pool(mg.Tensor(np.arange(8.0).reshape(2, 4)), (1,))
    Tensor([[1.5],
            [5.5]])
    """
    return pooled(x, nn.AdaptiveAvgPoolNd(_per_axis(output_size, "output_size")), constant)
