"""Settings, the error tree and redaction shared by every stage."""

from __future__ import annotations

from core.errors import (
    ConfigError,
    InputError,
    LeakwatchError,
    StoreBusyError,
    TerminalError,
    TransientError,
)
from core.redact import redact
from core.settings import Settings

__all__ = [
    "ConfigError",
    "InputError",
    "LeakwatchError",
    "Settings",
    "StoreBusyError",
    "TerminalError",
    "TransientError",
    "redact",
]
