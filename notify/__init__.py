"""Deadlines, dossiers, notices (planning, rendering, sending), the ledger's use, reports, PGP."""

from __future__ import annotations

from notify.charts import bar_chart_svg
from notify.completeness import (
    CHECKS,
    ELEMENTS,
    IncompleteNoticeError,
    check_complete,
    missing_elements,
)
from notify.outbox import UnsafeHeaderError, write_eml
from notify.render import NoticeRenderer, RenderedNotice
from notify.report import render_report, write_report

__all__ = [
    "CHECKS",
    "ELEMENTS",
    "IncompleteNoticeError",
    "NoticeRenderer",
    "RenderedNotice",
    "UnsafeHeaderError",
    "bar_chart_svg",
    "check_complete",
    "missing_elements",
    "render_report",
    "write_eml",
    "write_report",
]
