"""ReciteConfig: evaluation settings are data (decoding, normalisation, outcome thresholds)."""

from __future__ import annotations

import argparse
import difflib
from dataclasses import dataclass

from ..config import check_choices, check_positive, merge, opt, to_dict
from ..errors import RecitebenchError
from ..models.config import ModelConfig
from ..models.presets import model_ref_problem
from ..rundir import RunDir

DECODERS = ("auto", "static", "generate", "draft", "vllm")
REFERENCES = ("auto", "base", "truth", "none")
NORMALIZATIONS = ("none", "whitespace", "width", "whitespace+width")


@dataclass
class ReciteConfig:
    """How poems are recited and scored."""

    run: str | None = opt(None, "a training run folder: its final model and dataset are used", example="runs/qwen2-cn")
    data: str | None = opt(None, "a frozen dataset folder (default: the run's dataset)")
    out: str | None = opt(None, "output folder for results.json and samples.jsonl (default: RUN/recite)")
    snapshot: str | None = opt(None, "recite the run's snapshot RUN/snapshots/NAME instead of its final model "
                                     "(train --snapshot-every)", example="epoch_0010")
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
        "random initialisation); truth = the known entropy of a random-string dataset; none; a training run folder "
        "(a trained reference: its final model, refused if it saw any recited poem); or any model (preset, hub id, "
        "folder) to count only what it could not already predict; auto = truth for random strings, else base for "
        "a run, else none",
        example="Qwen/Qwen2-1.5B-Instruct",
    )
    heldout: str | None = opt(
        None,
        "a frozen dataset of non-members scored as a control (bits under the model and the reference, membership "
        "AUC; results.json `controls`, heldout.jsonl); none turns it off; default: the `heldout` part beside a "
        "dataset built with `data build --parts`",
        example="data/split/heldout",
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
        choices=NORMALIZATIONS,
    )
    minor_overlap: float = opt(
        0.75, "overlap (LCS F1 of words, or of CJK characters) at or above which a wrong recitation is a minor "
        "distortion (calibrated on the paper's Newton example: docs/VERDICTS.md)")
    forgotten_overlap: float = opt(0.2, "overlap below which a recitation counts as forgotten (unrelated text)")
    seed: int = opt(0, "seed of the verification sample")
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
        if not (0.0 <= self.forgotten_overlap <= self.minor_overlap <= 1.0):
            raise ValueError("thresholds must satisfy 0 <= forgotten_overlap <= minor_overlap <= 1")
        check_positive(self, "batch_size", "batch_tokens", "gen_batch_size", "limit")
        if self.generation == "model" and self.decoder not in ("auto", "generate"):
            raise ValueError("generation 'model' decodes with HF generate(): use decoder auto or generate")
        if self.verify < 0 or self.extra_tokens < 0:
            raise ValueError("verify and extra_tokens must be >= 0")
        self.check_reference()

    def thresholds(self) -> dict:
        """The grading thresholds as results.json records them."""
        return {"measure": "overlap", "minor_overlap": self.minor_overlap, "forgotten_overlap": self.forgotten_overlap}

    def check_reference(self) -> None:
        """A reference is a keyword or a model: `bsae` is a typo (did you mean base?), not a hub id to try."""
        if self.reference in REFERENCES:
            return
        close = difflib.get_close_matches(self.reference, REFERENCES, n=1)
        problem = model_ref_problem(self.reference)
        if problem:
            hint = f"did you mean {close[0]!r}?" if close else "or a model: a preset, path or hub id (OWNER/NAME)"
            raise ValueError(f"reference {self.reference!r} is not one of {', '.join(REFERENCES)} nor a model "
                             f"({problem.split('; ')[0]}); {hint}")


# With --run, the model is the run's own: these settings are fixed by the run (attn_implementation stays a choice).
RUN_FIXED_MODEL = ("model", "init", "tokenizer", "gguf_file", "vocab_size", "template", "init_seed")


