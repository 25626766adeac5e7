"""The table of poolnd's ops: one row per op, read by the tests and by ``poolnd bench``.

Each :class:`Op` names the N-d function, its PyTorch-named variants, its
gradient, its layers, its PyTorch twin and whether Dask arrays are pooled
lazily, and gives the geometries it is benchmarked on and tested on: numbagg's
table of comparisons is the model. ``tests/test_ops.py`` checks every row, on
every geometry, against PyTorch (where the row says PyTorch has the op), against
the brute-force loops of ``tests/reference.py`` (with four pooled axes,
channels-last ``axes=``, NaN, ``nan_policy="omit"`` and integer input too) and
on Dask arrays; ``poolnd bench`` times the same rows. A new op is a row here,
its family and its tests.

Each op's brute-force references are found by name, not stored here, so that the
package holds no test code: ``ref_<name>`` and ``ref_<backward>`` in
``tests/reference.py`` take the op's own arguments, and ``tests/test_ops.py``
fails for a row without them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import functional


@dataclass(frozen=True)
class Geometry:
    """One call's arguments after the array(s): the same for the N-d function and its 2-d
    PyTorch-named variant (so flags such as ``return_indices`` are keywords)."""

    label: str
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    torch_kwargs: dict[str, Any] | None = None  # where PyTorch spells a keyword otherwise


@dataclass(frozen=True)
class Op:
    name: str  # the N-d function of poolnd.functional
    dims: tuple[int, ...]  # N of its PyTorch-named variants: max_pool1d, 2d, 3d
    backward: str  # its gradient
    layer: str | None  # the nn layers' prefix: MaxPool -> MaxPool1d ... MaxPoolNd
    torch: bool  # torch.nn.functional has the same 2-d name and arguments
    lazy_on_dask: bool  # a Dask array in, a lazy Dask array out (else a TypeError)
    exact: bool  # equal to PyTorch bit for bit (max), or to float rounding (sums)
    takes_indices: bool = False  # the op pools values at a max pooling's indices
    random: bool = False  # windows drawn at random: PyTorch's draws differ from poolnd's
    geometries: tuple[Geometry, ...] = ()

    def named(self, n: int) -> str:
        return f"{self.name}{n}d"

    @property
    def function(self) -> Callable[..., Any]:
        return getattr(functional, self.name)

    def functions(self) -> dict[str, Callable[..., Any]]:
        """Every public function of the op: N-d, PyTorch-named, backward."""
        names = [self.name, *map(self.named, self.dims), self.backward]
        return {name: getattr(functional, name) for name in names}


OPS = (
    Op("max_pool", (1, 2, 3), "max_pool_backward", "MaxPool", torch=True, lazy_on_dask=True,
       exact=True, geometries=(Geometry("k2 s2", (2, 2)), Geometry("k3 s2 p1", (3, 2, 1)),
                               Geometry("k3 s2 p1 +indices", (3, 2, 1), {"return_indices": True}))),
    Op("avg_pool", (1, 2, 3), "avg_pool_backward", "AvgPool", torch=True, lazy_on_dask=True,
       exact=False, geometries=(Geometry("k3 s2 p1", (3, 2, 1)),)),
    Op("lp_pool", (1, 2, 3), "lp_pool_backward", "LPPool", torch=True, lazy_on_dask=True,
       exact=False, geometries=(Geometry("p2 k2", (2, 2)),)),
    Op("adaptive_max_pool", (1, 2, 3), "adaptive_max_pool_backward", "AdaptiveMaxPool",
       torch=True, lazy_on_dask=True, exact=True,
       geometries=(Geometry("7x7", (7,)),
                   Geometry("7x7 +indices", (7,), {"return_indices": True}))),
    Op("adaptive_avg_pool", (1, 2, 3), "adaptive_avg_pool_backward", "AdaptiveAvgPool",
       torch=True, lazy_on_dask=True, exact=False,
       geometries=(Geometry("7x7", (7,)), Geometry("1 (global average)", (1,)))),
    Op("fractional_max_pool", (2, 3), "fractional_max_pool_backward", "FractionalMaxPool",
       torch=True, lazy_on_dask=False, exact=True, random=True,
       geometries=(Geometry("k2 ratio 0.5", (2,), {"output_ratio": 0.5},
                            torch_kwargs={"output_ratio": (0.5, 0.5)}),)),
    Op("max_unpool", (1, 2, 3), "max_unpool_backward", "MaxUnpool", torch=True,
       lazy_on_dask=False, exact=True, takes_indices=True, geometries=(Geometry("k2", (2,)),)),
)


def public_functions() -> dict[str, Callable[..., Any]]:
    """Every function the table names: all of poolnd's ops."""
    return {name: f for op in OPS for name, f in op.functions().items()}
