"""Executor benchmark: the same four-run grid (bench/pool_grid.yaml) with the sequential executor and with a pool
whose runs share the GPU (--gpus-per-run 0.5: two at a time), measured in one process, one after the other.

    python3 bench/pool_bench.py --out OUT [--gpus-per-run 0.5] [--jobs 2] [--spec bench/pool_grid_05b.yaml]
    (on two GPUs, issue #17: --spec bench/pool_grid_05b.yaml --jobs 2 --gpus-per-run 1; the sequential side is
    run with CUDA_VISIBLE_DEVICES=0 by bench/gpu_two.sh, so it is one GPU against two)

Prints a table and writes OUT/pool_bench.json (wall seconds, runs per hour, device, date, commit, command)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from recitebench.provenance import provenance

SPEC = Path(__file__).with_name("pool_grid.yaml")


def timed_grid(spec: Path, runs_dir: Path, *flags: str, env: dict | None = None) -> float:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "recitebench", "run", str(spec), "--runs-dir", str(runs_dir), *flags]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--gpus-per-run", default="0.5")
    p.add_argument("--jobs", default="2")
    p.add_argument("--spec", type=Path, default=SPEC, help="the four-run grid (default: bench/pool_grid.yaml)")
    p.add_argument("--sequential-gpus", default=None,
                   help="CUDA_VISIBLE_DEVICES for the sequential side (e.g. 0: one GPU against the pool's all)")
    a = p.parse_args()
    out = Path(a.out)
    # Each timing includes building the grid's two datasets (same work on both sides, done before any run starts).
    rows = {}
    for name, flags in (("sequential", ("--executor", "local")),
                        ("pool", ("--executor", "pool", "--jobs", a.jobs, "--gpus-per-run", a.gpus_per_run))):
        env = None
        if name == "sequential" and a.sequential_gpus is not None:
            env = dict(os.environ, CUDA_VISIBLE_DEVICES=a.sequential_gpus)
        secs = timed_grid(a.spec, out / name, *flags, env=env)
        rows[name] = {"wall_s": round(secs, 1), "runs_per_hour": round(4 * 3600 / secs, 1), "flags": list(flags)}
        print(f"{name:12s} {secs:7.1f} s   {4 * 3600 / secs:6.1f} runs/hour", flush=True)
    speedup = rows["sequential"]["wall_s"] / rows["pool"]["wall_s"]
    print(f"pool / sequential: {speedup:.2f}x runs per hour")
    result = {"grid": str(a.spec), "sequential_gpus": a.sequential_gpus, "runs": 4, "rows": rows,
              "speedup": round(speedup, 3),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(sys.argv), **provenance()}
    (out / "pool_bench.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
