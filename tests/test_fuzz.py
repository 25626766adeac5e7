"""Fuzzing: whatever a user passes, poolnd answers right or refuses clearly.

Every public op of ``poolnd`` (``poolnd.__all__``, backwards included), every
layer class of ``poolnd.nn`` (forward, backward, and backward before any
forward), the ``poolnd.mygrad`` functions and the ``poolnd.compat`` front ends
get random, often invalid, arguments and arrays: complex, object, text, date
and structured dtypes, 0-d arrays, empty axes, big-endian, Fortran-ordered,
negative-stride, strided and read-only arrays, float16, bool, integer
extremes, NaN and inf, huge and non-integer sizes, ragged lists. Each call must

- return a result (shape and dtype as docs/SPEC.md says; for max and average
  pooling on small input, the brute-force reference's values), or
- raise ``ValueError`` or ``TypeError`` with a message (a layer's backward
  before its forward included);

and never change an input: values, dtype, shape, strides and flags.

Bounded by default (a few hundred calls, well under a minute once the kernels
are compiled); ``POOLND_FUZZ_EXAMPLES=2000`` runs that many examples per test.
With ``POOLND_FUZZ_REPORT=path`` the calls made and their outcomes, per
function, are written there as JSON (they are printed at the end either way).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import ref_avg_pool, ref_max_pool

import poolnd
from poolnd import nn

EXAMPLES = int(os.environ.get("POOLND_FUZZ_EXAMPLES", "12"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 12,
                suppress_health_check=list(HealthCheck), print_blob=True)

# (function, outcome) -> count; outcome is "ok" or the exception's type name
CALLS: Counter = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report(request):
    yield
    per_outcome = Counter()
    for (_, outcome), count in CALLS.items():
        per_outcome[outcome] += count
    line = (f"\npoolnd fuzz: {sum(CALLS.values())} calls, "
            + ", ".join(f"{k} {v}" for k, v in sorted(per_outcome.items())))
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(line)
    path = os.environ.get("POOLND_FUZZ_REPORT")
    if path:
        table = {f"{fn} -> {outcome}": n for (fn, outcome), n in sorted(CALLS.items())}
        with open(path, "w") as f:
            json.dump({"calls": sum(CALLS.values()), "outcomes": dict(per_outcome),
                       "per_function": table}, f, indent=1)


# --------------------------------------------------------------------------- arrays

REAL_DTYPES = ["float16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64",
               "uint64", "bool", ">f8", ">i4", "<f4"]
ODD_DTYPES = ["complex64", "complex128", "object", "U3", "S2", "datetime64[ns]",
              "timedelta64[s]", [("a", "f8"), ("b", "i4")], "V4"]


def _values(rng, shape, dtype):
    return np.asarray(_some_values(rng, shape, dtype))  # 0-d arrays, not NumPy scalars


def _some_values(rng, shape, dtype):
    dtype = np.dtype(dtype)
    native = dtype.newbyteorder("=")
    if native.kind == "b":
        return rng.integers(0, 2, shape).astype(dtype)
    if native.kind in "iu":
        info = np.iinfo(native)
        pool = np.array([info.min, info.min + 1, 0, 1, 2, info.max - 1, info.max], native)
        return rng.choice(pool, shape).astype(dtype)
    if native.kind == "f":
        info = np.finfo(native)
        pool = np.array([-2, -1, -0.5, 0, 0.0, 0.5, 1, 2, 3, np.nan, np.inf, -np.inf,
                         info.min, info.max, info.tiny], native)
        return rng.choice(pool, shape).astype(dtype)
    if native.kind == "c":
        return (rng.standard_normal(shape) + 1j).astype(dtype)
    if native.kind == "O":
        out = np.empty(shape, object)
        out[...] = 1.5
        return out
    return np.zeros(shape, dtype)


def _layout(x, how):
    """``x``'s values in another memory layout (the same values, whatever ``how``)."""
    if how == "fortran":
        return np.asfortranarray(x)
    if how == "reversed" and x.ndim:
        # a negative-stride view of a reversed copy: the same values, read backwards
        return np.flip(np.flip(x).copy())
    if how == "strided" and x.ndim:
        wide = np.repeat(x, 2, axis=-1)
        return wide[..., ::2]
    if how == "read_only":
        x = x.copy()
        x.flags.writeable = False
    return x


