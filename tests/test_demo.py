"""``poolnd demo``: a seeded training run that pools through poolnd.mygrad."""

import re
import subprocess
import sys

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
