"""Memorised bits that mean memory (issue #27): against a reference trained on disjoint poems, the members' bits
are large and the held-out poems' near zero, membership is detected, and the random-init reference inflates the
figure; a reference or a held-out set that saw a member is refused."""
import json

import pytest

from conftest import run_cli


@pytest.fixture(scope="module")
def controls(tmp_path_factory, shared):
    """One draw split three ways: 12 members, 12 held-out and 200 reference poems. The reference trains first, for
    6 epochs on its 200 (it learns the kind of poem, not the members), and its tokenizer serves the member model
    too: a tokenizer trained on the members would itself favour them (its merges are theirs). The member model
    memorises its 12; it is recited against the reference and against its own random initialisation."""
    root = tmp_path_factory.mktemp("controls")
    assert run_cli("data", "build", "--preset", "cn-poems", "--source", shared / "data" / "cn_poems.jsonl.xz",
                   "--n", "224", "--max-chars", "64", "--parts", "member=12,heldout=12,reference=200",
                   "--out", root / "split") == 0
    common = ["--model", "tiny", "--lr", "3e-3", "--recall-every", "0", "--no-progress"]
    assert run_cli("train", "--data", root / "split" / "reference", *common, "--epochs", "6", "--batch-size", "8",
                   "--out", root / "ref") == 0
    assert run_cli("train", "--data", root / "split" / "member", *common, "--tokenizer", root / "ref" / "tokenizer",
                   "--epochs", "60", "--batch-size", "4", "--out", root / "mem") == 0
    out = {}
    for name, ref in (("trained", root / "ref"), ("base", "base")):  # held-out: the draw's own part, found
        assert run_cli("recite", "--run", root / "mem", "--reference", ref, "--out", root / name) == 0
        out[name] = json.loads((root / name / "results.json").read_text())
    return root, out


