"""The README is the front page and docs/ holds the rest, so neither can fall behind the code:
every command is on the front page, every environment variable the tool reads is in the
reference, every docs page is linked from the front page, and every link between them lands."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from qwq_ollama.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
REFERENCE = (ROOT / "docs" / "reference.md").read_text()
FRONT_PAGE_LINES = 180  # a front page, not a manual


def _command_paths(group: typer.Typer, prefix: str = "qwq-ollama") -> list[str]:
    click_group = typer.main.get_command(group)
    paths = []
    for name, command in click_group.commands.items():  # type: ignore[attr-defined]
        if getattr(command, "commands", None):
            paths += [f"{prefix} {name} {sub}" for sub in command.commands]
        else:
            paths.append(f"{prefix} {name}")
    return paths


def test_every_command_is_on_the_front_page_and_in_the_reference() -> None:
    commands = _command_paths(app)
    assert len(commands) > 10
    for page, text in (("README.md", README), ("docs/reference.md", REFERENCE)):
        missing = [c for c in commands if f"`{c}" not in text]
        assert missing == [], f"{page} does not list: {', '.join(missing)}"


def test_every_environment_variable_read_is_in_the_reference() -> None:
    read = re.compile(r"""(?:environ(?:\.get)?\(|environ\[|getenv\()\s*["']([A-Z0-9_]+)["']""")
    names = set()
    for source in (ROOT / "qwq_ollama").rglob("*.py"):
        names |= set(read.findall(source.read_text()))
    names -= {"HOME", "PATH", "CPATH"}  # the system's own, read as every program reads them
    assert "OLLAMA_HOST" in names, "the scan is broken"
    missing = sorted(n for n in names if f"`{n}`" not in REFERENCE)
    assert missing == [], f"docs/reference.md does not mention: {', '.join(missing)}"


def test_the_readme_is_a_front_page_that_links_every_docs_page() -> None:
    assert len(README.splitlines()) <= FRONT_PAGE_LINES
    assert len(DOCS) > 8, "docs/ was not found"
    unlinked = [p.name for p in DOCS if f"](docs/{p.name})" not in README]
    assert unlinked == [], f"README.md links no: {', '.join(unlinked)}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", page.read_text(), re.M)}


def test_every_relative_link_lands_on_a_file_and_heading() -> None:
    broken = []
    for page in [ROOT / "README.md", *DOCS]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            landed = (page.parent / path).resolve() if path else page
            if not landed.exists() or (
                anchor and landed.suffix == ".md" and anchor not in _anchors(landed)
            ):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []
