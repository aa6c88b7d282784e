"""The loop detector: fires early on runaway generations, never on normal answers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from qwq_ollama.checks.loops import (
    LoopDetector,
    LoopVerdict,
    detect_loop_in_text,
    load_stream,
    split_tokenish,
)
from qwq_ollama.errors import InputError

STREAMS = Path(__file__).resolve().parent / "data" / "streams"


def run_stream(chunks: list[str]) -> tuple[LoopVerdict | None, LoopDetector]:
    """Feed a stream the way the validator does, stopping at the first verdict."""
    detector = LoopDetector()
    for chunk in chunks:
        verdict = detector.feed(chunk)
        if verdict is not None:
            return verdict, detector
    return None, detector


# -- loops it must catch ---------------------------------------------------------------------

INTRO = (
    "Okay, the user wants the bird to speed up when SPACE is pressed several times. "
    "Let me work out the physics first:"
)
PARAGRAPH = (
    "\n\nWait, gravity adds to the velocity every frame, so the bird falls faster and "
    "faster until it hits the ground. If SPACE sets the velocity to a fixed negative "
    "value the bird jumps, but pressing it again does not make it any faster. So maybe "
    "SPACE should subtract from the velocity instead of setting it."
)


def test_a_runaway_paragraph_is_caught_within_three_copies_and_dated_to_its_first() -> None:
    intro, paragraph = split_tokenish(INTRO), split_tokenish(PARAGRAPH)
    verdict, detector = run_stream(intro + paragraph * 10)
    assert verdict is not None and verdict.kind == "exact"
    assert verdict.loop_start_char == len(INTRO)
    assert verdict.loop_start_token == len(intro)
    assert verdict.period_chars == len(PARAGRAPH)
    assert verdict.repeats == 3
    assert verdict.detected_at_token <= len(intro) + 3 * len(paragraph)
    assert detector.tokens_seen == verdict.detected_at_token
    assert verdict.sample.startswith("\n\nWait, gravity adds") and len(verdict.sample) <= 80


@pytest.mark.parametrize(
    ("prefix", "unit"),
    [
        ("So the answer is ", "the "),
        ("Hmm, let me see. ", "I think. "),
        ("我们再检查一下碰撞检测。", "不对，我需要再检查一下碰撞检测的代码。"),
    ],
)
def test_short_loops_are_caught_promptly_with_their_true_period(prefix: str, unit: str) -> None:
    verdict = detect_loop_in_text(prefix + unit * 100)
    assert verdict is not None and verdict.kind == "exact"
    assert verdict.period_chars == len(unit)
    assert unit.strip() in verdict.sample + verdict.sample
    assert len(prefix) - len(unit) < verdict.loop_start_char <= len(prefix)
    assert 200 // len(unit) <= verdict.repeats <= 200 // len(unit) + 2


def test_a_runaway_of_table_rows_is_still_caught_once_it_is_very_long() -> None:
    header = "| pipe | gap |\n| --- | --- |\n"
    text = header + "| --- | --- |\n" * 400
    verdict = detect_loop_in_text(text)
    assert verdict is not None
    assert verdict.period_chars == len("| --- | --- |\n")
    assert len("| pipe | gap") <= verdict.loop_start_char <= len("| pipe | gap |\n")
    assert 2000 <= verdict.repeats * verdict.period_chars < 2100


def test_only_the_first_verdict_is_returned_and_tokens_keep_counting() -> None:
    detector = LoopDetector()
    verdicts = [detector.feed(c) for c in split_tokenish("Start. " + "I keep going round. " * 40)]
    found = [v for v in verdicts if v is not None]
    assert len(found) == 1
    assert detector.verdict == found[0]
    assert detector.tokens_seen == len(verdicts)
    assert detector.feed("") is None and detector.tokens_seen == len(verdicts)


# -- normal output it must leave alone ------------------------------------------------------

TABLE = (
    "| setting | value |\n| --- | --- |\n"
    + "| --- | --- |\n" * 60
    + "| temperature | 0.6 |\n\n| a | b | c |\n| --- | --- | --- |\n"
    + "| yes | no | yes |\n" * 40
)

NUMBERED = "Steps:\n" + "".join(
    f"{i}. Move every pipe left by the scroll speed.\n" for i in range(1, 80)
)

UNDERLINES = "\n\n".join(
    f"Part {i}\n{'=' * 60}\n\nSome words about part {i}.\n{'-' * 150}" for i in range(1, 12)
)

PROGRAM = (
    """import pygame