@pytest.mark.slow
def test_members_hold_bits_held_out_poems_none_and_membership_is_detected(controls):
    root, res = controls
    c = res["trained"]["controls"]
    assert res["trained"]["memory"]["reference"].startswith("trained reference:")
    member = c["members"]["gain_bits_per_poem"]
    assert member > 50  # bits per memorised poem beyond what the reference predicts
    assert c["member_minus_heldout_gain_bits_per_poem"] > member  # the held-out gain is negative here
    assert c["nonmembers"]["memorized_bits"] / 12 < 0.05 * member  # held-out: within 5 % of the members' figure
    assert c["mia_auc"]["loss"]["auc"] > 0.95 and c["mia_auc"]["calibrated"]["auc"] > 0.95
    assert 0 <= c["mia_auc"]["loss"]["ci95"][0] <= c["mia_auc"]["loss"]["auc"] <= c["mia_auc"]["loss"]["ci95"][1] <= 1
    rows = [json.loads(line) for line in (root / "trained" / "heldout.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(r["ref_bits"] is not None and r["tokens"] > 0 for r in rows)
    assert res["trained"]["schema_version"] == 5


@pytest.mark.slow
def test_the_random_init_reference_inflates_the_members_figure(controls):
    _, res = controls
    trained, base = (res[k]["controls"]["members"]["gain_bits_per_poem"] for k in ("trained", "base"))
    assert base > 1.1 * trained  # the base counts what any poem of the kind costs an untrained model
    trained_h, base_h = (res[k]["controls"]["nonmembers"]["reference_bits"] for k in ("trained", "base"))
    assert trained_h < 0.9 * base_h  # the trained reference learned the kind of poem: it predicts held-out ones


def test_a_reference_or_held_out_set_that_saw_a_member_is_refused(trained_run, small_cn, tmp_path, capsys):
    assert run_cli("recite", "--run", trained_run, "--reference", trained_run, "--heldout", "none",
                   "--out", tmp_path / "a") != 0
    assert "in the training set of the reference" in capsys.readouterr().err
    assert run_cli("recite", "--run", trained_run, "--heldout", small_cn, "--out", tmp_path / "b") != 0
    assert "held-out poems must be non-members" in capsys.readouterr().err
    assert not (tmp_path / "a" / "results.json").exists() and not (tmp_path / "b" / "results.json").exists()


def test_a_member_under_another_id_in_the_references_training_set_is_refused():
    from types import SimpleNamespace

    from recitebench.errors import RecitebenchError
    from recitebench.recall.controls import check_unseen

    members = [{"id": "m1", "target": "床前明月光，疑是地上霜。"}, {"id": "m2", "target": "白日依山尽"}]
    ref = SimpleNamespace(path="ref/poems.jsonl", poems=[{"id": "r9", "target": "床前明月光， 疑是地上霜。 "},
                                                          {"id": "r8", "target": "黄河入海流"}])
    with pytest.raises(RecitebenchError, match=r"ref/poems.jsonl: 1 of the recited poems .*\(e.g. m1\)"):
        check_unseen(members, ref, "the training set of the reference")  # the same text, spaced, under id r9
    check_unseen(members[1:], ref, "the training set of the reference")  # a disjoint set passes


@pytest.mark.slow
def test_compare_shows_the_controls(controls, capsys):
    root, _ = controls
    from recitebench.report.tables import control_rows
    from recitebench.rundir import RunDir

    class Recited(RunDir):  # a recitation folder outside a run: point RUN/recite at it
        recite = property(lambda self: self.path)

    rows = control_rows([Recited(root / "trained"), Recited(root / "base")])
    assert rows["membership AUC, loss [95%]"][0].startswith("1.000") or float(
        rows["membership AUC, loss [95%]"][0].split()[0]) > 0.95
    assert rows["held-out gain, bits/poem (generalisation)"][0].startswith("-")


@pytest.mark.slow
def test_members_and_held_out_poems_share_one_load_of_the_reference(controls, tmp_path, monkeypatch):
    """The reference scores the members and the held-out set in one load; with the base reference the members'
    bits come from the run's record and only the held-out poems are scored by the base model."""
    import recitebench.recall.bits as bits

    root, res = controls
    loads = []
    real = bits.load_model
    monkeypatch.setattr(bits, "load_model", lambda *a, **k: loads.append(a[0].model) or real(*a, **k))
    assert run_cli("recite", "--run", root / "mem", "--reference", root / "ref", "--out", tmp_path / "t") == 0
    assert len(loads) == 1
    again = json.loads((tmp_path / "t" / "results.json").read_text())["controls"]
    assert again == res["trained"]["controls"]
    loads.clear()
    assert run_cli("recite", "--run", root / "mem", "--reference", "base", "--out", tmp_path / "b") == 0
    base = json.loads((tmp_path / "b" / "results.json").read_text())
    assert len(loads) == 1 and "as recorded by the run at its start" in base["memory"]["reference"]
    assert base["memory"]["reference_bits"] == res["base"]["memory"]["reference_bits"]


def test_the_runs_record_of_base_bits_is_matched_by_text_not_by_id_alone(tmp_path):
    from recitebench.data.frozen import poem_hash
    from recitebench.recall.bits import BitsContext, saved_base_bits
    from recitebench.rundir import RunDir

    run = RunDir(tmp_path)
    poems = [{"id": "a", "prompt": "P", "target": "one"}, {"id": "b", "prompt": "P", "target": "two"}]
    other = [{"id": "a", "prompt": "P", "target": "not one"}, {"id": "b", "prompt": "P", "target": "two"}]
    run.base_bits.write_text(json.dumps({"ids": ["a", "b"], "bits": [10.0, 20.0],
                                         "text_sha256": [poem_hash(p) for p in poems]}))

    def ctx(ps, **kw):
        return BitsContext("base", ps, tmp_path, "plain", None, None, None, run, **kw)

    assert saved_base_bits(ctx(poems)) == {"a": 10.0, "b": 20.0}
    assert saved_base_bits(ctx(other)) == {"b": 20.0}  # the same id with another text is not that poem
    run.base_bits.write_text(json.dumps({"ids": ["a", "b"], "bits": [10.0, 20.0]}))  # an older record: ids only
    assert saved_base_bits(ctx(other)) == {}  # not the run's own training set: nothing is taken by id
    assert saved_base_bits(ctx(poems, own_training_set=True, recited=1)) == {"a": 10.0}  # held-out rows: never


def test_the_published_h200_figures_say_what_docs_capacity_says():
    """docs/CAPACITY.md's #27 table, read back from the shipped raw files: the trained reference brings the two
    tokenizers within 6 % where random initialisation has them 2x apart, no member model generalises past its
    reference, and membership separates."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "docs" / "capacity_results" / "reference_h200"
    res = {(run, ref): json.loads((root / run / f"recite_{ref}" / "results.json").read_text())
           for run in ("member", "smol_scratch", "smol_pretrained") for ref in ("ref", "base")}
    per_poem = {k: r["controls"]["members"]["gain_bits_per_poem"] for k, r in res.items()}
    assert round(per_poem["member", "ref"], 1) == 532.7 and round(per_poem["smol_scratch", "ref"], 1) == 504.7
    assert per_poem["member", "ref"] / per_poem["smol_scratch", "ref"] < 1.06
    assert per_poem["smol_scratch", "base"] / per_poem["member", "base"] > 2.0
    for (_, ref), r in res.items():
        c = r["controls"]
        assert r["git_commit"].startswith("4866331") and c["mia_auc"]["loss"]["auc"] == 1.0
        assert ref == "base" or (c["nonmembers"]["gain_bits_per_poem"] < 0 and r["memory"]["memorized_fraction"] > 0.99)
