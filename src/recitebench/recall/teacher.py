"""The fast certified path: one teacher-forced forward pass decides most poems.

If, at every poem position, the arg-max of the model's next-token logits is the poem's own
next token (the end token included), greedy decoding from the prompt must follow exactly that
path: the recitation is certified correct without generating it. At each position the poem
token's logit is compared with the best other token's; a position where it does not lead by more
than `margin` is not certified, because a batched forward and an incremental decode may round
differently there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..models.formatting import Encoded
from ..models.forward import hidden_states, logits_at, split_supported, unwrap


@dataclass
class TeacherResult:
    id: str
    certified: bool  # arg-max path == poem + end token, with every margin above the threshold
    all_argmax_correct: bool  # the same without the margin rule
    prefix_tokens: int  # target tokens predicted correctly before the first miss
    token_accuracy: float  # share of target tokens whose arg-max is right
    loss: float  # mean cross-entropy over the target tokens
    min_margin: float  # smallest lead of the poem token's logit over the best other token's (negative: another token wins)
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


def _position_stats(model, input_ids, rows, cols, tgt, logits_fn, chunk: int = 4096):
    """(arg-max correct, lead of the target logit over the best other, NLL) at each scored position.

    The head runs on chunks of positions, so a large batch never holds [positions, vocabulary]
    fp32 logits at once (1.2 GB per 2,000 positions for a 152k vocabulary). Comparisons use the
    logits' own dtype, which is exact (every bf16 value is an fp32 value); only the loss needs an
    fp32 pass. One max over the other tokens replaces a top-2 search.
    """
    if logits_fn is not None or not split_supported(model):
        parts = [logits_fn(input_ids, rows, cols) if logits_fn else logits_at(model, input_ids, rows, cols)]
        targets = [tgt]
    else:
        h = hidden_states(model, input_ids)[rows, cols]
        head = unwrap(model).get_output_embeddings()
        parts = (head(h[i : i + chunk]) for i in range(0, len(h), chunk))
        targets = [tgt[i : i + chunk] for i in range(0, len(h), chunk)]
    correct, gap, nll = [], [], []
    for logits, y in zip(parts, targets):
        nll.append(torch.nn.functional.cross_entropy(logits.float(), y, reduction="none"))
        target_logit = logits.gather(1, y[:, None]).squeeze(1).float()
        best_other = logits.scatter_(1, y[:, None], float("-inf")).amax(dim=-1).float()  # in place: logits are done with
        lead = target_logit - best_other
        correct.append(lead > 0)
        gap.append(lead)
    return (torch.cat(correct).cpu().numpy(), torch.cat(gap).cpu().numpy(), torch.cat(nll).cpu().numpy())


@torch.no_grad()
def teacher_forced(model, items: list[Encoded], *, device, batch_size: int = 256, batch_tokens: int | None = 16384,
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
            correct, gap, nll = _position_stats(model, input_ids, rows_t, cols_t, tgt, logits_fn)
        safe_all = correct & (gap > margin)
        start = 0
        for i in idx:
            n = len(items[i].target_ids)
            c, g, ok = correct[start : start + n], gap[start : start + n], safe_all[start : start + n]
            prefix = n if c.all() else int(np.argmin(c))  # the first miss
            safe = n if ok.all() else int(np.argmin(ok))
            out[i] = TeacherResult(items[i].id, safe == n, bool(c.all()), prefix, float(c.mean()),
                                   float(nll[start : start + n].mean()), float(g.min()), safe)
            start += n
    model.train(was_training)
    return out  # type: ignore[return-value]
