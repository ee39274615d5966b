"""The lock files are one resolution, and they keep design.md §4's pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if match := _PIN.match(line.strip()):
            pins[_norm(match.group(1))] = match.group(2)
    return pins


def _uv_lock() -> dict[str, str]:
    data = tomllib.loads((ROOT / "uv.lock").read_text())
    return {_norm(p["name"]): p["version"] for p in data["package"] if p["name"] != "leakwatch"}


def _pylock() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pylock.toml").read_text())
    return {_norm(p["name"]): p["version"] for p in data["packages"]}


@pytest.mark.parametrize(
    "pins",
    [
        pytest.param(lambda: _requirements(ROOT / "requirements.lock"), id="requirements.lock"),
        pytest.param(lambda: _requirements(ROOT / "requirements.txt"), id="requirements.txt"),
        pytest.param(_pylock, id="pylock.toml"),
    ],
)
def test_every_export_agrees_with_uv_lock(pins: object) -> None:
    resolved = _uv_lock()
    exported = pins()  # type: ignore[operator]
    assert exported, "no pins read"
    assert {k: v for k, v in exported.items() if resolved.get(k) != v} == {}


def test_runtime_lock_is_the_install_lock_without_dev_tools() -> None:
    full = _requirements(ROOT / "requirements.lock")
    runtime = _requirements(ROOT / "requirements.txt")
    assert set(runtime) < set(full)
    assert "pytest" in full
    assert "pytest" not in runtime


def test_design_pins_hold() -> None:
    pins = _requirements(ROOT / "requirements.lock")
    assert pins["prefect"] == "3.8.8"
    assert tuple(int(x) for x in pins["fastapi"].split(".")[:2]) < (0, 151)
    assert tuple(int(x) for x in pins["sqlalchemy"].split(".")[:2]) < (2, 1)
    assert int(pins["cryptography"].split(".")[0]) < 51
