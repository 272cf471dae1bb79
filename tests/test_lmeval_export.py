"""`recitebench export lm-eval`: the exported task, run by lm-evaluation-harness's own Python API on a tiny local
model, gives the same per-poem verdicts as `recitebench recite`."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import read_jsonl, run_cli

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is a dev dependency (pip install -e '.[dev]')")


@pytest.mark.slow
def test_exported_task_gives_recitebench_verdicts(half_trained_run, small_cn, tmp_path):
    from lm_eval.tasks import TaskManager

    assert run_cli("recite", "--run", half_trained_run, "--no-certify", "--out", tmp_path / "rb") == 0
    ours = {s["prompt"]: s["exact"] for s in read_jsonl(tmp_path / "rb" / "samples.jsonl")}
    assert 0 < sum(ours.values()) < len(ours)  # mixed verdicts: agreement is not trivial
    assert run_cli("export", "lm-eval", small_cn, "--out", tmp_path / "exported") == 0
    task_dir = tmp_path / "elsewhere" / "task"
    task_dir.parent.mkdir()
    shutil.move(tmp_path / "exported", task_dir)  # relocatable: the task reads the poems beside its utils.py
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
    # lm-eval's samples back into recitebench: the same verdicts, and the model's bits as `recite` measured them
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(s, default=str) + "\n" for s in samples))
    assert run_cli("import", "lm-eval", tmp_path / "samples.jsonl", "--data", small_cn, "--out", tmp_path / "imp",
                   "--model", half_trained_run / "model") == 0
    imported = {s["prompt"]: s for s in read_jsonl(tmp_path / "imp" / "samples.jsonl")}
    assert {k: s["exact"] for k, s in imported.items()} == ours
    bits = {s["prompt"]: s["nll_bits"] for s in read_jsonl(tmp_path / "rb" / "samples.jsonl")}
    assert all(imported[k]["nll_bits"] == pytest.approx(bits[k], rel=1e-4) for k in bits)
    res = json.loads((tmp_path / "imp" / "results.json").read_text())
    assert res["exact_match"] == pytest.approx(acc) and res["decoder"] == "lm-eval"


def test_export_names_a_missing_dataset(tmp_path, capsys):
    assert run_cli("export", "lm-eval", tmp_path / "nope", "--out", tmp_path / "t") == 1
    err = capsys.readouterr().err.strip()
    assert "not a frozen dataset" in err and len(err.splitlines()) == 1


def test_the_task_names_no_absolute_data_path_and_follows_the_template(small_cn, tmp_path):
    import yaml

    for template, text in (("plain", "{{prompt}}\n"), ("chat", "{{prompt}}")):
        out = tmp_path / template
        assert run_cli("export", "lm-eval", small_cn, "--out", out, "--template", template) == 0
        (path,) = out.glob("recitebench_*.yaml")
        raw = path.read_text()
        task = yaml.safe_load(raw.replace("!function ", ""))
        assert task["doc_to_text"] == text and "data_files" not in raw and "custom_dataset" in task
        assert str(out) not in raw.split("metadata:")[0]  # no path of this machine in what the harness loads


def test_two_datasets_in_folders_of_one_name_export_two_tasks(small_cn, shared, tmp_path):
    import shutil

    other = tmp_path / "b" / small_cn.name
    assert run_cli("data", "build", "--preset", "cn-poems", "--source", shared / "data" / "cn_poems.jsonl.xz",
                   "--n", "20", "--max-chars", "64", "--seed", "1", "--out", other) == 0
    same = shutil.copytree(small_cn, tmp_path / "c" / small_cn.name)
    names = []
    for data in (small_cn, other, same):
        assert run_cli("export", "lm-eval", data, "--out", tmp_path / "tasks" / str(len(names))) == 0
        (task,) = (tmp_path / "tasks" / str(len(names))).glob("recitebench_*.yaml")
        names.append(task.stem)
    assert names[0] != names[1] and names[0] == names[2]  # named by folder and content: a copy is the same task


def test_import_grades_an_lmeval_samples_file_and_names_bad_lines(small_cn, tmp_path, capsys):
    poems = read_jsonl(small_cn / "poems.jsonl")
    rows = [{"doc_id": i, "doc": {"id": p["id"], "prompt": p["prompt"], "target": p["target"]},
             "filtered_resps": [p["target"] if i % 2 == 0 else p["target"][:3]]} for i, p in enumerate(poems)]
    f = tmp_path / "samples.jsonl"
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    assert run_cli("import", "lm-eval", f, "--data", small_cn, "--out", tmp_path / "imp") == 0
    res = json.loads((tmp_path / "imp" / "results.json").read_text())
    assert res["n"] == 20 and res["n_correct"] == 10 and res["outcomes"]["correct"] == 10
    assert res["memory"] == {} and all(s["nll_bits"] is None for s in read_jsonl(tmp_path / "imp" / "samples.jsonl"))
    first = rows[0]
    for bad, message in [({**first, "doc": {**first["doc"], "id": "nope"}}, "samples.jsonl:1: document 'nope' is not"),
                         ({**first, "doc": {**first["doc"], "target": "x"}}, "has another poem text"),
                         ({"doc": first["doc"]}, "no text response")]:
        f.write_text(json.dumps(bad, ensure_ascii=False) + "\n")
        assert run_cli("import", "lm-eval", f, "--data", small_cn, "--out", tmp_path / "bad") == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_the_report_reads_an_imported_recitation_like_a_run(small_cn, tmp_path):
    poems = read_jsonl(small_cn / "poems.jsonl")
    rows = [{"doc_id": i, "doc": {"id": p["id"], "prompt": p["prompt"], "target": p["target"]},
             "filtered_resps": [p["target"] if i < 5 else ""]} for i, p in enumerate(poems)]
    f = tmp_path / "samples_recitebench_cn20.jsonl"
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    runs = tmp_path / "runs"
    assert run_cli("import", "lm-eval", f, "--data", small_cn, "--out", runs / "lmeval" / "recite") == 0
    assert run_cli("report", runs) == 0
    md = (runs / "report.md").read_text()
    table = md.split("Wilson)")[1].split("##")[0]
    assert f"| {small_cn.name} | 25.0% [" in table and f"lm-eval samples {f.name}" in table  # 5 of 20, labelled
    assert "| lmeval | 20 | 5 | 0 | 0 | 15 |" in md  # the graded outcomes of the imported texts


@pytest.mark.slow
def test_the_exported_extraction_probe_gives_recitebench_verdicts(half_trained_run, small_cn, tmp_path):
    """`export lm-eval --extraction K M`: lm-eval's verdicts on the probe equal `recitebench extract`'s, poem by poem
    (on the contexts that re-encode to their own tokens; the others are marked)."""
    from lm_eval.tasks import TaskManager

    assert run_cli("extract", "--run", half_trained_run, "--prefix-tokens", "3", "--continuation-tokens", "12",
                   "--device", "cpu", "--out", tmp_path / "rb") == 0
    ours = {r["id"]: r["exact"] for r in read_jsonl(tmp_path / "rb" / "extraction.jsonl")}
    assert 0 < sum(ours.values()) < len(ours)
    assert run_cli("export", "lm-eval", small_cn, "--out", tmp_path / "task", "--extraction", "3", "12",
                   "--tokenizer", half_trained_run / "model") == 0
    (yaml_path,) = (tmp_path / "task").glob("recitebench_*_extract_k3_m12.yaml")
    docs = read_jsonl(tmp_path / "task" / "poems.jsonl")
    faithful = {d["id"] for d in docs if d["token_faithful"]}
    assert len(faithful) >= 5  # the tiny BPE merges across the cut in many contexts: the rest is compared
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={half_trained_run / 'model'},dtype=float32",
                                  tasks=[yaml_path.stem], task_manager=TaskManager(include_path=str(tmp_path / "task")),
                                  device="cpu", batch_size=4, log_samples=True)
    theirs = {s["doc"]["id"]: bool(s["exact_match"]) for s in out["samples"][yaml_path.stem]}
    assert {i: theirs[i] for i in faithful} == {i: ours[i] for i in faithful}
    assert 0 < sum(ours[i] for i in faithful) < len(faithful)  # mixed verdicts there too: agreement is not trivial
