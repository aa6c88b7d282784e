"""Template families: each family's rendered Hugging Face templates against its official
template, judged by transformers, for every variant and every thinking setting; catalog errors
about families; and a family added from a fixture folder, with data and templates alone."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from transformers.utils.chat_template_utils import render_jinja_template

from qwq_ollama.catalog.chat_template import render_chat
from qwq_ollama.catalog.conversation import (
    Conversation,
    as_hf_messages,
    load_corpus,
    parse_conversation,
)
from qwq_ollama.catalog.family import load_family
from qwq_ollama.catalog.render import render_all, render_variant
from qwq_ollama.catalog.schema import Catalog, Variant, load_catalog
from qwq_ollama.errors import InputError

from .conftest import DATA

CONVERSATIONS = [
    parse_conversation(json.loads(p.read_text()), source=p)
    for p in sorted((DATA / "conversations").glob("*.json"))
] + load_corpus()
FIXTURE_FAMILY = DATA / "families" / "plain-chatml"


def transformers_render(
    template: str, conv: Conversation, variant: Variant, *, generation: bool = True, **switches: Any
) -> str:
    """The prompt transformers builds from `template` for a Hugging Face client's messages,
    with the tokens a tokenizer of the family passes."""
    variables: dict[str, Any] = {**variant.family.template_tokens, **switches}
    tools: list[Any] | None = conv.tools
    return render_jinja_template(
        [as_hf_messages(conv.messages)],
        tools=tools,
        chat_template=template,
        add_generation_prompt=generation,
        **variables,
    )[0][0]


def official_prompt(variant: Variant, conv: Conversation, generation: bool) -> str:
    """What the official template renders for this variant's settings: enable_thinking passed
    as the variant sets it; a variant without the prefill ends where the prefill would begin."""
    family = variant.family
    official = family.official_file.read_text(encoding="utf-8")
    if family.switch == "enable_thinking":
        return transformers_render(
            official, conv, variant, generation=generation, enable_thinking=variant.enable_thinking
        )
    prompt = transformers_render(official, conv, variant, generation=generation)
    if family.switch == "prefill" and not variant.think_prefill and generation:
        assert prompt.endswith(family.prefill_text), "the official template does not prefill"
        prompt = prompt.removesuffix(family.prefill_text)
    return prompt


def variants_of(catalog: Catalog) -> list[str]:
    return list(catalog.variants)


CATALOG = load_catalog()


def test_the_catalog_has_the_three_reasoning_families() -> None:
    assert {"qwq", "qwen3", "deepseek-r1"} <= set(CATALOG.families)
    switches = {name: f.switch for name, f in CATALOG.families.items()}
    assert switches["qwq"] == "prefill" and switches["deepseek-r1"] == "prefill"
    assert switches["qwen3"] == "enable_thinking"


@pytest.mark.parametrize("family", sorted(CATALOG.families))
def test_each_official_template_is_the_file_its_family_declares(family: str) -> None:
    declared = CATALOG.families[family]
    assert (
        hashlib.sha256(declared.official_file.read_bytes()).hexdigest() == declared.official_sha256
    )


@pytest.mark.parametrize("conv", CONVERSATIONS, ids=lambda c: c.name)
@pytest.mark.parametrize("name", variants_of(CATALOG))
@pytest.mark.parametrize("generation", [True, False], ids=["gen", "no-gen"])
def test_every_variant_renders_exactly_as_its_official_template(
    name: str, conv: Conversation, generation: bool
) -> None:
    variant = CATALOG.variant(name)
    ours = render_variant(CATALOG, variant).hf_template
    assert transformers_render(ours, conv, variant, generation=generation) == official_prompt(
        variant, conv, generation
    )


@pytest.mark.parametrize("conv", CONVERSATIONS, ids=lambda c: c.name)
@pytest.mark.parametrize("enable_thinking", [True, False])
def test_qwen3_templates_still_take_enable_thinking(
    conv: Conversation, enable_thinking: bool
) -> None:
    """A Hugging Face user can still switch per request, whichever variant's file they load."""
    for name in ("qwen3-thinking", "qwen3-nothink"):
        variant = CATALOG.variant(name)
        ours = render_variant(CATALOG, variant).hf_template
        official = variant.family.official_file.read_text(encoding="utf-8")
        assert transformers_render(
            ours, conv, variant, enable_thinking=enable_thinking
        ) == transformers_render(official, conv, variant, enable_thinking=enable_thinking)


