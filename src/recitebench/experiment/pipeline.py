"""One run of a grid through the stages: train it (fresh, started again, or resumed) where needed, then recite it.
Every executor's worker calls `do_run` under the run's lock."""

from __future__ import annotations

from ..config import build, to_dict
from ..errors import RecitebenchError
from ..models.config import ModelConfig
from ..recall.config import ExtractConfig, LensConfig, ReciteConfig
from ..recall.recite import recite
from ..train.config import TrainConfig
from ..train.loop import train
from .spec import PlannedRun


def do_run(r: PlannedRun, log, train_fn=None) -> None:
    """Bring one run to `done`: train (fresh, restarted or resumed) where needed, then recite (and probe, with the
    spec's `extract:`, `lens:`; phase B of `retention:` recites the first set with each snapshot)."""
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
        (train_fn or train)(tcfg, continued_model(r) if r.continues else r.model_cfg, log=log)
    if r.stop_after == "train":
        return
    recite(build(ReciteConfig, {**to_dict(r.recite_cfg), "run": str(r.path)}), None, log=log)
    _probes(r, log)


def continued_model(r: PlannedRun) -> ModelConfig:
    """Phase B of `retention:` starts from phase A's final model (its weights and tokenizer, as trained)."""
    a = r.continues
    if a.run.status() not in ("done", "trained"):
        raise RecitebenchError(f"{r.name} continues from {a.name}, which is {a.run.status()}: run it first "
                               f"(`recitebench run SPEC --only {a.name}`)")
    return build(ModelConfig, {**to_dict(r.model_cfg), "model": str(a.run.model), "init": "pretrained",
                               "tokenizer": None, "gguf_file": None, "vocab_size": None}, where=r.name)


def _probes(r: PlannedRun, log) -> None:
    """The spec's probes this run has not written yet, on the run's own model and poems."""
    missing = r.probes_missing()
    if "extract" in missing:
        from ..recall.extract import extract

        extract(build(ExtractConfig, {**to_dict(r.extract_cfg), "run": str(r.path)}), None, log=log)
    if "lens" in missing:
        from ..recall.lens import lens

        lens(build(LensConfig, {**to_dict(r.lens_cfg), "run": str(r.path)}), None, log=log)
    if "retention" in missing:
        from ..recall.retention import retention

        retention(r.path, r.continues.train_cfg.data, reference=r.retention.reference, device=r.recite_cfg.device,
                  log=log)
