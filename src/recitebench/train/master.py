"""bf16 weights trained through fp32 master copies (`--precision bf16-master`).

With autocast (`bf16-mixed`) the weights stay fp32: every step casts each weight to bf16 again,
and the residual stream and its saved activations are fp32. Here the model itself is bf16, so
the forward and backward passes run in bf16 end to end (no casts, about half the activation
memory), while the optimizer updates fp32 copies with fp32 state: an update far below bf16's
resolution still accumulates, which is what lets a model memorise to the last token.
"""

from __future__ import annotations

import torch


class MasterWeights:
    """fp32 masters of bf16 parameters: gradients flow model -> master, updates master -> model."""

    def __init__(self, params: list[torch.nn.Parameter]):
        self.params = params
        self.master = [torch.nn.Parameter(p.detach().float().clone()) for p in params]
        for m in self.master:
            m.grad = torch.zeros_like(m)
        self.master_grads = [m.grad for m in self.master]

    @torch.no_grad()
    def zero_grad(self) -> None:
        torch._foreach_zero_(self.master_grads)

    @torch.no_grad()
    def accumulate(self) -> None:
        """Add the model's bf16 gradients into the fp32 master gradients (micro-batches sum in fp32)."""
        pairs = [(m, p.grad) for m, p in zip(self.master_grads, self.params) if p.grad is not None]
        if pairs:
            torch._foreach_add_([m for m, _ in pairs], [g for _, g in pairs])  # promotes bf16 -> fp32 per tensor
            torch._foreach_zero_([g for _, g in pairs])

    @torch.no_grad()
    def publish(self) -> None:
        """Round the updated masters into the model's bf16 weights."""
        torch._foreach_copy_(self.params, self.master)

    def state_dict(self) -> list[torch.Tensor]:
        return [m.detach().cpu() for m in self.master]

    @torch.no_grad()
    def load_state_dict(self, tensors: list[torch.Tensor]) -> None:
        torch._foreach_copy_(self.master, [t.to(m.device) for t, m in zip(tensors, self.master)])
        self.publish()
