"""TrainConfig: the memorisation run (optimiser, schedule, batching, curve, checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import opt


@dataclass
class TrainConfig:
    """How the model memorises the dataset."""

    data: str | None = opt(None, "frozen dataset folder (from `recitebench data build`)", example="data/cn256")
    out: str = opt("runs/train", "run folder: config.yaml, metrics.jsonl, checkpoint, model/")
    epochs: int = opt(100, "passes over the dataset (the paper: 100)")
    lr: float | None = opt(None, "peak learning rate (default: 2e-5 full fine-tune, 2e-4 LoRA, 1e-3 from scratch)")
    schedule: str = opt("constant", "after warmup: constant, or cosine decay to min_lr_ratio x lr", choices=("constant", "cosine"))
    warmup_ratio: float = opt(0.03, "share of all optimizer steps spent warming up linearly")
    min_lr_ratio: float = opt(0.1, "cosine floor as a share of the peak lr")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    betas: str = opt("0.9,0.95", "AdamW betas")
    grad_clip: float = opt(1.0, "clip the gradient norm to this (0 = off)")
    batch_size: int = opt(16, "sequences per optimizer step (per GPU)")
    batch_tokens: int | None = opt(None, "instead of batch_size: padded tokens per step (length-bucketed batches)")
    grad_accum: int = opt(1, "micro-batches per optimizer step")
    precision: str = opt("auto", "auto: bf16-master on GPU (bf16-mixed under --fsdp), fp32 on CPU; bf16-mixed: fp32 weights, bf16 autocast; bf16-master: bf16 "
                         "weights and activations, fp32 master weights and optimizer state; bf16: bf16 weights, no master",
                         choices=("auto", "fp32", "bf16-mixed", "bf16-master", "bf16"))
    seed: int = opt(0, "seed of data order and dropout (same seed = same run)")
    recall_every: int = opt(10, "every k epochs, log the exact recall of the training poems (0 = only at the end)")
    checkpoint_every: int = opt(10, "every k epochs, save a resumable checkpoint (0 = never)")
    stop_when_memorised: bool = opt(False, "stop early once every poem is recalled exactly")
    resume: bool = opt(False, "continue the run in --out from its last checkpoint (same data order, optimizer, RNG)")
    lora: bool = opt(False, "train LoRA adapters (peft) instead of all weights; the merged model is saved")
    lora_r: int = opt(16, "LoRA rank")
    lora_alpha: int = opt(32, "LoRA alpha")
    kernels: str = opt("auto", "GPU kernels: liger = Liger's fused Triton RMSNorm, SwiGLU, RoPE and cross-entropy (pip install "
                       "'recitebench[gpu]'); torch = plain PyTorch; auto = liger on a GPU when installed, else torch",
                       choices=("auto", "liger", "torch"))
    compile: bool = opt(False, "torch.compile the model")
    cuda_graphs: bool = opt(False, "GPU: capture each padded batch shape's whole training step as a CUDA graph and replay it (removes CPU launch overhead)")
    fsdp: bool = opt(False, "under torchrun: shard parameters, gradients and optimizer state with FSDP2 (for models that do not fit one GPU)")
    gradient_checkpointing: bool = opt(False, "recompute activations in the backward pass (less memory, ~30% slower)")
    tensorboard: bool = opt(False, "also log to OUT/tensorboard")
    device: str = opt("auto", "auto, cpu, cuda or cuda:N")
    recall_batch_size: int = opt(256, "sequences per batch of the recall check (and at most 16,384 padded tokens)")
    progress: bool = opt(True, "show a progress bar")

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise ValueError(f"epochs must be positive, got {self.epochs}")
        if self.batch_size <= 0 or self.grad_accum <= 0:
            raise ValueError("batch_size and grad_accum must be positive")
        if self.batch_tokens is not None and self.batch_tokens <= 0:
            raise ValueError("batch_tokens must be positive")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError("warmup_ratio must be in [0, 1)")
        try:
            b = [float(x) for x in self.betas.split(",")]
            assert len(b) == 2
        except (ValueError, AssertionError):
            raise ValueError(f"betas must be two numbers like 0.9,0.95, got {self.betas!r}") from None
        if self.cuda_graphs and (self.grad_accum > 1 or self.compile):
            raise ValueError("cuda_graphs works with grad_accum 1 and without compile")
        if self.fsdp and self.precision == "bf16-master":
            raise ValueError("fsdp works with precision fp32, bf16-mixed or bf16 (not bf16-master)")
        if self.recall_every < 0 or self.checkpoint_every < 0:
            raise ValueError("recall_every and checkpoint_every must be >= 0")
