"""The CNIL dossier of a generated breach: every field, the store's own figures, nothing personal."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import jsonschema
import polars as pl
import pytest

from core.errors import ConfigError, InputError
from core.settings import Settings
from flows import breach_steps, steps
from flows.context import Runtime, load_pepper, open_store
from matching.breaches import BreachNotConfirmedError, require_confirmed
from notify.deadlines import LateReasonRequiredError
from notify.dossier import DossierInvalidError, parse_description, validate_dossier, write_dossier
from schemas.dossier import DOSSIER_SCHEMA, load_schema
from schemas.vocab import CATEGORY_BITS, Category
from synthetic import make_customers, make_leak, write_delimited

BREACH = "2026-03-test"

DESCRIPTION = """
nature: "Extraction d'une partie de la base clients depuis l'outil de facturation."
breach_types: [confidentiality]
circumstances: copying
circumstances_detail: "Compte d'un prestataire compromis."
incident_started_at: "2026-03-27T22:00:00+01:00"
incident_ended_at: null
incident_time_estimated: true
where_media: "Base de facturation (centre de données de Paris), export CSV."
technical_measures: "Accès restreint par rôle ; IBAN non chiffrés au repos."
measures_taken: |
  Compte désactivé.
  Plainte déposée.
measures_proposed: "Chiffrement des IBAN au repos."
likely_consequences: "Hameçonnage ciblé et prélèvements frauduleux."
dpo_contact: "dpo@operateur.example"
other_providers: "Prestataire de facturation."
cross_border:
  involved: true
  member_states: [BE]
  detail: null
other_authorities:
  - authority: "ANSSI"
    reference: "CERT-2026-001"
    notified_at: "2026-03-28T12:00:00+01:00"
"""


def _build_breach(tmp_path: Path) -> tuple[Runtime, pl.DataFrame]:
    """A real breach in the store: customers, one leaked file, matching, drafted notices."""
    settings = Settings()
    rt = Runtime(settings=settings, pepper=load_pepper(settings))
    customers = make_customers(400, seed=41)
    leak = make_leak(customers, 300, overlap=0.4, seed=42)
    customers.write_csv(tmp_path / "customers.csv")
    write_delimited(leak.frame, tmp_path / "leak.csv")
    steps.load_customer_file(rt, tmp_path / "customers.csv")
    steps.ingest_source(rt, str(tmp_path / "leak.csv"), BREACH)
    steps.match_breach(rt, BREACH)
    steps.draft_notices(rt, BREACH, tmp_path / "outbox")
    return rt, customers


def _set_ledger_states(store_path: Path) -> None:
    """Move some e-mail notices on, as sending and delivery events would."""
    con = duckdb.connect(str(store_path))
    try:
        ids = [
            r[0]
            for r in con.execute(
                "SELECT notice_id FROM notices WHERE channel = 'email' ORDER BY notice_id"
            ).fetchall()
        ]
        for state, chunk in (
            ("delivered", ids[0:40]),
            ("accepted", ids[40:50]),
            ("bounced", ids[50:53]),
            ("dropped", ids[53:54]),
        ):
            con.execute(
                "UPDATE notices SET state = $s, accepted_at = now() WHERE list_contains($ids, notice_id)",
                {"s": state, "ids": chunk},
            )
    finally:
        con.close()


def _confirm_and_describe(rt: Runtime, aware_at: datetime) -> None:
    breach_steps.confirm(rt.settings, BREACH, aware_at=aware_at, regime="telecom")
    path = rt.settings.work_dir / "description.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DESCRIPTION, encoding="utf-8")
    breach_steps.load_description(rt.settings, BREACH, path)


def _independent_figures(store_path: Path) -> dict[str, Any]:
    """The store's own counts, by plain SQL on the DuckDB file (not through leakwatch)."""
    con = duckdb.connect(str(store_path), read_only=True)
    p = {"b": BREACH}
    try:

        def one(sql: str, **extra: Any) -> int:
            row = con.execute(sql, {**p, **extra}).fetchone()
            return int(row[0] or 0) if row else 0

        persons = {
            c.value: one(
                "SELECT count(*) FROM exposures WHERE breach_id = $b "
                "AND list_contains(string_split(categories, ';'), $c)",
                c=c.value,
            )
            for c in Category
        }
        records = {
            c.value: one(
                "SELECT sum(r.rows) FROM leak_row_counts r JOIN artifacts a USING (artifact_no) "
                "WHERE a.breach_id = $b AND a.state = 'done' AND (r.categories & $bit) <> 0",
                bit=CATEGORY_BITS[c],
            )
            for c in Category
        }
        by_key = {
            k: one(
                "SELECT count(*) FROM exposures WHERE breach_id = $b "
                "AND list_contains(string_split(matched_on, ';'), $k)",
                k=k,
            )
            for k in ("email", "iban", "phone")
        }
        states = "('accepted', 'deferred', 'delivered', 'bounced', 'dropped')"
        return {
            "persons_total": one("SELECT count(*) FROM exposures WHERE breach_id = $b"),
            "records_total": one(
                "SELECT sum(r.rows) FROM leak_row_counts r JOIN artifacts a USING (artifact_no) "
                "WHERE a.breach_id = $b AND a.state = 'done'"
            ),
            "persons": {k: v for k, v in persons.items() if v},
            "records": {k: v for k, v in records.items() if v},
            "by_key": {k: v for k, v in by_key.items() if v},
            "notified": one(
                "SELECT count(*) FROM notices WHERE breach_id = $b AND channel = 'email' "
                f"AND state IN {states}"
            ),
            "delivered": one(
                "SELECT count(*) FROM notices WHERE breach_id = $b AND state = 'delivered'"
            ),
            "bounced": one(
                "SELECT count(*) FROM notices WHERE breach_id = $b AND state = 'bounced'"
            ),
            "sources": {
                r[0]
                for r in con.execute(
                    "SELECT sha256 FROM artifacts WHERE breach_id = $b", p
                ).fetchall()
            },
        }
    finally:
        con.close()


