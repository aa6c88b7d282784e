"""The command line as scripts and shells use it: --version, completion, --json documents.

Shapes are checked by parsing what the real command prints, against a fake daemon at the HTTP
level (see test_registration_logic.py); the live tests run the same commands on the real one.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from qwq_ollama.catalog.schema import Catalog
from tests.conftest import SMALL_BLOB, FakeDaemon, run_cli, show_answer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def fake(httpserver: HTTPServer, catalog: Catalog) -> FakeDaemon:
    """A daemon with every variant registered over the small weights."""
    daemon = FakeDaemon(httpserver)
    daemon.base("smollm2-135m", SMALL_BLOB)
    for name in catalog.variants:
        daemon.models[name] = show_answer(catalog, name, "smollm2-135m", SMALL_BLOB)
    return daemon


def host_of(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


def parsed(result: Any) -> dict[str, Any]:
    """The one JSON document on stdout; anything else there fails the test."""
    document = json.loads(result.stdout)
    assert document["schema_version"] == 1
    return dict(document)


def test_version_names_ours_and_the_daemons(fake: FakeDaemon, httpserver: HTTPServer) -> None:
    result = run_cli("--version", "--host", host_of(httpserver))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"qwq-ollama {version('qwq-ollama')}",
        f"Ollama 0.32.15 at {host_of(httpserver)}",
    ]


def test_version_without_a_daemon_answers_quickly(silent_host: str) -> None:
    import time

    started = time.monotonic()
    run_cli("--version", env={"OLLAMA_HOST": "127.0.0.1:9"})  # nothing listens: refused at once
    refused = time.monotonic() - started
    started = time.monotonic()
    result = run_cli("--version", env={"OLLAMA_HOST": silent_host})
    # The daemon hangs; the answer waits at most its 1 s timeout more than a refused connection
    # (a hang without it would run into run_cli's 900 s). 5 s of slack for a loaded machine.
    assert time.monotonic() - started < refused + 1 + 5
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"qwq-ollama {version('qwq-ollama')}\n")
    assert "no daemon answers" in result.stdout


def test_bash_completion_offers_commands_and_options() -> None:
    env = {
        "_QWQ_OLLAMA_COMPLETE": "complete_bash",
        "COMP_WORDS": "qwq-ollama li",
        "COMP_CWORD": "1",
    }
    assert run_cli(env=env).stdout.split() == ["list"]
    env["COMP_WORDS"], env["COMP_CWORD"] = "qwq-ollama compare --we", "2"
    assert run_cli(env=env).stdout.split() == ["--weights"]


def test_list_json(fake: FakeDaemon, httpserver: HTTPServer, catalog: Catalog) -> None:
    result = run_cli("list", "--json", "--host", host_of(httpserver))
    assert result.returncode == 0, result.stderr
    rows = parsed(result)["variants"]
    assert [row["variant"] for row in rows] == [v.name for v in catalog.chosen()]
    first = rows[0]
    assert first["registered"] is True and first["up_to_date"] is False
    assert first["over"] == "smollm2-135m" and list(first["drift"]) == ["weights"]


def test_a_host_before_the_command_is_the_commands_host(
    fake: FakeDaemon, httpserver: HTTPServer
) -> None:
    result = run_cli("--host", host_of(httpserver), "list", "--json")
    assert result.returncode == 0, result.stderr
    assert all(row["registered"] for row in parsed(result)["variants"])


def test_doctor_json(fake: FakeDaemon, httpserver: HTTPServer, catalog: Catalog) -> None:
    result = run_cli("doctor", "--json", "--vram", "24GiB", "--host", host_of(httpserver))
    document = parsed(result)
    # the fake daemon lists the catalog's variants over other weights: warnings, no failure
    assert (result.returncode, document["failed"]) == (0, False)
    assert not [f for f in document["findings"] if f["status"] in ("fail", "error")]
    registration = [f for f in document["findings"] if f["check"] == "registration"]
    assert {f["subject"] for f in registration} == {v.name for v in catalog.chosen()}
    assert {f["status"] for f in registration} == {"warn"}
    assert all(set(f) >= {"fix", "message", "details"} for f in registration)


def chat_stream(request: Any) -> Any:
    """A streamed /api/chat answer: some thinking, a short answer, done."""
    from werkzeug.wrappers import Response

    model = request.get_json()["model"]
    lines = [
        {
            "model": model,
            "message": {"role": "assistant", "thinking": "Let me see."},
            "done": False,
        },
        {"model": model, "message": {"role": "assistant", "content": "Blue."}, "done": False},
        {
            "model": model,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "eval_count": 2,
            "eval_duration": 100_000_000,
        },
    ]
    return Response(
        "".join(json.dumps(line) + "\n" for line in lines), content_type="application/x-ndjson"
    )


def test_compare_json(fake: FakeDaemon, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/chat", method="POST").respond_with_handler(chat_stream)
    result = run_cli(
        "compare",
        "qwq-fixed",
        "qwq-minp",
        "--prompt",
        "sky",
        "--seeds",
        "2",
        "--json",
        "--host",
        host_of(httpserver),
    )
    assert result.returncode == 0, result.stderr
    document = parsed(result)
    assert document["prompt"] == "sky"
    assert [s["variant"] for s in document["summaries"]] == ["qwq-fixed", "qwq-minp"]
    assert [(r["variant"], r["seed"]) for r in document["runs"]] == [
        ("qwq-fixed", 1),
        ("qwq-fixed", 2),
        ("qwq-minp", 1),
        ("qwq-minp", 2),
    ]
    assert all(r["answer_tokens"] == 1 and not r["looped"] for r in document["runs"])
    assert "running qwq-minp seed 2" in result.stderr


def test_compare_with_catalog_refuses_a_stale_variant_before_running(
    fake: FakeDaemon, httpserver: HTTPServer
) -> None:
    result = run_cli(
        "compare",
        "qwq-fixed",
        "--prompt",
        "sky",
        "--catalog",
        str(ROOT / "modelfiles" / "models.yaml"),
        "--host",
        host_of(httpserver),
    )
    assert result.returncode == 2
    assert "qwq-fixed is not as" in result.stderr and "registered over smollm2-135m" in (
        result.stderr
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert not any(r.path == "/api/chat" for r, _ in httpserver.log)


def test_validate_json_prints_the_findings_on_stdout_even_without_a_daemon() -> None:
    # No daemon answers (the test environment's OLLAMA_HOST): the daemon step is marked, the
    # findings are still the one JSON document on stdout, and the exit code says "unreachable".
    result = run_cli("validate", "qwq-fixed", "--checks", "fidelity", "--json")
    document = parsed(result)
    assert (result.returncode, document["failed"]) == (3, True)
    assert [(f["check"], f["status"]) for f in document["findings"]] == [("daemon", "error")]
    assert result.stderr.startswith("Error: cannot reach Ollama at ")


def run_without(module: str, *args: str) -> Any:
    """The real CLI in a Python where `module` cannot be imported, as without its extra."""
    import os
    import subprocess
    import sys

    wrapper = (
        f"import sys; sys.modules[{module!r}] = None; "
        "from qwq_ollama.cli import main; sys.argv[0] = 'qwq-ollama'; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", wrapper, *args],
        capture_output=True,
        text=True,
        env=os.environ,
        cwd=ROOT,
        timeout=300,
    )


def test_compare_report_without_the_plot_extra_stops_before_any_run(
    fake: FakeDaemon, httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/api/chat", method="POST").respond_with_handler(chat_stream)
    report = tmp_path / "ab.md"
    result = run_without(
        "matplotlib",
        "compare",
        "qwq-fixed",
        "--prompt",
        "sky",
        "--report",
        str(report),
        "--host",
        host_of(httpserver),
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: compare --report needs matplotlib, which is not installed: "
        "pip install 'qwq-ollama[plot]'"
    ]
    assert not any(r.path == "/api/chat" for r, _ in httpserver.log)
    assert list(tmp_path.iterdir()) == []


def test_compare_report_with_the_plot_extra_writes_report_and_plot(
    fake: FakeDaemon, httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/api/chat", method="POST").respond_with_handler(chat_stream)
    report = tmp_path / "ab.md"
    result = run_cli(
        "compare",
        "qwq-fixed",
        "--prompt",
        "sky",
        "--seeds",
        "1",
        "--report",
        str(report),
        "--host",
        host_of(httpserver),
    )
    assert result.returncode == 0, result.stderr
    assert "| qwq-fixed |" in report.read_text()
    assert report.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_code_check_without_the_game_extra_stops_before_any_request(httpserver: HTTPServer) -> None:
    result = run_without(
        "pygame",
        "validate",
        "qwq-fixed",
        "--checks",
        "generation,code",
        "--host",
        host_of(httpserver),
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: validate --checks code needs pygame, which is not installed: "
        "pip install 'qwq-ollama[game]'"
    ]
    assert httpserver.log == []


def local_weights_project(project: Path, small_gguf: Path, file_name: str) -> Path:
    """A project copy with `native-qwq-fixed` over `local` weights: the small GGUF at a path the
    digest index has never seen, so `create` hashes it (and the shared variants stay as they are)."""
    import shutil

    from tests.conftest import catalog_with_copies

    shutil.copyfile(small_gguf, project / file_name)
    catalog = catalog_with_copies(project, "qwq-fixed", prefix="native").path
    catalog.write_text(
        catalog.read_text().replace(
            "weights:\n", f"weights:\n  local:\n    gguf: ../{file_name}\n", 1
        )
    )
    return catalog


def test_create_json_and_plain_progress_off_a_terminal(
    daemon: Any, small_gguf: Path, project_copy: Path
) -> None:
    catalog = local_weights_project(project_copy, small_gguf, "weights.gguf")
    result = run_cli(
        "create",
        "native-qwq-fixed",
        "--weights",
        "local",
        "--catalog",
        str(catalog),
        "--json",
        "--host",
        daemon.host,
    )
    assert result.returncode == 0, result.stderr
    document = parsed(result)
    assert document["created"] == ["native-qwq-fixed"] and document["up_to_date"] == []
    assert document["bases"][0] == "qwq-ollama-weights/local"
    assert document["weights_files"] == [str(project_copy / "weights.gguf")]
    assert "  qwq-ollama-weights/local: hashing weights.gguf\n" in result.stderr
    assert "\x1b[" not in result.stderr

    import shutil

    shutil.copyfile(small_gguf, project_copy / "again.gguf")  # hashed afresh, quietly
    catalog.write_text(catalog.read_text().replace("../weights.gguf", "../again.gguf"))
    quiet = run_cli(
        "create",
        "native-qwq-fixed",
        "--weights",
        "local",
        "--catalog",
        str(catalog),
        "--quiet",
        "--host",
        daemon.host,
    )
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "" and "native-qwq-fixed" in quiet.stdout


def test_create_draws_byte_progress_on_a_terminal(
    daemon: Any, small_gguf: Path, project_copy: Path
) -> None:
    import os
    import pty
    import subprocess
    import sys
    import threading

    catalog = local_weights_project(project_copy, small_gguf, "tty.gguf")
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {
        "TERM": "xterm",
        "COLUMNS": "120",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qwq_ollama",
            "create",
            "native-qwq-fixed",
            "--weights",
            "local",
            "--catalog",
            str(catalog),
            "--host",
            daemon.host,
        ],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
        cwd=ROOT,
    )
    os.close(follower)
    drawn = bytearray()

    def drain() -> None:
        while True:
            try:
                block = os.read(leader, 4096)
            except OSError:  # the pty closes when the process exits
                return
            if not block:
                return
            drawn.extend(block)

    reader = threading.Thread(target=drain)
    reader.start()
    assert proc.wait(timeout=300) == 0
    reader.join(10)
    os.close(leader)
    text = drawn.decode(errors="replace")
    assert "\x1b[" in text  # drawn, not printed line by line
    size_mb = small_gguf.stat().st_size / 1e6
    assert "hashing tty.gguf" in text and f"{size_mb:.1f}/{size_mb:.1f} MB" in text


def test_an_upload_reports_the_bytes_sent(httpserver: HTTPServer, tmp_path: Path) -> None:
    from qwq_ollama.daemon.client import OllamaAPI

    blob, digest = tmp_path / "blob.gguf", "sha256:" + "c" * 64
    blob.write_bytes(b"x" * (9 << 20))
    received: list[int] = []

    def store(request: Any) -> Any:
        from werkzeug.wrappers import Response

        received.append(len(request.get_data()))
        return Response("", status=201)

    httpserver.expect_request(f"/api/blobs/{digest}", method="POST").respond_with_handler(store)
    sent: list[int] = []
    OllamaAPI(host_of(httpserver), timeout=10.0).push_blob(digest, blob, sent.append)
    assert sent == [4 << 20, 8 << 20, 9 << 20] and received == [9 << 20]


def test_list_doctor_and_compare_json_on_the_real_daemon(daemon: Any, registered: Catalog) -> None:
    listed = parsed(run_cli("list", "--json", "--weights", "smollm2-135m", "--host", daemon.host))
    assert {row["variant"]: row["up_to_date"] for row in listed["variants"]} == {
        v.name: True for v in registered.chosen()
    }
    doctor = run_cli(
        "doctor", "--json", "--weights", "smollm2-135m", "--vram", "24GiB", "--host", daemon.host
    )
    findings = parsed(doctor)["findings"]
    assert {f["status"] for f in findings if f["check"] == "registration"} == {"pass"}
    compared = run_cli(
        "compare",
        "qwq-fixed",
        "--prompt",
        "sky",
        "--seeds",
        "1",
        "--num-predict",
        "16",
        "--json",
        "--weights",
        "smollm2-135m",
        "--host",
        daemon.host,
    )
    assert compared.returncode == 0, compared.stderr
    run = parsed(compared)["runs"][0]
    assert run["variant"] == "qwq-fixed" and 0 < run["thinking_tokens"] + run["answer_tokens"] <= 16
