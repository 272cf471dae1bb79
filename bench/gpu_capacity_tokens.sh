#!/usr/bin/env bash
# One H200 call for the random-token capacity ladder (issue #25): the throughput of the stacked engine against a
# plain single-model loop (bench/capacity_bench.py, side by side), then `recitebench capacity` on the shipped spec.
#   COMMIT=<sha> [MAX_STEPS=N: above the spec's cap] BUDGET=560 BENCH=1 [SEED=docs/capacity_results/...]
#   [STATE=.capstate] bash bench/gpu_capacity_tokens.sh
set -uo pipefail
LABEL="capacity_tokens" . bench/gpu_env.sh
BUDGET=${BUDGET:-560}; start=$SECONDS
left() { echo $(( BUDGET - (SECONDS - start) )); }
if [ "${BENCH:-1}" = 1 ]; then
  step capacity_bench 150 python3 bench/capacity_bench.py --models configs/models/tok-*.json --k 8 --steps 150 \
      --json "$OUT/capacity_bench.json"
fi
SPEC=${SPEC:-configs/capacity_tokens.yaml}; ROOT=runs/$(basename "$SPEC" .yaml)
# STATE=DIR: the stacks an earlier call left in its $OUT (capstate.part_*: every group's state.pt, group.json and
# run.log): a fresh machine, or a later session, continues each group from its last save instead of from step 0.
# A session's last state is shipped with its raw files (docs/capacity_results/tokens_h200/*/state: the ignored
# folders of one session are gone in the next), e.g. STATE=docs/capacity_results/tokens_h200/<folder>/state;
# a later call of the same session takes the parts its predecessor returned, from an ignored folder (STATE=.capstate,
# carried) with the shipped state/ moved out of the tree, so the tree and both states fit the 64 MiB a call carries
if [ -n "${STATE:-}" ] && ls "$STATE"/capstate.part_* >/dev/null 2>&1; then
  cat "$STATE"/capstate.part_* | tar xf - --skip-old-files && echo "restored the stacks saved in $STATE"
fi
# SEED=DIR: the finished groups of an earlier call (DIR/MODEL.group.json); `capacity` reuses a group only when its
# points and settings are the spec's, and trains the others
if [ -n "${SEED:-}" ]; then
  for g in "$SEED"/*.group.json; do m=$(basename "$g" .group.json); mkdir -p "$ROOT/stacked/$m"
    [ -f "$ROOT/stacked/$m/group.json" ] || cp "$g" "$ROOT/stacked/$m/group.json"; done
fi
step capacity "$(( $(left) - 25 ))" python3 -m recitebench capacity "$SPEC" --out "$ROOT" \
    ${MAX_STEPS:+--max-steps "$MAX_STEPS"} ${ARGS:-}
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader >> "$OUT/device.txt"
find "$ROOT" -maxdepth 3 \( -name "*.json" -o -name "*.md" -o -name "*.png" -o -name "run.log" \) -not -path "*/data/*" \
    2>/dev/null | tar czf "$OUT/capacity_tokens.tgz" -T -
# the stacks' states, in parts under the 16 MB a returned file may hold (STATE= on the next call reads them)
find "$ROOT/stacked" \( -name state.pt -o -name group.json -o -name run.log \) 2>/dev/null | tar cf - -T - \
    | split -b 15M - "$OUT/capstate.part_"
ls -la "$OUT"
