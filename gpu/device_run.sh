#!/usr/bin/env bash
# The GPU run behind docs/gpu.md and tests/data/gpu/: on a bare CUDA machine, build the staged
# Ollama release's llama-server with CUDA, write the QwQ-shaped GGUF, register the catalog's variants with
# `qwq-ollama create`, then measure placement and decode speed for emulated 24/48/80 GiB cards.
# Phases are logged to $W/results/phases.txt; each phase checks the time left (BUDGET_S).
#
# usage: gpu/device_run.sh STAGE    (STAGE: what gpu/stage.sh prepared: sources, binary, wheels)
# env: PLAN=full (every card below, the default), PLAN=check (the full card's decode and one
#      24 GiB f16 card bisected around its boundary: a new release held to the planner), or
#      PLAN=cards (v0.34+: QwQ- and Qwen3-32B-shaped files; each emulated card loaded at the
#      planner's largest num_ctx and 1024 above it, bisected when the planner is off; Ollama's
#      own reloads at the largest and the recommended num_ctx; the card at its level before
#      every load, and what the engine saw recorded)
set -uo pipefail
STAGE=$(realpath "$1")
W=${W:-$HOME/qwq-gpu}
REPO=$W/repo   # a copy: the next device call replaces the stage under us
R=$W/results
LIB=$W/prefix/lib/ollama
OLLAMA=$W/prefix/bin/ollama
MODELS=$W/models
DEADLINE=$(( $(date +%s) + ${BUDGET_S:-1500} ))
mkdir -p "$W/src" "$R" "$W/prefix/bin" "$MODELS" "$W/catalog"

phase() { echo "$(date +%s) $*" | tee -a "$R/phases.txt"; }
left() { echo $(( DEADLINE - $(date +%s) )); }
stopped() { [ -e "$W/stop" ] || [ "$(left)" -lt "${1:-60}" ]; }

rm -rf "$REPO" && cp -a "$STAGE/repo" "$REPO"
phase setup
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
{
  nvidia-smi; nproc; free -g; df -h / /root /dev/shm; python3 --version; nvcc --version | tail -2
  cmake --version | head -1; ninja --version; git --version; uname -r
} > "$R/machine.txt" 2>&1
nvidia-smi --query-gpu=name,memory.total,memory.used,memory.free,driver_version \
  --format=csv,noheader,nounits > "$R/gpu.csv"