def test_qwen3_generation_prompts_follow_the_switch() -> None:
    assert CATALOG.variant("qwen3-thinking").generation_prompt == "<|im_start|>assistant\n"
    assert (
        CATALOG.variant("qwen3-nothink").generation_prompt
        == "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    assert CATALOG.variant("r1-distill-qwen").generation_prompt == "<｜Assistant｜><think>\n"


def test_each_variant_gets_its_familys_published_sampling_and_stops() -> None:
    thinking = CATALOG.variant("qwen3-thinking").parameters
    plain = CATALOG.variant("qwen3-nothink").parameters
    r1 = CATALOG.variant("r1-distill-qwen").parameters
    assert (thinking.temperature, thinking.top_p, thinking.top_k, thinking.min_p) == (
        0.6,
        0.95,
        20,
        0.0,
    )
    assert (plain.temperature, plain.top_p, plain.top_k, plain.min_p) == (0.7, 0.8, 20, 0.0)
    assert (r1.temperature, r1.top_p) == (0.6, 0.95)
    assert r1.stop == ["<｜end▁of▁sentence｜>", "<｜User｜>"]
    # The catalog's own defaults still apply on top: no repeat penalty, a long context.
    assert r1.repeat_penalty == 1.0 and r1.num_ctx == 16384
    assert CATALOG.variant("qwq-minp").parameters.temperature == 1.5


def test_r1_tool_calls_render_as_the_official_template_for_a_null_content() -> None:
    """The official R1 template writes tool calls only for a message whose content is null
    (an OpenAI-style client); such messages cannot come from a conversation file, so here raw."""
    variant = CATALOG.variant("r1-distill-qwen")
    ours = render_variant(CATALOG, variant).hf_template
    official = variant.family.official_file.read_text(encoding="utf-8")
    call = {"type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "S1"},
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": None, "tool_calls": [call, call]},
        {"role": "tool", "content": "2"},
        {"role": "tool", "content": "3"},
        {"role": "assistant", "content": "<think>x</think>done"},
        {"role": "system", "content": "S2"},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": "4"},
    ]
    for generation in (True, False):
        want = render_chat(
            official,
            messages,
            add_generation_prompt=generation,
            bos_token="<｜begin▁of▁sentence｜>",
        )
        assert (
            render_chat(
                ours,
                messages,
                add_generation_prompt=generation,
                bos_token="<｜begin▁of▁sentence｜>",
            )
            == want
        )
    assert want.startswith("<｜begin▁of▁sentence｜>S2<｜User｜>Q")


def _catalog_with(project: Path, variants: str, *, family: Path | None = None) -> Path:
    """The project copy's catalog with `variants` appended (and a family folder copied in)."""
    if family is not None:
        shutil.copytree(family, project / "templates" / family.name)
    catalog = project / "modelfiles" / "models.yaml"
    catalog.write_text(catalog.read_text() + variants)
    return catalog


@pytest.mark.parametrize(
    ("variant_text", "field", "words"),
    [
        (
            "  bad:\n    template: qwen3\n    think_prefill: false\n",
            "variants.bad.think_prefill",
            "think_prefill does not apply to template family 'qwen3'",
        ),
        (
            "  bad:\n    enable_thinking: false\n",
            "variants.bad.enable_thinking",
            "enable_thinking does not apply to template family 'qwq'",
        ),
    ],
)
def test_a_thinking_field_the_family_has_no_use_for_is_refused_at_its_line(
    project_copy: Path, variant_text: str, field: str, words: str
) -> None:
    catalog = _catalog_with(project_copy, "\n" + variant_text)
    with pytest.raises(InputError) as caught:
        load_catalog(catalog)
    assert caught.value.field == field and words in str(caught.value)
    lines = catalog.read_text().splitlines()
    assert lines[(caught.value.line or 0) - 1].strip().startswith(field.rsplit(".", 1)[1])


def test_a_bad_family_file_names_its_line_and_field(tmp_path: Path) -> None:
    family = tmp_path / "fixture"
    shutil.copytree(FIXTURE_FAMILY, family)
    text = (family / "family.yaml").read_text()
    (family / "family.yaml").write_text(
        text.replace("when: consecutive_same_role", "when: sometimes")
    )
    with pytest.raises(InputError) as caught:
        load_family(family)
    assert str(caught.value.file) == str(family / "family.yaml")
    assert caught.value.field == "divergences.0.when" and "unknown condition" in str(caught.value)
    assert (
        "sometimes"
        in (family / "family.yaml").read_text().splitlines()[(caught.value.line or 0) - 1]
    )


def test_a_family_is_added_with_data_and_templates_alone(project_copy: Path) -> None:
    """The fixture folder (family.yaml, two Jinja sources, its official template) becomes a
    family: render writes its variant, which reproduces the official template and carries the
    family's sampling, with no code naming it."""
    catalog_file = _catalog_with(
        project_copy,
        "\n  plain:\n    template: plain-chatml\n    weights: smollm2-135m\n",
        family=FIXTURE_FAMILY,
    )
    catalog = load_catalog(catalog_file)
    variant = catalog.variant("plain")
    assert variant.family.name == "plain-chatml" and variant.family.switch == "none"
    assert variant.parameters.temperature == 0.3 and variant.parameters.stop == ["<|im_end|>"]
    result = render_all(catalog)
    assert catalog_file.parent / "plain.Modelfile" in result.written
    assert "PARAMETER stop <|im_end|>" in (catalog_file.parent / "plain.Modelfile").read_text()
    ours = render_variant(catalog, variant).hf_template
    # The fixture's toy template has no branch for a null content (OpenAI tool calls).
    for conv in [c for c in CONVERSATIONS if all(m["content"] is not None for m in c.messages)]:
        assert transformers_render(ours, conv, variant) == official_prompt(variant, conv, True)


def test_a_divergence_must_say_how_it_is_still_compared(tmp_path: Path) -> None:
    """A divergence without an expectation would excuse a difference unseen."""
    family = tmp_path / "fixture"
    shutil.copytree(FIXTURE_FAMILY, family)
    text = (family / "family.yaml").read_text()
    (family / "family.yaml").write_text(text.replace("    expect: ollama_merges_roles\n", ""))
    with pytest.raises(InputError) as caught:
        load_family(family)
    assert str(caught.value).endswith("divergences.0.expect: required")
