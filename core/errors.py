"""The error tree: every failure leakwatch raises on purpose.

    LeakwatchError
    ├── TransientError        may succeed if tried again (network, 429, 5xx, a busy store)
    │   └── StoreBusyError    another process holds the store's write lock
    └── TerminalError         trying again will not help; stop this item, go on with the rest
        ├── InputError        a file, row or value we cannot accept (names file, row, column, reason)
        └── ConfigError       settings, keys or arguments are wrong

Messages name *where* and *why*, never a personal value: callers pass the location
(file, row, column) and a reason from a closed vocabulary, not the offending text.
"""

from __future__ import annotations

from core.redact import redact


class LeakwatchError(Exception):
    """Base of every error leakwatch raises on purpose."""


class TransientError(LeakwatchError):
    """A failure that may go away if the same operation is tried again."""


class StoreBusyError(TransientError):
    """Another leakwatch process holds the store's write lock."""


class TerminalError(LeakwatchError):
    """A failure that retrying will not fix."""


class ConfigError(TerminalError):
    """Settings, keys or command-line arguments are wrong."""


class InputError(TerminalError):
    """Input we refuse: the message says which file, row and column, and why."""

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.row = row
        self.column = column
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            # Column names come from the leaked file's header: redacted in case a data row
            # was taken for one.
            where.append(f"column {redact(self.column)!r}")
        return f"{': '.join(where)}: {self.reason}" if where else self.reason
