"""Where the training time goes: the real `recitebench train` loop under torch.profiler.

    python bench/profile_step.py --data DATA [--batch-tokens 16384] [--precision bf16-master] [--cuda-graphs]

Trains the Qwen2-0.5B architecture (random init) for a few epochs, profiles the last one and
prints: wall time vs GPU kernel time (is the step GPU-bound or CPU/launch-bound?), GPU time by
kernel class (matmul, attention, elementwise/norm, optimizer, copies), and the top kernels.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from recitebench.config import build  # noqa: E402
from recitebench.models.config import ModelConfig  # noqa: E402

CLASSES = [
    ("matmul", ("gemm", "gemv", "cutlass", "sm90_xmma", "nvjet", "matmul")),
    ("attention", ("flash", "fmha", "attention")),
    ("optimizer", ("adam", "foreach", "multi_tensor")),
    ("copy/cast", ("copy", "cast", "convert")),
    ("loss/softmax", ("softmax", "nll", "cross_entropy", "log_softmax")),
    (
        "elementwise/norm",
        ("elementwise", "vectorized", "reduce", "norm", "mul", "add", "silu", "pow", "rsqrt", "index"),
    ),
]


def kernel_class(name: str) -> str:
    n = name.lower()
    for cls, keys in CLASSES:
        if any(k in n for k in keys):
            return cls
    return "other"


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="qwen2-0.5b-instruct")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--batch-tokens", type=int, default=16384)
    ap.add_argument("--precision", default="bf16-master")
    ap.add_argument("--cuda-graphs", action="store_true")
    ap.add_argument("--epochs", type=int, default=3, help="the last one is profiled")
    ap.add_argument("--json", default=None, help="also write the summary here")
    args = ap.parse_args()
    from recitebench.train import TrainConfig, train
    from recitebench.train import loop as train_loop

    prof_holder = {}
    real_recall = train_loop.recall_check

    # The profiled window is exactly the last epoch: the loop's own end-of-epoch call (the recall
    # check, after it has synchronised the GPU) starts the profiler after epoch E-1 and stops it after epoch E.
    def profile_last_epoch(*a, **k):
        if "prof" in prof_holder and "wall" not in prof_holder:
            _sync()
            prof_holder["wall"] = time.perf_counter() - prof_holder["t0"]
            prof_holder["prof"].__exit__(None, None, None)
        res = real_recall(*a, **k)
        if "prof" not in prof_holder:
            from torch.profiler import ProfilerActivity, profile

            _sync()
            prof_holder["prof"] = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
            prof_holder["prof"].__enter__()
            prof_holder["t0"] = time.perf_counter()
        return res

    train_loop.recall_check = profile_last_epoch
    with tempfile.TemporaryDirectory() as tmp:
        tcfg = build(
            TrainConfig,
            {
                "data": args.data,
                "out": f"{tmp}/run",
                "epochs": args.epochs,
                "lr": 3e-4,
                "recall_every": args.epochs - 1,
                "checkpoint_every": 0,
                "progress": False,
                "batch_size": args.batch_size,
                "batch_tokens": args.batch_tokens,
                "precision": args.precision,
                "cuda_graphs": args.cuda_graphs,
            },
        )
        train(tcfg, ModelConfig(model=args.model, init="scratch"), log=lambda *a: None)
        metrics = [json.loads(x) for x in Path(f"{tmp}/run/metrics.jsonl").read_text().splitlines()]
    prof, wall = prof_holder["prof"], prof_holder["wall"]
    by_class, by_name = defaultdict(float), defaultdict(float)
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            us = e.device_time if hasattr(e, "device_time") else e.cuda_time
            by_class[kernel_class(e.name)] += us / 1e3
            by_name[e.name[:90]] += us / 1e3
    gpu_ms = sum(by_class.values())
    last = metrics[-1]
    summary = {
        "setting": vars(args),
        "last_epoch_tokens_per_s": last["tokens_per_s"],
        "profiled_wall_ms": wall * 1e3,
        "gpu_kernel_ms": gpu_ms,
        "gpu_busy": gpu_ms / (wall * 1e3),
        "by_class_ms": dict(sorted(by_class.items(), key=lambda kv: -kv[1])),
        "top_kernels_ms": dict(sorted(by_name.items(), key=lambda kv: -kv[1])[:15]),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    print(
        f"{args.model} bt={args.batch_tokens} precision={args.precision} graphs={args.cuda_graphs}: "
        f"{last['tokens_per_s']:.0f} tok/s in the profiled epoch; wall {wall * 1e3:.0f} ms, "
        f"GPU kernels {gpu_ms:.0f} ms ({gpu_ms / (wall * 1e3):.0%} busy)"
    )
    for k, v in summary["by_class_ms"].items():
        print(f"  {k:18s} {v:9.1f} ms  {v / max(gpu_ms, 1e-9):6.1%}")
    for k, v in summary["top_kernels_ms"].items():
        print(f"    {v:9.1f} ms  {k}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
