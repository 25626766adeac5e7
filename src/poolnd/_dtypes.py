"""The dtype rules: what each op computes in, accumulates in and returns.

Max pooling keeps the input's dtype; averages (and LP, and adaptive averages)
return float input's own dtype and float64 for integers and bools, unless
``dtype=`` names another (an integer ``dtype=`` rounds an average half to
even); integer averages are summed exactly in integers. Gradients keep a float
gradient's dtype. The kernels run in native byte order, float16 widened to
float32 (and rounded back once).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def is_dask_array(x) -> bool:
    """Whether ``x`` is a Dask array, without importing Dask."""
    return type(x).__module__.startswith("dask.array")


def as_array(x, name: str) -> np.ndarray:
    """``np.asarray(x)``, refusing a Dask array: that would compute it whole, silently."""
    if is_dask_array(x):
        raise TypeError(
            f"{name} is a Dask array, which this op or layer does not pool lazily; "
            f"max_pool, avg_pool and lp_pool (and their 1d/2d/3d names) take Dask arrays. "
            f"Pass {name}.compute() for NumPy's result if it fits in memory."
        )
    return np.asarray(x)


def as_real_array(x, name: str) -> np.ndarray:
    """``np.asarray(x)``, refusing what has no order (complex, object, text, dates)."""
    arr = x if type(x) is np.ndarray else as_array(x, name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers or bools, got dtype {arr.dtype}")
    return arr


def float_dtype(dtype: np.dtype) -> np.dtype:
    """The float dtype a gradient keeps: its own if float, else float64."""
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype the kernels run in: native byte order, float16 widened to float32."""
    dtype = dtype.newbyteorder("=")
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def max_compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype a max kernel compares in: :func:`compute_dtype`, and bools as uint8
    (numba compares bools as small ints)."""
    return np.dtype(np.uint8) if dtype == np.bool_ else compute_dtype(dtype)


def gradient_dtypes(grad_dtype: np.dtype) -> tuple[np.dtype, np.dtype]:
    """(result, compute) dtypes of every backward: a float gradient keeps its dtype
    (float16 computed in float32), any other gives float64."""
    result = float_dtype(grad_dtype)
    return result, compute_dtype(result)


def float_result_dtypes(x_dtype: np.dtype) -> tuple[np.dtype, np.dtype]:
    """(result, compute) dtypes of a float-valued op (LP pooling, adaptive averages):
    float input keeps its dtype, any other gives float64; computed in :func:`compute_dtype`."""
    result = float_dtype(x_dtype)
    return result, compute_dtype(result)


class AverageDtypes(NamedTuple):
    """The dtypes of one average: see :func:`avg_dtypes`."""

    result: np.dtype  # what the op returns
    read: np.dtype  # what the kernels read the input as (no copy when it is the input's)
    accumulate: np.dtype  # what window sums are held in
    write: np.dtype  # what the kernels write: the result, float16 widened


# An 8- or 16-bit window sums exactly in int32 up to this many elements (65,535 each).
_INT32_WINDOW = 2**15


def avg_dtypes(x_dtype: np.dtype, dtype, window_size: int = 1) -> AverageDtypes:
    """The dtypes of an average over windows of ``window_size`` elements.

    The result is ``dtype`` if given (a float, or an integer: the mean rounded
    half to even), else the input's if float, else float64. Integer and bool
    input is read as it is, never copied to floats, and summed exactly in a wide
    integer (int32 or int64; 64-bit integers sum in float64, as NumPy's mean
    does); each sum is divided once, in float64.
    """
    x_dtype = x_dtype.newbyteorder("=")
    if dtype is None:
        result = float_dtype(x_dtype)
    else:
        result = np.dtype(dtype)
        if result.kind not in "iuf":
            raise TypeError(f"dtype must be a float or integer dtype, got {dtype!r}")
    write = compute_dtype(result) if result.kind == "f" else result.newbyteorder("=")
    if x_dtype.kind == "f":
        read = compute_dtype(result) if result.kind == "f" else compute_dtype(x_dtype)
        return AverageDtypes(result, read, read, write)
    read = np.dtype(np.uint8) if x_dtype == np.bool_ else x_dtype
    if read.itemsize <= 2 and window_size < _INT32_WINDOW:
        accumulate = np.dtype(np.int32)
    elif read.itemsize <= 4:
        accumulate = np.dtype(np.int64)
    else:
        accumulate = np.dtype(np.float64)
    return AverageDtypes(result, read, accumulate, write)


def max_identity(dtype: np.dtype, omit_nan: bool):
    """What every window starts from: nothing in the dtype beats it, NaN included."""
    if dtype.kind == "f":
        return dtype.type(np.nan if omit_nan else -np.inf)
    return dtype.type(np.iinfo(dtype).min)
