#!/usr/bin/env python3
"""Make a big GPU look like a smaller card: hold all of its memory but FREE_MIB, until killed.

    vram_blocker.py FREE_MIB READY_FILE

Ollama v0.32 leaves placement to llama-server's --fit, which reads the device's free memory
(cudaMemGetInfo); OLLAMA_GPU_OVERHEAD does not reach it. Memory another process holds does.
One plain cudaMalloc (through PyTorch) of the difference; READY_FILE then gets the free MiB the
driver reports, and the process sleeps.
"""

from __future__ import annotations

import sys
import time

import torch

MIB = 1 << 20


def main() -> int:
    want_free = int(sys.argv[1]) * MIB
    ready = sys.argv[2]
    torch.cuda.init()
    free, _total = torch.cuda.mem_get_info()
    if free <= want_free:
        raise SystemExit(f"only {free // MIB} MiB free, cannot leave {want_free // MIB} MiB")
    block = torch.empty(free - want_free, dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    free_after, total = torch.cuda.mem_get_info()
    with open(ready, "w") as handle:
        handle.write(f"{free_after // MIB} {total // MIB} {block.numel() // MIB}\n")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
