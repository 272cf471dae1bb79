"""Fused GPU kernels for training (`--kernels`): Liger's Triton RMSNorm, SwiGLU, RoPE and cross-entropy.

At a large batch the training step is GPU-bound, and a profile of the plain PyTorch step
(bench/profile_step.py) shows matrix products take only a third of the GPU time: the rest is
elementwise passes over memory — HF's RMSNorm alone is seven kernels with fp32 intermediates,
and the cross-entropy over a 152k vocabulary casts, normalises and differentiates [tokens, vocab]
logits in several fp32 passes. Liger (https://github.com/linkedin/Liger-Kernel) replaces each of
these with one fused kernel; its cross-entropy computes the gradient in the forward pass, in
place, so the head is not recomputed either.
"""

from __future__ import annotations

import torch

from ..errors import RecitebenchError
from .forward import unwrap


def _liger_fns():
    try:
        from liger_kernel.transformers.functional import liger_cross_entropy
        from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN
    except ImportError:
        return None
    return MODEL_TYPE_TO_APPLY_LIGER_FN, liger_cross_entropy


def apply_kernels(model, kernels: str, device: torch.device) -> str:
    """Patch the model's modules in place; returns the kernels in use: "liger" or "torch"."""
    if kernels == "torch" or (kernels == "auto" and device.type != "cuda"):
        return "torch"
    fns = _liger_fns()
    m = unwrap(model)
    model_type = m.config.model_type
    if kernels == "liger":
        if device.type != "cuda":
            raise RecitebenchError("--kernels liger needs a CUDA GPU (Triton kernels); use --kernels torch on the CPU")
        if fns is None:
            raise RecitebenchError("--kernels liger needs the liger-kernel package (pip install 'recitebench[gpu]')")
        if model_type not in fns[0]:
            raise RecitebenchError(
                f"--kernels liger: Liger has no kernels for model type {model_type!r}; use --kernels torch"
            )
    if fns is None or model_type not in fns[0]:
        return "torch"
    # The loss stays ours (head only at scored positions); Liger's model-level loss patches are off.
    fns[0][model_type](
        model=m, rope=True, rms_norm=True, swiglu=True, cross_entropy=False, fused_linear_cross_entropy=False
    )
    return "liger"


def cross_entropy_sum(logits: torch.Tensor, y: torch.Tensor, kernels: str) -> torch.Tensor:
    """Summed CE (-100 ignored), fp32 arithmetic either way."""
    if kernels == "liger":
        # One Triton pass computes the loss and writes the gradient into `logits` in place.
        return _liger_fns()[1](logits, y, ignore_index=-100, reduction="sum").float()
    return torch.nn.functional.cross_entropy(logits.float(), y, ignore_index=-100, reduction="sum")