@st.composite
def arrays(draw, min_ndim=0, max_ndim=5, odd=0.15):
    """An array (or now and then something array-like) of a random dtype and layout."""
    kind = draw(st.sampled_from(["array"] * 12 + ["list", "ragged", "scalar", "none"]))
    if kind == "ragged":
        return [[1.0, 2.0], [3.0]]
    if kind == "scalar":
        return draw(st.sampled_from([1.5, 3, True, "abc", 1j]))
    if kind == "none":
        return None
    ndim = draw(st.integers(min_ndim, max_ndim))
    shape = tuple(draw(st.lists(st.sampled_from([1, 2, 3, 4, 5, 0]), min_size=ndim,
                                max_size=ndim)))
    use_odd = draw(st.floats(0, 1)) < odd
    dtype = draw(st.sampled_from(ODD_DTYPES if use_odd else REAL_DTYPES))
    x = _values(np.random.default_rng(draw(st.integers(0, 2**32 - 1))), shape, dtype)
    x = _layout(x, draw(st.sampled_from(["c", "fortran", "reversed", "strided", "read_only"])))
    return x.tolist() if kind == "list" and x.dtype.kind in "biuf" else x


# --------------------------------------------------------------------------- arguments

# Sizes past int64 must be refused; 2**31 and 2**63 - 1 fit, and are only drawn where they
# cannot ask for a huge output (an output that does not fit in memory is NumPy's MemoryError).
TOO_BIG = [2**63, 2**64 + 3, 10**30, -(2**63), -(2**63) - 1]
FITS = [2**31, 2**63 - 1]
ODD_SCALARS = [0, -1, -3, 1.0, 2.5, math.nan, math.inf, -math.inf, True, False, "2", "same",
               b"2", 1j, np.float64(2.0), object(), [], ()]


def sizes(n_max=4, huge=True):
    """A size argument: usually an int or a tuple of small ints, often something odd.

    ``huge``: also large sizes that fit in int64 (for the windows' own arguments).
    """
    small = st.integers(1, 4)
    number = st.one_of(small, small.map(np.int64), small.map(np.uint8),
                       st.sampled_from(TOO_BIG + FITS if huge else TOO_BIG),
                       st.sampled_from(ODD_SCALARS))
    return st.one_of(
        small, small,
        st.lists(small, min_size=1, max_size=n_max).map(tuple),
        st.lists(small, min_size=1, max_size=n_max).map(tuple),
        number,
        st.lists(number, min_size=0, max_size=n_max).map(tuple),
        st.lists(small, min_size=1, max_size=n_max),  # a list
        st.lists(small, min_size=1, max_size=n_max).map(np.array),
        st.none(),
    )


def paddings():
    pad = st.integers(0, 2)
    return st.one_of(pad, pad, st.lists(pad, min_size=1, max_size=4).map(tuple),
                     st.lists(st.tuples(pad, pad), min_size=1, max_size=4).map(tuple),
                     st.sampled_from(["same", "valid", "full", -1, 2**63, 2**31, 1.5, math.nan,
                                      ((1, 2, 3),), ((-1, 0),)]))


def axes_args():
    axis = st.integers(-6, 6)
    return st.one_of(st.none(), st.none(), st.lists(axis, min_size=1, max_size=4).map(tuple),
                     axis, st.sampled_from([(), (1.0,), ("a",), (2**63,), [0, 1], (True,)]))


flags = st.one_of(st.booleans(), st.booleans(), st.sampled_from([0, 1, None, "yes", np.bool_(1)]))
norm_types = st.one_of(st.sampled_from([1, 2, 3, 1.5, 0.5, math.inf]),
                       st.sampled_from([0, -1, math.nan, -math.inf, "2", None, True, 1j, 10**400
                                        if False else 1e308]))
