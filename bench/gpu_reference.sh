#!/usr/bin/env bash
# One H200 call for issue #27: memorised bits of the scratch Qwen2-0.5B protocol against a trained reference.
#   COMMIT=<sha> bash bench/gpu_reference.sh     carry: .carry (ref = the parts below, shared = ../shared/models)
#   .whl (rapidfuzz's cp312 manylinux wheel: recitation's graded outcomes need it and the image lacks it)
# .carry/ref: `recitebench data build --source ../shared/data/cn_poems.jsonl.xz --preset cn-poems --n 10500
#   --parts member=2000,heldout=500,reference=8000 --max-chars 256 --seed 0 --out .carry/ref`
# The reference trains briefly (EPOCHS_REF) on the 8,000 reference poems, the member model 100 epochs on the 2,000
# members (same architecture, real Qwen tokenizer, same settings), then `recite` scores the members and the 500
# held-out poems against the reference and against the random initialisation.
set -uo pipefail
LABEL="reference (issue #27)" . bench/gpu_env.sh
# recitation needs rapidfuzz: without it the call would train for minutes and then fail in `recite`
python3 -c "import rapidfuzz" 2>/dev/null || { echo "rapidfuzz is not importable: carry its wheel in .whl/"; exit 1; }
D=.carry/ref; R=runs/ref
TRAIN="--model qwen2-0.5b-instruct --init scratch --lr 4e-4 --batch-tokens 32768 --checkpoint-every 0"
step reference 150 python3 -m recitebench train --data $D/reference $TRAIN --epochs "${EPOCHS_REF:-6}" \
    --recall-every 0 --out $R/reference
step member 260 python3 -m recitebench train --data $D/member $TRAIN --epochs "${EPOCHS:-100}" --recall-every 0 \
    --out $R/member
step recite_ref 90 python3 -m recitebench recite --run $R/member --reference $R/reference --heldout $D/heldout \
    --out $R/member/recite_ref
step recite_base 60 python3 -m recitebench recite --run $R/member --reference base --heldout $D/heldout \
    --out $R/member/recite_base
find $R -maxdepth 3 \( -name "*.json" -o -name "*.jsonl" -o -name "*.md" \) -not -path "*/model/*" \
    -not -path "*/tokenizer/*" | tar czf "$OUT/reference.tgz" -T -
ls -la "$OUT"
