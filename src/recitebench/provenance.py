"""What every result file records: package versions, git commit, hardware, time."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from . import __version__

_PACKAGES = ("torch", "transformers", "tokenizers", "peft", "datasets", "numpy", "rapidfuzz", "sacrebleu")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"recitebench": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The commit of the recitebench checkout (None when installed from a wheel).

    RECITEBENCH_COMMIT names it where the tree was copied without its history (a GPU node fed a working tree):
    there `git` would report a stale or foreign commit."""
    if os.environ.get("RECITEBENCH_COMMIT"):
        return os.environ["RECITEBENCH_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def hardware() -> dict:
    info: dict = {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            info["cuda"] = torch.version.cuda
    except ImportError:  # provenance must never be the reason a run fails
        pass
    return info


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def provenance(*, timestamp: bool = True) -> dict:
    """Versions, git commit and hardware; `timestamp=False` leaves out the wall-clock time (files whose bytes must
    not depend on when they were made, such as a frozen dataset's manifest)."""
    out = {"versions": package_versions(), "git_commit": git_commit(), "hardware": hardware()}
    return {**out, "created_at": now_iso()} if timestamp else out
