"""AdamW and its learning-rate schedule (linear warmup, then constant or cosine)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import TrainConfig
from .master import MasterWeights


def default_lr(tcfg: TrainConfig, init: str) -> float:
    if tcfg.lr is not None:
        return tcfg.lr
    if init == "scratch":
        return 1e-3
    return 2e-4 if tcfg.lora else 2e-5


def lr_factor(step: int, total: int, tcfg: TrainConfig) -> float:
    warm = int(total * tcfg.warmup_ratio)
    if step < warm:
        return (step + 1) / warm
    if tcfg.schedule == "constant":
        return 1.0
    progress = (step - warm) / max(1, total - warm)
    return tcfg.min_lr_ratio + (1 - tcfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass
class Optimizer:
    """AdamW over the trainable parameters (or their fp32 masters), with its scheduler."""

    params: list[torch.nn.Parameter]  # the model's trainable parameters
    master: MasterWeights | None  # fp32 copies under bf16-master
    optim: torch.optim.AdamW
    sched: torch.optim.lr_scheduler.LambdaLR

    @property
    def stepped(self) -> list[torch.nn.Parameter]:
        """What AdamW updates and what gradient clipping sees."""
        return self.master.master if self.master is not None else self.params


def make_optimizer(
    model, tcfg: TrainConfig, lr: float, device: torch.device, total_steps: int, use_master: bool
) -> Optimizer:
    # The parameters as wrapped: FSDP2 has replaced them with sharded DTensors by now.
    params = [p for p in model.parameters() if p.requires_grad]
    master = MasterWeights(params) if use_master else None
    stepped = master.master if master else params
    # A captured optimizer step reads the learning rate from a device tensor the scheduler fills in place.
    optim = torch.optim.AdamW(
        stepped,
        lr=torch.tensor(lr, device=device) if tcfg.cuda_graphs else lr,
        betas=tuple(tcfg.betas),
        weight_decay=tcfg.weight_decay,
        fused=device.type == "cuda" and not tcfg.fsdp,
        capturable=tcfg.cuda_graphs,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: lr_factor(s, total_steps, tcfg))
    return Optimizer(params, master, optim, sched)
