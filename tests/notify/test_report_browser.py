"""The report in a real headless Chromium: every section and chart renders, the console is silent."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from report_breach import build_breach
from report_page import ReportPage

SECTIONS = {
    "timeline": 0,
    "figures": 0,
    "sources": 0,
    "rejects": 0,
    "roles": 0,
    "exposed": 3,
    "notices": 1,
    "overlap": 1,
    "former": 1,
}
_NAMES = ("chromium", "chromium-browser")


def _tail(text: str) -> str:
    return " ".join(text.strip().splitlines()[-3:])[:400]


def _install_chromium() -> str:
    """Debian's chromium, installed here where missing (CI: a fresh machine, as root)."""
    found = next((p for p in map(shutil.which, _NAMES) if p), None)
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("Chromium is missing and cannot be installed: no apt-get (not Debian)")
    if os.geteuid() != 0:
        pytest.skip("Chromium is missing and cannot be installed: apt-get needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            pytest.skip(f"Chromium cannot be installed ({' '.join(argv)}): {_tail(done.stderr)}")
    found = next((p for p in map(shutil.which, _NAMES) if p), None)
    if not found:
        pytest.skip("apt-get installed chromium but no chromium command is on PATH")
    return found


@pytest.fixture(scope="session")
def chromium() -> str:
    return _install_chromium()


def _run(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)


def test_report_renders_in_chromium(chromium: str, leakwatch_env: Path, tmp_path: Path) -> None:
    built = build_breach(tmp_path)
    url = built.report.resolve().as_uri()
    dom = _run(chromium, tmp_path / "profile", "--dump-dom", url)
    assert dom.returncode == 0, _tail(dom.stderr)
    page = ReportPage(dom.stdout)
    for section, charts in SECTIONS.items():
        assert section in page.sections, f"section {section} missing from the rendered page"
        assert page.svgs[section] == charts, section
    assert page.figures["Exposed customers"] != "0"
    # The page has no script: any console message (a CSP refusal, a failed load) is an error.
    console = [
        line for line in dom.stderr.splitlines() if ":CONSOLE" in line or "Refused to" in line
    ]
    assert console == []

    shot = tmp_path / "report.png"
    done = _run(
        chromium,
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1200,3000",
        "--hide-scrollbars",
        url,
    )
    assert done.returncode == 0, _tail(done.stderr)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
