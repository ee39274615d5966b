"""Parsing an acquired artifact: sniff its shape and encoding, dispatch to the right parser."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from connectors.base import Artifact, Table
from connectors.delimited import read_delimited
from connectors.jsonfile import read_json
from connectors.sniff import (
    SAMPLE_BYTES,
    Shape,
    decode_sample,
    detect_encoding,
    magic_shape,
    read_head,
    sniff_shape,
)
from core.errors import InputError

__all__ = ["PARSERS", "Sniffed", "parse_artifact", "register_parser", "sniff_artifact"]


@dataclass(frozen=True)
class Sniffed:
    """What a parser is told about an artifact: its shape, and for text its encoding and sample."""

    shape: Shape
    encoding: str | None
    sample: str


# A parser turns an artifact into tables. Others (SQL dumps, spreadsheets, Parquet) register here.
Parser = Callable[[Artifact, Sniffed, int, Path], Iterator[Table]]


def _table_name(artifact: Artifact) -> str:
    return Path(artifact.inner_path or artifact.path.name).stem or "table"


def _delimited(
    artifact: Artifact, sniffed: Sniffed, batch_rows: int, work_dir: Path
) -> Iterator[Table]:
    assert sniffed.encoding is not None
    yield read_delimited(
        artifact.path,
        name=_table_name(artifact),
        encoding=sniffed.encoding,
        sample=sniffed.sample,
        batch_rows=batch_rows,
        work_dir=work_dir,
    )


def _json(artifact: Artifact, sniffed: Sniffed, batch_rows: int, work_dir: Path) -> Iterator[Table]:
    assert sniffed.encoding is not None
    yield read_json(
        artifact.path,
        name=_table_name(artifact),
        display=artifact.display,
        encoding=sniffed.encoding,
        shape="ndjson" if sniffed.shape == "ndjson" else "json",
        batch_rows=batch_rows,
    )


def _sql(artifact: Artifact, sniffed: Sniffed, batch_rows: int, work_dir: Path) -> Iterator[Table]:
    from connectors.sqldump import read_sql_dump

    assert sniffed.encoding is not None
    yield from read_sql_dump(
        artifact,
        encoding=sniffed.encoding,
        sample=sniffed.sample,
        batch_rows=batch_rows,
        work_dir=work_dir,
    )


def _parquet(
    artifact: Artifact, sniffed: Sniffed, batch_rows: int, work_dir: Path
) -> Iterator[Table]:
    from connectors.parquetfile import read_parquet

    yield from read_parquet(artifact, batch_rows)


def _spreadsheet(
    artifact: Artifact, sniffed: Sniffed, batch_rows: int, work_dir: Path
) -> Iterator[Table]:
    # Archives are expanded before parsing (connectors.acquire): a zip reaching a parser is a
    # spreadsheet (xlsx, ods) or is refused there.
    from connectors.spreadsheet import read_spreadsheet

    yield from read_spreadsheet(artifact, batch_rows)


PARSERS: dict[str, Parser] = {
    "delimited": _delimited,
    "json": _json,
    "ndjson": _json,
    "sql": _sql,
    "parquet": _parquet,
    "zip": _spreadsheet,
}


def register_parser(shape: str, parser: Parser) -> None:
    """The dispatch point for parsers living elsewhere (SQL dumps, spreadsheets, Parquet...)."""
    PARSERS[shape] = parser


def sniff_artifact(artifact: Artifact) -> Sniffed:
    """Shape, encoding and a decoded sample (cut at the last full line) of an artifact."""
    display = artifact.display
    try:
        head = read_head(artifact.path, SAMPLE_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read file ({type(exc).__name__})", file=display) from None
    if not head.strip(b" \t\r\n\x00") and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError("empty file", file=display)
    magic = magic_shape(head)
    if magic is not None:
        return Sniffed(magic, None, "")
    encoding = detect_encoding(head)
    if encoding is None:
        raise InputError("binary content or undetectable text encoding", file=display)
    sample = decode_sample(head, encoding)
    if len(head) == SAMPLE_BYTES and "\n" in sample:
        sample = sample[: sample.rindex("\n") + 1]
    if not sample.strip(" \t\r\n\ufeff"):
        raise InputError("empty file", file=display)
    return Sniffed(sniff_shape(sample), encoding, sample)


def parse_artifact(
    artifact: Artifact, *, batch_rows: int = 250_000, work_dir: Path
) -> Iterator[Table]:
    """Sniff the shape and yield its table(s); InputError for empty, binary or unsupported input."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be positive")
    sniffed = sniff_artifact(artifact)
    parser = PARSERS.get(sniffed.shape)
    if parser is None:
        raise InputError(f"unsupported format ({sniffed.shape})", file=artifact.display)
    yield from parser(artifact, sniffed, batch_rows, work_dir)