ratios = st.one_of(st.floats(0.1, 0.9), st.sampled_from([0, 1, 1.5, -0.5, math.nan, "0.5", True,
                                                         (0.5, 0.5), (0.5, 0.5, 0.5), None]))


# --------------------------------------------------------------------------- the check


def _snapshot(value):
    """What must not change: values and metadata of every array among the arguments."""
    if isinstance(value, np.ndarray):
        flags_ = (value.flags.writeable, value.flags.c_contiguous, value.flags.f_contiguous)
        return ("array", value.dtype, value.shape, value.strides, flags_, value.copy())
    if isinstance(value, (list, tuple)):
        return (type(value), [_snapshot(v) for v in value])
    if isinstance(value, dict):
        return ("dict", {k: _snapshot(v) for k, v in value.items()})
    return ("other", id(value))


def _same(a, b):
    if a[0] == "array":
        if a[1:5] != b[1:5]:
            return False
        x, y = a[5], b[5]
        if x.dtype.kind == "f":
            return np.array_equal(x, y, equal_nan=True)
        if x.dtype.kind == "c":
            return (np.array_equal(x.real, y.real, equal_nan=True)
                    and np.array_equal(x.imag, y.imag, equal_nan=True))
        if x.dtype.kind == "V" and x.dtype.fields:
            return x.tobytes() == y.tobytes()
        return np.array_equal(x, y)
    if a[0] == "dict":
        return a[1].keys() == b[1].keys() and all(_same(a[1][k], b[1][k]) for k in a[1])
    if a[0] in (list, tuple):
        return a[0] == b[0] and len(a[1]) == len(b[1]) and all(map(_same, a[1], b[1]))
    return a == b


class Refused(Exception):
    """The call refused its arguments the documented way."""


def call(name, fn, *args, allowed=(ValueError, TypeError), **kwargs):
    """Call ``fn``: its result, or ``Refused`` for a clear ValueError or TypeError.

    Fails on any other exception, on an empty message, and on any change to an
    argument.
    """
    before = _snapshot((args, kwargs))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow in x**p and such
            result = fn(*args, **kwargs)
    except allowed as error:
        CALLS[name, type(error).__name__] += 1
        assert str(error).strip(), f"{name} raised {type(error).__name__} with no message"
        assert _same(before, _snapshot((args, kwargs))), f"{name} changed an input and raised"
        raise Refused from error
    except Exception as error:
        CALLS[name, "unexpected " + type(error).__name__] += 1
        raise AssertionError(
            f"{name} raised {type(error).__name__}: {error}\nargs={args!r}\nkwargs={kwargs!r}"
        ) from error
    CALLS[name, "ok"] += 1
    assert _same(before, _snapshot((args, kwargs))), f"{name} changed an input"
    return result


def attempt(name, fn, *args, **kwargs):
    """:func:`call`, with a refusal as ``None``."""
    try:
        return call(name, fn, *args, **kwargs)
    except Refused:
        return None


def _shape(x):
    """``x``'s shape, () for what NumPy cannot shape (ragged lists)."""
    try:
        return np.shape(x)
    except ValueError:
        return ()


def _real(x):
    return isinstance(x, np.ndarray) and x.dtype.kind in "biuf"


def _float_of(dtype):
    dtype = np.dtype(dtype)
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def _check_array(out, shape_ndim=None, dtype=None):
    assert isinstance(out, np.ndarray), type(out)
    if shape_ndim is not None:
        assert out.ndim == shape_ndim, (out.shape, shape_ndim)
    if dtype is not None:
        assert out.dtype == np.dtype(dtype), (out.dtype, dtype)


def _axes_of(n, axes):
    """The ``axes`` a general backward needs to pool what a 1d/2d/3d name pooled."""
    return tuple(range(-n, 0)) if n is not None and axes is None else axes


def _small(x):
    return _real(x) and x.size <= 300 and x.dtype.newbyteorder("=") != np.float16


# --------------------------------------------------------------------------- functional ops

