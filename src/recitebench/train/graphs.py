"""Whole-step CUDA graphs: forward, backward, clipping and the AdamW update replayed as one launch.

On a GPU host with a slow CPU, a 0.5B model at batch 16 spends most of each step launching
thousands of small kernels from Python. Capturing the step once per padded batch shape and
replaying it removes that overhead. Shapes are padded (length to a multiple of 32, batch rows to
a multiple of 8; padded rows are all-ignore) so a few dozen graphs cover an epoch; the first
occurrence of each shape runs eagerly (it is a real training step) and warms the kernels up.
"""

from __future__ import annotations

import torch

from ..models.forward import head_loss_sum, hidden_states

LEN_MULTIPLE = 32
ROW_MULTIPLE = 8
MAX_GRAPHS = 64


def pad_batch(x: torch.Tensor, y: torch.Tensor, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    b, t = x.shape
    bp = -(-b // ROW_MULTIPLE) * ROW_MULTIPLE
    tp = -(-t // LEN_MULTIPLE) * LEN_MULTIPLE
    xp = torch.full((bp, tp), pad_id, dtype=x.dtype)
    yp = torch.full((bp, tp), -100, dtype=y.dtype)
    xp[:b, :t], yp[:b, :t] = x, y
    return xp, yp


def dense_loss(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Summed CE over every position (-100 ignored): no data-dependent shapes, so it can be captured."""
    h = hidden_states(model, x)
    return head_loss_sum(model, h.reshape(-1, h.shape[-1]), y.reshape(-1))


class GraphedSteps:
    """One captured training step per (rows, length) shape; replay copies the batch into static buffers."""

    def __init__(self, model, optim, params, *, grad_clip: float, autocast_dtype, device):
        self.model, self.optim, self.params = model, optim, params
        self.grad_clip, self.autocast_dtype, self.device = grad_clip, autocast_dtype, device
        self.graphs: dict[tuple[int, int], tuple] = {}
        self.seen: set[tuple[int, int]] = set()
        self.pool = torch.cuda.graph_pool_handle()
        self.inv_n = torch.zeros((), device=device)
        for p in params:  # gradients live outside every graph and are zeroed inside it
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self.grads = [p.grad for p in params]
        self.stats = {"eager": 0, "replayed": 0, "captured": 0}

    def _step_body(self, x, y):
        torch._foreach_zero_(self.grads)
        with torch.autocast("cuda", dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None, cache_enabled=False):
            loss = dense_loss(self.model, x, y)
        (loss * self.inv_n).backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=True)
        self.optim.step()
        return loss.detach()

    def __call__(self, x_cpu: torch.Tensor, y_cpu: torch.Tensor, n_targets: int) -> torch.Tensor:
        x_cpu, y_cpu = pad_batch(x_cpu, y_cpu, 0)
        key = tuple(x_cpu.shape)
        self.inv_n.fill_(1.0 / n_targets)
        if key in self.graphs:
            graph, sx, sy, sloss = self.graphs[key]
            sx.copy_(x_cpu, non_blocking=True)
            sy.copy_(y_cpu, non_blocking=True)
            graph.replay()
            self.stats["replayed"] += 1
            return sloss.clone()
        x, y = x_cpu.to(self.device), y_cpu.to(self.device)
        if key not in self.seen or len(self.graphs) >= MAX_GRAPHS:
            self.seen.add(key)
            self.stats["eager"] += 1
            return self._step_body(x, y)
        # Second sighting: capture this shape (capture records, it does not run), then replay it once.
        sx, sy = x.clone(), y.clone()
        torch.cuda.synchronize()
        # Blocks cached by eager steps are not usable by the graph pool: hand them back first,
        # or a large batch holds its activations twice.
        torch.cuda.empty_cache()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            sloss = self._step_body(sx, sy)
        self.graphs[key] = (graph, sx, sy, sloss)
        self.stats["captured"] += 1
        graph.replay()
        return sloss.clone()
