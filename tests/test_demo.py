"""``poolnd demo``: a seeded training run that pools through poolnd.mygrad."""

import re
import subprocess
import sys
import time

import pytest

pytest.importorskip("mygrad")
pytest.importorskip("sklearn")
pytest.importorskip("tqdm")

from poolnd import cli, demo  # noqa: E402


def test_training_is_reproducible_and_equal_to_training_with_mygrad_pooling():
    ours, params = demo.train("poolnd", 2, seed=3, progress=False)
    again, params_again = demo.train("poolnd", 2, seed=3, progress=False)
    theirs, _ = demo.train("mygrad", 2, seed=3, progress=False)
    assert ours.losses == again.losses and ours.accuracies == again.accuracies
    assert all((p == q).all() for p, q in zip(params, params_again))
    # bit-for-bit the same pooling, so the very same training
    assert ours.losses == theirs.losses and ours.accuracies == theirs.accuracies
    assert ours.losses[1] < ours.losses[0]
    assert ours.pooling_seconds > 0 and theirs.pooling_seconds > 0


def test_demo_command_ends_with_the_test_accuracy(capsys):
    assert cli.main(["demo", "--epochs", "3"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    accuracy = float(re.fullmatch(r"test accuracy: (0\.\d{3})", last).group(1))
    assert accuracy >= 0.9  # three epochs; the full run (12) reaches 0.98


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    run, params = demo.train("poolnd", 1, seed=0, progress=False)
    path = tmp_path / "digits.png"
    demo.plot(str(path), run, params, seed=0)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_epochs_is_a_one_line_error(capsys):
    assert cli.main(["demo", "--epochs", "0"]) == 2
    assert capsys.readouterr().err == "poolnd demo: error: --epochs must be at least 1, got 0\n"


@pytest.mark.parametrize("module", ["sklearn", "mygrad", "tqdm"])
def test_missing_dependency_is_one_line_naming_the_extra(module):
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            "from poolnd.cli import main; sys.exit(main(['demo']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "pip install 'poolnd[demo]'" in done.stderr
    assert "Traceback" not in done.stderr


def _slow_first_call(method, seconds):
    """``method``, its first call held up ``seconds`` (as numba's first compile holds it)."""
    calls = []

    def first_slow(self, *args, **kwargs):
        if not calls:
            calls.append(1)
            time.sleep(seconds)
        return method(self, *args, **kwargs)

    return first_slow


def test_compare_warms_both_sides_and_words_the_ratio_plainly(capsys, monkeypatch):
    from mygrad.nnet.layers.pooling import MaxPoolND

    from poolnd import mygrad as pm

    for operation in (pm.MaxPoolOperation, MaxPoolND):
        monkeypatch.setattr(operation, "__call__", _slow_first_call(operation.__call__, 2.0))
    assert demo.main(epochs=1, compare=True) == 0
    out = capsys.readouterr().out
    pooling = re.search(r"^pooling: poolnd (\d+\.\d) times as (fast|slow) as MyGrad's own "
                        r"max_pool \((\d+\.\d\d) s against (\d+\.\d\d) s\)$", out, re.M)
    assert pooling, out
    ratio, ours, theirs = map(float, pooling.group(1, 3, 4))
    if pooling.group(2) == "slow":  # the same checks on the inverse ratio
        ours, theirs = theirs, ours
    # the slow first calls fell in the warm-up, not in the times compared
    assert ours < 2.0 and theirs < 2.0
    # the ratio of the times shown, within their rounding (0.005 s) and its own (0.05)
    assert (theirs - 0.005) / (ours + 0.005) - 0.05 <= ratio
    assert ours <= 0.005 or ratio <= (theirs + 0.005) / (ours - 0.005) + 0.05
    assert re.search(r"^whole training: \d+\.\d times as (fast|slow) \(", out, re.M), out
    assert "x faster" not in out


def test_times_as_fast_says_slower_plainly_too():
    assert demo.times_as_fast(5.3, 1.0) == "5.3 times as fast"
    assert demo.times_as_fast(1.0, 1.0) == "1.0 times as fast"
    assert demo.times_as_fast(0.8, 1.0) == "1.2 times as slow"
    assert demo.times_as_fast(1.0, 4.0) == "4.0 times as slow"
