"""The oracles are the models' current published chat templates, each held by sources.json: the
file's bytes, the family's declaration and the record of where the text was found must agree,
and every oracle must cite at least two programmatic dumps of the Hub file by repository, path
and commit. Older revisions are kept beside them as history, never as the oracle."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from transformers.utils.chat_template_utils import render_jinja_template

from qwq_ollama.catalog.schema import load_catalog

OFFICIAL = Path(__file__).parent / "data" / "official"
SOURCES: dict[str, dict[str, object]] = json.loads(
    (OFFICIAL / "sources.json").read_text(encoding="utf-8"),
)
CATALOG = load_catalog()
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cited(source: object) -> tuple[str, str, str]:
    assert isinstance(source, dict)
    repo, path, commit = source.get("repo"), source.get("path"), source.get("commit")
    assert isinstance(repo, str) and isinstance(path, str) and isinstance(commit, str)
    assert COMMIT.match(commit), f"{repo}: commit {commit!r} is not a full hash"
    return repo, path, commit


@pytest.mark.parametrize("family", sorted(CATALOG.families))
def test_each_familys_oracle_is_recorded_with_the_same_digest(family: str) -> None:
    declared = CATALOG.families[family]
    entry = SOURCES[declared.official_file.name]
    assert _sha256(declared.official_file) == declared.official_sha256 == entry["sha256"]
    assert declared.official_file.stat().st_size == entry["bytes"]


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_each_oracle_names_two_programmatic_sources(name: str) -> None:
    entry = SOURCES[name]
    assert _sha256(OFFICIAL / name) == entry["sha256"]
    sources = entry["sources"]
    assert isinstance(sources, list)
    cited = {_cited(source) for source in sources}
    assert len(cited) >= 2, f"{name}: {len(cited)} source(s)"
    # Two dumps in different repositories, or one repository could be copying itself.
    assert len({repo for repo, _, _ in cited}) >= 2


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_older_revisions_are_kept_as_history_and_differ(name: str) -> None:
    history = SOURCES[name].get("history", [])
    assert isinstance(history, list)
    for revision in history:
        assert isinstance(revision, dict)
        kept = OFFICIAL / str(revision["file"])
        assert _sha256(kept) == revision["sha256"] != SOURCES[name]["sha256"]
        assert revision["differs"] and revision["sources"]


def test_the_qwq_oracle_keeps_the_final_assistant_reasoning() -> None:
    """The March 2025 revision cuts reasoning only from earlier assistant turns; the launch text
    cut every one. The oracle must be the revision that keeps it."""

    def render(name: str) -> str:
        messages = [
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "<think>\nTwo and two.\n</think>\n\n4"},
        ]
        template = (OFFICIAL / name).read_text(encoding="utf-8")
        rendered = render_jinja_template([messages], chat_template=template)[0][0]
        assert isinstance(rendered, str)
        return rendered

    assert render("qwq-32b.chat_template.jinja").endswith(
        "<|im_start|>assistant\n<think>\nTwo and two.\n</think>\n\n4<|im_end|>\n",
    )
    assert render("qwq-32b.launch.chat_template.jinja").endswith(
        "<|im_start|>assistant\n4<|im_end|>\n",
    )
