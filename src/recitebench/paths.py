"""Where shared assets live: neutral ground, so no stage imports another just for a path."""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path:
    """../shared beside the checkout (or the working directory), unless RECITEBENCH_SHARED says otherwise."""
    env = os.environ.get("RECITEBENCH_SHARED")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    candidates = [
        Path.cwd() / "shared",
        Path.cwd().parent / "shared",
        here.parents[3] / "shared",
        here.parents[2] / "shared",
    ]
    for c in candidates:
        if (c / "data").is_dir() or (c / "models").is_dir():
            return c
    return Path.cwd().parent / "shared"