MAX_OPS = {"max_pool": None, "max_pool1d": 1, "max_pool2d": 2, "max_pool3d": 3}
AVG_OPS = {"avg_pool": None, "avg_pool1d": 1, "avg_pool2d": 2, "avg_pool3d": 3}
LP_OPS = {"lp_pool": None, "lp_pool1d": 1, "lp_pool2d": 2, "lp_pool3d": 3}
ADAPTIVE_OPS = {f"adaptive_{kind}_pool{suffix}": n for kind in ("max", "avg")
                for suffix, n in (("", None), ("1d", 1), ("2d", 2), ("3d", 3))}
FRACTIONAL_OPS = {"fractional_max_pool": None, "fractional_max_pool2d": 2,
                  "fractional_max_pool3d": 3}
UNPOOL_OPS = {"max_unpool": None, "max_unpool1d": 1, "max_unpool2d": 2, "max_unpool3d": 3}
BACKWARDS = ["max_pool_backward", "avg_pool_backward", "lp_pool_backward",
             "adaptive_max_pool_backward", "adaptive_avg_pool_backward",
             "fractional_max_pool_backward", "max_unpool_backward"]
THREADS = ["get_num_threads", "set_num_threads"]


def test_every_public_name_is_fuzzed():
    fuzzed = {*MAX_OPS, *AVG_OPS, *LP_OPS, *ADAPTIVE_OPS, *FRACTIONAL_OPS, *UNPOOL_OPS,
              *BACKWARDS, *THREADS}
    assert fuzzed == set(poolnd.__all__)
    layers = {*MAX_LAYERS, *AVG_LAYERS, *LP_LAYERS, *ADAPTIVE_LAYERS, *FRACTIONAL_LAYERS,
              *UNPOOL_LAYERS}
    assert layers == set(nn.__all__)


@st.composite
def geometry(draw):
    return {"kernel_size": draw(sizes()), "stride": draw(st.one_of(st.none(), sizes())),
            "padding": draw(paddings()), "dilation": draw(st.one_of(st.just(1), sizes())),
            "ceil_mode": draw(flags), "axes": draw(axes_args())}


def _torch_order(g, names):
    """Keyword arguments for a 1d/2d/3d name (their positional order differs)."""
    return {k: g[k] for k in names if k in g}


@pytest.mark.parametrize("name", list(MAX_OPS))
@FUZZ
@given(x=arrays(), g=geometry(), return_indices=flags,
       nan_policy=st.sampled_from(["propagate", "omit", "propagate", "raise", None]))
def test_max_pool_answers_or_refuses(name, x, g, return_indices, nan_policy):
    fn = getattr(poolnd, name)
    result = attempt(name, fn, x, **g, return_indices=return_indices, nan_policy=nan_policy)
    if result is None:
        return
    out, idx = result if return_indices else (result, None)
    x = np.asarray(x)
    _check_array(out, x.ndim, x.dtype)
    if idx is not None:
        _check_array(idx, x.ndim, np.int64)
        assert idx.shape == out.shape
    if _small(x) and MAX_OPS[name] is None:
        want, want_idx = ref_max_pool(x, **g, nan_policy=nan_policy)
        np.testing.assert_array_equal(out, want)
        if idx is not None:
            np.testing.assert_array_equal(idx, want_idx)
        grad = np.ones(out.shape, np.float32)
        back = call("max_pool_backward", poolnd.max_pool_backward, grad, want_idx, x.shape,
                    g["kernel_size"], g["stride"], g["padding"], g["dilation"],
                    g["ceil_mode"], axes=g["axes"])
        _check_array(back, x.ndim, np.float32)
        assert back.shape == x.shape and back.sum() == out.size


@pytest.mark.parametrize("name", list(AVG_OPS))
@FUZZ
@given(x=arrays(), g=geometry(), count_include_pad=flags,
       divisor_override=st.one_of(st.none(), st.none(), st.sampled_from([1, 3, 0, -2, 2.5, True,
                                                                          2**63, np.int8(2)])),
       dtype=st.sampled_from([None, None, None, "float32", "float64", "float16", "int32",
                              "complex128", "nonsense", object]))
