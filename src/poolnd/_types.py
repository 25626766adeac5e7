"""The argument types that the public signatures share, spelled once.

Names for annotations only: nothing here is checked at run time (the ops check
their arguments themselves). This module imports nothing from poolnd, so any
module may use it: it is in the lowest layer of pyproject.toml's import-linter
contract.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, TypeAlias, TypeVar

import numpy as np

# A window length, step or spacing: one int for every pooled axis, or one per axis
# (kernel_size, stride, dilation; the output_size of fractional pooling and unpooling).
Size: TypeAlias = int | Sequence[int]

# An int for every side, one per axis, a (before, after) pair per axis, or "valid" or
# "same" (TensorFlow's rules).
Padding: TypeAlias = int | Literal["valid", "same"] | Sequence[int] | Sequence[tuple[int, int]]

# The pooled axes, in order; None: the last N.
Axes: TypeAlias = Sequence[int] | None

# An adaptive output length: one for every pooled axis, or one per axis; None keeps an axis.
OutputSize: TypeAlias = int | None | Sequence[int | None]

# A fractional output ratio in (0, 1): one for every pooled axis, or one per axis.
Ratio: TypeAlias = float | Sequence[float]

# The lengths of every axis of an array (input_shape).
Shape: TypeAlias = Sequence[int]

# What a NaN in a window does: "propagate" (the window gives NaN) or "omit" (it is skipped).
NanPolicy: TypeAlias = Literal["propagate", "omit"]

# What numpy.random.default_rng takes: a seed, a seed sequence, a generator or None.
Seed: TypeAlias = (int | Sequence[int] | np.random.SeedSequence | np.random.BitGenerator
                   | np.random.Generator | None)

# The type of a layer, for the methods that return it (train, eval).
LayerT = TypeVar("LayerT")

# A function handed back as it came (renamed, documented).
FunctionT = TypeVar("FunctionT", bound=Callable[..., object])
