"""poolnd against PyTorch on the CPU, side by side in one process.

Runs are interleaved (poolnd, torch, poolnd, torch, ...) so that both see
the same machine state, and the medians are compared. Run from a checkout:

    python benchmarks/bench_core.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from functools import partial

import numba
import numpy as np
import torch

import poolnd
from poolnd.nn import AvgPool2d, MaxPool2d

SHAPE = (32, 64, 112, 112)


def _interleaved_medians(functions, repeat):
    for f in functions:
        f()  # compile and warm caches
    times = [[] for _ in functions]
    for _ in range(repeat):
        for f, bucket in zip(functions, times):
            start = time.perf_counter()
            f()
            bucket.append(time.perf_counter() - start)
    return [1e3 * float(np.median(t)) for t in times]


def _layer_step(layer, x, grad):
    def step():
        y = layer(x)
        layer.backward(grad if grad is not None else np.ones_like(y))
    return step


def _torch_step(module, x):
    def step():
        t = torch.from_numpy(x).requires_grad_()
        y = module(t)
        y.backward(torch.ones_like(y))
    return step


def cases(x, t):
    F = torch.nn.functional
    for k, s, p in ((2, 2, 0), (3, 2, 1)):
        geometry = f"k{k} s{s} p{p}"
        yield (f"max_pool2d {geometry}", partial(poolnd.max_pool2d, x, k, s, p),
               partial(F.max_pool2d, t, k, s, p))
        yield (f"max_pool2d {geometry} +indices",
               partial(poolnd.max_pool2d, x, k, s, p, return_indices=True),
               partial(F.max_pool2d, t, k, s, p, return_indices=True))
        yield (f"avg_pool2d {geometry}", partial(poolnd.avg_pool2d, x, k, s, p),
               partial(F.avg_pool2d, t, k, s, p))
        yield (f"MaxPool2d {geometry} fwd+bwd", _layer_step(MaxPool2d(k, s, p), x, None),
               _torch_step(torch.nn.MaxPool2d(k, s, p), x))
        yield (f"AvgPool2d {geometry} fwd+bwd", _layer_step(AvgPool2d(k, s, p), x, None),
               _torch_step(torch.nn.AvgPool2d(k, s, p), x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    x = np.random.default_rng(0).standard_normal(SHAPE, dtype=np.float32)
    t = torch.from_numpy(x)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"numpy {np.__version__}, numba {numba.__version__}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), poolnd {poolnd.__version__}")
    print(f"float32 input {SHAPE}, medians of {args.repeat} interleaved runs\n")
    print(f"{'case':34} {'poolnd ms':>10} {'torch ms':>10} {'speed-up':>9}")
    for name, ours, theirs in cases(x, t):
        mine, torch_ms = _interleaved_medians([ours, theirs], args.repeat)
        print(f"{name:34} {mine:10.2f} {torch_ms:10.2f} {torch_ms / mine:8.1f}x")


if __name__ == "__main__":
    main()
