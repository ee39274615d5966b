"""No module binds one of its top-level names twice: a second statement of the same name would
silently replace the first for every caller (it happened: an UPDATE took a count's name)."""

from __future__ import annotations

import ast
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The project's packages, as the type check lists them: a package added there is checked here.
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"][
    "packages"
]


def _bound_twice(source: str) -> list[str]:
    names: Counter[str] = Counter()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            if isinstance(node.target, ast.Name):
                names[node.target.id] += 1
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] += 1
    return sorted(name for name, n in names.items() if n > 1)


def test_the_check_finds_a_name_bound_twice() -> None:
    source = "A = 1\nB: int = 2\ndef f(): pass\nA = 3\nclass f: pass\n"
    assert _bound_twice(source) == ["A", "f"]


def test_no_module_binds_a_top_level_name_twice() -> None:
    assert PACKAGES and all((ROOT / package).is_dir() for package in PACKAGES)
    found = {
        str(path.relative_to(ROOT)): twice
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if (twice := _bound_twice(path.read_text(encoding="utf-8")))
    }
    assert found == {}