COLORS = {
"""
    + "".join(
        f'    "shade_{i}": ({(i * 37) % 256}, {(i * 91) % 256}, {(i * 53) % 256}),\n'
        for i in range(60)
    )
    + """}

LEVEL = [
    "WWWWWWWWWWWWWWWWWWWW",
"""
    + '    "W                  W",\n' * 14
    + """    "WWWWWWWWWWWWWWWWWWWW",
]

BOARD = [
"""
    + "    [0, 0, 0, 0, 0, 0, 0, 0, 0],\n" * 9
    + """]


def key_name(key):
"""
    + "".join(
        f"    {'if' if i == 0 else 'elif'} key == pygame.K_{chr(97 + i)}:\n"
        f'        return "{chr(97 + i)}"\n'
        for i in range(26)
    )
    + """    return "?"


def draw(screen, pipes):
    for pipe in pipes:
        pygame.draw.rect(screen, COLORS["shade_1"], pipe.top)
        pygame.draw.rect(screen, COLORS["shade_1"], pipe.bottom)
        pygame.draw.rect(screen, COLORS["shade_2"], pipe.top.inflate(4, 4), 2)
        pygame.draw.rect(screen, COLORS["shade_2"], pipe.bottom.inflate(4, 4), 2)
"""
)

ENGLISH = """The sky looks blue because of the way sunlight interacts with the air. Sunlight
contains every colour of the visible spectrum, and when it enters the atmosphere it meets
molecules of nitrogen and oxygen that are much smaller than the wavelength of the light. Small
particles scatter short wavelengths far more strongly than long ones; the effect grows with the
inverse fourth power of the wavelength, which is why it is so pronounced. Blue light is
therefore scattered in every direction, and wherever you look away from the sun some of that
scattered blue light reaches your eyes.

Violet light is scattered even more than blue, so you might expect a violet sky. Three things
prevent that. The sun emits less violet than blue, some of the violet is absorbed high in the
atmosphere, and our eyes are much less sensitive to violet than to blue. The colour our brain
reports is a mixture dominated by blue with a little green, which we perceive as sky blue.

At sunrise and sunset the light travels through far more air before it reaches you. Most of the
blue has been scattered out of the direct beam long before it arrives, so what remains is rich
in orange and red. Dust, smoke and droplets add their own scattering, which is why sunsets
after a volcanic eruption or a forest fire can be especially vivid.

Clouds look white for a different reason. Their droplets are large compared with the wavelength
of light, so they scatter all colours about equally, and the mixture of all colours is white.
Thick clouds look grey because less light makes it through them at all.

On the Moon there is no atmosphere to scatter anything, so the sky is black even in daylight.
On Mars the thin air carries fine reddish dust, which gives a butterscotch sky by day and,
curiously, bluish sunsets, because the dust scatters blue light forward around the sun.

