"""Bounded reads of every file a user names (issue 39): anything but a regular file is refused
before a byte is read, the documented cap holds before reading, and the JSON depth check is
linear in its input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import run_cli


def test_fix_tokenizer_refuses_dev_zero_in_one_line() -> None:
    """It read /dev/zero until the OOM killer came (23 GB)."""
    done = run_cli("fix-tokenizer", "/dev/zero")
    assert done.returncode == 2, done.stderr
    assert "/dev/zero" in done.stderr and "a character device, not a regular file" in done.stderr
    assert "Traceback" not in done.stderr


def test_fix_tokenizer_refuses_a_fifo_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "tokenizer_config.json"
    os.mkfifo(fifo)
    done = run_cli("fix-tokenizer", str(fifo))
    assert done.returncode == 2 and "a FIFO, not a regular file" in done.stderr, done.stderr


def test_fix_tokenizer_refuses_a_file_above_64_mib_unread(tmp_path: Path) -> None:
    big = tmp_path / "tokenizer_config.json"
    with open(big, "wb") as handle:
        handle.truncate((64 << 20) + 1)  # sparse: its size says it all
    done = run_cli("fix-tokenizer", str(big))
    assert done.returncode == 2 and "refused unread" in done.stderr, done.stderr


@pytest.mark.parametrize("size", [100_000, 4_000_000])
def test_the_depth_check_is_linear_on_a_truncated_run_of_escaped_quotes(size: int) -> None:
    """A truncated string of escaped quotes: 30 s to refuse at 100 KB, hours at 1 MB, when
    the string pattern needed its closing quote. Run apart, so a regression fails at 60 s
    instead of hanging the suite."""
    code = (
        "from qwq_ollama.catalog.load import check_json_depth\n"
        f"check_json_depth('{{\"a\": \"' + '\\\\\"' * {size // 2}, 'x.json')\n"
        "print('done')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "done", done.stderr


def test_embed_template_into_an_existing_directory_is_one_line_before_any_copy(
    small_gguf: Path, tmp_path: Path
) -> None:
    """It copied the whole GGUF and then ended in IsADirectoryError (issue 39)."""
    out = tmp_path / "out"
    out.mkdir()
    done = run_cli("embed-template", "qwq-fixed", str(small_gguf), "--out", str(out))
    assert done.returncode == 2, done.stderr
    assert "a directory, not a regular file" in done.stderr and "Traceback" not in done.stderr
    assert list(out.iterdir()) == [] and list(tmp_path.iterdir()) == [out]


def test_the_thinking_budget_counts_each_chunk_once() -> None:
    """Linear in the run's length: each chunk is looked at once however often the stream asks
    (it re-counted every chunk for each new one: 26 s against 1 s at 40,000 tokens)."""
    from qwq_ollama.checks.budget import ThinkingCount
    from qwq_ollama.checks.generation import ChatResult

    result, count = ChatResult(), ThinkingCount()
    for number in range(3000):
        result.chunks.append(("thinking" if number % 3 else "content", "x"))
        count.update(result)
    assert count.thinking == 2000 and count.examined == 3000
