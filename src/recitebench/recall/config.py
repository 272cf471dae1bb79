"""ReciteConfig: evaluation settings are data (decoding, normalisation, outcome thresholds)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import check_choices, check_positive, opt

DECODERS = ("auto", "static", "generate", "draft", "vllm")


@dataclass
class ReciteConfig:
    """How poems are recited and scored."""

    run: str | None = opt(None, "a training run folder: its final model and dataset are used", example="runs/qwen2-cn")
    data: str | None = opt(None, "a frozen dataset folder (default: the run's dataset)")
    out: str | None = opt(None, "output folder for results.json and samples.jsonl (default: RUN/recite)")
    certify: bool = opt(
        True,
        "one teacher-forced pass first: a poem whose every greedy step it proves (poem token ahead "
        "of every other by more than the margin) is recited exactly without decoding; the rest are "
        "decoded after their proven prefix. --no-certify decodes every poem from its prompt",
    )
    decoder: str = opt(
        "auto",
        "how poems are decoded greedily: static = static KV cache, one CUDA graph per step on a "
        "GPU (Llama/Qwen2 family); generate = Hugging Face generate(); draft = steps verified in full "
        "forward passes with the poem as the draft, handing any step within the margin to the auto "
        "decoder; vllm = vLLM (installed separately, needs a model folder); auto = static where "
        "supported, else generate",
        choices=DECODERS,
    )
    generation: str = opt("greedy", "greedy: plain greedy decoding on every path, whatever the model's saved "
                          "generation_config holds (the settings it overrides are recorded); model: HF generate() "
                          "with the model's own settings (turns certification off; decoder generate)",
                          choices=("greedy", "model"))
    reference: str = opt(
        "auto",
        "what memorised bits are measured against: base = the model before training (a run's base weights or its "
        "random initialisation); truth = the known entropy of a random-string dataset; none; or any model (preset, "
        "hub id, folder) to count only what it could not already predict; auto = truth for random strings, else "
        "base for a run, else none",
        example="Qwen/Qwen2-1.5B-Instruct",
    )
    batch_size: int = opt(256, "most sequences per teacher-forced batch")
    batch_tokens: int = opt(65536, "most padded tokens per teacher-forced (and draft) batch")
    gen_batch_size: int = opt(128, "sequences per decoding batch")
    margin: float | None = opt(
        None, "logit lead below which a position is not certified (default: 1e-4 in fp32, 0.5 in bf16)"
    )
    extra_tokens: int = opt(
        16,
        "each poem may decode this many tokens beyond its own length (end token included), to "
        "see a model that does not stop",
    )
    verify: int = opt(0, "also generate this many certified poems and report the agreement rate")
    normalize: str = opt(
        "none",
        "normalisation before comparing (exact means exact: off by default)",
        choices=("none", "whitespace", "width", "whitespace+width"),
    )
    minor_similarity: float = opt(0.8, "edit similarity at or above which a wrong recitation is a minor distortion")
    forgotten_similarity: float = opt(
        0.3, "edit similarity below which a recitation counts as forgotten (unrelated text)"
    )
    bootstrap: int = opt(1000, "bootstrap resamples for the 95% interval of exact_match")
    seed: int = opt(0, "seed for the bootstrap and the verification sample")
    precision: str = opt("auto", "auto: bf16 on GPU, fp32 on CPU", choices=("auto", "fp32", "bf16"))
    kernels: str = opt(
        "auto",
        "GPU kernels for the forward passes: liger (fused RMSNorm, SwiGLU, RoPE), torch, or auto "
        "(liger on a GPU when installed)",
        choices=("auto", "liger", "torch"),
    )
    device: str = opt("auto", "auto, cpu, cuda or cuda:N")
    limit: int | None = opt(None, "score only the first N poems (quick probes)")

    def __post_init__(self) -> None:
        check_choices(self)
        if not (0.0 <= self.forgotten_similarity <= self.minor_similarity <= 1.0):
            raise ValueError("thresholds must satisfy 0 <= forgotten_similarity <= minor_similarity <= 1")
        check_positive(self, "batch_size", "batch_tokens", "gen_batch_size", "bootstrap", "limit")
        if self.generation == "model" and self.decoder not in ("auto", "generate"):
            raise ValueError("generation 'model' decodes with HF generate(): use decoder auto or generate")
        if self.verify < 0 or self.extra_tokens < 0:
            raise ValueError("verify and extra_tokens must be >= 0")
