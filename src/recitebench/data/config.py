"""DataConfig: how a frozen poem dataset is built."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import check_choices, check_positive, opt
from .presets import PRESETS, aliases_help, placeholders, target_template

DEFAULT_SOURCE = "shared:cn_poems"


@dataclass
class DataConfig:
    """Build a frozen (prompt, poem) dataset from a corpus."""

    source: str = opt(
        DEFAULT_SOURCE,
        "corpus: a local .jsonl/.json/.csv/.parquet[.gz|.xz] file, hf:OWNER/NAME[:SPLIT], or "
        "shared:cn_poems / shared:en_poems",
        example="hf:larryvrh/Chinese-Poems",
    )
    preset: str = opt(
        "cn-poems",
        "prompt format; random = uniformly random symbol strings of known entropy; random-tokens = uniformly random "
        "token ids (vocab, length; Morris et al.'s capacity setting); both are control corpora with no --source",
        choices=(*PRESETS, "random", "random-tokens"),
    )
    columns: str | None = opt(
        None,
        "map fields to the source's column names; unmapped fields are guessed from aliases (" + aliases_help() + ")",
        example="author=poet,title=name,content=text",
    )
    prompt_template: str | None = opt(
        None,
        "the prompt as a str.format template over the source's columns (or the fields above); replaces the "
        "preset's, which stays the paper's",
        example="默写：{dynasty}·{author}《{title}》",
    )
    target: str | None = opt(
        None,
        "what is recited: a column, or a template over columns (default: the content field); \\n is a line break",
        example="{title}\n{content}",
    )
    n: int = opt(2000, "number of poems to sample; fewer candidates than this is an error")
    seed: int = opt(0, "sampling seed: same arguments and seed give byte-identical files")
    max_chars: int | None = opt(256, "keep poems whose len(prompt)+len(poem) <= this (paper Table 1: 256)")
    min_chars: int | None = opt(
        None, "keep poems whose len(prompt)+len(poem) >= this (paper Table 2: 256 with --max-chars 512)"
    )
    max_tokens: int | None = opt(None, "token-based length rule: prompt+poem tokens <= this (needs --tokenizer)")
    min_tokens: int | None = opt(None, "token-based length rule: prompt+poem tokens >= this (needs --tokenizer)")
    tokenizer: str | None = opt(
        None,
        "tokenizer (hub id or folder) for the token-based length rule",
        example="../shared/models/tokenizers/qwen2",
    )
    ambiguous: str = opt(
        "drop",
        "inputs shared by different poems: drop them all, or disambiguate by numbering them",
        choices=("drop", "disambiguate"),
    )
    nested: bool = opt(
        False, "take the first N of one seeded shuffle, so the set for a smaller N is a prefix of a larger one's"
    )
    alphabet: str = opt("0123456789", "random preset: the symbols, each drawn with equal probability")
    min_symbols: int = opt(16, "random preset: shortest sequence (lengths are uniform in [min, max])")
    max_symbols: int = opt(32, "random preset: longest sequence")
    vocab: int = opt(2048, "random-tokens preset: symbols V, each token drawn with probability 1/V")
    length: int = opt(64, "random-tokens preset: tokens S per sequence (S*log2(V) bits each)")
    keyed: bool = opt(False, "random-tokens preset: recite each sequence from a key prompt (default: unconditional, "
                      "the sequence is the whole example)")
    exclude: list[str] = opt([], "frozen dataset folders whose poems are left out, by id and by normalised poem text "
                                 "(the same poem under another id too)", example="data/cn256")
    parts: str | None = opt(None, "split the draw into named parts, each its own dataset in OUT/NAME: consecutive "
                                  "slices of one seeded shuffle, no poem text in two parts; sizes sum to n",
                            example="member=2000,heldout=500,reference=8000")
    exposures: list[int] = opt([], "exposure dose: the poems are split into equal seeded shares that occur this many "
                                    "times per training epoch (recorded per poem as `exposures`)", example="1 2 4 8")
    skip_bad_rows: bool = opt(False, "skip (and count) rows with missing/empty/mistyped fields instead of failing")
    strip: bool = opt(True, "strip leading/trailing whitespace of each field (inner text is never changed)")

    @property
    def reads_corpus(self) -> bool:
        """A poem preset samples `source`; the random presets draw their own strings."""
        return self.preset not in ("random", "random-tokens")

    def __post_init__(self) -> None:
        check_choices(self)
        check_positive(self, "n", "max_chars", "min_chars", "max_tokens", "min_tokens", "min_symbols", "max_symbols")
        if not self.reads_corpus and self.source != DEFAULT_SOURCE:
            raise ValueError(f"the {self.preset} preset draws its strings itself and reads no source; drop source "
                             f"{self.source!r} (or pick a poem preset)")
        check_positive(self, "vocab", "length")
        if self.preset == "random-tokens" and self.vocab < 2:
            raise ValueError(f"vocab must be at least 2, got {self.vocab}")
        if self.preset == "random":
            if len(set(self.alphabet)) != len(self.alphabet) or len(self.alphabet) < 2:
                raise ValueError(f"alphabet must hold at least 2 distinct symbols, got {self.alphabet!r}")
            if any(c.isspace() for c in self.alphabet):
                raise ValueError("alphabet must not contain whitespace (it would be stripped or split lines)")
            if self.min_symbols > self.max_symbols:
                raise ValueError(f"min_symbols ({self.min_symbols}) is larger than max_symbols ({self.max_symbols})")
        if self.min_chars and self.max_chars and self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) is larger than max_chars ({self.max_chars})")
        if self.prompt_template is not None:
            placeholders(self.prompt_template, "prompt_template")
        if self.target is not None:
            placeholders(target_template(self.target), "target")
        if (self.exclude or self.parts) and not self.reads_corpus:
            raise ValueError(f"exclude and parts apply to poem corpora; the {self.preset} preset draws its own strings")
        if self.exposures and (any(x < 1 for x in self.exposures) or self.exposures != sorted(set(self.exposures))):
            raise ValueError(f"exposures must be increasing whole numbers >= 1, got {self.exposures}")
        if self.exposures and self.n < len(self.exposures):
            raise ValueError(f"{len(self.exposures)} exposure levels need at least as many poems, not n={self.n}")
        if self.parts is not None:
            from .disjoint import parse_parts

            total = sum(parse_parts(self.parts).values())
            if total != self.n:
                raise ValueError(f"parts sum to {total} poems but n is {self.n}: pass --n {total}")
        if (self.max_tokens or self.min_tokens) and not self.tokenizer:
            raise ValueError("a token-based length rule (max_tokens/min_tokens) needs tokenizer")
