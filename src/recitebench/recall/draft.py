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

import itertools

import torch

from ..batching import length_batches, pad_rows
from ..models.certify import Scoring
from ..models.formatting import Encoded
from ..models.forward import evaluating, logits_at


def _realign(target: list[int], pos: int, emitted: int, window: int = 4) -> int:
    """Where the draft should resume after the output left the poem at target index `pos`."""
    for k in range(pos + 1, min(len(target), pos + 1 + window)):
        if target[k] == emitted:
            return k + 1  # the model skipped tokens: resume after the one it emitted
    return pos + 1  # a substitution: resume right after it


def draft_decode(model, items: list[Encoded], prefixes: list[int], scoring: Scoring, extra_tokens: int
                 ) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """({item: greedy output ids}, {item: output so far, for items needing real decoding from there})."""
    state = _DraftState(items, prefixes, extra_tokens)
    active = list(range(len(items)))
    with evaluating(model):
        while active:
            widths = {i: state.width(i) for i in active}
            batches = length_batches(
                [widths.get(i, 0) for i in range(len(items))], max_rows=None, max_tokens=scoring.batch_tokens,
                order=active,
            )
            still: list[int] = []
            for batch in batches:
                preds, gaps = _verify(model, state, batch, scoring)
                still += [i for i, p, g in zip(batch, preds, gaps)
                          if state.advance(i, p, g, scoring.margin, scoring.end_ids)]
            active = still
    return state.done, state.handoff


class _DraftState:
    """Per poem: the greedy output so far, where the draft resumes in the poem, and how it ended."""

    def __init__(self, items: list[Encoded], prefixes: list[int], extra_tokens: int):
        self.items, self.extra = items, extra_tokens
        self.out = {i: list(items[i].target_ids[: prefixes[i]]) for i in range(len(items))}
        self.anchor = dict(enumerate(prefixes))
        self.done: dict[int, list[int]] = {}
        self.handoff: dict[int, list[int]] = {}

    def draft(self, i: int) -> list[int]:
        budget = len(self.items[i].target_ids) + self.extra - len(self.out[i])
        return self.items[i].target_ids[self.anchor[i] :][: max(0, budget - 1)]

    def width(self, i: int) -> int:
        return len(self.items[i].prompt_ids) + len(self.out[i]) + len(self.draft(i))

    def advance(self, i: int, pred: list[int], gap: list[float], margin: float, end_ids) -> bool:
        """Take the verified greedy tokens of one pass; True while the poem needs another pass."""
        draft, out = self.draft(i), self.out[i]
        limit = len(self.items[i].target_ids) + self.extra
        for step, (p, g) in enumerate(zip(pred, gap)):
            if g <= margin:  # too close to call: real decoding decides from here
                self.handoff[i] = out
                return False
            out.append(p)
            if p in end_ids or len(out) >= limit:
                self.done[i] = out
                return False
            if step < len(draft) and p == draft[step]:
                continue
            self.anchor[i] = _realign(self.items[i].target_ids, self.anchor[i] + step, p)
            return True
        return True


def _verify(model, state: _DraftState, batch: list[int], scoring: Scoring):
    """One forward pass over prompt + output so far + draft: arg-max and top-1/top-2 gap at each draft step."""
    seqs, rows, cols, counts = [], [], [], []
    for b, i in enumerate(batch):
        s = state.items[i].prompt_ids + state.out[i] + state.draft(i)
        start = len(state.items[i].prompt_ids) + len(state.out[i]) - 1
        seqs.append(s)
        rows += [b] * (len(s) - start)
        cols += list(range(start, len(s)))
        counts.append(len(s) - start)
    device, dtype = scoring.device, scoring.autocast_dtype
    x = pad_rows(seqs, scoring.pad_id).to(device)
    with torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=dtype is not None):
        logits = logits_at(model, x, torch.tensor(rows, device=device), torch.tensor(cols, device=device))
    top2 = logits.float().topk(2, dim=-1)
    pred, gap = top2.indices[:, 0].tolist(), (top2.values[:, 0] - top2.values[:, 1]).tolist()
    bounds = [0, *itertools.accumulate(counts)]
    return ([pred[a:b] for a, b in zip(bounds, bounds[1:])], [gap[a:b] for a, b in zip(bounds, bounds[1:])])
