"""One batching rule for every stage: training steps, the teacher-forced pass and the draft decoder.

Sequences are cut into batches greedily in length order, so padding stays a few percent; a batch is
closed when one more sequence would exceed the row limit or the padded-token limit (rows x longest).
Training sorts within windows of a shuffled order (the window keeps batches random across the
epoch); evaluation sorts everything at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def length_batches(
    lengths: Sequence[int],
    *,
    max_rows: int | None,
    max_tokens: int | None,
    window: int | None = None,
    order: Sequence[int] | None = None,
) -> list[list[int]]:
    """Batches of indices. `order` (default 0..n-1) is cut into windows of `window` indices (None: one
    window); each window is stably sorted by length and split at the row and padded-token limits."""
    order = list(range(len(lengths))) if order is None else list(order)
    window = window or max(1, len(order))
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        cur: list[int] = []
        longest = 0
        for i in sorted(order[start : start + window], key=lambda j: lengths[j]):
            wider = max(longest, lengths[i])
            if cur and over_limits(len(cur), wider, max_rows=max_rows, max_tokens=max_tokens):
                batches.append(cur)
                cur, wider = [], lengths[i]
            cur.append(i)
            longest = wider
        if cur:
            batches.append(cur)
    return batches


def over_limits(rows: int, widest: int, *, max_rows: int | None, max_tokens: int | None) -> bool:
    """Whether a batch of `rows` sequences would exceed a limit by taking one more, `widest` being the longest
    sequence once it is in."""
    return (max_rows is not None and rows >= max_rows) or (max_tokens is not None and widest * (rows + 1) > max_tokens)


def pad_rows(seqs: Sequence[Sequence[int]], pad_id: int, *, left: bool = False) -> torch.Tensor:
    """[len(seqs), longest] token ids, padded with `pad_id` on the right (or the left)."""
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for b, s in enumerate(seqs):
        if s:
            if left:
                out[b, width - len(s) :] = torch.tensor(list(s))
            else:
                out[b, : len(s)] = torch.tensor(list(s))
    return out


def cut_at_end(seq: list[int], end_ids: Sequence[int]) -> list[int]:
    """`seq` up to and including its first end token (all of it when there is none)."""
    for k, t in enumerate(seq):
        if t in end_ids:
            return seq[: k + 1]
    return seq
