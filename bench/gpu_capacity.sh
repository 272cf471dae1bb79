#!/usr/bin/env bash
# One H100 call for the capacity ladders (issue #12) and the executor benchmark (issue #14).
#   carry: .carry (shared/ data, configs, tokenizers) and .whl (rapidfuzz wheel for the GPU image)
# Run folders stay on the device (weights are large); their small files are copied to $OUT at the end.
set -uo pipefail
export RECITEBENCH_SHARED=$PWD/.carry/shared HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH=$PWD/src
python3 -m pip install -q --no-deps --no-index --find-links .whl rapidfuzz >/dev/null 2>&1
OUT=${OUT:-out}; mkdir -p "$OUT"
export RECITEBENCH_COMMIT=${COMMIT:-}  # the tree travels without its history: results name the real commit
{ date -u +%FT%TZ; echo "commit ${COMMIT:-unknown}"; \
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; } | tee "$OUT/device.txt"
BUDGET=${BUDGET:-560}; start=$SECONDS
left() { echo $(( BUDGET - (SECONDS - start) )); }

if [ "${POOL:-1}" = 1 ]; then
  timeout "$(left)" python3 bench/pool_bench.py --out runs/pool_bench 2>&1 | tee "$OUT/pool_bench.txt"
  cp runs/pool_bench/pool_bench.json "$OUT/" 2>/dev/null
fi
ncorp=$(echo ${CORPORA:-random cn} | wc -w); i=0
for corpus in ${CORPORA:-random cn}; do
  i=$((i + 1)); t=$(( ($(left) - 20) / (ncorp - i + 1) )); [ "$t" -gt 30 ] || break
  /usr/bin/time -f "capacity_$corpus wall %e s" timeout "$t" python3 -m recitebench capacity \
      "configs/capacity_ladder_$corpus.yaml" > "$OUT/capacity_$corpus.log" 2>&1
  grep -v "^epoch\|^reciting" "$OUT/capacity_$corpus.log" | tail -8
done
# Small files only (weights stay behind), in one archive: the device returns a limited number of files.
find runs/capacity_ladder_* runs/pool_bench -maxdepth 4 \( -name "*.json" -o -name "*.jsonl" -o -name "*.md" \
    -o -name "*.png" -o -name "*.yaml" -o -name "run.log" \) -not -path "*/model/*" -not -path "*/tokenizer/*" \
    -not -name "samples.jsonl" -not -path "*/data/*" 2>/dev/null | tar czf "$OUT/capacity_results.tgz" -T -
ls -la "$OUT"
