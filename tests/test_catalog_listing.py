"""`qwq-ollama catalog`: the catalog read without a daemon, variants with their family, weights
and defaults, and each weights entry's source; `gguf:` and `ollama:` weights, the way to reuse a
file or a pulled model, listed as the README and docs/catalog.md say."""

from __future__ import annotations

import json
import re
from pathlib import Path

from qwq_ollama.catalog.schema import load_catalog

from .conftest import ROOT, run_cli
from .test_cli_contract import CountingListener, documented_fields

CATALOG = ROOT / "modelfiles" / "models.yaml"


def _catalog_with_own_weights(tmp_path: Path) -> Path:
    """The project's catalog plus a GGUF file and a pulled model as weights, as a user adds."""
    text = CATALOG.read_text().replace(
        "templates: ../templates", f"templates: {ROOT / 'templates'}"
    )
    own = (
        "weights:\n  my-qwq:\n    gguf: ~/models/QwQ-32B-Q4_K_M.gguf\n"
        "  pulled-qwq:\n    ollama: qwq\n"
    )
    mine = tmp_path / "models.yaml"
    mine.write_text(text.replace("weights:\n", own, 1))
    return mine


def test_the_catalog_lists_offline_and_asks_no_daemon() -> None:
    listener = CountingListener()
    try:
        result = run_cli("catalog", "--json", env={"OLLAMA_HOST": listener.host})
    finally:
        listener.close()
    assert result.returncode == 0, result.stderr
    assert listener.accepted == 0
    document = json.loads(result.stdout)
    assert set(document) - {"schema_version"} == documented_fields("catalog --json")
    catalog = load_catalog(CATALOG)
    rows = {row["variant"]: row for row in document["variants"]}
    assert list(rows) == list(catalog.variants)
    assert [n for n, row in rows.items() if row["default"]] == list(catalog.default_names)
    assert rows["qwq-fixed"]["family"] == "qwq" and rows["qwq-fixed"]["weights"] == "qwq-32b"
    assert rows["qwq-fixed"]["num_ctx"] == catalog.variant("qwq-fixed").parameters.num_ctx
    sources = {w["weights"]: (w["source"], w["from"]) for w in document["weights"]}
    assert sources["qwq-32b"] == ("hf", "unsloth/QwQ-32B-GGUF (Q4_K_M)")


def test_gguf_and_ollama_weights_are_listed_with_their_source(tmp_path: Path) -> None:
    mine = _catalog_with_own_weights(tmp_path)
    table = run_cli("catalog", "--catalog", str(mine))
    assert table.returncode == 0, table.stderr
    assert re.search(r"^pulled-qwq\s+ollama: qwq$", table.stdout, re.M), table.stdout
    gguf = re.search(r"^my-qwq\s+gguf: (\S+)$", table.stdout, re.M)
    assert gguf and gguf.group(1) == str(Path("~/models/QwQ-32B-Q4_K_M.gguf").expanduser())
    assert re.search(r"^qwq-fixed\s+qwq\s+qwq-32b\s+yes\s+16384\s+0\.6$", table.stdout, re.M)


def test_the_readme_and_catalog_page_show_how_to_reuse_weights() -> None:
    readme = (ROOT / "README.md").read_text()
    page = (ROOT / "docs" / "catalog.md").read_text()
    for text in (readme, page):
        assert "gguf: " in text and "ollama: qwq" in text
    # the page's example is a catalog that loads
    example = re.search(r"```yaml\n(weights:\n.*?)```", page, re.S)
    assert example, "docs/catalog.md shows no weights example"
    assert "my-qwq:" in example.group(1) and "pulled-qwq:" in example.group(1)
