"""Every entry point gets the same rules: the CLI, a grid and the capacity protocol resume, recite and validate alike,
and environment faults (a binary spec, a read-only run, a full disk) end in one line naming the path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import KILL, ROOT, run_cli
from test_bad_inputs import one_line_error

SPEC = """
name: g
runs_dir: {runs}
datasets:
  cn: {{preset: cn-poems, source: {src}, n: 6, max_chars: 48}}
models:
  tiny: {{model: tiny}}
train: {{epochs: 4, lr: {lr}, batch_size: 4, checkpoint_every: 2, recall_every: 0, progress: false}}
"""


def test_a_grid_resume_refuses_an_edited_spec(tmp_path, shared):
    """The resume guard lives in the train stage: an interrupted grid run whose spec changed its learning rate is
    refused (recorded as the run's failure), not resumed on another schedule."""
    spec, runs = tmp_path / "g.yaml", tmp_path / "runs"
    src = shared / "data" / "cn_poems.jsonl.xz"
    spec.write_text(SPEC.format(runs=runs, src=src, lr="3.0e-3"))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    killed = subprocess.run([sys.executable, KILL, "2", "run", str(spec), "--executor", "local"], env=env,
                            capture_output=True, text=True)
    assert killed.returncode == 137, killed.stderr
    assert (runs / "cn__tiny" / "checkpoint.pt").is_file()
    spec.write_text(SPEC.format(runs=runs, src=src, lr="1.0e-2"))
    again = subprocess.run([sys.executable, "-m", "recitebench", "run", str(spec), "--executor", "local"], env=env,
                           capture_output=True, text=True)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    reason = json.loads((runs / "cn__tiny" / "logs" / "failed.json").read_text())["reason"]
    assert "lr 0.003 -> 0.01" in reason and "--resume" in reason
    assert [json.loads(x)["epoch"] for x in (runs / "cn__tiny" / "metrics.jsonl").open()] == [1, 2]  # untouched


def test_recite_run_applies_or_refuses_model_options(trained_run, tmp_path, capsys):
    """`recite --run` never drops a model option: attention is applied, an option naming another model than the
    run's is refused."""
    assert run_cli("recite", "--run", trained_run, "--template", "chat", "--out", tmp_path / "a") == 1
    one_line_error(capsys, "--template chat", "the run's own model", "'plain'")
    assert run_cli("recite", "--run", trained_run, "--model", "small", "--out", tmp_path / "a") == 1
    one_line_error(capsys, "--model small")
    assert not (tmp_path / "a").exists()
    assert run_cli("recite", "--run", trained_run, "--attn-implementation", "eager", "--limit", "2",
                   "--out", tmp_path / "b") == 0
    res = json.loads((tmp_path / "b" / "results.json").read_text())
    assert res["config"]["model"]["attn_implementation"] == "eager"
    assert res["config"]["model"]["template"] == "plain"  # the run's own


@pytest.mark.parametrize("flag,needle", [("--reference", "did you mean 'base'"), ("--model", "did you mean 'tiny'")])
def test_a_typo_is_refused_where_the_config_is_built(tmp_path, capsys, flag, needle):
    value = "bsae" if flag == "--reference" else "tinyy"
    assert run_cli("recite", "--model", "tiny", "--data", tmp_path, flag, value, "--out", tmp_path / "o") == 1
    one_line_error(capsys, repr(value), needle)
    spec = tmp_path / "s.yaml"
    spec.write_text(f"datasets:\n  cn: {{n: 4}}\nmodels:\n  m: {{model: {'tiny' if flag == '--reference' else value}}}"
                    + ("\nrecite: {reference: bsae}\n" if flag == "--reference" else "\n"))
    assert run_cli("run", spec, "--dry-run") == 1  # the dry run fails where the run would
    one_line_error(capsys, str(spec), needle)


def test_a_spec_that_is_not_text_is_one_line(tmp_path, capsys):
    spec = tmp_path / "binary.yaml"
    spec.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    assert run_cli("run", spec, "--dry-run") == 1
    one_line_error(capsys, str(spec), "not a text file")


@pytest.mark.parametrize("text,needle", [
    ("datasets:\n  cn: {n: 4}\n  cn: {n: 5}\nmodels:\n  tiny: {model: tiny}\n", "duplicate key 'cn' (line 3"),
    ("datasets:\n  a__b: {n: 4}\nmodels:\n  c: {model: tiny}\n", "datasets.a__b"),
])
def test_specs_refuse_duplicate_keys_and_ambiguous_names(tmp_path, capsys, text, needle):
    spec = tmp_path / "s.yaml"
    spec.write_text(text)
    assert run_cli("run", spec, "--dry-run") == 1
    one_line_error(capsys, str(spec), needle)


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount needs privileges here: {done.stderr.strip()}")


@pytest.fixture
def read_only_copy(tmp_path, trained_run):
    """The trained run behind a read-only bind mount (root ignores file modes, not a read-only mount)."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    shutil.copytree(trained_run, src)
    ro.mkdir()
    _mount("--bind", str(src), str(ro))
    try:
        _mount("-o", "remount,ro,bind", str(ro))
        yield ro
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)  # lazy: a model file may still be mapped


def test_recite_on_a_read_only_run_is_one_line(read_only_copy, tmp_path, capsys):
    assert run_cli("recite", "--run", read_only_copy, "--limit", "2") == 1
    one_line_error(capsys, str(read_only_copy / "recite"), "Read-only file system", "--out")
    assert not (read_only_copy / "recite").exists()
    assert run_cli("recite", "--run", read_only_copy, "--limit", "2", "--out", tmp_path / "elsewhere") == 0


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB file system with `left` KiB free."""
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk))
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("left_kib", [0, 8])
def test_data_build_onto_a_full_disk_leaves_nothing(full_disk, shared, capsys, left_kib):
    (full_disk / "fill").write_bytes(b"\0" * ((64 - left_kib) * 1024))
    out = full_disk / "d"
    code = run_cli("data", "build", "--preset", "cn-poems", "--source", shared / "data" / "cn_poems.jsonl.xz",
                   "--n", "40", "--max-chars", "200", "--out", out)
    assert code == 1
    one_line_error(capsys, "No space left on device")
    assert sorted(p.name for p in full_disk.iterdir()) == ["fill"]  # no dataset, no temporary file, no lock


