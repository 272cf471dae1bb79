"""Resumable checkpoints: weights, optimizer, schedule, RNG and progress in one atomic file."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from ..errors import RecitebenchError

NAME = "checkpoint.pt"


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(run: Path, payload: dict) -> None:
    """Write RUN/checkpoint.pt atomically: on any failure (a full disk) the previous one stays valid."""
    path = run / NAME
    tmp = run / f".{NAME}.tmp"
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        tmp.unlink(missing_ok=True)
        kept = f"the previous checkpoint (epoch {peek_epoch(path)}) is intact" if path.exists() else "no earlier checkpoint exists"
        raise RecitebenchError(f"{path}: saving the checkpoint failed ({e}); {kept}") from None


def load(run: Path) -> dict:
    path = run / NAME
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise RecitebenchError(f"{path}: no checkpoint to resume from") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise RecitebenchError(f"{path}: checkpoint unreadable ({e})") from None


def peek_epoch(path: Path) -> int | str:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)["epoch"]
    except Exception:  # only used inside an error message
        return "?"
