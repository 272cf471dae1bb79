"""Shared fixtures: small frozen datasets from ../shared and one tiny trained run per session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KILL = str(Path(__file__).resolve().parent / "kill_after_epoch.py")  # test-only fault injection (see its docstring)
SHARED = Path(os.environ.get("RECITEBENCH_SHARED", ROOT.parent / "shared"))
os.environ.setdefault("RECITEBENCH_SHARED", str(SHARED))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_cli(*args: str) -> int:
    from recitebench.cli import main

    return main([str(a) for a in args])


@pytest.fixture(scope="session")
def shared() -> Path:
    if not (SHARED / "data" / "cn_poems.jsonl.xz").is_file():
        pytest.fail(f"{SHARED}: the shared/ folder with data/ and models/ must sit beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def small_cn(tmp_path_factory, shared) -> Path:
    """20 short Chinese poems (prompt + poem <= 64 characters)."""
    out = tmp_path_factory.mktemp("data") / "cn20"
    assert run_cli("data", "build", "--preset", "cn-poems", "--source", shared / "data" / "cn_poems.jsonl.xz",
                   "--n", "20", "--max-chars", "64", "--seed", "0", "--out", out) == 0
    return out


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, small_cn) -> Path:
    """A tiny model that has memorised the 20 poems."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert run_cli("train", "--data", small_cn, "--model", "tiny", "--epochs", "60", "--lr", "3e-3", "--batch-size",
                   "8", "--recall-every", "10", "--no-progress", "--out", out) == 0
    return out


@pytest.fixture(scope="session")
def half_trained_run(tmp_path_factory, small_cn) -> Path:
    """A tiny model stopped mid-way: some poems recalled, some distorted (mixed verdicts)."""
    out = tmp_path_factory.mktemp("runs") / "tiny_half"
    assert run_cli("train", "--data", small_cn, "--model", "tiny", "--epochs", "14", "--lr", "3e-3", "--batch-size",
                   "8", "--warmup-ratio", "0.2", "--recall-every", "0", "--no-progress", "--out", out) == 0
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
