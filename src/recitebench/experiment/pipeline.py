"""One run of a grid through the stages: train it (fresh, started again, or resumed) where needed, then recite it.
Every executor's worker calls `do_run` under the run's lock."""

from __future__ import annotations

from ..config import build, to_dict
from ..recall.config import ExtractConfig, LensConfig, ReciteConfig
from ..recall.recite import recite
from ..train.config import TrainConfig
from ..train.loop import train
from .spec import PlannedRun


def do_run(r: PlannedRun, log, train_fn=None) -> None:
    """Bring one run to `done`: train (fresh, restarted or resumed) where needed, then recite (and probe, with the
    spec's `extract:`)."""
    status = r.run.status()
    if r.finished():
        return
    if status == "done" and r.stop_after != "train":  # recited: only probes are missing
        _probes(r, log)
        return
    if status == "partial":  # died before its first checkpoint: nothing to resume, start it again
        r.run.clear()
    if status in ("todo", "partial", "interrupted"):
        tcfg = r.train_cfg
        if status == "interrupted":
            tcfg = build(TrainConfig, {**to_dict(tcfg), "resume": True})
        (train_fn or train)(tcfg, r.model_cfg, log=log)
    if r.stop_after == "train":
        return
    recite(build(ReciteConfig, {**to_dict(r.recite_cfg), "run": str(r.path)}), None, log=log)
    _probes(r, log)


def _probes(r: PlannedRun, log) -> None:
    """The spec's probes this run has not written yet, on the run's own model and poems."""
    missing = r.probes_missing()
    if "extract" in missing:
        from ..recall.extract import extract

        extract(build(ExtractConfig, {**to_dict(r.extract_cfg), "run": str(r.path)}), None, log=log)
    if "lens" in missing:
        from ..recall.lens import lens

        lens(build(LensConfig, {**to_dict(r.lens_cfg), "run": str(r.path)}), None, log=log)
