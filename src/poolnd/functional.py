"""The public pooling ops.

Each op hands its arrays to :func:`poolnd._backends.backend_for`, which picks
the NumPy backend (the families of :mod:`poolnd._families` over numba
kernels) or the Dask one; every argument is checked there, before any work.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ._backends import backend_for
from ._types import Axes, FunctionT, NanPolicy, OutputSize, Padding, Ratio, Seed, Shape, Size

__all__ = [
    "adaptive_avg_pool",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_avg_pool_backward",
    "adaptive_max_pool",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "adaptive_max_pool_backward",
    "avg_pool",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "avg_pool_backward",
    "fractional_max_pool",
    "fractional_max_pool2d",
    "fractional_max_pool3d",
    "fractional_max_pool_backward",
    "lp_pool",
    "lp_pool1d",
    "lp_pool2d",
    "lp_pool3d",
    "lp_pool_backward",
    "max_pool",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "max_pool_backward",
    "max_unpool",
    "max_unpool1d",
    "max_unpool2d",
    "max_unpool3d",
    "max_unpool_backward",
]


def max_pool(x: ArrayLike, kernel_size: Size, stride: Size | None = None, padding: Padding = 0,
             dilation: Size = 1, ceil_mode: bool = False, *, axes: Axes = None,
             return_indices: bool = False,
             nan_policy: NanPolicy = "propagate") -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Max pooling over N axes of an array of any real dtype.

    >>> import numpy as np, poolnd
    >>> x = np.array([[0., 10., 8.], [2., 7., 3.], [5., 7., 20.]])
    >>> poolnd.max_pool(x, (2, 2), stride=1)
    array([[10., 10.],
           [ 7., 20.]])

    Parameters
    ----------
    x : array_like
        Input; any real dtype (the output has the same dtype).
    kernel_size : int or tuple of int
        Window length per pooled axis. A tuple fixes N; a bare int needs ``axes``.
    stride : int or tuple of int, optional
        Window step per axis; ``None`` means ``kernel_size``.
    padding : int, tuple, "valid" or "same"
        Virtual padding, which never wins (it acts as -inf). An int or N-tuple pads both
        sides; an N-tuple of ``(before, after)`` pairs pads each side; ``"same"`` gives
        ``ceil(L / stride)`` outputs (TensorFlow's rule).
    dilation : int or tuple of int
        Spacing between window taps.
    ceil_mode : bool
        Round the output length up (PyTorch's rule: the last window starts in the input
        or the left padding).
    axes : tuple of int, optional
        The pooled axes, in order; default the last N.
    return_indices : bool
        Also return int64 flat row-major indices of the maxima within the pooled axes of
        the unpadded input (PyTorch's format).
    nan_policy : {"propagate", "omit"}
        "propagate": a window holding NaN gives NaN (index of its last NaN).
        "omit": NaN is skipped; an all-NaN window gives NaN and its first element.
    """
    return backend_for(x).max_pool(
        x, kernel_size, stride, padding, dilation, ceil_mode, axes, return_indices, nan_policy,
        op="max_pool")


def max_pool_backward(grad_output: ArrayLike, indices: ArrayLike, input_shape: Shape,
                      kernel_size: Size, stride: Size | None = None, padding: Padding = 0,
                      dilation: Size = 1, ceil_mode: bool = False, *,
                      axes: Axes = None) -> np.ndarray:
    """Gradient of :func:`max_pool` with respect to its input.

    Each output's gradient is added to the input element its index names;
    where windows overlap, contributions add up, in output order.

    >>> import numpy as np, poolnd
    >>> x = np.array([[0., 10., 8.], [2., 7., 3.], [5., 7., 20.]])
    >>> out, idx = poolnd.max_pool(x, (2, 2), 1, return_indices=True)
    >>> poolnd.max_pool_backward(np.ones_like(out), idx, x.shape, (2, 2), 1)
    array([[0., 2., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    """
    return backend_for(grad_output, indices).max_pool_backward(
        grad_output, indices, input_shape, kernel_size, stride, padding, dilation, ceil_mode, axes,
        op="max_pool_backward")


