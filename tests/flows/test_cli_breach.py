"""The breach and regulator commands end to end through the console entry point: exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from flows import steps
from flows.cli import main
from flows.context import Runtime, load_pepper
from synthetic import make_customers, make_leak, write_delimited

BREACH = "B-cli"


def _leakwatch(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["leakwatch", *args])
    with pytest.raises(SystemExit) as caught:
        main()
    code = caught.value.code
    return code if isinstance(code, int) else (0 if code is None else 1)


@pytest.fixture
def breach(leakwatch_env: Path, tmp_path: Path) -> Path:
    settings = Settings()
    rt = Runtime(settings=settings, pepper=load_pepper(settings))
    customers = make_customers(200, seed=7)
    customers.write_csv(tmp_path / "customers.csv")
    write_delimited(make_leak(customers, 150, overlap=0.5, seed=8).frame, tmp_path / "leak.csv")
    steps.load_customer_file(rt, tmp_path / "customers.csv")
    steps.ingest_source(rt, str(tmp_path / "leak.csv"), BREACH)
    steps.match_breach(rt, BREACH)
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        ["breach", "confirm", BREACH, "--aware-at", "yesterday"],
        ["breach", "confirm", BREACH, "--aware-at", "2026-03-28T10:00:00"],  # no offset
        ["breach", "confirm", BREACH, "--regime", "banking"],
        ["notify", "regulator", "--breach", BREACH, "--phase", "final"],
        ["breach", "status", "no-such-breach"],
    ],
)
def test_bad_usage_exits_2(
    breach: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    assert _leakwatch(monkeypatch, *args) == 2
    # Nothing was confirmed by a refused command.
    assert _leakwatch(monkeypatch, "breach", "status", BREACH) == 0
    assert "suspected" in capsys.readouterr().out


def test_confirm_describe_and_notify_the_regulator(
    breach: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = lambda *a: _leakwatch(monkeypatch, *a)  # noqa: E731
    # Suspected: the regulator notice is refused (exit 1, terminal error).
    assert run("notify", "regulator", "--breach", BREACH, "--output", str(breach / "x")) == 1
    assert "still suspected" in capsys.readouterr().err.replace("\n", " ")

    assert run("breach", "confirm", BREACH, "--aware-at", "2026-03-28T10:00:00+01:00") == 0
    shown = capsys.readouterr().out
    assert "confirmed" in shown and "2026-03-29" in shown and "recorded" in shown

    template = breach / "description.yaml"
    assert run("breach", "describe", BREACH, "--output", str(template)) == 0
    text = template.read_text(encoding="utf-8")
    assert "circumstances:" in text and "dpo_contact:" in text and "cross_border:" in text
    # Loading the template untouched names the fields still empty (exit 1: file refused).
    assert run("breach", "describe", BREACH, "--from", str(template)) == 1
    err = capsys.readouterr().err.replace("\n", " ")
    assert "'nature'" in err and "'measures_taken'" in err
    text = text.replace('nature: ""', 'nature: "Copie de la base clients."', 1)
    text = text.replace('measures_taken: ""', 'measures_taken: "Accès coupé."', 1)
    template.write_text(text, encoding="utf-8")
    assert run("breach", "describe", BREACH, "--from", str(template)) == 0

    out = breach / "cnil"
    # Awareness was months ago: late, so a reason is required (bad usage, exit 2).
    assert run("notify", "regulator", "--breach", BREACH, "--output", str(out)) == 2
    assert "--late-reason" in capsys.readouterr().err.replace("\n", " ")
    assert not out.exists()
    reason = "Fichier découvert tardivement."
    code = run(
        "notify", "regulator", "--breach", BREACH, "--output", str(out), "--late-reason", reason
    )
    assert code == 0
    dossier = json.loads((out / "dossier.json").read_text(encoding="utf-8"))
    assert dossier["notification"]["late_reason"] == reason
    assert (out / "dossier.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    assert run("breach", "status", BREACH) == 0
    shown = capsys.readouterr().out.replace("\n", " ")
    assert "initial dossier" in shown and "LATE" in shown
