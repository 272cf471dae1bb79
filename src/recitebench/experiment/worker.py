"""One run of a grid, by name, as every executor runs it: take the run's lock, bring it to `done`, record a failure.

    python -m recitebench.experiment.worker SPEC RUNS_DIR NAME      (what pool workers start)

The same `execute_run` is what submitit pickles into Slurm jobs and what Ray runs as a task, so a run behaves the
same on every executor: its output goes to RUN/logs/run.log, a failure to RUN/logs/failed.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from dataclasses import asdict, dataclass

import yaml

from ..config import to_dict
from ..errors import RecitebenchError
from ..lock import INHERITED, RunLock
from .pipeline import do_run
from .spec import PlannedRun, load_spec


@dataclass
class Outcome:
    name: str
    state: str  # done | failed | busy (another worker owns the run)
    detail: str = ""  # done: the headline number; failed: the reason
    log: str = ""


def execute_run(spec_path: str, runs_dir: str, name: str, gpus: int = 1, echo: bool = False) -> Outcome:
    """Bring run NAME of the spec to `done` under its lock (`gpus` > 1: train under torchrun)."""
    spec = load_spec(spec_path, runs_dir=runs_dir)
    r = next((p for p in spec.runs if p.name == name), None)
    if r is None:
        raise RecitebenchError(f"{spec_path}: no run named {name!r}")
    lock = RunLock(spec.runs_dir, name)
    if not lock.acquire():
        owner = lock.owner() or {}
        return Outcome(name, "busy", f"owned by pid {owner.get('pid')} on {owner.get('host')}")
    try:
        return _attempt(r, gpus, echo)
    finally:
        lock.release()


def _attempt(r: PlannedRun, gpus: int, echo: bool) -> Outcome:
    r.run.clear_failure()
    r.run.logs.mkdir(parents=True, exist_ok=True)
    with open(r.run.log, "a", encoding="utf-8") as f:

        def log(msg: str) -> None:
            f.write(msg + "\n")
            f.flush()
            if echo:
                print(msg, flush=True)

        try:
            do_run(r, log, train_fn=_torchrun_train(r, gpus, f) if gpus > 1 else None)
        except RecitebenchError as e:
            log(f"error: {e}")
            r.run.mark_failed(str(e))
            return Outcome(r.name, "failed", str(e), str(r.run.log))
        except Exception as e:  # noqa: BLE001 - any crash of one run must not stop the grid
            f.write(traceback.format_exc())
            reason = f"{type(e).__name__}: {e}".splitlines()[0]
            r.run.mark_failed(reason)
            return Outcome(r.name, "failed", reason, str(r.run.log))
    if r.stop_after == "train":
        loss = r.run.read_summary().get("final", {}).get("loss")
        return Outcome(r.name, "done", f"trained, final loss {loss:.4g}" if loss is not None else "trained",
                       str(r.run.log))
    from ..schema import read_results

    res = read_results(r.run.recite)
    return Outcome(r.name, "done", f"exact {res.exact_match:.1%}", str(r.run.log))


def _torchrun_train(r: PlannedRun, gpus: int, logfile):
    """A train function that runs the same training under torchrun (DDP) on `gpus` GPUs."""

    def train(tcfg, mcfg, log=print):
        cfg_path = r.run.logs / "train_config.yaml"
        cfg_path.write_text(yaml.safe_dump({"train": to_dict(tcfg), "model": to_dict(mcfg)}, allow_unicode=True),
                            encoding="utf-8")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
               "-m", "recitebench", "train", "--config", str(cfg_path)]
        log(" ".join(cmd))
        # rank 0 writes the run folder whose lock this worker holds: it takes the lock as its own
        env = dict(os.environ, **{INHERITED: str(RunLock(r.run.path.parent, r.name).path.absolute())})
        done = subprocess.run(cmd, stdout=logfile, stderr=subprocess.STDOUT, env=env)
        if done.returncode != 0:
            raise RecitebenchError(f"torchrun training exited with status {done.returncode} (see {r.run.log})")

    return train


def main(argv: list[str] | None = None) -> int:
    args = argv or sys.argv[1:]
    spec_path, runs_dir, name = args[:3]
    gpus = int(args[3]) if len(args) > 3 else 1
    try:
        out = execute_run(spec_path, runs_dir, name, gpus)
    except RecitebenchError as e:
        out = Outcome(name, "failed", str(e))
    print(json.dumps(asdict(out)), flush=True)  # the pool reads this last line
    return 0 if out.state in ("done", "busy") else 1


if __name__ == "__main__":
    sys.exit(main())
