"""Telegram Desktop exports: attached files with who posted them, hostile references refused."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from connectors.acquire import AcquireOptions, Refusal, acquire
from connectors.base import Artifact
from connectors.telegram import acquire_export, read_export
from core.errors import InputError
from core.settings import Settings
from flows import steps
from flows.context import Runtime, load_pepper
from synthetic import make_customers, make_leak, write_delimited

NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"


def _message(number: int, **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": number,
        "type": "message",
        "date": "2024-10-20T14:05:00",
        "date_unixtime": str(1729425900 + number),
        "from": "Fuites FR",
        "from_id": "channel1987654321",
        "text": "",
        "text_entities": [],
    }
    message.update(extra)
    return message


def write_export(folder: Path, messages: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    document = {
        "name": "Fuites FR",
        "type": "public_channel",
        "id": 1987654321,
        "messages": messages,
    }
    (folder / "result.json").write_text(json.dumps(document, ensure_ascii=False, indent=1))
    return folder


def _options(tmp_path: Path) -> AcquireOptions:
    settings = Settings(work_dir=tmp_path / "work")
    return AcquireOptions(work_dir=settings.work_dir, settings=settings)


@pytest.fixture
def export(tmp_path: Path) -> Path:
    folder = tmp_path / "ChatExport_2024-10-21"
    (folder / "files").mkdir(parents=True)
    (folder / "files" / "sample.csv").write_text("email;phone\na@example.test;0612345678\n")
    (folder / "files" / "more.csv").write_text("email\nb@example.test\n")
    outside = tmp_path / "outside.csv"
    outside.write_text("email\nc@example.test\n")
    os.symlink(outside, folder / "files" / "escape.csv")
    messages = [
        _message(1, text=["Free ", {"type": "bold", "text": "19M"}, " sample"]),
        _message(
            2,
            file="files/sample.csv",
            file_name="sample.csv",
            mime_type="text/csv",
            text="sample of the dump",
        ),
        _message(3, file=NOT_INCLUDED, file_name="full.zip", mime_type="application/zip"),
        _message(4, file="../../etc/passwd"),
        _message(5, file="/etc/passwd"),
        _message(6, file="files/escape.csv"),
        _message(7, file="files/missing.csv"),
        _message(8, file="stickers/s.webp", media_type="sticker"),
        {"id": 9, "type": "service", "actor": "Fuites FR", "action": "pin_message"},
        _message(
            10, file="files/more.csv", **{"from": "Some One", "from_id": "user5678"}, edited="x"
        ),
    ]
    return write_export(folder, messages)


def test_attached_files_with_their_telegram_record(export: Path, tmp_path: Path) -> None:
    items = list(acquire_export(export, _options(tmp_path)))
    artifacts = [i for i in items if isinstance(i, Artifact)]
    refusals = [i for i in items if isinstance(i, Refusal)]
    assert [a.inner_path for a in artifacts] == ["files/sample.csv", "files/more.csv"]
    first = artifacts[0]
    assert first.source == str(export)
    assert first.telegram == {
        "channel": "Fuites FR",
        "channel_id": 1987654321,
        "channel_type": "public_channel",
        "message_id": 2,
        "date": "2024-10-20T12:05:02+00:00",
        "poster": "Fuites FR",
        "poster_id": "channel1987654321",
    }
    assert artifacts[1].telegram is not None
    assert artifacts[1].telegram["poster_id"] == "user5678"
    reasons = {r.inner_path: r.reason for r in refusals}
    assert reasons["../../etc/passwd"] == "message 4: file reference escapes the export folder"
    assert reasons["/etc/passwd"] == "message 5: file reference is an absolute path"
    assert "symlink" in reasons["files/escape.csv"]
    assert reasons["files/missing.csv"] == "message 7: referenced file is missing"
    assert reasons[None].startswith("1 attached file(s) not included in the export")
    assert "stickers/s.webp" not in reasons


def test_acquire_passes_refusals_through(export: Path, tmp_path: Path) -> None:
    items = list(acquire(str(export), _options(tmp_path)))
    assert sum(isinstance(i, Artifact) for i in items) == 2
    assert sum(isinstance(i, Refusal) for i in items) == 5


def test_result_json_is_streamed_across_chunk_boundaries(tmp_path: Path) -> None:
    (tmp_path / "x" / "files").mkdir(parents=True)
    messages = [_message(i, text="x" * 50) for i in range(1, 30_001)]  # about 6 MB
    messages[25_000] = _message(25_001, file="files/f.csv")
    write_export(tmp_path / "x", messages)
    export = read_export(tmp_path / "x" / "result.json")
    assert export.messages == 30_000
    assert [a.message_id for a in export.attachments] == [25_001]
    assert export.header == {"name": "Fuites FR", "type": "public_channel", "id": 1987654321}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"name": "x", "messages": [' + "[" * 100_000 + "]" * 100_000 + "]}", "nested too deep"),
        ('{"name": "x", "messages": [{"id": 1}', "malformed"),
        ('["not", "an", "export"]', "expected '{'"),
    ],
    ids=["deep", "truncated", "not-an-object"],
)
def test_hostile_result_json_is_refused(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "result.json").write_text(text)
    items = list(acquire(str(tmp_path / "e"), _options(tmp_path)))
    assert len(items) == 1 and isinstance(items[0], Refusal)
    assert reason in items[0].reason
    with pytest.raises(InputError):
        read_export(tmp_path / "e" / "result.json")


def test_an_export_is_ingested_and_matched_exactly(tmp_path: Path, leakwatch_env: Path) -> None:
    customers = make_customers(1_500, seed=41)
    leak = make_leak(customers, 1_200, overlap=0.3, seed=42)
    folder = tmp_path / "export"
    (folder / "files").mkdir(parents=True)
    write_delimited(leak.frame, folder / "files" / "free_sample.csv", delimiter=";")
    write_export(folder, [_message(1, text="hello"), _message(2, file="files/free_sample.csv")])
    customers.write_csv(tmp_path / "customers.csv")
    settings = Settings()
    rt = Runtime(settings=settings, pepper=load_pepper(settings))
    steps.load_customer_file(rt, tmp_path / "customers.csv")

    report = steps.ingest_source(rt, str(folder), "b-tg")
    assert report.errors == []
    assert report.artifacts == 1 and report.rows_read == leak.frame.height
    steps.match_breach(rt, "b-tg")
    steps.export_exposures(rt, "b-tg", tmp_path / "exposures.csv", "csv")
    got = pl.read_csv(tmp_path / "exposures.csv", infer_schema=False)
    columns = ["customer_id", "matched_on", "categories"]
    assert (
        got.select(columns)
        .sort("customer_id")
        .equals(leak.truth.select(columns).sort("customer_id"))
    )


def test_timestamps_no_calendar_holds_keep_the_written_date() -> None:
    """Found by fuzzing: a huge date_unixtime raised OverflowError out of the parser."""
    from connectors.telegram import _utc

    assert _utc("99999999999999999", "2024-10-17T09:30:00") == "2024-10-17T09:30:00"
    assert _utc("-99999999999999", None) is None
    assert _utc("1729150200", None) == "2024-10-17T07:30:00+00:00"
