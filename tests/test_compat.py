"""poolnd.compat: every front end's docstring examples run and print what they show.

The front ends themselves are tested in test_compat_d2l.py, test_compat_numpynet.py
and test_compat_tinyml.py.
"""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["poolnd.compat", "poolnd.compat.d2l", "poolnd.compat.tinyml",
                                  "poolnd.compat.numpynet"])
def test_compat_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
