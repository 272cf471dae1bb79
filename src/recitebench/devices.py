"""Device and precision choices shared by training and recitation."""

from __future__ import annotations

import torch

from .errors import RecitebenchError


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RecitebenchError(f"--device {name}: no CUDA GPU is visible")
    return dev


def resolve_precision(precision: str, device: torch.device, fsdp: bool = False) -> str:
    """The training precision `auto` stands for: bf16-master on a GPU (bf16-mixed under FSDP2, which shards the
    parameters itself and keeps fp32 weights under autocast), fp32 on a CPU."""
    if precision != "auto":
        return precision
    return ("bf16-mixed" if fsdp else "bf16-master") if device.type == "cuda" else "fp32"


def train_precision(
    precision: str, device: torch.device, fsdp: bool = False
) -> tuple[torch.dtype, torch.dtype | None, bool]:
    """(weight dtype, autocast dtype, fp32 master weights?) for training."""
    precision = resolve_precision(precision, device, fsdp)
    if precision == "fp32":
        return torch.float32, None, False
    if precision == "bf16-mixed":
        return torch.float32, torch.bfloat16, False
    return torch.bfloat16, None, precision == "bf16-master"


def eval_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float32


def default_margin(dtype: torch.dtype) -> float:
    # A batched forward and an incremental decode differ by rounding: ~1e-6 relative in fp32,
    # up to a few tenths of a logit in bf16.
    return 1e-4 if dtype == torch.float32 else 0.5