def test_avg_pool_answers_or_refuses(name, x, g, count_include_pad, divisor_override, dtype):
    fn = getattr(poolnd, name)
    out = attempt(name, fn, x, **g, count_include_pad=count_include_pad,
                  divisor_override=divisor_override, dtype=dtype)
    if out is None:
        return
    x = np.asarray(x)
    want_dtype = _float_of(x.dtype) if dtype is None else np.dtype(dtype)
    _check_array(out, x.ndim, want_dtype)
    if _small(x) and AVG_OPS[name] is None and want_dtype != np.float16:
        want = ref_avg_pool(x, **g, count_include_pad=count_include_pad,
                            divisor_override=divisor_override, dtype=want_dtype)
        with np.errstate(all="ignore"):
            np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5, equal_nan=True)
        back = call("avg_pool_backward", poolnd.avg_pool_backward,
                    np.ones(out.shape, np.float64), x.shape, g["kernel_size"], g["stride"],
                    g["padding"], g["dilation"], g["ceil_mode"], count_include_pad,
                    divisor_override, axes=g["axes"])
        _check_array(back, x.ndim, np.float64)


@pytest.mark.parametrize("name", list(LP_OPS))
@FUZZ
@given(x=arrays(), p=norm_types, kernel_size=sizes(), stride=st.one_of(st.none(), sizes()),
       ceil_mode=flags, axes=axes_args())
def test_lp_pool_answers_or_refuses(name, x, p, kernel_size, stride, ceil_mode, axes):
    fn = getattr(poolnd, name)
    out = attempt(name, fn, x, p, kernel_size, stride, ceil_mode, axes=axes)
    if out is None:
        return
    x = np.asarray(x)
    _check_array(out, x.ndim, _float_of(x.dtype))
    grad = np.ones(out.shape, out.dtype)
    back = call("lp_pool_backward", poolnd.lp_pool_backward, grad, x, p, kernel_size, stride,
                ceil_mode, axes=_axes_of(LP_OPS[name], axes))
    _check_array(back, x.ndim, out.dtype)
    assert back.shape == x.shape


def output_sizes():
    size = st.integers(1, 4)
    return st.one_of(size, st.lists(st.one_of(size, st.none()), min_size=1, max_size=4)
                     .map(tuple), sizes(huge=False))


@pytest.mark.parametrize("name", list(ADAPTIVE_OPS))
@FUZZ
@given(x=arrays(), output_size=output_sizes(), axes=axes_args(), return_indices=flags,
       nan_policy=st.sampled_from(["propagate", "omit", "bad"]))
def test_adaptive_pool_answers_or_refuses(name, x, output_size, axes, return_indices,
                                          nan_policy):
    fn = getattr(poolnd, name)
    is_max = "max" in name
    extra = {"return_indices": return_indices, "nan_policy": nan_policy} if is_max else {}
    result = attempt(name, fn, x, output_size, axes=axes, **extra)
    if result is None:
        return
    x = np.asarray(x)
    out, idx = result if is_max and return_indices else (result, None)
    _check_array(out, x.ndim, x.dtype if is_max else _float_of(x.dtype))
    grad = np.ones(out.shape, np.float64)
    if idx is not None:
        _check_array(idx, x.ndim, np.int64)
        back = call("adaptive_max_pool_backward", poolnd.adaptive_max_pool_backward, grad, idx,
                    x.shape, output_size, axes=_axes_of(ADAPTIVE_OPS[name], axes))
        assert back.shape == x.shape and back.sum() == out.size
    elif not is_max:
        back = call("adaptive_avg_pool_backward", poolnd.adaptive_avg_pool_backward, grad,
                    x.shape, output_size, axes=_axes_of(ADAPTIVE_OPS[name], axes))
        assert back.shape == x.shape


@pytest.mark.parametrize("name", list(FRACTIONAL_OPS))
@FUZZ
@given(x=arrays(), kernel_size=sizes(), output_size=st.one_of(st.none(), sizes()),
       output_ratio=st.one_of(st.none(), ratios), axes=axes_args(), return_indices=flags,
       samples=st.one_of(st.none(), st.none(), arrays(max_ndim=4)),
       rng=st.sampled_from([0, 1, None, "seed", -1, 2.5, np.random.default_rng(3)]))
