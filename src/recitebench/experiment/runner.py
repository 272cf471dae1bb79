"""`recitebench run`: do what a spec's grid still needs, in order — datasets, then each run's training and
recitation — skipping finished runs and resuming interrupted ones."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..config import build, to_dict
from ..data.build import build_dataset
from ..data.config import DataConfig
from ..io import read_json
from ..recall.config import ReciteConfig
from ..recall.recite import recite
from ..train.config import TrainConfig
from ..train.loop import train
from .index import update_index
from .spec import PlannedRun, Spec


def run_spec(spec: Spec, *, dry_run: bool = False, only: str | None = None, log=print) -> list[PlannedRun]:
    runs = [r for r in spec.runs if not only or only in r.name]
    log(f"experiment {spec.name}: {len(runs)} runs in {spec.runs_dir}")
    for r in runs:
        log(f"  {r.name:40s} {r.run.status():12s} model={r.model_cfg.model} epochs={r.train_cfg.epochs}")
    if dry_run:
        return runs
    spec.runs_dir.mkdir(parents=True, exist_ok=True)
    for dname in sorted({r.dataset for r in runs}):
        ddir = spec.data_dir(dname)
        if not dataset_current(ddir, spec.datasets[dname]):
            log(f"building dataset {dname}")
            build_dataset(spec.datasets[dname], ddir, overwrite=True)  # the spec changed: its dataset follows
    for i, r in enumerate(runs, 1):
        log(f"[{i}/{len(runs)}] {r.name}: {r.run.status()}")
        do_run(r, log)
        update_index(spec.runs_dir, r.run)
    return runs


def do_run(r: PlannedRun, log) -> None:
    """Bring one run to `done`: train (fresh, restarted or resumed) where needed, then recite."""
    status = r.run.status()
    if status == "done":
        return
    if status == "partial":  # died before its first checkpoint: nothing to resume, start it again
        shutil.rmtree(r.path)
    if status in ("todo", "partial", "interrupted"):
        tcfg = r.train_cfg
        if status == "interrupted":
            tcfg = build(TrainConfig, {**to_dict(tcfg), "resume": True})
        train(tcfg, r.model_cfg, log=log)
    recite(build(ReciteConfig, {**to_dict(r.recite_cfg), "run": str(r.path)}), None, log=log)


def dataset_current(ddir: Path, cfg: DataConfig) -> bool:
    """A dataset folder is reused only if it was built from exactly this config."""
    man = ddir / "manifest.json"
    if not man.is_file():
        return False
    try:
        return read_json(man).get("config") == to_dict(cfg)
    except ValueError:  # a broken manifest: rebuild
        return False
