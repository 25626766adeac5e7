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

import collections

import numpy as np
from numpy.typing import ArrayLike

from ._backends import refuse_autograd
from ._dtypes import as_real_array
from ._families.adaptive import (
    adaptive_avg_backward_planned,
    adaptive_avg_planned,
    adaptive_max_backward_window,
    adaptive_max_planned,
)
from ._families.avg import avg_backward_planned, avg_pool_call
from ._families.fractional import fractional_backward_window, fractional_planned, fractional_samples
from ._families.lp import lp_layer_backward, lp_layer_forward
from ._families.max import (
    max_backward_from_window,
    max_pool_call,
)
from ._families.unpool import max_unpool_planned, unpool_backward_planned
from ._geometry import (
    NAN_POLICIES,
    adaptive_arguments,
    check_choice,
    check_divisor,
    check_flag,
    check_grad,
    check_norm_type,
    fractional_arguments,
    freeze,
    plan_adaptive,
    plan_fractional,
    plan_pool,
    plan_unpool,
    pool_arguments,
    unpool_arguments,
)
from ._positions import FLAT_INDEX, WINDOW_POSITION, scatter_flat
from ._types import Axes, LayerT, NanPolicy, OutputSize, Padding, Ratio, Seed, Size

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "AdaptiveAvgPoolNd",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "AdaptiveMaxPoolNd",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "AvgPoolNd",
    "FractionalMaxPool2d",
    "FractionalMaxPool3d",
    "FractionalMaxPoolNd",
    "LPPool1d",
    "LPPool2d",
    "LPPool3d",
    "LPPoolNd",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "MaxPoolNd",
    "MaxUnpool1d",
    "MaxUnpool2d",
    "MaxUnpool3d",
    "MaxUnpoolNd",
]


def _input(x: ArrayLike) -> np.ndarray:
    """A layer's input as a NumPy array, refused as the functional ops refuse it."""
    refuse_autograd(x, "x")
    return as_real_array(x, "x")


class SavedForwards:
    """The state of each forward that awaits its backward, newest last.

    A layer used twice in one pass (``y = pool(conv2(pool(conv1(x))))``) keeps
    both forwards' states, and each ``backward`` answers the newest forward not
    yet answered, as a tape does: backwards run in the reverse order of their
    forwards. At most ``max_pending`` states are kept; a forward beyond that
    forgets the oldest, whose backward is then refused, never answered with
    another call's state. In eval mode forwards keep nothing.
    """

    max_pending = 16  # forwards awaiting a backward; a class or instance attribute

    training = True

    def train(self: LayerT, mode: bool = True) -> LayerT:
        """Keep each forward's state for its backward (the default); returns the layer."""
        self.training = check_flag("mode", mode)
        if not self.training:
            self._pending().clear()
        return self

    def eval(self: LayerT) -> LayerT:
        """Keep nothing: for inference, where no backward follows. Returns the layer."""
        return self.train(False)

    def _pending(self) -> collections.deque:
        pending = self.__dict__.get("_saved")
        if pending is None or pending.maxlen != self.max_pending:
            # deque's append and pop are atomic: threads never see half a state
            pending = collections.deque(pending or (), maxlen=self.max_pending)
            self._saved = pending
        return pending

    def _save(self, *state) -> None:
        if self.training:
            self._pending().append(state)

    def _newest(self) -> tuple:
        """The newest unanswered forward's state, left in place."""
        pending = self._pending()
        if not pending:
            raise ValueError(self._nothing_pending())
        return pending[-1]

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        """The gradient for the newest forward not yet answered (see :class:`SavedForwards`)."""
        refuse_autograd(grad_output, "grad_output")
        state = self._newest()
        grad = self._backward(grad_output, *state)
        # forgotten only once answered: a backward that raises leaves the layer as it was
        pending = self._pending()
        for i in range(len(pending) - 1, -1, -1):
            if pending[i] is state:
                del pending[i]
                break
        return grad

    def _nothing_pending(self) -> str:
        name = type(self).__name__
        if not self.training:
            return (f"{name}.backward(): the layer is in eval mode, where forward() keeps "
                    f"nothing; call layer.train() before the forward whose gradient you need")
        return (f"{name}.backward() called before forward(), or more often than forward(): "
                f"each backward answers one forward, the newest not yet answered (at most "
                f"max_pending={self.max_pending} are kept)")


