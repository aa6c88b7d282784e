#!/usr/bin/env bash
# On a machine with no network whose CPU lists AMX (the GPU machine's Intel Xeon): build the
# staged Ollama release's llama-server for the CPU exactly as `qwq-ollama install-ollama` does
# (the instruction sets the probe saw run, AMX never), then run the smoke check's llama-server
# part on a small QwQ-shaped model. Everything it writes goes to $OUT (or $W/out).
#
# usage: gpu/cpu_build_check.sh STAGE    (STAGE: what gpu/stage.sh prepared)
set -euo pipefail
STAGE=$(realpath "$1")
W=${W:-$HOME/qwq-cpu-check}
R=${OUT:-$W/out}
rm -rf "$W/buildtree" "$W/src" && mkdir -p "$W/src" "$W/buildtree" "$R"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site "$STAGE"/whl/*.whl
export PYTHONPATH=/tmp/site:$STAGE/repo
tar -xJf "$STAGE/llama.cpp-ollama.tar.xz" -C "$W/src"
tar -xzf "$STAGE/ollama-llama.tar.gz" -C "$W/src"
mv "$W/src/llama.cpp" "$W/buildtree/llama.cpp"  # where llama_build looks before downloading
python3 "$STAGE/repo/gpu/make_qwq_shaped_gguf.py" write "$W/small.gguf" --layers 2 \
  --tokenizer-from "$STAGE/smollm2-tokenizer.gguf" > "$R/gguf.txt"
W=$W R=$R VERSION=$(cat "$STAGE/ollama-version") python3 - <<'EOF' 2>&1 | tee "$R/check.txt"
import os, time
from pathlib import Path
from qwq_ollama.engines import cpu_features, llama_build
from qwq_ollama.engines.build_steps import BuildStep
from qwq_ollama.engines.install import PINNED
from qwq_ollama.engines.smoke_check import check_llama_server

W, R, version = Path(os.environ["W"]), Path(os.environ["R"]), os.environ["VERSION"]
prefix = W / "prefix"
prefix.mkdir(exist_ok=True)
print("cpu:", cpu_features.cpu_model())
print("lists:", " ".join(sorted(f for f in cpu_features.cpu_flags() or () if "amx" in f)))
choice = cpu_features.choose(prefix)
print("chosen:", choice.describe())
steps = BuildStep(version, W / "buildtree")
started = time.monotonic()
llama_build.build_helpers(PINNED[version].llama_cpp, W / "src" / "ollama", W / "buildtree", prefix,
                          steps, cpu_features.cmake_options(choice.options, x86=choice.x86))
llama_build.check_helpers(PINNED[version].llama_cpp, prefix, steps)
print(f"built and checked in {time.monotonic() - started:.0f} s:",
      " ".join(sorted(p.name for p in (prefix / "lib" / "ollama").iterdir())))
check_llama_server(prefix / "lib" / "ollama" / "llama-server", W / "small.gguf",
                   R / "smoke-llama-server.log")
print("smoke check: llama-server loaded the model and generated")
EOF
