"""Expanding archives (zip, tar, gzip/bzip2/xz, 7z) into member artifacts, refusing hostile ones.

Every member is stream-extracted under ``work_dir/extract/<archive sha256 prefix>/`` into a file
named by us (a counter and the member's sanitised base name), so no member path is ever used to
write. Defences, each a ``Refusal`` naming the member and the reason while the rest goes on:
paths escaping the folder (``..``, absolute, drive letters), links (tar symlinks and hard links,
zip symlink members), duplicate names, overlapping zip entries, unreadable or corrupt members,
and decompression bombs: running counters of bytes written per member and per acquisition, of
the ratio of output to compressed input consumed, and of members, stop writing the moment a
limit from settings is crossed (declared sizes are never trusted). Archives nested deeper than
``archive_max_depth`` are not opened.

A member's file is deleted as soon as the consumer asks for the next item: use each yielded
artifact before moving on.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol, cast

from connectors.acquire import AcquireOptions, Refusal
from connectors.base import Artifact, Digest
from connectors.sniff import read_head, sniff_media_type
from connectors.spreadsheet import spreadsheet_kind

__all__ = ["extract_members", "is_archive"]

_CHUNK = 1024 * 1024
# The output/input ratio is judged once a member has written this much: tiny, very repetitive
# files legitimately compress far beyond any sane ratio.
_RATIO_FLOOR = 1024 * 1024
# tar extended headers (pax, GNU long names) are read into memory by tarfile: cap them.
_MAX_TAR_HEADER = 1024 * 1024
_AES = 99  # zip compression method id of WinZip AES encryption
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_DRIVE = re.compile(r"^[A-Za-z]:")
_TAR_MAGIC = b"ustar"


class _Source(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class _Limit(Exception):
    """A limit was crossed while writing a member; ``whole`` stops the archive too."""

    def __init__(self, reason: str, *, whole: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.whole = whole


class _Stopped(Exception):
    """A limit for the whole archive was crossed and reported: extract nothing more."""


class _Unreadable(Exception):
    """A member that cannot be decoded (corrupt data, wrong password, unsupported method)."""


class _Counting(io.RawIOBase):
    """A seekable raw reader counting the bytes read, i.e. the compressed input consumed."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._raw.close()
        super().close()


def _compressed_kind(head: bytes) -> str | None:
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"BZh") and head[4:10] == b"1AY&SY":
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return None


def _kind(artifact: Artifact) -> str | None:
    try:
        head = read_head(artifact.path, 512)
    except OSError:
        return None
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return None if spreadsheet_kind(artifact.path) else "zip"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if len(head) >= 262 and head[257:262] == _TAR_MAGIC:
        return "tar"
    return _compressed_kind(head)


def is_archive(artifact: Artifact) -> bool:
    """Whether the content (never the name) is an archive to expand; xlsx/ods are not."""
    return _kind(artifact) is not None


