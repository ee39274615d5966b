"""The run report: one self-contained HTML page, the DPO's first view of a breach response."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC
from functools import cache
from pathlib import Path

import jinja2
from markupsafe import Markup

from core import crash
from core.redact import redact
from notify.charts import bar_chart_svg
from notify.timeline import DeadlineRow, deadline_rows, moment, timeline_rows
from schemas.models import RunSummary, SourceSummary

__all__ = ["render_report", "write_report"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class _Report:
    breach_id: str
    generated: str
    figures: list[tuple[str, int]]
    sources: list[SourceSummary]  # as shown: names redacted, digests checked
    rows_read: int
    rows_rejected: int
    rejects: list[tuple[str, list[tuple[str, int]]]]
    column_roles: list[tuple[str, list[tuple[str, str]]]]
    exposed: list[tuple[str, list[tuple[str, int]], Markup]]
    former_exposed: int
    status: str
    regime: str
    timeline: list[tuple[str, str, str]]
    deadlines: list[DeadlineRow]
    notices: list[tuple[str, int]]
    notices_chart: Markup
    overlap_total: int
    overlap: list[tuple[str, int]]
    overlap_chart: Markup
    former: list[tuple[str, int]]
    former_chart: Markup


def _count(value: int) -> str:
    return f"{value:,}"


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("notify", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["count"] = _count
    env.filters["moment"] = moment
    return env.get_template("report.html.j2")


def _shown(value: str) -> str:
    """An attacker-named string (file, column, reason) as shown: identifiers redacted.

    A header-less leak turns its first row into column names, so names can be personal data.
    """
    return redact(value)


def _items(data: dict[str, int]) -> list[tuple[str, int]]:
    return [(_shown(k), int(v)) for k, v in data.items()]


def _chart(caption: str, items: list[tuple[str, int]]) -> Markup:
    # The chart escapes every label itself (notify.charts), so its markup is safe to inline.
    return Markup(bar_chart_svg(caption, dict(items)))  # noqa: S704


def _view(s: RunSummary) -> _Report:
    generated = s.generated_at
    if generated.tzinfo is not None:
        generated = generated.astimezone(UTC)
    by_key, by_category, by_risk = _items(s.by_key), _items(s.by_category), _items(s.by_risk)
    notices, overlap = _items(s.notices_by_state), _items(s.overlap_by_breach)
    former = _items(s.former_by_time_since_end)
    return _Report(
        breach_id=s.breach_id,
        generated=generated.strftime("%Y-%m-%d %H:%M UTC"),
        figures=[
            ("Customers in base", s.customers_total),
            ("Rows read", s.rows_read),
            ("Rows rejected", s.rows_rejected),
            ("Exposed customers", s.exposed_total),
            ("Notices drafted", s.notices_drafted),
            ("Exposed customers without e-mail", s.notices_without_email),
            ("Former subscribers exposed", s.former_exposed),
            ("Exposed before, in another breach", s.overlap_total),
        ],
        sources=[
            replace(
                src,
                display=_shown(src.display),
                sha256=src.sha256 if _SHA256.fullmatch(src.sha256) else "(not a SHA-256)",
                parser=_shown(src.parser),
            )
            for src in s.sources
        ],
        rows_read=s.rows_read,
        rows_rejected=s.rows_rejected,
        rejects=[
            ("Rows rejected, by reason", _items(s.rejects_by_reason)),
            ("Values rejected (row kept), by reason", _items(s.values_rejected_by_reason)),
        ],
        column_roles=[
            (_shown(source), [(_shown(col), _shown(role)) for col, role in roles.items()])
            for source, roles in s.column_roles.items()
        ],
        exposed=[
            (caption, items, _chart(caption, items))
            for caption, items in (
                ("By matched key", by_key),
                ("By data category", by_category),
                ("By risk", by_risk),
            )
        ],
        former_exposed=s.former_exposed,
        status=_shown(s.status),
        regime=_shown(s.regime),
        timeline=[(r.label, moment(r.at), r.detail) for r in timeline_rows(s.times)],
        deadlines=deadline_rows(s.regime, s.times, s.generated_at),
        notices=notices,
        notices_chart=_chart("Notices by channel and state", notices),
        overlap_total=s.overlap_total,
        overlap=overlap,
        overlap_chart=_chart("Exposed customers also in another breach", overlap),
        former=former,
        former_chart=_chart("Former subscribers, time since contract end", former),
    )


def render_report(summary: RunSummary) -> str:
    """The report as one HTML page: inline CSS and SVG, no script, no external asset."""
    return _template().render(r=_view(summary))


def write_report(summary: RunSummary, path: Path) -> Path:
    """Write the report to ``path`` atomically (temporary file, then rename) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(render_report(summary))
        crash.point("report-mid-write")  # written, not yet renamed into place
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
