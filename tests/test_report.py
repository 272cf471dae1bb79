"""Experiments, the run index and the report, through `recitebench run` on a tiny spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest

from conftest import KILL, ROOT, run_cli

SPEC = """
name: mini
runs_dir: {runs}
datasets:
  cn: {{preset: cn-poems, source: shared:cn_poems, n: 12, max_chars: 60}}
  en: {{preset: en-poems, source: shared:en_poems, n: 12, max_chars: 120}}
models:
  tiny: {{model: tiny}}
train: {{epochs: 40, lr: 3.0e-3, warmup_ratio: 0.2, batch_size: 8, recall_every: 5, checkpoint_every: 10}}
recite: {{verify: 3}}
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    base = tmp_path_factory.mktemp("exp")
    spec = base / "mini.yaml"
    spec.write_text(SPEC.format(runs=base / "runs"))
    assert run_cli("run", spec) == 0
    return spec, base / "runs"


def test_run_writes_runs_and_report_with_the_runs_numbers(finished):
    spec, runs = finished
    for name in ("cn__tiny", "en__tiny"):
        assert (runs / name / "recite" / "results.json").is_file()
        assert (runs / name / "metrics.jsonl").is_file()
    html = (runs / "report.html").read_text(encoding="utf-8")
    md = (runs / "report.md").read_text(encoding="utf-8")
    for name in ("cn__tiny", "en__tiny"):
        res = json.loads((runs / name / "recite" / "results.json").read_text())
        lo, hi = res["exact_match_ci95"]
        acc = f"{100 * res['exact_match']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"
        assert acc in html and acc in md
    assert html.count("data:image/png;base64,") == 3  # self-contained: every figure embedded
    for fig in ("memory_curves", "accuracy_by_length", "outcomes"):
        png = runs / "report_files" / f"{fig}.png"
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG" and f"report_files/{fig}.png" in md
    assert "Dictation: Dynasty:" in html  # Figure 2/3-style recitation panels name the prompt
    assert "git" in html and "torch" in html  # provenance


def test_rerun_skips_finished_runs(finished, capsys):
    spec, runs = finished
    before = (runs / "cn__tiny" / "model" / "model.safetensors").stat().st_mtime_ns
    assert run_cli("run", spec) == 0
    out = capsys.readouterr().out
    summary = {ln.split()[0]: ln.split()[1] for ln in out.splitlines() if ln.startswith(("cn__", "en__"))}
    assert summary == {"cn__tiny": "done", "en__tiny": "done"} and "running" not in out
    assert (runs / "cn__tiny" / "model" / "model.safetensors").stat().st_mtime_ns == before


def test_ls_and_compare(finished, capsys):
    spec, runs = finished
    assert run_cli("ls", runs) == 0
    out = capsys.readouterr().out
    assert "cn__tiny" in out and "en__tiny" in out and "exact" in out
    assert (runs / "index.sqlite").is_file()
    assert run_cli("compare", runs / "cn__tiny", runs / "en__tiny") == 0
    out = capsys.readouterr().out
    assert "exact_match" in out and "cn__tiny" in out
    assert run_cli("ls", "--models") == 0
    assert "qwen2-0.5b-instruct" in capsys.readouterr().out


def test_dry_run_lists_without_running(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.format(runs=tmp_path / "runs"))
    assert run_cli("run", spec, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "cn__tiny" in out and "todo" in out and not (tmp_path / "runs").exists()
    # the shipped specs dry-run in test_entry_points.py::test_every_shipped_spec_dry_runs
    assert len(sorted((ROOT / "configs").glob("study_*.yaml"))) == 4  # one spec per claim of the paper (STUDY.md)
    for grid in sorted((ROOT / "bench").glob("*.yaml")):  # the benchmarks' grids stay valid specs too
        assert run_cli("run", grid, "--dry-run", "--runs-dir", tmp_path / grid.name) == 0


@pytest.mark.parametrize("bad,message", [
    ("colour: red\n", "unknown key 'colour'"),
    ("train: {epochs: 0}\n", "models.tiny.train: epochs must be positive"),
    ("recite: {bogus: 1}\n", "recite: unknown field 'bogus'"),
    ("grid: [[cn, huge]]\n", "grid names unknown model 'huge'"),
])
def test_spec_validation_names_the_field(tmp_path, capsys, bad, message):
    spec = tmp_path / "s.yaml"
    text = SPEC.format(runs=tmp_path / "runs")
    key = bad.split(":")[0]
    text = "\n".join(line for line in text.splitlines() if not line.startswith(key + ":")) + "\n" + bad
    spec.write_text(text)
    assert run_cli("run", spec, "--dry-run") == 1
    err = capsys.readouterr().err
    assert message in err and str(spec) in err


def test_interrupted_run_resumes(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.format(runs=tmp_path / "runs").replace("epochs: 40", "epochs: 20"))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    args = ["run", str(spec), "--only", "cn__"]
    assert subprocess.run([sys.executable, KILL, "12", *args], env=env, capture_output=True).returncode == 137
    assert (tmp_path / "runs" / "cn__tiny" / "checkpoint.pt").is_file()
    done = subprocess.run([sys.executable, "-m", "recitebench", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "cn__tiny: interrupted" in done.stdout and "resuming" in done.stdout
    metrics = (tmp_path / "runs" / "cn__tiny" / "metrics.jsonl").read_text().splitlines()
    epochs = [json.loads(x)["epoch"] for x in metrics]
    assert epochs == list(range(1, 21))


def test_plots_render_chinese_without_missing_glyphs():
    """A report figure whose titles, legend and tick labels are Chinese renders every glyph."""
    from recitebench.report.collect import RunView
    from recitebench.report.fonts import cjk_font
    from recitebench.report.plots import memory_curves

    font = cjk_font()
    assert font is not None, "no CJK font installed (the Makefile installs fonts-wqy-microhei)"
    assert "last resort" not in font.lower()  # a placeholder-box font is not a CJK font
    metrics = [{"epoch": e, "loss": 3.0 / e, **({"recall": e / 4} if e % 2 == 0 else {})} for e in range(1, 5)]
    run = RunView("唐诗__小模型", ROOT, "唐诗（静夜思）", "小模型", None, metrics, [], {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png = memory_curves([run])
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert png[:4] == b"\x89PNG" and not missing, missing
