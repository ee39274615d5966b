"""Every SQL statement leakwatch runs, as named constants and pure builders.

Values are always bound parameters or registered frames; table and column names are
constants of this module. Nothing here executes anything: ``matching.store`` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

__all__ = ["MIGRATIONS", "Statement"]

_END_OF_STATEMENT = re.compile(r";[ \t]*\n")
_PARAMETER = re.compile(r"\$([A-Za-z_]\w*)")


@dataclass(frozen=True)
class Statement:
    """A named SQL statement, or several run in order; the name is what errors show.

    Several statements are separated by a ``;`` at the end of a line. DuckDB binds
    parameters only in the last statement of a script, so each part runs on its own with
    the parameters it names.
    """

    name: str
    text: str

    def parts(self) -> list[tuple[str, frozenset[str]]]:
        """Each statement with the names of the parameters it uses."""
        pieces = [p.strip() for p in _END_OF_STATEMENT.split(self.text + "\n")]
        return [(p, frozenset(_PARAMETER.findall(p))) for p in pieces if p]


def _load_migrations() -> tuple[str, ...]:
    """The schema scripts in ``migrations/``, in the order of their number prefix."""
    folder = resources.files("matching") / "migrations"
    scripts = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    numbers = [int(name.split("_", 1)[0]) for name, _ in scripts]
    if numbers != list(range(1, len(scripts) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps: {numbers}")
    return tuple(text for _, text in scripts)


# Append only: each file is one schema version. Never edit a released migration.
MIGRATIONS: tuple[str, ...] = _load_migrations()