def _unsafe_path(name: str) -> str | None:
    """Why a member path would escape the extraction folder, or None."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        return "member path is absolute (escapes the extraction folder)"
    if ".." in norm.split("/"):
        return "member path contains '..' (escapes the extraction folder)"
    if "\x00" in norm:
        return "member path contains a NUL byte"
    return None


def _decompressor(kind: str, raw: _Counting) -> IO[bytes]:
    fileobj = cast(IO[bytes], raw)
    if kind == "gz":
        return cast(IO[bytes], gzip.GzipFile(fileobj=fileobj, mode="rb"))
    if kind == "bz2":
        return cast(IO[bytes], bz2.BZ2File(fileobj, mode="rb"))
    return cast(IO[bytes], lzma.LZMAFile(fileobj, mode="rb"))


# Decoder errors a hostile or damaged archive can raise (never echoed: only the type is named).
_DECODE_ERRORS = (
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    KeyError,
)


class _SafeTarInfo(tarfile.TarInfo):
    """Refuses extended headers larger than ``_MAX_TAR_HEADER`` before tarfile reads them."""

    def _proc_member(self, tf: tarfile.TarFile) -> tarfile.TarInfo:
        if (
            self.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
            or self.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
        ) and self.size > _MAX_TAR_HEADER:
            raise tarfile.HeaderError("extended header too large")
        result: tarfile.TarInfo = super()._proc_member(tf)  # type: ignore[misc]
        return result


class _Extractor:
    """Extracts one archive's members, with counters shared through ``options.budget``."""

    def __init__(self, artifact: Artifact, options: AcquireOptions) -> None:
        self.artifact = artifact
        self.options = options
        self.settings = options.settings
        self.dir = options.work_dir / "extract" / artifact.sha256[:16]
        self.names: set[str] = set()
        self.count = 0

    # -- naming ---------------------------------------------------------------------------------
    def inner(self, name: str) -> str:
        prefix = f"{self.artifact.inner_path}/" if self.artifact.inner_path else ""
        return prefix + name

    def refuse(self, name: str | None, reason: str) -> Refusal:
        inner = self.inner(name) if name is not None else self.artifact.inner_path
        return Refusal(source=self.artifact.source, reason=reason, inner_path=inner)

    def check(self, name: str) -> str | None:
        """Why a member is refused before reading it (path, duplicate, member count), or None."""
        reason = _unsafe_path(name)
        if reason is not None:
            return reason
        key = name.replace("\\", "/").strip("/")
        if key in self.names:
            return "duplicate member name (only the first is extracted)"
        self.names.add(key)
        return None

    def admit(self) -> None:
        """Count a member about to be written; _Limit once the member limits are crossed."""
        budget = self.options.budget
        self.count += 1
        budget.members += 1
        if budget.members > self.settings.archive_max_members:
            raise _Limit(
                f"more than {self.settings.archive_max_members} archive members: "
                "the rest of the archive is not extracted",
                whole=True,
            )

    # -- writing --------------------------------------------------------------------------------
    def target(self, name: str) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        base = _SAFE_CHARS.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1])[-100:]
        return self.dir / f"{self.count:06d}-{base or 'member'}"

    def write(self, name: str, src: _Source, consumed: Callable[[], int]) -> Artifact:
        """Stream ``src`` into a fresh file, enforcing every size limit as bytes arrive."""
        path = self.target(name)
        digest = hashlib.sha256()
        written = 0
        try:
            with path.open("xb") as out:
                while True:
                    try:
                        chunk = src.read(_CHUNK)
                    except _DECODE_ERRORS as exc:
                        raise _Unreadable(type(exc).__name__) from None
                    if not chunk:
                        break
                    written += len(chunk)
                    self.account(len(chunk), written, consumed())
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return self.artifact_of(name, path, digest.hexdigest(), written)

    def account(self, n: int, written: int, consumed: int) -> None:
        s = self.settings
        budget = self.options.budget
        budget.bytes_out += n
        if written > s.archive_max_member_bytes:
            raise _Limit(
                f"decompression bomb: member larger than {s.archive_max_member_bytes} bytes"
            )
        if budget.bytes_out > s.archive_max_total_bytes:
            raise _Limit(
                f"decompression bomb: archives expand to more than {s.archive_max_total_bytes} "
                "bytes in total: the rest of the archive is not extracted",
                whole=True,
            )
        if written > _RATIO_FLOOR and written > s.archive_max_ratio * max(consumed, 1):
            raise _Limit(
                "decompression bomb: member expands more than "
                f"{s.archive_max_ratio:g} times its compressed size"
            )

    def artifact_of(self, name: str, path: Path, sha256: str, size: int) -> Artifact:
        return Artifact(
            path=path,
            source=self.artifact.source,
            digest=Digest.known(sha256),
            size=size,
            acquired_at=datetime.now(UTC),
            media_type=sniff_media_type(read_head(path)),
            inner_path=self.inner(name),
        )

    def member(
        self, name: str, opener: Callable[[], _Source], consumed: Callable[[], int]
    ) -> Iterator[Artifact | Refusal]:
        """Extract one member and yield it (deleting its file once the consumer moves on)."""
        try:
            src = opener()
            try:
                artifact = self.write(name, src, consumed)
            finally:
                src.close()
        except _Limit as exc:
            yield self.refuse(name, exc.reason)
            if exc.whole:
                raise _Stopped from None
            return
        except _Unreadable as exc:
            yield self.refuse(name, f"unreadable member ({exc})")
            return
        except _DECODE_ERRORS as exc:
            yield self.refuse(name, f"unreadable member ({type(exc).__name__})")
            return
        try:
            yield artifact
        finally:
            artifact.path.unlink(missing_ok=True)

    # -- formats --------------------------------------------------------------------------------
    def run(self, kind: str) -> Iterator[Artifact | Refusal]:
        try:
            if kind == "zip":
                yield from self.zip()
            elif kind == "7z":
                yield from self.seven()
            else:
                yield from self.stream(kind)
        except _Limit as exc:  # raised before a member was named (member count)
            yield self.refuse(None, exc.reason)
        except _Stopped:
            return

    def zip(self) -> Iterator[Artifact | Refusal]:
        with self.artifact.path.open("rb") as f, _Counting(f) as raw:
            try:
                zf = zipfile.ZipFile(raw)
                infos = zf.infolist()
            except _DECODE_ERRORS as exc:
                yield self.refuse(None, f"unreadable zip archive ({type(exc).__name__})")
                return
            with zf:
                if len(infos) > self.settings.archive_max_members:
                    yield self.refuse(
                        None, f"more than {self.settings.archive_max_members} members"
                    )
                    return
                broken = _zip_overlaps(infos, raw)
                for info in infos:
                    yield from self.zip_member(zf, info, raw, broken)

    def zip_member(
        self,
        zf: zipfile.ZipFile,
        info: zipfile.ZipInfo,
        raw: _Counting,
        broken: dict[int, str],
    ) -> Iterator[Artifact | Refusal]:
        name = info.filename
        if name.endswith("/"):
            return
        reason = self.check(name) or broken.get(id(info))
        mode = info.external_attr >> 16
        if reason is None and stat.S_ISLNK(mode):
            reason = "symbolic link member (not followed)"
        password: bytes | None = None
        if reason is None and info.flag_bits & 0x1:
            if info.compress_type == _AES:
                reason = "AES-encrypted member: not supported (re-pack with ZipCrypto or 7z)"
            elif self.options.password is None:
                reason = "encrypted member: no password given (--password)"
            else:
                password = self.options.password.encode("utf-8")
        if reason is not None:
            yield self.refuse(name, reason)
            return
        self.admit()
        start = raw.count

        def opener() -> _Source:
            try:
                return zf.open(info, pwd=password)
            except RuntimeError as exc:
                if "password" in str(exc).lower():
                    raise _Unreadable("wrong password") from None
                raise

        yield from self.member(name, opener, lambda: raw.count - start)

    def stream(self, kind: str) -> Iterator[Artifact | Refusal]:
        """tar, tar.gz/bz2/xz, or one gzip/bzip2/xz-compressed file, read as a stream."""
        with self.artifact.path.open("rb") as f, _Counting(f) as raw:
            if kind == "tar":
                yield from self.tar(cast(IO[bytes], raw), raw)
                return
            try:
                with _decompressor(kind, raw) as probe:
                    head = probe.read(512)
            except _DECODE_ERRORS as exc:
                yield self.refuse(None, f"unreadable {kind} archive ({type(exc).__name__})")
                return
            raw.seek(0)
            raw.count = 0
            with _decompressor(kind, raw) as dec:
                if len(head) >= 262 and head[257:262] == _TAR_MAGIC:
                    yield from self.tar(dec, raw)
                    return
                own = Path(self.artifact.inner_path or self.artifact.path.name).name
                name = re.sub(r"\.(t?gz|gzip|bz2|tbz2?|xz|txz)$", "", own, flags=re.I)
                if name == own or not name:
                    name = f"{own}.decompressed"
                self.names.add(name)
                self.admit()
                yield from self.member(name, lambda: _NoClose(dec), lambda: raw.count)

    def tar(self, src: IO[bytes], raw: _Counting) -> Iterator[Artifact | Refusal]:
        try:
            tf = tarfile.open(fileobj=src, mode="r|", tarinfo=_SafeTarInfo)  # noqa: SIM115 (closed below)
        except _DECODE_ERRORS as exc:
            yield self.refuse(None, f"unreadable tar archive ({type(exc).__name__})")
            return
        with tf:
            while True:
                try:
                    info = tf.next()
                except _DECODE_ERRORS as exc:
                    yield self.refuse(
                        None,
                        f"unreadable tar archive after member {self.count} "
                        f"({type(exc).__name__}): the rest is not extracted",
                    )
                    return
                if info is None:
                    return
                yield from self.tar_member(tf, info, raw)

    def tar_member(
        self, tf: tarfile.TarFile, info: tarfile.TarInfo, raw: _Counting
    ) -> Iterator[Artifact | Refusal]:
        name = info.name
        if info.isdir():
            return
        reason = self.check(name)
        if reason is None and info.issym():
            reason = "symbolic link member (not followed)"
        elif reason is None and info.islnk():
            reason = "hard link member (not followed)"
        elif reason is None and not info.isreg():
            reason = "not a regular file"
        if reason is not None:
            yield self.refuse(name, reason)
            return
        self.admit()
        start = raw.count

        def opener() -> _Source:
            src = tf.extractfile(info)
            if src is None:
                raise _Unreadable("no data")
            return src

        yield from self.member(name, opener, lambda: raw.count - start)

    def seven(self) -> Iterator[Artifact | Refusal]:
        # py7zr takes a tenth of a second to import: only when a 7z archive turns up
        import py7zr

        from connectors.sevenzip import SevenFactory

        password = self.options.password
        try:
            archive = py7zr.SevenZipFile(self.artifact.path, mode="r", password=password)
        except py7zr.PasswordRequired:
            yield self.refuse(None, "encrypted 7z archive: no password given (--password)")
            return
        except Exception as exc:  # py7zr raises many types on hostile input; name only the type
            yield self.refuse(None, f"unreadable 7z archive ({type(exc).__name__})")
            return
        with archive:
            if password is None and archive.needs_password():
                yield self.refuse(None, "encrypted 7z archive: no password given (--password)")
                return
            files = list(archive.files)
            if len(files) > self.settings.archive_max_members:
                yield self.refuse(None, f"more than {self.settings.archive_max_members} members")
                return
            targets: list[str] = []
            for f in files:
                name = str(f.filename)
                if f.is_directory:
                    continue
                reason = self.check(name)
                if reason is None and (f.is_symlink or f.is_junction):
                    reason = "symbolic link member (not followed)"
                if reason is None and f.is_socket:
                    reason = "not a regular file"
                if reason is not None:
                    yield self.refuse(name, reason)
                    continue
                targets.append(name)
            sink = SevenFactory(self)
            failure: str | None = None
            try:
                archive.extract(path=self.dir / "7z", targets=targets, factory=sink)
            except _Limit as exc:
                failure = exc.reason
            except Exception as exc:  # see above: wrong password, corrupt stream, CRC...
                failure = f"unreadable 7z data ({type(exc).__name__})"
            done = {w.name: w for w in sink.writers if w.finished}
            failed_on = sink.current.name if sink.current and not sink.current.finished else None
            try:
                for name in targets:
                    writer = done.pop(name, None)
                    if writer is None:
                        if failure is None:
                            reason = "member not extracted"
                        elif name == failed_on:
                            reason = failure
                        else:
                            reason = f"not extracted: the archive stopped ({failure})"
                        yield self.refuse(name, reason)
                        continue
                    artifact = self.artifact_of(
                        name, writer.path, writer.digest.hexdigest(), writer.written
                    )
                    try:
                        yield artifact
                    finally:
                        writer.path.unlink(missing_ok=True)
            finally:
                for writer in sink.writers:
                    writer.discard()


