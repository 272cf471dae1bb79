"""Tokenizers: load one by id or folder, or train a byte-level BPE on the corpus when none exists."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ..errors import RecitebenchError

EOS = "<|endoftext|>"
PAD = "<|pad|>"


GENERIC_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")


def load_tokenizer(ref: str, *, gguf_file: str | None = None):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        if gguf_file:
            tok = AutoTokenizer.from_pretrained(ref, gguf_file=gguf_file)
        elif _generic_class(ref):
            # Transformers 5's AutoTokenizer takes the class from a folder's config.json model_type when the
            # tokenizer names a generic class: a BPE trained here, saved beside a Qwen2 model, came back as a
            # Qwen2Tokenizer with Qwen2's pre-tokenizer (digits split one by one) — other tokens than trained on.
            tok = PreTrainedTokenizerFast.from_pretrained(ref)
        else:
            tok = AutoTokenizer.from_pretrained(ref)
    except (OSError, ValueError) as e:
        raise RecitebenchError(f"{ref}: cannot load tokenizer: {str(e).splitlines()[0]}") from None
    return ensure_special_tokens(tok)


def _generic_class(ref: str) -> bool:
    """Whether a local folder's tokenizer_config.json names the generic fast-tokenizer class."""
    path = Path(ref) / "tokenizer_config.json"
    try:
        return path.is_file() and json.loads(path.read_text(encoding="utf-8")).get("tokenizer_class") in GENERIC_CLASSES
    except (OSError, ValueError):
        return False


def ensure_special_tokens(tok):
    """Every tokenizer we train with needs an end token (recitation must stop) and a pad token."""
    if tok.eos_token is None:
        raise RecitebenchError(
            f"tokenizer {tok.name_or_path!r} has no end-of-sequence token; recitation could never stop"
        )
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token  # safe: pad positions are never attended nor scored
    return tok


def train_bpe(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE trained on `texts` with at most `vocab_size` tokens (2 of them special)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 260:
        raise RecitebenchError(f"vocab_size {vocab_size} is too small for a byte-level BPE (need >= 260)")
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        show_progress=False,
        max_token_length=8,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=EOS, pad_token=PAD)
