"""Disjoint poem sets (issue #27): `data build --exclude` leaves out another dataset's poems by id and by normalised
text, `--parts` splits one draw into named datasets that share no poem text, byte-identical per seed."""
import pytest

from conftest import read_jsonl, run_cli, write_jsonl
from recitebench.data.disjoint import text_key
from recitebench.data.frozen import load_frozen
from recitebench.errors import RecitebenchError
from recitebench.io import read_json

# 40 poems; p40-p44 repeat the texts of p0-p4 under other ids and titles (with other spacing and width)
ROWS = [{"id": f"p{i}", "author": f"Poet {i % 5}", "title": f"Song {i}", "content": f"Line one of song {i}\nline {i}"}
        for i in range(40)]
ROWS += [{"id": f"p{40 + i}", "author": "Someone", "title": f"Copy {i}",
          "content": f"Line  one of song {i}\nline {i}".replace("L", "Ｌ")} for i in range(5)]


def build(tmp_path, out, *extra, n="10"):
    src = tmp_path / "corpus.jsonl"
    if not src.exists():
        write_jsonl(src, ROWS)
    return run_cli("data", "build", "--preset", "en-poems", "--source", src, "--n", n, "--seed", "3", "--out",
                   tmp_path / out, *extra)


def test_text_key_sees_the_same_poem_through_width_space_and_case():
    assert text_key("Ｌine  one\nLINE two") == text_key("line one line two")
    assert text_key("line one") != text_key("line two")


def test_exclude_leaves_out_poems_by_id_and_by_text_under_another_id(tmp_path):
    assert build(tmp_path, "a", n="20") == 0
    a = load_frozen(tmp_path / "a")
    assert build(tmp_path, "b", "--exclude", str(tmp_path / "a"), n="20") == 0
    b = load_frozen(tmp_path / "b")
    assert not {p["id"] for p in a.poems} & {p["id"] for p in b.poems}
    assert not {text_key(p["target"]) for p in a.poems} & {text_key(p["target"]) for p in b.poems}
    ex = b.manifest["excluded"]
    copies_of_a = sum(1 for r in ROWS[40:] if f"p{int(r['title'].split()[1])}" in {p["id"] for p in a.poems})
    assert ex["by_id"] == 20 and ex["by_text"] == copies_of_a > 0  # the seed draws some of p0-p4 into a
    assert ex["datasets"][0]["poems_sha256"] == a.sha256
    assert b.manifest["counts"]["after_exclude"] == 45 - 20 - copies_of_a


def test_parts_are_disjoint_named_datasets_of_one_draw_and_same_seed_same_bytes(tmp_path, capsys):
    assert build(tmp_path, "p", "--parts", "member=12,heldout=8,reference=20", n="40") == 0
    assert "member 12" in capsys.readouterr().out
    parts = {name: load_frozen(tmp_path / "p" / name) for name in ("member", "heldout", "reference")}
    assert [len(p.poems) for p in parts.values()] == [12, 8, 20]
    texts = [{text_key(r["target"]) for r in p.poems} for p in parts.values()]
    assert sum(len(t) for t in texts) == len(set().union(*texts)) == 40  # no text in two parts: copies dropped
    top = read_json(tmp_path / "p" / "manifest.json")
    assert top["format"] == "recitebench-frozen-parts/1" and top["counts"]["after_text_dedupe"] == 40
    assert {k: v["poems_sha256"] for k, v in top["parts"].items()} == {k: p.sha256 for k, p in parts.items()}
    assert parts["member"].manifest["part"] == "member" and parts["member"].manifest["parts"]["heldout"] == 8
    assert build(tmp_path, "p2", "--parts", "member=12,heldout=8,reference=20", n="40") == 0
    for name in parts:
        assert (tmp_path / "p2" / name / "poems.jsonl").read_bytes() == (tmp_path / "p" / name /
                                                                       "poems.jsonl").read_bytes()
    assert build(tmp_path, "p", "--parts", "member=12,heldout=8,reference=20", n="40") == 0  # re-run in place
    assert [r["id"] for r in read_jsonl(tmp_path / "p" / "member" / "poems.jsonl")] == [
        r["id"] for r in parts["member"].poems]
    with pytest.raises(RecitebenchError, match="split into parts; name one of them"):
        load_frozen(tmp_path / "p")


@pytest.mark.parametrize("args, message", [
    (["--parts", "member=5,heldout=3"], "parts sum to 8 poems but n is 10"),
    (["--parts", "member=5,member=5"], "'member' named twice"),
    (["--parts", "Member=10"], "is not NAME=SIZE"),
    (["--exclude", "nowhere"], "nowhere: not a frozen dataset"),
])
def test_disjoint_set_errors_are_one_line(tmp_path, capsys, args, message):
    assert build(tmp_path, "x", *args) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not (tmp_path / "x").exists()


def test_random_presets_refuse_exclude_and_parts(tmp_path, capsys):
    assert run_cli("data", "build", "--preset", "random-tokens", "--n", "4", "--parts", "a=2,b=2",
                   "--out", tmp_path / "r") != 0
    assert "apply to poem corpora" in capsys.readouterr().err