def test_fractional_max_pool_answers_or_refuses(name, x, kernel_size, output_size, output_ratio,
                                                axes, return_indices, samples, rng):
    fn = getattr(poolnd, name)
    rng = None if samples is not None and rng is not None and rng != "seed" else rng
    result = attempt(name, fn, x, kernel_size, output_size, output_ratio, axes=axes,
                     return_indices=return_indices, samples=samples, rng=rng)
    if result is None:
        return
    x = np.asarray(x)
    out, idx = result if return_indices else (result, None)
    _check_array(out, x.ndim, x.dtype)
    if idx is not None:
        _check_array(idx, x.ndim, np.int64)
        back = call("fractional_max_pool_backward", poolnd.fractional_max_pool_backward,
                    np.ones(out.shape), idx, x.shape, kernel_size, output_size, output_ratio,
                    axes=_axes_of(FRACTIONAL_OPS[name], axes))
        assert back.shape == x.shape and back.sum() == out.size


@pytest.mark.parametrize("name", list(UNPOOL_OPS))
@FUZZ
@given(x=arrays(), data=st.data(), kernel_size=sizes(huge=False),
       stride=st.one_of(st.none(), sizes(huge=False)), padding=paddings(),
       output_size=st.one_of(st.none(), sizes(6, huge=False)), axes=axes_args())
def test_max_unpool_answers_or_refuses(name, x, data, kernel_size, stride, padding, output_size,
                                       axes):
    fn = getattr(poolnd, name)
    shape = np.shape(x) if isinstance(x, np.ndarray) else (2, 3)
    indices = data.draw(st.one_of(
        st.integers(-2, 12).map(lambda v: np.full(shape, v, np.int64)),
        st.sampled_from([np.int32, np.uint8, np.float64, np.int64, object, ">i8"])
        .map(lambda t: np.zeros(shape, t)),
        arrays()), label="indices")
    out = attempt(name, fn, x, indices, kernel_size, stride, padding, output_size, axes=axes)
    if out is None:
        return
    x = np.asarray(x)
    _check_array(out, x.ndim, x.dtype)
    back = call("max_unpool_backward", poolnd.max_unpool_backward, np.ones(out.shape), indices,
                kernel_size, stride, padding, output_size, axes=_axes_of(UNPOOL_OPS[name], axes))
    _check_array(back, x.ndim, np.float64)
    assert back.shape == x.shape


@FUZZ
@given(name=st.sampled_from(BACKWARDS), grad=arrays(), other=arrays(), shape=st.one_of(
    st.lists(st.integers(0, 5), max_size=5).map(tuple), st.sampled_from(
        [(-1, 2), (2.5, 3), "ab", None, (2**63, 1), 5, [3, 4], np.array([2, 3])])),
    kernel_size=sizes(), stride=st.one_of(st.none(), sizes()), padding=paddings(),
    axes=axes_args(), p=norm_types, output_size=output_sizes())
def test_backwards_answer_or_refuse(name, grad, other, shape, kernel_size, stride, padding, axes,
                                    p, output_size):
    fn = getattr(poolnd, name)
    args = {
        "max_pool_backward": (grad, other, shape, kernel_size, stride, padding),
        "avg_pool_backward": (grad, shape, kernel_size, stride, padding),
        "lp_pool_backward": (grad, other, p, kernel_size, stride),
        "adaptive_max_pool_backward": (grad, other, shape, output_size),
        "adaptive_avg_pool_backward": (grad, shape, output_size),
        "fractional_max_pool_backward": (grad, other, shape, kernel_size, output_size),
        "max_unpool_backward": (grad, other, kernel_size, stride, padding, output_size),
    }[name]
    out = attempt(name, fn, *args, axes=axes)
    if out is not None:
        _check_array(out, dtype=_float_of(np.asarray(grad).dtype))


