"""A thinking budget on Ollama, which has none: cap the reasoning at N tokens, then let the model
answer in the same context.

Qwen's recipe for its thinking models: generate until the thinking reaches the budget, stop,
append the family's early-stop sentence and its close tag, and let the model go on from there.
Here: stream the chat (the daemon splits thinking from answer), stop the stream once N
thinking tokens have arrived with no answer begun, then continue with /api/generate in raw mode
from the exact prompt the daemon built, the thinking so far and the early-stop text
(`Family.early_stop_text`). A model that closes its reasoning within the budget is not touched.

Tokens are counted as the daemon's stream chunks: every pinned Ollama sends one chunk per
sampled token, except where a tag or the thinking/answer split joins or cuts one (so the cap
holds to within a chunk or two, "the engine's chunking").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qwq_ollama.catalog.schema import Variant
from qwq_ollama.checks.generation import ChatResult, Sink, run_chat
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.errors import InputError

BUDGET_REACHED = "the thinking budget"


@dataclass(frozen=True)
class BudgetOutcome:
    """What the budget did to one run."""

    budget: int
    thinking_tokens: int  # thinking chunks before the stop (or in all, if not capped)
    capped: bool  # the budget ended the thinking
    answer_tokens: int  # after the early-stop text, when capped
    early_stop: str  # the text appended when capped, else ""


def check_budget(budget: int | None, field: str = "--think-budget") -> int | None:
    if budget is not None and budget < 1:
        raise InputError(
            f"a thinking budget is a number of tokens, 1 or more (got {budget})", field=field
        )
    return budget


def thinking_tokens(result: ChatResult) -> int:
    return sum(1 for kind, _ in result.chunks if kind == "thinking")


class ThinkingCount:
    """The thinking chunks of a growing result, counted once each: `update` looks only at the
    chunks that came since its last call (re-counting them all for each new one made a 40,000
    token run 26 times slower). `examined` says how many it looked at, in all."""

    def __init__(self) -> None:
        self.thinking = 0
        self.examined = 0

    def update(self, result: ChatResult) -> int:
        new = result.chunks[self.examined :]
        self.thinking += sum(1 for kind, _ in new if kind == "thinking")
        self.examined += len(new)
        return self.thinking


def continuation_prompt(variant: Variant, prompt: str, thinking: str) -> str:
    """The exact text the model saw and wrote, then the early-stop text: where raw generation
    picks up. A prompt that does not open the reasoning itself (the model wrote the open tag,
    which the daemon took off the thinking) gets the tag back."""
    family = variant.family
    opened = prompt.rstrip().endswith(family.think_open)
    lead = "" if opened else family.think_open + "\n"
    return prompt + lead + thinking + family.early_stop_text()


def run_budgeted_chat(
    api: OllamaAPI,
    variant: Variant,
    messages: list[dict[str, Any]],
    *,
    budget: int,
    options: dict[str, Any] | None = None,
    on_thinking: Sink | None = None,
    on_content: Sink | None = None,
    should_stop: Callable[[ChatResult], str | None] | None = None,
) -> tuple[ChatResult, BudgetOutcome]:
    """A streamed chat whose thinking stops at `budget` tokens and whose answer then follows
    from raw generation; the result holds the thinking and the answer as a chat's would.
    `should_stop` (a loop detector) still watches every chunk."""
    prompt = api.render_prompt(variant.name, messages)

    count = ThinkingCount()

    def stop(result: ChatResult) -> str | None:
        if not result.content and count.update(result) >= budget:
            return BUDGET_REACHED
        return should_stop(result) if should_stop is not None else None

    result = run_chat(
        api,
        variant.name,
        messages,
        options=options,
        on_thinking=on_thinking,
        on_content=on_content,
        should_stop=stop,
    )
    spent = thinking_tokens(result)
    if result.stopped_early != BUDGET_REACHED:
        return result, BudgetOutcome(budget, spent, False, 0, "")
    early_stop = variant.family.early_stop_text()
    if on_thinking is not None:
        on_thinking(early_stop.split(variant.family.think_close)[0])
    left = dict(options or {})
    if left.get("num_predict", -1) > 0:
        left["num_predict"] = max(1, left["num_predict"] - spent)

    def answer(text: str) -> None:
        result.chunks.append(("content", text))
        if on_content is not None:
            on_content(text)

    raw = api.generate_raw(
        variant.name,
        continuation_prompt(variant, prompt, result.thinking),
        options=left,
        on_text=answer,
    )
    result.content = raw.text
    result.stopped_early = None
    result.done, result.done_reason = True, raw.done_reason
    result.eval_count = spent + raw.eval_count
    return result, BudgetOutcome(budget, spent, True, raw.eval_count, early_stop)


def budgeted_watched(
    api: OllamaAPI, variant: Variant, text: str, *, budget: int, options: dict[str, Any]
) -> tuple[ChatResult, Any, BudgetOutcome]:
    """`generate_watched` under a thinking budget: the loop detector watches the thinking up
    to the cap (a loop found first ends the run as a loop, not as a capped thought)."""
    from qwq_ollama.checks.generation import LoopWatch

    watch = LoopWatch()
    result, outcome = run_budgeted_chat(
        api,
        variant,
        [{"role": "user", "content": text}],
        budget=budget,
        options=options,
        should_stop=watch.should_stop,
    )
    return result, watch.verdict(result), outcome