def _identifiers(customers: pl.DataFrame) -> set[str]:
    """Every spelling of every customer identifier that must never reach a dossier."""
    found: set[str] = set()
    for row in customers.iter_rows(named=True):
        found.add(row["customer_id"])
        if row["email"]:
            found.add(row["email"].lower())
        if row["phone"]:
            digits = "".join(ch for ch in row["phone"] if ch.isdigit())
            found.update({row["phone"], digits, digits.lstrip("0")})
            if digits.startswith("0"):
                found.add("+33" + digits[1:])
        if row["iban"]:
            compact = row["iban"].replace(" ", "")
            found.update({compact, compact[4:]})
    return {s for s in found if len(s) >= 8}


def test_dossier_holds_every_field_with_the_store_s_own_figures(
    leakwatch_env: Path, tmp_path: Path
) -> None:
    rt, customers = _build_breach(tmp_path)
    _set_ledger_states(rt.settings.store)
    aware = datetime.now(UTC) - timedelta(hours=2)
    _confirm_and_describe(rt, aware)

    result = breach_steps.regulator_dossier(
        rt.settings, BREACH, phase="initial", output_dir=tmp_path / "cnil"
    )
    raw = result.json_path.read_bytes()
    dossier = json.loads(raw)
    jsonschema.Draft202012Validator(load_schema(DOSSIER_SCHEMA)).validate(dossier)
    assert result.sha256 == hashlib.sha256(raw).hexdigest()

    # GDPR 33(3) and Reg. 611/2013 Annex I, field by field.
    assert dossier["provider"]["name"] == rt.settings.operator_name
    assert dossier["provider"]["dpo_contact"] == "dpo@operateur.example"
    assert dossier["notification"]["phase"] == "initial" and dossier["notification"]["on_time"]
    assert dossier["timeline"]["incident_started_at"] == "2026-03-27T21:00:00+00:00"
    assert dossier["timeline"]["detected_at"] == aware.isoformat(timespec="seconds")
    assert dossier["timeline"]["detected_from"] == "officer"
    assert dossier["breach"]["circumstances"] == "copying"
    assert dossier["breach"]["nature"].startswith("Extraction")
    assert dossier["breach"]["where_media"]
    assert dossier["measures"]["technical_measures"] and dossier["measures"]["taken"]
    assert dossier["measures"]["proposed"]
    assert dossier["consequences"]["likely"] and dossier["consequences"]["from_categories"]
    assert dossier["other_providers"] == "Prestataire de facturation."
    assert dossier["cross_border"] == {"involved": True, "member_states": ["BE"], "detail": None}
    assert dossier["other_authorities"][0]["notified_at"] == "2026-03-28T11:00:00+00:00"
    note = dossier["subscriber_notification"]
    assert "Ce qui s'est passé" in note["content_fr"] and "SEPA" in note["content_fr"]
    assert note["means"] == ["courrier électronique"]
    assert {d["key"] for d in dossier["deadlines"]} == {
        "regulator_initial",
        "regulator_complementary",
        "customers",
    }
    assert dossier["pending_fields"] == []

    # The figures are the store's own.
    truth = _independent_figures(rt.settings.store)
    data = dossier["data"]
    assert data["persons_total"] == truth["persons_total"] == dossier["subscribers_concerned"]
    assert truth["persons_total"] > 0
    assert data["records_total"] == truth["records_total"]
    assert {c["category"]: c["persons"] for c in data["field_categories"]} == truth["persons"]
    assert {c["category"]: c["records"] for c in data["field_categories"]} == truth["records"]
    assert data["persons_by_key"] == truth["by_key"]
    financial = next(c for c in data["cnil_categories"] if c["key"] == "financial")
    assert financial["persons"] >= truth["persons"].get("iban", 0)
    assert {s["sha256"] for s in dossier["sources"]} == truth["sources"]
    # Notified and delivered counts come from the ledger.
    assert (note["notified"], note["delivered"], note["bounced"]) == (
        truth["notified"],
        truth["delivered"],
        truth["bounced"],
    )
    assert (note["notified"], note["delivered"], note["bounced"], note["dropped"]) == (54, 40, 3, 1)

    # Nothing personal, in the JSON or the HTML.
    html = result.html_path.read_text(encoding="utf-8")
    assert "<link" not in html and "<script" not in html and "http" not in html.split("</style>")[0]
    text = (raw.decode("utf-8") + html).lower()
    leaked = [s for s in _identifiers(customers) if s.lower() in text]
    assert leaked == []

    # The store records the notice.
    status = breach_steps.breach_status(rt.settings, BREACH)
    [notice] = status.regulator_notices
    assert notice.dossier_sha256 == result.sha256 and notice.on_time and notice.phase == "initial"
    assert status.deadlines[0].state == "met"


