"""How long `recitebench train`'s setup takes before epoch 1 (issue #15's protocol target), phase by phase.

    python bench/build_time.py --data DATASET_DIR [--model qwen2-0.5b-instruct] [--device cpu|cuda] [--json OUT.json]

Times the same calls `train()` makes: the stage's imports, reading the frozen dataset, building the model from scratch
(`load_model`: the config, random initialisation on the host in fp32) and the copy to the device, then encoding the
poems. Runs on the CPU machine too, where the build is the part that does not depend on a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a frozen dataset folder (recitebench data build --out)")
    ap.add_argument("--model", default="qwen2-0.5b-instruct")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="write the phases here too")
    args = ap.parse_args()
    start = time.perf_counter()
    import torch

    from recitebench.data.frozen import load_frozen
    from recitebench.models.config import ModelConfig
    from recitebench.models.formatting import encode_many
    from recitebench.models.load import load_model
    from recitebench.train.progress import Laps  # train's own phase clock (it waits for the GPU at each lap)

    laps = Laps(torch.device(args.device), start)
    laps.lap("imports")
    ds = load_frozen(args.data)
    laps.lap("data")
    torch.manual_seed(0)
    mcfg = ModelConfig(model=args.model, init="scratch")
    model, tok, info = load_model(mcfg, corpus=None, dtype=torch.float32)
    laps.lap("model_build")
    model.to(args.device)
    laps.lap("to_device")
    encode_many(tok, ds.poems, mcfg.template)
    laps.lap("encode")
    out = {"model": args.model, "parameters": info.get("parameters"), "device": args.device,
           "cpus": torch.get_num_threads(), "phases_s": laps.rounded()}
    print(json.dumps(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
