#!/usr/bin/env bash
# One H100 call for the capacity ladders (issue #12) and the executor benchmark (issue #14).
#   carry: .carry (shared/ data, configs, tokenizers) and .whl (rapidfuzz wheel for the GPU image)
# Run folders stay on the device (weights are large); their small files are copied to $OUT at the end.
set -uo pipefail
export RECITEBENCH_SHARED=$PWD/.carry/shared HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH=$PWD/src
python3 -m pip install -q --no-deps --no-index --find-links .whl rapidfuzz >/dev/null 2>&1
OUT=${OUT:-out}; mkdir -p "$OUT"
{ date -u +%FT%TZ; echo "commit ${COMMIT:-unknown}"; \
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; } | tee "$OUT/device.txt"
BUDGET=${BUDGET:-560}; start=$SECONDS
left() { echo $(( BUDGET - (SECONDS - start) )); }

if [ "${POOL:-1}" = 1 ]; then
  timeout "$(left)" python3 bench/pool_bench.py --out runs/pool_bench 2>&1 | tee "$OUT/pool_bench.txt"
  cp runs/pool_bench/pool_bench.json "$OUT/" 2>/dev/null
fi
for corpus in ${CORPORA:-random cn}; do
  t=$(( $(left) - 10 )); [ "$t" -gt 30 ] || break
  /usr/bin/time -f "capacity_$corpus wall %e s" timeout "$t" python3 -m recitebench capacity \
      "configs/capacity_ladder_$corpus.yaml" > "$OUT/capacity_$corpus.log" 2>&1
  tail -5 "$OUT/capacity_$corpus.log"
done
# Small files only: capacity summaries, specs, per-run results and curves.
for d in runs/capacity_ladder_*; do
  [ -d "$d" ] || continue
  name=$(basename "$d"); mkdir -p "$OUT/$name"
  cp "$d"/*.json "$d"/*.yaml "$d"/*.md "$d"/*.png "$OUT/$name/" 2>/dev/null
  for run in "$d"/sweep/*__* "$d"/pilot/*__*; do
    [ -d "$run" ] || continue
    dst="$OUT/$name/$(basename "$(dirname "$run")")/$(basename "$run")"; mkdir -p "$dst"
    cp "$run"/metrics.jsonl "$run"/train_summary.json "$run"/recite/results.json "$dst/" 2>/dev/null
  done
done
ls -R "$OUT" | head -50
