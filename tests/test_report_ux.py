"""What a researcher reads: outcome examples, the edit-script diff, length bins, run labels, `compare`, and the
per-poem explorer checked in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from conftest import read_jsonl, run_cli
from recitebench.report.diff import diff_html, diff_text
from recitebench.report.plots import length_bins
from recitebench.schema import OUTCOMES


@pytest.fixture(scope="module")
def recited(tmp_path_factory, half_trained_run):
    """A copy of the half-trained one-off run (mixed verdicts), recited, with its report."""
    runs = tmp_path_factory.mktemp("ux")
    run = runs / half_trained_run.name
    shutil.copytree(half_trained_run, run)
    assert run_cli("recite", "--run", run) == 0
    assert run_cli("report", runs) == 0
    return runs, run


def test_report_shows_examples_of_every_outcome_class_with_counts(recited):
    runs, run = recited
    res = json.loads((run / "recite" / "results.json").read_text())
    assert sum(res["outcomes"][o] > 0 for o in OUTCOMES) >= 2  # a mixed run: the test sees more than one class
    md = (runs / "report.md").read_text(encoding="utf-8")
    html = (runs / "report.html").read_text(encoding="utf-8")
    for o in OUTCOMES:
        count = res["outcomes"][o]
        title = f"{o.replace('_', ' ')}: {count:,} of {res['n']:,} poems"
        assert title in md and title in html
        if count:
            assert f"({min(2, count)} shown, drawn at random)" in md.split(title)[1].splitlines()[0]
    md_prov = md.split("## Provenance")[1].strip().splitlines()[0]
    html_prov = html.split("<h2>Provenance</h2>")[1].split("</tr>")[0]
    assert re.findall(r"<th>(.*?)</th>", html_prov) == [c.strip() for c in md_prov.strip("|").split("|")]
    again = runs.parent / "again"
    shutil.copytree(runs, again)
    assert run_cli("report", again) == 0  # seeded: the same poems are drawn every time
    body = lambda text: text.split("## Recitations")[1]  # noqa: E731 - the title and date name the folder
    assert body((again / "report.md").read_text(encoding="utf-8")) == body(md)


def test_diff_marks_the_edit_script_not_the_rest_of_the_poem():
    assert diff_text("床前明月光，疑是地上霜。", "床前明日光，疑是地霜。") == "床前明[-月-]{+日+}光，疑是地[-上-]霜。"
    t, p = diff_html("ab\ncd", "ab\ncxd\ufffd")
    assert t == "ab<br>cd" and p.count("<ins>") == 2 and "<del>" not in p
    assert "<mark class=bytes" in p  # bytes that were not UTF-8 are marked, not silently shown as text


def test_length_bins_merge_small_bins_and_keep_every_poem():
    class S:
        def __init__(self, chars, exact):
            self.chars, self.exact = chars, exact

    samples = [S(10, True)] * 30 + [S(40, False)] * 3 + [S(70, True)] * 25 + [S(200, False)] * 2
    bins = length_bins(samples, width=32, min_n=20)
    assert [len(h) for _, _, h in bins] == [30, 30]  # 3 poems joined the next bin, the last 2 the one before
    assert bins[0][:2] == (1, 32) and bins[1][:2] == (33, 224)


def test_one_off_runs_are_labelled_from_their_config_and_compare_stays_aligned(recited, half_trained_run, capsys,
                                                                             tmp_path):
    runs, run = recited
    assert run_cli("ls", runs) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(run.name))
    assert run.name in line
    from recitebench.rundir import RunDir

    assert RunDir(run).labels() == ("cn20", "tiny")  # the dataset folder and the model preset, not the run folder
    twin = tmp_path / run.name  # the same files in another folder (the same folder twice is refused)
    shutil.copytree(run, twin)
    assert run_cli("compare", run, twin) == 0
    lines = capsys.readouterr().out.splitlines()
    starts = {tuple(m.start() for m in re.finditer(r"(?<=  )\S", ln)) for ln in lines}
    assert len(starts) == 1, lines  # every row's columns start at the same place
    assert any(ln.split()[:2] == ["dataset", "cn20"] for ln in lines)
    assert lines[-1].split()[-3:] == ["+0.0", "[+0.0,", "+0.0]"]  # a run against its copy: no difference, no doubt


def test_compare_reads_a_run_copied_without_its_per_poem_log(recited, tmp_path, capsys):
    _, run = recited
    copy = tmp_path / "copy"  # docs/study_results keeps results.json and metrics, not samples.jsonl
    shutil.copytree(run, copy)
    (copy / "recite" / "samples.jsonl").unlink()
    assert run_cli("compare", run, copy) == 0
    assert capsys.readouterr().out.splitlines()[-1].split("]")[-1].split() == ["-", "no", "samples.jsonl"]
    (tmp_path / "other").mkdir()  # and a report over it beside a run that has its log
    shutil.copytree(run, tmp_path / "other" / "full")
    shutil.move(copy, tmp_path / "other" / "copy")
    assert run_cli("report", tmp_path / "other") == 0
    md = (tmp_path / "other" / "report.md").read_text(encoding="utf-8")
    assert md.count("No per-poem log (recite/samples.jsonl) was kept for this run") == 1
    assert "| copy |" in md and "| full |" in md  # both runs in the outcome table


def test_paired_difference_counts_poems_both_runs_recited():
    from recitebench.report.tables import paired_difference

    first = {f"p{i}": i < 90 for i in range(100)}  # 90 %
    other = {f"p{i}": i < 95 for i in range(100)} | {"extra": False}  # 95 % on the shared poems; "extra" not shared
    d, lo, hi = paired_difference(first, other)
    assert d == pytest.approx(0.05)
    assert 0.0 < lo < 0.05 < hi <= 0.1  # the five poems only the second run recited: an interval above zero
    assert paired_difference(first, {"q": True}) == (0.0, 0.0, 0.0)  # nothing in common


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium (CI installs the chromium package)")
def test_explorer_filters_rows_in_headless_chromium(recited):
    """The explorer's own script, run by a real browser: the URL fragment filters to one outcome."""
    runs, run = recited
    samples = read_jsonl(run / "recite" / "samples.jsonl")
    outcome = next(o for o in ("forgotten", "severe_distortion", "minor_distortion") if any(
        s["outcome"] == o for s in samples))
    url = (runs / "report.html").resolve().as_uri() + f"#outcome={outcome}&open"
    dom = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120).stdout
    body = dom.split("<tbody id=\"xrows\">")[1].split("</tbody>")[0]
    shown = re.findall(r'data-outcome="(\w+)"', body)
    assert shown == [outcome] * sum(s["outcome"] == outcome for s in samples)
    assert f"{len(shown)} of {len(samples)} poems" in dom
    panel = dom.split('id="xdiff">')[1].split("<table")[0]
    assert "<del>" in panel or "<ins>" in panel  # `open`: the first matching poem's aligned diff is drawn
