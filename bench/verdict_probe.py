"""Why a poem gets a different verdict in two recitations of one run (bench/recite_bench.py's `verdict_differs`).

    python bench/verdict_probe.py --run RUN --ids ID [ID ...] --json OUT.json

For each poem, the model alone on that poem (a batch of one: no padding, no neighbours), under three settings —
fp32 with PyTorch kernels (the reference without bf16 rounding), bf16 with PyTorch kernels (the generate()
baseline's), bf16 with the default kernels (Liger on a GPU: recitebench's default):
  - greedy HF generate() and the static decoder from the prompt: exact or not, and where they leave the poem;
  - the teacher-forced lead of the poem's token at every step (its logit minus the best other token's), with the
    three closest steps and the tokens competing there.
A lead that changes sign between settings, or sits inside bf16's rounding of the logits (~0.06-0.125 at logits of
8-32), is a near-tie: the verdict then depends on rounding (batch shape, padding, kernels), not on an error in
either decoding path.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from recitebench.config import build  # noqa: E402
from recitebench.recall import ReciteConfig  # noqa: E402
from recitebench.recall.recite import prepare, resolve  # noqa: E402

# Liger patches the model classes for the whole process, so the PyTorch-kernel settings come first
SETTINGS = {"fp32_torch": ("fp32", "torch"), "bf16_torch": ("bf16", "torch"), "bf16_default": ("bf16", "auto")}


def leads(model, item, device) -> list[dict]:
    """Teacher-forced lead of the poem's token at each step, with the best other token."""
    ids = torch.tensor([item.prompt_ids + item.target_ids], device=device)
    with torch.no_grad():
        logits = model(ids).logits[0, len(item.prompt_ids) - 1: -1].float()
    target = torch.tensor(item.target_ids, device=device)
    own = logits.gather(1, target[:, None])[:, 0]
    other = logits.scatter(1, target[:, None], float("-inf"))
    best, best_id = other.max(dim=1)
    return [{"step": k, "lead": round(float(own[k] - best[k]), 4), "logit": round(float(own[k]), 3),
             "token": int(target[k]), "rival": int(best_id[k])} for k in range(len(target))]


def first_departure(out: list[int], target: list[int]) -> int | None:
    """The first step where the output leaves the poem (None: the same ids); where one is a prefix of the other,
    the step after the shorter one ends."""
    if out == target:
        return None
    return next((k for k, (a, b) in enumerate(zip(out, target)) if a != b), min(len(out), len(target)))


def probe(job, item) -> dict:
    tok = job.tok
    row = {}
    for name in ("generate", "static"):
        out = job.decoder(name).decode([item], [[]])[0]
        k = first_departure(out, item.target_ids)
        row[name] = {"exact": k is None, "departs_at": k,
                     "then": None if k is None else tok.decode(out[k:k + 8])}
    steps = leads(job.model, item, job.device)
    closest = sorted(steps, key=lambda s: abs(s["lead"]))[:3]
    for s in closest:
        s["token_text"], s["rival_text"] = tok.decode([s["token"]]), tok.decode([s["rival"]])
        s["after"] = tok.decode(item.target_ids[max(0, s["step"] - 8): s["step"]])  # where in the poem
    row["closest_steps"] = closest
    row["negative_steps"] = [s["step"] for s in steps if s["lead"] <= 0]
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--ids", nargs="+", required=True)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    report: dict = {"run": args.run, "poems": {i: {} for i in args.ids}}
    for setting, (precision, kernels) in SETTINGS.items():
        cfg = build(ReciteConfig, {"run": args.run, "out": str(Path(args.run) / "probe"), "precision": precision,
                                   "kernels": kernels, "gen_batch_size": 1})
        job = prepare(cfg, resolve(cfg, None))
        by_id = {it.id: it for it in job.items}
        if missing := [pid for pid in args.ids if pid not in by_id]:
            raise SystemExit(f"{job.data.path}: no poem with id {', '.join(missing)}")
        for pid in args.ids:
            report["poems"][pid][setting] = probe(job, by_id[pid])
            print(setting, pid, json.dumps(report["poems"][pid][setting], ensure_ascii=False))
        del job
        torch.cuda.empty_cache()
    Path(args.json).write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
