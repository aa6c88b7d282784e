"""The README lists every command and every environment variable the tool reads, so it cannot
fall behind the code: a new command or variable without a line there fails this test."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from qwq_ollama.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _command_paths(group: typer.Typer, prefix: str = "qwq-ollama") -> list[str]:
    click_group = typer.main.get_command(group)
    paths = []
    for name, command in click_group.commands.items():  # type: ignore[attr-defined]
        if getattr(command, "commands", None):
            paths += [f"{prefix} {name} {sub}" for sub in command.commands]
        else:
            paths.append(f"{prefix} {name}")
    return paths


def test_every_command_is_in_the_readme() -> None:
    commands = _command_paths(app)
    assert len(commands) > 10
    missing = [c for c in commands if f"`{c}" not in README]
    assert missing == [], f"README.md does not list: {', '.join(missing)}"


def test_every_environment_variable_read_is_in_the_readme() -> None:
    read = re.compile(r"""(?:environ(?:\.get)?\(|environ\[|getenv\()\s*["']([A-Z0-9_]+)["']""")
    names = set()
    for source in (ROOT / "qwq_ollama").rglob("*.py"):
        names |= set(read.findall(source.read_text()))
    names -= {"HOME", "PATH", "CPATH"}  # the system's own, read as every program reads them
    assert "OLLAMA_HOST" in names, "the scan is broken"
    missing = sorted(n for n in names if n not in README)
    assert missing == [], f"README.md does not mention: {', '.join(missing)}"


def test_every_relative_link_in_the_readme_and_the_docs_resolves() -> None:
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert ROOT / "docs" / "thinking.md" in pages and "(docs/thinking.md)" in README
    broken = [f"{page.name}: {target}" for page in pages
              for target in link.findall(page.read_text())
              if "://" not in target and not (page.parent / target).exists()]
    assert broken == []
