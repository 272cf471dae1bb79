"""Where the runs of a grid execute. Every executor runs the same `worker.execute_run` per run (lock, train,
recite, record a failure), so they differ only in where that happens:

local  one after another in this process (the reference the others are tested against);
pool   worker processes on this machine, each pinned to its GPU(s) with CUDA_VISIBLE_DEVICES (fractions share one);
slurm  a submitit job array (a cap on the tasks running at once; partition, account, time limit);
ray    Ray tasks on a cluster or a local instance (fractional GPUs are Ray's own).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RecitebenchError
from .config import ExecutorConfig
from .spec import PlannedRun, Spec
from .worker import Outcome, execute_run

POLL_S = 0.5


def run_all(spec: Spec, todo: list[PlannedRun], xcfg: ExecutorConfig, log) -> list[Outcome]:
    name = resolve_executor(xcfg)
    log(f"executor {name}: {len(todo)} runs to do")
    if name == "local":
        return _local(spec, todo, xcfg, log)
    if name == "pool":
        return Pool(spec, todo, xcfg, log).run()
    if name == "slurm":
        return _slurm(spec, todo, xcfg, log)
    return _ray(spec, todo, xcfg, log)


def check_executor(xcfg: ExecutorConfig) -> None:
    """Refuse an executor that cannot run here before anything runs (a dry run too). Slurm without `sbatch` is
    refused rather than left to submitit's fallback, which would run every job on this host and drop the partition
    and account; `--cluster local` asks for that on purpose."""
    if resolve_executor(xcfg) != "slurm":
        return
    if importlib.util.find_spec("submitit") is None:
        raise RecitebenchError("executor slurm needs submitit: pip install 'recitebench[slurm]'")
    if xcfg.cluster is None and shutil.which("sbatch") is None:
        asked = ", ".join(f"--{k} {v}" for k, v in (("partition", xcfg.partition), ("account", xcfg.account)) if v)
        raise RecitebenchError("executor slurm: no `sbatch` on this host, so no job would reach Slurm"
                               + (f" ({asked} would be ignored)" if asked else "")
                               + "; run from a Slurm login node, or pass --cluster local to run the jobs here")


def resolve_executor(xcfg: ExecutorConfig) -> str:
    if xcfg.executor != "auto":
        return xcfg.executor
    return "pool" if visible_gpus() > 1 or (xcfg.jobs or 1) > 1 else "local"


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpus_of(r: PlannedRun, xcfg: ExecutorConfig) -> float:
    return r.gpus_per_run if r.gpus_per_run is not None else xcfg.gpus_per_run


def _local(spec: Spec, todo: list[PlannedRun], xcfg: ExecutorConfig, log) -> list[Outcome]:
    out = []
    for i, r in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] {r.name}: {r.run.status()}")
        o = execute_run(spec.path, str(spec.runs_dir), r.name, max(1, int(gpus_of(r, xcfg))), echo=True)
        log(state_line(o))
        out.append(o)
    return out


def state_line(o: Outcome) -> str:
    if o.state == "failed":
        return f"{o.name}: failed: {o.detail} (log: {o.log})"
    return f"{o.name}: {o.state}" + (f" ({o.detail})" if o.detail else "")


def progress_line(r: PlannedRun, seen: dict) -> str | None:
    """'NAME: running epoch E/N, recall R' when the run logged a new memory-curve point since last asked."""
    rows = [row for row in r.run.read_metrics() if "recall" in row] if r.run.metrics.is_file() else []
    if not rows or seen.get(r.name) == rows[-1]["epoch"]:
        return None
    seen[r.name] = rows[-1]["epoch"]
    return f"{r.name}: running epoch {rows[-1]['epoch']}/{r.train_cfg.epochs}, recall {rows[-1]['recall']:.1%}"


@dataclass
class Pool:
    """Worker processes on this machine; a run starts when a worker slot and the GPUs it needs are free."""

    spec: Spec
    todo: list[PlannedRun]
    xcfg: ExecutorConfig
    log: object
    free: list[float] = field(default_factory=list)  # free share of each visible GPU
    running: dict = field(default_factory=dict)  # name -> (process, run, GPU indices, share)
    seen: dict = field(default_factory=dict)
    limit: int = 1  # runs at once

    def run(self) -> list[Outcome]:
        self.free = [1.0] * visible_gpus()
        limit = self.limit = self.xcfg.jobs or (len(self.todo) if self.free else 1)
        queue, out = list(self.todo), []
        for r in queue:
            self.log(f"{r.name}: queued")
        previous = _sigterm_as_interrupt()
        try:
            while queue or self.running:
                while queue and len(self.running) < limit:
                    placed = self._place(gpus_of(queue[0], self.xcfg))
                    if placed is None:
                        if not self.running:  # nothing would ever free the GPUs it needs
                            r = queue.pop(0)
                            out.append(Outcome(r.name, "failed", f"needs {gpus_of(r, self.xcfg)} GPUs, "
                                               f"{len(self.free)} visible"))
                            continue
                        break
                    self._start(queue.pop(0), *placed)
                out += self._reap()
                time.sleep(POLL_S)
        finally:
            self._stop_workers()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return out

    def _stop_workers(self) -> None:
        """Interrupted (Ctrl-C, or SIGTERM from `timeout` or a scheduler): stop the workers too, rather than leave
        them training unseen on the GPUs a rerun needs. Each resumes from its last checkpoint on the next `run`."""
        if not self.running:
            return
        for proc, *_ in self.running.values():
            proc.terminate()
        for proc, *_ in self.running.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.log(f"stopped {len(self.running)} running run(s) ({', '.join(self.running)}); "
                 "`recitebench run` again resumes them from their last checkpoint")
        self.running.clear()

    def _place(self, share: float) -> tuple[list[int], float] | None:
        if not self.free:
            return [], 0.0
        if share <= 1:
            fits = [i for i, f in enumerate(self.free) if f >= share - 1e-9]
            return ([min(fits, key=lambda i: self.free[i])], share) if fits else None  # best fit packs shares
        whole = [i for i, f in enumerate(self.free) if f >= 1 - 1e-9]
        return (whole[: int(share)], 1.0) if len(whole) >= share else None

    def _start(self, r: PlannedRun, gpus: list[int], share: float) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.free:
            ids = os.environ.get("CUDA_VISIBLE_DEVICES", ",".join(map(str, range(len(self.free))))).split(",")
            env["CUDA_VISIBLE_DEVICES"] = ",".join(ids[i] for i in gpus)
            # GPU runs share the host's cores: N workers each starting a thread per core fight over them. (CPU-only
            # pools keep torch's default: CPU float sums depend on the thread count, and must match `local`.)
            env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, self.limit))))
        for i in gpus:
            self.free[i] -= share
        r.run.logs.mkdir(parents=True, exist_ok=True)
        with open(r.run.log, "a", encoding="utf-8") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "recitebench.experiment.worker", self.spec.path, str(self.spec.runs_dir),
                 r.name, str(max(1, len(gpus)))], stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        self.running[r.name] = (proc, r, gpus, share)
        where = f" on GPU {env['CUDA_VISIBLE_DEVICES']}" if gpus else ""
        self.log(f"{r.name}: running{where} (pid {proc.pid}, log {r.run.log})")

    def _reap(self) -> list[Outcome]:
        out = []
        for name, (proc, r, gpus, share) in list(self.running.items()):
            if proc.poll() is None:
                line = progress_line(r, self.seen)
                if line:
                    self.log(line)
                continue
            o = _parse_outcome(name, proc.stdout.read(), proc.returncode, str(r.run.log))
            for i in gpus:
                self.free[i] += share
            del self.running[name]
            self.log(state_line(o))
            out.append(o)
        return out


def _sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt in this process while the pool runs, so its cleanup stops the workers (by
    default SIGTERM ends this process alone). Returns the previous handler to restore (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def lost(r: PlannedRun, what: str, error: Exception) -> Outcome:
    """The outcome of a run whose process died under a cluster executor, recorded as its failure."""
    o = Outcome(r.name, "failed", f"{what}: {(str(error).strip().splitlines() or ['?'])[-1][:200]}", str(r.run.log))
    r.run.mark_failed(o.detail)
    return o


def _parse_outcome(name: str, stdout: str, code: int, log: str) -> Outcome:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if lines:
        return Outcome(**json.loads(lines[-1]))
    return Outcome(name, "failed", f"worker exited with status {code}", log)


def _slurm(spec: Spec, todo: list[PlannedRun], xcfg: ExecutorConfig, log) -> list[Outcome]:
    try:
        import submitit
    except ImportError:
        raise RecitebenchError("executor slurm needs submitit: pip install 'recitebench[slurm]'") from None
    jobs = []
    for share in sorted({gpus_of(r, xcfg) for r in todo}):
        group = [r for r in todo if gpus_of(r, xcfg) == share]
        ex = submitit.AutoExecutor(folder=str(spec.runs_dir / ".submitit" / "%j"), cluster=xcfg.cluster)
        ex.update_parameters(**_slurm_parameters(spec, xcfg, share))
        n = len(group)
        submitted = ex.map_array(execute_run, [spec.path] * n, [str(spec.runs_dir)] * n, [r.name for r in group],
                                 [max(1, int(share))] * n)
        for job, r in zip(submitted, group):
            log(f"{r.name}: queued (job {job.job_id})")
        jobs += list(zip(submitted, group))
    return _wait_jobs(jobs, log)


def _slurm_parameters(spec: Spec, xcfg: ExecutorConfig, share: float) -> dict:
    gpus = math.ceil(share) if (xcfg.cluster != "local" or visible_gpus()) else 0  # Slurm does not split a GPU
    params = {"name": f"recitebench-{spec.name}", "timeout_min": xcfg.time_limit_min, "gpus_per_node": gpus,
              "cpus_per_task": xcfg.cpus_per_run, "slurm_array_parallelism": xcfg.max_parallel,
              "slurm_partition": xcfg.partition, "slurm_account": xcfg.account}
    return {k: v for k, v in params.items() if v is not None}


def _wait_jobs(jobs: list, log) -> list[Outcome]:
    out, states, seen = [], {}, {}
    pending = list(jobs)
    while pending:
        for job, r in list(pending):
            if not job.done():
                state = job.state
                if states.get(r.name) != state:
                    states[r.name] = state
                    log(f"{r.name}: {state.lower()} (job {job.job_id})")
                line = progress_line(r, seen)
                if line:
                    log(line)
                continue
            try:
                o = job.result()
            except Exception as e:  # noqa: BLE001 - a killed or crashed job: its run resumes on the next `run`
                o = lost(r, f"job {job.job_id}", e)
            pending.remove((job, r))
            log(state_line(o))
            out.append(o)
        time.sleep(POLL_S)
    return out


def ray_runtime_env(xcfg: ExecutorConfig, local: bool) -> dict:
    """Each Ray task's runtime_env: the shared data and commit this driver names, this recitebench on a remote
    cluster (its workers may hold another version or none), and the spec's own entries on top."""
    import yaml

    env_vars = {k: os.environ[k] for k in ("RECITEBENCH_SHARED", "RECITEBENCH_COMMIT") if os.environ.get(k)}
    if local:  # Ray pins a 1-CPU task to one thread; CPU float sums depend on the thread count, so a local instance
        # keeps torch's default (what the local and pool executors use) and gives the same bits
        env_vars["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", str(os.cpu_count()))
    env: dict = {} if local else {"py_modules": [str(Path(__file__).resolve().parents[1])]}
    extra = yaml.safe_load(xcfg.ray_runtime_env) if xcfg.ray_runtime_env else {}
    env_vars.update(extra.pop("env_vars", {}) or {})
    env.update(extra)
    if env_vars:
        env["env_vars"] = {k: str(v) for k, v in env_vars.items()}
    return env


