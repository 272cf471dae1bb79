"""TrainConfig: the memorisation run (optimiser, schedule, batching, curve, checkpoints)."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from ..config import check_choices, check_positive, merge, opt, to_dict
from ..errors import RecitebenchError
from ..models.config import ModelConfig
from ..rundir import RunDir
from ..trackers import parse_report_to


@dataclass
class TrainConfig:
    """How the model memorises the dataset."""

    data: str | None = opt(None, "frozen dataset folder (from `recitebench data build`)", example="data/cn256")
    out: str = opt("runs/train", "run folder: config.yaml, metrics.jsonl, checkpoint, model/")
    epochs: int = opt(100, "passes over the dataset (the paper: 100)")
    lr: float | None = opt(None, "peak learning rate (default: 2e-5 full fine-tune, 2e-4 LoRA, 1e-3 from scratch)")
    schedule: str = opt(
        "constant", "after warmup: constant, or cosine decay to min_lr_ratio x lr", choices=("constant", "cosine")
    )
    warmup_ratio: float = opt(0.03, "share of all optimizer steps spent warming up linearly")
    min_lr_ratio: float = opt(0.1, "cosine floor as a share of the peak lr")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    betas: list[float] = opt([0.9, 0.95], "AdamW betas (two numbers in [0, 1))", example="0.9 0.95")
    grad_clip: float = opt(1.0, "clip the gradient norm to this (0 = off)")
    batch_size: int | None = opt(
        None, "most sequences per optimizer step per GPU (default: 16, or no row limit when batch_tokens is set)"
    )
    batch_tokens: int | None = opt(
        None, "most padded tokens (rows x longest) per optimizer step per GPU; enough on its own", example="32768"
    )
    bucket_window: int | None = opt(
        None,
        "poems of the shuffled epoch sorted by length together before they are cut "
        "into batches (default: 32 x batch_size, or the whole epoch with batch_tokens; a dose set: windows of "
        "1/max(exposures) of the epoch, which hold one copy of a poem at most)",
    )
    grad_accum: int = opt(1, "micro-batches per optimizer step")
    precision: str = opt(
        "auto",
        "auto: bf16-master on GPU (bf16-mixed under --fsdp), fp32 on CPU; bf16-mixed: fp32 weights, bf16 "
        "autocast; bf16-master: bf16 "
        "weights and activations, fp32 master weights and optimizer state; bf16: bf16 weights, no master",
        choices=("auto", "fp32", "bf16-mixed", "bf16-master", "bf16"),
    )
    seed: int = opt(0, "seed of data order and dropout (same seed = same run)")
    recall_every: int = opt(10, "every k epochs, log the exact recall of the training poems (0 = only at the end)")
    checkpoint_every: int = opt(10, "every k epochs, save a resumable checkpoint (0 = never)")
    snapshot_every: int = opt(0, "every k epochs (and before the first), save the model to RUN/snapshots/epoch_NNNN "
                                 "for `recitebench retention` (0 = never; not with lora or fsdp)")
    snapshot_at: list[int] = opt([], "epochs at which to snapshot as well (a denser start: the early epochs of "
                                     "forgetting), with one before the first epoch and one at the end", example="1 2 4")
    stop_when_memorised: bool = opt(False, "stop early once every poem is recalled exactly")
    resume: bool = opt(False, "continue the run in --out from its last checkpoint (same data order, optimizer, RNG)")
    overwrite: bool = opt(False, "start again in an --out whose run died before its first checkpoint (it is deleted)")
    lora: bool = opt(False, "train LoRA adapters (peft) instead of all weights; the merged model is saved")
    lora_r: int = opt(16, "LoRA rank")
    lora_alpha: int = opt(32, "LoRA alpha")
    kernels: str = opt(
        "auto",
        "GPU kernels: liger = Liger's fused Triton RMSNorm, SwiGLU, RoPE and cross-entropy (pip install "
        "'recitebench[gpu]'); torch = plain PyTorch; auto = liger on a GPU when installed, else torch",
        choices=("auto", "liger", "torch"),
    )
    compile: bool = opt(False, "torch.compile the model")
    cuda_graphs: bool = opt(
        False,
        "GPU: capture each padded batch shape's whole training step as a CUDA graph and replay it "
        "(removes CPU launch overhead)",
    )
    fsdp: bool = opt(
        False,
        "under torchrun: shard parameters, gradients and optimizer state with FSDP2 "
        "(for models that do not fit one GPU)",
    )
    packing: bool = opt(
        False,
        "concatenate each batch's poems into one row with per-poem attention (position ids restart per poem, so "
        "Transformers masks across poems): no padding is computed; Llama/Qwen2/Mistral models, not with cuda_graphs; "
        "on a GPU use attn_implementation flex_attention or flash_attention_2 (sdpa builds a dense mask)",
    )
    gradient_checkpointing: bool = opt(False, "recompute activations in the backward pass (less memory, ~30% slower)")
    report_to: str = opt("none", "trackers, comma-separated: tensorboard (OUT/tensorboard), wandb (offline unless "
                         "WANDB_MODE is set), mlflow (OUT/mlruns unless MLFLOW_TRACKING_URI is set); or none")
    device: str = opt("auto", "auto, cpu, cuda or cuda:N")
    recall_batch_size: int = opt(256, "sequences per batch of the recall check (and at most 16,384 padded tokens)")
    progress: bool = opt(True, "show a progress bar")

    def snapshot_due(self, epochs_done: int) -> bool:
        """Whether the schedule saves a snapshot after `epochs_done` epochs (0: before the first)."""
        if not (self.snapshot_every or self.snapshot_at):
            return False
        every = bool(self.snapshot_every) and epochs_done % self.snapshot_every == 0
        return every or epochs_done in (0, self.epochs) or epochs_done in self.snapshot_at

    def __post_init__(self) -> None:
        check_choices(self)
        parse_report_to(self.report_to)
        check_positive(self, "epochs", "batch_size", "batch_tokens", "bucket_window", "grad_accum", "recall_batch_size")
        if self.lr is not None and not math.isfinite(self.lr):
            raise ValueError(f"lr must be a finite number, got {self.lr}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError("warmup_ratio must be in [0, 1)")
        self.betas = _two_betas(self.betas)
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("weight_decay and grad_clip must be >= 0 (grad_clip 0 = off)")
        if self.cuda_graphs and (self.grad_accum > 1 or self.compile):
            raise ValueError("cuda_graphs works with grad_accum 1 and without compile")
        if self.packing and self.cuda_graphs:
            raise ValueError("packing varies the row length every step: it does not work with cuda_graphs")
        if self.fsdp and self.precision == "bf16-master":
            raise ValueError("fsdp works with precision fp32, bf16-mixed or bf16 (not bf16-master)")
        if self.recall_every < 0 or self.checkpoint_every < 0 or self.snapshot_every < 0:
            raise ValueError("recall_every, checkpoint_every and snapshot_every must be >= 0")
        if (self.snapshot_every or self.snapshot_at) and (self.lora or self.fsdp):
            raise ValueError("snapshots save whole models from one process: not with lora or fsdp")
        bad = [e for e in self.snapshot_at if not 1 <= e <= self.epochs]
        if bad:
            raise ValueError(f"snapshot_at: epochs must lie in 1..{self.epochs} (epochs), not {bad}")

    @property
    def rows_per_step(self) -> int | None:
        """The row limit of a batch: batch_size, else 16 unless a token budget is given."""
        if self.batch_size is not None:
            return self.batch_size
        return None if self.batch_tokens else 16

    def window(self, world_size: int) -> int | None:
        """Poems sorted together: explicit, else 32 batches' worth per rank, else the whole epoch (None)."""
        if self.bucket_window is not None:
            return self.bucket_window
        return None if self.batch_tokens else 32 * self.rows_per_step * world_size


