#!/usr/bin/env bash
# One H200 call running the random-token capacity ladder (#25) and the trained dynamics specs (#29) side by side:
# the capacity stacks are tiny models that leave most of the GPU's arithmetic idle, the dynamics runs a 0.5B model.
#   COMMIT=<sha> BUDGET=570 SEED=... [STATE=.capstate] SPECS="dynamics_dose dynamics_retention" bash bench/gpu_pair.sh
# carry: what both scripts need (.whl, .carry/shared, runs/SPEC/data; .capstate on a fresh machine only).
# Measured (2026-12-03, docs/capacity_results/tokens_h200/8_ladder_70k_250k_cap96k): processes on one GPU take turns
# (no MPS here), so beside the 0.5B dose run tok-250k's stack made 25 steps/s against 62 beside tok-70k alone, and
# the dose run did not finish 4 epochs in 550 s that take 231 s alone: pair only what is idle most of the time.
# Each script writes into its own folder; they come back as one pair.tgz beside the stacks' state parts, so the call
# stays under the eight files a call may return.
set -uo pipefail
FINAL=${OUT:-out}; rm -rf /tmp/pair; mkdir -p "$FINAL" /tmp/pair
( OUT=/tmp/pair/cap bash bench/gpu_capacity_tokens.sh > /tmp/pair/cap.txt 2>&1 ) &
( OUT=/tmp/pair/dyn bash bench/gpu_dynamics.sh > /tmp/pair/dyn.txt 2>&1 ) &
wait
mv /tmp/pair/cap/capstate.part_* "$FINAL"/ 2>/dev/null
tar czf "$FINAL/pair.tgz" -C /tmp/pair cap dyn cap.txt dyn.txt
tail -n 25 /tmp/pair/cap.txt /tmp/pair/dyn.txt
ls -la "$FINAL"
