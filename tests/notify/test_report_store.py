"""Every figure of a real breach's report equals the store's own counts, and no identifier leaks."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import duckdb
import pytest
from report_breach import BREACH, EARLIER, BuiltBreach, build_breach
from report_page import ReportPage


@pytest.fixture
def built(leakwatch_env: Path, tmp_path: Path) -> BuiltBreach:
    return build_breach(tmp_path)


def _q(con: duckdb.DuckDBPyConnection, sql: str, *params: object) -> list[tuple[object, ...]]:
    return con.execute(sql, list(params)).fetchall()


def test_every_figure_matches_the_store(built: BuiltBreach, tmp_path: Path) -> None:
    page = ReportPage(built.report.read_text(encoding="utf-8"))
    con = duckdb.connect(str(built.store), read_only=True)
    try:
        one = lambda sql: _q(con, sql, BREACH)[0][0]  # noqa: E731
        # Headline figures.
        expected = {
            "Customers in base": _q(con, "SELECT count(*) FROM customers")[0][0],
            "Rows read": one("SELECT sum(rows_read) FROM artifacts WHERE breach_id = ?"),
            "Rows rejected": one("SELECT sum(rows_rejected) FROM artifacts WHERE breach_id = ?"),
            "Exposed customers": one("SELECT count(*) FROM exposures WHERE breach_id = ?"),
            "Notices drafted": one(
                "SELECT count(*) FROM notices WHERE breach_id = ? AND state = 'drafted'"
            ),
            "Exposed customers without e-mail": one(
                "SELECT count(*) FROM exposures JOIN customers USING (customer_id) "
                "WHERE breach_id = ? AND email IS NULL"
            ),
            "Former subscribers exposed": one(
                "SELECT count(*) FROM exposures JOIN customers USING (customer_id) "
                "WHERE breach_id = ? AND status = 'former'"
            ),
            "Exposed before, in another breach": one(
                "SELECT count(DISTINCT customer_id) FROM exposures WHERE breach_id = ? "
                "AND customer_id IN (SELECT customer_id FROM exposures WHERE breach_id <> ?)".replace(
                    "<> ?", f"<> '{BREACH}'"
                )
            ),
        }
        shown = {k: int(v.replace(",", "")) for k, v in page.figures.items()}
        assert shown == expected
        assert expected["Exposed customers"] > 100 and expected["Former subscribers exposed"] > 0
        assert expected["Exposed before, in another breach"] > 0

        # Sources: every file's SHA-256 computed here, with its rows read and rejected.
        sources = page.sections["sources"][0][1:-1]
        by_hash = {row[1]: row for row in sources}
        for path in sorted((tmp_path / "leak").iterdir()):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            read, rejected = _q(
                con, "SELECT rows_read, rows_rejected FROM artifacts WHERE sha256 = ?", digest
            )[0]
            row = by_hash[digest]
            assert path.name in row[0]
            assert (int(row[4].replace(",", "")), int(row[5].replace(",", ""))) == (read, rejected)
        assert len(sources) == 3

        # Rejects by reason: records, then values.
        for table, whole in ((0, True), (1, False)):
            rows = _q(
                con,
                "SELECT reason, count(*) FROM rejects r JOIN artifacts a USING (artifact_no) "
                'WHERE a.breach_id = ? AND (r."column" IS NULL) = ? GROUP BY reason',
                BREACH,
                whole,
            )
            if rows:
                assert page.counts("rejects", table) == {r: n for r, n in rows}
        exposures = _q(
            con, "SELECT matched_on, categories, risk FROM exposures WHERE breach_id = ?", BREACH
        )
        # Exposed by key, by category, by risk: counted here in Python from the raw rows.
        by_key: dict[str, int] = {}
        by_cat: dict[str, int] = {}
        by_risk = {"high": 0, "medium": 0, "low": 0}
        for matched_on, categories, risk in exposures:
            for k in str(matched_on).split(";"):
                by_key[k] = by_key.get(k, 0) + 1
            for c in filter(None, str(categories).split(";")):
                by_cat[c] = by_cat.get(c, 0) + 1
            by_risk[str(risk)] += 1
        assert page.counts("exposed", 0) == by_key
        assert page.counts("exposed", 1) == by_cat
        assert page.counts("exposed", 2) == by_risk
        assert page.svgs["exposed"] == 3

        # Notices by channel and state.
        states = _q(
            con,
            "SELECT channel || '/' || state, count(*) FROM notices WHERE breach_id = ? "
            "GROUP BY ALL",
            BREACH,
        )
        assert page.counts("notices") == dict(states) and page.svgs["notices"] == 1

        # Overlap with the earlier breach: an INTERSECT of the two breaches' customers.
        both = _q(
            con,
            "SELECT count(*) FROM (SELECT customer_id FROM exposures WHERE breach_id = ? "
            "INTERSECT SELECT customer_id FROM exposures WHERE breach_id = ?)",
            BREACH,
            EARLIER,
        )[0][0]
        assert page.counts("overlap") == {EARLIER: both} and page.svgs["overlap"] == 1
        exposed_ids = {
            r[0] for r in _q(con, "SELECT customer_id FROM exposures WHERE breach_id = ?", BREACH)
        }
    finally:
        con.close()

    # Former subscribers by time since contract end, from the synthetic file itself.
    aware = date(2026, 3, 2)
    buckets = dict.fromkeys(
        [
            "end date unknown",
            "contract ended after awareness",
            "under 1 year",
            "1 to 3 years",
            "3 to 5 years",
            "5 years or more",
        ],
        0,
    )
    for row in built.customers.iter_rows(named=True):
        if row["customer_id"] not in exposed_ids or row["status"] != "former":
            continue
        if not row["contract_end"]:
            buckets["end date unknown"] += 1
            continue
        days = (aware - date.fromisoformat(row["contract_end"])).days
        key = (
            "contract ended after awareness"
            if days < 0
            else "under 1 year"
            if days < 365
            else "1 to 3 years"
            if days < 3 * 365
            else "3 to 5 years"
            if days < 5 * 365
            else "5 years or more"
        )
        buckets[key] += 1
    assert page.counts("former") == buckets and page.svgs["former"] == 1

    # Timeline: awareness as recorded, and each deadline with its state.
    timeline = {row[0]: row[1] for row in page.sections["timeline"][0][1:]}
    assert timeline["Awareness (deadlines start)"] == "2026-03-02 08:30 UTC"
    deadlines = page.sections["timeline"][1][1:]
    assert [row[1] for row in deadlines[:2]] == ["2026-03-03 08:30 UTC", "2026-03-06 08:30 UTC"]
    assert [row[3] for row in deadlines[:2]] == ["missed", "missed"]  # no CNIL notice recorded
    assert deadlines[2][3] == "pending"  # customers: drafted, none sent yet


def test_report_holds_no_customer_identifier(built: BuiltBreach) -> None:
    page = built.report.read_text(encoding="utf-8")
    low = page.lower()
    checked = 0
    for row in built.customers.iter_rows(named=True):
        for column in ("customer_id", "email", "phone", "iban"):
            value = row[column]
            if value:
                assert str(value).lower() not in low, f"a customer's {column} is in the report"
                checked += 1
        if row["phone"]:
            assert "+33" + row["phone"][1:] not in page
    assert checked > 4_000
