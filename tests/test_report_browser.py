"""The HTML reports in a real headless browser (Chromium): built from real runs on the small
model, screenshotted, the key elements found by their colours, and no console message.

`make test` installs Chromium (Debian's package, as root); without it these tests skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from qwq_ollama.daemon.client import OllamaAPI

from .conftest import run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 1280, 2400
# The report's colours (report_html._STYLE) and the plot's bars (ab._panel).
HEADER, PASS, FAIL = (0x1F, 0x3A, 0x5F), (0x2E, 0x7D, 0x32), (0xC6, 0x28, 0x28)
MARK, BAR = (0xFF, 0xD4, 0x00), (0x44, 0x77, 0xAA)


def browse(page: Path, tmp_path: Path) -> tuple[Any, list[str]]:
    """Open `page` offline in headless Chromium: its screenshot (a Pillow image) and every
    console message it logged (the reports run no script, so any message is a fault)."""
    if CHROMIUM is None:
        pytest.skip(
            "no chromium on PATH: `make test` installs it (apt-get install chromium, as root)"
        )
    image = pytest.importorskip("PIL.Image")
    shot = tmp_path / f"{page.stem}.png"
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            f"--screenshot={shot}",
            f"--window-size={WIDTH},{HEIGHT}",
            "--enable-logging=stderr",
            "--v=0",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return image.open(shot).convert("RGB"), console


def near(pixel: tuple[int, int, int], colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 12 for a, b in zip(pixel, colour, strict=True))


def pixels_of(shot: Any, colour: tuple[int, int, int]) -> int:
    return sum(n for n, pixel in shot.getcolors(WIDTH * HEIGHT) if near(pixel, colour))


def test_the_console_check_sees_a_page_error(tmp_path: Path) -> None:
    """The detector the report tests rely on: a page that logs an error is caught."""
    page = tmp_path / "noisy.html"
    page.write_text("<!DOCTYPE html><body><script>console.error('noisy page')</script>")
    _shot, console = browse(page, tmp_path)
    assert len(console) == 1 and "noisy page" in console[0]


def test_validate_html_report_in_a_browser(api: OllamaAPI, registered, tmp_path: Path) -> None:
    page, findings = tmp_path / "validate.html", tmp_path / "validate.json"
    run_cli(
        "validate",
        "qwq-fixed",
        "--weights",
        "smollm2-135m",
        "--checks",
        "fidelity,registration,generation",
        "--num-predict",
        "32",
        "--seed",
        "1",
        "--host",
        api.host,
        "--report",
        str(page),
        "--json-file",
        str(findings),
    )
    saved = json.loads(findings.read_text())
    conversations = saved["findings"][0]["details"]["conversations"]
    assert any(c["status"] != "pass" for c in conversations)  # tool JSON: a known divergence
    shot, console = browse(page, tmp_path)
    assert console == []
    assert near(shot.getpixel((8, 8)), HEADER)
    assert near(shot.getpixel((WIDTH - 30, 34)), FAIL if saved["failed"] else PASS)
    assert pixels_of(shot, MARK) > 30  # the differing bytes of the first differing prompt
    assert pixels_of(shot, PASS) > 500  # a badge per passing check and conversation


def test_compare_html_report_in_a_browser(api: OllamaAPI, registered, tmp_path: Path) -> None:
    page = tmp_path / "compare.html"
    result = run_cli(
        "compare",
        "qwq-fixed",
        "qwq-baseline",
        "--prompt",
        "sky",
        "--seeds",
        "2",
        "--num-predict",
        "24",
        "--host",
        api.host,
        "--report",
        str(page),
    )
    assert result.returncode == 0, result.stderr
    assert f"wrote {page}" in result.stdout
    shot, console = browse(page, tmp_path)
    assert console == []
    assert near(shot.getpixel((8, 8)), HEADER)
    assert pixels_of(shot, BAR) > 2000  # the inline plot decoded and drawn: its bars
