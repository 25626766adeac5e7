"""Huge arrays: more than 2**31 elements give correct values and int64 indices,
in no more memory than the input, the output and the indices.

One pooled axis of ``2**31 + 320`` uint8 elements (2 GiB): flat indices past
2**31 must come out right. Each case runs in a fresh interpreter, so that its
peak resident memory is its own; the parent checks the values against NumPy
on slices (cheap) and the peak against what the call must hold. Marked
``slow`` and run only with ``POOLND_SLOW=1`` (about 3 GiB of memory; some
minutes on two cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("POOLND_SLOW") != "1",
                       reason="about 3 GiB and minutes: run with POOLND_SLOW=1"),
]

N = 2**31 + 320  # elements on the one pooled axis
K = 64  # window and stride: N // K outputs
GIB = 2**30

SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import numpy as np, poolnd

    N, K, case = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    poolnd.max_pool1d(np.zeros((1, 200), np.uint8), K)  # compile first, on small data
    poolnd.max_pool1d(np.zeros((1, 200), np.uint8), K, return_indices=True)
    poolnd.avg_pool1d(np.zeros((1, 200), np.uint8), K)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    x = np.zeros((1, N), np.uint8)
    x[0, ::97] = 1
    marks = {1000: 7, 2**31 - 1: 9, 2**31 + 5: 200, N - 1: 255, N - K: 255}
    for i, v in marks.items():
        x[0, i] = v
    if case == "values":
        out, idx = poolnd.max_pool1d(x, K), None
    elif case == "indices":
        out, idx = poolnd.max_pool1d(x, K, return_indices=True)
    else:
        out, idx = poolnd.avg_pool1d(x, K), None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    w = out.shape[-1]
    blocks = x[0, :w * K].reshape(w, K)
    head, tail = slice(0, 2000), slice(2**31 // K - 1000, w)  # around 2**31 and the end
    if case == "avg":
        want = lambda s: blocks[s].mean(axis=1)
    else:
        want = lambda s: blocks[s].max(axis=1)
    result = {
        "shape": out.shape, "dtype": str(out.dtype),
        "head_ok": bool(np.array_equal(out[0, head], want(head))),
        "tail_ok": bool(np.array_equal(out[0, tail], want(tail))),
        "input": x.nbytes, "output": out.nbytes, "before": before, "peak": peak,
    }
    if idx is not None:
        # where the first maximum of each window sits, from NumPy
        want_idx = np.argmax(blocks[tail], axis=1) + np.arange(w)[tail] * K
        result.update(index_dtype=str(idx.dtype), indices=idx.nbytes,
                      tail_index_ok=bool(np.array_equal(idx[0, tail], want_idx)),
                      last_index=int(idx[0, -1]), index_past_2_31=int(idx[0, (2**31 + 5) // K]))
    print(json.dumps(result))
""")


def _run(case):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(N), str(K), case],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 and "MemoryError" in proc.stderr:
        pytest.skip(f"not enough memory for a {N / GIB:.1f} GiB input here")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_memory(result, state=0):
    """The peak over the baseline holds the input, the output, what must be kept, and
    at most 5% of the input (or 64 MiB) more: no copy of the input, no int64 scratch
    per element."""
    held = result["input"] + result["output"] + state
    grown = result["peak"] - result["before"]
    assert grown <= held + max(result["input"] // 20, 64 * 2**20), (grown / GIB, held / GIB)


def test_max_pool_of_more_than_2_31_elements_gives_right_values():
    result = _run("values")
    assert result["shape"] == [1, N // K] and result["dtype"] == "uint8"
    assert result["head_ok"] and result["tail_ok"]
    _assert_memory(result)


def test_max_pool_indices_past_2_31_are_int64_and_right():
    result = _run("indices")
    assert result["index_dtype"] == "int64"
    assert result["head_ok"] and result["tail_ok"] and result["tail_index_ok"]
    assert result["last_index"] == N - K  # 255 twice in the last window: the first wins
    assert result["index_past_2_31"] == 2**31 + 5  # 200 is that window's maximum
    # the state: the int64 indices, and the row kernel's int64 scratch codes for the
    # output row it works on (here one row holds every output), measured at two per output
    _assert_memory(result, state=result["indices"] + 2 * 8 * (N // K))


def test_avg_pool_of_more_than_2_31_elements_gives_right_values():
    result = _run("avg")
    assert result["dtype"] == "float64"
    assert result["head_ok"] and result["tail_ok"]
    # integers are read in place; the state is what the row kernel keeps per output of the
    # row it works on (here one row holds every output): the float64 divisors of the row's
    # windows, their per-output copy, and the int32 sums
    _assert_memory(result, state=(8 + 8 + 4) * (N // K))
