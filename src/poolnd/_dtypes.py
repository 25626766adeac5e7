"""The dtype rules: what each op computes in, accumulates in and returns.

Max pooling keeps the input's dtype; averages (and LP, and adaptive averages)
return float input's own dtype and float64 for integers and bools, unless
``dtype=`` names a float; gradients keep a float gradient's dtype. The kernels
run in native byte order, float16 widened to float32 (and rounded back once).
"""

from __future__ import annotations

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
    arr = as_array(x, name)
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


def avg_dtypes(x_dtype: np.dtype, dtype) -> tuple[np.dtype, np.dtype]:
    """(result dtype, compute dtype) of an average."""
    if dtype is not None:
        result = np.dtype(dtype)
        if result.kind != "f":
            raise TypeError(f"dtype must be a float dtype, got {dtype!r}")
    else:
        result = float_dtype(x_dtype)
    return result, compute_dtype(result)


def max_identity(dtype: np.dtype, omit_nan: bool):
    """What every window starts from: nothing in the dtype beats it, NaN included."""
    if dtype.kind == "f":
        return dtype.type(np.nan if omit_nan else -np.inf)
    return np.iinfo(dtype).min
