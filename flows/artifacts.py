"""Prefect artifacts of a flow run: its summary (markdown and table) and its progress. Counts only."""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

__all__ = ["RunProgress", "publish_summary"]

Figure = int | str


def publish_summary(key: str, title: str, figures: Mapping[str, Figure]) -> None:
    """A markdown and a table artifact under ``key`` (lower case, digits and dashes).

    ``figures`` are counts and non-personal names (breach ids, file paths chosen by the officer).
    """
    lines = [f"# {title}", "", "| figure | value |", "|---|---:|"]
    lines += [f"| {name} | {value} |" for name, value in figures.items()]
    create_markdown_artifact(
        key=f"{key}-summary",
        markdown="\n".join(lines) + "\n",
        description="Counts only; no personal data.",
    )
    create_table_artifact(
        key=f"{key}-counts",
        table=[{"figure": k, "value": v} for k, v in figures.items()],
        description="Counts only; no personal data.",
    )


class RunProgress:
    """A progress artifact for this flow run, moved forward one step at a time (0-100 %)."""

    def __init__(self, key: str, steps: int, description: str) -> None:
        self._steps = max(steps, 1)
        self._done = 0
        created = create_progress_artifact(progress=0.0, key=key, description=description)
        self._id: UUID = created if isinstance(created, UUID) else UUID(str(created))

    def step(self, n: int = 1) -> None:
        self._done = min(self._done + n, self._steps)
        update_progress_artifact(self._id, progress=100.0 * self._done / self._steps)

    def finish(self) -> None:
        self._done = self._steps
        update_progress_artifact(self._id, progress=100.0)
