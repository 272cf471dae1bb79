"""The strongest peer for issue #15: TRL's SFTTrainer configured as an expert would for this fine-tune.

    python bench/trl_peer.py --data DATA --batch-sizes 64 128 256 512 --steps 40 --out OUT/trl_peer.json

Same workload as bench/gpu_bench.py: the frozen CN set, the Qwen2-0.5B architecture from scratch with the real Qwen
tokenizer (recitebench's loader, so both sides train the identical model). TRL side: prompt-completion data (prompt +
"\\n" as recitebench formats it, the poem as completion; TRL appends the end token), completion-only loss, bf16,
SDPA attention, length-grouped sampling (`train_sampling_strategy="group_by_length"`, the least padding without
packing), Liger kernels (`--liger`, needs liger-kernel), and `--padding-free` where FlashAttention is installed (TRL's
padding-free path is contamination-free only with flash-attention's varlen kernels). Each batch size runs `--steps`
optimizer steps; the first `--warmup` are not timed. Real tokens are counted, not estimated: the trainer's
training_step adds up every non-padding token it is given while the clock runs. One JSON with device, date, commit
and every setting; nothing is copied in.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from recitebench.data.frozen import load_frozen  # noqa: E402
from recitebench.models.config import ModelConfig  # noqa: E402
from recitebench.models.load import load_model  # noqa: E402
from recitebench.provenance import provenance  # noqa: E402


def prompt_completion(poems: list[dict]):
    """The dataset as TRL's prompt-completion records (recitebench's plain template: prompt, newline, poem)."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": p["prompt"] + "\n", "completion": p["target"]} for p in poems])


def attention(args) -> str:
    if args.padding_free:
        return "flash_attention_2"
    return "sdpa"


def measure(args, batch: int, poems: list[dict]) -> dict:
    """One SFTTrainer run at one batch size: real tokens/s over the timed steps, peak memory."""
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    dtype = torch.float32  # TRL's bf16=True autocasts with fp32 master weights, as recitebench does
    # the corpus trains a BPE only for presets without a tokenizer (tiny)
    model, tok, _ = load_model(ModelConfig(model=args.model, init="scratch", attn_implementation=attention(args)),
                               corpus=[p["prompt"] + "\n" + p["target"] for p in poems], dtype=dtype)
    if torch.cuda.is_available():
        model.cuda()
    clock = {"t0": None, "tokens": 0, "steps": 0}

    class Timed(SFTTrainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            step = self.state.global_step
            if step == args.warmup and clock["t0"] is None:
                sync()
                clock["t0"] = time.perf_counter()
            if clock["t0"] is not None:
                clock["tokens"] += real_tokens(inputs, tok.pad_token_id)
                clock["steps"] += 1
            return super().training_step(model, inputs, num_items_in_batch)

    cfg = SFTConfig(
        output_dir=str(Path(args.tmp) / f"trl_{batch}"),
        per_device_train_batch_size=batch,
        max_steps=args.warmup + args.steps,
        learning_rate=4e-4,
        bf16=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),
        completion_only_loss=True,
        padding_free=args.padding_free,
        use_liger_kernel=args.liger,
        train_sampling_strategy="group_by_length",
        max_length=None,
        logging_steps=10**9,
        save_strategy="no",
        report_to=[],
        dataloader_num_workers=2,
        seed=0,
        disable_tqdm=True,
    )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer = Timed(model=model, args=cfg, train_dataset=prompt_completion(poems), processing_class=tok)
    trainer.train()
    sync()
    dt = time.perf_counter() - clock["t0"]
    out = {"batch": batch, "steps_timed": clock["steps"], "seconds": dt, "real_tokens": clock["tokens"],
           "tokens_per_s": clock["tokens"] / dt, "attention": attention(args), "liger": args.liger,
           "padding_free": args.padding_free}
    if torch.cuda.is_available():
        out["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    del trainer, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def real_tokens(inputs: dict, pad_id: int) -> int:
    """Tokens that are not padding: the attention mask where the collator gives one, else ids that are not pad
    (padding-free batches are one flat row with no padding at all)."""
    if inputs.get("attention_mask") is not None:
        return int(inputs["attention_mask"].sum())
    if inputs.get("position_ids") is not None:
        return int(inputs["input_ids"].numel())
    return int((inputs["input_ids"] != pad_id).sum())


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="frozen dataset folder")
    p.add_argument("--model", default="qwen2-0.5b-instruct", help="recitebench model preset, built from scratch")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    p.add_argument("--steps", type=int, default=40, help="timed optimizer steps per batch size")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--liger", action="store_true", help="Liger kernels (liger-kernel must be installed)")
    p.add_argument("--padding-free", action="store_true", help="TRL padding-free batches (needs flash-attn)")
    p.add_argument("--tmp", default="/tmp/trl_peer")
    p.add_argument("--out", required=True, help="JSON file for the results")
    args = p.parse_args()
    import trl

    poems = load_frozen(args.data).poems
    rows = []
    for b in args.batch_sizes:
        try:
            rows.append(measure(args, b, poems))
        except torch.OutOfMemoryError:
            rows.append({"batch": b, "error": "out of GPU memory"})
            torch.cuda.empty_cache()
        print(json.dumps(rows[-1]), flush=True)
    best = max((r for r in rows if "tokens_per_s" in r), key=lambda r: r["tokens_per_s"], default=None)
    result = {"peer": f"trl {trl.__version__} SFTTrainer", "data": args.data, "model": args.model, "rows": rows,
              "best": best, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
              "commit": os.environ.get("RECITEBENCH_COMMIT"), **provenance()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1), encoding="utf-8")
    print("best", json.dumps(best))


if __name__ == "__main__":
    main()
