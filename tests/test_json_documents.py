"""Every --json that talks to a daemon prints the document docs/reference.md gives, on a
private daemon of each pinned release: create, list, validate, compare (the offline ones and
the refusals: tests/test_cli_contract.py, test_catalog_listing.py, test_plan_cli.py,
test_chat_output.py, test_remove.py). Only the documents' shape is asserted: compare samples
(seeded by compare itself, seeds 1..N), and what the small model says is not looked at."""

from __future__ import annotations

import json
import re
from pathlib import Path

from qwq_ollama.engines.install import OllamaBinary
from qwq_ollama.engines.private_daemon import OllamaDaemon

from .conftest import run_cli
from .test_cli_contract import REFERENCE, documented_fields

SMALL = ("--weights", "smollm2-135m")
VARIANT = "qwq-noprefill"


def nested_fields(row: str) -> set[str]:
    """The backticked names after the first colon of a JSON row (its list's objects' fields),
    parentheses left out."""
    match = re.search(rf"^\| `{re.escape(row)}`[^|]*\| (.+) \|$", REFERENCE, re.M)
    assert match, row
    text = match.group(1)
    while re.search(r"\([^()]*\)", text):
        text = re.sub(r"\([^()]*\)", "", text)
    return set(re.findall(r"`(\w+)`", text.split(":", 1)[1].split("; ")[0]))


def _json(*args: str) -> dict:
    done = run_cli(*args, "--json")
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return dict(json.loads(done.stdout))


def test_the_daemon_commands_json_is_as_documented(
    ollama_binary: OllamaBinary, small_gguf: Path, tmp_path: Path
) -> None:
    assert small_gguf.exists()
    with OllamaDaemon(ollama_binary.path, tmp_path / "models") as daemon:
        host = ("--host", daemon.host)
        created = _json("create", VARIANT, *SMALL, "-q", *host)
        assert set(created) - {"schema_version"} == documented_fields("create --json")
        assert created["created"] == [VARIANT]

        listed = _json("list", VARIANT, *SMALL, *host)
        assert set(listed) - {"schema_version"} == documented_fields("list --json")
        (row,) = listed["variants"]
        assert set(row) == nested_fields("list --json")
        assert (row["variant"], row["registered"], row["up_to_date"]) == (VARIANT, True, True)

        checked = _json("validate", VARIANT, *SMALL, "--checks", "registration", *host)
        assert set(checked) - {"schema_version"} == documented_fields("validate --json")
        assert checked["daemon_version"] == ollama_binary.version
        finding = checked["findings"][0]
        assert set(finding) == nested_fields("doctor --json")

        compared = _json("compare", VARIANT, "--seeds", "1", "--num-predict", "16", "-q", *host)
        assert set(compared) - {"schema_version"} == documented_fields("compare --json")
        (run,) = compared["runs"]
        assert (run["variant"], run["seed"]) == (VARIANT, 1)
