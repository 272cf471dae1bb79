"""The fast certified path: one teacher-forced forward pass decides most poems.

If, at every poem position, the arg-max of the model's next-token logits is the poem's own
next token (the end token included), greedy decoding from the prompt must follow exactly that
path: the recitation is certified correct without generating it. Logits are compared in fp32
and a position whose best and second-best logits lie within `margin` is not certified, because
a batched forward and an incremental decode may round differently there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.formatting import Encoded
from ..models.forward import logits_at


@dataclass
class TeacherResult:
    id: str
    certified: bool  # arg-max path == poem + end token, with every margin above the threshold
    all_argmax_correct: bool  # the same without the margin rule
    prefix_tokens: int  # target tokens predicted correctly before the first miss
    token_accuracy: float  # share of target tokens whose arg-max is right
    loss: float  # mean cross-entropy over the target tokens
    min_margin: float  # smallest top-1 minus top-2 logit gap along the target
    safe_prefix: int  # leading target tokens that greedy decoding provably reproduces (arg-max right, gap > margin)


def _batches(items: list[Encoded], batch_size: int, batch_tokens: int | None):
    order = sorted(range(len(items)), key=lambda i: items[i].length)
    batch: list[int] = []
    for i in order:
        longest = max([items[j].length for j in batch] + [items[i].length])
        if batch and (len(batch) >= batch_size or (batch_tokens and longest * (len(batch) + 1) > batch_tokens)):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


@torch.no_grad()
def teacher_forced(model, items: list[Encoded], *, device, batch_size: int = 64, batch_tokens: int | None = None,
                   margin: float = 0.0, autocast_dtype: torch.dtype | None = None, pad_id: int = 0,
                   logits_fn=None) -> list[TeacherResult]:
    """`logits_fn(input_ids, rows, cols)` overrides how logits are computed (an FSDP root module)."""
    was_training = model.training
    model.eval()
    out: list[TeacherResult | None] = [None] * len(items)
    for idx in _batches(items, batch_size, batch_tokens):
        seqs = [items[i].prompt_ids + items[i].target_ids[:-1] for i in idx]
        width = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        rows, cols, targets = [], [], []
        for b, (i, s) in enumerate(zip(idx, seqs)):
            input_ids[b, : len(s)] = torch.tensor(s)
            p = len(items[i].prompt_ids)
            n = len(items[i].target_ids)
            rows += [b] * n
            cols += list(range(p - 1, p - 1 + n))
            targets += items[i].target_ids
        input_ids = input_ids.to(device)
        rows_t, cols_t = torch.tensor(rows, device=device), torch.tensor(cols, device=device)
        tgt = torch.tensor(targets, device=device)
        with torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = logits_fn(input_ids, rows_t, cols_t) if logits_fn else logits_at(model, input_ids, rows_t, cols_t)
        logits = logits.float()
        top2 = logits.topk(2, dim=-1)
        correct = (top2.indices[:, 0] == tgt)
        gap = top2.values[:, 0] - top2.values[:, 1]
        nll = torch.nn.functional.cross_entropy(logits, tgt, reduction="none")
        correct, gap, nll = correct.cpu(), gap.cpu(), nll.cpu()
        start = 0
        for i in idx:
            n = len(items[i].target_ids)
            c, g = correct[start : start + n], gap[start : start + n]
            misses = (~c).nonzero()
            prefix = int(misses[0]) if len(misses) else n
            all_ok = bool(c.all())
            unsafe = (~(c & (g > margin))).nonzero()
            safe = int(unsafe[0]) if len(unsafe) else n
            out[i] = TeacherResult(items[i].id, safe == n, all_ok, prefix, float(c.float().mean()),
                                   float(nll[start : start + n].mean()), float(g.min()), safe)
            start += n
    model.train(was_training)
    return out  # type: ignore[return-value]