class _Pool(SavedForwards):
    """What every pooling layer shares: geometry, axes, the state of pending forwards."""

    _n: int | None = None  # pooled axes fixed by the class name (MaxPool2d: 2)
    _op = "pool"

    def __init__(self, kernel_size: Size, stride: Size | None, padding: Padding, dilation: Size,
                 ceil_mode: bool, axes: Axes, channels_last: bool) -> None:
        axes = self._axes_from(axes, channels_last, kernel_size)
        # lists and arrays kept as tuples: checked at each forward, shown by repr, never
        # changed behind the layer's back
        self.kernel_size = freeze(kernel_size)
        self.stride = freeze(stride)
        self.padding = freeze(padding)
        self.dilation = freeze(dilation)
        self.ceil_mode = check_flag("ceil_mode", ceil_mode)
        self.axes = freeze(axes)
        # the call's own checks, now: MaxPool2d(0) is refused when made, not at its first call
        self._check_arguments()

    def _check_arguments(self) -> None:
        pool_arguments(self._op, self.kernel_size, self.stride, self.padding, self.dilation,
                       self.axes, self._n)

    def _axes_from(self, axes, channels_last, size, name="kernel_size"):
        """``axes``, or with ``channels_last=True`` the N axes just before the last."""
        if not check_flag("channels_last", channels_last):
            return axes
        if axes is not None:
            raise ValueError(f"give axes={axes!r} or channels_last=True, not both")
        n = self._n if self._n is not None else _count_axes(size, name)
        return tuple(range(-n - 1, -1))

    def _plan_for(self, x):
        return plan_pool(self._op, x.shape, self.kernel_size, self.stride, self.padding,
                         self.dilation, self.ceil_mode, self.axes, self._n)

    def __call__(self, x: ArrayLike) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        return self.forward(x)

    def _arguments(self):
        return {
            "kernel_size": self.kernel_size,
            "stride": self.stride if self.stride is not None else self.kernel_size,
            "padding": self.padding,
            "dilation": self.dilation,
            "ceil_mode": self.ceil_mode,
        }

    def __repr__(self) -> str:
        arguments = dict(self._arguments())
        if self.axes is not None:
            arguments["axes"] = self.axes
        text = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        return f"{type(self).__name__}({text})"


def _count_axes(size, name="kernel_size") -> int:
    if isinstance(size, (tuple, list)):
        return len(size)
    raise ValueError(
        f"channels_last=True with {name}={size!r} does not say how many axes to "
        f"pool; pass a tuple {name} or use a layer such as MaxPool2d"
    )


class _MaxLayer:
    """What max layers share: the NaN rule, and PyTorch's indices or compact positions."""

    def _keep_maxima(self, return_indices, nan_policy):
        self.return_indices = check_flag("return_indices", return_indices)
        check_choice("nan_policy", nan_policy, NAN_POLICIES)
        self.nan_policy = nan_policy

    def _backward(self, grad_output, plan, positions):
        # positions: flat indices when they were returned, else positions in the window
        if self.return_indices:
            return scatter_flat(check_grad(grad_output, plan), positions, plan)
        return self._backward_from_window(grad_output, positions, plan)

    def _arguments(self):
        arguments = super()._arguments()
        if self.return_indices:
            arguments["return_indices"] = True
        if self.nan_policy != "propagate":
            arguments["nan_policy"] = self.nan_policy
        return arguments


