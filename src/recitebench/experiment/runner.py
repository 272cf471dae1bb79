"""`recitebench run`: do what a spec's grid still needs — datasets once, in this process, then each run's training
and recitation on the chosen executor — skipping finished runs and resuming interrupted ones; then the index and
a summary, written by this one process."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..config import build, to_dict
from ..data.build import build_dataset, check_corpus
from ..data.config import DataConfig
from ..data.sources import resolve_spec
from ..errors import RecitebenchError
from ..io import read_json, write_json
from ..lock import writing
from .config import ExecutorConfig
from .executors import check_executor, run_all
from .index import update_index
from .spec import PlannedRun, Spec, needed_datasets
from .worker import Outcome

DATASET_WAIT_S = 1800.0  # a large corpus takes minutes to read and filter


def run_spec(spec: Spec, xcfg: ExecutorConfig | None = None, *, dry_run: bool = False, only: str | None = None,
             retry_failed: bool = True, log=print) -> list[Outcome]:
    """Run what is not done; return one outcome per run attempted."""
    xcfg = xcfg or build(ExecutorConfig, spec.executor)
    check_executor(xcfg)  # before the dry run returns: it fails where the run would
    runs = [r for r in spec.runs if not only or only in r.name]
    log(f"experiment {spec.name}: {len(runs)} runs in {spec.runs_dir}")
    for r in runs:
        model = f"{r.continues.name}'s final model" if r.continues else r.model_cfg.model
        log(f"  {r.name:40s} {r.run.status():12s} model={model} epochs={r.train_cfg.epochs}")
    check_sources(spec, runs, count=dry_run)
    if dry_run:
        return []
    spec.runs_dir.mkdir(parents=True, exist_ok=True)
    prepare_datasets(spec, runs, log)
    todo = [r for r in runs if not r.finished() and (retry_failed or r.run.status() != "failed")]
    write_queue(spec.runs_dir, [r.name for r in todo])
    try:  # phase B of `retention:` starts from phase A's model: it runs in a second wave
        outcomes = []
        for wave in ([r for r in todo if r.continues is None], [r for r in todo if r.continues is not None]):
            outcomes += run_all(spec, wave, xcfg, log) if wave else []
    finally:
        write_queue(spec.runs_dir, [])
    for r in runs:
        update_index(spec.runs_dir, r.run)
    log(summary(runs, outcomes))
    return outcomes


def raise_if_failed(outcomes: list[Outcome]) -> None:
    """A grid with failed runs exits non-zero (after its report is written), naming the first failure."""
    failed = [o for o in outcomes if o.state == "failed"]
    if failed:
        raise RecitebenchError(f"{len(failed)} of {len(outcomes)} runs failed (first: {failed[0].name}: "
                               f"{failed[0].detail}); `recitebench run` again retries them")


def prepare_datasets(spec: Spec, runs: list[PlannedRun], log) -> None:
    """Every dataset of the grid, built once before any run starts (workers only read them)."""
    for dname in needed_datasets(spec, runs):
        ddir = spec.data_dir(dname)
        if dataset_current(ddir, spec.datasets[dname]):
            continue
        # another `run` of the same spec may be building it: wait for that one, then use what it built
        with writing(ddir, "dataset folder", wait_s=DATASET_WAIT_S):
            if not dataset_current(ddir, spec.datasets[dname]):
                log(f"building dataset {dname}")
                build_dataset(spec.datasets[dname], ddir, overwrite=True)  # the spec changed: its dataset follows


def check_sources(spec: Spec, runs: list[PlannedRun], *, count: bool = False) -> None:
    """Every dataset still to build can find its corpus (a `shared:` name resolves here): a dry run fails where the
    run would, before any run's set-up. With `count` (a dry run) each local corpus also goes through the build's own
    filters, so too few poems fails here, not at the run's build; an `exclude` of a spec dataset not built yet is
    left out of that count (what the set will hold is known only once it is sampled: the most the run can find)."""
    for dname in needed_datasets(spec, runs):
        cfg = spec.datasets[dname]
        if not cfg.reads_corpus or dataset_current(spec.data_dir(dname), cfg):
            continue
        try:
            resolve_spec(cfg.source)
            if count:
                check_corpus(replace(cfg, exclude=[x for x in cfg.exclude if (Path(x) / "manifest.json").is_file()]))
        except RecitebenchError as e:
            raise RecitebenchError(f"{spec.path}: datasets.{dname}: {e}") from None


def dataset_current(ddir: Path, cfg: DataConfig) -> bool:
    """A dataset folder is reused only if it was built from exactly this config."""
    man = ddir / "manifest.json"
    if not man.is_file():
        return False
    try:
        return read_json(man).get("config") == to_dict(cfg)
    except ValueError:  # a broken manifest: rebuild
        return False


def write_queue(runs_dir: Path, names: list[str]) -> None:
    """RUNS_DIR/queue.json: the runs this invocation still has to do (`ls` shows them as queued or running)."""
    write_json(Path(runs_dir) / "queue.json", {"runs": names})


def summary(runs: list[PlannedRun], outcomes: list[Outcome]) -> str:
    by_name = {o.name: o for o in outcomes}
    lines = ["", f"{'run':40s} {'state':8s} detail"]
    for r in runs:
        o = by_name.get(r.name)
        state = o.state if o else r.run.status()
        detail = (o.detail + (f" (log: {o.log})" if o.state == "failed" and o.log else "")) if o else ""
        lines.append(f"{r.name:40s} {state:8s} {detail}")
    return "\n".join(lines)
