"""A throw-away GnuPG home with the keys the hand-over tests need, made by real gpg."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Gpg:
    home: Path

    def run(self, *args: str, input_: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "GNUPGHOME": str(self.home)}
        return subprocess.run(
            ["gpg", "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", "", *args],
            input=input_,
            capture_output=True,
            env=env,
            check=False,
            timeout=120,
        )

    def make_key(self, uid: str, algo: str, usage: str, expiry: str = "never", *extra: str) -> str:
        """A new primary key; returns its fingerprint."""
        done = self.run(*extra, "--quick-gen-key", uid, algo, usage, expiry)
        assert done.returncode == 0, done.stderr.decode()
        listing = self.run("--with-colons", "--list-keys", uid).stdout.decode()
        return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))

    def add_subkey(self, fingerprint: str, algo: str, usage: str, *extra: str) -> None:
        done = self.run(
            *extra, "--quick-add-key", fingerprint, algo, usage, "1y" if extra else "never"
        )
        assert done.returncode == 0, done.stderr.decode()

    def export(self, fingerprint: str, path: Path) -> Path:
        path.write_bytes(self.run("--armor", "--export", fingerprint).stdout)
        return path


@contextmanager
def gpg_home() -> Iterator[Gpg]:
    """A short path (gpg-agent's socket path has a length limit), removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="lwgpg", dir="/tmp"))
    home.chmod(0o700)
    try:
        yield Gpg(home)
    finally:
        subprocess.run(
            ["gpgconf", "--kill", "all"],
            env={**os.environ, "GNUPGHOME": str(home)},
            capture_output=True,
            check=False,
        )
        shutil.rmtree(home, ignore_errors=True)
