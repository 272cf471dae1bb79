#!/usr/bin/env bash
# Issue #15 on one H100: recitebench vs the strongest peer, side by side in one call, then the protocol and start-up.
#   PART=train    COMMIT=... bash bench/gpu_perf.sh   carry: .carry (cn256 + shared models) .whl (trl, datasets, liger)
#   PART=protocol BIG=big COMMIT=... bash bench/gpu_perf.sh   (BIG=big: then the 1.5B rows)
#   PART=startup RUN=runs/... [PACKED=packed] bash bench/gpu_perf.sh   (recite start-up phases of a trained run)
# train: TRL SFTTrainer + Liger batch sweep, the HF Trainer row, recitebench's best batch (padded, then packed with
#        FlexAttention), the 1.5B with Liger and with PyTorch kernels.
# protocol: the 100-epoch protocol as one `recitebench train` process, then `recite` vs generate() in clean processes.
# Every JSON lands in $OUT; each step has its own time limit so one failure leaves the others' results.
set -uo pipefail
LABEL="part ${PART:-train}" . bench/gpu_env.sh
DATA=.carry/cn256

if [ "${PART:-train}" = train ]; then
  step trl_peer 240 python3 bench/trl_peer.py --data $DATA --liger --batch-sizes ${TRL_BATCHES:-64 128 256 512} \
      --steps 15 --warmup 3 --out "$OUT/trl_peer_liger.json"
  step rb_best 150 python3 bench/gpu_bench.py --data $DATA --parts peak,baseline,best --batch-tokens 32768 \
      --baseline-steps 40 --train-extra '{"lr": 4e-4}' --out "$OUT/rb_best"
fi

if [ "${PART:-}" = startup ]; then  # RUN: a trained run already on the machine
  step recite_process 60 python3 -m recitebench recite --run "$RUN" --out "$RUN/recite_process"
  cp "$RUN/recite_process/results.json" "$OUT/recite_process_results.json"
  step startup_floor 150 python3 bench/startup_floor.py --run "$RUN" --repeats 2 --json "$OUT/startup_floor.json"
  python3 -X importtime -m recitebench recite --run "$RUN" --out "$RUN/recite_it" 2> "$OUT/importtime.txt" >/dev/null
  sort -t'|' -k2 -n -r "$OUT/importtime.txt" | head -25 > "$OUT/importtime_top.txt"
  TAIL=40 step recite_phases 120 python3 bench/recite_phases.py --run "$RUN" --profile --json "$OUT/recite_phases.json"
fi

if [[ " ${PART:-} ${PACKED:-} " == *" packed "* ]]; then
  step rb_packed 200 python3 bench/gpu_bench.py --data $DATA --parts peak,best --batch-tokens 32768 \
      --train-extra '{"lr": 4e-4, "packing": true}' --model-extra '{"attn_implementation": "flex_attention"}' \
      --out "$OUT/rb_packed"
fi

if [ "${PART:-}" = protocol ]; then
  rm -rf runs/protocol
  step protocol 330 python3 -m recitebench train --data $DATA --model qwen2-0.5b-instruct --init scratch \
      --epochs 100 --lr 4e-4 --batch-tokens 32768 --recall-every 10 --checkpoint-every 0 ${TRAIN_FLAGS:-} \
      --out runs/protocol
  cp runs/protocol/train_summary.json "$OUT/protocol_train_summary.json"
  cp runs/protocol/metrics.jsonl "$OUT/protocol_metrics.jsonl"
  # whole-process start-up: interpreter, imports, CUDA context, weights, scoring
  step recite_process 60 python3 -m recitebench recite --run runs/protocol --out runs/protocol/recite_process
  cp runs/protocol/recite_process/results.json "$OUT/recite_process_results.json"
  # the floor under that process: clean processes doing part of its work (torch, CUDA context, the weights alone)
  step startup_floor 150 python3 bench/startup_floor.py --run runs/protocol --repeats 2 --json "$OUT/startup_floor.json"
  TAIL=3 step recite_bench 240 python3 bench/recite_bench.py --run runs/protocol --json "$OUT/recite_bench.json"
  # the poems whose verdicts differ: both sides' recitations, then each poem alone under three settings (why)
  python3 -c "import json; print('\n'.join(json.load(open('$OUT/recite_bench.json')).get('verdict_differs', [])))" \
      > /tmp/differs.txt
  if [ -s /tmp/differs.txt ]; then
    for side in rb_recitebench rb_generate; do
      grep -F -f /tmp/differs.txt "runs/protocol/$side/samples.jsonl" > "$OUT/differs_$side.jsonl"
    done
    # shellcheck disable=SC2046
    TAIL=12 step verdict_probe 150 python3 bench/verdict_probe.py --run runs/protocol \
        --ids $(cat /tmp/differs.txt) --json "$OUT/verdict_probe.json"
  fi
fi

if [[ " ${PART:-} ${BIG:-} " == *" big "* ]]; then  # the 1.5B model: its build alone takes ~1 min on the host
  step big_liger 150 python3 bench/gpu_bench.py --data $DATA --parts peak,big --big-batch-tokens 16384 \
      --out "$OUT/big_liger"
  step big_torch 150 python3 bench/gpu_bench.py --data $DATA --parts peak,big --big-batch-tokens 16384 \
      --train-extra '{"kernels": "torch"}' --out "$OUT/big_torch"
fi
# one archive: the device returns a limited number of files
find "$OUT" -name "*.json" -o -name "*.jsonl" -o -name "*.log" -o -name "*.txt" | grep -v "/runs/" \
    | tar czf /tmp/perf.tgz -T - && mv /tmp/perf.tgz "$OUT/perf_${PART:-train}.tgz"
ls "$OUT"
