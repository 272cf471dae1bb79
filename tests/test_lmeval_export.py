"""`recitebench export lm-eval`: the exported task, run by lm-evaluation-harness's own Python API on a tiny local
model, gives the same per-poem verdicts as `recitebench recite`."""

from __future__ import annotations

import json

import pytest

from conftest import read_jsonl, run_cli

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is a dev dependency (pip install -e '.[dev]')")


@pytest.mark.slow
def test_exported_task_gives_recitebench_verdicts(half_trained_run, small_cn, tmp_path):
    from lm_eval.tasks import TaskManager

    assert run_cli("recite", "--run", half_trained_run, "--no-certify", "--out", tmp_path / "rb") == 0
    ours = {s["prompt"]: s["exact"] for s in read_jsonl(tmp_path / "rb" / "samples.jsonl")}
    assert 0 < sum(ours.values()) < len(ours)  # mixed verdicts: agreement is not trivial
    task_dir = tmp_path / "task"
    assert run_cli("export", "lm-eval", small_cn, "--out", task_dir) == 0
    (yaml_path,) = task_dir.glob("recitebench_*.yaml")
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={half_trained_run / 'model'},dtype=float32",
        tasks=[yaml_path.stem],
        task_manager=TaskManager(include_path=str(task_dir)),
        device="cpu",
        batch_size=4,
        log_samples=True,
    )
    samples = out["samples"][yaml_path.stem]
    theirs = {s["doc"]["prompt"]: bool(s["exact_match"]) for s in samples}
    assert theirs == ours
    acc = out["results"][yaml_path.stem]["exact_match,none"]
    assert acc == pytest.approx(json.loads((tmp_path / "rb" / "results.json").read_text())["exact_match"])


def test_export_names_a_missing_dataset(tmp_path, capsys):
    assert run_cli("export", "lm-eval", tmp_path / "nope", "--out", tmp_path / "t") == 1
    err = capsys.readouterr().err.strip()
    assert "not a frozen dataset" in err and len(err.splitlines()) == 1
