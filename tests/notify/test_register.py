"""The breach register: decisions with reasons, every breach kept, spreadsheet cells neutralised."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import polars as pl
import pytest
from report_breach import BREACH, EARLIER, build_breach

from matching.exports import neutralise_cell, spreadsheet_safe, write_exposures
from notify.register import customer_decision, regulator_decision

HOSTILE = ["=1+1", "+33 6", "-2", "@SUM(A1)", "\tx", "\rx", "\x00x", "\x1b[31m", "\x7fx"]
BENIGN = ["C000000001", "", "a=b", "email;iban", "é=", " =1"]


@pytest.mark.parametrize("value", HOSTILE)
def test_cells_that_start_a_formula_are_neutralised(value: str) -> None:
    assert neutralise_cell(value) == "'" + value


@pytest.mark.parametrize("value", BENIGN)
def test_other_cells_are_left_alone(value: str) -> None:
    assert neutralise_cell(value) == value


def test_frames_are_neutralised_like_cells() -> None:
    frame = pl.DataFrame({"a": HOSTILE + BENIGN, "n": list(range(len(HOSTILE + BENIGN)))})
    assert spreadsheet_safe(frame)["a"].to_list() == [neutralise_cell(v) for v in frame["a"]]
    assert spreadsheet_safe(frame)["n"].to_list() == frame["n"].to_list()


def test_exposures_csv_is_neutralised_json_is_not(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "customer_id": ['=HYPERLINK("http://x")', "C2"],
            "matched_on": ["email", "iban"],
            "categories": ["email", "iban"],
            "risk": ["low", "high"],
        }
    )
    rows = list(
        csv.reader(io.StringIO(write_exposures(frame, tmp_path / "e.csv", "csv").read_text()))
    )
    assert rows[1][0] == '\'=HYPERLINK("http://x")' and rows[2][0] == "C2"
    data = json.loads(write_exposures(frame, tmp_path / "e.json", "json").read_text())
    assert data[0]["customer_id"] == '=HYPERLINK("http://x")'


@pytest.mark.parametrize(
    ("status", "regime", "exposed", "risk", "cnil", "customers"),
    [
        ("suspected", "telecom", 50, {"high": 5}, "pending", "pending"),
        ("confirmed", "telecom", 0, {}, "no", "no"),
        ("confirmed", "telecom", 9, {"low": 9}, "yes", "no"),
        ("confirmed", "telecom", 9, {"medium": 2, "low": 7}, "yes", "yes"),
        ("confirmed", "gdpr", 9, {"low": 9}, "no", "no"),
        ("confirmed", "gdpr", 9, {"medium": 9}, "yes", "no"),
        ("confirmed", "gdpr", 9, {"high": 1, "low": 8}, "yes", "yes"),
    ],
)
def test_decisions_follow_the_figures(
    status: str, regime: str, exposed: int, risk: dict[str, int], cnil: str, customers: str
) -> None:
    regulator = regulator_decision(status, regime, exposed, risk)
    people = customer_decision(status, regime, exposed, risk)
    assert (regulator.value, people.value) == (cnil, customers)
    assert regulator.reasons and people.reasons  # never a decision without its reasons


def test_register_keeps_every_breach_with_its_decisions(
    leakwatch_env: Path, tmp_path: Path
) -> None:
    from flows import report_steps, steps
    from flows.context import open_store, runtime
    from matching.breaches import confirm_breach, describe_breach
    from synthetic import make_customers, make_leak, write_delimited

    built = build_breach(tmp_path)
    rt = runtime()
    # A third breach whose leak holds nobody of ours: confirmed, nobody to notify.
    strangers = make_leak(make_customers(50, seed=99), 200, overlap=0.0, seed=98).frame
    (tmp_path / "strangers").mkdir()
    write_delimited(strangers, tmp_path / "strangers" / "s.csv")
    steps.ingest_source(rt, str(tmp_path / "strangers"), "nobody-of-ours")
    steps.match_breach(rt, "nobody-of-ours")
    with open_store(rt.settings) as store:
        confirm_breach(store, "nobody-of-ours")
        describe_breach(
            store,
            BREACH,
            {"nature": "=cmd|' /C calc'!A0", "measures_taken": "+passwords reset", "x": 1},
        )

    result = report_steps.export_register(rt.settings, "csv", tmp_path / "register.csv")
    assert (result.breaches, result.not_notified) == (3, 2)
    rows = {r["breach_id"]: r for r in csv.DictReader(io.StringIO(result.path.read_text()))}
    assert set(rows) == {BREACH, EARLIER, "nobody-of-ours"}
    assert rows[BREACH]["notify_cnil"] == "yes" and rows[BREACH]["notify_customers"] == "yes"
    assert rows[EARLIER]["notify_cnil"] == "pending"  # never confirmed
    assert rows["nobody-of-ours"]["notify_cnil"] == "no"
    assert "no leaked record matches a customer" in rows["nobody-of-ours"]["notify_cnil_reasons"]
    assert rows[BREACH]["nature"] == "'=cmd|' /C calc'!A0"
    assert rows[BREACH]["remedial_actions"].startswith("'+passwords reset")
    for row in rows.values():
        for value in row.values():
            assert not value or value[0] not in "=+-@\t\r", value
    # Counts only: no customer identifier in the register.
    text = result.path.read_text().lower()
    for cid, email in built.customers.select("customer_id", "email").iter_rows():
        assert cid.lower() not in text and (not email or email.lower() not in text)

    # JSON keeps the structure and the raw text; refreshing again adds no revision.
    again = report_steps.export_register(rt.settings, "json", tmp_path / "register.json")
    entries = {e["breach_id"]: e for e in json.loads(again.path.read_text())}
    assert entries[BREACH]["facts"]["nature"] == "=cmd|' /C calc'!A0"
    assert entries[BREACH]["decisions"]["notify_cnil"]["reasons"]
    assert {e["revision"] for e in entries.values()} == {int(r["revision"]) for r in rows.values()}
    with open_store(rt.settings, read_only=True) as store:
        from matching.register import latest_entries

        assert len(latest_entries(store)) == 3
