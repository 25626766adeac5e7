"""Every docstring example in the package runs and prints what it shows."""

import doctest
import importlib

import pytest

MODULES = ["poolnd", "poolnd.functional", "poolnd.nn"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
