"""The run folder, typed: every path a stage writes or reads, and the run's status, in one place.

RUN/config.yaml          resolved train + model config, dataset hash, provenance (written at start)
RUN/tokenizer/           the tokenizer the run trains with
RUN/metrics.jsonl        one row per epoch: loss, lr, tokens/s, elapsed; recall every recall_every epochs
RUN/checkpoint.pt        while running: weights, optimizer, schedule, RNG, progress (deleted at the end)
RUN/model/               the final model (safetensors + tokenizer), loadable by from_pretrained
RUN/train_summary.json   how training ended, and where its wall time went (timings_s per phase)
RUN/recite/results.json  the aggregate verdict (schema: recitebench.schema.Results)
RUN/recite/samples.jsonl one row per poem (schema: recitebench.schema.Sample)
RUN/extract/             the extraction probe (a spec's `extract:` section): extraction.json per k, .jsonl per poem
RUN/lens/lens.json       the logit lens (a spec's `lens:` section): bits and top-1 per layer
RUN/snapshots/epoch_NNNN the model every snapshot_every epochs, at the snapshot_at ones, before the first and at the end
RUN/retention/DATASET/   each snapshot's recitation of DATASET and retention.json, the curve over epochs
RUN/base_bits.json       each poem's code length under the model before training (the default reference of bits)
RUN/trackers.json        with --report-to: where each tracker's run lives (tensorboard/, wandb/, mlruns/ beside it)
RUN/logs/run.log         the output of the run when a grid executor ran it (kept when a run is started again)
RUN/logs/failed.json     why the last attempt failed (removed when the run is done)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import load_yaml
from .errors import RecitebenchError
from .io import atomic_path, read_json, read_jsonl, write_json
from .schema import read_results


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __init__(self, path: str | Path):
        object.__setattr__(self, "path", Path(path))

    config = property(lambda self: self.path / "config.yaml")
    tokenizer = property(lambda self: self.path / "tokenizer")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    model = property(lambda self: self.path / "model")
    summary = property(lambda self: self.path / "train_summary.json")
    tensorboard = property(lambda self: self.path / "tensorboard")
    trackers = property(lambda self: self.path / "trackers.json")
    recite = property(lambda self: self.path / "recite")
    extract = property(lambda self: self.path / "extract")
    lens = property(lambda self: self.path / "lens")
    snapshots = property(lambda self: self.path / "snapshots")
    retention = property(lambda self: self.path / "retention")
    base_bits = property(lambda self: self.path / "base_bits.json")
    logs = property(lambda self: self.path / "logs")
    log = property(lambda self: self.path / "logs" / "run.log")
    failure = property(lambda self: self.path / "logs" / "failed.json")

    @property
    def name(self) -> str:
        return self.path.name

    def labels(self) -> tuple[str, str]:
        """(dataset, model) for tables: a grid run is named DATASET__MODEL; a one-off run is labelled from its
        config.yaml (the dataset folder's name; the model preset, or the model folder's or file's name)."""
        dataset, sep, model = self.name.partition("__")
        if not sep and not self.config.is_file() and (self.recite / "results.json").is_file():
            return self._recitation_labels()
        if sep or not self.config.is_file():
            return dataset, model or "-"
        try:
            cfg = load_yaml(self.config)
        except RecitebenchError:
            return self.name, "-"
        data = str((cfg.get("train") or {}).get("data") or self.name)
        ref = str((cfg.get("model") or {}).get("model") or "-")
        return Path(data).name, Path(ref).stem if ref.endswith((".json", ".gguf")) else Path(ref).name

    def _recitation_labels(self) -> tuple[str, str]:
        """A folder holding only a recitation (`import lm-eval --out RUN/recite`, a bare model's recite): the labels
        its results.json records (the dataset folder's name; the model, or the tool that produced the outputs)."""
        try:
            res = read_json(self.recite / "results.json")
        except (RecitebenchError, ValueError, OSError):
            return self.name, "-"
        data = (res.get("dataset") or {}).get("path") or self.name
        model = (res.get("model") or {}).get("model")
        samples = ((res.get("config") or {}).get("import") or {}).get("samples")
        label = Path(str(model)).name if model else f"lm-eval samples {Path(samples).name}" if samples else "-"
        return Path(str(data)).name, label

    def has_model(self) -> bool:
        return (self.model / "config.json").is_file()

    def status(self) -> str:
        """todo (nothing started), partial (died before its first checkpoint), interrupted, trained, done (recited);
        failed: the last attempt ended in an error (logs/failed.json says why; the next `run` tries again)."""
        if (self.recite / "results.json").is_file():
            return "done"
        if self.failure.is_file():
            return "failed"
        if self.has_model():
            return "trained"
        if self.checkpoint.is_file():
            return "interrupted"
        return "partial" if self.started() else "todo"

    def started(self) -> bool:
        """Anything but logs (and a lock) in the folder: a run began writing here."""
        return self.path.is_dir() and any(p.name not in ("logs", ".locks") for p in self.path.iterdir())

    def clear(self) -> None:
        """Remove what a run wrote, keeping its logs (a run started again appends to them)."""
        if self.path.is_dir():
            for p in self.path.iterdir():
                if p.name not in ("logs", ".locks"):
                    shutil.rmtree(p) if p.is_dir() else p.unlink()

    def mark_failed(self, reason: str) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        write_json(self.failure, {"reason": reason, "log": str(self.log)})

    def clear_failure(self) -> None:
        self.failure.unlink(missing_ok=True)

    def failure_reason(self) -> str | None:
        return read_json(self.failure).get("reason") if self.failure.is_file() else None

    def read_config(self) -> dict:
        if not self.config.is_file():
            raise RecitebenchError(f"{self.path}: not a training run (no config.yaml)")
        return load_yaml(self.config)

    def write_config(self, resolved: dict) -> None:
        with atomic_path(self.config) as tmp:
            tmp.write_text(yaml.safe_dump(resolved, allow_unicode=True, sort_keys=False), encoding="utf-8")

    def read_metrics(self) -> list[dict]:
        return read_jsonl(self.metrics) if self.metrics.is_file() else []

    def append_metrics(self, row: dict) -> None:
        with open(self.metrics, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def truncate_metrics(self, epoch: int) -> None:
        """Drop curve points written after the checkpoint a run resumes from (they will be recomputed)."""
        keep = [row for row in self.read_metrics() if row["epoch"] <= epoch]
        with atomic_path(self.metrics) as tmp:
            tmp.write_text("".join(json.dumps(row) + "\n" for row in keep), encoding="utf-8")

    def read_summary(self) -> dict:
        return read_json(self.summary) if self.summary.is_file() else {}

    def write_summary(self, summary: dict) -> None:
        write_json(self.summary, summary)


def key_numbers(run: RunDir) -> dict:
    """One finished run's headline numbers, read from its files (for the index, `ls` and `compare`)."""
    res = read_results(run.recite)
    summ = run.read_summary()
    final = summ.get("final", {})
    dataset, model = run.labels()
    return {
        "name": run.name,
        "path": str(run.path),
        "dataset": dataset,
        "model": model,
        "n": res.n,
        "exact_match": res.exact_match,
        "ci_low": res.exact_match_ci95[0],
        "ci_high": res.exact_match_ci95[1],
        "epochs": final.get("epoch"),
        "final_loss": final.get("loss"),
        "train_seconds": summ.get("train_seconds"),
        "recite_seconds": res.timings_s["total"],
        "certified": res.decided_by["certified"],
        "generated": res.decided_by["generated"],
        "updated_at": res.created_at,
    }
