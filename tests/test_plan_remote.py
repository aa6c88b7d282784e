"""`plan` before the download: the GGUF's header read where it lies, by range requests.

A local server answers as the Hugging Face Hub does (the tree listing, HEAD and ranged GETs of
`resolve/main/FILE`; HF_ENDPOINT points at it) and serves the QwQ-32B-shaped GGUF the H200
measurements used, counting the bytes it sends. Also a plain https-style URL, a split GGUF, the
server gone, and HF_HUB_OFFLINE with the header cached.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest

from qwq_ollama.catalog.schema import load_catalog
from qwq_ollama.checks import memory_plan as mp

from .conftest import ROOT, run_cli
from .test_memory_plan import FIXTURE

REPO = "unsloth/QwQ-32B-GGUF"  # the catalog's qwq-32b weights
QUANT_FILE = "QwQ-32B-Q4_K_M.gguf"


class Hub(http.server.ThreadingHTTPServer):
    """Files per repository; `sent` counts the body bytes of every answer."""

    def __init__(self, files: dict[str, dict[str, Path]]) -> None:
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.files = files
        self.sent = 0
        self.full_gets = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class HubHandler(http.server.BaseHTTPRequestHandler):
    server: Hub

    def log_message(self, *args: object) -> None:
        pass

    def _target(self) -> Path | None:
        parts = self.path.split("?", 1)[0].lstrip("/").split("/")
        if parts[0] == "files":  # a plain URL, not the Hub's layout
            repo, name = "/".join(parts[1:3]), "/".join(parts[3:])
        elif len(parts) >= 5 and parts[2] == "resolve":
            repo, name = "/".join(parts[:2]), "/".join(parts[4:])
        else:
            return None
        return self.server.files.get(repo, {}).get(name)

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if body:
            self.wfile.write(body)
            self.server.sent += len(body)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/api/models/"):
            repo = "/".join(self.path.split("?", 1)[0].split("/")[3:5])
            listing = [
                {"type": "file", "path": name, "size": path.stat().st_size, "oid": "0"}
                for name, path in self.server.files.get(repo, {}).items()
            ]
            self._send(
                200 if repo in self.server.files else 404,
                json.dumps(listing).encode(),
                {"Content-Type": "application/json"},
            )
            return
        self._file(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._file(body=False)

    def _file(self, body: bool) -> None:
        path = self._target()
        if path is None:
            self._send(404)
            return
        size = path.stat().st_size
        headers = {
            "ETag": f'"{path.name}-{size}"',
            "X-Repo-Commit": "c" * 40,
            "Accept-Ranges": "bytes",
        }
        wanted = self.headers.get("Range")
        if not body:
            self._send(200, headers=headers, length=size)
            return
        if wanted is None:  # a whole 20 GB file: a planner must never ask for it
            self.server.full_gets += 1
            self._send(404)
            return
        first, last = (int(v) for v in wanted.removeprefix("bytes=").split("-"))
        last = min(last, size - 1)
        with open(path, "rb") as handle:
            handle.seek(first)
            data = handle.read(last - first + 1)
        self._send(206, data, {**headers, "Content-Range": f"bytes {first}-{last}/{size}"})


def tiny_model(out: Path, split_tensors: int = 0) -> list[Path]:
    """A small llama-shaped GGUF, whole or split into shards of `split_tensors` tensors."""
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(out, "llama", split_max_tensors=split_tensors)
    for key, value in {
        "embedding_length": 64,
        "block_count": 2,
        "feed_forward_length": 128,
        "context_length": 4096,
    }.items():
        writer.add_uint32(f"llama.{key}", value)
    writer.add_uint32("llama.attention.head_count", 4)
    for name in (
        "token_embd.weight",
        "blk.0.attn_q.weight",
        "blk.1.attn_q.weight",
        "output.weight",
    ):
        writer.add_tensor(name, np.ones((64, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return sorted(out.parent.glob(f"{out.stem}*.gguf"))


@pytest.fixture()
def hub(qwq_shaped: Path, tmp_path: Path) -> Iterator[Hub]:
    whole = tiny_model(tmp_path / "whole" / "tiny-Q4_0.gguf")
    split = tiny_model(tmp_path / "split" / "tiny-Q4_0.gguf", split_tensors=2)
    assert [p.name for p in split] == [
        "tiny-Q4_0-00001-of-00002.gguf",
        "tiny-Q4_0-00002-of-00002.gguf",
    ]
    server = Hub(
        {
            REPO: {QUANT_FILE: qwq_shaped, "README.md": qwq_shaped},
            "test/whole-GGUF": {p.name: p for p in whole},
            "test/split-GGUF": {p.name: p for p in split},
        }
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def env(hub: Hub, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "HF_ENDPOINT": hub.endpoint,
        "QWQ_OLLAMA_CACHE": str(tmp_path / "cache"),
        "HF_HOME": str(tmp_path / "hf"),
        **extra,
    }


def test_plan_reads_the_hub_header_and_prints_the_same_table(
    hub: Hub, qwq_shaped: Path, tmp_path: Path
) -> None:
    local = run_cli("plan", "qwq-fixed", "--vram", "24GiB", "--gguf", str(qwq_shaped))
    remote = run_cli("plan", "qwq-fixed", "--vram", "24GiB", env=env(hub, tmp_path))
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout
    assert hub.full_gets == 0 and 0 < hub.sent <= 8 << 20, hub.sent  # the header, not 20 GB
    assert f"header of hf://{REPO}@Q4_K_M: " in remote.stderr
    # the numbers are those the H200 measurements hold the planner to
    row = remote.stdout.splitlines()[-1].split()
    measured = [p for p in FIXTURE["points"] if p["card_gib"] == 24 and p["kv"] == "f16"]
    lo = max(p["num_ctx"] for p in measured if p["size"] == p["size_vram"])
    assert row[6] == "tight" and int(row[7]) >= lo  # fits, but not with room for a reload


def test_hf_and_https_urls_give_the_same_table(hub: Hub, qwq_shaped: Path, tmp_path: Path) -> None:
    local = run_cli("plan", "--vram", "48GiB", "--gguf", str(qwq_shaped)).stdout
    for source in (f"hf://{REPO}/{QUANT_FILE}", f"{hub.endpoint}/files/{REPO}/{QUANT_FILE}"):
        remote = run_cli("plan", "--vram", "48GiB", "--gguf", source, env=env(hub, tmp_path))
        assert remote.returncode == 0, remote.stderr
        assert remote.stdout == local


def test_a_split_gguf_is_planned_from_its_shards_headers(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    # what HF_ENDPOINT sets when huggingface_hub is imported
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setenv("QWQ_OLLAMA_CACHE", str(tmp_path / "cache"))
    whole = mp.weights_shape(None, "hf://test/whole-GGUF@Q4_0")
    sent = hub.sent
    split = mp.weights_shape(None, "hf://test/split-GGUF@Q4_0")
    assert hub.sent > sent
    assert (split.weights_gpu, split.layers, split.embd) == (
        whole.weights_gpu,
        whole.layers,
        whole.embd,
    )
    assert split.weights_gpu == 3 * 64 * 64 * 4  # every tensor but token_embd, both shards


def test_offline_with_the_header_cached_it_still_answers(hub: Hub, tmp_path: Path) -> None:
    online = run_cli("plan", "qwq-fixed", "--vram", "24GiB", env=env(hub, tmp_path))
    sent = hub.sent
    offline = run_cli(
        "plan", "qwq-fixed", "--vram", "24GiB", env=env(hub, tmp_path, HF_HUB_OFFLINE="1")
    )
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout == online.stdout and hub.sent == sent
    assert "from the header cache" in offline.stderr
    never = run_cli(
        "plan", "qwq-fixed", "--vram", "24GiB", env=env(hub, tmp_path / "other", HF_HUB_OFFLINE="1")
    )
    assert never.returncode == 2
    assert "HF_HUB_OFFLINE is set and its header was never read here" in never.stderr


def test_with_the_server_gone_one_clear_line(hub: Hub, tmp_path: Path) -> None:
    endpoint = hub.endpoint
    hub.shutdown()
    hub.server_close()
    result = run_cli(
        "plan", "qwq-fixed", "--vram", "24GiB", env={**env(hub, tmp_path), "HF_ENDPOINT": endpoint}
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"Error: {REPO} Q4_K_M: could not reach the server")


def test_plan_ctx_names_what_fits_and_the_fastest(qwq_shaped: Path) -> None:
    """24 GiB at num_ctx 32768: measured on the H200, f16 and q8_0 spill a layer, q4_0 fits."""
    result = run_cli("plan", "--ctx", "32768", "--vram", "24GiB", "--gguf", str(qwq_shaped))
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:5]}
    measured = {
        p["kv"]: p["size"] == p["size_vram"]
        for p in FIXTURE["points"]
        if p["card_gib"] == 24 and p["num_ctx"] == 32768 and p["flash"] != "off"
    }
    assert {kv: row[5] == "all" for kv, row in rows.items()} == measured
    assert result.stdout.splitlines()[-1].startswith(
        "fits: q4_0; fastest that fits: q4_0 (OLLAMA_KV_CACHE_TYPE=q4_0;"
    )
    roomy = run_cli("plan", "--ctx", "16384", "--vram", "48GiB", "--gguf", str(qwq_shaped))
    assert roomy.stdout.splitlines()[-1].startswith(
        "fits: f16, q8_0, q4_0; fastest that fits: f16 (the default;"
    )


def test_download_first_says_what_the_plan_says(hub: Hub, tmp_path: Path) -> None:
    result = run_cli("download", "--vram", "24GiB", env=env(hub, tmp_path))
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("plan: Q4_K_M at num_ctx 16384 (qwq-fixed) needs ")
    # the planner's 24 GiB f16 boundary, which the H200 bracketed at 16384 / 18432
    assert first.endswith(
        "of the 22.5 llama-server may use on 24.0 GiB free: all on the GPU "
        "(up to num_ctx 17152; 15104 with room for a reload)"
    )
    assert result.returncode != 0  # this Hub serves no whole file: the download stops there


def test_without_a_known_gpu_download_says_nothing_first(tmp_path: Path) -> None:
    catalog = load_catalog(ROOT / "modelfiles" / "models.yaml")
    if mp.local_gpu_free() is not None:
        pytest.skip("this machine has a GPU nvidia-smi reports")
    assert mp.download_verdict(catalog, REPO, "Q4_K_M", None) is None


def test_plan_a_model_already_on_the_daemon(api, registered, small_gguf: Path) -> None:
    """--model reads the registered model's verbose /api/show: the same table as its file."""
    from_daemon = run_cli(
        "plan", "qwq-fixed", "--vram", "8GiB", "--model", "qwq-fixed", "--host", api.host
    )
    from_file = run_cli("plan", "qwq-fixed", "--vram", "8GiB", "--gguf", str(small_gguf))
    assert from_daemon.returncode == 0, from_daemon.stderr
    assert from_daemon.stdout == from_file.stdout
    ctx = run_cli(
        "plan", "--ctx", "8192", "--vram", "8GiB", "--model", "qwq-fixed", "--host", api.host
    )
    assert ctx.stdout.splitlines()[-1].startswith("fits: f16, q8_0, q4_0; fastest that fits: f16")
