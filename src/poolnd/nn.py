"""Pooling layers for networks written in NumPy.

A layer is a functional op plus the state its backward needs, kept as small
as it can be: an average layer keeps only the plan of its last call, a max
layer the position of each maximum inside its window, in one byte for
windows of up to 256 taps.

>>> import numpy as np
>>> from poolnd.nn import MaxPool2d
>>> pool = MaxPool2d(2)
>>> y = pool(np.arange(16.0).reshape(1, 1, 4, 4))
>>> pool.backward(np.ones_like(y))[0, 0]
array([[0., 0., 0., 0.],
       [0., 1., 0., 1.],
       [0., 0., 0., 0.],
       [0., 1., 0., 1.]])
"""

from __future__ import annotations

from ._geometry import check_flag, plan_pool
from .functional import (
    _NAN_POLICIES,
    FLAT_INDEX,
    _as_real_array,
    _avg_backward_planned,
    _avg_pool_planned,
    _check_choice,
    _check_divisor,
    _check_grad,
    _max_backward_from_window,
    _max_pool_planned,
    _max_pool_with_window_positions,
    _scatter_flat,
)

__all__ = [
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "AvgPoolNd",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "MaxPoolNd",
]


class _Pool:
    """What every pooling layer shares: geometry, axes, the last call's plan."""

    _n: int | None = None  # pooled axes fixed by the class name (MaxPool2d: 2)
    _op = "pool"

    def __init__(self, kernel_size, stride, padding, dilation, ceil_mode, axes, channels_last):
        channels_last = check_flag("channels_last", channels_last)
        if channels_last:
            if axes is not None:
                raise ValueError(f"give axes={axes!r} or channels_last=True, not both")
            n = self._n if self._n is not None else _count_axes(kernel_size)
            axes = tuple(range(-n - 1, -1))
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.ceil_mode = check_flag("ceil_mode", ceil_mode)
        self.axes = axes
        self._plan = None

    def _plan_for(self, x):
        return plan_pool(self._op, x.shape, self.kernel_size, self.stride, self.padding,
                         self.dilation, self.ceil_mode, self.axes, self._n)

    def _last_plan(self):
        if self._plan is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        return self._plan

    def __call__(self, x):
        return self.forward(x)

    def _arguments(self):
        return {
            "kernel_size": self.kernel_size,
            "stride": self.stride if self.stride is not None else self.kernel_size,
            "padding": self.padding,
            "dilation": self.dilation,
            "ceil_mode": self.ceil_mode,
        }

    def __repr__(self):
        arguments = dict(self._arguments())
        if self.axes is not None:
            arguments["axes"] = self.axes
        text = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        return f"{type(self).__name__}({text})"


def _count_axes(kernel_size) -> int:
    if isinstance(kernel_size, (tuple, list)):
        return len(kernel_size)
    raise ValueError(
        f"channels_last=True with kernel_size={kernel_size!r} does not say how many axes to "
        f"pool; pass a tuple kernel_size or use a layer such as MaxPool2d"
    )


class MaxPoolNd(_Pool):
    """Max pooling over N axes (N from a tuple ``kernel_size`` or ``axes``).

    Arguments as :func:`poolnd.max_pool`, in PyTorch's ``MaxPool2d`` order, plus
    ``axes=`` or ``channels_last=True`` (pool the N axes before the last).
    ``backward(grad)`` returns the gradient for the last ``forward``.
    """

    _op = "MaxPoolNd"

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False, *, axes=None, channels_last=False, nan_policy="propagate"):
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode, axes, channels_last)
        self.return_indices = check_flag("return_indices", return_indices)
        _check_choice("nan_policy", nan_policy, _NAN_POLICIES)
        self.nan_policy = nan_policy
        self._positions = None  # window positions, or flat indices when they were returned

    def forward(self, x):
        x = _as_real_array(x, "x")
        plan = self._plan_for(x)
        omit_nan = self.nan_policy == "omit"
        if self.return_indices:
            out, positions = _max_pool_planned(x, plan, FLAT_INDEX, omit_nan)
        else:
            out, positions = _max_pool_with_window_positions(x, plan, omit_nan)
        self._plan, self._positions = plan, positions
        return (out, positions) if self.return_indices else out

    def backward(self, grad_output):
        plan = self._last_plan()
        if self.return_indices:
            return _scatter_flat(_check_grad(grad_output, plan), self._positions, plan)
        return _max_backward_from_window(grad_output, self._positions, plan)

    def _arguments(self):
        arguments = super()._arguments()
        if self.return_indices:
            arguments["return_indices"] = True
        if self.nan_policy != "propagate":
            arguments["nan_policy"] = self.nan_policy
        return arguments


class AvgPoolNd(_Pool):
    """Average pooling over N axes (N from a tuple ``kernel_size`` or ``axes``).

    Arguments as :func:`poolnd.avg_pool`, in PyTorch's ``AvgPool2d`` order, plus
    ``dilation=``, ``axes=`` or ``channels_last=True``.
    """

    _op = "AvgPoolNd"

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None, *, dilation=1, axes=None,
                 channels_last=False):
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode, axes, channels_last)
        self.count_include_pad = check_flag("count_include_pad", count_include_pad)
        self.divisor_override = divisor_override
        self._override = _check_divisor(divisor_override)

    def forward(self, x):
        x = _as_real_array(x, "x")
        plan = self._plan_for(x)
        out = _avg_pool_planned(x, plan, self.count_include_pad, self._override)
        self._plan = plan
        return out

    def backward(self, grad_output):
        plan = self._last_plan()
        return _avg_backward_planned(grad_output, plan, self.count_include_pad, self._override)

    def _arguments(self):
        arguments = super()._arguments()
        if arguments["dilation"] == 1:
            del arguments["dilation"]
        arguments["count_include_pad"] = self.count_include_pad
        if self.divisor_override is not None:
            arguments["divisor_override"] = self.divisor_override
        return arguments


def _fixed(base, n: int):
    name = base.__name__.replace("Nd", f"{n}d")
    return type(name, (base,), {
        "_n": n,
        "_op": name,
        "__doc__": f"{base.__doc__.splitlines()[0].replace('N axes', f'the last {n} axes')}\n\n"
                   f"See :class:`{base.__name__}`.",
        "__module__": __name__,
    })


MaxPool1d, MaxPool2d, MaxPool3d = (_fixed(MaxPoolNd, n) for n in (1, 2, 3))
AvgPool1d, AvgPool2d, AvgPool3d = (_fixed(AvgPoolNd, n) for n in (1, 2, 3))