def avg_pool(x: ArrayLike, kernel_size: Size, stride: Size | None = None, padding: Padding = 0,
             dilation: Size = 1, ceil_mode: bool = False, count_include_pad: bool = True,
             divisor_override: int | None = None, *, axes: Axes = None,
             dtype: DTypeLike | None = None) -> np.ndarray:
    """Average pooling over N axes.

    >>> import numpy as np, poolnd
    >>> x = np.arange(9.0).reshape(3, 3)
    >>> poolnd.avg_pool(x, (2, 2), stride=1)
    array([[2., 3.],
           [5., 6.]])

    Geometry arguments as in :func:`max_pool`. The divisor is ``divisor_override`` if
    given; else, with ``count_include_pad``, the taps inside the padded extent
    (explicit padding counts, the ``ceil_mode`` overhang does not); else the taps
    inside the input. Float input keeps its dtype (float16 is summed in higher
    precision); integer and bool input give float64, summed exactly (never copied to
    floats). ``dtype`` names another result dtype: an integer dtype rounds each mean
    half to even and clips it to the dtype's range (``dtype=np.uint8`` for images).
    """
    return backend_for(x).avg_pool(
        x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override,
        axes, dtype, op="avg_pool")


def avg_pool_backward(grad_output: ArrayLike, input_shape: Shape, kernel_size: Size,
                      stride: Size | None = None, padding: Padding = 0, dilation: Size = 1,
                      ceil_mode: bool = False, count_include_pad: bool = True,
                      divisor_override: int | None = None, *, axes: Axes = None) -> np.ndarray:
    """Gradient of :func:`avg_pool`: each input element gets ``grad / divisor`` of every
    window that holds it.

    >>> import numpy as np, poolnd
    >>> poolnd.avg_pool_backward(np.ones((1, 2)), (2, 4), (2, 2))
    array([[0.25, 0.25, 0.25, 0.25],
           [0.25, 0.25, 0.25, 0.25]])
    """
    return backend_for(grad_output).avg_pool_backward(
        grad_output, input_shape, kernel_size, stride, padding, dilation, ceil_mode,
        count_include_pad, divisor_override, axes, op="avg_pool_backward")


def _pytorch_named(fn: FunctionT, name: str, n: int, what: str, full: str,
                   note: str = "") -> FunctionT:
    """``fn``, the wrapper for N = ``n``, named as in PyTorch, its doc pointing at ``full``."""
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"{what} over the last {n} axes (or ``axes``), in PyTorch's argument order."
                  f"\n\nSee :func:`{full}` for the arguments{note}.")
    return fn


def _max_pool_fixed(n: int) -> Callable[..., np.ndarray | tuple[np.ndarray, np.ndarray]]:
    name = f"max_pool{n}d"

    def pool(x: ArrayLike, kernel_size: Size, stride: Size | None = None, padding: Padding = 0,
             dilation: Size = 1, ceil_mode: bool = False, return_indices: bool = False, *,
             axes: Axes = None,
             nan_policy: NanPolicy = "propagate") -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        return backend_for(x).max_pool(
            x, kernel_size, stride, padding, dilation, ceil_mode, axes, return_indices, nan_policy,
            op=name, n=n)

    return _pytorch_named(pool, name, n, "Max pooling", "max_pool")


def _avg_pool_fixed(n: int) -> Callable[..., np.ndarray]:
    name = f"avg_pool{n}d"

    def pool(x: ArrayLike, kernel_size: Size, stride: Size | None = None, padding: Padding = 0,
             ceil_mode: bool = False, count_include_pad: bool = True,
             divisor_override: int | None = None, *, dilation: Size = 1, axes: Axes = None,
             dtype: DTypeLike | None = None) -> np.ndarray:
        return backend_for(x).avg_pool(
            x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad,
            divisor_override, axes, dtype, op=name, n=n)

    return _pytorch_named(pool, name, n, "Average pooling", "avg_pool")