def test_plain_greedy_generate_passes_one_generation_config(trained_run, tmp_path):
    """Transformers deprecates a generation_config passed together with generation keywords (and says so on every
    recitation); recitation passes one config. The model's own saved settings still cannot reach it: test_verdicts.
    A fresh process (Transformers warns once per process) of the recitebench under test."""
    import recitebench

    env = dict(os.environ, PYTHONPATH=str(Path(recitebench.__file__).parents[1]))
    done = subprocess.run([sys.executable, "-m", "recitebench", "recite", "--run", str(trained_run), "--no-certify",
                           "--decoder", "generate", "--limit", "3", "--out", str(tmp_path / "o")], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "exact recall" in done.stdout and "together with generation-related" not in done.stderr


def test_the_handler_table_matches_the_parser():
    from recitebench.cli import HANDLERS, build_parser

    parser = build_parser()
    commands = {}
    for action in parser._subparsers._group_actions:
        for name, sub in action.choices.items():
            nested = [a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction"]
            commands.update({(name, n): 1 for a in nested for n in a.choices} if nested else {(name, None): 1})
    assert set(commands) == set(HANDLERS)


SHIPPED = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("spec", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_spec_dry_runs(spec, tmp_path, capsys):
    if spec.name.startswith("capacity_"):
        assert run_cli("capacity", spec, "--dry-run", "--out", tmp_path) == 0
        stacked = "points in one stack" in capsys.readouterr().out  # the stacked engine plans groups, not grids
        assert stacked or (tmp_path / "sweep.yaml").is_file()
    elif spec.name == "verdicts.yaml":  # a study: its table from the shipped run folders
        assert run_cli("study", spec) == 0 and "| verdict |" in capsys.readouterr().out
    else:
        assert run_cli("run", spec, "--dry-run", "--runs-dir", tmp_path) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_a_dry_run_fails_where_the_run_would_on_a_missing_corpus(tmp_path, capsys):
    """A dataset still to build whose corpus is not there: the dry run names the spec's dataset and the corpus (the
    run would have failed at its first dataset build), and nothing is written."""
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\ndatasets:\n  cn: {preset: cn-poems, source: 'shared:no_such_corpus', n: 4}\n"
                    "models:\n  tiny: {model: tiny}\n")
    assert run_cli("run", spec, "--dry-run", "--runs-dir", tmp_path / "runs") == 1
    one_line_error(capsys, "datasets.cn", "shared:no_such_corpus: no such corpus")
    assert not (tmp_path / "runs").exists()


def test_a_dry_run_fails_where_the_run_would_on_too_few_poems(tmp_path, capsys):
    """A corpus with fewer poems passing the filters than a dataset asks for: the dry run fails with the build's own
    one-line error (the count, the filter to relax), before any dataset is written; enough poems dry-run clean."""
    corpus = tmp_path / "poems.jsonl"
    corpus.write_text("".join(json.dumps({"author": f"A{i}", "title": f"T{i}", "content": f"line {i}\nline two"}) + "\n"
                              for i in range(6)))
    spec = tmp_path / "s.yaml"
    for n, rc in ((10, 1), (4, 0)):
        spec.write_text(f"name: s\ndatasets:\n  en: {{preset: en-poems, source: {corpus}, n: {n}, max_chars: 256}}\n"
                        "models:\n  tiny: {model: tiny}\n")
        assert run_cli("run", spec, "--dry-run", "--runs-dir", tmp_path / "runs") == rc
        if rc:
            one_line_error(capsys, "datasets.en", "only 6 poems pass the filters, 10 requested", "lower --n")
        assert not (tmp_path / "runs").exists()


def test_every_spec_works_from_another_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_cli("capacity", ROOT / "configs" / "capacity_ladder_random.yaml", "--dry-run", "--out", "o") == 0
    sweep = Path("o/sweep.yaml").read_text()
    assert str(ROOT / "configs" / "models" / "ladder-1m.json") in sweep


def test_a_full_disk_during_training_says_so(tmp_path, small_cn, capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk))
    try:
        assert run_cli("train", "--data", small_cn, "--model", "tiny", "--epochs", "3", "--checkpoint-every", "1",
                       "--recall-every", "0", "--no-progress", "--out", disk / "r") == 1
        one_line_error(capsys, "checkpoint.pt", "No space left on device")
        assert not list(disk.rglob("*.tmp"))  # no half-written checkpoint beside the run
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("argv, usage", [(["train", "--bogus"], "recitebench train"),
                                         (["data", "build", "--out", "x", "--nope"], "recitebench data build"),
                                         (["study", "--what"], "recitebench study")])
def test_an_unknown_option_is_reported_by_its_subcommand(argv, usage, capsys):
    with pytest.raises(SystemExit) as e:
        run_cli(*argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith(f"usage: {usage} ") and f"{usage}: error: unrecognized" in err


def test_dotted_overrides_reach_the_spec_and_bad_ones_are_one_line(tmp_path, capsys):
    demo = ROOT / "configs" / "demo.yaml"
    assert run_cli("run", demo, "--dry-run", "--runs-dir", tmp_path, "--set", "train.epochs=3",
                   "--set", "models.tiny.train.epochs=7") == 0
    out = capsys.readouterr().out
    assert "model=tiny epochs=7" in out and "model=small epochs=3" in out
    for bad, message in [("train.epochs", "expected KEY.PATH=VALUE"), ("name.x=1", "is not a mapping"),
                         ("models.tiny.train.lr=fast", "field 'lr' must be float"), ("colour=red", "unknown key")]:
        assert run_cli("run", demo, "--dry-run", "--runs-dir", tmp_path, "--set", bad) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert run_cli("capacity", ROOT / "configs" / "capacity_tokens.yaml", "--dry-run", "--out", tmp_path / "c",
                   "--set", "capacity.seeds=[0, 1, 2]") == 0
    assert "12 points in one stack" in capsys.readouterr().out  # 3 sizes x 3 seeds + 3 more rates (9 with 2 seeds)
