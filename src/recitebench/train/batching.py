"""Training batches: a deterministic order per (seed, epoch), length-bucketed and right-padded.

Right padding under plain causal attention means no real token ever attends a pad, so no
attention mask is needed (the fast SDPA/flash path) and sorted buckets keep padding to a few %.
"""

from __future__ import annotations

import random
from collections import deque

import torch

from ..batching import length_batches, over_limits, pad_rows
from ..models.formatting import Encoded


def epoch_batches(
    lengths: list[int],
    *,
    seed: int,
    epoch: int,
    max_rows: int | None,
    max_tokens: int | None,
    window: int | None,
    world_size: int = 1,
    repeats: list[int] | None = None,
) -> list[list[int]]:
    """Batches of example indices for one epoch; identical for the same (seed, epoch) on every machine. With
    `repeats`, example i occurs repeats[i] times in the epoch (an exposure dose), each time in another step."""
    rng = random.Random(f"recitebench:{seed}:{epoch}")
    if repeats:
        order = spread_order(repeats, lengths, rng)
        batches = distinct_batches(order, lengths, max_rows=max_rows, max_tokens=max_tokens)
    else:
        order = list(range(len(lengths)))
        rng.shuffle(order)
        batches = length_batches(lengths, max_rows=max_rows, max_tokens=max_tokens, window=window, order=order)
        rng.shuffle(batches)
    if world_size > 1 and len(batches) % world_size:
        # Every rank must take the same number of steps; repeat the first batches rather than drop poems.
        batches += batches[: world_size - len(batches) % world_size]
    return batches


def spread_order(repeats: list[int], lengths: list[int], rng: random.Random) -> list[int]:
    """An epoch in which example i occurs repeats[i] times, its copies evenly spaced (1/repeats[i] of the epoch
    apart, from a random phase) and interleaved at random with the others'. The epoch is bucketed by length within
    windows of 1/max(repeats) of it, which hold at most one copy of any example: bucketing the whole epoch would put
    a poem's copies side by side (one length), so a poem "seen 128 times" would be seen in a handful of steps."""
    most = max(repeats)

    def place(key: tuple) -> tuple:
        # windows sorted short-to-long and long-to-short in turn (a step cut across two windows joins like lengths);
        # ties in the order of the copies' positions
        window = int(key[0] * most)
        return window, lengths[key[2]] if window % 2 == 0 else -lengths[key[2]], key

    keys = []
    for i, r in enumerate(repeats):
        phase = rng.random()
        keys += [((j + phase) / r, rng.random(), i) for j in range(r)]
    return [i for *_, i in sorted(keys, key=place)]


def distinct_batches(order: list[int], lengths: list[int], *, max_rows: int | None,
                     max_tokens: int | None) -> list[list[int]]:
    """`order` cut into consecutive batches at the row and padded-token limits, no example twice in one batch: a
    copy whose example the batch already holds opens the next batch (it moves by less than one batch)."""
    queue, batches = deque(order), []
    while queue:
        cur, seen, held, longest = [], set(), [], 0
        while queue:
            i = queue.popleft()
            if i in seen:
                held.append(i)
                continue
            wider = max(longest, lengths[i])
            if cur and over_limits(len(cur), wider, max_rows=max_rows, max_tokens=max_tokens):
                queue.appendleft(i)
                break
            cur.append(i)
            seen.add(i)
            longest = wider
        queue.extendleft(reversed(held))
        batches.append(cur)
    return batches


def _inputs_and_labels(it: Encoded) -> tuple[list[int], list[int]]:
    """One poem's model inputs (prompt + poem, without the last token) and labels: the next token at each poem
    position, -100 on the prompt."""
    return (it.prompt_ids + it.target_ids)[:-1], [-100] * (len(it.prompt_ids) - 1) + it.target_ids


def collate(items: list[Encoded], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids [B, T], labels [B, T]) with labels = next token on poem positions, -100 elsewhere."""
    rows = [_inputs_and_labels(it) for it in items]
    return pad_rows([x for x, _ in rows], pad_id), pad_rows([y for _, y in rows], -100)


def collate_packed(items: list[Encoded], pad_id: int, width: int | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids [1, N], labels [1, N], position_ids [1, N]): the poems back to back. Positions restart at 0 for
    each poem; Transformers reads the restarts as sequence boundaries and masks attention across them, so each poem
    sees exactly what it sees in a padded row. With `width` the row is filled up to it with `pad_id` as one more
    unscored segment (its own positions, so no poem attends to it): every step then has the same shape, which a
    compiled attention kernel (FlexAttention) needs to avoid recompiling for each new length."""
    ids, labels, pos = [], [], []
    for it in items:
        x, y = _inputs_and_labels(it)
        ids += x
        labels += y
        pos += range(len(x))
    fill = (width or 0) - len(ids)
    if fill > 0:
        ids += [pad_id] * fill
        labels += [-100] * fill
        pos += range(fill)
    ids_t, labels_t, pos_t = (torch.tensor(v, dtype=torch.long)[None] for v in (ids, labels, pos))
    return ids_t, labels_t, pos_t