class _NoClose(io.RawIOBase):
    """Lets ``member`` close its source without closing the shared decompressor under it."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._inner.read(size)

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _zip_overlaps(infos: list[zipfile.ZipInfo], raw: _Counting) -> dict[int, str]:
    """Entries whose local data overlaps another's (a crafted "zip bomb"), or whose local header
    is missing or runs past the end: ``id(info) -> reason``."""
    size = raw.seek(0, io.SEEK_END)
    spans: list[tuple[int, int, zipfile.ZipInfo]] = []
    bad: dict[int, str] = {}
    for info in infos:
        offset = info.header_offset
        raw.seek(offset)
        header = raw.read(30) or b""
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            bad[id(info)] = "corrupt zip entry (no local header)"
            continue
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        end = offset + 30 + name_len + extra_len + info.compress_size
        if end > size:
            bad[id(info)] = "corrupt zip entry (data runs past the end of the archive)"
            continue
        spans.append((offset, end, info))
    spans.sort(key=lambda s: (s[0], s[1]))
    reach = -1
    reach_info: zipfile.ZipInfo | None = None
    for start, end, info in spans:
        if start < reach and reach_info is not None:
            reason = "overlapping zip entries (zip bomb): not extracted"
            bad[id(info)] = reason
            bad[id(reach_info)] = reason
        if end > reach:
            reach, reach_info = end, info
    raw.seek(0)
    raw.count = 0
    return bad


def extract_members(
    artifact: Artifact, options: AcquireOptions, depth: int = 0
) -> Iterator[Artifact | Refusal]:
    """Every member of an archive as an Artifact, or a Refusal naming it and the reason.

    ``depth`` is the number of archives this one sits in; past ``archive_max_depth`` the
    archive is refused without being opened.
    """
    kind = _kind(artifact)
    if kind is None:
        yield Refusal(artifact.source, "not an archive", artifact.inner_path)
        return
    max_depth = options.settings.archive_max_depth
    if depth >= max_depth:
        yield Refusal(
            artifact.source,
            f"archive nested more than {max_depth} levels deep: not opened",
            artifact.inner_path,
        )
        return
    yield from _Extractor(artifact, options).run(kind)
