"""Shared test settings.

Hypothesis profiles: "ci" (the default) is quick enough for every push;
"thorough" searches much longer. Pick one with HYPOTHESIS_PROFILE=thorough.
"""

import os

from hypothesis import settings

# Numba compiles on first use, so a fixed deadline would flag the first example.
settings.register_profile("ci", max_examples=60, deadline=None, print_blob=True)
settings.register_profile("thorough", max_examples=1000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
