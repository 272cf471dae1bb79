"""Resumable checkpoints: weights, optimizer, schedule, RNG and progress in one atomic file."""

from __future__ import annotations

import errno
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from ..errors import RecitebenchError
from ..rundir import RunDir
from .parallel import full_states


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


def maybe_save(
    run: RunDir, *, epoch: int, every: int, last: int, is_main: bool, fsdp: bool, model, opt, progress: dict
) -> None:
    """Every `every` epochs (not after the last): a resumable checkpoint. Every rank calls this (under FSDP
    gathering the full state is a collective); the main process writes."""
    if not every or epoch % every or epoch >= last:
        return
    model_sd, optim_sd = full_states(model, opt.optim, fsdp)
    if not is_main:
        return
    master = {"master": opt.master.state_dict()} if opt.master is not None else {}
    save(
        run.checkpoint,
        {
            **progress,
            "model": model_sd,
            "optim": optim_sd,
            "sched": opt.sched.state_dict(),
            "rng": rng_state(),
            **master,
        },
    )


def save(path: Path, payload: dict) -> None:
    """Write the checkpoint atomically: on any failure (a full disk) the previous one stays valid."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        # torch.save reports a full disk as "enforce fail ... unexpected pos": ask the file system what happened
        full = getattr(e, "errno", None) == errno.ENOSPC or shutil.disk_usage(path.parent).free < 1 << 20
        reason = "No space left on device" if full else (str(e).splitlines() or [type(e).__name__])[0]
        tmp.unlink(missing_ok=True)
        kept = (
            f"the previous checkpoint (epoch {peek_epoch(path)}) is intact"
            if path.exists()
            else "no earlier checkpoint exists"
        )
        raise RecitebenchError(f"{path}: saving the checkpoint failed ({reason}); {kept}") from None


def load(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise RecitebenchError(f"{path}: no checkpoint to resume from") from None
    except Exception as e:  # noqa: BLE001 - whatever unpickling raises, the file is not a usable checkpoint
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RecitebenchError(f"{path}: checkpoint unreadable ({msg}); delete it to start the run again") from None


def peek_epoch(path: Path) -> int | str:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)["epoch"]
    except Exception:  # only used inside an error message
        return "?"
