"""download_gguf through huggingface_hub's real cache and offline path, in fresh processes.

huggingface_hub reads HF_HOME and HF_HUB_OFFLINE when it is imported, so each case runs in a
subprocess with its own environment: what a user's shell would do. The Hub itself is out of
reach here; a loopback server stands in for it where its answers (gated, not found) matter.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest

from qwq_ollama.artifacts.download import KNOWN_QUANTS, allow_patterns, check_quant, ignore_patterns
from qwq_ollama.errors import InputError

REPO = "unsloth/QwQ-32B-GGUF"
COMMIT = "8728e66249190b78dee8404869827328527f6b3b"
TOKEN = "hf_TestTokenDoNotLeak0123456789abcdef"
CACHED = [
    "QwQ-32B-Q4_K_M.gguf",
    "QwQ-32B-Q2_K.gguf",
    "QwQ-32B-Q2_K_L.gguf",
    "BF16/QwQ-32B-BF16-00002-of-00002.gguf",
    "BF16/QwQ-32B-BF16-00001-of-00002.gguf",
    "QwQ-32B-Q8_0-00001-of-00003.gguf",
    "QwQ-32B-Q8_0-00003-of-00003.gguf",
    "mmproj-F16.gguf",
]
RUN = """
import json, sys
from pathlib import Path
from qwq_ollama.artifacts.download import download_gguf
from qwq_ollama.errors import QwqOllamaError
repo, quant, local_dir = sys.argv[1], sys.argv[2], sys.argv[3] or None
try:
    files = download_gguf(repo, quant, Path(local_dir) if local_dir else None)
    print(json.dumps({"files": [str(f) for f in files]}))
except QwqOllamaError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
"""


def tiny_gguf(path: Path, label: str) -> bytes:
    """A real (tiny) GGUF whose name says which file it is."""
    writer = gguf.GGUFWriter(path, "qwen2")
    writer.add_name(label)
    writer.add_tensor("token_embd.weight", np.zeros((2, 2), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """huggingface_hub's cache layout: refs/main -> commit, snapshot files symlinked to blobs."""
    import hashlib

    home = tmp_path_factory.mktemp("hf_home")
    repo = home / "hub" / f"models--{REPO.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)  # no newline, as huggingface_hub writes it
    (repo / "blobs").mkdir()
    scratch = tmp_path_factory.mktemp("scratch")
    for name in CACHED:
        data = tiny_gguf(scratch / Path(name).name, name)
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = repo / "snapshots" / COMMIT / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return home


