"""Where a `recitebench recite` process spends its time (issue #15's start-up target), measured in one process.

    python bench/recite_phases.py --run RUN --json OUT.json

Phases: the stage's imports (torch, Transformers, kernels), the CUDA context, then `recite()` twice: cold (first
load of the weights, first kernel compilations) and warm (page cache and Triton cache hot), each with its own
`timings_s`. The whole-process wall time measured outside (`/usr/bin/time`) minus these is interpreter start and exit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

T_START = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--profile", action="store_true", help="then a third, profiled run (bench/recite_bench.py's)")
    args = ap.parse_args()
    phases: dict = {}
    t = time.perf_counter()
    import torch

    phases["import_torch_s"] = time.perf_counter() - t
    t = time.perf_counter()
    from recitebench.config import build
    from recitebench.recall import ReciteConfig
    from recitebench.recall.recite import recite

    phases["import_stage_s"] = time.perf_counter() - t
    t = time.perf_counter()
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    phases["cuda_context_s"] = time.perf_counter() - t
    for name in ("cold", "warm"):
        t = time.perf_counter()
        res = recite(build(ReciteConfig, {"run": args.run, "out": str(Path(args.run) / f"phases_{name}")}), None,
                     log=lambda *a: None)
        phases[name] = {"wall_s": time.perf_counter() - t, "timings_s": res.timings_s, "exact_match": res.exact_match}
    phases["in_process_total_s"] = time.perf_counter() - T_START
    if args.profile:
        from recite_bench import profile  # bench/ is on sys.path when run as a script

        phases["profile"] = profile(Path(args.run))
    print(json.dumps(phases, indent=1))
    Path(args.json).write_text(json.dumps(phases, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
