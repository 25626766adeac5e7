"""Optional dependencies: one rule for importing them and for saying what is missing."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtra` naming ``pip install 'poolnd[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        top = module.partition(".")[0]
        raise MissingExtra(f"{feature} needs {top}, which is not installed: "
                           f"pip install 'poolnd[{extra}]'") from error