def _ray(spec: Spec, todo: list[PlannedRun], xcfg: ExecutorConfig, log) -> list[Outcome]:
    try:
        import ray
    except ImportError:
        raise RecitebenchError("executor ray needs Ray: pip install 'recitebench[ray]'") from None
    local = xcfg.ray_address is None
    ray.init(address=xcfg.ray_address, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False,
             **({"num_cpus": xcfg.jobs or os.cpu_count(), "object_store_memory": 256 << 20} if local else {}))
    env = ray_runtime_env(xcfg, local)
    task = ray.remote(execute_run)
    refs = {}
    for r in todo:
        share = gpus_of(r, xcfg) if (visible_gpus() or not local) else 0
        opts = task.options(num_gpus=share, num_cpus=1, runtime_env=env or None)
        ref = opts.remote(spec.path, str(spec.runs_dir), r.name, max(1, int(share)))
        refs[ref] = r
        log(f"{r.name}: queued (ray task)")
    out, seen = [], {}
    while refs:
        done, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_S)
        for r in refs.values():
            line = progress_line(r, seen)
            if line:
                log(line)
        for ref in done:
            r = refs.pop(ref)
            try:
                o = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - a lost worker: its run resumes on the next `run`
                o = lost(r, "ray task", e)
            log(state_line(o))
            out.append(o)
    if local:
        ray.shutdown()
    return out