In short: the blue sky is sunlight redirected by the air itself. The same physics explains red
sunsets, white clouds and the black lunar sky, and it can be checked at home with a glass of
water, a few drops of milk and a torch: from the side the water looks bluish, and the light
that passes straight through looks orange.
"""

TWICE = (
    "Here is the plan. Press SPACE to flap; every press adds upward speed, so pressing "
    "several times in a row makes the bird climb faster. "
    "Press SPACE to flap; every press adds upward speed, so pressing several times in a "
    "row makes the bird climb faster. Now the pipes."
)


@pytest.mark.parametrize(
    "text",
    [TABLE, NUMBERED, UNDERLINES, PROGRAM, ENGLISH, TWICE],
    ids=["table", "numbered-list", "underlines", "program", "english", "sentence-twice"],
)
def test_normal_answers_are_never_called_loops(text: str) -> None:
    assert "".join(split_tokenish(text)) == text
    assert detect_loop_in_text(text) is None


# -- recorded streams ------------------------------------------------------------------------


def test_the_recorded_normal_answer_is_not_a_loop() -> None:
    chunks = load_stream(STREAMS / "normal-answer.json")
    verdict, detector = run_stream(chunks)
    assert verdict is None
    assert detector.tokens_seen == len(chunks) == 592


def test_the_recorded_runaway_is_caught_at_its_third_copy() -> None:
    chunks = load_stream(STREAMS / "runaway-thinking.json")
    text = "".join(chunks)
    verdict, _ = run_stream(chunks)
    assert verdict is not None and verdict.kind == "exact"
    first = text.index("\n\nWait, but if the velocity is clamped")
    # The intro ends with "." as every copy does, so the repeated region starts one char early.
    assert verdict.loop_start_char == first - 1
    assert "".join(chunks[: verdict.loop_start_token]) == text[: first - 1]
    assert verdict.period_chars == text.index("\n\nWait", first + 1) - first
    assert len("".join(chunks[: verdict.detected_at_token])) <= first + 3 * verdict.period_chars


def test_the_recorded_near_loop_with_a_changing_number_is_caught() -> None:
    chunks = load_stream(STREAMS / "near-loop-thinking.json")
    text = "".join(chunks)
    verdict, _ = run_stream(chunks)
    assert verdict is not None and verdict.kind == "near"
    first = text.index("\n\nLet me check the gap again")
    fifth = text.index("gap should be 180 pixels")
    assert first - 2 <= verdict.loop_start_char <= first
    assert len("".join(chunks[: verdict.detected_at_token])) < fifth
    assert verdict.repeats == 4


# Recorded from the small model behind the real daemon (see data/streams/README.md).
@pytest.mark.parametrize("name", ["real-normal-sky", "real-normal-code"])
def test_recorded_normal_answers_of_the_small_model_do_not_fire(name: str) -> None:
    verdict, _ = run_stream(load_stream(STREAMS / f"{name}.json"))
    assert verdict is None


@pytest.mark.parametrize(
    "name", ["real-loop-the-end", "real-loop-identifier", "real-loop-rambling"]
)
def test_recorded_runaways_of_the_small_model_are_stopped_within_200_tokens(name: str) -> None:
    chunks = load_stream(STREAMS / f"{name}.json")
    verdict, _ = run_stream(chunks)
    assert verdict is not None
    assert verdict.detected_at_token - verdict.loop_start_token <= 200
    assert verdict.detected_at_token < len(chunks)  # well before num_predict (400) ran out


def test_a_malformed_recording_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"content": "hi"}]))
    with pytest.raises(InputError, match="bad.json: a recorded stream must be a JSON list"):
        load_stream(bad)


def test_a_long_stream_is_checked_in_linear_time() -> None:
    """Four times the text takes about four times as long (a quadratic check: sixteen), measured
    side by side so that a busy machine slows both alike."""
    words = [f"w{i:x}z" for i in range(4000)]

    def seconds(chunks: int) -> float:
        text = " ".join(
            words[(i * 7919) % 4000] + words[(i * 104729) % 4000] for i in range(chunks)
        )
        started = time.perf_counter()
        assert detect_loop_in_text(text) is None
        return time.perf_counter() - started

    short, long = min(seconds(10_000) for _ in range(3)), min(seconds(40_000) for _ in range(3))
    assert long / short < 8, f"{short:.2f} s for 10k chunks, {long:.2f} s for 40k"
