"""Grid executors: the local pool, submitit (its local executor), Ray, locks and concurrent invocations.

Every executor must give exactly what the sequential one gives: same losses, same weights, same verdicts."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, read_jsonl, run_cli

SPEC = """
name: grid
runs_dir: {runs}
datasets:
  cn: {{preset: cn-poems, source: shared:cn_poems, n: 8, max_chars: 48}}
  rnd: {{preset: random, n: 8, min_symbols: 6, max_symbols: 8}}
models:
  tiny: {{model: tiny}}
  tiny2: {{model: tiny, init_seed: 1, train: {{lr: 5.0e-3}}}}
train: {{epochs: {epochs}, lr: 3.0e-3, batch_size: 4, recall_every: 5, checkpoint_every: 5}}
"""
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"))


def write_spec(path, runs, epochs: int = 12):
    path.write_text(SPEC.format(runs=runs, epochs=epochs))
    return path


def fingerprint(runs) -> dict:
    """What must not depend on the executor: losses and recall per epoch, weights, every verdict."""
    out = {}
    for run in sorted(p for p in runs.iterdir() if (p / "recite" / "results.json").is_file()):
        metrics = [{k: m.get(k) for k in ("epoch", "loss", "recall")} for m in read_jsonl(run / "metrics.jsonl")]
        weights = hashlib.sha256((run / "model" / "model.safetensors").read_bytes()).hexdigest()
        samples = (run / "recite" / "samples.jsonl").read_text()
        res = json.loads((run / "recite" / "results.json").read_text())
        out[run.name] = (metrics, weights, samples, res["exact_match"], res["memory"])
    return out


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    base = tmp_path_factory.mktemp("seq")
    assert run_cli("run", write_spec(base / "s.yaml", base / "runs"), "--executor", "local") == 0
    return fingerprint(base / "runs")


@pytest.mark.slow
def test_local_pool_is_byte_identical_to_sequential(tmp_path, sequential, capsys):
    assert run_cli("run", write_spec(tmp_path / "s.yaml", tmp_path / "runs"), "--executor", "pool", "--jobs", "2") == 0
    out = capsys.readouterr().out
    assert "cn__tiny: queued" in out and "cn__tiny: running" in out and "rnd__tiny2: done" in out
    assert len(sequential) == 4 and fingerprint(tmp_path / "runs") == sequential
    assert (tmp_path / "runs" / "cn__tiny" / "logs" / "run.log").read_text().count("trained 12 epochs") == 1


@pytest.mark.slow
def test_pool_stopped_by_sigterm_stops_its_workers(tmp_path):
    """`timeout` or a scheduler sends SIGTERM to the grid's process: its workers must not train on unseen."""
    spec = write_spec(tmp_path / "s.yaml", tmp_path / "runs", epochs=2000)
    grid = subprocess.Popen([sys.executable, "-m", "recitebench", "run", str(spec), "--executor", "pool", "--jobs", "1",
                             "--only", "cn__tiny2"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lock = tmp_path / "runs" / ".locks" / "cn__tiny2.lock"
    deadline = time.time() + 120
    while not lock.is_file() and time.time() < deadline:
        time.sleep(0.05)
    worker = json.loads(lock.read_text())["pid"]
    grid.send_signal(signal.SIGTERM)
    out = grid.communicate(timeout=60)[0]
    assert grid.returncode == 130 and "stopped 1 running run(s) (cn__tiny2)" in out, out
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)  # gone (the pool waited for it, so not even a zombie)


@pytest.mark.slow
def test_submitit_local_completes_and_resumes_a_killed_job(tmp_path, sequential):
    pytest.importorskip("submitit")
    spec = write_spec(tmp_path / "s.yaml", tmp_path / "runs", epochs=40)
    cmd = [sys.executable, "-m", "recitebench", "run", str(spec), "--executor", "slurm", "--cluster", "local",
           "--only", "cn__tiny2"]
    grid = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lock, ckpt = tmp_path / "runs" / ".locks" / "cn__tiny2.lock", tmp_path / "runs" / "cn__tiny2" / "checkpoint.pt"
    deadline = time.time() + 120
    while not (ckpt.is_file() and lock.is_file()) and time.time() < deadline:
        time.sleep(0.05)
    os.kill(json.loads(lock.read_text())["pid"], signal.SIGKILL)  # the job's process, mid-training
    first = grid.communicate(timeout=120)[0]
    assert grid.returncode == 1 and "cn__tiny2: failed" in first, first
    again = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    log = (tmp_path / "runs" / "cn__tiny2" / "logs" / "run.log").read_text()
    assert "resuming" in log
    epochs = [m["epoch"] for m in read_jsonl(tmp_path / "runs" / "cn__tiny2" / "metrics.jsonl")]
    assert epochs == list(range(1, 41))
    assert not (tmp_path / "runs" / "cn__tiny2" / "logs" / "failed.json").exists()


def ray_starts() -> str | None:
    """Why a local Ray instance cannot run here (None: it can)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return "ray is not installed (pip install 'recitebench[ray]')"
    probe = subprocess.run([sys.executable, "-c", "import ray; ray.init(num_cpus=1, include_dashboard=False, "
                            "object_store_memory=128 << 20); print(ray.get(ray.remote(lambda: 7).remote()))"],
                           capture_output=True, text=True, timeout=180)
    if probe.stdout.strip().endswith("7"):
        return None
    return "a local Ray instance does not start on this machine: " + (probe.stderr.strip().splitlines() or ["?"])[-1]


@pytest.mark.slow
def test_ray_local_instance_matches_sequential(tmp_path, sequential):
    reason = ray_starts()
    if reason:
        print(reason)
        pytest.skip(reason)
    spec = write_spec(tmp_path / "s.yaml", tmp_path / "runs")
    done = subprocess.run([sys.executable, "-m", "recitebench", "run", str(spec), "--executor", "ray", "--jobs", "2",
                           "--ray-runtime-env", "{env_vars: {RECITEBENCH_COMMIT: ray-probe}}"],
                          env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert fingerprint(tmp_path / "runs") == sequential
    for name in sequential:  # the spec's runtime_env reached the tasks: their provenance names its commit
        assert json.loads((tmp_path / "runs" / name / "recite" / "results.json").read_text())["git_commit"] == (
            "ray-probe")


def test_the_ray_runtime_env_carries_the_shared_data_this_code_and_the_specs_entries(monkeypatch, tmp_path, capsys):
    from recitebench.experiment.config import ExecutorConfig
    from recitebench.experiment.executors import ray_runtime_env

    monkeypatch.setenv("RECITEBENCH_SHARED", "/data/shared")
    cfg = ExecutorConfig(executor="ray", ray_address="ray://head:10001",
                         ray_runtime_env="{env_vars: {HF_HOME: /data/hf}, pip: [rapidfuzz]}")
    env = ray_runtime_env(cfg, local=False)
    assert env["env_vars"] == {"RECITEBENCH_SHARED": "/data/shared", "HF_HOME": "/data/hf"}
    assert env["pip"] == ["rapidfuzz"] and Path(env["py_modules"][0]).name == "recitebench"
    spec = write_spec(tmp_path / "s.yaml", tmp_path / "runs")
    assert run_cli("run", spec, "--dry-run", "--executor", "ray", "--ray-runtime-env", "[1, 2]") == 1
    assert "ray_runtime_env must be a mapping" in capsys.readouterr().err


@pytest.mark.slow
def test_concurrent_invocations_leave_a_consistent_index(tmp_path, sequential):
    spec = write_spec(tmp_path / "s.yaml", tmp_path / "runs")
    cmd = [sys.executable, "-m", "recitebench", "run", str(spec), "--executor", "local"]
    procs = [subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    for name in sequential:  # every run trained once (the lock), and the results are the sequential ones
        assert (tmp_path / "runs" / name / "logs" / "run.log").read_text().count("trained 12 epochs") == 1
    assert fingerprint(tmp_path / "runs") == sequential
    con = sqlite3.connect(tmp_path / "runs" / "index.sqlite")
    rows = dict(con.execute("SELECT name, exact_match FROM runs").fetchall())
    assert rows == {name: v[3] for name, v in sequential.items()}


def test_stale_lock_of_a_dead_worker_is_taken_over(tmp_path):
    from recitebench.lock import RunLock

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path = tmp_path / ".locks" / "a.lock"
    path.parent.mkdir()
    path.write_text(json.dumps({"host": os.uname().nodename, "pid": int(dead.stdout), "heartbeat": 0}))
    lock = RunLock(tmp_path, "a")
    assert lock.stale() and lock.acquire()
    other = subprocess.run([sys.executable, "-c", "import sys; from recitebench.lock import RunLock; "
                            f"sys.exit(RunLock({str(tmp_path)!r}, 'a').acquire())"], capture_output=True,
                           env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert other.returncode == 0, other.stderr  # another process is refused: a live owner holds it
    assert RunLock(tmp_path, "a").acquire()  # this one may take it again (the worker, then its training)
    lock.release()
    assert not path.exists()


def test_ls_shows_queued_running_and_trained_runs(tmp_path, capsys):
    from recitebench.lock import RunLock

    runs = tmp_path / "runs"
    (runs / "a__m").mkdir(parents=True)
    (runs / "a__m" / "config.yaml").write_text("train: {}\n")
    (runs / "queue.json").write_text(json.dumps({"runs": ["a__m", "b__m", "c__m"]}))
    lock = RunLock(runs, "b__m")
    assert lock.acquire()
    try:
        assert run_cli("ls", runs) == 0
    finally:
        lock.release()
    lines = {ln.split()[0]: ln.split()[1] for ln in capsys.readouterr().out.splitlines()[2:]}
    assert lines == {"a__m": "partial", "b__m": "running", "c__m": "queued"}


def test_executor_flags_are_validated(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", tmp_path / "runs")
    assert run_cli("run", spec, "--gpus-per-run", "1.5", "--dry-run") == 1
    assert "gpus_per_run above 1 must be a whole number" in capsys.readouterr().err
    spec.write_text(spec.read_text() + "executor: {executor: kubernetes}\n")
    assert run_cli("run", spec, "--dry-run") == 1
    assert "executor must be one of" in capsys.readouterr().err


@pytest.mark.slow
def test_a_model_with_two_gpus_per_run_trains_under_torchrun(tmp_path):
    """gpus_per_run: 2 starts the run's training under torchrun (here two CPU processes with gloo), then recites."""
    spec = write_spec(tmp_path / "s.yaml", tmp_path / "runs")
    spec.write_text(spec.read_text().replace("tiny: {model: tiny}", "tiny: {model: tiny, gpus_per_run: 2}"))
    done = subprocess.run([sys.executable, "-m", "recitebench", "run", str(spec), "--only", "cn__tiny",
                           "--executor", "local"], env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run = tmp_path / "runs" / "cn__tiny"
    log = (run / "logs" / "run.log").read_text()
    assert "torch.distributed.run --standalone --nproc_per_node=2" in log
    config = (run / "config.yaml").read_text()
    assert "world_size: 2" in config
    assert (run / "recite" / "results.json").is_file()


def test_slurm_without_sbatch_is_refused_not_run_here(tmp_path, sequential, capsys, monkeypatch):
    """submitit would fall back to local processes and drop --partition/--account; the dry run refuses as the run
    would, and --cluster local still runs locally on purpose."""
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch anywhere
    spec = write_spec(tmp_path / "s.yaml", tmp_path / "runs", epochs=1)
    for extra in ([], ["--dry-run"]):
        assert run_cli("run", spec, "--executor", "slurm", "--partition", "gpu", "--account", "lab", *extra) == 1
        err = capsys.readouterr().err
        assert "no `sbatch` on this host" in err and "--partition gpu, --account lab would be ignored" in err
    assert not (tmp_path / "runs").exists()
    assert run_cli("run", spec, "--executor", "slurm", "--cluster", "local", "--dry-run") == 0
