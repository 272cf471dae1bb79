"""What the report reads: every recited run of a folder, from its files (nothing is run or written here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..io import read_json
from ..rundir import RunDir
from ..schema import Results, Sample, read_results, read_samples


@dataclass
class RunView:
    name: str
    path: Path
    dataset: str
    model: str
    results: Results
    metrics: list[dict]
    samples: list[Sample] | None  # None: the run was kept without recite/samples.jsonl (results only)
    summary: dict
    extraction: dict | None = None  # RUN/extract/extraction.json: the extraction probe, when the spec asked for it
    retention: list[dict] | None = None  # RUN/retention/*/retention.json: other sets recited with the run's snapshots
    lens: dict | None = None  # RUN/lens/lens.json: the logit lens, when the spec asked for it


def collect(runs_dir: Path) -> list[RunView]:
    runs = []
    for res_path in sorted(Path(runs_dir).glob("*/recite/results.json")):
        run = RunDir(res_path.parent.parent)
        dataset, model = run.labels()
        runs.append(
            RunView(
                run.name,
                run.path,
                dataset,
                model,
                read_results(run.recite),
                run.read_metrics(),
                read_samples(run.recite),
                run.read_summary(),
                read_json(run.extract / "extraction.json") if (run.extract / "extraction.json").is_file() else None,
                [read_json(f) for f in sorted(run.retention.glob("*/retention.json"))] or None,
                read_json(run.lens / "lens.json") if (run.lens / "lens.json").is_file() else None,
            )
        )
    return runs
