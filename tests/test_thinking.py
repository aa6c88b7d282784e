"""Thinking control without a daemon: what each family declares for `think` and
`reasoning_effort`, how `chat` turns a request into what it sends (or refuses), the thinking
budget in the catalog and in the exported llama-server command, and compare's budget columns.
The live proofs are in test_thinking_live.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qwq_ollama.artifacts.export import llama_cpp_command
from qwq_ollama.catalog.family import THINK_REQUESTS, load_family
from qwq_ollama.catalog.schema import Catalog, load_catalog
from qwq_ollama.checks.ab import RunStats, summarise, table_rows
from qwq_ollama.checks.budget import continuation_prompt
from qwq_ollama.checks.thinking import request_name, resolve_think
from qwq_ollama.errors import InputError

from .conftest import ROOT, run_cli
from .test_export import bash_argv

QWEN_EARLY_STOP = (
    "Considering the limited time by the user, I have to give the solution based "
    "on the thinking directly now."
)


def _with_budget(project: Path, name: str, budget: int, base: str = "qwq-fixed") -> Catalog:
    catalog = project / "modelfiles" / "models.yaml"
    catalog.write_text(
        catalog.read_text() + f"\n  {name}:\n    extends: {base}\n    think_budget: {budget}\n"
    )
    return load_catalog(catalog)


def test_every_family_declares_every_request(catalog: Catalog) -> None:
    for family in catalog.families.values():
        assert set(family.think_requests) == set(THINK_REQUESTS), family.name
        for meaning in family.think_requests.values():
            assert meaning.does == "switch" or meaning.why, (family.name, meaning)


def test_only_qwen3_switches_thinking_off(catalog: Catalog) -> None:
    off = {name: f.think_requests["think_off"].does for name, f in catalog.families.items()}
    assert off == {"qwq": "refuse", "qwen3": "switch", "deepseek-r1": "refuse"}


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        (
            "think_off:\n    does: refuse",
            "think_off:\n    does: switch",
            "think_requests.think_off.does",
            "switch prefill cannot turn thinking off",
        ),
        (
            "effort_low: &level\n    does: ignore\n    why: >-\n      QwQ has no effort levels: it "
            "reasons as long as it needs; cap it with think_budget",
            "effort_low: &level\n    does: ignore",
            "think_requests.effort_low.does",
            "needs `why`",
        ),
        ("  effort_high: *level\n", "", "think_requests", "effort_high"),
        (
            'early_stop: "Considering',
            'early_stop: ""\nunused: "Considering',
            "early_stop",
            "at least 1 character",
        ),
    ],
)
def test_a_bad_thinking_declaration_names_its_line_and_field(
    tmp_path: Path, old: str, new: str, field: str, words: str
) -> None:
    folder = tmp_path / "qwq"
    shutil.copytree(ROOT / "templates" / "qwq", folder)
    file = folder / "family.yaml"
    text = file.read_text()
    assert old in text
    file.write_text(text.replace(old, new))
    with pytest.raises(InputError) as caught:
        load_family(folder)
    assert str(caught.value.file) == str(file) and caught.value.field is not None
    assert caught.value.field.startswith(field) and words in str(caught.value)
    assert caught.value.line is not None


def test_early_stop_text_is_the_familys_sentence_then_its_close_tag(catalog: Catalog) -> None:
    qwq = catalog.variant("qwq-fixed").family
    assert qwq.early_stop_text() == f"\n\n{QWEN_EARLY_STOP}\n</think>\n\n"
    assert catalog.variant("qwen3-thinking").family.early_stop == QWEN_EARLY_STOP
    assert (
        "Considering the limited time" not in catalog.variant("r1-distill-qwen").family.early_stop
    )  # DeepSeek publishes none


def test_chat_sends_switched_requests_notes_ignored_ones_and_refuses_the_rest(
    catalog: Catalog,
) -> None:
    assert resolve_think(catalog.variant("qwen3-thinking"), "think_off") == (False, None)
    assert resolve_think(catalog.variant("qwen3-thinking"), "effort_none") == (False, None)
    assert resolve_think(catalog.variant("qwq-fixed"), "think_on") == (True, None)
    sent, note = resolve_think(catalog.variant("qwen3-nothink"), "think_on")
    assert sent is None and note is not None and "thinking off in its template" in note
    sent, note = resolve_think(catalog.variant("qwq-fixed"), "effort_high")
    assert sent is None and note is not None and "no effort levels" in note
    for name in ("qwq-fixed", "qwq-noprefill", "r1-distill-qwen"):
        with pytest.raises(InputError) as caught:
            resolve_think(catalog.variant(name), "think_off")
        assert "reasoning arrives as the answer" in str(caught.value)
    with pytest.raises(InputError, match="unknown reasoning effort 'max'"):
        request_name(effort="max")


def test_chat_refuses_think_off_for_qwq_before_reaching_a_daemon() -> None:
    result = run_cli(
        "chat",
        "qwq-fixed",
        "Hi",
        "--no-think",
        "--seed",
        "1",
        env={"OLLAMA_HOST": "http://127.0.0.1:9"},
    )
    assert result.returncode == 2, result.stderr
    assert "qwq-fixed refuses think: false" in result.stderr
    assert "--think" in result.stderr and "cannot reach" not in result.stderr


def test_a_budget_on_a_variant_without_thinking_is_refused_at_its_line(project_copy: Path) -> None:
    with pytest.raises(InputError) as caught:
        _with_budget(project_copy, "nothink-budget", 64, base="qwen3-nothink")
    assert caught.value.field == "variants.nothink-budget.think_budget"
    lines = (project_copy / "modelfiles" / "models.yaml").read_text().splitlines()
    assert caught.value.line is not None
    assert lines[caught.value.line - 1].strip() == "think_budget: 64"


def test_the_budget_reaches_llama_server_with_the_familys_message(project_copy: Path) -> None:
    catalog = _with_budget(project_copy, "qwq-capped", 512)
    command = llama_cpp_command(
        catalog, "qwq-capped", binary="llama-server", model_path="m.gguf", template_path="t.jinja"
    )
    argv = bash_argv(command.script, "llama-server")
    assert argv[argv.index("--reasoning-budget") + 1] == "512"
    assert argv[argv.index("--reasoning-budget-message") + 1] == f"\n\n{QWEN_EARLY_STOP}\n"
    plain = llama_cpp_command(
        catalog, "qwq-fixed", binary="llama-server", model_path="m.gguf", template_path="t.jinja"
    )
    assert "--reasoning-budget" not in plain.argv


def test_the_continuation_is_the_prompt_the_thinking_and_the_early_stop(catalog: Catalog) -> None:
    fixed = catalog.variant("qwq-fixed")
    prompt = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n"
    text = continuation_prompt(fixed, prompt, "Let me see")
    assert text == prompt + "Let me see" + fixed.family.early_stop_text()
    # Without the prefill the model wrote <think> itself, which the daemon took off the thinking.
    bare = prompt.removesuffix("<think>\n")
    assert (
        continuation_prompt(catalog.variant("qwq-noprefill"), bare, "Hm")
        == bare + "<think>\nHm" + fixed.family.early_stop_text()
    )


def test_compare_shows_what_the_budget_did() -> None:
    runs = [
        RunStats(
            "qwq-fixed",
            seed,
            False,
            None,
            0.1,
            32,
            answer,
            10.0,
            None,
            "stop",
            think_budget=32,
            capped=True,
        )
        for seed, answer in ((1, 12), (2, 0))
    ]
    runs.append(RunStats("qwq-baseline", 1, True, 40, 0.1, 90, 0, 10.0, None, "length"))
    rows = table_rows(summarise(runs))
    header = rows[0]
    fixed = dict(zip(header, rows[1], strict=True))
    assert (fixed["think budget"], fixed["capped"], fixed["answered"]) == ("32", "100%", "50%")
    baseline = dict(zip(header, rows[2], strict=True))
    assert (baseline["think budget"], baseline["capped"], baseline["loop rate"]) == (
        "-",
        "-",
        "100%",
    )
    plain = table_rows(summarise(runs[2:]))
    assert "think budget" not in plain[0]


def test_the_docs_table_says_what_the_catalog_declares(catalog: Catalog) -> None:
    from qwq_ollama.checks.thinking import requests_table

    page = (ROOT / "docs" / "thinking.md").read_text()
    start = page.index("-->\n", page.index("<!-- requests-table")) + 4
    shown = page[start : page.index("<!-- /requests-table -->")].strip()
    assert shown == requests_table(list(catalog.variants.values())).strip()


@pytest.mark.parametrize("base", ["qwq-noprefill", "qwen3-thinking", "qwen3-nothink"])
def test_a_parser_on_a_variant_that_does_not_open_the_reasoning_is_refused_at_its_line(
    project_copy: Path, base: str
) -> None:
    """PARSER qwen3-thinking files an answer written without <think> as thinking
    (docs/oracles.md): only a prompt that opens the reasoning may use it."""
    catalog = project_copy / "modelfiles" / "models.yaml"
    catalog.write_text(
        catalog.read_text() + f"\n  parsed:\n    extends: {base}\n    parser: qwen3-thinking\n"
    )
    with pytest.raises(InputError) as caught:
        load_catalog(catalog)
    assert caught.value.field == "variants.parsed.parser"
    assert "opens the reasoning" in str(caught.value)
    assert caught.value.line is not None
    lines = catalog.read_text().splitlines()
    assert lines[caught.value.line - 1].strip() == "parser: qwen3-thinking"