def recite_configs(values: dict[str, dict], flags: argparse.Namespace | None, where: str = "command line"
                   ) -> tuple[ReciteConfig, ModelConfig | None]:
    """(ReciteConfig, ModelConfig) from a config file's `recite`/`model` values and flags. With --run the model
    config is the run's saved one with the given options on top; an option that would recite another model than
    the run's (--model, --template, --tokenizer, ...) is refused, never dropped."""
    rcfg = merge(ReciteConfig, yaml=values.get("recite"), flags=flags, where=f"{where}: recite")
    names = set(ModelConfig.__dataclass_fields__)
    given = {**(values.get("model") or {}), **{k: v for k, v in vars(flags or argparse.Namespace()).items()
                                               if k in names}}
    if not rcfg.run:
        return rcfg, (merge(ModelConfig, yaml=given, where=f"{where}: model") if given else None)
    saved = RunDir(rcfg.run).read_config().get("model") or {}
    base = {**to_dict(ModelConfig()), **saved}
    clash = [k for k in RUN_FIXED_MODEL if k in given and given[k] != base.get(k)]
    if clash:
        opts = ", ".join(f"--{k.replace('_', '-')} {given[k]}" for k in clash)
        raise RecitebenchError(f"{where}: {opts}: recite --run scores the run's own model "
                               f"({', '.join(f'{k} {base.get(k)!r}' for k in clash)} in {RunDir(rcfg.run).config}); "
                               f"drop the option, or recite another model with --model MODEL --data DATASET")
    return rcfg, merge(ModelConfig, saved=saved, yaml=given, where=f"{where}: model")


@dataclass
class ExtractConfig:
    """The extraction probe: which model, which poems, which context lengths."""

    run: str | None = opt(None, "a training run folder: its final model and dataset", example="runs/qwen2-cn")
    data: str | None = opt(None, "a frozen dataset folder (default: the run's dataset)")
    out: str | None = opt(None, "output folder for extraction.json and extraction.jsonl (default: RUN/extract)")
    prefix_tokens: list[int] = opt([32], "k: poem tokens given after the prompt (several: a sweep)", example="0 8 32")
    continuation_tokens: int = opt(32, "m: greedy tokens scored after them (Pythia: 32)")
    batch_size: int = opt(64, "sequences per decoding batch")
    precision: str = opt("auto", "auto: bf16 on GPU, fp32 on CPU", choices=("auto", "fp32", "bf16"))
    device: str = opt("auto", "auto, cpu, cuda or cuda:N")
    limit: int | None = opt(None, "probe only the first N poems")

    def __post_init__(self) -> None:
        check_positive(self, "continuation_tokens", "batch_size", "limit")
        if not self.prefix_tokens or any(k < 0 for k in self.prefix_tokens) or (
                self.prefix_tokens != sorted(set(self.prefix_tokens))):
            raise ValueError(f"prefix_tokens must be increasing and >= 0, got {self.prefix_tokens}")




@dataclass
class LensConfig:
    """The layer-wise probe (logit lens): which model, which poems."""

    run: str | None = opt(None, "a training run folder: its final model and dataset", example="runs/qwen2-cn")
    data: str | None = opt(None, "a frozen dataset folder (default: the run's dataset)")
    heldout: str | None = opt(None, "a frozen dataset of non-members scored beside them", example="data/split/heldout")
    out: str | None = opt(None, "output folder for lens.json (default: RUN/lens)")
    batch_size: int = opt(16, "sequences per forward pass")
    precision: str = opt("auto", "auto: bf16 on GPU, fp32 on CPU", choices=("auto", "fp32", "bf16"))
    device: str = opt("auto", "auto, cpu, cuda or cuda:N")
    limit: int | None = opt(None, "probe only the first N poems (of each set)")

    def __post_init__(self) -> None:
        check_choices(self)
        check_positive(self, "batch_size", "limit")


def probe_configs(cls: type, section: str, values: dict[str, dict], flags: argparse.Namespace | None,
                  where: str = "command line"):
    """(probe config, ModelConfig) of `extract` or `lens` from a config file's section and `model` values and flags;
    with --run the model is the run's own (an option naming another model is refused)."""
    cfg = merge(cls, yaml=values.get(section), flags=flags, where=f"{where}: {section}")
    names = set(ModelConfig.__dataclass_fields__)
    given = {**(values.get("model") or {}), **{k: v for k, v in vars(flags or argparse.Namespace()).items()
                                               if k in names and v is not None}}
    if not cfg.run:
        return cfg, (merge(ModelConfig, yaml=given, where=f"{where}: model") if given else None)
    base = {**to_dict(ModelConfig()), **(RunDir(cfg.run).read_config().get("model") or {})}
    clash = [k for k in RUN_FIXED_MODEL if k in given and given[k] != base.get(k)]
    if clash:
        raise RecitebenchError(f"{where}: --{clash[0].replace('_', '-')}: {section} --run probes the run's own model; "
                               f"drop the option, or probe another model with --model MODEL --data DATASET")
    return cfg, None
