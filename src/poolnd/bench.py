"""``poolnd bench``: poolnd beside PyTorch, oneDNN, ONNX Runtime, JAX, OpenCV, scikit-image,
MyGrad and plain NumPy, in one process.

One registry, :func:`cases`, drives everything: each :class:`Case` names an
input (shape, dtype) and how each library runs the same operation on it. For
every case the runs are interleaved (poolnd, torch, torch channels-last,
oneDNN, ..., NumPy, floor, poolnd, ...) so that all of them see the same
machine state, and the medians are compared. The "floor" is one parallel read
of the same input (a numba ``prange`` sum): no pooling op can be faster than
that, so ``poolnd / floor`` says how close poolnd runs to memory bandwidth.

The peers that people pick for speed (oneDNN, ONNX Runtime, JAX, OpenCV,
scikit-image) are derived from one description of the pooling (:class:`Pool`),
only where the peer computes the same thing on the same memory layout, and
each peer's output is checked against poolnd's before it is timed: a peer that
disagrees is a skipped cell with the reason, never a timing.

Optional libraries that are not installed and operations a library lacks are
reported as skipped cells with the reason, never as errors.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, partial
from typing import Any

import numba
import numpy as np

import poolnd
from poolnd import _parallel
from poolnd._families._prepared import forget
from poolnd._kernels._cache import cached_kernel
from poolnd._ops import OPS
from poolnd._optional import require
from poolnd.nn import AvgPool2d, MaxPool2d

Runner = Callable[[], object]
# A maker gets the library's module and the input (a NumPy array, or for torch
# a tensor already in the layout to time) and returns the zero-argument call to
# time; everything it does before returning (building layers, gradients) is
# setup and is not timed.
Maker = Callable[[Any, Any], Runner]

COLUMNS = ("poolnd", "torch", "torch_cl", "onednn", "onnxruntime", "jax", "opencv", "skimage",
           "mygrad", "tinyml", "numpy", "floor")
PEERS = COLUMNS[1:-1]  # timed against poolnd: each one's time over poolnd's is a ratio
# The peers whose output is checked against poolnd's before they are timed.
CHECKED = ("onednn", "onnxruntime", "jax", "opencv", "skimage")
LABELS = {"poolnd": "poolnd", "torch": "torch", "torch_cl": "torch-CL", "onednn": "oneDNN",
          "onnxruntime": "ORT", "jax": "JAX", "opencv": "OpenCV", "skimage": "skimage",
          "mygrad": "mygrad", "tinyml": "tinyml", "numpy": "numpy", "floor": "floor"}
# Which module each column needs; the floor probe and NumPy are always there.
LIBRARY = {"poolnd": "poolnd", "torch": "torch", "torch_cl": "torch", "onednn": "torch",
           "onnxruntime": "onnxruntime", "jax": "jax", "opencv": "cv2", "skimage": "skimage",
           "mygrad": "mygrad", "tinyml": "tinyml", "numpy": "numpy", "floor": "numpy"}
# Submodules a library's column needs as well (ONNX Runtime's models are built with onnx).
ALSO_IMPORT = {"mygrad": "mygrad.nnet.layers", "tinyml": "tinyml.layers.pooling",
               "onnxruntime": "onnx.helper", "skimage": "skimage.measure"}
INSTALL_HINT = {"torch": "pip install 'poolnd[bench]'", "mygrad": "pip install 'poolnd[mygrad]'",
                "tinyml": "pip install tinyml==0.0.6", "onnxruntime": "pip install 'poolnd[bench]'",
                "jax": "pip install 'poolnd[bench]'", "cv2": "pip install 'poolnd[bench]'",
                "skimage": "pip install 'poolnd[bench]'"}
NOT_APPLICABLE = "n/a"
MIN_SAMPLES = 3


@dataclass(frozen=True)
class Case:
    """One operation on one input, as each library spells it.

    ``torch_layout`` turns the input (as a tensor) into the logical layout that
    torch's op expects, e.g. NHWC -> NCHW by a permute; the torch column then
    times it in NCHW-contiguous memory and the torch-CL column in channels-last
    memory. The oneDNN column runs the ``onednn`` maker (torch's functional ops)
    on a ``to_mkldnn()`` copy of the NCHW tensor. A ``None`` maker means the
    library has no such operation (or not on this layout). ``exact``: the checked
    peers (:data:`CHECKED`) must equal poolnd bit for bit (max pooling); otherwise
    to float rounding (averages).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    poolnd: Maker
    torch: Maker | None = None
    onednn: Maker | None = None
    onnxruntime: Maker | None = None
    jax: Maker | None = None
    opencv: Maker | None = None
    skimage: Maker | None = None
    mygrad: Maker | None = None
    tinyml: Maker | None = None
    numpy: Maker | None = None
    torch_layout: Callable[[Any], Any] = field(default=lambda t: t)
    exact: bool = True


# -- the makers ---------------------------------------------------------------

def _call(function: Callable[..., object], *args: Any, **kwargs: Any) -> Maker:
    """A maker that times ``function(data, *args, **kwargs)``."""
    return lambda lib, data: partial(function, data, *args, **kwargs)


def _torch_op(name: str, *args: Any, **kwargs: Any) -> Maker:
    def make(torch: Any, t: Any) -> Runner:
        return partial(getattr(torch.nn.functional, name), t, *args, **kwargs)
    return make


def _poolnd_layer_step(layer_class: type, *args: Any) -> Maker:
    """A training step: forward, then backward of a gradient made beforehand."""
    def make(lib: Any, x: np.ndarray) -> Runner:
        layer = layer_class(*args)
        grad = np.ones_like(layer(x))

        def step() -> None:
            layer(x)
            layer.backward(grad)
        return step
    return make


def _torch_layer_step(module_name: str, *args: Any) -> Maker:
    def make(torch: Any, t: Any) -> Runner:
        module = getattr(torch.nn, module_name)(*args)
        grad = torch.ones_like(module(t))

        def step() -> None:
            leaf = t.detach().requires_grad_()  # a fresh leaf: autograd allocates x.grad each step
            module(leaf).backward(grad)
        return step
    return make


def _mygrad_max(pool: tuple[int, ...], stride: int) -> Maker:
    def make(mygrad: Any, x: np.ndarray) -> Runner:
        return partial(mygrad.nnet.layers.max_pool, x, pool, stride, constant=True)
    return make


def _mygrad_max_step(pool: tuple[int, ...], stride: int, drop_in: bool = False) -> Maker:
    """Forward and backward in MyGrad's graph, pooled by MyGrad's own ``max_pool``
    or (``drop_in``, for the poolnd column) by ``poolnd.mygrad.max_pool``."""
    def make(lib: Any, x: np.ndarray) -> Runner:
        import mygrad

        if drop_in:
            from poolnd.mygrad import max_pool
        else:
            max_pool = mygrad.nnet.layers.max_pool
        grad = np.ones_like(max_pool(x, pool, stride, constant=True).data)

        def step() -> None:
            max_pool(mygrad.tensor(x, copy=False), pool, stride).backward(grad)
        return step
    return make


def _tinyml_max_step(kernel: int, front_end: bool = False) -> Maker:
    """tinyml's ``MaxPool2D``, or (``front_end``, for the poolnd column) poolnd's front end
    for it: forward, then backward."""
    def make(lib: Any, x: np.ndarray) -> Runner:
        if front_end:
            from poolnd.compat.tinyml import MaxPool2D
        else:
            MaxPool2D = lib.layers.pooling.MaxPool2D  # noqa: N806 (tinyml's class)
        layer = MaxPool2D("pool", x.shape[1:], (kernel, kernel), kernel)
        grad = np.ones_like(layer.forward(x))

        def step() -> None:
            layer.forward(x)
            layer.backward(grad)
        return step
    return make


def _numpy_windows(x: np.ndarray, kernel: int, stride: int, padding: int, axes: tuple[int, ...],
                   fill: float) -> np.ndarray:
    """Every window as a strided view: the textbook NumPy pooling (padding is a copy)."""
    if padding:
        pads = [(padding, padding) if a in axes else (0, 0) for a in range(x.ndim)]
        x = np.pad(x, pads, constant_values=fill)
    view = np.lib.stride_tricks.sliding_window_view(x, (kernel,) * len(axes), axis=axes)
    step = tuple(slice(None, None, stride) if a in axes else slice(None) for a in range(x.ndim))
    return view[step]


def _numpy_max(kernel: int, stride: int, padding: int = 0, axes: tuple[int, ...] = (-2, -1)
               ) -> Maker:
    def make(lib: Any, x: np.ndarray) -> Runner:
        pooled = tuple(a % x.ndim for a in axes)
        # padding never wins: the smallest value of the dtype plays -inf
        fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        window_axes = tuple(range(-len(pooled), 0))

        def run() -> np.ndarray:
            return _numpy_windows(x, kernel, stride, padding, pooled, fill).max(axis=window_axes)
        return run
    return make


def _numpy_avg(kernel: int, stride: int, padding: int = 0) -> Maker:
    def make(lib: Any, x: np.ndarray) -> Runner:
        def run() -> np.ndarray:
            # zero padding counted in the divisor: count_include_pad=True, the default
            return _numpy_windows(x, kernel, stride, padding, (x.ndim - 2, x.ndim - 1),
                                  0).mean(axis=(-2, -1))
        return run
    return make


def _poolnd_unpool(kernel: int) -> Maker:
    """Unpooling of the input's own max pooling (made beforehand, not timed)."""
    def make(lib: Any, x: np.ndarray) -> Runner:
        pooled, indices = lib.max_pool2d(x, kernel, return_indices=True)
        return partial(lib.max_unpool2d, pooled, indices, kernel)
    return make


def _torch_unpool(kernel: int) -> Maker:
    def make(torch: Any, t: Any) -> Runner:
        functional = torch.nn.functional
        pooled, indices = functional.max_pool2d(t, kernel, return_indices=True)
        return partial(functional.max_unpool2d, pooled, indices, kernel)
    return make


def _nhwc_as_nchw(t: Any) -> Any:
    return t.permute(0, 3, 1, 2)


# -- the peers: one description of the pooling, each peer derived from it ------

@dataclass(frozen=True)
class Pool:
    """A pooling forward, as the peers are made from it: ``kind`` "max", or "avg" with
    zero padding counted in the divisor (PyTorch's and poolnd's default); ``kernel`` and
    ``stride`` the same along each of ``axes``; ``kernel=None`` pools the whole axes."""

    kind: str
    kernel: int | None
    stride: int | None = None  # the kernel's
    padding: int = 0
    axes: tuple[int, ...] = (-2, -1)

    def geometry(self, shape: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
        """Window, stride and padding per axis of an input of ``shape`` (1, 1, 0 elsewhere)."""
        axes = {a % len(shape) for a in self.axes}
        window = [(n if self.kernel is None else self.kernel) if a in axes else 1
                  for a, n in enumerate(shape)]
        stride = [(w if self.stride is None else self.stride) if a in axes else 1
                  for a, w in enumerate(window)]
        padding = [self.padding if a in axes else 0 for a in range(len(shape))]
        return window, stride, padding


def peers(pool: Pool, shape: Sequence[int], dtype: str) -> dict[str, Maker]:
    """The checked peers that compute ``pool`` on an input of ``shape`` and ``dtype`` in
    the same memory layout, by column."""
    ndim = len(shape)
    axes = tuple(a % ndim for a in pool.axes)
    window, stride, padding = pool.geometry(shape)
    makers: dict[str, Maker] = {}
    if pool.kind == "max" or np.dtype(dtype).kind == "f":  # JAX would sum integers in their dtype
        makers["jax"] = _jax_maker(pool)
    if axes == tuple(range(2, ndim)):  # (N, C, spatial...): ONNX's layout, and oneDNN's logical one
        makers["onnxruntime"] = _onnx_maker(pool)
        if len(axes) in (2, 3):  # oneDNN pools 2-d and 3-d
            makers["onednn"] = _onednn_maker(pool, len(axes))
    opencv = _opencv_maker(pool, shape)
    if opencv is not None:
        makers["opencv"] = opencv
    blocks = all(window[a] == stride[a] and padding[a] == 0 and shape[a] % window[a] == 0
                 for a in axes)
    if blocks and pool.kernel is not None:
        makers["skimage"] = _skimage_maker(pool)
    return makers


def with_peers(case: Case, pool: Pool) -> Case:
    """``case`` with the peers that compute ``pool`` on its input, checked as ``pool`` says."""
    return replace(case, exact=pool.kind == "max", **peers(pool, case.shape, case.dtype))


def _onednn_maker(pool: Pool, n: int) -> Maker:
    if pool.kernel is None:
        return _torch_op(f"adaptive_{pool.kind}_pool{n}d", 1)
    return _torch_op(f"{pool.kind}_pool{n}d", pool.kernel, pool.stride, pool.padding)


# An opset and IR version that onnxruntime 1.17 and later read (onnx writes newer ones).
ONNX_OPSET, ONNX_IR_VERSION = 21, 10


def _onnx_maker(pool: Pool) -> Maker:
    """A one-node ONNX model built in memory (MaxPool, AveragePool or GlobalAveragePool),
    run by an ONNX Runtime session on the CPU."""
    def make(ort: Any, x: np.ndarray) -> Runner:
        helper = importlib.import_module("onnx.helper")
        if pool.kernel is None:
            node = helper.make_node("GlobalAveragePool", ["x"], ["y"])
        else:
            window, stride, padding = (g[2:] for g in pool.geometry(x.shape))
            attributes: dict[str, Any] = {"kernel_shape": window, "strides": stride,
                                          "pads": padding * 2}  # begins, then ends
            if pool.kind == "avg":
                attributes["count_include_pad"] = 1  # ONNX's default is 0
            node = helper.make_node("MaxPool" if pool.kind == "max" else "AveragePool",
                                    ["x"], ["y"], **attributes)
        element = helper.np_dtype_to_tensor_dtype(x.dtype)
        graph = helper.make_graph([node], "pool",
                                  [helper.make_tensor_value_info("x", element, x.shape)],
                                  [helper.make_tensor_value_info("y", element, None)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
        model.ir_version = ONNX_IR_VERSION
        options = ort.SessionOptions()
        options.intra_op_num_threads = poolnd.get_num_threads()  # the same threads as poolnd
        options.inter_op_num_threads = 1
        # its idle threads would otherwise spin after each call, slowing whichever
        # library runs next in a round (OMP_WAIT_POLICY=PASSIVE does this for the others)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        feed = {"x": x}
        return lambda: session.run(None, feed)[0]
    return make


def _jax_maker(pool: Pool) -> Maker:
    """``jax.lax.reduce_window``, jitted, on the input's own layout."""
    def make(jax: Any, x: np.ndarray) -> Runner:
        lax = jax.lax
        window, stride, padding = pool.geometry(x.shape)
        pads = [(p, p) for p in padding]
        if pool.kind == "max":
            # padding never wins: reduce_window pads with the initial value
            lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
            start = np.array(lowest, x.dtype)

            def pooled(a: Any) -> Any:
                return lax.reduce_window(a, start, lax.max, window, stride, pads)
        else:
            zero, count = np.array(0, x.dtype), int(np.prod(window))

            def pooled(a: Any) -> Any:
                return lax.reduce_window(a, zero, lax.add, window, stride, pads) / count
        function, data = jax.jit(pooled), jax.device_put(x)
        return lambda: function(data).block_until_ready()
    return make


def _opencv_maker(pool: Pool, shape: Sequence[int]) -> Maker | None:
    """OpenCV's image filters, where one computes ``pool``: ``dilate`` (max) and ``blur``
    (box) filters for stride-1 "same" windows, ``resize(INTER_AREA)`` (average) and a 2x2
    ``dilate`` read at every second pixel (max) for 2x2 stride-2 pooling. On an (H, W) or
    (H, W, C) image pooled over its first two axes, one call; on planes pooled over their
    last two axes, one call per plane into one output."""
    ndim, k = len(shape), pool.kernel
    axes = tuple(a % ndim for a in pool.axes)
    image = axes == (0, 1) and ndim in (2, 3)
    planes = ndim >= 2 and axes == (ndim - 2, ndim - 1)
    same_size = pool.stride == 1 and k is not None and k % 2 == 1 and pool.padding == k // 2
    halving = k == 2 and pool.stride in (None, 2) and pool.padding == 0 and all(
        shape[a] % 2 == 0 for a in axes)
    if not (image or planes) or not (same_size or halving):
        return None
    every_second = (slice(None, None, 2),) * 2 if halving and pool.kind == "max" else ()

    def make(cv2: Any, x: np.ndarray) -> Runner:
        if pool.kind == "max":
            kernel = np.ones((k, k), np.uint8)
            # halving: each pixel's 2x2 window starts at the pixel (anchor (0, 0))
            anchor = (0, 0) if halving else (-1, -1)

            def one(src: np.ndarray, dst: np.ndarray | None = None) -> np.ndarray:
                return cv2.dilate(src, kernel, dst=dst, anchor=anchor)
        elif halving:
            def one(src: np.ndarray, dst: np.ndarray | None = None) -> np.ndarray:
                return cv2.resize(src, (src.shape[1] // 2, src.shape[0] // 2), dst=dst,
                                  interpolation=cv2.INTER_AREA)
        else:
            def one(src: np.ndarray, dst: np.ndarray | None = None) -> np.ndarray:
                # zero padding counted in the divisor: a zero border, and k * k divides
                return cv2.blur(src, (k, k), dst=dst, borderType=cv2.BORDER_CONSTANT)
        if image:
            return lambda: one(x)[every_second]
        flat = x.reshape(-1, *x.shape[-2:])
        height, width = x.shape[-2:]
        if halving and pool.kind == "avg":
            height, width = height // 2, width // 2

        def per_plane() -> np.ndarray:
            out = np.empty((len(flat), height, width), x.dtype)  # a new output, as poolnd's
            for plane, dst in zip(flat, out):
                one(plane, dst)
            kept = out[(slice(None), *every_second)]
            return kept.reshape(*x.shape[:-2], *kept.shape[-2:])
        return per_plane
    return make


def _skimage_maker(pool: Pool) -> Maker:
    """``skimage.measure.block_reduce`` with ``np.max`` or ``np.mean``."""
    def make(skimage: Any, x: np.ndarray) -> Runner:
        window, _, _ = pool.geometry(x.shape)
        reduce = np.max if pool.kind == "max" else np.mean
        return partial(skimage.measure.block_reduce, x, tuple(window), reduce)
    return make


def as_array(result: Any) -> np.ndarray:
    """A library's result as a NumPy array: the first of several outputs; a oneDNN
    tensor made dense."""
    if isinstance(result, (tuple, list)):
        result = result[0]
    if getattr(result, "is_mkldnn", False):
        result = result.to_dense()
    return np.asarray(result)


def disagreement(expected: np.ndarray, result: Any, exact: bool) -> str | None:
    """Why a peer's ``result`` is not poolnd's ``expected``, or ``None`` where it is:
    ``exact``, the same dtype and bits; otherwise the same values to float rounding, or
    to 1 where either is an integer array."""
    got = as_array(result)
    if got.shape != expected.shape:
        return f"shape {got.shape}, poolnd's {expected.shape}"
    if exact:
        if got.dtype != expected.dtype:
            return f"dtype {got.dtype}, poolnd's {expected.dtype}"
        bits = np.dtype(f"u{expected.dtype.itemsize}")  # bits, not values: -0.0 is not 0.0
        differ = np.count_nonzero(np.ascontiguousarray(got).view(bits)
                                  != np.ascontiguousarray(expected).view(bits))
        return f"{differ} of {got.size} values differ" if differ else None
    error = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    if got.dtype.kind == "f" and expected.dtype.kind == "f":
        # sums in another order: a hundred roundings of the coarser dtype
        tolerance = 100 * max(np.finfo(got.dtype).eps, np.finfo(expected.dtype).eps)
        allowed = tolerance * (1 + np.abs(expected.astype(np.float64)))
    else:
        # integer averages are rounded: OpenCV's INTER_AREA rounds halves up, poolnd's
        # dtype= rounds half to even, and a float mean is within 0.5 of either
        allowed = 1.0
    differ = np.count_nonzero(error > allowed)
    if differ:
        return f"{differ} of {got.size} values differ, by up to {error.max():.3g}"
    return None


# -- the registry -------------------------------------------------------------

NCHW = (32, 64, 112, 112)
QUICK_NCHW = (2, 32, 112, 112)
BATCH_ONE = "max_pool2d k3 s2 p1, batch one"
MEMORY_CASE = "MaxPool2d k3 s2 p1 fwd+bwd"
TINYML_CASE = "tinyml MaxPool2D k2 fwd+bwd"  # poolnd.compat.tinyml against tinyml itself
MYGRAD_CASE = "mygrad max_pool k2 fwd+bwd"  # poolnd.mygrad.max_pool against MyGrad's own


def max2d_case(name: str, shape: tuple[int, ...], kernel: int, stride: int, padding: int = 0,
               dtype: str = "float32") -> Case:
    """Max pooling of the last two axes, as poolnd, torch, MyGrad, NumPy and the peers
    spell it."""
    blocks = padding == 0 and kernel == stride and all(n % kernel == 0 for n in shape[-2:])
    case = Case(name, shape, dtype,
                poolnd=_call(poolnd.max_pool2d, kernel, stride, padding),
                torch=_torch_op("max_pool2d", kernel, stride, padding),
                mygrad=_mygrad_max((kernel, kernel), stride) if blocks else None,
                numpy=_numpy_max(kernel, stride, padding))
    return with_peers(case, Pool("max", kernel, stride, padding))


def _table_cases(nchw: tuple[int, ...], maps: tuple[int, ...]) -> list[Case]:
    """A row per op and geometry of poolnd's table of ops (:mod:`poolnd._ops`), 2-d:
    max and average pooling on ``nchw``, the rest of the family on ``maps``."""
    rows = []
    for op in OPS:
        shape = nchw if op.name in ("max_pool", "avg_pool") else maps
        name = op.named(2)
        for geometry in op.geometries:
            args, kwargs = geometry.args, geometry.kwargs
            label = f"{name} {geometry.label}"
            if op.name == "max_pool" and not kwargs:
                rows.append(max2d_case(label, shape, *args))
                continue
            torch_kwargs = kwargs if geometry.torch_kwargs is None else geometry.torch_kwargs
            if op.takes_indices:
                poolnd_maker, torch_maker = _poolnd_unpool(*args), _torch_unpool(*args)
            else:
                poolnd_maker = _call(getattr(poolnd, name), *args, **kwargs)
                torch_maker = _torch_op(name, *args, **torch_kwargs)
            numpy_maker, pool = None, None
            if op.name == "avg_pool":
                numpy_maker, pool = _numpy_avg(*args), Pool("avg", *args)
            elif op.name == "adaptive_avg_pool" and args == (1,):
                numpy_maker, pool = _numpy_mean, Pool("avg", None)
            case = Case(label, shape, "float32", poolnd=poolnd_maker,
                        torch=torch_maker if op.torch else None, numpy=numpy_maker)
            rows.append(case if pool is None else with_peers(case, pool))
    return rows


def _numpy_mean(lib: Any, x: np.ndarray) -> Runner:
    return partial(np.mean, x, axis=(-2, -1), keepdims=True)


# Where NumPy networks train: scikit-learn's digits (8x8), MNIST (28x28) and CIFAR (32x32)
# batches, and LeNet-5's two pooling layers (after its 6- and 16-map convolutions)
NETWORK_SIZES = {"digits": (32, 16, 8, 8), "MNIST": (64, 32, 28, 28),
                 "CIFAR": (128, 64, 32, 32), "LeNet-5 pool 1": (64, 6, 28, 28),
                 "LeNet-5 pool 2": (64, 16, 10, 10)}
ONE_CALL = "net: 100 calls of max_pool2d k2, (1, 1, 4, 4)"  # one call is below the clock's reach


def _layer_forward(layer_class: type, *args: Any) -> Maker:
    def make(lib: Any, x: np.ndarray) -> Runner:
        return partial(layer_class(*args), x)
    return make


def _repeated(maker: Maker, times: int = 100) -> Maker:
    def make(lib: Any, data: Any) -> Runner:
        runner = maker(lib, data)

        def calls() -> None:
            for _ in range(times):
                runner()
        return calls
    return make


def network_cases(quick: bool = False) -> list[Case]:
    """Training steps (layer forward + backward) and forwards at the sizes NumPy networks
    train at, and the cost of one tiny call."""
    rows = []
    for data, shape in NETWORK_SIZES.items():
        if quick and shape[0] > 32:
            shape = (8, *shape[1:])
        geometries = [(2,), (3, 2, 1)] if data == "CIFAR" else [(2,)]
        for args in geometries:
            label = ", ".join(map(str, args))
            exact = len(args) == 1 and all(n % 2 == 0 for n in shape[-2:])
            rows.append(Case(f"net: MaxPool2d({label}) fwd+bwd, {data}", shape, "float32",
                             poolnd=_poolnd_layer_step(MaxPool2d, *args),
                             torch=_torch_layer_step("MaxPool2d", *args),
                             mygrad=_mygrad_max_step((2, 2), 2) if exact else None))
            rows.append(Case(f"net: AvgPool2d({label}) fwd+bwd, {data}", shape, "float32",
                             poolnd=_poolnd_layer_step(AvgPool2d, *args),
                             torch=_torch_layer_step("AvgPool2d", *args)))
    mnist = (8, 32, 28, 28) if quick else NETWORK_SIZES["MNIST"]
    rows.append(Case("net: MaxPool2d(2) forward, MNIST", mnist, "float32",
                     poolnd=_layer_forward(MaxPool2d, 2), torch=_torch_op("max_pool2d", 2)))
    rows.append(with_peers(Case("net: max_pool2d(2) forward, MNIST", mnist, "float32",
                                poolnd=_call(poolnd.max_pool2d, 2),
                                torch=_torch_op("max_pool2d", 2)), Pool("max", 2)))
    rows.append(Case(ONE_CALL, (1, 1, 4, 4), "float32",
                     poolnd=_repeated(_call(poolnd.max_pool2d, 2)),
                     torch=_repeated(_torch_op("max_pool2d", 2)),
                     numpy=_repeated(_numpy_max(2, 2))))
    return rows


def cases(quick: bool = False) -> list[Case]:
    """The benchmark's cases; ``quick`` shrinks the inputs."""
    nchw = QUICK_NCHW if quick else NCHW
    # the rest of the family, on feature maps of a ResNet's first block
    maps = (2, 64, 56, 56) if quick else (32, 64, 56, 56)
    filters = (1, 4, 128, 128) if quick else (8, 16, 256, 256)  # stride-1 windows
    return [
        *_table_cases(nchw, maps),
        *network_cases(quick),
        max2d_case(BATCH_ONE, (1, 64, 56, 56), 3, 2, 1),
        with_peers(Case("max_pool k3 s2 p1, NHWC axes=(1, 2)",
                        (1, 112, 112, 64) if quick else (32, 112, 112, 64), "float32",
                        poolnd=_call(poolnd.max_pool, (3, 3), 2, 1, axes=(1, 2)),
                        torch=_torch_op("max_pool2d", 3, 2, 1), torch_layout=_nhwc_as_nchw,
                        numpy=_numpy_max(3, 2, 1, axes=(1, 2))), Pool("max", 3, 2, 1, (1, 2))),
        with_peers(Case("max_pool3d k2", (1, 16, 32, 64, 64) if quick else (8, 32, 32, 64, 64),
                        "float32", poolnd=_call(poolnd.max_pool3d, 2),
                        torch=_torch_op("max_pool3d", 2), mygrad=_mygrad_max((2, 2, 2), 2),
                        numpy=_numpy_max(2, 2, axes=(-3, -2, -1))),
                   Pool("max", 2, axes=(-3, -2, -1))),
        with_peers(Case("max_pool1d k4", (4, 128, 4096) if quick else (64, 128, 4096), "float32",
                        poolnd=_call(poolnd.max_pool1d, 4), torch=_torch_op("max_pool1d", 4),
                        mygrad=_mygrad_max((4,), 4), numpy=_numpy_max(4, 4, axes=(-1,))),
                   Pool("max", 4, axes=(-1,))),
        Case("MaxPool2d k2 fwd+bwd", nchw, "float32",
             poolnd=_poolnd_layer_step(MaxPool2d, 2), torch=_torch_layer_step("MaxPool2d", 2),
             mygrad=_mygrad_max_step((2, 2), 2)),
        Case(TINYML_CASE, (4, 16, 32, 32) if quick else (32, 16, 64, 64), "float32",
             poolnd=_tinyml_max_step(2, front_end=True), torch=_torch_layer_step("MaxPool2d", 2),
             tinyml=_tinyml_max_step(2)),
        *([Case(MYGRAD_CASE, maps, "float32", poolnd=_mygrad_max_step((2, 2), 2, drop_in=True),
                mygrad=_mygrad_max_step((2, 2), 2))]
          if importlib.util.find_spec("mygrad") else []),  # the drop-in needs MyGrad
        Case(MEMORY_CASE, nchw, "float32",
             poolnd=_poolnd_layer_step(MaxPool2d, 3, 2, 1),
             torch=_torch_layer_step("MaxPool2d", 3, 2, 1)),
        Case("AvgPool2d k3 s2 p1 fwd+bwd", nchw, "float32",
             poolnd=_poolnd_layer_step(AvgPool2d, 3, 2, 1),
             torch=_torch_layer_step("AvgPool2d", 3, 2, 1)),
        with_peers(Case("max_pool2d k15 s1 p7", filters, "float32",
                        poolnd=_call(poolnd.max_pool2d, 15, 1, 7),
                        torch=_torch_op("max_pool2d", 15, 1, 7), numpy=_numpy_max(15, 1, 7)),
                   Pool("max", 15, 1, 7)),
        # a box filter: OpenCV's blur
        with_peers(Case("avg_pool2d k15 s1 p7", filters, "float32",
                        poolnd=_call(poolnd.avg_pool2d, 15, 1, 7),
                        torch=_torch_op("avg_pool2d", 15, 1, 7)), Pool("avg", 15, 1, 7)),
        max2d_case("max_pool2d k3 s2 p1 float64", nchw, 3, 2, 1, dtype="float64"),
        max2d_case("max_pool2d k3 s2 p1 uint8", nchw, 3, 2, 1, dtype="uint8"),
        Case("AdaptiveMaxPool2d 7x7 fwd+bwd", maps, "float32",
             poolnd=_poolnd_layer_step(poolnd.nn.AdaptiveMaxPool2d, 7),
             torch=_torch_layer_step("AdaptiveMaxPool2d", 7)),
        *image_cases(quick),
    ]


# Images: photos (height, width, channels) pooled over axes (0, 1), and a stack of
# planes over the last two axes; (full size, quick size), dtype and pooled axes.
IMAGES = {"image uint8 HWC": (((4096, 4096, 3), (256, 256, 3)), "uint8", (0, 1)),
          "image uint16 HWC": (((2048, 2048, 3), (128, 128, 3)), "uint16", (0, 1)),
          "image uint16 stack": (((64, 512, 512), (4, 64, 64)), "uint16", (1, 2))}


@cache
def integer_average(dtype: str) -> dict[str, Any]:
    """poolnd's keyword for an average of ``dtype`` (integer) data in that dtype (rounded
    half to even), tried once; ``{}`` where the ops have no such option: their float64."""
    try:
        poolnd.avg_pool(np.zeros((2, 2), dtype), (2, 2), dtype=dtype)
    except (TypeError, ValueError):
        return {}
    return {"dtype": dtype}


def image_cases(quick: bool = False) -> list[Case]:
    """2x2 average and max pooling of 8- and 16-bit images, against OpenCV and
    scikit-image (and JAX for max)."""
    rows = []
    for name, ((full, small), dtype, axes) in IMAGES.items():
        shape = small if quick else full
        keep = integer_average(dtype)
        to = dtype if keep else "float64 (no dtype=)"
        average = Case(f"{name} avg 2x2 -> {to}", shape, dtype,
                       poolnd=_call(poolnd.avg_pool, (2, 2), axes=axes, **keep))
        maximum = Case(f"{name} max 2x2", shape, dtype,
                       poolnd=_call(poolnd.max_pool, (2, 2), axes=axes))
        rows += [with_peers(average, Pool("avg", 2, axes=axes)),
                 with_peers(maximum, Pool("max", 2, axes=axes))]
    return rows


# -- measuring ----------------------------------------------------------------

@cached_kernel(parallel=True, fastmath=True, nogil=True)  # compiles in memory if nowhere to cache
def _read_everything(flat: np.ndarray) -> float:
    total = 0.0
    for i in numba.prange(flat.size):
        total += flat[i]
    return total


def _floor_probe(lib: Any, x: np.ndarray) -> Runner:
    return partial(_read_everything, x.reshape(-1))


def make_input(shape: Sequence[int], dtype: str, seed: int = 0) -> np.ndarray:
    """Random data of the case's shape and dtype (unsigned integers span their whole range)."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "u":
        return rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)


def load_libraries() -> dict[str, Any]:
    """The modules the columns need; ``None`` for an optional one that is missing."""
    libraries: dict[str, Any] = {"poolnd": poolnd, "numpy": np}
    for name in ("torch", "onnxruntime", "jax", "cv2", "skimage", "mygrad", "tinyml"):
        try:
            module = importlib.import_module(name)
            if name in ALSO_IMPORT:
                importlib.import_module(ALSO_IMPORT[name])
            libraries[name] = module
        except ImportError:
            libraries[name] = None
    if libraries["jax"] is not None:
        libraries["jax"].config.update("jax_enable_x64", True)  # float64 stays float64
    return libraries


def _column_data(column: str, library: Any, case: Case, x: np.ndarray) -> Any:
    """The input as ``column``'s library takes it; ``None`` where it has no such layout."""
    if column in ("torch", "torch_cl"):
        return _torch_data(library, case, x, channels_last=column == "torch_cl")
    if column == "onednn":
        return _torch_data(library, case, x, channels_last=False).to_mkldnn()
    return x


def _runners(case: Case, x: np.ndarray, libraries: dict[str, Any]
             ) -> tuple[dict[str, Runner], dict[str, str]]:
    """The zero-argument calls to time, and why any column is skipped: the checked peers
    (:data:`CHECKED`) are timed only where their first result equals poolnd's."""
    makers: dict[str, Maker | None] = {
        "poolnd": case.poolnd, "torch": case.torch, "torch_cl": case.torch,
        "onednn": case.onednn, "onnxruntime": case.onnxruntime, "jax": case.jax,
        "opencv": case.opencv, "skimage": case.skimage, "mygrad": case.mygrad,
        "tinyml": case.tinyml, "numpy": case.numpy, "floor": _floor_probe}
    runners: dict[str, Runner] = {}
    skipped: dict[str, str] = {}
    expected: Any = None
    for column, maker in makers.items():
        library = libraries.get(LIBRARY[column])
        if maker is None:
            skipped[column] = NOT_APPLICABLE
            continue
        if library is None:
            skipped[column] = f"not installed ({INSTALL_HINT[LIBRARY[column]]})"
            continue
        if column == "poolnd":
            runners[column] = maker(library, x)
            first = runners[column]()  # compiles; poolnd's own failures are not hidden
            if any(makers[c] is not None for c in CHECKED):
                expected = as_array(first)  # what the checked peers must give
            del first
            continue
        try:
            data = _column_data(column, library, case, x)
            if data is None:
                skipped[column] = NOT_APPLICABLE
                continue
            runner = maker(library, data)
            result = runner()  # first call, untimed; some libraries reject a geometry only then
        except Exception as error:  # a baseline that cannot run this case is a skipped cell
            first_line = str(error).split("\n")[0].split(". ")[0]
            skipped[column] = f"error: {type(error).__name__}: {first_line[:160]}"
            continue
        reason = disagreement(expected, result, case.exact) if column in CHECKED else None
        del result
        if reason is not None:
            skipped[column] = f"disagrees with poolnd: {reason}"
            continue
        runners[column] = runner
    return runners, skipped


def _torch_data(torch: Any, case: Case, x: np.ndarray, channels_last: bool) -> Any:
    t = case.torch_layout(torch.from_numpy(x))
    if not channels_last:
        return t.contiguous()
    formats = {4: torch.channels_last, 5: torch.channels_last_3d}
    if t.dim() not in formats:
        return None  # torch has no channels-last format for this rank
    return t.contiguous(memory_format=formats[t.dim()])


def interleave(runners: dict[str, Runner], repeat: int, budget_s: float,
               clock: Callable[[], float] = time.perf_counter, warm: bool = True
               ) -> dict[str, list[float]]:
    """Seconds per call of each runner, in rounds of one call each.

    With ``warm``, each runner is called once first, untimed (compilation,
    page faults, the allocator's first requests). A runner
    stops being sampled once it has ``MIN_SAMPLES`` samples and has spent
    ``budget_s`` seconds, so that one slow baseline cannot stretch the run.
    """
    for run in runners.values() if warm else ():
        run()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeat):
        for name, run in runners.items():
            taken = samples[name]
            if len(taken) >= MIN_SAMPLES and sum(taken) > budget_s:
                continue
            start = clock()
            run()
            taken.append(clock() - start)
    return samples


def ratios(ms: dict[str, float | None]) -> dict[str, float | None]:
    """Speed-ups from the medians: ``other_ms / poolnd_ms``, and ``poolnd_ms / floor_ms``."""
    mine = ms.get("poolnd")

    def divide(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None
    out = {column: divide(ms.get(column), mine) for column in PEERS}
    out["floor"] = divide(mine, ms.get("floor"))
    return out


def fastest_peer(ms: dict[str, float | None]) -> str | None:
    """The column of the peer with the smallest median, if any was timed."""
    timed = [column for column in PEERS if ms.get(column) is not None]
    return min(timed, key=lambda column: ms[column]) if timed else None


def run_case(case: Case, repeat: int, libraries: dict[str, Any], budget_s: float = 5.0,
             clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Time one case in every column; milliseconds are medians of the samples."""
    x = make_input(case.shape, case.dtype)
    runners, skipped = _runners(case, x, libraries)
    samples = interleave(runners, repeat, budget_s, clock, warm=False)  # _runners warmed them
    ms = {column: (1e3 * statistics.median(samples[column]) if column in samples else None)
          for column in COLUMNS}
    del runners, x
    gc.collect()
    return {
        "name": case.name, "shape": list(case.shape), "dtype": case.dtype,
        "ms": ms, "ratios": ratios(ms), "fastest": fastest_peer(ms), "skipped": skipped,
        "samples_ms": {column: [1e3 * s for s in taken] for column, taken in samples.items()},
    }


def thread_scaling(case: Case, repeat: int, budget_s: float = 5.0) -> dict[str, Any]:
    """poolnd's time on ``case`` with one thread and with two, interleaved; the call is
    split over both threads however small it is (poolnd's own rule would keep a call
    below its threshold on one thread, at either count)."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        return {"name": case.name, "skipped": "fewer than 2 cores"}
    before = poolnd.get_num_threads()

    def with_threads(n: int) -> Runner:
        def timed() -> None:
            poolnd.set_num_threads(n)
            run()
        return timed
    with _parallel.split_every_call():
        forget()  # prepared calls chose their threads at their first call
        try:
            run = case.poolnd(poolnd, make_input(case.shape, case.dtype))
            # the thread count is set inside the timed call; it costs well under a
            # microsecond
            samples = interleave({"1": with_threads(1), "2": with_threads(2)}, repeat,
                                 budget_s)
        finally:
            poolnd.set_num_threads(before)
            forget()
    one, two = (1e3 * statistics.median(samples[k]) for k in ("1", "2"))
    return {"name": case.name, "ms_1_thread": one, "ms_2_threads": two, "ratio": one / two}


# -- memory and compile time, each in a fresh process -------------------------

_MEMORY_NOTE = ("peak resident memory (VmHWM) above the resident size before one training "
                "step, in a fresh process, input and warm-up excluded; for poolnd also the "
                "peak of NumPy's allocations as traced by tracemalloc")
# glibc would otherwise raise its mmap threshold after the warm-up's frees and keep
# the freed memory resident, hiding the measured call's allocations from the peak
_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _memory_child(column: str, quick: bool) -> None:
    """Print, as JSON, what one call of the memory case adds to peak memory."""
    import tracemalloc

    case = next(c for c in cases(quick) if c.name == MEMORY_CASE)
    x = make_input(case.shape, case.dtype)
    if column == "poolnd":
        run = case.poolnd(poolnd, x)
    else:
        torch = importlib.import_module("torch")
        torch.set_num_threads(numba.get_num_threads())
        assert case.torch is not None
        run = case.torch(torch, _torch_data(torch, case, x, False))
    run()  # compile or load kernels, warm the allocator
    gc.collect()
    result: dict[str, Any] = {}
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current resident size (Linux)
        before = _status_kib("VmRSS")
        run()
        result["rss_peak_mib"] = (_status_kib("VmHWM") - before) / 1024
    except OSError as error:
        result["rss_peak_mib"] = None
        result["rss_error"] = str(error)
    if column == "poolnd":  # torch's allocator is invisible to tracemalloc
        gc.collect()
        tracemalloc.start()
        run()
        result["tracemalloc_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    result["input_mib"] = x.nbytes / 2**20
    print(json.dumps(result))


def _compile_child(import_seconds: float) -> None:
    """Print, as JSON, the seconds of ``import poolnd`` (timed by :func:`_start_child`, numpy
    and numba included) and of each op's first call in this process."""
    times = {"import poolnd": import_seconds}
    x = make_input((2, 3, 8, 8), "float32")
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("max_pool", lambda: poolnd.max_pool(x, (2, 2))),
        ("max_pool return_indices", lambda: poolnd.max_pool(x, (2, 2), return_indices=True)),
        ("max_pool_backward", lambda: poolnd.max_pool_backward(
            np.ones((2, 3, 4, 4), np.float32), indices, x.shape, (2, 2))),
        ("avg_pool", lambda: poolnd.avg_pool(x, (2, 2))),
        ("avg_pool_backward", lambda: poolnd.avg_pool_backward(
            np.ones((2, 3, 4, 4), np.float32), x.shape, (2, 2))),
    ]
    indices = None
    for name, step in steps:
        start = time.perf_counter()
        out = step()
        times[name] = time.perf_counter() - start
        if name == "max_pool return_indices":
            indices = out[1]
    print(json.dumps(times))


def _start_child(call: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``poolnd.bench.<call>`` in a fresh interpreter, ``import poolnd`` timed first
    (as ``import_seconds``), before this module's own imports."""
    code = ("import time; start = time.perf_counter(); import poolnd; "
            f"import_seconds = time.perf_counter() - start; import poolnd.bench as b; b.{call}")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def _child_result(child: subprocess.Popen[str], timeout: float = 900) -> Any:
    """The JSON that a child printed last, or ``{"error": ...}``."""
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return {"error": f"no result within {timeout:.0f} s"}
    if child.returncode != 0:
        lines = err.strip().splitlines() or ["(no message)"]
        return {"error": lines[-1]}
    return json.loads(out.strip().splitlines()[-1])


def _child(call: str, env: dict[str, str] | None = None) -> Any:
    return _child_result(_start_child(call, env))


def measure_memory(quick: bool, libraries: dict[str, Any]) -> dict[str, Any]:
    """Peak memory of the memory case for poolnd and torch, each in its own process."""
    result: dict[str, Any] = {"case": MEMORY_CASE, "measured": _MEMORY_NOTE}
    # both at once: each reads only its own process's memory, and nothing is timed
    ours = _start_child(f"_memory_child('poolnd', {quick})", _MEMORY_ENV)
    theirs = None if libraries.get("torch") is None else _start_child(
        f"_memory_child('torch', {quick})", _MEMORY_ENV)
    result["poolnd"] = _child_result(ours)
    if theirs is None:
        result["torch"] = {"skipped": f"not installed ({INSTALL_HINT['torch']})"}
    else:
        result["torch"] = _child_result(theirs)
    return result


def measure_compile(quick: bool) -> dict[str, Any]:
    """First-call seconds in fresh processes: with an empty numba cache, then a warm one.

    ``quick`` skips the cold run (it compiles every kernel, which takes a
    minute on a small machine) and times the first calls with the default cache.
    """
    if quick:
        return {"cold": {"skipped": "--quick"}, "warm": _child("_compile_child(import_seconds)"),
                "warm_cache": "default"}
    with tempfile.TemporaryDirectory(prefix="poolnd-numba-cache-") as cache:
        env = {"NUMBA_CACHE_DIR": cache}
        cold = _child("_compile_child(import_seconds)", env)
        warm = _child("_compile_child(import_seconds)", env)
    return {"cold": cold, "warm": warm, "warm_cache": "the cold run's fresh NUMBA_CACHE_DIR"}


# -- reporting ----------------------------------------------------------------

def machine(libraries: dict[str, Any]) -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    torch, cv2 = libraries.get("torch"), libraries.get("cv2")
    versions = {name: getattr(libraries.get(name), "__version__", None)
                for name in ("torch", "onnxruntime", "jax", "cv2", "skimage", "mygrad")}
    return {
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
        "poolnd": poolnd.__version__, "numpy": np.__version__, "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
        "poolnd_threads": poolnd.get_num_threads(),
        **versions,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "cv2_threads": cv2.getNumThreads() if cv2 is not None else None,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }


def _cell(value: float | None, width: int, suffix: str = "") -> str:
    if value is None:
        return f"{'-':>{width}}"
    digits = 2 if value < 100 else 1 if value < 1000 else 0
    return f"{value:>{width - len(suffix)}.{digits}f}{suffix}"


def _ratio(value: float | None, width: int) -> str:
    if value is None:
        return f"{'-':>{width}}"
    digits = 3 if value < 0.1 else 2 if value < 10 else 1 if value < 100 else 0
    return f"{value:.{digits}f}x".rjust(width)


NAME_WIDTH, FASTEST_WIDTH, RATIO_WIDTH = 46, 16, 8


def table_header(repeat: int) -> str:
    peers = " ".join(f"{LABELS[c]:>{RATIO_WIDTH}}" for c in PEERS)
    return (f"milliseconds of poolnd and of the fastest peer (medians of up to {repeat} "
            f"interleaved runs); then each peer's time over poolnd's (above 1: poolnd is "
            f"faster), and poolnd's time over the floor's\n"
            f"{'case':{NAME_WIDTH}} {'poolnd':>9} {'fastest peer':>{FASTEST_WIDTH}} | {peers} | "
            f"{'/floor':>6}")


def table_row(result: dict[str, Any]) -> str:
    fastest = result.get("fastest")
    peer = "-" if fastest is None else f"{LABELS[fastest]} {_cell(result['ms'][fastest], 0)}"
    ratios = " ".join(_ratio(result["ratios"][c], RATIO_WIDTH) for c in PEERS)
    return (f"{result['name']:{NAME_WIDTH}} {_cell(result['ms']['poolnd'], 9)} "
            f"{peer:>{FASTEST_WIDTH}} | {ratios} | {_cell(result['ratios']['floor'], 6)}")


def _version(m: dict[str, Any], name: str, threads: str | None = None) -> str:
    if not m.get(name):
        return f"{name} not installed"
    return f"{name} {m[name]}" + (f" ({m[threads]} threads)" if threads else "")


def report_head(results: dict[str, Any]) -> list[str]:
    """The machine, the columns' meaning and the table's header."""
    m = results["machine"]
    threads = m.get("poolnd_threads", "?")
    return [
        f"{m['cpu']}, {m['cores']} cores; python {m['python']}, poolnd {m['poolnd']} "
        f"({threads} threads), numpy {m['numpy']}, numba {m['numba']} "
        f"({m['numba_threads']} threads), {_version(m, 'torch', 'torch_threads')}, "
        f"{_version(m, 'mygrad')}; OMP_WAIT_POLICY={m['omp_wait_policy']}",
        f"peers: {_version(m, 'onnxruntime')} ({threads} intra-op threads), "
        f"{_version(m, 'jax')} (XLA's own thread pool), {_version(m, 'cv2', 'cv2_threads')}, "
        f"scikit-image {m.get('skimage') or 'not installed'}",
        "torch = NCHW-contiguous tensor, torch-CL = channels_last memory format, oneDNN = torch "
        "on x.to_mkldnn(), ORT = ONNX Runtime running a one-node model;",
        f"{', '.join(LABELS[c] for c in CHECKED)}: timed only where they equal poolnd's output; "
        "floor = one parallel read of the input (numba prange sum)",
        "",
        table_header(results["repeat"]),
    ]


def report_tail(results: dict[str, Any]) -> list[str]:
    """Why cells were skipped, then thread scaling, memory and compile times."""
    lines = ["", "skipped cells:"]
    for r in results["cases"]:
        for column, reason in r["skipped"].items():
            if reason != NOT_APPLICABLE:
                lines.append(f"  {r['name']} / {LABELS[column]}: {reason}")
    lines.append(f"  '-' elsewhere: {NOT_APPLICABLE} (the library has no such op or layout)")
    return lines + ["", *report_extras(results)]


def report(results: dict[str, Any]) -> str:
    """The whole human-readable report."""
    rows = [table_row(r) for r in results["cases"]]
    return "\n".join(report_head(results) + rows + report_tail(results))


def report_extras(results: dict[str, Any]) -> list[str]:
    """Thread scaling, memory and compile time, as text."""
    lines = []
    threads = results.get("threads")
    if threads:
        if "skipped" in threads:
            lines.append(f"threads: {threads['name']}: skipped ({threads['skipped']})")
        else:
            lines.append(f"threads: {threads['name']}: {threads['ms_1_thread']:.3f} ms with 1, "
                         f"{threads['ms_2_threads']:.3f} ms with 2 -> 1 thread / 2 threads = "
                         f"{threads['ratio']:.2f}")
    memory = results.get("memory")
    if memory:
        lines.append(f"memory, {memory['case']}: {memory['measured']}")
        for column in ("poolnd", "torch"):
            lines.append(f"  {column:7} {_memory_text(memory[column])}")
    compile_times = results.get("compile")
    if compile_times:
        lines.append("first call in a fresh process, seconds (numba compiles, or loads its cache):")
        for kind in ("cold", "warm"):
            label = f"{kind} ({compile_times['warm_cache']})" if kind == "warm" else kind
            lines.append(f"  {label}: {_times_text(compile_times[kind])}")
    return lines


def _memory_text(entry: dict[str, Any]) -> str:
    if "skipped" in entry or "error" in entry:
        return entry.get("skipped") or f"error: {entry['error']}"
    rss = entry.get("rss_peak_mib")
    text = f"peak RSS +{rss:.1f} MiB" if rss is not None else f"RSS n/a ({entry['rss_error']})"
    if "tracemalloc_peak_mib" in entry:
        text += f", tracemalloc peak {entry['tracemalloc_peak_mib']:.1f} MiB"
    return f"{text} (input {entry['input_mib']:.1f} MiB)"


def _times_text(entry: dict[str, Any]) -> str:
    if "skipped" in entry or "error" in entry:
        return entry.get("skipped") or f"error: {entry['error']}"
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in entry.items())


def plot(results: dict[str, Any], path: str) -> None:
    """A bar chart of how many times faster poolnd is than each library, per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["cases"]
    columns = [c for c in PEERS if any(r["ratios"][c] for r in rows)]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) * max(len(columns), 1) ** 0.5 + 1.5))
    height = 0.8 / max(len(columns), 1)
    for i, column in enumerate(columns):
        values = [r["ratios"][column] or 0.0 for r in rows]
        positions = [k + i * height for k in range(len(rows))]
        ax.barh(positions, values, height, label=f"vs {LABELS[column]}")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks([k + 0.4 - height / 2 for k in range(len(rows))])
    ax.set_yticklabels([r["name"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("how many times faster poolnd is (their median ms / poolnd's median ms)")
    ax.set_title(f"poolnd speed-ups, {results['machine']['cores']} cores")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(case_list: Sequence[Case], repeat: int, libraries: dict[str, Any], *, quick: bool = False,
        budget_s: float = 5.0, extras: bool = True,
        on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every case, then (with ``extras``) thread scaling, memory and compile times."""
    results: dict[str, Any] = {"machine": machine(libraries), "repeat": repeat, "quick": quick,
                               "cases": []}
    for case in case_list:
        row = run_case(case, repeat, libraries, budget_s)
        results["cases"].append(row)
        if on_row is not None:
            on_row(row)
    if extras:
        batch_one = next((c for c in case_list if c.name == BATCH_ONE), None)
        if batch_one is not None:
            results["threads"] = thread_scaling(batch_one, repeat, budget_s)
        results["memory"] = measure_memory(quick, libraries)
        results["compile"] = measure_compile(quick)
    return results


def add_parser(commands: Any) -> None:
    """Add ``poolnd bench`` to the command line (see :mod:`poolnd.cli`)."""
    parser = commands.add_parser(
        "bench", help="time poolnd beside PyTorch, oneDNN, ONNX Runtime, JAX, OpenCV, "
        "scikit-image, MyGrad and NumPy (interleaved runs, medians)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller inputs and fewer runs (well under a minute once compiled)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the speed-ups (needs matplotlib)")
    parser.add_argument("--repeat", type=int, metavar="N",
                        help="runs per column (default 15, 3 with --quick)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="threads for poolnd and the peers, JAX aside (default: all cores)")
    parser.set_defaults(run=lambda args: main(quick=args.quick, as_json=args.json,
                                              plot_path=args.plot, repeat=args.repeat,
                                              threads=args.threads))


def main(quick: bool = False, as_json: bool = False, plot_path: str | None = None,
         repeat: int | None = None, threads: int | None = None) -> int:
    """``poolnd bench``: print the report (or JSON); returns the exit status. A bad argument
    or a missing extra raises before any work (``poolnd.cli`` prints it on one line)."""
    # numba's and torch's OpenMP pools otherwise spin on the cores after each call,
    # and whichever library runs next in an interleaved round waits for them
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if plot_path is not None:  # before any work: a missing extra is one line (poolnd.cli)
        require("matplotlib", "bench", "poolnd bench --plot")
    if threads is not None:
        if not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
            raise ValueError(f"--threads must be between 1 and {numba.config.NUMBA_NUM_THREADS} "
                             f"(numba's thread pool), got {threads}")
        numba.set_num_threads(threads)  # the floor probe's threads
        poolnd.set_num_threads(threads)
    libraries = load_libraries()
    # the same threads for every library (ONNX Runtime's sessions read poolnd's count;
    # JAX runs on XLA's own pool, which has no setting)
    if libraries["torch"] is not None:
        libraries["torch"].set_num_threads(poolnd.get_num_threads())
    if libraries["cv2"] is not None:
        libraries["cv2"].setNumThreads(poolnd.get_num_threads())
    repeat = repeat if repeat is not None else (3 if quick else 15)
    budget = 0.3 if quick else 5.0
    started = time.perf_counter()

    def stream(row: dict[str, Any]) -> None:
        print(table_row(row), flush=True)  # rows as they come: a full run takes minutes
    if not as_json:
        head = {"machine": machine(libraries), "repeat": repeat}
        print("\n".join(report_head(head)), flush=True)
    results = run(cases(quick), repeat, libraries, quick=quick, budget_s=budget,
                  on_row=None if as_json else stream)
    results["seconds"] = time.perf_counter() - started
    if as_json:
        print(json.dumps(results, indent=1))
    else:
        print("\n".join(report_tail(results)))
        print(f"\nbench took {results['seconds']:.1f} s")
    if plot_path is not None:
        plot(results, plot_path)
        if not as_json:
            print(f"plot written to {plot_path}")
    return 0
