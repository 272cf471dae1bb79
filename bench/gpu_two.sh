#!/usr/bin/env bash
# Issue #17 in one call on two GPUs of one host (nvidia-h200-x2):
#   COMMIT=... bash bench/gpu_two.sh
#   carry: .carry (shared/models, shared/data/cn_poems.jsonl.xz for the grid's dataset, cn256) and .whl (rapidfuzz)
# (1) the four-run 0.5B grid bench/pool_grid_05b.yaml: sequential on GPU 0 vs the local pool, one run per GPU
#     (target >= 1.9x runs per hour);
# (2) one 0.5B run under torchrun DDP on two GPUs vs one GPU (and FSDP2), 32,768 tokens per GPU step;
# (3) the 1.5B: one GPU vs DDP vs FSDP2 on two, tokens/s and peak memory per GPU, 16,384 tokens per GPU step.
# Each part has its own time limit; every result lands in $OUT/two_gpus.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1  # KINDS.md: no NVLink multicast
LABEL="two GPUs" . bench/gpu_env.sh
step pool ${POOL_S:-300} python3 bench/pool_bench.py --spec bench/pool_grid_05b.yaml --jobs 2 --gpus-per-run 1 \
    --sequential-gpus 0 --out runs/pool_two
step ddp_05b ${DDP_S:-150} bash bench/ddp_bench.sh .carry/cn256 runs/ddp_05b 3 32768
step ddp_15b ${BIG_S:-240} env MODEL=qwen2-1.5b-instruct bash bench/ddp_bench.sh .carry/cn256 runs/ddp_15b 2 16384
find runs/pool_two runs/ddp_05b runs/ddp_15b "$OUT" -maxdepth 3 \( -name "*.json" -o -name "*.jsonl" -o -name "*.log" \
    -o -name "*.txt" \) -not -path "*/model/*" -not -path "*/data/*" -not -name "samples.jsonl" 2>/dev/null \
    | tar czf /tmp/two.tgz -T - && mv /tmp/two.tgz "$OUT/two_gpus.tgz"
ls "$OUT"
