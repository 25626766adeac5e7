"""The ``poolnd`` command (also ``python -m poolnd``).

``poolnd tour`` (the default) pools the worked examples that users of MyGrad,
Lucid, the d2l book, NumPyNet and tinyml know, and prints outputs, indices
and gradients. The other subcommands each live in their own module, listed
in ``_COMMAND_MODULES``: ``poolnd bench`` (:mod:`poolnd.bench`) times poolnd
beside PyTorch, MyGrad and NumPy.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

import numpy as np


def _show(title: str, **arrays) -> None:
    print(f"\n== {title}")
    for name, value in arrays.items():
        text = np.array2string(np.asarray(value), separator=", ")
        print(f"{name}:\n{text}" if "\n" in text else f"{name}: {text}")


def tour() -> None:
    """Pool the seed documents' examples and print what comes out."""
    import poolnd
    from poolnd.nn import AvgPool2d, MaxPool2d

    x = np.array([[0.0, 10.0, 8.0], [2.0, 7.0, 3.0], [5.0, 7.0, 20.0]])
    out, idx = poolnd.max_pool(x, (2, 2), stride=1, return_indices=True)
    grad = poolnd.max_pool_backward(np.ones_like(out), idx, x.shape, (2, 2), stride=1)
    _show("MyGrad: 2x2 max pool, stride 1 (overlapping windows add up in the gradient)",
          x=x, out=out, indices=idx, grad=grad)

    x = np.array([[0.0, 10.0, 8.0], [9.0, 7.0, 3.0], [5.0, 0.0, 20.0]])
    _show("MyGrad: 1-d pooling of each row", out=poolnd.max_pool(x, (2,), stride=1))

    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    _show("d2l: nn.MaxPool2d(3, padding=1, stride=2) on arange(16)",
          out=poolnd.max_pool2d(x, 3, stride=2, padding=1))
    x3 = np.arange(9.0).reshape(3, 3)
    _show("d2l: pool2d 2x2, max and avg",
          max=poolnd.max_pool(x3, (2, 2), 1), avg=poolnd.avg_pool(x3, (2, 2), 1))

    x = np.array([[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]])
    layer = MaxPool2d(kernel_size=2, stride=1, padding=1)
    y = layer(x)
    _show("Lucid: MaxPool2d(2, stride=1, padding=1) on a 3x3 input gives 4x4 "
          "(PyTorch's formula; padding never wins)", out=y[0, 0],
          grad=layer.backward(np.ones_like(y))[0, 0])

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(1, 5, 5, 2)).round(2)
    x[0, 0, 0, 0] = np.nan
    out = poolnd.max_pool(x, (3, 3), stride=2, padding="same", axes=(1, 2), nan_policy="omit")
    _show("NumPyNet: channels-last (batch, w, h, c), 'same' padding, NaN skipped",
          channel_0=x[0, :, :, 0], out_channel_0=out[0, :, :, 0])

    x = rng.integers(0, 9, size=(1, 1, 4, 4)).astype(np.float64)
    out, idx = poolnd.max_pool2d(x, 2, return_indices=True)
    _show("tinyml-style indices: PyTorch's flat h*W + w", x=x[0, 0], out=out[0, 0],
          indices=idx[0, 0])

    avg = AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
    y = avg(np.ones((1, 1, 4, 4)))
    _show("Average with count_include_pad=False: padding is not counted",
          out=y[0, 0], grad=avg.backward(np.ones_like(y))[0, 0])


# Each subcommand lives in its own module, which adds its parser with
# ``add_parser(commands)`` and sets ``run`` (``args -> exit status``). Their
# top-level imports are light: heavy and optional libraries load inside ``run``.
_COMMAND_MODULES = ("poolnd.demo", "poolnd.bench", "poolnd.files", "poolnd.compiling")


def _tour_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("tour", help="pool the seed documents' examples and print the "
                                 "results (the default)")
    parser.set_defaults(run=lambda args: tour() or 0)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C's KeyboardInterrupt is, so that the
    same cleanup runs (``poolnd pool`` removes its partial output)."""


def _terminate(signum, frame):
    raise Terminated


@contextlib.contextmanager
def _sigterm_raises():
    if threading.current_thread() is not threading.main_thread():  # only it takes signals
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Run the ``poolnd`` command; returns the exit status.

    A user's mistake (a bad argument, a missing file, a missing optional
    dependency) is reported on one line of standard error with exit status 2,
    never as a traceback. SIGINT (Ctrl-C) and SIGTERM stop the command with one
    line and the shell's statuses for them, 130 and 143.
    """
    import importlib

    from . import __version__
    from ._optional import MissingExtra
    from .compiling import compile_notice

    parser = argparse.ArgumentParser(
        prog="poolnd", description="N-dimensional pooling for NumPy arrays (also python -m poolnd)")
    parser.add_argument("--version", action="version", version=f"poolnd {__version__}")
    commands = parser.add_subparsers(dest="command")
    _tour_parser(commands)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_parser(commands)
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["tour"])
    # a first run's wait is numba compiling: said on one line (--no-progress: nothing)
    notice = (contextlib.nullcontext() if getattr(args, "no_progress", False)
              else compile_notice(f"poolnd {args.command}"))
    try:
        with _sigterm_raises(), notice:
            return args.run(args)
    except KeyboardInterrupt as interrupt:
        name, status = ("SIGTERM", 143) if isinstance(interrupt, Terminated) else ("SIGINT", 130)
        print(f"poolnd {args.command}: interrupted by {name}", file=sys.stderr)
        return status
    except (MissingExtra, ValueError, TypeError, OSError) as error:
        message = " ".join(str(error).split())  # one line, whatever the error holds
        print(f"poolnd {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
