"""`web/openai/` builds on `web/api/`; nothing in `web/api/` imports `web/openai/` (no import cycle between them)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WEB_API = Path(__file__).resolve().parents[2] / "web" / "api"


def imported_modules(source: Path) -> set[str]:
    """Every module a file imports, at top level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("source", sorted(WEB_API.glob("*.py")), ids=lambda path: path.name)
def test_web_api_never_imports_web_openai(source: Path) -> None:
    leaks = sorted(name for name in imported_modules(source) if name == "web.openai" or name.startswith("web.openai."))
    assert leaks == [], f"web/api/{source.name} imports {leaks}"
