"""``python -m poolnd``: the same as the ``poolnd`` command."""

import sys

from .cli import main

sys.exit(main())
