"""``poolnd demo``: train a small convolutional network on scikit-learn's 8x8 digits.

Convolutions, ReLU and the loss come from MyGrad; max pooling comes from
:mod:`poolnd.mygrad`. The digits ship with scikit-learn (no download). The run
is seeded, so the same command prints the same figures; ``--compare`` trains
the same network again with MyGrad's own ``max_pool`` and compares the time
spent pooling (forward and backward). Needs ``pip install 'poolnd[demo]'``;
``--plot`` also needs matplotlib (``poolnd[plot]``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._optional import require

POOL = (2, 2)
CHANNELS = (16, 32)
BATCH = 32


class Stopwatch:
    """Adds up the seconds spent inside ``with stopwatch:`` blocks."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._started


def timed(operation: type, stopwatch: Stopwatch) -> type:
    """A MyGrad operation class whose forward and backward run inside ``stopwatch``."""

    class Timed(operation):
        def __call__(self, *args, **kwargs):
            with stopwatch:
                return super().__call__(*args, **kwargs)

        def backward_var(self, grad, index, **kwargs):
            with stopwatch:
                return super().backward_var(grad, index, **kwargs)

    return Timed


def poolnd_pooling(stopwatch: Stopwatch) -> Callable[[Any], Any]:
    """2x2 max pooling by :func:`poolnd.mygrad.max_pool`, timed."""
    from poolnd import mygrad as pm
    from poolnd.nn import MaxPoolNd

    operation = timed(pm.MaxPoolOperation, stopwatch)
    return lambda x: pm.pooled(x, MaxPoolNd(POOL, POOL), operation=operation)


def mygrad_pooling(stopwatch: Stopwatch) -> Callable[[Any], Any]:
    """2x2 max pooling by MyGrad's own ``max_pool``, timed."""
    from mygrad.nnet.layers.pooling import MaxPoolND
    from mygrad.tensor_base import Tensor

    operation = timed(MaxPoolND, stopwatch)
    return lambda x: Tensor._op(operation, x, op_args=(POOL, POOL))


def timed_pooling(pooling: str, stopwatch: Stopwatch) -> Callable[[Any], Any]:
    """The max pooling of ``pooling`` ("poolnd" or "mygrad"), timed by ``stopwatch``."""
    return (poolnd_pooling if pooling == "poolnd" else mygrad_pooling)(stopwatch)


def warm_up(pooling: str) -> None:
    """One forward and backward of ``pooling`` at both of the network's shapes, untimed:
    poolnd's first call compiles its kernels (or loads them from numba's cache), and
    neither side's first-call costs are pooling."""
    import mygrad as mg

    pool = timed_pooling(pooling, Stopwatch())
    for channels, side in zip(CHANNELS, (8, 4)):
        x = mg.Tensor(np.zeros((BATCH, channels, side, side), np.float32))
        pool(x).sum().backward()


def times_as_fast(theirs: float, ours: float) -> str:
    """Ours against theirs in words: ``"5.3 times as fast"``, or when ours took longer,
    ``"1.3 times as slow"`` (never "0.8 times as fast")."""
    if ours > theirs:
        return f"{ours / theirs:.1f} times as slow"
    return f"{theirs / ours:.1f} times as fast"


@dataclass
class Run:
    """What one training run measured."""

    pooling: str
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    accuracies: list[float] = field(default_factory=list)  # test accuracy per epoch
    pooling_seconds: float = 0.0
    seconds: float = 0.0


def load_digits(seed: int) -> tuple[np.ndarray, ...]:
    """The 1,797 digits as float32 ``(N, 1, 8, 8)`` in [0, 1], split 75/25, stratified."""
    datasets = require("sklearn.datasets", "demo", "poolnd demo")
    selection = require("sklearn.model_selection", "demo", "poolnd demo")
    digits = datasets.load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    return tuple(selection.train_test_split(images, digits.target, test_size=0.25,
                                            random_state=seed, stratify=digits.target))


def initial_parameters(seed: int) -> list[np.ndarray]:
    """He-normal weights and zero biases for conv(1->16), conv(16->32), dense(128->10)."""
    rng = np.random.default_rng(seed)

    def he(*shape: int) -> np.ndarray:
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    c1, c2 = CHANNELS
    return [he(c1, 1, 3, 3), np.zeros(c1, np.float32), he(c2, c1, 3, 3),
            np.zeros(c2, np.float32), he(10, c2 * 2 * 2).T.copy(), np.zeros(10, np.float32)]


def network(x: Any, params: list[Any], pool: Callable[[Any], Any], keep: dict | None = None):
    """conv 3x3 -> ReLU -> 2x2 max pool, twice, then a dense layer: the logits."""
    from mygrad.nnet.activations import relu
    from mygrad.nnet.layers import conv_nd

    w1, b1, w2, b2, w3, b3 = params
    features = relu(conv_nd(x, w1, stride=1, padding=1) + b1[:, None, None])
    pooled = pool(features)  # (N, 16, 4, 4)
    if keep is not None:
        keep.update(features=features.data, pooled=pooled.data)
    hidden = pool(relu(conv_nd(pooled, w2, stride=1, padding=1) + b2[:, None, None]))
    return hidden.reshape(len(hidden), -1) @ w3 + b3


def accuracy(images: np.ndarray, labels: np.ndarray, params: list[Any],
             pool: Callable[[Any], Any]) -> float:
    import mygrad as mg

    with mg.no_autodiff:
        logits = network(images, params, pool)
    return float(np.mean(np.argmax(logits.data, axis=1) == labels))