def test_late_dossier_needs_a_reason_and_carries_it(leakwatch_env: Path, tmp_path: Path) -> None:
    rt, _ = _build_breach(tmp_path)
    aware = datetime(2026, 3, 28, 10, 0, tzinfo=UTC)
    _confirm_and_describe(rt, aware)
    out = tmp_path / "late"
    with pytest.raises(LateReasonRequiredError, match="--late-reason"):
        breach_steps.regulator_dossier(rt.settings, BREACH, phase="initial", output_dir=out)
    assert not out.exists()
    assert breach_steps.breach_status(rt.settings, BREACH).regulator_notices == ()

    reason = "Fichier découvert sur un canal Telegram sans date de publication."
    result = breach_steps.regulator_dossier(
        rt.settings, BREACH, phase="initial", output_dir=out, late_reason=reason
    )
    dossier = json.loads(result.json_path.read_text(encoding="utf-8"))
    assert dossier["notification"]["on_time"] is False
    assert dossier["notification"]["late_reason"] == reason
    assert dossier["notification"]["due_at"] == "2026-03-29T10:00:00+00:00"
    assert reason in result.html_path.read_text(encoding="utf-8")
    [notice] = breach_steps.breach_status(rt.settings, BREACH).regulator_notices
    assert (notice.on_time, notice.late_reason) == (False, reason)

    # The complementary notice is due 3 days after the initial one, which was just made.
    comp = breach_steps.regulator_dossier(
        rt.settings, BREACH, phase="complementary", output_dir=tmp_path / "comp"
    )
    assert comp.on_time and comp.due_at == notice.generated_at + timedelta(days=3)
    second = json.loads(comp.json_path.read_text(encoding="utf-8"))
    assert second["notification"]["initial_dossier_sha256"] == result.sha256


def test_confirm_before_notify(leakwatch_env: Path, tmp_path: Path) -> None:
    rt, _ = _build_breach(tmp_path)
    with open_store(rt.settings) as store, pytest.raises(BreachNotConfirmedError):
        require_confirmed(store, BREACH)
    with pytest.raises(BreachNotConfirmedError):
        breach_steps.regulator_dossier(rt.settings, BREACH, phase="initial", output_dir=tmp_path)
    status = breach_steps.breach_status(rt.settings, BREACH)
    assert status.status == "suspected" and status.aware_from == "first_ingestion"

    status = breach_steps.confirm(rt.settings, BREACH)
    assert status.status == "confirmed" and status.confirmed_at is not None
    with open_store(rt.settings) as store:
        assert require_confirmed(store, BREACH).status == "confirmed"
    # Confirmed but not described: refused, saying how to describe it.
    with pytest.raises(ConfigError, match="breach describe"):
        breach_steps.regulator_dossier(rt.settings, BREACH, phase="initial", output_dir=tmp_path)


