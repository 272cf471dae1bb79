"""`recitebench study`: arm intervals inside [0, 1], the verdict rule with its design checks, and spec errors."""
import json

import pytest
import yaml

from conftest import run_cli
from recitebench.config import load_yaml
from recitebench.errors import RecitebenchError
from recitebench.report.study import evaluate, load_study


def _run(root, name, hits, lr, seed=0, n=2000):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"n_correct": hits, "n": n, "exact_match": hits / n, "seed": seed}))
    (folder / "train_summary.json").write_text(json.dumps({"lr": lr}))
    return name


def _arm(root, tag, seed_hits, grid_hits, rates=(1e-4, 2e-4, 4e-4)):
    """An arm whose seeds 1.. run at the grid's middle rate; `grid_hits` per rate on seed 0."""
    grid = [_run(root, f"{tag}-lr{lr:g}", h, lr) for lr, h in zip(rates, grid_hits)]
    best = rates[max(range(len(rates)), key=lambda i: grid_hits[i])]
    seeds = [_run(root, f"{tag}-s{k}", h, best, seed=k) for k, h in enumerate(seed_hits, start=1)]
    return {"label": tag, "seeds": seeds, "grid": grid}


def _study(tmp_path, claims):
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump({"results": "runs", "alpha": 0.05, "effect_of_interest": 0.02, "claims": claims}))
    return evaluate(*load_study(spec), resamples=1000)


def test_three_seeds_at_the_ceiling_keep_their_interval_inside_the_unit_interval(tmp_path):
    """Seeds at 97 / 99.5 / 100 %: a t-interval on the raw proportions reaches past 100 %; the arm's does not."""
    root = tmp_path / "runs"
    hi = _arm(root, "hi", [1940, 1990, 2000], [1900, 1950, 1920])
    lo = _arm(root, "lo", [1700, 1720, 1690], [1650, 1710, 1680])
    claim = _study(tmp_path, {"c": {"better": hi, "other": lo}})["claims"][0]
    arm = claim["better"]
    assert 0 < arm["low"] < arm["mean"] < arm["high"] < 1 and arm["per_seed"] == [0.97, 0.995, 1.0]
    mean = sum(arm["per_seed"]) / 3
    sd = (sum((p - mean) ** 2 for p in arm["per_seed"]) / 2) ** 0.5
    assert mean + 4.303 * sd / 3 ** 0.5 > 1  # the raw t-interval would have left [0, 1]


def test_the_verdict_rule_and_its_design_checks(tmp_path):
    root = tmp_path / "runs"
    clear = {"better": _arm(root, "a", [1980, 1985, 1978], [1950, 1985, 1960]),
             "other": _arm(root, "b", [1600, 1620, 1610], [1550, 1600, 1580])}
    null = {"better": _arm(root, "c", [1800, 1801, 1799], [1750, 1800, 1760]),
            "other": _arm(root, "d", [1800, 1799, 1801], [1760, 1800, 1750])}
    one_seed = {"better": _arm(root, "e", [1985], [1950, 1985, 1960]), "other": clear["other"]}
    edge = {"better": _arm(root, "f", [1980, 1985, 1978], [1985, 1950, 1940]), "other": clear["other"]}
    got = {c["name"]: c for c in _study(tmp_path, {"clear": clear, "null": null, "one_seed": one_seed,
                                                   "edge": edge})["claims"]}
    assert got["clear"]["verdict"] == "supported" and got["clear"]["p_holm"] < 0.05
    assert got["null"]["verdict"] == "not supported" and got["null"]["difference"]["high"] < 0.02
    assert got["one_seed"]["verdict"] == "inconclusive" and got["one_seed"]["p_welch"] is None
    assert any("one seed" in p for p in got["one_seed"]["design_problems"])
    assert got["edge"]["verdict"] == "inconclusive" and "the numbers alone: supported" in got["edge"]["reason"]
    assert any("at the grid's edge" in p for p in got["edge"]["design_problems"])
    assert not got["clear"]["better"]["chosen_on_evaluation_set"]  # its seeds exclude the selection run
    assert got["clear"]["confidence"] == pytest.approx(1 - 0.05 / 3)  # Bonferroni over the three tested claims


def test_study_spec_errors_name_the_field(tmp_path):
    root = tmp_path / "runs"
    good = _arm(root, "a", [1980, 1985], [1950, 1985, 1960])
    spec = tmp_path / "s.yaml"
    for claims, message in [
        ({"x": {"better": {**good, "seeds": ["nope"]}, "other": good}}, "claims.x.better.seeds: nope: no results.json"),
        ({"x": {"better": {**good, "seeds": [good["seeds"][0], good["grid"][0]]}, "other": good}}, "share a learning"),
        ({"x": {"better": {**good, "colour": 1}, "other": good}}, "unknown field 'colour'"),
        ({"x": {"better": good}}, "claims.x: a claim needs `better` and `other`"),
    ]:
        spec.write_text(yaml.safe_dump({"results": "runs", "claims": claims}))
        with pytest.raises(RecitebenchError, match=message):
            load_study(spec)


def test_recitebench_study_writes_its_table_and_json(tmp_path, capsys):
    root = tmp_path / "runs"
    claims = {"c": {"better": _arm(root, "a", [1980, 1985], [1950, 1985, 1960]),
                    "other": _arm(root, "b", [1600, 1620], [1550, 1600, 1580])}}
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump({"results": "runs", "claims": claims}))
    assert run_cli("study", spec, "--out", tmp_path / "out") == 0
    table = capsys.readouterr().out
    assert table == (tmp_path / "out" / "study.md").read_text() and "**supported**" in table
    assert json.loads((tmp_path / "out" / "study.json").read_text())["kind"] == "recitebench-study/1"


def test_yaml_merge_keys_are_allowed_and_duplicate_keys_still_refused(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text("base: &b {lr: 1, seeds: [0]}\nderived: {<<: *b, lr: 2}\n")
    assert load_yaml(f)["derived"] == {"lr": 2, "seeds": [0]}
    f.write_text("a: 1\na: 2\n")
    with pytest.raises(RecitebenchError, match="duplicate key 'a'"):
        load_yaml(f)