IDLE_USED=$(cut -d, -f3 "$R/gpu.csv" | tr -d ' ')
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site "$STAGE"/whl/*.whl
export PYTHONPATH=/tmp/site:$REPO
tar -xJf "$STAGE"/llama.cpp-ollama.tar.xz -C "$W/src"
tar -xzf "$STAGE"/ollama-llama.tar.gz -C "$W/src"
xz -dc "$STAGE"/ollama-linux-amd64.xz > "$OLLAMA" && chmod +x "$OLLAMA"
cp "$STAGE"/ollama-version "$R/ollama-version"
python3 - > "$R/bandwidth.txt" 2>&1 <<'EOF'
import torch
x = torch.empty(4 << 30, dtype=torch.uint8, device="cuda"); y = torch.empty_like(x)
for _ in range(3): y.copy_(x)
s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
s.record(); [y.copy_(x) for _ in range(10)]; e.record(); torch.cuda.synchronize()
print(f"device-to-device copy: {2 * 10 * x.numel() / (s.elapsed_time(e) / 1e3) / 1e12:.2f} TB/s (read+write)")
EOF

phase build
( CUDA_ARCHITECTURES=90 EXTRA_TARGETS=llama-fit-params \
    bash "$REPO/gpu/build_llama_server_cuda.sh" "$W/src/ollama" "$W/src/llama.cpp" "$W/prefix" \
    "$W/build" > "$R/build.log" 2>&1; echo $? > "$W/build.rc" ) &
BUILD_PID=$!

# The real file's recipe (Q4_K_M, 19.85 GB) when the disk holds three copies of it (create keeps
# the upload, writes a converted copy, and hashes it through a temporary file), else Q4_K.
AVAIL=$(df --output=avail -B1 "$MODELS" | tail -1)
COPIES=3; [ "${PLAN:-full}" = cards ] && COPIES=2  # from v0.34.1 the upload is the blob; 2 files
MIX=q4_k; [ "$AVAIL" -gt $(( COPIES * 19850000000 + 4000000000 )) ] && MIX=q4_k_m
phase "gguf mix=$MIX avail=$AVAIL"
GGUF=$W/qwq-32b-shaped.gguf
python3 "$REPO/gpu/make_qwq_shaped_gguf.py" write "$GGUF" --mix "$MIX" \
  --tokenizer-from "$STAGE/smollm2-tokenizer.gguf" > "$R/gguf.txt" 2>&1
GGUF3=$W/qwen3-32b-shaped.gguf
[ "${PLAN:-full}" = cards ] && python3 "$REPO/gpu/make_qwq_shaped_gguf.py" write "$GGUF3" \
  --mix "$MIX" --shape qwen3 --tokenizer-from "$STAGE/smollm2-tokenizer.gguf" >> "$R/gguf.txt" 2>&1
python3 -m qwq_ollama inspect "$GGUF" --json > "$R/gguf-inspect.json" 2>&1 || true
# A device-side copy of the catalog with one more weights entry: the generated file.
python3 - "$REPO/modelfiles/models.yaml" "$W/catalog/models.yaml" "$GGUF" "$REPO/templates" \
  "$GGUF3" <<'EOF'
import sys, yaml
src, dst, gguf, templates, gguf3 = sys.argv[1:]
data = yaml.safe_load(open(src))
data["templates"] = templates
data["weights"]["qwq-32b-shaped"] = {"description": "QwQ-32B shapes, zero weights", "gguf": gguf,
                                     "license": "Apache-2.0 (Qwen/QwQ-32B)"}
data["weights"]["qwen3-32b-shaped"] = {"description": "Qwen3-32B shapes, zero weights",
                                       "gguf": gguf3, "license": "Apache-2.0 (Qwen/Qwen3-32B)"}
open(dst, "w").write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
EOF

serve() {  # start the daemon in the background; log to $1
  OLLAMA_HOST=127.0.0.1:11434 OLLAMA_MODELS=$MODELS OLLAMA_NO_CLOUD=1 \
    "$OLLAMA" serve >> "$1" 2>&1 < /dev/null &
  echo $! > "$W/serve.pid"
  python3 -c "
import time, urllib.request
for _ in range(120):
    try: urllib.request.urlopen('http://127.0.0.1:11434/api/version', timeout=2); break
    except OSError: time.sleep(0.5)"
}
unserve() { kill "$(cat "$W/serve.pid")" 2>/dev/null; sleep 2; }

phase upload
serve "$R/serve-create.log"
export OLLAMA_HOST=http://127.0.0.1:11434 QWQ_OLLAMA_CACHE=$W/cache
# The blob upload half of `create` while CUDA compiles (create itself needs llama-quantize).
UPLOADS=("$GGUF"); [ "${PLAN:-full}" = cards ] && UPLOADS+=("$GGUF3")
python3 - "${UPLOADS[@]}" > "$R/upload.txt" 2>&1 <<'EOF'
import sys, time
from pathlib import Path
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.digests import file_digest
for name in sys.argv[1:]:
    path = Path(name); t = time.time()
    digest = file_digest(path); t1 = time.time()
    api = OllamaAPI(None)
    if not api.has_blob(digest):
        api.push_blob(digest, path)
    print(f"{path.name}: digest {digest} in {t1 - t:.1f} s, upload in {time.time() - t1:.1f} s")
EOF
if [ "${PLAN:-full}" = cards ]; then  # v0.34.1+ needs no llama-quantize: register while CUDA builds
  phase create
  SECONDS=0
  python3 -m qwq_ollama create qwq-fixed --weights qwq-32b-shaped \
    --catalog "$W/catalog/models.yaml" > "$R/create.txt" 2>&1
  python3 -m qwq_ollama create qwen3-thinking --weights qwen3-32b-shaped \
    --catalog "$W/catalog/models.yaml" >> "$R/create.txt" 2>&1
  echo "rc=$? in ${SECONDS}s" >> "$R/create.txt"
fi
unserve

# PLAN=cards: the planner held to one card model (QwQ- and Qwen3-32B-shaped files).
M="python3 $REPO/gpu/measure.py"
blob_of() {  # MODEL: the GGUF blob a registered model loads
  python3 - "$MODELS" "$1" <<'EOF'
import json, sys
from pathlib import Path
manifest = next(Path(sys.argv[1], "manifests").glob(f"*/*/{sys.argv[2]}/latest"))
layers = json.loads(manifest.read_text())["layers"]
digest = next(l["digest"] for l in layers if l["mediaType"].endswith("image.model"))
print(Path(sys.argv[1], "blobs", digest.replace(":", "-")))
EOF
}
planned() {  # GGUF FREE_MIB KV FLASH: "CTXS CAP", CTXS the planner's largest num_ctx and 1024 more
  python3 - "$@" <<'EOF'
import sys
from qwq_ollama.checks import memory_plan as mp
path, free, kv, flash = sys.argv[1], int(sys.argv[2]) * mp.MIB, sys.argv[3], sys.argv[4] != "off"
shape = mp.shape_from_gguf(path)
top = mp.largest_context(shape, free, kv, flash)
cap = shape.context_length
print(f"{top} {cap}" if top >= cap else f"{top},{min(cap, top + 1024)} {cap}")
EOF
}
BPID=""
block() {  # GIB: hold all the card's memory but GIB; sets LEVEL (free MiB as nvidia-smi shows)
  BPID=""
  if [ "$1" != full ]; then
    rm -f "$W/ready"
    python3 "$REPO/gpu/vram_blocker.py" $(( $1 * 1024 - IDLE_USED )) "$W/ready" &
    BPID=$!
    for _ in $(seq 120); do [ -s "$W/ready" ] && break; sleep 0.5; done
    [ -s "$W/ready" ] || { kill "$BPID"; BPID=""; return 1; }
    echo "$1 $(cat "$W/ready")" >> "$R/blocker.txt"
  fi
  LEVEL=$(nvidia-smi --query-gpu=memory.free --format=csv,noheader,nounits | head -1 | tr -d ' ')
}
unblock() { [ -n "$BPID" ] && { kill "$BPID"; wait "$BPID" 2>/dev/null; }; BPID=""; }
cardrun() {  # MODEL KV FLASH GIB BISECT [CTXS] [REPEATS]: one emulated card, one daemon
  local model=$1 kv=$2 fa=$3 gib=$4 bis=$5 ctxs=${6:-} reps=${7:-1} tag="$1-$2-$3-$4" gguf label
  stopped 100 && { phase "skip $tag"; return; }
  phase "card $tag"
  block "$gib" || { phase "blocker failed $tag"; return; }
  gguf=$(blob_of "$model")
  read -r planned_ctxs cap <<< "$(planned "$gguf" "$LEVEL" "$kv" "$fa")"
  label=$gib; [ "$gib" = full ] && label=$(awk -F, '{printf "%.1f", $2 / 1024}' "$R/gpu.csv")
  $M sweep --ollama "$OLLAMA" --models "$MODELS" --model "$model" --card "$label" \
    --ctx "${ctxs:-$planned_ctxs}" --kv "$kv" --flash "$fa" --bisect "$bis" --cap "$cap" \
    --repeats "$reps" --idle-used-mib "$IDLE_USED" --out "$R/points.jsonl" \
    --log "$R/serve-$tag.log" >> "$R/sweep.txt" 2>&1
  unblock
}
reloadrun() {  # MODEL GIB: Ollama's own reloads at the planner's largest num_ctx, the catalog's
  # 16384 and 2048 below the largest (about the recommended one)
  local model=$1 gib=$2 top
  stopped 200 && { phase "skip reload"; return; }
  phase "reload $model $gib"
  block "$gib" || { phase "blocker failed reload"; return; }
  top=$(planned "$(blob_of "$model")" "$LEVEL" f16 auto | cut -d, -f1 | cut -d' ' -f1)
  OLLAMA_DEBUG=1 $M reload --ollama "$OLLAMA" --models "$MODELS" --model "$model" --card "$gib" \
    --ctx "$top,16384,$(( top - 2048 ))" --other 8192 --times 2 --out "$R/reload.jsonl" \
    --log "$R/serve-reload.log" >> "$R/sweep.txt" 2>&1
  unblock
}
cards_plan() {
  local q=qwq-fixed q3=qwen3-thinking
  cardrun $q f16 auto full 0 16384 3       # decode on the whole card
  cardrun $q f16 auto 24 3
  reloadrun $q 24
  cardrun $q3 f16 auto 24 3
  cardrun $q3 q8_0 auto 24 3
  cardrun $q3 f16 auto 22 3
  cardrun $q q8_0 auto 24 3
  cardrun $q q4_0 auto 24 3
  cardrun $q f16 off 24 3
  cardrun $q f16 auto 48 3
  cardrun $q f16 off 48 3
  cardrun $q f16 auto 32 3
  cardrun $q f16 off 32 3
  cardrun $q q8_0 auto 32 3
  cardrun $q f16 auto 40 3
  cardrun $q f16 off 40 3
  cardrun $q3 f16 off 24 3
  cardrun $q f16 off 64 2
  cardrun $q f16 auto 64 2
  cardrun $q q8_0 auto 48 2
  cardrun $q q4_0 auto 32 2
  cardrun $q f16 off full 2
  cardrun $q q8_0 auto 40 2
  cardrun $q q4_0 auto 48 2
  cardrun $q q8_0 auto 64 2
  cardrun $q q4_0 auto 64 2
}

