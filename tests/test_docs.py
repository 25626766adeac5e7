"""Every docstring example in the package runs and prints what it shows."""

import doctest
import importlib
from pathlib import Path

import pytest

MODULES = ["poolnd", "poolnd.functional", "poolnd.nn", "poolnd.mygrad"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0


def test_readme_quick_example_runs():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.index("## Quick example")
    start = readme.index("```python", section) + len("```python")
    code = readme[start:readme.index("```", start)]
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["grad_x"].shape == namespace["x"].shape
    assert namespace["vol"].shape == (2, 4, 4, 4, 4)
