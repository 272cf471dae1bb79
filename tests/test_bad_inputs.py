"""Bad inputs and faults through the real CLI: non-zero exit, no traceback, one line naming the file or field,
nothing half-written."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import read_jsonl, run_cli


def one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    for needle in needles:
        assert needle in last, (needle, err)
    return last


def build_args(src, out, *extra):
    return ["data", "build", "--preset", "cn-poems", "--source", src, "--n", "20", "--max-chars", "64", "--out", out,
            *extra]


def test_data_build_output_checks(tmp_path, shared, capsys, small_cn):
    src = shared / "data" / "cn_poems.jsonl.xz"
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert run_cli(*build_args(src, afile)) == 1
    one_line_error(capsys, str(afile), "existing file")
    assert run_cli(*build_args(src, afile / "sub")) == 1
    one_line_error(capsys, "not a writable folder")
    copy = tmp_path / "copy"
    shutil.copytree(small_cn, copy)
    before = (copy / "poems.jsonl").read_bytes()
    assert run_cli(*build_args(src, copy, "--seed", "1")) == 1  # another dataset is there: refuse
    one_line_error(capsys, str(copy), "--overwrite")
    assert (copy / "poems.jsonl").read_bytes() == before
    assert run_cli(*build_args(src, copy, "--seed", "1", "--overwrite")) == 0
    assert (copy / "poems.jsonl").read_bytes() != before


def test_manifest_is_byte_identical_across_builds(tmp_path, shared):
    src = shared / "data" / "cn_poems.jsonl.xz"
    assert run_cli(*build_args(src, tmp_path / "a")) == 0
    assert run_cli(*build_args(src, tmp_path / "b")) == 0
    a, b = (tmp_path / "a" / "manifest.json").read_bytes(), (tmp_path / "b" / "manifest.json").read_bytes()
    assert a == b and b"created_at" not in a


@pytest.mark.parametrize("flags,needle", [
    (["--weight-decay", "-1"], "weight_decay"),
    (["--grad-clip", "-1"], "grad_clip"),
    (["--betas", "2", "3"], "betas"),
    (["--template", "chatt"], "--template"),
])
def test_train_rejects_bad_values(tmp_path, small_cn, capsys, flags, needle):
    code = None
    try:
        code = run_cli("train", "--data", small_cn, "--model", "tiny", "--epochs", "1", "--out", tmp_path / "r", *flags)
    except SystemExit as e:  # argparse rejects a value outside its choices with exit 2 and a usage line
        code = e.code
    assert code in (1, 2)
    one_line_error(capsys, needle)
    assert not (tmp_path / "r").exists()


def test_resume_faults(tmp_path, small_cn, capsys):
    run = tmp_path / "r"
    args = ["train", "--data", small_cn, "--model", "tiny", "--epochs", "4", "--checkpoint-every", "2",
            "--no-progress", "--out", run]
    import subprocess
    import sys

    from conftest import KILL, ROOT

    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    assert subprocess.run([sys.executable, KILL, "2", *map(str, args)], env=env, capture_output=True).returncode == 137
    assert run_cli("train", "--out", run, "--resume", "--epochs", "9") == 1
    one_line_error(capsys, "config.yaml", "epochs 4 -> 9")
    good = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(os.urandom(4096))
    assert run_cli("train", "--out", run, "--resume") == 1
    one_line_error(capsys, "checkpoint.pt", "unreadable")
    (run / "checkpoint.pt").write_bytes(good)
    assert run_cli("train", "--out", run, "--resume", "--no-progress") == 0
    assert json.loads((run / "train_summary.json").read_text())["epochs_done"] == 4


def test_partial_run_folder_needs_overwrite(tmp_path, small_cn, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text("train: {}\nmodel: {}\n")  # what a run that died in epoch 1 leaves
    assert run_cli("train", "--data", small_cn, "--model", "tiny", "--epochs", "1", "--out", run) == 1
    one_line_error(capsys, str(run), "--overwrite")
    assert run_cli("train", "--data", small_cn, "--model", "tiny", "--epochs", "1", "--no-progress", "--overwrite",
                   "--out", run) == 0


def test_rebuilt_dataset_is_refused_and_paths_are_absolute(tmp_path, small_cn, shared, trained_run, capsys):
    copy = tmp_path / "data"
    shutil.copytree(small_cn, copy)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert run_cli("train", "--data", "data", "--model", "tiny", "--epochs", "1", "--no-progress",
                       "--out", "r") == 0
    finally:
        os.chdir(cwd)
    cfg = (tmp_path / "r" / "config.yaml").read_text()
    assert f"data: {copy.resolve()}" in cfg  # recorded absolute
    assert run_cli(*build_args(shared / "data" / "cn_poems.jsonl.xz", copy, "--seed", "3", "--overwrite")) == 0
    capsys.readouterr()
    assert run_cli("recite", "--run", tmp_path / "r") == 1
    one_line_error(capsys, "the dataset changed", "--data")


def test_model_folder_faults(tmp_path, trained_run, small_cn, capsys):
    broken = tmp_path / "m"
    shutil.copytree(trained_run / "model", broken)
    st = broken / "model.safetensors"
    st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
    assert run_cli("recite", "--model", broken, "--data", small_cn, "--out", tmp_path / "o") == 1
    one_line_error(capsys, str(broken), "cannot load model")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(trained_run / "model" / "config.json", bare)
    shutil.copy(trained_run / "model" / "model.safetensors", bare)
    assert run_cli("recite", "--model", bare, "--data", small_cn, "--out", tmp_path / "o") == 1
    one_line_error(capsys, str(bare), "no tokenizer files")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("section,needle", [
    ("train: [1, 2]\n", "train: must be a mapping"),
    ("train: 5\n", "train: must be a mapping"),
    ("models:\n  tiny: tiny\n", "models.tiny: must be a mapping"),
    ("models:\n  tiny: {model: tiny, template: chatt}\n", "template must be one of"),
    ("recite: {decoder: statik}\n", "decoder must be one of"),
    ("train: {precision: bf16x}\n", "precision must be one of"),
])
def test_spec_sections_and_choices(tmp_path, capsys, section, needle):
    spec = tmp_path / "s.yaml"
    spec.write_text("datasets:\n  cn: {preset: cn-poems, n: 4}\n" + ("models:\n  tiny: {model: tiny}\n"
                    if not section.startswith("models") else "") + section)
    assert run_cli("run", spec, "--dry-run") == 1
    one_line_error(capsys, str(spec), needle)


def test_ls_writes_nothing(tmp_path, capsys):
    assert run_cli("ls", tmp_path) == 0
    assert list(tmp_path.iterdir()) == []


def test_outputs_respect_the_umask(tmp_path, small_cn):
    old = os.umask(0o022)
    try:
        assert run_cli("data", "build", "--preset", "cn-poems", "--source", small_cn / "poems.jsonl", "--columns",
                       "content=target,title=title,author=author,dynasty=dynasty", "--n", "5", "--out",
                       tmp_path / "d") == 0
    finally:
        os.umask(old)
    assert (tmp_path / "d" / "poems.jsonl").stat().st_mode & 0o777 == 0o644
    assert read_jsonl(tmp_path / "d" / "poems.jsonl")
