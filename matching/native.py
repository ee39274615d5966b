"""The native scanner extension (``matching/_scan.c``), where this build has it."""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType

__all__ = ["scan_module"]


@cache
def scan_module() -> ModuleType | None:
    """``matching._scan``, or None when it was not built (the Python paths decide alone)."""
    try:
        return importlib.import_module("matching._scan")
    except ImportError:
        return None
