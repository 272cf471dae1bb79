"""ModelConfig: which network to memorise with, and how to build it."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import check_choices, opt
from .presets import model_ref_problem


@dataclass
class ModelConfig:
    """Which causal LM, from where, and with which tokenizer."""

    model: str = opt(
        "tiny",
        "a preset (`recitebench ls --models`), hub id, local folder, .gguf file, or config.json (from scratch)",
        example="Qwen/Qwen2-0.5B-Instruct",
    )
    init: str = opt(
        "auto",
        "pretrained: load weights; scratch: random init from the architecture config; auto: the preset's or "
        "path's natural choice",
        choices=("auto", "pretrained", "scratch"),
    )
    tokenizer: str | None = opt(
        None, "tokenizer id or folder (default: the model's own; for scratch without one, a BPE trained on the corpus)"
    )
    gguf_file: str | None = opt(None, "GGUF file name inside --model's folder (Transformers' gguf_file loading)")
    vocab_size: int | None = opt(
        None, "vocabulary size of the BPE trained on the corpus when no tokenizer exists (default: the config's)"
    )
    template: str = opt(
        "plain",
        "input formatting: plain = prompt + newline; chat = the tokenizer's chat template "
        "(user=prompt, assistant=poem)",
        choices=("plain", "chat"),
    )
    attn_implementation: str = opt(
        "sdpa",
        "attention kernel passed to Transformers",
        choices=("sdpa", "eager", "flash_attention_2", "flex_attention"),
    )
    init_seed: int = opt(0, "seed of the random initialisation for scratch models")

    def __post_init__(self) -> None:
        check_choices(self)
        if not self.model:
            raise ValueError("model must not be empty")
        problem = model_ref_problem(self.model)
        if problem:
            raise ValueError(problem)
