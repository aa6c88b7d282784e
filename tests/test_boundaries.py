"""One owner per concept, checked from the imports: only `qwq_ollama/server/` talks HTTP (httpx,
the ollama client), and nothing but the CLI imports typer."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "qwq_ollama"


def _imported_roots(source: Path) -> set[str]:
    """Top-level names of every module the file imports, at any depth of the code."""
    roots = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


def _modules() -> list[Path]:
    found = sorted(PACKAGE.rglob("*.py"))
    assert len(found) > 30, "the package was not found"
    return found


def test_only_the_server_package_talks_http() -> None:
    talking = [str(p.relative_to(PACKAGE)) for p in _modules()
               if {"httpx", "ollama"} & _imported_roots(p)
               and p.parent.name != "server"]
    assert talking == []


def test_only_the_cli_imports_typer() -> None:
    users = [str(p.relative_to(PACKAGE)) for p in _modules() if "typer" in _imported_roots(p)]
    assert users == ["cli.py"]
