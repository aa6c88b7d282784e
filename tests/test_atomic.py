"""Files the tool writes appear whole or not at all, and with the mode a plain write would give:
0666 less the umask for a new file, the old mode for a replaced one (never mkstemp's 0600, which
would hide a rendered Modelfile or an HTML report from a daemon or web server of another user)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwq_ollama.atomic import write_many_atomic, write_text_atomic


@pytest.fixture()
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_the_umasks_mode(tmp_path: Path, umask_022: None) -> None:
    write_text_atomic(tmp_path / "report.html", "<html></html>")
    write_many_atomic({tmp_path / "a.Modelfile": "FROM x\n", tmp_path / "b.jinja": "{{ x }}"})
    assert [mode(tmp_path / n) for n in ("report.html", "a.Modelfile", "b.jinja")] == [0o644] * 3


def test_a_stricter_umask_is_honoured(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_text_atomic(tmp_path / "private.json", "{}")
    finally:
        os.umask(old)
    assert mode(tmp_path / "private.json") == 0o600


def test_a_replaced_file_keeps_its_mode(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "qwq-fixed.Modelfile"
    target.write_text("old")
    target.chmod(0o640)
    write_text_atomic(target, "new")
    write_many_atomic({target: "newer"})
    assert (target.read_text(), mode(target)) == ("newer", 0o640)
    assert [p.name for p in tmp_path.iterdir()] == ["qwq-fixed.Modelfile"]  # no temp left


def test_an_output_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    """Opening a FIFO blocks until someone reads it: every writer, and render's comparison
    of old with new, refuses it in one line instead, and leaves it as it was."""
    from qwq_ollama.errors import InputError

    from .conftest import run_cli

    fifo = tmp_path / "out" / "qwq-fixed.Modelfile"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    for write in (lambda: write_text_atomic(fifo, "x"),
                  lambda: write_many_atomic({tmp_path / "other": "y", fifo: "x"})):
        with pytest.raises(InputError, match=r"is a FIFO, not a regular file"):
            write()
    assert not (tmp_path / "other").exists()
    result = run_cli("render", "--out", str(fifo.parent))
    assert result.returncode == 2
    assert result.stderr == f"Error: {fifo}: is a FIFO, not a regular file: refused as an output\n"
    assert fifo.is_fifo() and sorted(p.name for p in fifo.parent.iterdir()) == [fifo.name]
