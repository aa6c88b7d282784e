"""Files the tool writes appear whole or not at all, and with the mode a plain write would give:
0666 less the umask for a new file, the old mode for a replaced one (never mkstemp's 0600, which
would hide a rendered Modelfile or an HTML report from a daemon or web server of another user)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwq_ollama.atomic import (
    move_into_place,
    staged_file,
    staging_folder,
    write_many_atomic,
    write_text_atomic,
)
from qwq_ollama.engines import cpu_features


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


# Staging beside the target: the temporary folder may be another file system (a tmpfs /tmp, as
# on many laptops and CI machines), where a rename into place would fail with EXDEV.


@pytest.fixture()
def tmpdir_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """$TMPDIR on a file system other than tmp_path's: /dev/shm when it is one, else a tmpfs
    mounted for the test (CI runs as root). Never skipped: without it the test fails."""
    mounted = None
    other = (
        Path(tempfile.mkdtemp(prefix="qwq-tmpdir-", dir="/dev/shm"))
        if Path("/dev/shm").is_dir()
        else None
    )
    if other is None or other.stat().st_dev == tmp_path.stat().st_dev:
        if other is not None:
            other.rmdir()
        mounted = other = Path(tempfile.mkdtemp(prefix="qwq-tmpfs-"))
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(other)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"no second file system for $TMPDIR: {done.stderr}"
    assert other.stat().st_dev != tmp_path.stat().st_dev
    monkeypatch.setenv("TMPDIR", str(other))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read $TMPDIR again
    assert tempfile.gettempdir() == str(other)
    try:
        yield other
    finally:
        if mounted is not None:
            subprocess.run(["umount", str(mounted)], check=True)
        shutil.rmtree(other, ignore_errors=True)


def _tool_writes(path: Path, data: bytes) -> None:
    """A program that writes its output by name, as a compiler or a GGUF writer does."""
    path.write_bytes(data)


WRITERS = {
    "write_text_atomic": lambda target: write_text_atomic(target, "new"),
    "write_many_atomic": lambda target: write_many_atomic({target: "new"}),
    "staged_file": lambda target: _staged_tool(target),
    "staging_folder": lambda target: _folder_tool(target),
}


def _staged_tool(target: Path) -> None:
    with staged_file(target) as staged:
        assert staged.parent.parent == target.parent
        _tool_writes(staged, b"new")


def _folder_tool(target: Path) -> None:
    with staging_folder(target) as folder:
        assert folder.parent == target.parent
        _tool_writes(folder / "any-name", b"new")
        move_into_place(folder / "any-name", target)


@pytest.mark.parametrize("writer", WRITERS)
def test_every_writer_stages_beside_its_target(
    writer: str, tmp_path: Path, tmpdir_elsewhere: Path
) -> None:
    target = tmp_path / "out" / "file.txt"
    WRITERS[writer](target)
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.txt"]
    assert list(tmpdir_elsewhere.iterdir()) == []


def test_a_staged_tool_that_fails_leaves_the_target_and_no_trace(
    tmp_path: Path, tmpdir_elsewhere: Path
) -> None:
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="tool died"), staged_file(target) as staged:
        _tool_writes(staged, b"half")
        raise RuntimeError("tool died")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_the_instruction_set_probe_compiles_with_tmpdir_on_another_file_system(
    tmp_path: Path, tmpdir_elsewhere: Path
) -> None:
    """cpu_features.compile_probe once built in $TMPDIR and renamed across: EXDEV."""
    probe = cpu_features.compile_probe(tmp_path / "bin" / cpu_features.PROBE)
    assert os.access(probe, os.X_OK)
    assert cpu_features.probe_runs(probe, []) is None
    assert sorted(p.name for p in probe.parent.iterdir()) == [cpu_features.PROBE]


def test_an_output_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    """Opening a FIFO blocks until someone reads it: every writer, and render's comparison
    of old with new, refuses it in one line instead, and leaves it as it was."""
    from qwq_ollama.errors import InputError

    from .conftest import run_cli

    fifo = tmp_path / "out" / "qwq-fixed.Modelfile"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    for write in (
        lambda: write_text_atomic(fifo, "x"),
        lambda: write_many_atomic({tmp_path / "other": "y", fifo: "x"}),
    ):
        with pytest.raises(InputError, match=r"is a FIFO, not a regular file"):
            write()
    assert not (tmp_path / "other").exists()
    result = run_cli("render", "--out", str(fifo.parent))
    assert result.returncode == 2
    assert result.stderr == f"Error: {fifo}: is a FIFO, not a regular file: refused as an output\n"
    assert fifo.is_fifo() and sorted(p.name for p in fifo.parent.iterdir()) == [fifo.name]
