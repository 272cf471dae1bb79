#!/usr/bin/env bash
# One GPU vs two GPUs (DDP, then FSDP2, under torchrun), same per-GPU batch, same machine; prints tokens/s of the last epoch.
#   [MODEL=qwen2-1.5b-instruct] bash bench/ddp_bench.sh DATA OUT [EPOCHS] [BATCH_TOKENS]
# Also prints each side's peak GPU memory (rank 0, from train_summary.json).
set -euo pipefail
DATA=$1; OUT=$2; EPOCHS=${3:-3}; BT=${4:-16384}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
common=(train --data "$DATA" --model "${MODEL:-qwen2-0.5b-instruct}" --init scratch --lr 3e-4 --epochs "$EPOCHS" --batch-tokens "$BT"
        --recall-every 0 --checkpoint-every 0 --no-progress)
CUDA_VISIBLE_DEVICES=0 python3 -m recitebench "${common[@]}" --out "$OUT/gpu1"
python3 -m torch.distributed.run --nproc_per_node 2 -m recitebench "${common[@]}" --out "$OUT/gpu2"
python3 -m torch.distributed.run --nproc_per_node 2 -m recitebench "${common[@]}" --fsdp --out "$OUT/fsdp2"
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
sides = ("gpu1", "gpu2", "fsdp2")
t = {k: json.loads(open(f"{out}/{k}/metrics.jsonl").read().splitlines()[-1])["tokens_per_s"] for k in sides}
mem = {k: json.load(open(f"{out}/{k}/train_summary.json")).get("peak_gpu_memory_gb") for k in sides}
print(f"1 GPU: {t['gpu1']:.0f} tok/s   2 GPUs DDP: {t['gpu2']:.0f} tok/s ({t['gpu2'] / t['gpu1']:.2f}x)   "
      f"2 GPUs FSDP2: {t['fsdp2']:.0f} tok/s ({t['fsdp2'] / t['gpu1']:.2f}x); peak GB per GPU {mem}")
json.dump({"tokens_per_s": t, "peak_gpu_memory_gb": mem}, open(f"{out}/ddp_bench.json", "w"))
PY