max_pool1d, max_pool2d, max_pool3d = (_max_pool_fixed(n) for n in (1, 2, 3))


avg_pool1d, avg_pool2d, avg_pool3d = (_avg_pool_fixed(n) for n in (1, 2, 3))


def adaptive_max_pool(
    x: ArrayLike, output_size: OutputSize, *, axes: Axes = None, return_indices: bool = False,
    nan_policy: NanPolicy = "propagate",
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Adaptive max pooling: pool N axes of ``x`` down to ``output_size``, PyTorch's windows.

    >>> import numpy as np, poolnd
    >>> x = np.array([[1., 5., 2., 0., 3.],
    ...               [4., 0., 1., 6., 2.]])
    >>> out, idx = poolnd.adaptive_max_pool(x, (1, 2), return_indices=True)
    >>> out, idx
    (array([[5., 6.]]), array([[1, 8]]))

    Window ``i`` of an axis of length ``L`` pooled to ``O`` covers
    ``(i*L)//O`` to ``ceil((i+1)*L/O) - 1``: above, columns 0-2 and 2-4.

    Parameters
    ----------
    x : array_like
        Input; any real dtype (the output has the same dtype).
    output_size : int or tuple of int or None
        Output length per pooled axis; ``None`` keeps that axis. A tuple fixes N;
        a bare int needs ``axes`` (or a name such as ``adaptive_max_pool2d``).
    axes : tuple of int, optional
        The pooled axes, in order; default the last N.
    return_indices : bool
        Also return int64 flat row-major indices of the maxima within the pooled
        axes (PyTorch's format).
    nan_policy : {"propagate", "omit"}
        As in :func:`poolnd.max_pool`. Ties go to the first maximum in row-major
        window order.
    """
    return backend_for(x).adaptive_max_pool(
        x, output_size, axes, return_indices, nan_policy, op="adaptive_max_pool")


def adaptive_max_pool_backward(grad_output: ArrayLike, indices: ArrayLike, input_shape: Shape,
                               output_size: OutputSize, *, axes: Axes = None) -> np.ndarray:
    """Gradient of :func:`adaptive_max_pool`: each output's gradient goes to its maximum.

    Where windows overlap, contributions add up, in output order.

    >>> import numpy as np, poolnd
    >>> x = np.array([[1., 5., 2., 0., 3.]])
    >>> out, idx = poolnd.adaptive_max_pool(x, (1, 4), return_indices=True)
    >>> idx
    array([[1, 1, 2, 4]])
    >>> poolnd.adaptive_max_pool_backward(np.ones_like(out), idx, x.shape, (1, 4))
    array([[0., 2., 1., 0., 1.]])
    """
    return backend_for(grad_output, indices).adaptive_max_pool_backward(
        grad_output, indices, input_shape, output_size, axes, op="adaptive_max_pool_backward")


def adaptive_avg_pool(x: ArrayLike, output_size: OutputSize, *, axes: Axes = None) -> np.ndarray:
    """Adaptive average pooling: pool N axes of ``x`` down to ``output_size``.

    >>> import numpy as np, poolnd
    >>> x = np.array([[1., 5., 2., 0., 3.]])
    >>> poolnd.adaptive_avg_pool(x, (1, 2))
    array([[2.66666667, 1.66666667]])

    Global average pooling is ``output_size=1`` (``adaptive_avg_pool2d(x, 1)`` on
    NCHW, ``adaptive_avg_pool(x, 1, axes=(1, 2))`` on NHWC); the output keeps the
    pooled axes with length 1.

    Windows and arguments as in :func:`adaptive_max_pool`. Sums are accumulated
    in float64; float input keeps its dtype, integer and bool input give float64.
    """
    return backend_for(x).adaptive_avg_pool(x, output_size, axes, op="adaptive_avg_pool")


def adaptive_avg_pool_backward(grad_output: ArrayLike, input_shape: Shape,
                               output_size: OutputSize, *, axes: Axes = None) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool`: each input element gets ``grad / count``
    of every window that holds it.

    >>> import numpy as np, poolnd
    >>> poolnd.adaptive_avg_pool_backward(np.ones((1, 2)), (1, 3), (1, 2))
    array([[0.5, 1. , 0.5]])
    """
    return backend_for(grad_output).adaptive_avg_pool_backward(
        grad_output, input_shape, output_size, axes, op="adaptive_avg_pool_backward")


def _adaptive_max_pool_fixed(n: int) -> Callable[..., np.ndarray | tuple[np.ndarray, np.ndarray]]:
    name = f"adaptive_max_pool{n}d"

    def pool(x: ArrayLike, output_size: OutputSize, return_indices: bool = False, *,
             axes: Axes = None,
             nan_policy: NanPolicy = "propagate") -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        return backend_for(x).adaptive_max_pool(
            x, output_size, axes, return_indices, nan_policy, op=name, n=n)

    return _pytorch_named(pool, name, n, "Adaptive max pooling", "adaptive_max_pool")


def _adaptive_avg_pool_fixed(n: int) -> Callable[..., np.ndarray]:
    name = f"adaptive_avg_pool{n}d"

    def pool(x: ArrayLike, output_size: OutputSize, *, axes: Axes = None) -> np.ndarray:
        return backend_for(x).adaptive_avg_pool(x, output_size, axes, op=name, n=n)

    return _pytorch_named(pool, name, n, "Adaptive average pooling", "adaptive_avg_pool")


adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d = (
    _adaptive_max_pool_fixed(n) for n in (1, 2, 3))


adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d = (
    _adaptive_avg_pool_fixed(n) for n in (1, 2, 3))


def lp_pool(x: ArrayLike, norm_type: float, kernel_size: Size, stride: Size | None = None,
            ceil_mode: bool = False, *, axes: Axes = None) -> np.ndarray:
    """LP pooling over N axes: ``(sum of x**p over each window) ** (1/p)``, ``p = norm_type``.

    >>> import numpy as np, poolnd
    >>> x = np.array([[3., 4., 1.], [0., 0., 2.]])
    >>> poolnd.lp_pool(x, 2, (1, 2))
    array([[5.],
           [0.]])
    >>> poolnd.lp_pool(x, float("inf"), (2, 3))
    array([[4.]])

    Equal to PyTorch's ``lp_pool`` wherever that is finite. Like PyTorch, no absolute
    value is taken: negative elements enter as ``x**p`` (negative for odd ``p``, NaN for
    a fractional ``p``) and a negative sum has a NaN root unless ``p == 1``; pass
    ``np.abs(x)`` for the p-norm of signed data. ``norm_type=inf`` is the maximum of
    ``|x|``. A ``ceil_mode`` window that overhangs the end is scaled by
    ``kernel taps / taps inside`` (PyTorch's rule). Dtypes as in :func:`avg_pool`: float
    input keeps its dtype, integer and bool input gives float64.

    Parameters
    ----------
    x : array_like
    norm_type : float
        ``p > 0``, or ``inf``.
    kernel_size, stride, ceil_mode, axes
        As in :func:`max_pool` (no padding or dilation, as in PyTorch).
    """
    return backend_for(x).lp_pool(x, norm_type, kernel_size, stride, ceil_mode, axes, op="lp_pool")


def lp_pool_backward(grad_output: ArrayLike, x: ArrayLike, norm_type: float, kernel_size: Size,
                     stride: Size | None = None, ceil_mode: bool = False, *,
                     axes: Axes = None) -> np.ndarray:
    """Gradient of :func:`lp_pool` with respect to ``x`` (PyTorch's autograd values).

    Each element gets ``grad * out / s * x**(p-1)`` from every window that holds
    it, ``s`` the window's (scaled) sum of ``x**p``; a window whose sum is zero
    passes no gradient. For ``norm_type=inf`` the gradient goes to the largest
    ``|x|``, times its sign.

    >>> import numpy as np, poolnd
    >>> x = np.array([[3., 4.]])
    >>> poolnd.lp_pool_backward(np.ones((1, 1)), x, 2, (1, 2))
    array([[0.6, 0.8]])
    """
    return backend_for(grad_output, x).lp_pool_backward(
        grad_output, x, norm_type, kernel_size, stride, ceil_mode, axes, op="lp_pool_backward")


def _lp_pool_fixed(n: int) -> Callable[..., np.ndarray]:
    name = f"lp_pool{n}d"

    def pool(x: ArrayLike, norm_type: float, kernel_size: Size, stride: Size | None = None,
             ceil_mode: bool = False, *, axes: Axes = None) -> np.ndarray:
        return backend_for(x).lp_pool(
            x, norm_type, kernel_size, stride, ceil_mode, axes, op=name, n=n)

    return _pytorch_named(pool, name, n, "LP pooling", "lp_pool")


lp_pool1d, lp_pool2d, lp_pool3d = (_lp_pool_fixed(n) for n in (1, 2, 3))


def fractional_max_pool(x: ArrayLike, kernel_size: Size, output_size: Size | None = None,
                        output_ratio: Ratio | None = None, *, axes: Axes = None,
                        return_indices: bool = False, samples: ArrayLike | None = None,
                        rng: Seed = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Fractional max pooling over N axes: windows of ``kernel_size`` at pseudo-random starts.

    >>> import numpy as np, poolnd
    >>> x = np.arange(25.0).reshape(5, 5)
    >>> poolnd.fractional_max_pool(x, (2, 2), output_size=(2, 3), samples=[0.5, 0.25])
    array([[ 6.,  7.,  9.],
           [21., 22., 24.]])

    Parameters
    ----------
    x : array_like
        Input; any real dtype (the output has the same dtype).
    kernel_size : int or tuple of int
        Window length per pooled axis.
    output_size : int or tuple of int, optional
        Output length per pooled axis; each needs ``output + kernel_size - 1 <= L``.
    output_ratio : float or tuple of float, optional
        Instead of ``output_size``: each in ``(0, 1)``, the length is ``int(L * ratio)``.
    axes : tuple of int, optional
        The pooled axes, in order; default the last N.
    return_indices : bool
        Also return int64 flat indices within the pooled axes (PyTorch's format).
    samples : array_like, optional
        One number in ``[0, 1)`` per plane and pooled axis, shaped (or broadcastable
        to) the batch axes in the input's order, then N: ``(B, C, N)`` for an
        ``(B, C, H, W)`` input. ``samples[..., i]`` belongs to pooled axis ``i``.
        PyTorch's ``_random_samples`` for 3-d are in this order; for 2-d PyTorch
        orders them ``(W, H)``, so pass ``_random_samples[..., ::-1]``. The sequence is
        computed in the input's float dtype (float64 for integers), as PyTorch does.
    rng : numpy.random.Generator or int, optional
        Where samples are drawn from when none are given (default: fresh entropy).
    """
    return backend_for(x).fractional_max_pool(
        x, kernel_size, output_size, output_ratio, axes, return_indices, samples, rng,
        op="fractional_max_pool")


def fractional_max_pool_backward(grad_output: ArrayLike, indices: ArrayLike, input_shape: Shape,
                                 kernel_size: Size, output_size: Size | None = None,
                                 output_ratio: Ratio | None = None, *,
                                 axes: Axes = None) -> np.ndarray:
    """Gradient of :func:`fractional_max_pool`: each output's gradient is added to the
    input element its index names.

    >>> import numpy as np, poolnd
    >>> poolnd.fractional_max_pool_backward(np.ones((1, 2)), [[1, 2]], (1, 4), (2,),
    ...                                     output_size=2)
    array([[0., 1., 1., 0.]])
    """
    return backend_for(grad_output, indices).fractional_max_pool_backward(
        grad_output, indices, input_shape, kernel_size, output_size, output_ratio, axes,
        op="fractional_max_pool_backward")


def _fractional_fixed(n: int) -> Callable[..., np.ndarray | tuple[np.ndarray, np.ndarray]]:
    name = f"fractional_max_pool{n}d"

    def pool(x: ArrayLike, kernel_size: Size, output_size: Size | None = None,
             output_ratio: Ratio | None = None, return_indices: bool = False, *,
             axes: Axes = None, samples: ArrayLike | None = None,
             rng: Seed = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        return backend_for(x).fractional_max_pool(
            x, kernel_size, output_size, output_ratio, axes, return_indices, samples, rng, op=name,
            n=n)

    return _pytorch_named(pool, name, n, "Fractional max pooling", "fractional_max_pool",
                          "; ``samples`` are in the pooled axes' order")


fractional_max_pool2d, fractional_max_pool3d = (_fractional_fixed(n) for n in (2, 3))


def max_unpool(x: ArrayLike, indices: ArrayLike, kernel_size: Size, stride: Size | None = None,
               padding: Padding = 0, output_size: Size | None = None, *,
               axes: Axes = None) -> np.ndarray:
    """Put each value of ``x`` at its flat index in zeros shaped like the pooled input.

    >>> import numpy as np, poolnd
    >>> x = np.array([[1., 5., 2.], [0., 3., 4.]])
    >>> y, idx = poolnd.max_pool(x, (2,), return_indices=True)
    >>> poolnd.max_unpool(y, idx, (2,))
    array([[0., 5.],
           [0., 3.]])
    >>> poolnd.max_unpool(y, idx, (2,), output_size=x.shape)
    array([[0., 5., 0.],
           [0., 3., 0.]])

    The inverse of :func:`max_pool` with ``return_indices=True`` (PyTorch's
    ``max_unpool``). The output length per pooled axis is
    ``(L - 1)*stride + kernel_size - padding_before - padding_after`` unless
    ``output_size`` (the pooled axes' lengths, or the whole output shape) gives one
    within ``stride`` of it. Where indices repeat, the values are summed (PyTorch
    keeps one of them). The output has ``x``'s dtype.

    Parameters
    ----------
    x : array_like
        The pooled values.
    indices : array_like of int
        Flat row-major indices within the output's pooled axes, shaped as ``x``.
    kernel_size, stride, padding, axes
        The pooling's arguments, as in :func:`max_pool` (padding as numbers).
    output_size : tuple of int, optional
    """
    return backend_for(x, indices).max_unpool(
        x, indices, kernel_size, stride, padding, output_size, axes, op="max_unpool")


def max_unpool_backward(grad_output: ArrayLike, indices: ArrayLike, kernel_size: Size,
                        stride: Size | None = None, padding: Padding = 0,
                        output_size: Size | None = None, *, axes: Axes = None) -> np.ndarray:
    """Gradient of :func:`max_unpool` with respect to ``x``: ``grad_output`` gathered at
    ``indices`` (``x``'s shape is that of ``indices``).

    >>> import numpy as np, poolnd
    >>> poolnd.max_unpool_backward(np.arange(4.0).reshape(1, 4), [[1, 2]], (2,))
    array([[1., 2.]])
    """
    return backend_for(grad_output, indices).max_unpool_backward(
        grad_output, indices, kernel_size, stride, padding, output_size, axes,
        op="max_unpool_backward")


def _max_unpool_fixed(n: int) -> Callable[..., np.ndarray]:
    name = f"max_unpool{n}d"

    def unpool(x: ArrayLike, indices: ArrayLike, kernel_size: Size, stride: Size | None = None,
               padding: Padding = 0, output_size: Size | None = None, *,
               axes: Axes = None) -> np.ndarray:
        return backend_for(x, indices).max_unpool(
            x, indices, kernel_size, stride, padding, output_size, axes, op=name, n=n)

    return _pytorch_named(unpool, name, n, "Max-unpooling", "max_unpool")


max_unpool1d, max_unpool2d, max_unpool3d = (_max_unpool_fixed(n) for n in (1, 2, 3))