def test_an_invalid_dossier_is_refused(leakwatch_env: Path, tmp_path: Path) -> None:
    rt, _ = _build_breach(tmp_path)
    _confirm_and_describe(rt, datetime.now(UTC))
    result = breach_steps.regulator_dossier(
        rt.settings, BREACH, phase="initial", output_dir=tmp_path / "ok"
    )
    good = json.loads(result.json_path.read_text(encoding="utf-8"))
    validate_dossier(good)

    missing = copy.deepcopy(good)
    del missing["subscriber_notification"]["notified"]
    wrong_type = copy.deepcopy(good)
    wrong_type["data"]["persons_total"] = "12"
    late_without_reason = copy.deepcopy(good)
    late_without_reason["notification"]["on_time"] = False
    extra = copy.deepcopy(good)
    extra["customers"] = ["C000000001"]
    for bad, field in (
        (missing, "subscriber_notification.notified"),
        (wrong_type, "data.persons_total"),
        (late_without_reason, "notification.late_reason"),
        (extra, "(top level)"),
    ):
        with pytest.raises(
            DossierInvalidError,
            match=field.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)"),
        ):
            validate_dossier(bad)
        out = tmp_path / "bad"
        with pytest.raises(DossierInvalidError):
            write_dossier(bad, out)
        assert not (out / "dossier.json").exists()


def test_complementary_needs_the_initial_and_every_field(
    leakwatch_env: Path, tmp_path: Path
) -> None:
    rt, _ = _build_breach(tmp_path)
    breach_steps.confirm(rt.settings, BREACH, aware_at=datetime.now(UTC))
    path = tmp_path / "d.yaml"
    path.write_text(
        'nature: "Copie de la base."\ncircumstances: copying\n'
        'measures_taken: "Accès coupé."\ndpo_contact: "dpo@operateur.example"\n',
        encoding="utf-8",
    )
    missing = breach_steps.load_description(rt.settings, BREACH, path)
    assert missing == [
        "where_media",
        "technical_measures",
        "likely_consequences",
        "cross_border.involved",
    ]
    with pytest.raises(ConfigError, match="initial"):
        breach_steps.regulator_dossier(
            rt.settings, BREACH, phase="complementary", output_dir=tmp_path / "c"
        )
    initial = breach_steps.regulator_dossier(
        rt.settings, BREACH, phase="initial", output_dir=tmp_path / "i"
    )
    assert "likely_consequences" in initial.pending_fields
    with pytest.raises(ConfigError, match="where_media"):
        breach_steps.regulator_dossier(
            rt.settings, BREACH, phase="complementary", output_dir=tmp_path / "c"
        )


@pytest.mark.parametrize(
    ("text", "field", "why"),
    [
        ("circumstances: copying\nmeasures_taken: x\ndpo_contact: y\n", "nature", "missing"),
        (
            'nature: ""\ncircumstances: copying\nmeasures_taken: x\ndpo_contact: y\n',
            "nature",
            "filled in",
        ),
        (
            "nature: a\ncircumstances: hacked\nmeasures_taken: x\ndpo_contact: y\n",
            "circumstances",
            "one of",
        ),
        (
            "nature: a\ncircumstances: copying\nmeasures_taken: x\ndpo_contact: y\n"
            "incident_started_at: 2026-03-27T22:00:00\n",
            "incident_started_at",
            "offset",
        ),
        (
            "nature: a\ncircumstances: copying\nmeasures_taken: x\ndpo_contact: y\nnatur: b\n",
            "natur",
            "not a known field",
        ),
        (
            "nature: a\ncircumstances: copying\nmeasures_taken: x\ndpo_contact: y\n"
            "cross_border: {involved: maybe}\n",
            "cross_border.involved",
            "type",
        ),
    ],
)
def test_description_errors_name_the_field(text: str, field: str, why: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_description(text, source="desc.yaml")
    message = str(caught.value)
    assert message.startswith("desc.yaml: ") and field in message and why in message
    assert "hacked" not in message and "maybe" not in message


def test_the_schemas_are_valid_draft_2020_12() -> None:
    from schemas.dossier import DESCRIPTION_SCHEMA

    for name in (DOSSIER_SCHEMA, DESCRIPTION_SCHEMA):
        jsonschema.Draft202012Validator.check_schema(load_schema(name))