class MaxPoolNd(_MaxLayer, _Pool):
    """Max pooling over N axes (N from a tuple ``kernel_size`` or ``axes``).

    Arguments as :func:`poolnd.max_pool`, in PyTorch's ``MaxPool2d`` order, plus
    ``axes=`` or ``channels_last=True`` (pool the N axes before the last).
    ``backward(grad)`` returns the gradient for the last ``forward``.
    """

    _op = "MaxPoolNd"

    def __init__(self, kernel_size: Size, stride: Size | None = None, padding: Padding = 0,
                 dilation: Size = 1, return_indices: bool = False, ceil_mode: bool = False, *,
                 axes: Axes = None, channels_last: bool = False,
                 nan_policy: NanPolicy = "propagate") -> None:
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode, axes, channels_last)
        self._keep_maxima(return_indices, nan_policy)

    def forward(self, x: ArrayLike) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        x = _input(x)
        kind = FLAT_INDEX if self.return_indices else WINDOW_POSITION
        geometry = (self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                    self.axes)
        plan, call = max_pool_call(x, geometry, kind, self.nan_policy == "omit", self._op,
                                   self._n)
        out, positions = call(x)
        self._save(plan, positions)
        return (out, positions) if self.return_indices else out

    _backward_from_window = staticmethod(max_backward_from_window)


class AvgPoolNd(_Pool):
    """Average pooling over N axes (N from a tuple ``kernel_size`` or ``axes``).

    Arguments as :func:`poolnd.avg_pool`, in PyTorch's ``AvgPool2d`` order, plus
    ``dilation=``, ``axes=`` or ``channels_last=True``.
    """

    _op = "AvgPoolNd"

    def __init__(self, kernel_size: Size, stride: Size | None = None, padding: Padding = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None, *, dilation: Size = 1, axes: Axes = None,
                 channels_last: bool = False) -> None:
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode, axes, channels_last)
        self.count_include_pad = check_flag("count_include_pad", count_include_pad)
        self.divisor_override = divisor_override
        self._override = check_divisor(divisor_override)

    def forward(self, x: ArrayLike) -> np.ndarray:
        x = _input(x)
        geometry = (self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                    self.axes)
        plan, call = avg_pool_call(x, geometry, self.count_include_pad, self._override, None,
                                   self._op, self._n)
        out = call(x)
        self._save(plan)
        return out

    def _backward(self, grad_output, plan):
        return avg_backward_planned(grad_output, plan, self.count_include_pad, self._override)

    def _arguments(self):
        arguments = super()._arguments()
        if arguments["dilation"] == 1:
            del arguments["dilation"]
        arguments["count_include_pad"] = self.count_include_pad
        if self.divisor_override is not None:
            arguments["divisor_override"] = self.divisor_override
        return arguments


def _fixed(base: type[LayerT], n: int) -> type[LayerT]:
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


# --------------------------------------------------------------------------- LP, fractional, unpool


class LPPoolNd(_Pool):
    """LP pooling over N axes (N from a tuple ``kernel_size`` or ``axes``).

    Arguments as :func:`poolnd.lp_pool`, in PyTorch's ``LPPool2d`` order, plus
    ``axes=`` or ``channels_last=True``. Keeps the input (as the kernels see it:
    a view when no copy was needed) and one factor per window; for
    ``norm_type=inf`` the window positions of the maxima and their signs.
    """

    _op = "LPPoolNd"

    def __init__(self, norm_type: float, kernel_size: Size, stride: Size | None = None,
                 ceil_mode: bool = False, *, axes: Axes = None,
                 channels_last: bool = False) -> None:
        super().__init__(kernel_size, stride, 0, 1, ceil_mode, axes, channels_last)
        self._p = check_norm_type(norm_type)
        self.norm_type = norm_type

    def forward(self, x: ArrayLike) -> np.ndarray:
        x = _input(x)
        plan = self._plan_for(x)
        out, state = lp_layer_forward(x, plan, self._p)
        self._save(plan, state)
        return out

    def _backward(self, grad_output, plan, state):
        return lp_layer_backward(grad_output, state, plan, self._p)

    def _arguments(self):
        return {"norm_type": self.norm_type, "kernel_size": self.kernel_size,
                "stride": self.stride, "ceil_mode": self.ceil_mode}