@FUZZ
@given(n=st.sampled_from([1, 2, 3, 0, -1, 1.5, True, "2", None, np.int64(2), 2**63]))
def test_set_num_threads_answers_or_refuses(n):
    before = poolnd.get_num_threads()
    try:
        try:
            call("set_num_threads", poolnd.set_num_threads, n)
            assert poolnd.get_num_threads() == n
        except Refused:
            assert poolnd.get_num_threads() == before
        assert call("get_num_threads", poolnd.get_num_threads) >= 1
    finally:
        poolnd.set_num_threads(before)


# --------------------------------------------------------------------------- layers

MAX_LAYERS = {"MaxPoolNd": None, "MaxPool1d": 1, "MaxPool2d": 2, "MaxPool3d": 3}
AVG_LAYERS = {"AvgPoolNd": None, "AvgPool1d": 1, "AvgPool2d": 2, "AvgPool3d": 3}
LP_LAYERS = {"LPPoolNd": None, "LPPool1d": 1, "LPPool2d": 2, "LPPool3d": 3}
ADAPTIVE_LAYERS = {f"Adaptive{kind}Pool{suffix}": None for kind in ("Max", "Avg")
                   for suffix in ("Nd", "1d", "2d", "3d")}
FRACTIONAL_LAYERS = {"FractionalMaxPoolNd": None, "FractionalMaxPool2d": 2,
                     "FractionalMaxPool3d": 3}
UNPOOL_LAYERS = {"MaxUnpoolNd": None, "MaxUnpool1d": 1, "MaxUnpool2d": 2, "MaxUnpool3d": 3}


@st.composite
def layer_arguments(draw, name):
    """Constructor arguments for layer class ``name``, often invalid."""
    common = {"axes": draw(axes_args())}
    if draw(st.booleans()):
        common["channels_last"] = draw(flags)
    if name in MAX_LAYERS:
        return {"kernel_size": draw(sizes()), "stride": draw(st.one_of(st.none(), sizes())),
                "padding": draw(paddings()), "dilation": draw(st.one_of(st.just(1), sizes())),
                "return_indices": draw(flags), "ceil_mode": draw(flags),
                "nan_policy": draw(st.sampled_from(["propagate", "omit", "x"])), **common}
    if name in AVG_LAYERS:
        return {"kernel_size": draw(sizes()), "stride": draw(st.one_of(st.none(), sizes())),
                "padding": draw(paddings()), "ceil_mode": draw(flags),
                "count_include_pad": draw(flags),
                "divisor_override": draw(st.sampled_from([None, None, 2, 0, 1.5])),
                "dilation": draw(st.one_of(st.just(1), sizes())), **common}
    if name in LP_LAYERS:
        return {"norm_type": draw(norm_types), "kernel_size": draw(sizes()),
                "stride": draw(st.one_of(st.none(), sizes())), "ceil_mode": draw(flags),
                **common}
    if name in ADAPTIVE_LAYERS:
        extra = {}
        if "Max" in name:
            extra = {"return_indices": draw(flags),
                     "nan_policy": draw(st.sampled_from(["propagate", "omit", 3]))}
        return {"output_size": draw(output_sizes()), **extra, **common}
    if name in FRACTIONAL_LAYERS:
        return {"kernel_size": draw(sizes()), "output_size": draw(st.one_of(st.none(), sizes())),
                "output_ratio": draw(st.one_of(st.none(), ratios)),
                "return_indices": draw(flags), "rng": draw(st.sampled_from([0, None, "x"])),
                **common}
    # unpooling: a huge size asks for a huge output
    return {"kernel_size": draw(sizes(huge=False)),
            "stride": draw(st.one_of(st.none(), sizes(huge=False))),
            "padding": draw(paddings()), **common}


ALL_LAYERS = [*MAX_LAYERS, *AVG_LAYERS, *LP_LAYERS, *ADAPTIVE_LAYERS, *FRACTIONAL_LAYERS,
              *UNPOOL_LAYERS]


