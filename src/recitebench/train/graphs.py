"""Whole-step CUDA graphs: forward, backward, clipping and the AdamW update replayed as one launch.

On a GPU host with a slow CPU, a 0.5B model spends most of each step launching thousands of small
kernels from Python. Capturing the step once per padded batch shape and replaying it removes that
overhead. Shapes are padded (length to a multiple of 8, rows to a multiple of 8, scored positions
to a multiple of 512; padding is never scored) so a handful of graphs cover a run. The very first
step runs eagerly (it creates the optimizer state and warms the libraries up); from then on each
new shape is captured on first sight and replayed. All graphs share one memory pool, so blocks one
capture frees are reused by the next. Meant for small batches, where launches dominate: at 16,384
tokens per step and above it ran out of memory on an 80 GB H100, where the eager step is GPU-bound anyway.
"""

from __future__ import annotations

import torch

from ..models.forward import hidden_states
from ..models.loss import head_loss_sum

LEN_MULTIPLE = 8
ROW_MULTIPLE = 8
TARGET_MULTIPLE = 512
MAX_GRAPHS = 64


def _up(n: int, k: int) -> int:
    return -(-n // k) * k


def pad_batch(
    x: torch.Tensor, y: torch.Tensor, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, flat indices of the scored positions, their labels, a shape key), all padded to fixed sizes.

    The head and loss run on the gathered scored positions only (the poem, not the prompt or the
    padding); the gather list is padded with position 0 and label -100, which scores nothing.
    """
    b, t = x.shape
    bp, tp = _up(b, ROW_MULTIPLE), _up(t, LEN_MULTIPLE)
    xp = torch.full((bp, tp), pad_id, dtype=x.dtype)
    xp[:b, :t] = x
    rows, cols = (y != -100).nonzero(as_tuple=True)
    n = len(rows)
    k = _up(max(n, 1), TARGET_MULTIPLE)
    idx = torch.zeros(k, dtype=torch.long)
    lab = torch.full((k,), -100, dtype=torch.long)
    idx[:n] = rows * tp + cols
    lab[:n] = y[rows, cols]
    return xp, idx, lab, (bp, tp, k)


def gathered_loss(model, x: torch.Tensor, idx: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
    """Summed CE at fixed-size gathered positions: no data-dependent shapes, so it can be captured."""
    h = hidden_states(model, x)
    return head_loss_sum(model, h.reshape(-1, h.shape[-1])[idx], lab)


class GraphedSteps:
    """One captured training step per padded shape; replay copies the batch into static buffers."""

    def __init__(self, model, optim, params, *, master=None, grad_clip: float, autocast_dtype, device, pad_id: int = 0):
        self.model, self.optim, self.params, self.master = model, optim, params, master
        self.grad_clip, self.autocast_dtype, self.device, self.pad_id = grad_clip, autocast_dtype, device, pad_id
        self.graphs: dict[tuple[int, int, int], tuple] = {}
        self.pool = torch.cuda.graph_pool_handle()
        self.inv_n = torch.zeros((), device=device)
        for p in params:  # gradients live outside every graph and are zeroed inside it
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self.grads = [p.grad for p in params]
        self.stats = {"eager": 0, "replayed": 0, "captured": 0}

    def _step_body(self, x, idx, lab):
        torch._foreach_zero_(self.grads)
        with torch.autocast(
            "cuda", dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None, cache_enabled=False
        ):
            loss = gathered_loss(self.model, x, idx, lab)
        (loss * self.inv_n).backward()
        if self.master is not None:
            self.master.zero_grad()
            self.master.accumulate()
        opt_params = self.master.master if self.master is not None else self.params
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(opt_params, self.grad_clip, foreach=True)
        self.optim.step()
        if self.master is not None:
            self.master.publish()
        return loss.detach()

    def __call__(self, x_cpu: torch.Tensor, y_cpu: torch.Tensor, n_targets: int) -> torch.Tensor:
        x_cpu, idx_cpu, lab_cpu, key = pad_batch(x_cpu, y_cpu, self.pad_id)
        self.inv_n.fill_(1.0 / n_targets)
        if key in self.graphs:
            graph, statics, sloss = self.graphs[key]
            for s, c in zip(statics, (x_cpu, idx_cpu, lab_cpu)):
                s.copy_(c, non_blocking=True)
            graph.replay()
            self.stats["replayed"] += 1
            return sloss.clone()
        statics = tuple(t.to(self.device) for t in (x_cpu, idx_cpu, lab_cpu))
        if self.stats["eager"] == 0 or len(self.graphs) >= MAX_GRAPHS:
            self.stats["eager"] += 1
            return self._step_body(*statics)
        if not self.graphs:
            # Blocks cached by the eager first step are not usable by the graph pool: hand them back,
            # or a large batch would hold its activations twice.
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):  # records the step, does not run it
            sloss = self._step_body(*statics)
        self.graphs[key] = (graph, statics, sloss)
        self.stats["captured"] += 1
        graph.replay()
        return sloss.clone()