phase wait-build
wait "$BUILD_PID"
[ "$(cat "$W/build.rc" 2>/dev/null)" = 0 ] || { phase "build failed"; exit 1; }
ls -lR "$W/prefix/lib" > "$R/layout.txt"

if [ "${PLAN:-full}" = cards ]; then
  ls "$MODELS"/manifests/*/*/qwen3-thinking >/dev/null 2>&1 || { phase "create failed"; exit 1; }
  rm -f "$GGUF" "$GGUF3"
  cards_plan
  phase done
  exit 0
fi
phase create
serve "$R/serve-create.log"
SECONDS=0
python3 -m qwq_ollama create --weights qwq-32b-shaped \
  --catalog "$W/catalog/models.yaml" > "$R/create.txt" 2>&1
echo "rc=$? in ${SECONDS}s" >> "$R/create.txt"
python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:11434/api/tags').read().decode())" > "$R/tags.json"
python3 -m qwq_ollama list --weights qwq-32b-shaped \
  --catalog "$W/catalog/models.yaml" >> "$R/create.txt" 2>&1
unserve
ls "$MODELS"/manifests/*/*/qwq-fixed >/dev/null 2>&1 || { phase "create failed"; exit 1; }
BLOB=$(python3 -c "
import json,sys; from pathlib import Path
m=json.load(open(sorted(Path('$MODELS/manifests').rglob('latest'))[0]))
print([l['digest'] for l in m['layers'] if l['mediaType'].endswith('image.model')][0].replace(':','-'))")
BLOB=$MODELS/blobs/$BLOB
echo "$BLOB" > "$R/blob.txt"
rm -f "$GGUF"   # the generated source; the daemon has its own copy now
df -h "$MODELS" >> "$R/create.txt"

M="python3 $REPO/gpu/measure.py"
card() {  # card KV FLASH GIB CTXS BISECT: one emulated card, one daemon
  local kv=$1 fa=$2 gib=$3 ctxs=$4 bis=${5:-0} tag="$1-$2-$3" bpid=""
  stopped 90 && { phase "skip $tag"; return; }
  phase "card $tag"
  if [ "$gib" != full ]; then
    rm -f "$W/ready"
    python3 "$REPO/gpu/vram_blocker.py" $(( gib * 1024 - IDLE_USED )) "$W/ready" &
    bpid=$!
    for _ in $(seq 120); do [ -s "$W/ready" ] && break; sleep 0.5; done
    [ -s "$W/ready" ] || { phase "blocker failed $tag"; kill "$bpid"; return; }
    echo "$tag $(cat "$W/ready")" >> "$R/blocker.txt"
  fi
  $M sweep --ollama "$OLLAMA" --models "$MODELS" --card "$gib" --ctx "$ctxs" --kv "$kv" \
    --flash "$fa" --bisect "$bis" --idle-used-mib "$IDLE_USED" --predict 32 \
    --out "$R/points.jsonl" --log "$R/serve-$tag.log" >> "$R/sweep.txt" 2>&1
  [ -n "$bpid" ] && { kill "$bpid"; wait "$bpid" 2>/dev/null; }
}

CTXS=8192,16384,32768,65536,131072
phase first
$M sweep --ollama "$OLLAMA" --models "$MODELS" --card 140 --ctx 16384 --repeats 3 \
  --idle-used-mib "$IDLE_USED" --out "$R/full.jsonl" --log "$R/serve-full.log" >> "$R/sweep.txt" 2>&1
if [ "${PLAN:-full}" = check ]; then
  card f16 auto 24 "$CTXS" 3
  phase done
  exit 0
fi
phase bare
$M bare --ollama-log "$R/serve-full.log" --lib "$LIB" --out "$R/bare.jsonl" \
  --log "$R/bare-server.log" >> "$R/sweep.txt" 2>&1
phase fitgrid
$M fitgrid --lib "$LIB" --gguf "$BLOB" --out "$R/fit.jsonl" >> "$R/sweep.txt" 2>&1
for kv in f16 q8_0 q4_0; do
  card "$kv" auto 24 "$CTXS" 3
  card "$kv" auto 48 "$CTXS" 3
  card "$kv" auto 80 "$CTXS" 3
done
card f16 off 24 8192,16384,32768 2
card f16 off 48 8192,32768,65536 2
card f16 off 80 32768,65536,131072 2
phase done
