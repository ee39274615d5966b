"""Time-boxed fuzzing of the parsers (CSV, JSON, SQL dumps, Telegram exports) in a limited child.

A mutation loop, seeded: each input is a valid sample mutated with bytes and tokens the parsers
care about. Inputs run in a worker process whose address space is capped (RLIMIT_AS); the
parent waits a bounded time per input. Only leakwatch's own ``InputError``/``TerminalError`` may
come out; any other exception, a hang past the per-input timeout, or the worker dying (memory)
counts as a crash, and the input is saved for replay.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import resource
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

__all__ = ["TARGETS", "FuzzReport", "fuzz", "main", "mutate", "run_target"]

SEEDS: dict[str, list[bytes]] = {
    "csv": [
        b"email,phone,iban\na@example.fr,0612345678,FR7630006000011234567890189\n",
        b'nom;telephone\n"Dupont; Jean";"06 12 34 56 78"\n"x""y";\n',
        b"\xef\xbb\xbfcol1\tcol2\n1\t2\n",
    ],
    "json": [
        b'[{"email": "a@example.fr", "phone": "0612345678", "n": 1.5, "x": {"y": [1, 2]}}]',
        b'{"email": "b@example.fr"}\n{"phone": 33612345678}\n',
        b'{"users": [{"mail": "c@example.fr", "tags": null}]}',
    ],
    "sql": [
        b"CREATE TABLE `u` (`email` varchar(9), `tel` text);\n"
        b"INSERT INTO `u` VALUES ('a@example.fr','06 12'),('b\\'x',NULL);\n",
        b"COPY public.users (email, phone) FROM stdin;\na@example.fr\t0612345678\n\\.\n",
        b"INSERT INTO users (email) VALUES ('it''s'), (E'\\x41');\n",
    ],
    "telegram": [
        b'{"name": "c", "type": "public_channel", "id": 1, "messages": [{"id": 1, "type": '
        b'"message", "date": "2024-10-20T14:05:00", "date_unixtime": "1729425900", "from": "x", '
        b'"from_id": "channel1", "file": "files/a.csv", "mime_type": "text/csv", "text": ""}]}',
    ],
}
TOKENS = [
    b'"',
    b"'",
    b",",
    b";",
    b"\t",
    b"\n",
    b"\r\n",
    b"\x00",
    b"\\",
    b"(",
    b")",
    b"[",
    b"]",
    b"{",
    b"}",
    b":",
    b"\\.",
    b"NULL",
    b"INSERT INTO t VALUES (",
    b"COPY t FROM stdin;\n",
    b"E'",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"\xc3",
    b"9" * 400,
    b"[" * 2000,
    b"../" * 5,
    b"/etc/passwd",
    "٠٦١٢".encode(),
    b"\xe2\x80\xae",
    b"-1e99999",
    b'"file": "../x"',
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four mutations: flip, insert a token, duplicate, delete or truncate a slice."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(buf)) if buf else 0
        op = rng.randrange(6)
        if op == 0 and buf:
            buf[min(at, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            buf[at:at] = rng.choice(TOKENS)
        elif op == 2 and buf:
            end = min(len(buf), at + rng.randint(1, 64))
            buf[at:at] = buf[at:end] * rng.randint(1, 50)
        elif op == 3 and buf:
            del buf[at : at + rng.randint(1, 16)]
        elif op == 4:
            del buf[at:]
        else:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(buf[: 1 << 20])


def _consume_file(path: Path, work: Path) -> None:
    from connectors import acquire_path, parse_artifact

    for artifact in acquire_path(path):
        for table in parse_artifact(artifact, batch_rows=1_000, work_dir=work):
            for _ in table.batches():
                pass


def _telegram(data: bytes, work: Path) -> None:
    from connectors.acquire import AcquireOptions, Refusal, acquire
    from connectors.parse import parse_artifact
    from core.settings import Settings

    folder = work / "ChatExport"
    (folder / "files").mkdir(parents=True, exist_ok=True)
    (folder / "files" / "a.csv").write_bytes(SEEDS["csv"][0])
    (folder / "result.json").write_bytes(data)
    settings = Settings(work_dir=work / "w")
    for item in acquire(str(folder), AcquireOptions(work_dir=settings.work_dir, settings=settings)):
        if isinstance(item, Refusal):
            continue
        for table in parse_artifact(item, batch_rows=1_000, work_dir=work / "w"):
            for _ in table.batches():
                pass


def _file_target(suffix: str) -> Callable[[bytes, Path], None]:
    def run(data: bytes, work: Path) -> None:
        path = work / f"input{suffix}"
        path.write_bytes(data)
        _consume_file(path, work)

    return run


TARGETS: dict[str, Callable[[bytes, Path], None]] = {
    "csv": _file_target(".csv"),
    "json": _file_target(".json"),
    "sql": _file_target(".sql"),
    "telegram": _telegram,
}


def run_target(target: str, data: bytes, work: Path) -> str | None:
    """None when the input was parsed or refused by our own error; else the foreign exception."""
    from core.errors import InputError, TerminalError

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        TARGETS[target](data, work)
    except (InputError, TerminalError):
        return None
    except Exception:
        return traceback.format_exc(limit=6)
    return None


def _worker(conn: Connection, target: str, memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    work = Path(tempfile.mkdtemp(prefix=f"leakwatch-fuzz-{target}-"))
    try:
        import connectors  # noqa: F401  (import once, before the clock of the first input)

        conn.send("ready")
        while True:
            data = conn.recv_bytes()
            conn.send(run_target(target, data, work / "in"))
    except EOFError:
        pass
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class FuzzReport:
    seconds: float = 0.0
    inputs: dict[str, int] = field(default_factory=dict)
    crashes: list[tuple[str, str, Path]] = field(default_factory=list)  # target, what, saved input


class _Child:
    def __init__(self, ctx: mp.context.BaseContext, target: str, memory_bytes: int) -> None:
        self.parent, child = ctx.Pipe()
        self.proc = ctx.Process(  # type: ignore[attr-defined]
            target=_worker, args=(child, target, memory_bytes), daemon=True
        )
        self.proc.start()
        child.close()
        if not self.parent.poll(120) or self.parent.recv() != "ready":
            raise RuntimeError(f"the {target} fuzz worker did not start")

    def stop(self) -> None:
        self.parent.close()
        self.proc.kill()
        self.proc.join(10)


def fuzz(
    seconds: float,
    *,
    targets: list[str] | None = None,
    seed: int = 0,
    per_input_timeout: float = 10.0,
    memory_bytes: int = 3 * 1024**3,
    crash_dir: Path,
) -> FuzzReport:
    """Fuzz each target for its share of ``seconds``; crashing inputs are saved in ``crash_dir``."""
    names = targets or list(TARGETS)
    ctx = mp.get_context("spawn")  # never fork a process that may hold polars' thread pool
    report = FuzzReport()
    started = time.monotonic()
    for position, target in enumerate(names):
        rng = random.Random(f"{seed}-{target}")
        share = (seconds - (time.monotonic() - started)) / (len(names) - position)
        deadline = time.monotonic() + max(share, 0.0)
        child = _Child(ctx, target, memory_bytes)
        count = 0
        try:
            while time.monotonic() < deadline:
                data = mutate(rng.choice(SEEDS[target]), rng)
                count += 1
                child.parent.send_bytes(data)
                what: str | None
                if child.parent.poll(per_input_timeout):
                    try:
                        what = child.parent.recv()
                    except EOFError:
                        what = f"worker died (exit {child.proc.exitcode}; memory limit?)"
                else:
                    what = f"hang: no answer within {per_input_timeout:g} s"
                if what is None:
                    continue
                crash_dir.mkdir(parents=True, exist_ok=True)
                saved = crash_dir / f"{target}-{len(report.crashes)}.bin"
                saved.write_bytes(data)
                report.crashes.append((target, what, saved))
                child.stop()
                child = _Child(ctx, target, memory_bytes)
        finally:
            child.stop()
        report.inputs[target] = count
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.fuzz", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--target", action="append", choices=sorted(TARGETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crash-dir", type=Path, default=Path(".leakwatch/fuzz-crashes"))
    args = parser.parse_args(argv)
    report = fuzz(args.seconds, targets=args.target, seed=args.seed, crash_dir=args.crash_dir)
    total = sum(report.inputs.values())
    print(
        f"fuzzing: {report.seconds:.0f} s, {total} inputs "
        f"({', '.join(f'{k} {v}' for k, v in report.inputs.items())}), "
        f"{len(report.crashes)} crashes"
    )
    for target, what, saved in report.crashes:
        print(f"  {target}: {saved}: {what.strip().splitlines()[-1] if what.strip() else what}")
    return 1 if report.crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
