"""The control corpus: strings of uniformly random symbols, whose information content is known exactly.

Sequence i has a length L drawn uniformly from [min_symbols, max_symbols] and L symbols drawn uniformly from the
alphabet A, so its entropy is L·log2|A| + log2(max - min + 1) bits (the length is information too: the model must
also learn where to stop). Each sequence comes from its own generator seeded by (seed, i): the set for a smaller N
is always a prefix of a larger one's, which nested capacity sweeps rely on.
"""

from __future__ import annotations

import math
import random

from .config import DataConfig

PROMPT = "Recite sequence {key}:"


def entropy_bits(length: int, cfg: DataConfig) -> float:
    return length * math.log2(len(cfg.alphabet)) + math.log2(cfg.max_symbols - cfg.min_symbols + 1)


def random_rows(cfg: DataConfig) -> list[dict]:
    """The rows of poems.jsonl for the random preset: id, prompt, target, chars, symbols, entropy_bits."""
    rows = []
    width = max(5, len(str(cfg.n - 1)))
    for i in range(cfg.n):
        rng = random.Random(f"recitebench-random:{cfg.seed}:{i}")  # str seeds hash the same on every platform
        length = rng.randint(cfg.min_symbols, cfg.max_symbols)
        target = "".join(rng.choice(cfg.alphabet) for _ in range(length))
        key = f"r{i:0{width}d}"
        prompt = PROMPT.format(key=key)
        rows.append({"id": key, "prompt": prompt, "target": target, "chars": len(prompt) + length,
                     "symbols": length, "entropy_bits": round(entropy_bits(length, cfg), 6)})
    return rows


def random_manifest(cfg: DataConfig, rows: list[dict]) -> dict:
    """What the manifest says about the random corpus in place of the corpus filters' counts."""
    return {
        "source": "random",
        "source_sha256": None,
        "template": PROMPT,
        "columns": {},
        "counts": {"read": len(rows), "valid": len(rows), "after_dedupe": len(rows), "after_ambiguity_guard": len(rows),
                   "after_length_rule": len(rows), "sampled": len(rows)},
        "random": {"alphabet": cfg.alphabet, "min_symbols": cfg.min_symbols, "max_symbols": cfg.max_symbols,
                   "bits_per_symbol": math.log2(len(cfg.alphabet)),
                   "entropy_bits": round(sum(r["entropy_bits"] for r in rows), 6)},
    }
