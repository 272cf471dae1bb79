"""Exact-recall scoring of a trained run: recitebench's path vs the `generate()` baseline, every poem, clean processes.

    python bench/recite_bench.py --run RUN [--profile] [--json OUT.json]

Each side runs as its own `recitebench recite` process, so neither inherits the other's kernels or
caches: recitebench's default (certified teacher-forced pass + static-cache decoder), then the
baseline (HF `generate()` of every poem, batches of 64, plain PyTorch kernels). Times are the
`timings_s` each process writes (model load included, interpreter start-up not). Verdicts are
compared poem by poem over the whole dataset. `--profile` reruns recitebench's path in this
process under torch.profiler and prints where its time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from compare_recitations import load, text  # noqa: E402  (bench/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]


def recite(run: Path, name: str, *extra: str) -> tuple[dict, dict]:
    out = run / name
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    subprocess.run(
        [sys.executable, "-m", "recitebench", "recite", "--run", str(run), "--out", str(out), *extra],
        check=True,
        env=env,
    )
    return json.loads((out / "results.json").read_text()), load(out)


def profile(run: Path) -> dict:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    sys.path.insert(0, str(ROOT / "src"))
    from recitebench.config import build
    from recitebench.recall import ReciteConfig
    from recitebench.recall.recite import recite as recite_fn

    cfg = build(ReciteConfig, {"run": str(run), "out": str(run / "recite_profiled")})
    recite_fn(cfg, None, log=lambda *a: None)  # warm: imports, CUDA context, Triton caches
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        res = recite_fn(cfg, None, log=lambda *a: None)
    rows = {}
    for e in prof.key_averages():
        if e.key.startswith("recitebench.") or e.key in (
            "aten::copy_",
            "aten::to",
            "aten::item",
            "cudaStreamSynchronize",
            "cudaGraphLaunch",
            "aten::mm",
            "aten::addmm",
            "aten::linear",
        ):
            rows[e.key] = {
                "cpu_ms": e.cpu_time_total / 1e3,
                "gpu_ms": getattr(e, "device_time_total", 0) / 1e3,
                "calls": e.count,
            }
    kernels = sum(getattr(e, "self_device_time_total", 0) for e in prof.key_averages()) / 1e3
    print(f"profiled run: timings {res.timings_s}; GPU kernel time {kernels:.0f} ms")
    for k, v in rows.items():
        print(f"  {k:32s} cpu {v['cpu_ms']:8.1f} ms  gpu {v['gpu_ms']:8.1f} ms  calls {v['calls']}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=50))
    return {"timings_s": res.timings_s, "gpu_kernel_ms": kernels, "regions": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--gen-batch-size", type=int, default=64)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--also", action="append", default=[], help='another recitebench setting to time, e.g. --also "--kernels torch"'
    )
    args = ap.parse_args()
    ours, a = recite(args.run, "rb_recitebench")
    base, b = recite(
        args.run,
        "rb_generate",
        "--no-certify",
        "--decoder",
        "generate",
        "--kernels",
        "torch",
        "--gen-batch-size",
        str(args.gen_batch_size),
    )
    same_verdict = sum(a[k]["exact"] == b[k]["exact"] for k in b)
    same_text = sum(text(a[k]) == text(b[k]) for k in b)
    t_ours, t_base = ours["timings_s"], base["timings_s"]
    scoring_ours = t_ours["total"] - t_ours["load"]
    scoring_base = t_base["total"] - t_base["load"]
    summary = {
        "n": ours["n"],
        "recitebench": {
            "timings_s": t_ours,
            "decided_by": ours["decided_by"],
            "decoder": ours["decoder"],
            "kernels": ours["kernels"],
            "exact_match": ours["exact_match"],
        },
        "generate_baseline": {
            "timings_s": t_base,
            "gen_batch_size": args.gen_batch_size,
            "exact_match": base["exact_match"],
        },
        "speedup_total": t_base["total"] / t_ours["total"],
        "speedup_without_load": scoring_base / scoring_ours,
        "same_verdict": f"{same_verdict}/{len(b)}",
        "same_text": f"{same_text}/{len(b)}",
        "verdict_differs": [k for k in b if a[k]["exact"] != b[k]["exact"]],
        "versions": ours.get("versions"),
        "git_commit": ours.get("git_commit"),
        "hardware": ours.get("hardware"),
    }
    print(
        f"{ours['n']} poems: recitebench {t_ours['total']:.2f} s ({scoring_ours:.2f} s after loading) vs generate() "
        f"{t_base['total']:.1f} s ({scoring_base:.1f} s) = {summary['speedup_total']:.1f}x "
        f"({summary['speedup_without_load']:.1f}x without loading); same verdict {same_verdict}/{len(b)}, "
        f"same text {same_text}/{len(b)}"
    )
    summary["variants"] = {}
    for k, extra in enumerate(args.also):
        res, c = recite(args.run, f"rb_variant{k}", *extra.split())
        t = res["timings_s"]
        summary["variants"][extra] = {
            "timings_s": t,
            "same_verdict_as_generate": f"{sum(c[i]['exact'] == b[i]['exact'] for i in b)}/{len(b)}",
            "speedup_without_load": scoring_base / (t["total"] - t["load"]),
        }
        print(
            f"  recitebench {extra}: {t['total']:.2f} s ({t['total'] - t['load']:.2f} s after loading), "
            f"{summary['variants'][extra]['speedup_without_load']:.1f}x without loading"
        )
    if args.profile:
        summary["profile"] = profile(args.run)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