class FractionalMaxPoolNd(_Pool):
    """Fractional max pooling over N axes (N from a tuple size or ``axes``).

    Arguments as :func:`poolnd.fractional_max_pool`, in PyTorch's
    ``FractionalMaxPool2d`` order, plus ``axes=`` or ``channels_last=True``.
    Every ``forward`` draws new samples from ``rng`` unless ``samples`` fixes
    them (PyTorch's ``_random_samples``, in poolnd's layout: see
    :func:`poolnd.fractional_max_pool`). Keeps each maximum's position in its
    window and the windows' starts (flat indices beyond three axes).
    """

    _op = "FractionalMaxPoolNd"

    def __init__(self, kernel_size: Size, output_size: Size | None = None,
                 output_ratio: Ratio | None = None, return_indices: bool = False, *,
                 axes: Axes = None, channels_last: bool = False,
                 samples: ArrayLike | None = None, rng: Seed = None) -> None:
        self.output_size = freeze(output_size)
        self.output_ratio = freeze(output_ratio)
        super().__init__(kernel_size, None, 0, 1, False, axes, channels_last)
        if samples is not None and rng is not None:
            raise ValueError("give samples or rng, not both")
        self.return_indices = check_flag("return_indices", return_indices)
        self.samples = samples
        self._rng = None if samples is not None else np.random.default_rng(rng)

    def _check_arguments(self) -> None:
        fractional_arguments(self._op, self.kernel_size, self.output_size, self.output_ratio,
                             self.axes, self._n)

    def _plan_for(self, x):
        return plan_fractional(self._op, x.shape, self.kernel_size, self.output_size,
                               self.output_ratio, self.axes, self._n)

    def forward(self, x: ArrayLike) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        x = _input(x)
        plan = self._plan_for(x)
        samples = fractional_samples(plan, x.dtype, self.samples, self._rng)
        flat = self.return_indices or plan.ndim > 3
        kind = FLAT_INDEX if flat else WINDOW_POSITION
        out, positions, starts = fractional_planned(x, plan, samples, kind)
        self._save(plan, positions, None if flat else starts)
        return (out, positions) if self.return_indices else out

    def _backward(self, grad_output, plan, positions, starts):
        if starts is None:  # flat indices
            return scatter_flat(check_grad(grad_output, plan), positions, plan)
        return fractional_backward_window(grad_output, positions, starts, plan)

    def _arguments(self):
        arguments = {"kernel_size": self.kernel_size}
        if self.output_size is not None:
            arguments["output_size"] = self.output_size
        else:
            arguments["output_ratio"] = self.output_ratio
        if self.return_indices:
            arguments["return_indices"] = True
        return arguments


class MaxUnpoolNd(_Pool):
    """Max-unpooling over N axes (N from a tuple ``kernel_size`` or ``axes``).

    Arguments as :func:`poolnd.max_unpool`, in PyTorch's ``MaxUnpool2d`` order,
    plus ``axes=`` or ``channels_last=True``; ``layer(x, indices, output_size=None)``.
    ``backward(grad)`` returns the gradient with respect to ``x`` (it keeps the indices).
    """

    _op = "MaxUnpoolNd"

    def __init__(self, kernel_size: Size, stride: Size | None = None, padding: Padding = 0, *,
                 axes: Axes = None, channels_last: bool = False) -> None:
        super().__init__(kernel_size, stride, padding, 1, False, axes, channels_last)

    def _check_arguments(self) -> None:
        unpool_arguments(self._op, self.kernel_size, self.stride, self.padding, self.axes,
                         self._n)

    def __call__(self, x: ArrayLike, indices: ArrayLike,
                 output_size: Size | None = None) -> np.ndarray:
        return self.forward(x, indices, output_size)

    def forward(self, x: ArrayLike, indices: ArrayLike,
                output_size: Size | None = None) -> np.ndarray:
        x = _input(x)
        plan = plan_unpool(self._op, x.shape, self.kernel_size, self.stride, self.padding,
                           output_size, self.axes, self._n)
        out, indices = max_unpool_planned(x, indices, plan)
        self._save(plan, indices)
        return out

    def _backward(self, grad_output, plan, indices):
        return unpool_backward_planned(grad_output, indices, plan)

    def _arguments(self):
        return {"kernel_size": self.kernel_size,
                "stride": self.stride if self.stride is not None else self.kernel_size,
                "padding": self.padding}


