"""Length-bucketed, right-padded batches with a deterministic order per (seed, epoch).

Right padding under plain causal attention means no real token ever attends a pad, so no
attention mask is needed (the fast SDPA/flash path) and sorted buckets keep padding to a few %.
"""

from __future__ import annotations

import random

import torch

from ..models.formatting import Encoded


def epoch_batches(lengths: list[int], *, seed: int, epoch: int, batch_size: int, batch_tokens: int | None = None,
                  world_size: int = 1, bucket_batches: int = 32) -> list[list[int]]:
    """Batches of example indices for one epoch; identical for the same (seed, epoch) on every machine."""
    rng = random.Random(f"recitebench:{seed}:{epoch}")
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    chunk = batch_size * bucket_batches * world_size
    batches: list[list[int]] = []
    for start in range(0, len(idx), chunk):
        part = sorted(idx[start : start + chunk], key=lambda i: lengths[i])
        cur: list[int] = []
        for i in part:
            longest = max(lengths[i], max((lengths[j] for j in cur), default=0))
            full = len(cur) >= batch_size if batch_tokens is None else longest * (len(cur) + 1) > batch_tokens
            if cur and full:
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
    rng.shuffle(batches)
    if world_size > 1 and len(batches) % world_size:
        # Every rank must take the same number of steps; repeat the first batches rather than drop poems.
        batches += batches[: world_size - len(batches) % world_size]
    return batches


def collate(items: list[Encoded], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids [B, T], labels [B, T]) with labels = next token on poem positions, -100 elsewhere."""
    seqs = [it.prompt_ids + it.target_ids for it in items]
    width = max(len(s) for s in seqs) - 1
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    for b, (it, s) in enumerate(zip(items, seqs)):
        x = s[:-1]
        input_ids[b, : len(x)] = torch.tensor(x)
        p = len(it.prompt_ids)
        labels[b, p - 1 : p - 1 + len(it.target_ids)] = torch.tensor(it.target_ids)
    return input_ids, labels
