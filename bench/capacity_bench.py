"""Capacity sweep throughput: recitebench's stacked engine against a plain single-model PyTorch loop, side by side.

For each model config: the peer trains one Transformers Qwen2ForCausalLM at a time on random token sequences
(TF32, fused AdamW, SDPA, batch B: the plain loop a researcher writes, at its strongest setting among batch sizes of
--peer-batches); the engine trains K copies of the same model (K = what a capacity sweep stacks: sizes x seeds +
the learning-rate grid) in one CUDA graph per step. Both report real tokens per second (sequences x length per
second, summed over the K models for the engine) after a warm-up.

    python bench/capacity_bench.py --models configs/models/tok-*.json --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from recitebench.provenance import provenance  # noqa: E402
from recitebench.train.stacked import Arch, Point, StackedSettings, StackedTrainer  # noqa: E402

V, S = 2048, 64


def peer(config: dict, batch: int, steps: int, device) -> float:
    """Tokens/s of the plain loop: one model, Transformers forward with labels, fused AdamW."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(**{k: v for k, v in config.items() if k != "model_type"}, vocab_size=V + 4)
    cfg._attn_implementation = "sdpa"
    model = Qwen2ForCausalLM(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), fused=device.type == "cuda")
    data = torch.randint(0, V, (4096, S), device=device)
    bos = torch.full((batch, 1), V, device=device)

    def step():
        seqs = data[torch.randint(0, len(data), (batch,), device=device)]
        ids = torch.cat([bos, seqs[:, :-1]], dim=1)
        logits = model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), seqs.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(10):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return batch * S * steps / (time.perf_counter() - t0)


def engine(config: dict, k: int, batch: int, steps: int, device, compile: bool = False) -> float:
    arch = Arch.from_config(config, V + 4)
    data = {0: torch.randint(0, V, (4096, S))}
    points = [Point(4096, 0, 1e-3) for _ in range(k)]
    trainer = StackedTrainer(arch, points, data, V, S * 11.0, StackedSettings(batch=batch, compile=compile), device,
                             log=lambda m: None)
    for _ in range(5):
        trainer.step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    torch.cuda.synchronize()
    return k * batch * S * steps / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--k", type=int, default=8, help="models stacked (a sweep's sizes x seeds + rate grid)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--peer-batches", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--json", required=True)
    ap.add_argument("--compile", action="store_true", help="also time the engine with torch.compile")
    ap.add_argument("--engine-batches", type=int, nargs="+", default=None, help="engine batches per model")
    args = ap.parse_args()
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    rows = []
    for path in args.models:
        config = json.loads(Path(path).read_text())
        params = Arch.from_config(config, V + 4).parameters()
        peers = {b: peer(config, b, args.steps, device) for b in args.peer_batches}
        best_b = max(peers, key=peers.get)
        variants = {f"b{b}": engine(config, args.k, b, args.steps, device) for b in args.engine_batches or [args.batch]}
        if args.compile:
            variants.update({f"b{b}_compiled": engine(config, args.k, b, args.steps, device, compile=True)
                             for b in args.engine_batches or [args.batch]})
        best = max(variants, key=variants.get)
        row = {"model": Path(path).stem, "parameters": params, "peer_tokens_per_s": peers, "peer_best_batch": best_b,
               "engine_k": args.k, "engine_tokens_per_s": variants, "engine_best": best,
               "speedup_vs_best_peer": variants[best] / peers[best_b]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    Path(args.json).write_text(json.dumps({"rows": rows, "command": " ".join(sys.argv), "device":
                                           torch.cuda.get_device_name(), **provenance()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
