"""docs/STUDY.md's verdict numbers recomputed from the raw results it ships (docs/study_results): a claim's figure
that drifts from its files, or a run file replaced without the text, fails here."""
import json
from pathlib import Path

import pytest

from recitebench.report.study import evaluate, load_study, markdown
from recitebench.stats import seed_proportion_interval, welch_difference

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "study_results"

# each arm of a comparison over seeds: its runs at seeds 0, 1, 2, as study folder / run folder
ARMS = {
    "short": ["study_d_language/cn256", "study_a_size/cn256__q05-lr4e-4-s1", "study_a_size/cn256__q05-lr4e-4-s2"],
    "long": [f"study_b_length/cn512__qwen2-0.5b-scratch{s}" for s in ("", "-s1", "-s2")],
    "en_scratch_q05": ["study_d_language/en256"] + [f"study_d_language/en256__qwen2-0.5b-scratch-s{k}" for k in (1, 2)],
    **{f"{lang}_{init}": [f"study_c_pretrained/{lang}256__smollm2-{init}{s}" for s in ("", "-s1", "-s2")]
       for lang in ("cn", "en") for init in ("pretrained", "scratch")},
}


def seeds(arm: str) -> list[float]:
    """Exact recall in % of each seed's run."""
    return [100 * json.loads((RESULTS / run / "results.json").read_text())["exact_match"] for run in ARMS[arm]]


def signed(x: float) -> str:
    return f"{x:+.1f}".replace("-", "−")


@pytest.fixture(scope="module")
def study_text() -> str:
    return " ".join((ROOT / "docs" / "STUDY.md").read_text().split())  # line breaks fall anywhere in prose


@pytest.mark.parametrize("arm, quoted", [("long", "85.3"), ("en_scratch", "97.9"), ("cn_pretrained", "95.3"),
                                         ("cn_scratch", "72.1"), ("en_pretrained", "99.7"), ("short", "96.5")])
def test_seed_means_in_study_are_the_files_means(study_text, arm, quoted):
    runs = [json.loads((RESULTS / run / "results.json").read_text()) for run in ARMS[arm]]
    iv = seed_proportion_interval([r["n_correct"] for r in runs], [r["n"] for r in runs])
    assert f"{100 * iv['mean']:.1f}" == quoted and 0 < iv["low"] < iv["high"] < 1
    assert f"**{quoted} %** [{100 * iv['low']:.1f}, {100 * iv['high']:.1f}]" in study_text


@pytest.mark.parametrize("a, b", [("long", "short"), ("cn_pretrained", "cn_scratch"), ("en_pretrained", "en_scratch"),
                                  ("en_scratch_q05", "short"), ("en_pretrained", "cn_pretrained")])
def test_differences_over_seeds_in_study_are_recomputed(study_text, a, b):
    d, lo, hi = welch_difference(seeds(a), seeds(b))
    assert f"{signed(d)} [{signed(lo)}, {signed(hi)}]" in study_text.replace(" points [", " [")


def test_the_verdict_table_in_study_is_the_commands_output():
    """STUDY.md carries `recitebench study configs/verdicts.yaml` verbatim: an edited verdict, a changed run file or
    a changed rule fails here. Every interval of the table lies in [0, 100] %."""
    study = evaluate(*load_study(ROOT / "configs" / "verdicts.yaml"))
    assert markdown(study) in (ROOT / "docs" / "STUDY.md").read_text()
    for c in study["claims"]:
        for arm in (c["better"], c["other"]):
            assert 0 <= arm["low"] <= arm["mean"] <= arm["high"] <= 1
        assert c["verdict"] in ("supported", "not supported", "inconclusive")
    by_name = {c["name"]: c for c in study["claims"]}
    assert by_name["d_language_pretrained"]["p_welch"] < 0.05 < by_name["d_language_pretrained"]["p_holm"]
