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


# Random tokens (Morris et al. 2025's setting): S token ids drawn uniformly from V symbols, the sequence the whole
# example (unconditional: no key prompt) or recited from a key. Symbol k is the word "t<k>", token id k of the
# symbol tokenizer the dataset ships, so one symbol is exactly one token and a sequence holds S*log2(V) bits.
TOKEN_PROMPT = "Recite sequence {key}:"
SPECIALS = ("<bos>", "<eos>", "<pad>", "<unk>")


def token_rows(cfg: DataConfig) -> list[dict]:
    """Rows of poems.jsonl for the random-tokens preset: id, prompt ('' unconditional), target (symbols as words),
    token_ids, entropy_bits. Row i comes from its own generator seeded by (seed, i): nested sizes are prefixes."""
    rows = []
    width = max(5, len(str(cfg.n - 1)))
    bits = round(cfg.length * math.log2(cfg.vocab), 6)
    for i in range(cfg.n):
        rng = random.Random(f"recitebench-tokens:{cfg.seed}:{i}")
        ids = [rng.randrange(cfg.vocab) for _ in range(cfg.length)]
        key = f"r{i:0{width}d}"
        prompt = TOKEN_PROMPT.format(key=key) if cfg.keyed else ""
        target = " ".join(f"t{t}" for t in ids)
        rows.append({"id": key, "prompt": prompt, "target": target, "chars": len(prompt) + len(target),
                     "token_ids": ids, "entropy_bits": bits})
    return rows


def token_manifest(cfg: DataConfig, rows: list[dict]) -> dict:
    n = len(rows)
    return {
        "source": "random-tokens", "source_sha256": None, "template": TOKEN_PROMPT if cfg.keyed else "", "columns": {},
        "counts": {"read": n, "valid": n, "after_dedupe": n, "after_ambiguity_guard": n, "after_length_rule": n,
                   "sampled": n},
        "random_tokens": {"vocab": cfg.vocab, "length": cfg.length, "keyed": cfg.keyed,
                          "bits_per_token": math.log2(cfg.vocab), "entropy_bits": round(sum(r["entropy_bits"]
                                                                                              for r in rows), 6),
                          "tokenizer": "tokenizer/ (symbol t<k> = token id k; <bos>, <eos>, <pad> after them)"},
    }


def write_symbol_tokenizer(folder, vocab: int) -> None:
    """A word-level tokenizer over the symbols t0..t{V-1} (ids 0..V-1) and four specials after them, saved so that
    `AutoTokenizer.from_pretrained(folder)` loads it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {f"t{k}": k for k in range(vocab)} | {tok: vocab + j for j, tok in enumerate(SPECIALS)}
    core = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                  unk_token="<unk>")
    tok.save_pretrained(str(folder))
