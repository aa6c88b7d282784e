"""What the tool learns about a daemon on this machine from its process, and what it does with
it: refuse an import the daemon's disk cannot hold before a byte is uploaded."""

from __future__ import annotations

import shutil
from pathlib import Path

from qwq_ollama.daemon.daemon_process import import_space_problem, local_daemon
from qwq_ollama.engines.private_daemon import OllamaDaemon
from qwq_ollama.facts import import_copies


def test_the_private_daemon_is_found_with_its_models_dir(daemon: OllamaDaemon) -> None:
    found = local_daemon(daemon.host)
    assert found is not None and found.pid == daemon.process.pid  # type: ignore[union-attr]
    assert found.models_dir == daemon.models_dir


def test_a_daemon_elsewhere_or_on_another_port_is_not_guessed(daemon: OllamaDaemon) -> None:
    assert local_daemon("http://127.0.0.1:9") is None
    assert local_daemon(f"http://192.0.2.1:{daemon.port}") is None  # not this machine


def test_an_import_that_cannot_fit_is_refused_naming_the_folder(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    # A current daemon keeps the upload and a converted copy: half the free space per copy fits.
    assert import_space_problem(free // 2 - 2**20, "0.32.15", tmp_path, False) is None
    problem = import_space_problem(free // 2 + 2**30, "0.32.15", tmp_path, False)
    assert problem is not None and str(tmp_path) in problem
    assert problem.startswith("not enough disk space: Ollama 0.32.15 needs about")
    # The 0.24 engine keeps the uploaded blob only, and nothing once the blob is there.
    assert import_space_problem(free // 2 + 2**30, "0.24.0", tmp_path, False) is None
    assert import_space_problem(2 * free, "0.24.0", tmp_path, True) is None
    assert import_space_problem(free + 2**30, "0.32.15", tmp_path, True) is not None


def test_from_0_34_1_an_import_needs_one_copy(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    assert import_space_problem(free // 2 + 2**30, "0.34.4", tmp_path, False) is None
    assert import_space_problem(free // 2 + 2**30, "0.34.1", tmp_path, False) is None
    assert import_space_problem(free // 2 + 2**30, "0.34.0", tmp_path, False) is not None
    assert import_space_problem(free + 2**30, "0.34.4", tmp_path, False) is not None


def test_the_copies_the_disk_check_counts_are_what_the_daemon_writes(
    daemon: OllamaDaemon, small_gguf: Path, registered: object
) -> None:
    """After importing the small model, the daemon's blobs hold as many full-size copies of it
    as `import_copies` says this release writes: the disk check asks for no more, no less."""
    size = small_gguf.stat().st_size
    blobs = [p.stat().st_size for p in (daemon.models_dir / "blobs").iterdir()]
    full_copies = sum(1 for b in blobs if b > size * 0.9)
    assert full_copies == import_copies(daemon.version())
