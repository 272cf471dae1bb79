"""Greedy decoding verified in full forward passes, with the poem itself as the draft.

For a poem the certified path could not decide, the model's greedy output usually still follows
the poem for long stretches (a minor distortion changes a few tokens). So instead of decoding token
by token, feed prompt + output-so-far + the rest of the poem as a draft in one forward pass: every
draft token whose arg-max agrees is the greedy token (the same argument as certification, with the
same fp32 margin), and the first disagreeing arg-max is the greedy token at that step. Each pass
yields at least one token; a well-remembered poem needs a handful of passes instead of one pass per
token. Where a step's top-1/top-2 gap is within the margin, the poem is handed to real `generate()`
from that point, so the result equals greedy decoding.
"""

from __future__ import annotations

import torch

from ..models.formatting import Encoded
from ..models.forward import logits_at


def _realign(target: list[int], pos: int, emitted: int, window: int = 4) -> int:
    """Where the draft should resume after the output left the poem at target index `pos`."""
    for k in range(pos + 1, min(len(target), pos + 1 + window)):
        if target[k] == emitted:
            return k + 1  # the model skipped tokens: resume after the one it emitted
    return pos + 1  # a substitution: resume right after it


@torch.no_grad()
def draft_decode(model, items: list[Encoded], prefixes: list[int], *, device, pad_id: int, eos_id: int, margin: float,
                 extra_tokens: int, batch_tokens: int = 65536, autocast_dtype=None) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """({item: greedy output ids}, {item: output so far, for items needing real decoding from there})."""
    was_training = model.training
    model.eval()
    out = {i: list(items[i].target_ids[: prefixes[i]]) for i in range(len(items))}
    anchor = {i: prefixes[i] for i in range(len(items))}  # where the draft resumes in the poem
    done: dict[int, list[int]] = {}
    handoff: dict[int, list[int]] = {}
    active = list(range(len(items)))
    dev_type = torch.device(device).type
    while active:
        active.sort(key=lambda i: len(items[i].prompt_ids) + len(out[i]) + len(items[i].target_ids) - anchor[i])
        batches, cur, width = [], [], 0
        for i in active:
            budget = len(items[i].target_ids) + extra_tokens - len(out[i])
            n = len(items[i].prompt_ids) + len(out[i]) + min(budget, len(items[i].target_ids) - anchor[i])
            if cur and max(width, n) * (len(cur) + 1) > batch_tokens:
                batches.append(cur)
                cur, width = [], 0
            cur.append(i)
            width = max(width, n)
        batches.append(cur)
        still = []
        for batch in batches:
            drafts, seqs = {}, []
            for i in batch:
                budget = len(items[i].target_ids) + extra_tokens - len(out[i])
                drafts[i] = items[i].target_ids[anchor[i] :][: max(0, budget - 1)]
                seqs.append(items[i].prompt_ids + out[i] + drafts[i])
            w = max(len(s) for s in seqs)
            x = torch.full((len(seqs), w), pad_id, dtype=torch.long)
            rows, cols = [], []
            for b, (i, s) in enumerate(zip(batch, seqs)):
                x[b, : len(s)] = torch.tensor(s)
                start = len(items[i].prompt_ids) + len(out[i]) - 1
                rows += [b] * (len(drafts[i]) + 1)
                cols += list(range(start, len(s)))
            with torch.autocast(device_type=dev_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                logits = logits_at(model, x.to(device), torch.tensor(rows, device=device), torch.tensor(cols, device=device))
            top2 = logits.float().topk(2, dim=-1)
            pred, gap = top2.indices[:, 0].tolist(), (top2.values[:, 0] - top2.values[:, 1]).tolist()
            k = 0
            for i in batch:
                n_pred = len(drafts[i]) + 1
                p, g = pred[k : k + n_pred], gap[k : k + n_pred]
                k += n_pred
                limit = len(items[i].target_ids) + extra_tokens
                for step in range(n_pred):
                    if g[step] <= margin:
                        handoff[i] = out[i]
                        break
                    out[i].append(p[step])
                    if p[step] == eos_id or len(out[i]) >= limit:
                        done[i] = out[i]
                        break
                    if step < len(drafts[i]) and p[step] == drafts[i][step]:
                        continue
                    anchor[i] = _realign(items[i].target_ids, anchor[i] + step, p[step])
                    still.append(i)
                    break
                else:
                    still.append(i)
        active = still
    model.train(was_training)
    return done, handoff
