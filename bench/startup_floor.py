"""The floor under a `recitebench recite` process (issue #32's <= 6 s target): what clean processes that do only
part of its work cost on this machine, each timed from outside, repeated.

    python bench/startup_floor.py --run RUN [--repeats 3] [--device cuda] --json OUT.json

Each step is a fresh `python3 -c ...` process doing everything the step before it did and one thing more:
the interpreter, `import torch`, the device's context, the run's weights read onto the device (safetensors, no model
class), Transformers' model classes imported (what `AutoModelForCausalLM` pulls), `recitebench --help`, and the
whole `recitebench recite --run RUN`. The weights step is a floor no recitation can go below on this software: a
process that reads the trained weights onto the GPU and does nothing with them. If it alone costs more than the target
less the measured recitation work, the target is ruled out here, whatever recitebench does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")


def steps(run: Path, device: str) -> list[tuple[str, list[str]]]:
    """(name, argv) per step, each a clean process doing the previous step's work and one thing more."""
    weights = sorted(str(p) for p in (run / "model").glob("*.safetensors"))
    if not weights:
        raise SystemExit(f"{run}/model: no *.safetensors (give a finished `recitebench train` run)")
    sync = "torch.cuda.synchronize()" if device == "cuda" else "pass"
    ctx = f"import torch; torch.zeros(1, device={device!r}); {sync}"
    load = (f"{ctx}; from safetensors.torch import load_file; "
            f"[load_file(f, device={device!r}) for f in {weights!r}]; {sync}")
    py = [sys.executable]
    return [
        ("interpreter", [*py, "-c", "pass"]),
        ("import_torch", [*py, "-c", "import torch"]),
        ("device_context", [*py, "-c", ctx]),
        ("weights_on_device", [*py, "-c", load]),
        ("transformers_model_classes", [*py, "-c", f"{ctx}; from transformers.models.qwen2 import modeling_qwen2"]),
        ("recitebench_help", [*py, "-m", "recitebench", "--help"]),
        ("recite_process", [*py, "-m", "recitebench", "recite", "--run", str(run), "--out", "{tmp}"]),
    ]


def timed(argv: list[str], env: dict) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        argv = [a.replace("{tmp}", str(Path(tmp) / "recite")) for a in argv]
        t = time.perf_counter()
        done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t
    if done.returncode:
        raise SystemExit(f"{' '.join(argv[:4])}...: exit {done.returncode}: {done.stderr.strip()[-400:]}")
    return wall


def machine() -> dict:
    """Where it ran, read without importing torch (the steps time that)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "transformers", "safetensors", "liger-kernel"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                         text=True).stdout.strip() if shutil.which("nvidia-smi") else ""
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "gpu": gpu, "versions": found}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, type=Path, help="a finished `recitebench train` run folder")
    ap.add_argument("--repeats", type=int, default=3, help="timings per step (the first is the coldest)")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--skip", nargs="*", default=[], help="steps to leave out (e.g. recite_process)")
    ap.add_argument("--json", required=True, type=Path)
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)}
    out: dict = {"run": str(args.run), "device": args.device, "repeats": args.repeats, "steps": {},
                 "command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "commit": os.environ.get("RECITEBENCH_COMMIT", ""), **machine()}
    for name, argv in steps(args.run, args.device):
        if name in args.skip:
            continue
        walls = [timed(argv, env) for _ in range(args.repeats)]
        out["steps"][name] = {"first_s": round(walls[0], 3), "median_s": round(statistics.median(walls), 3),
                              "min_s": round(min(walls), 3), "all_s": [round(w, 3) for w in walls]}
        print(f"{name:28s} first {walls[0]:6.2f} s  median {statistics.median(walls):6.2f} s", flush=True)
    args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
