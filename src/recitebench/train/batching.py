"""Training batches: a deterministic order per (seed, epoch), length-bucketed and right-padded.

Right padding under plain causal attention means no real token ever attends a pad, so no
attention mask is needed (the fast SDPA/flash path) and sorted buckets keep padding to a few %.
"""

from __future__ import annotations

import random

import torch

from ..batching import length_batches, pad_rows
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
    `repeats`, example i occurs repeats[i] times in the epoch (an exposure dose)."""
    rng = random.Random(f"recitebench:{seed}:{epoch}")
    order = [i for i in range(len(lengths)) for _ in range(repeats[i] if repeats else 1)]
    rng.shuffle(order)
    batches = length_batches(lengths, max_rows=max_rows, max_tokens=max_tokens, window=window, order=order)
    rng.shuffle(batches)
    if world_size > 1 and len(batches) % world_size:
        # Every rank must take the same number of steps; repeat the first batches rather than drop poems.
        batches += batches[: world_size - len(batches) % world_size]
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
