"""Batches of .eml files written durably and whole; a refused batch leaves no temporary."""

from __future__ import annotations

import email
import os
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from notify.batch_writer import BatchError, write_batch
from notify.outbox import EmlFile, build_emls, write_durably
from notify.render import NoticeRenderer
from tests.notify.test_completeness import make_ctx

SENDER = "Opérateur Exemple <securite@operateur.example>"
WHEN = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)


def _files(outbox: Path, n: int) -> list[EmlFile]:
    renderer = NoticeRenderer()
    items = []
    for i in range(n):
        ctx = replace(make_ctx("fr" if i % 2 else "en"), notice_id=f"{i:032x}")
        items.append((renderer.render(ctx), f"client{i}@example.org"))
    built = build_emls(outbox, items, sender=SENDER, date=WHEN)
    assert all(isinstance(f, EmlFile) for f in built)
    return [f for f in built if isinstance(f, EmlFile)]


def test_a_refused_batch_names_its_step_only_and_leaves_no_temporary(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    files = _files(outbox, 3)
    (outbox / files[1].path.name).mkdir(parents=True)  # a folder where a file must go
    with pytest.raises(BatchError) as caught:
        write_durably(outbox, files)
    message = str(caught.value)
    assert "rename" in message and files[1].path.stem not in message
    assert not [p for p in outbox.iterdir() if p.name.startswith(".")]
    # Nothing stops the next batch.
    (outbox / files[1].path.name).rmdir()
    write_durably(outbox, files)
    assert sorted(p.name for p in outbox.iterdir()) == sorted(f.path.name for f in files)
    for f in files:
        written = (outbox / f.path.name).read_bytes()
        assert written == f.data
        msg = email.message_from_bytes(written, policy=default)
        assert isinstance(msg, EmailMessage) and msg.get_content_type() == "multipart/alternative"


def test_write_batch_refuses_names_outside_the_folder(tmp_path: Path) -> None:
    folder = os.open(tmp_path, os.O_RDONLY)
    try:
        for name in ("../escape.eml", ".hidden.eml", "a/b.eml", ""):
            with pytest.raises(BatchError):
                write_batch(folder, [(name, b"x")])
        write_batch(folder, [("ok.eml", b"data")])
    finally:
        os.close(folder)
    assert [p.name for p in tmp_path.iterdir()] == ["ok.eml"]
    assert (tmp_path / "ok.eml").read_bytes() == b"data"


def _hidden(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_a_batch_is_written_as_it_comes_and_named_only_when_durable(tmp_path: Path) -> None:
    from notify.batch_writer import BatchFiles

    folder = os.open(tmp_path, os.O_RDONLY)
    try:
        batch = BatchFiles(folder)
        batch.add("a.eml", b"first")
        batch.add("b.eml", memoryview(b"second"))
        assert len(batch) == 2
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == []
        assert len(_hidden(tmp_path)) == 2  # written, not yet under their names
        batch.commit()
        assert len(batch) == 0 and _hidden(tmp_path) == []
        assert (tmp_path / "a.eml").read_bytes() == b"first"
        assert (tmp_path / "b.eml").read_bytes() == b"second"
        BatchFiles(folder).commit()  # an empty batch writes nothing
    finally:
        os.close(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.eml", "b.eml"]


def test_a_batch_refused_midway_leaves_no_temporary(tmp_path: Path) -> None:
    from notify.batch_writer import BatchFiles

    folder = os.open(tmp_path, os.O_RDONLY)
    try:
        batch = BatchFiles(folder)
        batch.add("a.eml", b"first")
        with pytest.raises(BatchError) as caught:
            batch.add("../b.eml", b"second")
        assert caught.value.step == 0 and "b.eml" not in str(caught.value)
        assert list(tmp_path.iterdir()) == [] and len(batch) == 0
        batch = BatchFiles(folder)
        batch.add("c.eml", b"third")
        batch.discard()
        assert list(tmp_path.iterdir()) == []
    finally:
        os.close(folder)
