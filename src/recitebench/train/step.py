"""One optimizer step: forward and backward over the micro-batches, clipping, the AdamW update.

`make_step` returns the same callable interface for the eager step and the CUDA-graph-captured one,
so the loop never asks which it has.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.forward import hidden_states, logits_at, split_supported
from ..models.loss import head_loss_sum
from .config import TrainConfig
from .graphs import GraphedSteps
from .optim import Optimizer

Micro = list[tuple[torch.Tensor, ...]]  # (input_ids, labels[, position_ids when packed]) per micro-batch, on the CPU


class ScoredLM(torch.nn.Module):
    """Summed cross-entropy over the poem tokens only; the module DDP and FSDP wrap."""

    def __init__(self, model, chunk: int = 8192, kernels: str = "torch"):
        super().__init__()
        self.model = model
        self.chunk = chunk
        self.kernels = kernels

    def forward(
        self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, rows=None, cols=None, position_ids=None
    ) -> torch.Tensor:
        if labels is None:  # logits at (rows, cols): the recall check, routed through the FSDP root
            return logits_at(self.model, input_ids, rows, cols)
        rows, cols = (labels != -100).nonzero(as_tuple=True)
        y = labels[rows, cols]
        if not split_supported(self.model):
            logits = logits_at(self.model, input_ids, rows, cols, position_ids)
            return F.cross_entropy(logits.float(), y, reduction="sum")
        h = hidden_states(self.model, input_ids, position_ids)[rows, cols]
        return head_loss_sum(self.model, h, y, self.chunk, self.kernels)


class EagerStep:
    """The step as plain PyTorch calls; gradients of the micro-batches add up before one update."""

    def __init__(self, scored, opt: Optimizer, grad_clip: float, device: torch.device, autocast_dtype):
        self.scored, self.opt, self.grad_clip = scored, opt, grad_clip
        self.device, self.autocast_dtype = device, autocast_dtype

    def __call__(self, micro: Micro, n_targets: int) -> torch.Tensor:
        total = torch.zeros((), device=self.device, dtype=torch.float64)
        master = self.opt.master
        for x, y, *packed in micro:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            pos = packed[0].to(self.device, non_blocking=True) if packed else None
            with torch.autocast(
                device_type=self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
            ):
                loss = self.scored(x, y, position_ids=pos)
            (loss / n_targets).backward()
            total += loss.detach()
            if master is not None:  # micro-batch gradients sum in fp32
                master.accumulate()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.opt.stepped, self.grad_clip)
        self.opt.optim.step()
        if master is not None:
            master.publish()
            master.zero_grad()
        else:
            self.opt.optim.zero_grad(set_to_none=True)
        return total


class CapturedStep:
    """The whole step replayed as one CUDA graph per padded batch shape (`--cuda-graphs`, one micro-batch)."""

    def __init__(self, graphed: GraphedSteps):
        self.graphed = graphed

    @property
    def stats(self) -> dict:
        return dict(self.graphed.stats)

    def __call__(self, micro: Micro, n_targets: int) -> torch.Tensor:
        return self.graphed(micro[0][0], micro[0][1], n_targets)


def make_step(
    model, scored, opt: Optimizer, tcfg: TrainConfig, device: torch.device, autocast_dtype, pad_id: int
) -> EagerStep | CapturedStep:
    if not tcfg.cuda_graphs:
        return EagerStep(scored, opt, tcfg.grad_clip, device, autocast_dtype)
    return CapturedStep(
        GraphedSteps(
            model,
            opt.optim,
            opt.params,
            master=opt.master,
            grad_clip=tcfg.grad_clip,
            autocast_dtype=autocast_dtype,
            device=device,
            pad_id=pad_id,
        )
    )
