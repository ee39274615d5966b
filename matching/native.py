"""The native extensions (``matching/_scan.c``, ``matching/_bits.c``, ``notify/_files.c``,
``notify/_eml.c``), where this build has them."""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType

__all__ = ["bits_module", "eml_module", "files_module", "scan_module"]


@cache
def _optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def scan_module() -> ModuleType | None:
    """``matching._scan``, or None when it was not built (the Python paths decide alone)."""
    return _optional("matching._scan")


def bits_module() -> ModuleType | None:
    """``matching._bits``, or None when it was not built (numpy sets and probes the bits)."""
    return _optional("matching._bits")


def files_module() -> ModuleType | None:
    """``notify._files``, or None when it was not built (outbox batches are named from Python)."""
    return _optional("notify._files")


def eml_module() -> ModuleType | None:
    """``notify._eml``, or None when it was not built (skeletons are filled from Python)."""
    return _optional("notify._eml")
