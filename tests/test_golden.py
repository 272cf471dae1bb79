"""Same seed, same bytes: a refactor must not move the dataset, the losses, the weights or the verdicts.

tests/golden/tiny_cn20.json was recorded with this test's procedure (the same commands and hashes) on the code
before the architecture change (commit ffc86a5), and again on d8f416b (the same code's numbers on another CPU stack,
2026-11-24): every later version must reproduce it exactly on the CPU stack it names (`cpu_stack`). On another stack
(a different CPU, thread count or torch build sums floats in another order: the losses moved by up to 2.6e-5 between two
machines) the dataset, recall curve, verdicts and recitations must still be identical and the losses equal to 1e-4.
REGENERATE=1 rewrites it, for an intended change only.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from conftest import read_jsonl, run_cli

GOLDEN = Path(__file__).parent / "golden" / "tiny_cn20.json"
RUNS = {"rows": ["--batch-size", "8"], "tokens": ["--batch-tokens", "300"]}


def weights_sha256(run: Path) -> str:
    from safetensors.torch import load_file

    sd = load_file(str(run / "model" / "model.safetensors"))
    h = hashlib.sha256()
    for k in sorted(sd):
        h.update(k.encode())
        h.update(sd[k].float().numpy().tobytes())
    return h.hexdigest()


def cpu_stack() -> str:
    import platform

    import torch

    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return (f"{platform.machine()} {model} {torch.backends.cpu.get_cpu_capability()} threads={torch.get_num_threads()} "
            f"torch={torch.__version__}")


def measure(tmp: Path, data: Path) -> dict:
    """`data` is the session's cn20 set (data build --preset cn-poems --n 20 --max-chars 64 --seed 0)."""
    res: dict = {"poems_sha256": hashlib.sha256((data / "poems.jsonl").read_bytes()).hexdigest(),
                 "cpu_stack": cpu_stack()}
    for name, extra in RUNS.items():
        run = tmp / name
        assert run_cli("train", "--data", data, "--model", "tiny", "--epochs", "14", "--lr", "3e-3", "--warmup-ratio",
                       "0.2", "--recall-every", "4", "--no-progress", "--out", run, *extra) == 0
        assert run_cli("recite", "--run", run) == 0
        metrics = read_jsonl(run / "metrics.jsonl")
        samples = read_jsonl(run / "recite" / "samples.jsonl")
        generated = json.dumps([s["prediction"] for s in samples if s["decided_by"] != "certified"], ensure_ascii=False)
        res[name] = {"losses": [m["loss"] for m in metrics], "recall": [m.get("recall") for m in metrics],
                     "weights": weights_sha256(run), "verdicts": [s["exact"] for s in samples],
                     "predictions_sha256": hashlib.sha256(generated.encode()).hexdigest(),
                     "n_certified": sum(s["decided_by"] == "certified" for s in samples)}
    return res


def test_same_seed_same_bytes_as_before_the_refactor(tmp_path, small_cn):
    got = measure(tmp_path, small_cn)
    if os.environ.get("REGENERATE"):
        GOLDEN.write_text(json.dumps(got, indent=1) + "\n", encoding="utf-8")
        pytest.skip("golden values regenerated")
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert got["poems_sha256"] == want["poems_sha256"]
    same_stack = got["cpu_stack"] == want.get("cpu_stack")
    for name in RUNS:
        if same_stack:
            assert got[name] == want[name], name
            continue
        for key in ("recall", "verdicts", "predictions_sha256", "n_certified"):
            assert got[name][key] == want[name][key], (name, key)
        assert got[name]["losses"] == pytest.approx(want[name]["losses"], rel=1e-4), name
