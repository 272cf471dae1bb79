"""The training loss: cross-entropy of the head at the scored positions only, in chunks."""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from .forward import unwrap
from .kernels import cross_entropy_sum


def head_loss_sum(model, h: torch.Tensor, y: torch.Tensor, chunk: int = 8192, kernels: str = "torch") -> torch.Tensor:
    """Summed cross-entropy of the head over hidden states h [N, H] against y [N] (-100 ignored).

    Computed in chunks, so a 152k vocabulary never holds [N, V] fp32 logits for a whole batch
    (which is what capped the batch size). With PyTorch kernels each chunk is recomputed in
    backward; with Liger's cross-entropy the gradient is made in the forward pass (in place, in
    the bf16 logits buffer), so nothing is recomputed.
    """
    head = unwrap(model).get_output_embeddings()
    total = h.new_zeros((), dtype=torch.float32)
    for i in range(0, h.shape[0], chunk):
        if kernels == "liger":
            total = total + cross_entropy_sum(head(h[i : i + chunk]), y[i : i + chunk], kernels)
        else:
            total = total + checkpoint(_chunk_loss, head, h[i : i + chunk], y[i : i + chunk], use_reentrant=False)
    return total


def _chunk_loss(head, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(head(h).float(), y, ignore_index=-100, reduction="sum")
