"""Experiment trackers a run reports to (`train --report-to tensorboard,wandb,mlflow`).

Each tracker gets the run's resolved config once, every epoch's scalars against the optimizer step (the epoch is a
field), the train summary at the end, and every later recitation of the run (`recite --run RUN`, a grid's recite
stage) under `recite/NAME/...` at the run's last step. RUN/trackers.json records where each tracker's run lives, so
that a recitation finds it:
- tensorboard: RUN/tensorboard (a later writer adds its own event file);
- wandb: offline unless WANDB_MODE says otherwise (nothing leaves the machine by default; `wandb sync
  RUN/wandb/offline-run-*` uploads), project WANDB_PROJECT or `recitebench`; a recitation is its own W&B run in the
  training run's group (offline runs cannot be resumed);
- mlflow: MLFLOW_TRACKING_URI, else a file store in RUN/mlruns; a recitation logs into the training run itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import yaml

from .errors import RecitebenchError
from .io import read_json, write_json
from .rundir import RunDir

TRACKERS = ("tensorboard", "wandb", "mlflow")
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow-skinny"}


def parse_report_to(value: str) -> tuple[str, ...]:
    """'tensorboard,mlflow' -> ('tensorboard', 'mlflow'); 'none' or '' -> (); an unknown name is a ValueError."""
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip() and n.strip() != "none"))
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise ValueError(f"report_to names {unknown[0]!r}; trackers: {', '.join(TRACKERS)} (comma-separated), or none")
    return names


def scalars(values: dict, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a nested dict, keyed by their path joined with '/' (booleans and strings left out)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(scalars(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def _flat_params(values: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat_params(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value, default=str)[:6000]  # MLflow's limit on a parameter's value
    return out


def _need(name: str):
    import importlib

    module = {"tensorboard": "torch.utils.tensorboard", "wandb": "wandb", "mlflow": "mlflow"}[name]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise RecitebenchError(f"--report-to {name} needs the {PACKAGES[name]} package (pip install "
                               f"'recitebench[trackers]')") from None


class _TensorBoard:
    def __init__(self, run_path: Path, record: dict):
        log_dir = RunDir(run_path).tensorboard
        self.writer = _need("tensorboard").SummaryWriter(str(log_dir))
        record["tensorboard"] = {"log_dir": log_dir.name}

    def config(self, cfg: dict) -> None:
        self.writer.add_text("config", "```yaml\n" + yaml.safe_dump(cfg, sort_keys=False) + "```", 0)

    def log(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class _WandB:
    def __init__(self, run_path: Path, record: dict, job_type: str):
        wandb = _need("wandb")
        mode = os.environ.get("WANDB_MODE", "offline")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "recitebench"), group=run_path.name,
                              name=f"{run_path.name}-{job_type}", job_type=job_type, dir=str(run_path), mode=mode,
                              reinit="create_new")
        record.setdefault("wandb", {"group": run_path.name, "mode": mode, "runs": []})["runs"].append(
            {"id": self.run.id, "job_type": job_type})

    def config(self, cfg: dict) -> None:
        self.run.config.update(cfg, allow_val_change=True)

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class _MLflow:
    def __init__(self, run_path: Path, record: dict):
        _need("mlflow")
        from mlflow.tracking import MlflowClient

        known = record.get("mlflow")
        uri = (known["tracking_uri"] if known else
               os.environ.get("MLFLOW_TRACKING_URI") or (run_path / "mlruns").resolve().as_uri())
        if uri.startswith("file:"):  # MLflow 3 keeps its file store behind this switch; it needs no database
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        if known:  # a recitation, or a resumed run: the training run's own MLflow run
            self.run_id = known["run_id"]
        else:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "recitebench")
            exp = self.client.get_experiment_by_name(name)
            exp_id = exp.experiment_id if exp else self.client.create_experiment(name)
            self.run_id = self.client.create_run(exp_id, run_name=run_path.name).info.run_id
            record["mlflow"] = {"tracking_uri": uri, "run_id": self.run_id}

    def config(self, cfg: dict) -> None:
        from mlflow.entities import Param

        params = [Param(k[:250], v) for k, v in _flat_params(cfg).items()]
        for i in range(0, len(params), 100):  # log_batch takes at most 100 parameters
            self.client.log_batch(self.run_id, params=params[i:i + 100])
        self.client.log_dict(self.run_id, cfg, "config.json")

    def log(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class Trackers:
    """The trackers of one run folder: open them, log to all, close them; the record in RUN/trackers.json."""

    def __init__(self, run_path: str | Path, names: tuple[str, ...], *, job_type: str = "train"):
        self.path = Path(run_path)
        self.file = RunDir(self.path).trackers
        self.record = read_json(self.file) if self.file.is_file() else {}
        self.record["report_to"] = sorted(set(self.record.get("report_to", [])) | set(names))
        self.open = []
        for name in names:
            if name == "tensorboard":
                self.open.append(_TensorBoard(self.path, self.record))
            elif name == "wandb":
                self.open.append(_WandB(self.path, self.record, job_type))
            else:
                self.open.append(_MLflow(self.path, self.record))
        write_json(self.file, self.record)

    @classmethod
    def of_run(cls, run_path: str | Path, job_type: str) -> Trackers | None:
        """The trackers a finished run reported to (None when it reported to none)."""
        record = RunDir(run_path).trackers
        names = tuple(read_json(record).get("report_to", [])) if record.is_file() else ()
        return cls(run_path, names, job_type=job_type) if names else None

    def config(self, cfg: dict) -> None:
        for t in self.open:
            t.config(cfg)

    def log(self, values: dict, step: int) -> None:
        flat = scalars(values)
        if flat:
            for t in self.open:
                t.log(flat, step)

    def close(self, *, last_step: int | None = None) -> None:
        for t in self.open:
            t.close()
        if last_step is not None:
            self.record["last_step"] = last_step
        write_json(self.file, self.record)


RECITE_KEYS = ("exact_match", "n", "n_correct", "outcomes", "mean_similarity", "mean_prefix_chars",
               "mean_prefix_tokens", "mean_line_accuracy", "mean_chrf", "memory", "controls")


def report_recitation(run_path: str | Path, out: str | Path, recitation) -> None:
    """A recitation (its Results) of a tracked run, into its trackers: the results' scalars under recite/NAME/ at
    the run's last step, and (W&B, a run of its own) the recitation's config."""
    trackers = Trackers.of_run(run_path, "recite")
    if trackers is None:
        return
    results = dataclasses.asdict(recitation)
    step = int(trackers.record.get("last_step", 0))
    name = Path(out).name
    trackers.log({f"recite/{name}": {k: results[k] for k in RECITE_KEYS if k in results}}, step)
    for t in trackers.open:
        if isinstance(t, _WandB):
            t.config({"recite": results.get("config", {}), "out": str(out)})
    trackers.close()
