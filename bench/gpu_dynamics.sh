#!/usr/bin/env bash
# H200 calls for issue #29's trained experiments: the shipped specs configs/dynamics_dose.yaml and
# configs/dynamics_retention.yaml, each through `recitebench run` (a call cut short resumes on the next one).
#   SPECS="dynamics_dose dynamics_retention" COMMIT=<sha> BUDGET=560 [PARALLEL=1] bash bench/gpu_dynamics.sh
# PARALLEL=1 runs the specs side by side (each its own `recitebench run` on the one GPU) instead of one after another.
# carry: .whl (rapidfuzz), .carry/shared (configs, the qwen2 and smollm2 tokenizers) and the specs' datasets built
# here (runs/SPEC/data: the corpora do not travel), e.g. for the dose spec
#   .venv/bin/python -c "from recitebench.experiment.spec import load_spec; from recitebench.experiment.runner import \
#   prepare_datasets; s = load_spec('configs/dynamics_dose.yaml'); prepare_datasets(s, s.runs, print)"
set -uo pipefail
LABEL="dynamics (issue #29) ${SPECS:-dynamics_dose}" . bench/gpu_env.sh
python3 -c "import rapidfuzz" 2>/dev/null || { echo "rapidfuzz is not importable: carry its wheel in .whl/"; exit 1; }
BUDGET=${BUDGET:-560}; start=$SECONDS
pack() {  # results, per-poem logs and curves of one spec; never the weights
    find runs/"$1" \( -name "*.json" -o -name "*.jsonl" -o -name "*.md" -o -name "*.png" -o -name "*.log" \) \
        -not -path "*/data/*" -not -path "*/model/*" -not -path "*/tokenizer/*" -not -path "*/snapshots/*" \
        2>/dev/null | tar czf "$OUT/$1.tgz" -T -
}
one() {  # one spec under what is left of the budget
    local s=$1 left=$(( BUDGET - (SECONDS - start) - 20 ))
    [ "$left" -gt 30 ] || { echo "no time left for $s"; return; }
    step "$s" "$left" python3 -m recitebench run "configs/$s.yaml"
    pack "$s"
}
for s in ${SPECS:-dynamics_dose}; do
    # a dataset that did not travel (runs/SPEC/data) and has no corpus here fails the dry run, not minutes later
    python3 -m recitebench run "configs/$s.yaml" --dry-run > /dev/null || { echo "carry runs/$s/data"; exit 1; }
done
for s in ${SPECS:-dynamics_dose}; do
    if [ "${PARALLEL:-0}" = 1 ]; then one "$s" & else one "$s"; fi
done
wait
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader >> "$OUT/device.txt"
ls -la "$OUT"
