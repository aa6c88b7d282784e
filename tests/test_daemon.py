"""The private daemon and the pinned Ollama versions: the ground every other live test stands on."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
from pathlib import Path

import ollama
import pytest

from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.digests import file_digest, hash_ahead
from qwq_ollama.engines.cpu_features import Choice, write_record
from qwq_ollama.engines.install import (
    CURRENT,
    PINNED,
    build_ollama,
    ensure_ollama,
    find_ollama,
    prefix_for,
)
from qwq_ollama.engines.private_daemon import OllamaDaemon, process_group_alive
from qwq_ollama.errors import DaemonError, EnvironmentProblem


@pytest.mark.live
def test_daemon_reports_the_version_under_test(daemon, ollama_binary, ollama_version) -> None:
    assert ollama_binary.version == ollama_version
    assert daemon.version() == ollama_version


@pytest.mark.live
def test_a_model_created_from_the_small_gguf_chats_and_keeps_its_parameters(
    api: OllamaAPI, small_gguf: Path
) -> None:
    client = ollama.Client(host=api.host)
    digest = client.create_blob(small_gguf)
    params = {
        "temperature": 0.0,
        "num_ctx": 2048,
        "num_predict": 48,
        "seed": 7,
        "stop": ["<|im_end|>"],
    }
    for _ in client.create(
        model="plain-smollm2",
        files={small_gguf.name: digest},
        template="{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}"
        "<|im_end|>\n{{ end }}<|im_start|>assistant\n",
        parameters=params,
        stream=True,
    ):
        pass
    reply = client.chat(
        model="plain-smollm2",
        messages=[{"role": "user", "content": "Say hello."}],
        options={"seed": 7, "num_predict": 32},
    )
    assert (reply.message.content or "").strip()
    assert reply.done_reason in ("stop", "length")
    shown = api.show("plain-smollm2")
    assert shown is not None
    assert shown.parameters == params


@pytest.mark.live
def test_a_private_daemon_stays_off_ollama_com(daemon) -> None:
    # Unless told otherwise, v0.32 asks ollama.com for model recommendations as it starts.
    assert "cloud disabled: true" in daemon.log_path.read_text()


@pytest.mark.live
def test_stopping_leaves_no_process_and_frees_the_port(ollama_binary, tmp_path: Path) -> None:
    daemon = OllamaDaemon(ollama_binary.path, tmp_path / "models").start()
    pgid, port = daemon.process.pid, daemon.port  # type: ignore[union-attr]
    assert process_group_alive(pgid)
    daemon.stop()
    assert not process_group_alive(pgid)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def _group_members(pgid: int) -> set[int]:
    members = set()
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            members.add(int(stat_file.parent.name))
    return members


@pytest.mark.live
def test_stopping_with_a_model_loaded_leaves_no_runner(
    ollama_binary, small_gguf: Path, tmp_path: Path
) -> None:
    daemon = OllamaDaemon(ollama_binary.path, tmp_path / "models").start()
    try:
        client = ollama.Client(host=daemon.host)
        digest = client.create_blob(small_gguf)
        for _ in client.create(model="small", files={small_gguf.name: digest}, stream=True):
            pass
        client.generate(model="small", prompt="", keep_alive="10m")  # starts its runner
        runners = _group_members(daemon.process.pid) - {daemon.process.pid}  # type: ignore[union-attr]
        assert runners
    finally:
        daemon.stop()
    assert not any(Path(f"/proc/{pid}").exists() for pid in runners)


@pytest.mark.live
def test_port_already_taken_is_a_clear_error(ollama_binary, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(DaemonError, match=f"port {port} on 127.0.0.1 is already in use"):
            OllamaDaemon(ollama_binary.path, tmp_path / "models", port=port).start()


@pytest.mark.live
def test_unwritable_models_dir_is_a_clear_error(ollama_binary, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DaemonError, match="models dir .* is not writable"):
        OllamaDaemon(ollama_binary.path, blocker / "models").start()


def test_a_daemon_that_dies_while_starting_reports_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "ollama"
    fake.write_text(
        "#!/bin/sh\necho 'Error: listen tcp: bind: cannot assign address' >&2\nexit 1\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(DaemonError, match="exited with code 1 while starting; log: .*bind"):
        OllamaDaemon(fake, tmp_path / "models", startup_timeout=10).start()


@pytest.mark.parametrize("version", list(PINNED))
def test_build_without_go_says_what_to_install(version: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("QWQ_OLLAMA_TOOLS", str(tmp_path / "tools"))
    with pytest.raises(
        EnvironmentProblem, match=f"Go 1.26\\+ is needed to build Ollama v{version}"
    ):
        build_ollama(version)
    assert not prefix_for(version).exists()


def _fake_program(path: Path, script: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


def test_a_failed_build_step_names_itself_its_log_and_the_retry(
    tmp_path: Path, monkeypatch
) -> None:
    _fake_program(
        tmp_path / "fakebin" / "go",
        'if [ "$1" = version ]; then\n'
        '  echo "go version go1.26.0 linux/amd64"; exit 0; fi\n'
        'echo "go: verifying module: checksum mismatch" >&2; exit 1\n',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'fakebin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("QWQ_OLLAMA_TOOLS", str(tmp_path / "tools"))
    with pytest.raises(EnvironmentProblem) as failure:
        build_ollama(CURRENT)
    message = str(failure.value)
    assert "failed at step 'go build': go: verifying module: checksum mismatch" in message
    log = Path(message.split("(log: ")[1].split(")")[0])
    assert "checksum mismatch" in log.read_text()
    assert f"qwq-ollama install-ollama --version {CURRENT}" in message
    assert sorted(p.name for p in (tmp_path / "tools").iterdir()) == ["build"]  # no prefix


def test_our_builds_are_found_per_version_in_the_user_tools_cache(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("QWQ_OLLAMA_TOOLS", raising=False)
    monkeypatch.delenv("QWQ_OLLAMA_BINARY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    tools = tmp_path / "qwq-ollama" / "tools"
    for version in PINNED:
        _fake_program(
            tools / f"ollama-{version}" / "bin" / "ollama", f"echo 'ollama version is {version}'\n"
        )
        # built for no instruction set beyond x86-64: any CPU runs it
        write_record(tools / f"ollama-{version}", Choice((), {}, "test CPU"))
    for version in PINNED:
        binary = ensure_ollama(version)
        assert (binary.path, binary.version, binary.origin) == (
            tools / f"ollama-{version}" / "bin" / "ollama",
            version,
            "built",
        )


def test_other_version_on_path_is_reported_not_used(tmp_path: Path, monkeypatch) -> None:
    fake = tmp_path / "ollama"
    fake.write_text("#!/bin/sh\necho 'ollama version is 0.9.9'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("QWQ_OLLAMA_TOOLS", str(tmp_path / "no-builds"))
    monkeypatch.delenv("QWQ_OLLAMA_BINARY", raising=False)
    lookup = find_ollama(CURRENT, allow_other_version=False)
    assert lookup.binary is None or lookup.binary.path != fake
    assert any(f"0.9.9, not {CURRENT}; not used" in note for note in lookup.notes)
    assert find_ollama(allow_other_version=True).binary.path == fake  # type: ignore[union-attr]


def test_weights_are_hashed_once(small_gguf: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("QWQ_OLLAMA_CACHE", str(tmp_path))
    first = file_digest(small_gguf)
    index = (tmp_path / "digests.json").read_text()
    assert first.removeprefix("sha256:") in index
    # A second call must come from the index: other bytes of the same size and mtime prove it
    # (as root too, who reads a file whatever its mode).
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(small_gguf.read_bytes()[:4096])
    digest = file_digest(copy)
    before = copy.stat()
    copy.write_bytes(bytes(4096))
    os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert file_digest(copy) == digest
    assert digest != "sha256:" + hashlib.sha256(bytes(4096)).hexdigest()
    assert file_digest(small_gguf) == first


def test_hashing_ahead_gives_the_digest_hashlib_gives(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("QWQ_OLLAMA_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "w.gguf"
    weights.write_bytes(os.urandom(3 * (1 << 22) + 123))  # more than one read block
    hash_ahead([weights])
    expected = "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest()
    assert file_digest(weights) == expected
    # Rewritten in place (new size and mtime): a new hash, not the one started earlier.
    hash_ahead([weights])
    weights.write_bytes(b"GGUF" + os.urandom(1000))
    assert file_digest(weights) == "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest()


def test_a_file_gone_before_its_hash_is_asked_for_is_reported(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("QWQ_OLLAMA_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "w.gguf"
    weights.write_bytes(b"GGUF")
    hash_ahead([weights, tmp_path / "missing.gguf"])  # a missing file is left to file_digest
    weights.unlink()
    with pytest.raises(FileNotFoundError):
        file_digest(weights)
