#!/usr/bin/env bash
# One H100 call for a study spec (issue #13): runs it, then returns its small files in one archive.
#   SPEC=configs/study_d_language.yaml COMMIT=... bash bench/gpu_study.sh      carry: .carry .whl
set -uo pipefail
export RECITEBENCH_SHARED=$PWD/.carry/shared HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH=$PWD/src
python3 -m pip install -q --no-deps --no-index --find-links .whl rapidfuzz >/dev/null 2>&1
OUT=${OUT:-out}; mkdir -p "$OUT"
{ date -u +%FT%TZ; echo "commit ${COMMIT:-unknown}"; echo "spec $SPEC"; \
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; } | tee "$OUT/device.txt"
name=$(basename "$SPEC" .yaml)
/usr/bin/time -f "wall %e s" timeout "${BUDGET:-560}" python3 -m recitebench run "$SPEC" > "$OUT/$name.log" 2>&1
grep -v "^epoch\|^reciting" "$OUT/$name.log" | tail -12
find "runs/$name" -maxdepth 3 \( -name "*.json" -o -name "*.jsonl" -o -name "*.md" -o -name "*.yaml" \) \
    -not -path "*/model/*" -not -path "*/tokenizer/*" -not -path "*/data/*" | tar czf "$OUT/$name.tgz" -T -
