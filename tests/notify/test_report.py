"""The run report shows every count, escapes every hostile name, and loads nothing external."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notify.charts import bar_chart_svg
from notify.report import render_report, write_report
from schemas.models import RunSummary, SourceSummary

HOSTILE = '<script>alert("x")</script>dump.csv'


def make_summary() -> RunSummary:
    # Every figure distinct, so each one can be found on its own.
    return RunSummary(
        breach_id="B-2026-01",
        generated_at=datetime(2026, 1, 15, 8, 5, tzinfo=UTC),
        customers_total=1_234_567,
        sources=[
            SourceSummary(HOSTILE, "ab" * 32, 987_654, "csv", 40_001, 17),
            SourceSummary("archive.7z!clients.json", "cd" * 32, 55_555, "json", 20_002, 3),
            SourceSummary("bad.bin", "not-a-hash<b>", 12, "sniff (refused)", 0, 0),
        ],
        rows_read=60_003,
        rows_rejected=20,
        rejects_by_reason={"too_many_fields": 11, "<b>bad</b> encoding": 9},
        values_rejected_by_reason={"iban_checksum": 313, "phone_invalid": 414},
        exposed_total=8_642,
        by_key={"email": 5_001, "iban": 2_002, "phone": 3_003},
        by_category={"email": 5_101, "name": 4_404, "iban": 2_202},
        by_risk={"high": 2_121, "medium": 3_232, "low": 3_289},
        former_exposed=77,
        notices_drafted=7_531,
        notices_without_email=1_111,
        column_roles={
            HOSTILE: {"IBAN": "iban (header)", "col_3": "phone (content)"},
            # A header-less file: its first row became the column names.
            "noheader.csv": {
                "jean.dupont@example.org": "email (content)",
                "0612345678": "phone (content)",
            },
        },
    )


def figures(summary: RunSummary) -> list[int]:
    numbers = [
        summary.customers_total,
        summary.rows_read,
        summary.rows_rejected,
        summary.exposed_total,
        summary.notices_drafted,
        summary.notices_without_email,
        summary.former_exposed,
        *summary.rejects_by_reason.values(),
        *summary.values_rejected_by_reason.values(),
        *summary.by_key.values(),
        *summary.by_category.values(),
        *summary.by_risk.values(),
    ]
    for source in summary.sources:
        numbers += [source.size, source.rows_read, source.rows_rejected]
    return numbers


def test_report_shows_every_figure() -> None:
    summary = make_summary()
    page = render_report(summary)
    for n in figures(summary):
        assert f">{n:,}<" in page, n
    assert "B-2026-01" in page and "2026-01-15 08:05 UTC" in page
    for source in summary.sources[:2]:
        assert source.sha256 in page
    for name in ("email", "iban", "phone", "name", "high", "medium", "low", "too_many_fields"):
        assert name in page
    assert "archive.7z!clients.json" in page
    assert "iban (header)" in page and "phone (content)" in page
    assert "Former subscribers exposed" in page and "should no longer have been kept" in page


def test_report_is_self_contained_and_escaped() -> None:
    page = render_report(make_summary())
    low = page.lower()
    assert "http:" not in low and "https:" not in low and "//" not in re.sub(r"<!--.*?-->", "", low)
    assert (
        "<script" not in low and "src=" not in low and "<link" not in low and "@import" not in low
    )
    assert "<style>" in page and page.count("<svg") == 6
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;dump.csv" in page
    assert "&lt;b&gt;bad&lt;/b&gt; encoding" in page
    assert "not-a-hash" not in page


def test_report_redacts_identifiers_in_names() -> None:
    page = render_report(make_summary())
    assert "jean.dupont@example.org" not in page and "0612345678" not in page
    assert "[email]" in page and "[number]" in page


def test_report_with_nothing_found() -> None:
    empty = RunSummary(
        breach_id="B0",
        generated_at=datetime(2026, 1, 1, tzinfo=UTC),
        customers_total=10,
        sources=[],
        rows_read=0,
        rows_rejected=0,
        rejects_by_reason={},
        values_rejected_by_reason={},
        exposed_total=0,
        by_key={},
        by_category={},
        by_risk={"high": 0, "medium": 0, "low": 0},
        former_exposed=0,
        notices_drafted=0,
        notices_without_email=0,
    )
    page = render_report(empty)
    assert "No source." in page and "No former subscriber is exposed" in page


def test_write_report_is_atomic(tmp_path: Path) -> None:
    path = write_report(make_summary(), tmp_path / "out" / "report.html")
    assert path.read_text(encoding="utf-8") == render_report(make_summary())
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


@pytest.mark.parametrize(
    "data",
    [{}, {"a": 0}, {"<x>&\"'": 3, "b" * 80: 10, "c": 0}, {"email": 5_001, "iban": 2_002}],
)
def test_bar_chart_is_well_formed_and_escaped(data: dict[str, int]) -> None:
    svg = bar_chart_svg('Exposed <by> "key"', data)
    root = ET.fromstring(svg)  # well-formed XML: every label escaped
    assert root.tag == "svg"
    assert "<x>" not in svg and "<by>" not in svg
    assert len(root.findall("rect")) == len(data)
    widths = [int(r.get("width", "0")) for r in root.findall("rect")]
    for (_, value), width in zip(data.items(), widths, strict=True):
        assert (width > 0) == (value > 0)
    for value in data.values():
        assert f">{value:,}<" in svg
