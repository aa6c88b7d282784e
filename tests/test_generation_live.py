"""Generation through the real daemon: the loop detector on live streams, validate's
generation and code checks, and compare."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from qwq_ollama.catalog.prompts import NamedPrompt, get_prompt
from qwq_ollama.checks.ab import compare_variants, markdown, plot
from qwq_ollama.checks.code import check_code, extract_last_python_block
from qwq_ollama.checks.generation import REPEAT_LIMIT, generate_watched
from qwq_ollama.checks.loops import LoopDetector
from qwq_ollama.checks.validate import validate
from qwq_ollama.daemon.client import OllamaAPI


class RecordingAPI(OllamaAPI):
    """The daemon as a check sees it, keeping every part of every chat it streamed."""

    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.streams: list[list[Any]] = []

    def chat_stream(
        self, model: str, messages: list[dict[str, Any]], **kwargs: Any
    ) -> Iterator[Any]:
        self.streams.append([])
        stream = super().chat_stream(model, messages, **kwargs)  # unseeded: the caller's options
        try:
            for part in stream:
                self.streams[-1].append(part)
                yield part
        finally:
            if isinstance(stream, Generator):
                stream.close()

    def answer(self, index: int = -1) -> str:
        return "".join(part.message.content or "" for part in self.streams[index])


def looped(parts: list[Any], done_reason: str | None) -> bool:
    """Whether a stream was a loop, judged afresh: the daemon's own repeat guard ended it, or a
    new detector fed the parts as they arrived (the last text of each, until the final part)
    finds one. What a check reports must follow this, loop or not."""
    if done_reason == REPEAT_LIMIT:
        return True
    detector, texts = LoopDetector(), []
    for part in parts:
        texts += [t for t in (part.message.thinking, part.message.content) if t]
        if part.done:
            break
        if texts and detector.feed(texts[-1]) is not None:
            return True
    return False


def test_a_live_runaway_is_aborted_early(api: OllamaAPI, registered) -> None:
    num_predict = 1500
    result, verdict = generate_watched(
        api,
        "qwq-fixed",
        get_prompt("poem-loop").text,
        options={"temperature": 0, "seed": 1, "num_predict": num_predict},
    )
    assert verdict is not None, result.thinking[-300:]
    assert result.stopped_early
    assert not result.done  # the request was abandoned, not finished
    generated = len(result.chunks)
    assert generated < num_predict / 3
    assert verdict.detected_at_token - verdict.loop_start_token <= 200


def test_a_live_normal_answer_is_not_cut(api: OllamaAPI, registered) -> None:
    result, verdict = generate_watched(
        api,
        "qwq-noprefill",
        get_prompt("sky").text,
        options={"temperature": 0, "seed": 1, "num_predict": 400},
    )
    assert verdict is None
    assert result.done and result.done_reason == "stop"


def test_validate_generation_checks_on_the_small_model(api: OllamaAPI, registered) -> None:
    report = validate(
        api,
        registered,
        ["qwq-fixed", "qwq-noprefill"],
        weights_name="smollm2-135m",
        checks=("generation",),
        seed=1,
    )
    by_variant = {f.subject: f for f in report.findings}
    fixed = by_variant["qwq-fixed"]
    # The prefilled variant's output arrives as thinking, with no tags or stop text leaking.
    # SmolLM2 does not reason, so its reasoning never closes and no answer comes: on QwQ that
    # is a failure, and validate must say so rather than pass an empty answer.
    assert fixed.status == "fail"
    assert fixed.message.startswith("no answer: the reasoning never closed"), fixed.message
    assert "leaked" not in fixed.message and "stop token" not in fixed.message
    assert fixed.details["thinking_chars"] > 0 and fixed.details["content_chars"] == 0
    assert fixed.details["done_reason"] in ("stop", "length")
    noprefill = by_variant["qwq-noprefill"]
    assert noprefill.status == "pass", noprefill.message
    assert noprefill.details["content_chars"] > 0


def test_code_check_judges_the_program_the_small_model_wrote(daemon, registered) -> None:
    api = RecordingAPI(daemon.host)
    report = validate(
        api,
        registered,
        ["qwq-noprefill"],
        weights_name="smollm2-135m",
        checks=("code",),
        seed=1,
        code_prompt="add-function",
        num_predict=400,
    )
    [finding] = report.findings
    [parts] = api.streams
    answer = api.answer()
    assert finding.details["answer_chars"] == len(answer)
    # The verdict must be the one the code checker gives the answer the model really wrote.
    source = extract_last_python_block(answer)
    if source is None:
        assert finding.status == "fail" and "no python code block" in finding.message
        return
    judged = check_code(source)
    assert finding.details["code"] == asdict(judged)
    if judged.ok:
        # A program that compiles passes, unless the stream was a loop: then it fails on that.
        loop = looped(parts, finding.details["done_reason"])
        assert (finding.status, "loop: " in finding.message) == (
            ("fail", True) if loop else ("pass", False)
        ), finding.message
    else:
        assert finding.status == "fail"
        assert (judged.syntax_error or judged.undefined_names[0]) in finding.message


def test_compare_reports_per_variant_with_a_plot(
    api: OllamaAPI, registered, tmp_path: Path
) -> None:
    prompt = NamedPrompt("tiny", "Say hello in three words.", code=False, run=False)
    summaries, runs = compare_variants(
        api, ["qwq-fixed", "qwq-baseline"], prompt, seeds=2, num_predict=48
    )
    assert [s.variant for s in summaries] == ["qwq-fixed", "qwq-baseline"]
    assert len(runs) == 4 and all(s.runs == 2 for s in summaries)
    for s in summaries:
        assert 0.0 <= s.loop_rate <= 1.0 and s.tokens_per_second > 0
        assert s.first_token_seconds is not None and s.first_token_seconds > 0
    image = plot(summaries, runs, tmp_path / "compare.png")
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = markdown(prompt, summaries, runs, image.name)
    assert "| qwq-fixed | 2 |" in text and "compare.png" in text