# What an exact resume depends on: changing one of these on --resume would not continue the same run.
RESUME_FIXED = ("data", "epochs", "lr", "schedule", "warmup_ratio", "min_lr_ratio", "weight_decay", "betas",
                "grad_clip", "batch_size", "batch_tokens", "bucket_window", "grad_accum", "precision", "seed", "lora",
                "lora_r", "lora_alpha", "fsdp", "packing")
# The model a checkpoint belongs to (the tokenizer is the run's own copy on resume).
RESUME_FIXED_MODEL = ("model", "init", "gguf_file", "vocab_size", "template", "init_seed")


def train_configs(yaml: dict, flags: argparse.Namespace | None, where: str = "command line"
                  ) -> tuple[TrainConfig, ModelConfig]:
    """(TrainConfig, ModelConfig) from a YAML file's `train:`/`model:` sections and flags. A resumed run starts
    from its own saved config (RUN/config.yaml), which the YAML and flags override; `train()` then refuses an
    override that would change the run."""
    tyaml, myaml = yaml.get("train") or {}, yaml.get("model") or {}
    given = vars(flags or argparse.Namespace())
    saved: dict = {}
    if given.get("resume", tyaml.get("resume")):
        saved = RunDir(given.get("out", tyaml.get("out", TrainConfig.out))).read_config()
        saved["train"]["resume"] = True
    tcfg = merge(TrainConfig, saved=saved.get("train"), yaml=tyaml, flags=flags, where=f"{where}: train")
    mcfg = merge(ModelConfig, saved=saved.get("model"), yaml=myaml, flags=flags, where=f"{where}: model")
    return tcfg, mcfg


def check_resume_unchanged(run: RunDir, tcfg: TrainConfig, mcfg: ModelConfig) -> None:
    """--resume continues the same run: refuse settings that change its schedule, data order, optimizer or model,
    whichever entry point resumes it (the CLI, a grid whose spec was edited, the capacity protocol)."""
    saved = run.read_config()
    before = {**{k: v for k, v in (saved.get("train") or {}).items() if k in RESUME_FIXED and k != "data"},
              **{f"model.{k}": v for k, v in (saved.get("model") or {}).items() if k in RESUME_FIXED_MODEL}}
    now = {**to_dict(tcfg), **{f"model.{k}": v for k, v in to_dict(mcfg).items()}}
    if "lr" in before and tcfg.lr is None:  # the run recorded the default rate it resolved
        now["lr"] = before["lr"]
    changed = [k for k in before if before[k] != now.get(k)]
    if changed:
        diffs = ", ".join(f"{k} {before[k]!r} -> {now.get(k)!r}" for k in changed)
        raise RecitebenchError(f"{run.config}: --resume continues the run as it was configured, but {diffs} changed "
                               f"(the learning-rate schedule and data order are fixed at the start); start a new run "
                               f"with another --out instead")


def _two_betas(value) -> list[float]:
    """Accepts [0.9, 0.95] or the older "0.9,0.95" (config.yaml of runs made before betas became a list)."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        betas = [float(x) for x in items]
    except (TypeError, ValueError):
        betas = []
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ValueError(f"betas must be two numbers in [0, 1) like 0.9 0.95, got {value!r}")
    return betas