def train(pooling: str, epochs: int, seed: int, progress: bool = True,
          learning_rate: float = 0.05, momentum: float = 0.9) -> tuple[Run, list[np.ndarray]]:
    """Train with SGD and momentum; returns the run's figures and the final parameters."""
    import mygrad as mg
    from mygrad.nnet.losses import softmax_crossentropy

    tqdm = require("tqdm", "demo", "poolnd demo").tqdm
    x_train, x_test, y_train, y_test = load_digits(seed)
    stopwatch = Stopwatch()
    pool = timed_pooling(pooling, stopwatch)
    params = initial_parameters(seed)
    velocity = [np.zeros_like(p) for p in params]
    order = np.random.default_rng(seed)
    run = Run(pooling)
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        batches = np.array_split(order.permutation(len(x_train)), len(x_train) // BATCH)
        bar = tqdm(batches, desc=f"epoch {epoch:2d}/{epochs} ({pooling} pooling)",
                   disable=not progress, leave=True, ncols=88)
        total = 0.0
        for batch in bar:
            tensors = [mg.Tensor(p) for p in params]
            loss = softmax_crossentropy(network(x_train[batch], tensors, pool), y_train[batch])
            loss.backward()
            for p, v, t in zip(params, velocity, tensors):
                v *= momentum
                v -= learning_rate * t.grad
                p += v
            total += loss.item() * len(batch)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        run.losses.append(total / len(x_train))
        run.accuracies.append(accuracy(x_test, y_test, params, pool))
        bar.set_postfix(loss=f"{run.losses[-1]:.3f}", test_acc=f"{run.accuracies[-1]:.3f}")
        bar.close()
    run.seconds = time.perf_counter() - started
    run.pooling_seconds = stopwatch.seconds
    return run, params


def plot(path: str, run: Run, params: list[np.ndarray], seed: int) -> None:
    """Learning curves, and one test digit with its feature maps before and after pooling."""
    matplotlib = require("matplotlib", "plot", "poolnd demo --plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, x_test, _, y_test = load_digits(seed)
    kept: dict[str, np.ndarray] = {}
    network(x_test[:1], params, poolnd_pooling(Stopwatch()), keep=kept)
    figure = plt.figure(figsize=(11, 6.5), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=(1, 1.3))
    curves, digit = top.subplots(1, 2, width_ratios=(3, 1))
    epochs = range(1, len(run.losses) + 1)
    curves.plot(epochs, run.losses, "o-", label="training loss")
    curves.plot(epochs, run.accuracies, "s-", label="test accuracy")
    curves.set_xlabel("epoch")
    curves.set_title("Learning curves")
    curves.legend()
    curves.grid(alpha=0.3)
    digit.imshow(x_test[0, 0], cmap="gray_r")
    digit.set_title(f"a test digit ({y_test[0]})")
    digit.axis("off")
    maps = bottom.subplots(2, 8)
    for i, ax in enumerate(maps.T.ravel()):
        name = "features" if i % 2 == 0 else "pooled"
        ax.imshow(kept[name][0, i // 2], cmap="viridis")
        ax.set_title(f"{'ReLU' if name == 'features' else 'pooled'} {i // 2}", fontsize=8)
        ax.axis("off")
    bottom.suptitle("First 8 feature maps after conv 1 + ReLU (8x8) and after "
                    "poolnd's 2x2 max pooling (4x4)")
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(epochs: int = 12, seed: int = 0, compare: bool = False,
         plot_path: str | None = None) -> int:
    """``poolnd demo``: train, print the test accuracy (and the comparison)."""
    require("mygrad", "demo", "poolnd demo")
    require("sklearn", "demo", "poolnd demo")
    require("tqdm", "demo", "poolnd demo")
    if plot_path is not None:
        require("matplotlib", "plot", "poolnd demo --plot")
    if epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}")
    # first calls (numba compiling, or loading its cache) are not timed as pooling
    warm_up("poolnd")
    if compare:
        warm_up("mygrad")
    ours, params = train("poolnd", epochs, seed)
    print(f"trained in {ours.seconds:.1f} s, {ours.pooling_seconds:.2f} s of it in poolnd's "
          "max pooling (forward and backward)")
    if compare:
        theirs, _ = train("mygrad", epochs, seed)
        same = theirs.losses == ours.losses and theirs.accuracies == ours.accuracies
        print(f"pooling: poolnd {times_as_fast(theirs.pooling_seconds, ours.pooling_seconds)} "
              f"as MyGrad's own max_pool ({ours.pooling_seconds:.2f} s against "
              f"{theirs.pooling_seconds:.2f} s)")
        print(f"whole training: {times_as_fast(theirs.seconds, ours.seconds)} "
              f"({ours.seconds:.1f} s against {theirs.seconds:.1f} s); identical losses and "
              f"accuracies: {'yes' if same else 'no'}")
    if plot_path is not None:
        plot(plot_path, ours, params, seed)
        print(f"learning curves and feature maps written to {plot_path}")
    print(f"test accuracy: {ours.accuracies[-1]:.3f}")
    return 0


def add_parser(commands: Any) -> None:
    """Add ``poolnd demo`` to the command line (see :mod:`poolnd.cli`)."""
    parser = commands.add_parser(
        "demo", help="train a small CNN on scikit-learn's digits, pooling by poolnd.mygrad")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the split, the weights "
                        "and the batches (default 0)")
    parser.add_argument("--compare", action="store_true",
                        help="also train with MyGrad's own max_pool and compare pooling times")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="save learning curves and pooled feature maps (needs matplotlib)")
    parser.set_defaults(run=lambda args: main(args.epochs, args.seed, args.compare, args.plot))