def run(
    hf_home: Path,
    quant: str,
    repo: str = REPO,
    local_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    clean.update(
        HF_HOME=str(hf_home),
        HF_TOKEN=TOKEN,
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    clean.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", RUN, repo, quant, str(local_dir or "")],
        capture_output=True,
        text=True,
        env=clean,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def snapshot(hf_home: Path, name: str) -> str:
    return str(hf_home / "hub" / "models--unsloth--QwQ-32B-GGUF" / "snapshots" / COMMIT / name)


def test_cached_quant_returned_offline(hf_home: Path) -> None:
    result = run(hf_home, "Q4_K_M")
    assert result == {"files": [snapshot(hf_home, "QwQ-32B-Q4_K_M.gguf")]}
    path = Path(snapshot(hf_home, "QwQ-32B-Q4_K_M.gguf"))
    assert path.is_symlink() and path.resolve().parent.name == "blobs"
    assert gguf.GGUFReader(path).fields["general.name"].contents() == "QwQ-32B-Q4_K_M.gguf"


def test_quant_that_prefixes_another_is_matched_exactly(hf_home: Path) -> None:
    assert run(hf_home, "Q2_K") == {"files": [snapshot(hf_home, "QwQ-32B-Q2_K.gguf")]}
    assert run(hf_home, "q2_k_l") == {"files": [snapshot(hf_home, "QwQ-32B-Q2_K_L.gguf")]}


def test_split_gguf_returned_in_part_order(hf_home: Path) -> None:
    assert run(hf_home, "BF16") == {
        "files": [
            snapshot(hf_home, "BF16/QwQ-32B-BF16-00001-of-00002.gguf"),
            snapshot(hf_home, "BF16/QwQ-32B-BF16-00002-of-00002.gguf"),
        ]
    }


def test_incomplete_split_is_an_error(hf_home: Path) -> None:
    assert run(hf_home, "Q8_0") == {
        "error": "EnvironmentProblem",
        "message": (
            "unsloth/QwQ-32B-GGUF Q8_0: split GGUF QwQ-32B is incomplete (have parts 1, 3 of 3): "
            "run the download again with network access (unset HF_HUB_OFFLINE)"
        ),
    }


def test_quant_not_cached_offline(hf_home: Path) -> None:
    result = run(hf_home, "Q6_K")
    assert result["error"] == "EnvironmentProblem"
    folder = snapshot(hf_home, "").rstrip("/")
    assert result["message"] == (
        f"unsloth/QwQ-32B-GGUF Q6_K: no such GGUF in the local cache ({folder}) and "
        "HF_HUB_OFFLINE is set: unset HF_HUB_OFFLINE to download it"
    )


def test_repo_not_cached_offline(hf_home: Path) -> None:
    assert run(hf_home, "Q4_K_M", repo="Qwen/QwQ-32B-GGUF") == {
        "error": "EnvironmentProblem",
        "message": (
            "Qwen/QwQ-32B-GGUF Q4_K_M: nothing cached for this repository and HF_HUB_OFFLINE "
            "is set: unset HF_HUB_OFFLINE to download it"
        ),
    }


def test_local_dir_offline(hf_home: Path, tmp_path: Path) -> None:
    tiny_gguf(tmp_path / "QwQ-32B-Q4_K_M.gguf", "local")
    tiny_gguf(tmp_path / "QwQ-32B-Q4_K_S.gguf", "local")
    assert run(hf_home, "Q4_K_M", local_dir=tmp_path) == {
        "files": [str(tmp_path / "QwQ-32B-Q4_K_M.gguf")]
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_hub_unreachable(hf_home: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    online = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": closed}
    # nothing cached: a one-line network error
    assert run(hf_home, "Q4_K_M", repo="Qwen/QwQ-32B-GGUF", env=online) == {
        "error": "EnvironmentProblem",
        "message": (
            "Qwen/QwQ-32B-GGUF Q4_K_M: could not reach the Hugging Face Hub (ConnectError) and "
            "nothing is cached: check the network, proxy or HF_ENDPOINT, then try again"
        ),
    }
    # cached: huggingface_hub falls back to the cache
    assert run(hf_home, "Q4_K_M", env=online) == {
        "files": [snapshot(hf_home, "QwQ-32B-Q4_K_M.gguf")]
    }


class FakeHub(http.server.BaseHTTPRequestHandler):
    """Answers every request as the Hub does for a gated repo, or a missing/private one."""

    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        FakeHub.seen.append((self.path, self.headers.get("Authorization")))
        gated = "/gated" in self.path
        self.send_response(403 if gated else 401)
        self.send_header("X-Error-Code", "GatedRepo" if gated else "RepoNotFound")
        self.send_header("X-Error-Message", f"denied for token {TOKEN}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def fake_hub() -> Iterator[str]:
    FakeHub.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_gated_and_missing_repos(hf_home: Path, fake_hub: str) -> None:
    online = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": fake_hub}
    assert run(hf_home, "Q4_K_M", repo="someone/gated-GGUF", env=online) == {
        "error": "EnvironmentProblem",
        "message": (
            "someone/gated-GGUF is gated: accept its terms at "
            "https://huggingface.co/someone/gated-GGUF and set HF_TOKEN to a token of that "
            "account"
        ),
    }
    assert run(hf_home, "Q4_K_M", repo="someone/private-GGUF", env=online) == {
        "error": "EnvironmentProblem",
        "message": (
            "someone/private-GGUF not found on the Hugging Face Hub, or private and HF_TOKEN has "
            "no access: check the name, or set HF_TOKEN"
        ),
    }
    # HF_TOKEN was sent (huggingface_hub honours it), yet no message above contains it
    assert FakeHub.seen and all(auth == f"Bearer {TOKEN}" for _, auth in FakeHub.seen)


def test_bad_quant_or_repo_refused_before_any_io(fake_hub: str, tmp_path: Path) -> None:
    home = tmp_path / "untouched"
    offline_off = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": fake_hub}
    assert run(home, "Q4_K", env=offline_off) == {
        "error": "InputError",
        "message": f"quant: unknown quant 'Q4_K': use one of {', '.join(KNOWN_QUANTS)}",
    }
    assert run(home, "Q4_K_M", repo="not a repo!", env=offline_off) == {
        "error": "InputError",
        "message": "repo_id: not a Hugging Face repository id: 'not a repo!' (want owner/name)",
    }
    assert FakeHub.seen == [] and not home.exists()
    with pytest.raises(InputError):
        check_quant("Q4_K_M.gguf")
    assert check_quant(" ud-q4_k_xl ") == "UD-Q4_K_XL"


@pytest.mark.parametrize(
    "quant, wanted",
    [
        ("Q4_K_M", ["QwQ-32B-Q4_K_M.gguf"]),
        ("Q2_K", ["QwQ-32B-Q2_K.gguf"]),
        ("Q2_K_L", ["QwQ-32B-Q2_K_L.gguf"]),
        (
            "BF16",
            ["BF16/QwQ-32B-BF16-00001-of-00002.gguf", "BF16/QwQ-32B-BF16-00002-of-00002.gguf"],
        ),
        ("F16", ["QwQ-32B-F16.gguf"]),
        ("UD-Q4_K_XL", ["QwQ-32B-UD-Q4_K_XL.gguf"]),
        ("Q8_0", ["qwq-32b-q8_0.gguf"]),
    ],
)
def test_patterns_fetch_exactly_the_quant(quant: str, wanted: list[str]) -> None:
    """What snapshot_download would fetch online, filtered by huggingface_hub's own matcher."""
    from huggingface_hub.utils import filter_repo_objects

    repo_files = [
        "README.md",
        "QwQ-32B-Q4_K_M.gguf",
        "QwQ-32B-UD-Q4_K_M.gguf",
        "QwQ-32B-Q2_K.gguf",
        "QwQ-32B-Q2_K_L.gguf",
        "QwQ-32B-F16.gguf",
        "mmproj-F16.gguf",
        "QwQ-32B-UD-Q4_K_XL.gguf",
        "qwq-32b-q8_0.gguf",
        "BF16/QwQ-32B-BF16-00001-of-00002.gguf",
        "BF16/QwQ-32B-BF16-00002-of-00002.gguf",
    ]
    fetched = sorted(
        filter_repo_objects(
            repo_files, allow_patterns=allow_patterns(quant), ignore_patterns=ignore_patterns(quant)
        )
    )
    assert fetched == sorted(wanted)