LPPool1d, LPPool2d, LPPool3d = (_fixed(LPPoolNd, n) for n in (1, 2, 3))
FractionalMaxPool2d, FractionalMaxPool3d = (_fixed(FractionalMaxPoolNd, n) for n in (2, 3))
MaxUnpool1d, MaxUnpool2d, MaxUnpool3d = (_fixed(MaxUnpoolNd, n) for n in (1, 2, 3))


# --------------------------------------------------------------------------- adaptive pooling


class _AdaptivePool(_Pool):
    """What the adaptive layers share: an output size instead of window arguments."""

    def __init__(self, output_size: OutputSize, axes: Axes,
                 channels_last: bool) -> None:  # no kernel, stride, padding
        self.output_size = freeze(output_size)
        self.axes = freeze(self._axes_from(axes, channels_last, output_size, "output_size"))
        adaptive_arguments(self._op, self.output_size, self.axes, self._n)

    def _plan_for(self, x):
        return plan_adaptive(self._op, x.shape, self.output_size, self.axes, self._n)

    def _arguments(self):
        return {"output_size": self.output_size}


class AdaptiveMaxPoolNd(_MaxLayer, _AdaptivePool):
    """Adaptive max pooling over N axes (N from a tuple ``output_size`` or ``axes``).

    Arguments as :func:`poolnd.adaptive_max_pool`, in PyTorch's ``AdaptiveMaxPool2d``
    order, plus ``axes=`` or ``channels_last=True``. Keeps the position of each
    maximum inside its window, as per-axis offsets in bit fields (one byte for
    windows up to 16 x 16); int64 flat indices with ``return_indices=True``.
    """

    _op = "AdaptiveMaxPoolNd"

    def __init__(self, output_size: OutputSize, return_indices: bool = False, *,
                 axes: Axes = None, channels_last: bool = False,
                 nan_policy: NanPolicy = "propagate") -> None:
        super().__init__(output_size, axes, channels_last)
        self._keep_maxima(return_indices, nan_policy)

    def forward(self, x: ArrayLike) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        x = _input(x)
        plan = self._plan_for(x)
        kind = FLAT_INDEX if self.return_indices else WINDOW_POSITION
        out, positions = adaptive_max_planned(x, plan, kind, self.nan_policy == "omit")
        self._save(plan, positions)
        return (out, positions) if self.return_indices else out

    _backward_from_window = staticmethod(adaptive_max_backward_window)


class AdaptiveAvgPoolNd(_AdaptivePool):
    """Adaptive average pooling over N axes (N from a tuple ``output_size`` or ``axes``).

    Arguments as :func:`poolnd.adaptive_avg_pool` plus ``axes=`` or
    ``channels_last=True``. Keeps only the plan of its last call.
    """

    _op = "AdaptiveAvgPoolNd"

    def __init__(self, output_size: OutputSize, *, axes: Axes = None,
                 channels_last: bool = False) -> None:
        super().__init__(output_size, axes, channels_last)

    def forward(self, x: ArrayLike) -> np.ndarray:
        x = _input(x)
        plan = self._plan_for(x)
        out = adaptive_avg_planned(x, plan)
        self._save(plan)
        return out

    def _backward(self, grad_output, plan):
        return adaptive_avg_backward_planned(grad_output, plan)


AdaptiveMaxPool1d, AdaptiveMaxPool2d, AdaptiveMaxPool3d = (
    _fixed(AdaptiveMaxPoolNd, n) for n in (1, 2, 3))
AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d = (
    _fixed(AdaptiveAvgPoolNd, n) for n in (1, 2, 3))