@pytest.mark.parametrize("name", ALL_LAYERS)
@FUZZ
@given(data=st.data(), x=arrays(), grad=st.one_of(st.none(), arrays()))
def test_layer_answers_or_refuses(name, data, x, grad):
    cls = getattr(nn, name)
    kwargs = data.draw(layer_arguments(name), label="kwargs")
    layer = attempt(name, cls, **kwargs)
    if layer is None:
        return
    assert repr(layer).startswith(name)
    # backward before any forward: a clear error, never a crash
    with pytest.raises(Refused):
        call(f"{name}.backward", layer.backward, np.ones(3),
             allowed=(ValueError,))
    if name in UNPOOL_LAYERS:
        indices = np.zeros(x.shape, np.int64) if isinstance(x, np.ndarray) else x
        result = attempt(f"{name}.forward", layer, x, indices,
                         data.draw(st.one_of(st.none(), sizes(6, huge=False)),
                                   label="output_size"))
    else:
        result = attempt(f"{name}.forward", layer, x)
    if result is None:
        return
    out = result[0] if isinstance(result, tuple) else result
    assert isinstance(out, np.ndarray) and out.ndim == len(_shape(x))
    if grad is None:
        grad = np.ones(out.shape, np.float32)
    back = attempt(f"{name}.backward", layer.backward, grad)
    if back is not None:
        assert back.shape == _shape(x)
        assert back.dtype == _float_of(np.asarray(grad).dtype)


# --------------------------------------------------------------------------- front ends


@FUZZ
@given(x=arrays(), pool=sizes(), stride=sizes(), data=st.data(),
       name=st.sampled_from(["max_pool", "avg_pool", "lp_pool", "adaptive_max_pool",
                             "adaptive_avg_pool"]))
def test_mygrad_front_end_answers_or_refuses(x, pool, stride, data, name):
    mg = pytest.importorskip("mygrad")
    from poolnd import mygrad as pmg

    fn = getattr(pmg, name)
    if isinstance(x, np.ndarray) and x.dtype.kind in "biuf" and x.dtype.isnative:
        try:
            x = mg.Tensor(x.astype(_float_of(x.dtype)))
        except Exception:  # MyGrad's own refusals are not poolnd's to test
            return
    if name == "lp_pool":
        args = (x, data.draw(norm_types, label="p"), pool, stride)
    elif name.startswith("adaptive"):
        args = (x, data.draw(output_sizes(), label="output_size"))
    else:
        args = (x, pool, stride)
    out = attempt(f"mygrad.{name}", fn, *args)
    if out is not None and isinstance(x, mg.Tensor):
        out.sum().backward()
        assert x.grad is not None and x.grad.shape == x.shape


@FUZZ
@given(x=arrays(), size=sizes(2), stride=sizes(2), data=st.data(),
       name=st.sampled_from(["numpynet", "tinyml", "d2l"]))
def test_compat_front_ends_answer_or_refuse(x, size, stride, data, name):
    if name == "d2l":
        from poolnd.compat import d2l

        mode = data.draw(st.sampled_from(["max", "avg", "mean", 3]), label="mode")
        attempt("compat.d2l.pool2d", d2l.pool2d, x, size, mode)
        return
    if name == "numpynet":
        from poolnd.compat.numpynet import Maxpool_layer

        layer = attempt("compat.numpynet.Maxpool_layer", Maxpool_layer, size, stride=stride,
                        pad=data.draw(flags, label="pad"))
        if layer is None:
            return
        if attempt("compat.numpynet.forward", layer.forward, x) is not None:
            delta = np.zeros(_shape(x), np.float64)
            attempt("compat.numpynet.backward", layer.backward, delta)
        return
    from poolnd.compat.tinyml import MaxPool2D

    input_dim = data.draw(st.one_of(st.just(_shape(x)[1:]), sizes(3)), label="input_dim")
    layer = attempt("compat.tinyml.MaxPool2D", MaxPool2D, "pool", input_dim, size, stride,
                    return_index=data.draw(flags, label="return_index"))
    if layer is None:
        return
    out = attempt("compat.tinyml.forward", layer.forward, x)
    out = out[0] if isinstance(out, tuple) else out
    if out is not None:
        attempt("compat.tinyml.backward", layer.backward, np.ones(out.shape))
