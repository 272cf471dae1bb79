"""Where one training step's time goes (forward / backward / optimizer), plus a torch.profiler table.

    python bench/profile_step.py --data DATA [--batch-size 16] [--batch-tokens N] [--compile]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from recitebench.data.frozen import load_frozen  # noqa: E402
from recitebench.models.config import ModelConfig  # noqa: E402
from recitebench.models.formatting import encode  # noqa: E402
from recitebench.models.load import load_model  # noqa: E402
from recitebench.train.batching import collate, epoch_batches  # noqa: E402
from recitebench.train.loop import ScoredLM  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="qwen2-0.5b-instruct")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--batch-tokens", type=int, default=None)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--precision", default="bf16-mixed")
    args = ap.parse_args()
    ds = load_frozen(args.data)
    wdtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    model, tok, _ = load_model(ModelConfig(model=args.model, init="scratch"), dtype=wdtype)
    model.cuda().train()
    items = [encode(tok, p, "plain") for p in ds.poems]
    batches = epoch_batches([it.length - 1 for it in items], seed=0, epoch=0, batch_size=args.batch_size,
                            batch_tokens=args.batch_tokens)
    scored = ScoredLM(model)
    if args.compile:
        scored = torch.compile(scored, dynamic=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ac = args.precision == "bf16-mixed"
    times = {"fwd": 0.0, "bwd": 0.0, "opt": 0.0}
    ntok = 0

    def step(b, timed):
        nonlocal ntok
        x, y = collate([items[i] for i in b], tok.pad_token_id)
        x, y = x.cuda(), y.cuda()
        torch.cuda.synchronize(); t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=ac):
            loss = scored(x, y)
        torch.cuda.synchronize(); t1 = time.perf_counter()
        (loss / 1000).backward()
        torch.cuda.synchronize(); t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize(); t3 = time.perf_counter()
        if timed:
            times["fwd"] += t1 - t0; times["bwd"] += t2 - t1; times["opt"] += t3 - t2
            ntok += sum(items[i].length for i in b)

    for b in batches[:4]:
        step(b, False)
    for b in batches[4 : 4 + args.steps]:
        step(b, True)
    total = sum(times.values())
    print(f"{args.model} bs={args.batch_size} bt={args.batch_tokens} compile={args.compile} prec={args.precision}: "
          f"{ntok / total:.0f} tok/s; per step ms: " + ", ".join(f"{k} {1000 * v / args.steps:.1f}" for k, v in times.items()))
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for b in batches[20:23]:
            step(b, False)
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=60))


if __name__ == "__main__":
    main()
