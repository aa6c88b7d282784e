"""`qwq-ollama remove`: unregisters the variants qwq-ollama created and, with --weights, its
base models, on a private daemon of each pinned release; a model the user made themselves,
the weights a kept variant still runs over, and a misspelt name are left alone."""

from __future__ import annotations

import json
from pathlib import Path

from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.engines.install import OllamaBinary
from qwq_ollama.engines.private_daemon import OllamaDaemon

from .conftest import run_cli
from .test_cli_contract import CountingListener, documented_fields

SMALL = "smollm2-135m"
BASE = f"qwq-ollama-weights/{SMALL}"


def test_remove_refuses_a_misspelt_variant_before_any_request() -> None:
    listener = CountingListener()
    try:
        result = run_cli("remove", "nope", "--weights", "--host", listener.host)
    finally:
        listener.close()
    assert result.returncode == 2 and "unknown variant 'nope'" in result.stderr
    assert listener.accepted == 0


def test_remove_takes_back_what_create_made_and_nothing_else(
    ollama_binary: OllamaBinary, small_gguf: Path, tmp_path: Path
) -> None:
    assert small_gguf.exists()
    with OllamaDaemon(ollama_binary.path, tmp_path / "models") as daemon:
        host = ["--host", daemon.host]
        made = run_cli("create", "qwq-fixed", "qwq-minp", "--weights", SMALL, "-q", *host)
        assert made.returncode == 0, made.stderr
        api = OllamaAPI(daemon.host)
        api.copy(BASE, "my-own-model")  # the user's own name for the same weights
        names = lambda: {n.partition(":")[0] for n in api.list_names()}  # noqa: E731
        assert {"qwq-fixed", "qwq-minp", BASE, "my-own-model"} <= names()

        # one variant: the other still runs over the weights, which --weights keeps
        one = run_cli("remove", "qwq-fixed", "--weights", "--json", *host)
        assert one.returncode == 0, one.stderr
        report = json.loads(one.stdout)
        assert set(report) - {"schema_version"} == documented_fields("remove --json")
        assert report["removed"] == ["qwq-fixed"]
        # the base model and its :source-* alias
        assert f"{BASE}:latest" in report["kept"]
        assert all(name.startswith(f"{BASE}:") for name in report["kept"])
        assert set(report["kept"].values()) == {"qwq-minp still runs over it"}
        assert "qwq-fixed" not in names() and BASE in names()

        # the rest of the default set, then the weights: the user's own model stays
        rest = run_cli("remove", "--weights", *host)
        assert rest.returncode == 0, rest.stderr
        lines = rest.stdout.splitlines()
        assert "removed qwq-minp" in lines and "qwq-fixed is not registered" in lines
        assert any(line.startswith(f"removed {BASE}:") for line in lines), rest.stdout
        left = names()
        assert "qwq-minp" not in left and not any(n.startswith("qwq-ollama-weights/") for n in left)
        assert "my-own-model" in left
