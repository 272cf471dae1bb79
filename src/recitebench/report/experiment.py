"""Experiments as data: a YAML spec expands to a grid of (dataset x model) runs.

    name: demo
    runs_dir: runs/demo
    datasets:            # name -> DataConfig fields
      cn: {preset: cn-poems, source: shared:cn_poems, n: 24, max_chars: 64}
    models:              # name -> ModelConfig fields, plus optional per-model `train:` overrides
      tiny: {model: tiny, train: {lr: 3.0e-3}}
    train: {epochs: 60}  # TrainConfig fields shared by every run
    recite: {}           # ReciteConfig fields
    grid: [[cn, tiny]]   # optional: the pairs to run (default: every dataset x every model)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..config import build, load_yaml, to_dict
from ..data.config import DataConfig
from ..errors import RecitebenchError
from ..models.config import ModelConfig
from ..recall.config import ReciteConfig
from ..train.config import TrainConfig

SPEC_KEYS = {"name", "description", "runs_dir", "datasets", "models", "train", "recite", "grid"}


@dataclass
class PlannedRun:
    name: str  # "<dataset>__<model>"
    dataset: str
    model_name: str
    data_cfg: DataConfig
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    recite_cfg: ReciteConfig
    path: Path

    def status(self) -> str:
        if (self.path / "recite" / "results.json").is_file():
            return "done"
        if (self.path / "model" / "config.json").is_file():
            return "trained"
        if (self.path / "checkpoint.pt").is_file():
            return "interrupted"
        if self.path.exists():
            return "partial"
        return "todo"


@dataclass
class Spec:
    path: str
    name: str
    runs_dir: Path
    datasets: dict[str, DataConfig]
    runs: list[PlannedRun]
    description: str = ""

    def data_dir(self, dataset: str) -> Path:
        return self.runs_dir / "data" / dataset


def default_spec_path() -> Path:
    """configs/demo.yaml of the checkout, or the copy shipped inside the package."""
    here = Path(__file__).resolve()
    for cand in (Path.cwd() / "configs" / "demo.yaml", here.parents[3] / "configs" / "demo.yaml"):
        if cand.is_file():
            return cand
    raise RecitebenchError("no spec given and configs/demo.yaml not found; pass a spec file")


def load_spec(path: str | Path, runs_dir: str | None = None) -> Spec:
    path = Path(path)
    raw = load_yaml(path)
    unknown = sorted(set(raw) - SPEC_KEYS)
    if unknown:
        raise RecitebenchError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(SPEC_KEYS))})")
    for key in ("datasets", "models"):
        if not isinstance(raw.get(key), dict) or not raw[key]:
            raise RecitebenchError(f"{path}: '{key}' must be a non-empty mapping of name -> settings")
    name = raw.get("name") or path.stem
    rdir = Path(runs_dir or raw.get("runs_dir") or f"runs/{name}")
    datasets = {}
    for dname, dvals in raw["datasets"].items():
        datasets[dname] = build(DataConfig, dvals or {}, where=f"{path}: datasets.{dname}")
    train_base = raw.get("train") or {}
    recite_cfg = build(ReciteConfig, raw.get("recite") or {}, where=f"{path}: recite")
    models = {}
    for mname, mvals in raw["models"].items():
        mvals = dict(mvals or {})
        overrides = mvals.pop("train", {}) or {}
        mcfg = build(ModelConfig, mvals, where=f"{path}: models.{mname}")
        tvals = {**train_base, **overrides}
        for forbidden in ("data", "out", "resume"):
            if forbidden in tvals:
                raise RecitebenchError(f"{path}: train.{forbidden} is set by the experiment runner; remove it")
        build(TrainConfig, tvals, where=f"{path}: models.{mname}.train")  # validate now, before anything runs
        models[mname] = (mcfg, tvals)
    grid = raw.get("grid") or [[d, m] for d in datasets for m in models]
    runs = []
    for pair in grid:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise RecitebenchError(f"{path}: grid entries must be [dataset, model] pairs, got {pair!r}")
        d, m = pair
        if d not in datasets:
            raise RecitebenchError(f"{path}: grid names unknown dataset {d!r}")
        if m not in models:
            raise RecitebenchError(f"{path}: grid names unknown model {m!r}")
        run_path = rdir / f"{d}__{m}"
        mcfg, tvals = models[m]
        tcfg = build(TrainConfig, {**tvals, "data": str(rdir / "data" / d), "out": str(run_path)},
                     where=f"{path}: models.{m}.train")
        runs.append(PlannedRun(f"{d}__{m}", d, m, datasets[d], mcfg, tcfg, recite_cfg, run_path))
    return Spec(str(path), name, rdir, datasets, runs, raw.get("description", ""))


def run_spec(spec: Spec, *, dry_run: bool = False, only: str | None = None, log=print) -> list[PlannedRun]:
    from ..data.build import build_dataset
    from ..recall.recite import recite
    from ..train.loop import train
    from .index import update_index

    runs = [r for r in spec.runs if not only or only in r.name]
    log(f"experiment {spec.name}: {len(runs)} runs in {spec.runs_dir}")
    for r in runs:
        log(f"  {r.name:40s} {r.status():12s} model={r.model_cfg.model} epochs={r.train_cfg.epochs}")
    if dry_run:
        return runs
    spec.runs_dir.mkdir(parents=True, exist_ok=True)
    for dname in sorted({r.dataset for r in runs}):
        ddir = spec.data_dir(dname)
        if _dataset_current(ddir, spec.datasets[dname]):
            continue
        log(f"building dataset {dname}")
        build_dataset(spec.datasets[dname], ddir)
    for i, r in enumerate(runs, 1):
        status = r.status()
        log(f"[{i}/{len(runs)}] {r.name}: {status}")
        if status == "done":
            update_index(spec.runs_dir, r.path)
            continue
        if status == "partial":
            # Died before its first checkpoint: nothing to resume, start it again.
            shutil.rmtree(r.path)
        if status in ("todo", "partial", "interrupted"):
            tcfg = r.train_cfg
            if status == "interrupted":
                tcfg = build(TrainConfig, {**to_dict(tcfg), "resume": True})
            train(tcfg, r.model_cfg, log=log)
        recite(build(ReciteConfig, {**to_dict(r.recite_cfg), "run": str(r.path)}), None, log=log)
        update_index(spec.runs_dir, r.path)
    return runs


def _dataset_current(ddir: Path, cfg: DataConfig) -> bool:
    """A dataset folder is reused only if it was built from exactly this config."""
    import json

    man = ddir / "manifest.json"
    if not man.is_file():
        return False
    try:
        return json.loads(man.read_text(encoding="utf-8")).get("config") == to_dict(cfg)
    except json.JSONDecodeError:
        return False
