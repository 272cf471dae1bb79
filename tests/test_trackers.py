"""--report-to: TensorBoard, W&B (offline by default) and MLflow get the run's config, every epoch's scalars against
the optimizer step, the train summary, and the recitations of the run; a misuse is a one-line error."""
import json

import pytest

from conftest import run_cli
from recitebench.io import read_json, read_jsonl


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, small_cn):
    mp = pytest.MonkeyPatch()
    mp.delenv("WANDB_MODE", raising=False)  # the default must keep everything on this machine
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.setenv("WANDB_SILENT", "true")
    out = tmp_path_factory.mktemp("tracked") / "run"
    assert run_cli("train", "--data", small_cn, "--model", "tiny", "--epochs", "3", "--recall-every", "1",
                   "--report-to", "tensorboard,wandb,mlflow", "--no-progress", "--out", out) == 0
    assert run_cli("recite", "--run", out) == 0
    yield out
    mp.undo()


def test_tensorboard_gets_the_curve_against_steps_the_config_and_the_recitation(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tracked / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    rows = read_jsonl(tracked / "metrics.jsonl")
    assert [e.step for e in events.Scalars("loss")] == [r["step"] for r in rows] and rows[-1]["step"] > 3
    assert [e.value for e in events.Scalars("recall")] == pytest.approx([r["recall"] for r in rows])
    assert {"epoch", "lr", "train/train_seconds"} <= tags
    assert "config/text_summary" in events.Tags()["tensors"]
    results = read_json(tracked / "recite" / "results.json")
    assert events.Scalars("recite/recite/exact_match")[0].value == pytest.approx(results["exact_match"])
    assert events.Scalars("recite/recite/memory/nll_bits")[0].value == pytest.approx(results["memory"]["nll_bits"])
    assert {e.step for e in events.Scalars("recite/recite/n")} == {rows[-1]["step"]}  # at the run's last step


def test_mlflow_holds_params_metrics_and_the_recitation_in_the_training_run(tracked):
    from mlflow.tracking import MlflowClient

    record = read_json(tracked / "trackers.json")
    client = MlflowClient(tracking_uri=record["mlflow"]["tracking_uri"])
    run = client.get_run(record["mlflow"]["run_id"])
    rows = read_jsonl(tracked / "metrics.jsonl")
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [r["step"] for r in rows]
    assert json.loads(run.data.params["train.epochs"]) == 3 and run.data.params["model.model"] == '"tiny"'
    results = read_json(tracked / "recite" / "results.json")
    assert run.data.metrics["recite/recite/exact_match"] == pytest.approx(results["exact_match"])
    assert run.data.metrics["recite/recite/memory/nll_bits"] == pytest.approx(results["memory"]["nll_bits"])
    assert "config.json" in [a.path for a in client.list_artifacts(run.info.run_id)]


def test_wandb_runs_offline_in_one_group_a_train_and_a_recite_run(tracked):
    record = read_json(tracked / "trackers.json")["wandb"]
    assert record["mode"] == "offline" and [r["job_type"] for r in record["runs"]] == ["train", "recite"]
    logs = {r["id"]: list((tracked / "wandb").glob(f"offline-run-*-{r['id']}/run-{r['id']}.wandb")) for r in
            record["runs"]}
    assert all(len(found) == 1 for found in logs.values())
    train, recite = (logs[r["id"]][0].read_bytes() for r in record["runs"])
    assert b"loss" in train and b"recall" in train and b"train_seconds" in train and b"batch_tokens" in train
    assert b"recite/recite/exact_match" in recite and b"recite/recite/exact_match" not in train


def test_an_unknown_tracker_is_a_one_line_error_before_anything_is_written(tmp_path, small_cn, capsys):
    out = tmp_path / "r"
    assert run_cli("train", "--data", small_cn, "--model", "tiny", "--epochs", "1",
                   "--report-to", "tensorboard,neptune", "--out", out) != 0
    err = capsys.readouterr().err.strip()
    assert "neptune" in err and "tensorboard, wandb, mlflow" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_run_that_reported_to_nothing_writes_no_tracker_record(trained_run):
    assert not (trained_run / "trackers.json").exists()
