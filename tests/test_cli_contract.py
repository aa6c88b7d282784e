"""One contract for every command (docs/reference.md, Exit codes and JSON output): 0 done,
1 a check failed, 2 bad input, 3 no daemon answers; a misspelt variant is bad input said before
any request; with --json stdout holds exactly one JSON document, a refusal included; a command
group named without its subcommand prints its help on stdout and exits 2."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator

import pytest

from .conftest import ROOT, run_cli

REFERENCE = (ROOT / "docs" / "reference.md").read_text()


class CountingListener:
    """A TCP port that accepts and counts connections and answers nothing: proof that a
    command made no request, where a port with nothing on it could not tell."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.accepted = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[CountingListener]:
    counting = CountingListener()
    yield counting
    counting.close()


def _free_port_host() -> str:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


UNKNOWN_VARIANT = [
    ["list", "nope"],
    ["validate", "nope", "--seed", "1"],
    ["chat", "nope", "hi", "--seed", "1"],
    ["create", "nope"],
    ["list", "qwq-fixed", "nope"],
]


@pytest.mark.parametrize("command", UNKNOWN_VARIANT, ids=lambda c: " ".join(c))
def test_a_misspelt_variant_is_bad_input_said_before_any_request(
    command: list[str], listener: CountingListener
) -> None:
    result = run_cli(*command, "--host", listener.host)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown variant 'nope'" in lines[0], result.stderr
    assert listener.accepted == 0, "the command talked to the daemon before checking its input"
    assert result.stdout == ""


NO_DAEMON = [
    ["list"],
    ["create"],
    ["doctor"],
    ["validate", "--seed", "1"],
    ["chat", "qwq-fixed", "hi", "--seed", "1"],
    ["compare", "qwq-fixed", "--seeds", "1"],
]


@pytest.mark.parametrize("command", NO_DAEMON, ids=lambda c: c[0])
def test_no_daemon_is_exit_code_3_for_every_command(command: list[str]) -> None:
    result = run_cli(*command, "--host", _free_port_host())
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Error:" in result.stderr or "no Ollama daemon answers" in result.stdout


JSON_COMMANDS = ["list", "create", "doctor", "validate", "compare"]


def documented_fields(row: str) -> set[str]:
    """The top-level fields docs/reference.md's JSON table gives for `row` (its first cell):
    the backticked names of the second cell outside parentheses, each before its colon."""
    match = re.search(rf"^\| `{re.escape(row)}`[^|]*\| (.+) \|$", REFERENCE, re.M)
    assert match, f"docs/reference.md has no JSON row for {row}"
    text = match.group(1).split(" as in ")[0]
    while re.search(r"\([^()]*\)", text):
        text = re.sub(r"\([^()]*\)", "", text)
    # after a colon: a field's nested fields, up to the next semicolon
    return {n for part in text.split("; ") for n in re.findall(r"`(\w+)`", part.split(":")[0])}


@pytest.mark.parametrize("command", JSON_COMMANDS)
def test_json_without_a_daemon_is_one_document_with_the_exit_code(command: str) -> None:
    extra = {"validate": ["--seed", "1"], "compare": ["qwq-fixed", "--seeds", "1"]}
    result = run_cli(command, *extra.get(command, []), "--json", "--host", _free_port_host())
    assert result.returncode == 3, result.stdout + result.stderr
    document = json.loads(result.stdout)  # the whole of stdout: one document, nothing else
    assert document["schema_version"] == 1
    if "error" in document:
        assert set(document) == {"schema_version", *documented_fields("--json on a refusal")}
        assert set(document["error"]) == {"message", "exit_code"}
        assert document["error"]["exit_code"] == 3
        # progress may come first on stderr; the error is its last line
        assert result.stderr.strip().splitlines()[-1] == f"Error: {document['error']['message']}"
    else:  # doctor and validate report the daemon as a finding
        assert set(document) - {"schema_version"} == documented_fields(f"{command} --json")
        assert document["failed"] is True
        assert document["findings"][0]["check"] == "daemon"


def test_a_refusal_with_json_carries_exit_code_2(listener: CountingListener) -> None:
    result = run_cli("list", "nope", "--json", "--host", listener.host)
    assert result.returncode == 2
    assert json.loads(result.stdout)["error"]["exit_code"] == 2


def test_a_group_without_its_subcommand_prints_its_help_and_exits_2() -> None:
    result = run_cli("export")
    assert result.returncode == 2, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("Usage: qwq-ollama export [OPTIONS] COMMAND")
    assert "\nCommands:\n" in result.stdout  # the help as written, not squashed into a line
    for sub in ("llama-cpp", "hf", "vllm", "lmstudio"):
        assert re.search(rf"^  {sub}\s", result.stdout, re.M), sub


@pytest.mark.parametrize("command", [[], ["plan"], ["export", "hf"]])
def test_dash_h_is_help(command: list[str]) -> None:
    short, long = run_cli(*command, "-h"), run_cli(*command, "--help")
    assert short.returncode == 0 and short.stdout == long.stdout
    assert short.stdout.startswith("Usage: qwq-ollama")


def test_every_commands_help_reads_as_a_person_writes_it() -> None:
    """`--vram VRAM` and `VARIANT`, never typer's `<str>`, `<list[str]>` or `{variant}`."""
    from qwq_ollama.cli import app

    from .test_readme import _command_paths

    paths = [p.split()[1:] for p in _command_paths(app)]
    assert len(paths) > 10
    for path in paths:
        shown = run_cli(*path, "-h")
        assert shown.returncode == 0, (path, shown.stderr)
        labels = re.findall(
            r"<(?:str|int|float|path|bool|list\[[^\]]*\]|[a-z]+ range)>", shown.stdout
        )
        labels += re.findall(r"\{[a-z_]+\}", shown.stdout.splitlines()[0])  # typer's usage
        assert labels == [], f"qwq-ollama {' '.join(path)} -h shows {labels}"


def test_render_over_other_weights_never_rewrites_the_committed_files() -> None:
    committed = {p: p.read_bytes() for p in (ROOT / "modelfiles").rglob("*") if p.is_file()}
    result = run_cli("render", "--weights", "smollm2-135m")
    assert result.returncode == 2
    assert result.stderr.startswith("Error: --out: render --weights writes Modelfiles")
    assert {p: p.read_bytes() for p in committed} == committed
