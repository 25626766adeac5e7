"""poolnd beside PyTorch, MyGrad and NumPy: the same as ``poolnd bench``.

The cases and the measuring live in ``poolnd.bench``; this script only passes
its arguments on, e.g. ``python benchmarks/bench_core.py --quick``.
"""

import sys

from poolnd.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
