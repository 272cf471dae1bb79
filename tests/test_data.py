"""Frozen datasets: every source kind, presets, filters, determinism and every bad input."""

from __future__ import annotations

import csv
import gzip
import json
import lzma
import re

import pytest

from conftest import read_jsonl, run_cli, write_jsonl

EN_ROWS = [
    {"id": f"p{i}", "author": f"Poet {i % 4}", "title": f"Song {i}", "content": f"Line one of song {i}\nline two {i}"}
    for i in range(12)
]


def build(tmp_path, source, *extra, out_name="out"):
    out = tmp_path / out_name
    code = run_cli("data", "build", "--preset", "en-poems", "--source", source, "--n", "5", "--seed", "1",
                   "--out", out, *extra)
    return code, out


def assert_ok(code, out, n=5):
    assert code == 0
    rows = read_jsonl(out / "poems.jsonl")
    assert len(rows) == n
    man = json.loads((out / "manifest.json").read_text())
    assert man["counts"]["sampled"] == n
    return rows, man


@pytest.mark.parametrize("suffix", ["jsonl", "jsonl.gz", "jsonl.xz"])
def test_jsonl_plain_and_compressed(tmp_path, suffix):
    text = "".join(json.dumps(r) + "\n" for r in EN_ROWS).encode()
    path = tmp_path / f"poems.{suffix}"
    opener = {"jsonl": open, "jsonl.gz": gzip.open, "jsonl.xz": lzma.open}[suffix]
    with opener(path, "wb") as f:
        f.write(text)
    rows, man = assert_ok(*build(tmp_path, path))
    assert rows[0]["prompt"].startswith("Dictation: Author: Poet ")
    assert man["source_sha256"]


def test_json_csv_parquet(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"poems": EN_ROWS}))
    assert_ok(*build(tmp_path, tmp_path / "p.json", out_name="a"))
    with open(tmp_path / "p.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(EN_ROWS[0]))
        w.writeheader()
        w.writerows(EN_ROWS)
    rows_csv, _ = assert_ok(*build(tmp_path, tmp_path / "p.csv", out_name="b"))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(EN_ROWS), tmp_path / "p.parquet")
    rows_pq, _ = assert_ok(*build(tmp_path, tmp_path / "p.parquet", out_name="c"))
    assert [r["target"] for r in rows_csv] == [r["target"] for r in rows_pq]  # same rows, same sample


def test_hf_loader_on_local_dataset(tmp_path):
    """The real `datasets.load_dataset` code path, on a dataset folder written locally (no hub)."""
    d = tmp_path / "hfdata" / "data"
    d.mkdir(parents=True)
    write_jsonl(d / "train.jsonl", [{"poet": r["author"], "name": r["title"], "text": r["content"]} for r in EN_ROWS])
    rows, man = assert_ok(*build(tmp_path, f"hf:{tmp_path / 'hfdata'}"))
    assert man["columns"]["author"] == "poet" and man["columns"]["content"] == "text"
    assert rows[0]["target"].startswith("Line one")


def test_column_mapping(tmp_path):
    rows = [{"who": r["author"], "t": r["title"], "body": r["content"]} for r in EN_ROWS]
    src = write_jsonl(tmp_path / "p.jsonl", rows)
    code, out = build(tmp_path, src, "--columns", "author=who,title=t,content=body")
    rows, man = assert_ok(code, out)
    assert man["columns"] == {"author": "who", "title": "t", "content": "body"}


def test_guessed_columns_are_printed_and_an_ambiguous_guess_is_an_error(tmp_path, capsys):
    rows = [{"poet": r["author"], "name": r["title"], "text": r["content"]} for r in EN_ROWS]
    code, out = build(tmp_path, write_jsonl(tmp_path / "p.jsonl", rows))
    _, man = assert_ok(code, out)
    printed = capsys.readouterr().out
    assert "columns: author=poet (guessed), title=name (guessed), content=text (guessed)" in printed
    assert man["columns_guessed"] == ["author", "title", "content"]
    both = [{**r, "poem": r["text"]} for r in rows]  # 'poem' and 'text' are both aliases of content
    code, _ = build(tmp_path, write_jsonl(tmp_path / "b.jsonl", both), out_name="b")
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "field 'content' could be column 'poem' or 'text'; choose with --columns content=COLUMN" in err
    code, out = build(tmp_path, tmp_path / "b.jsonl", "--columns", "content=poem", out_name="b2")
    assert_ok(code, out)


def test_custom_prompt_template_and_target(tmp_path, capsys):
    """A researcher's own corpus: a Chinese prompt over its own columns, the target a template over columns."""
    rows = [{"朝代": "唐", "作者": f"诗人{i}", "题目": f"题{i}", "正文": f"白日依山尽{i}，\n黄河入海流。"}
            for i in range(12)]
    src = write_jsonl(tmp_path / "zh.jsonl", rows)
    code, out = build(tmp_path, src, "--prompt-template", "默写：{朝代}·{作者}《{题目}》", "--target", "正文")
    got, man = assert_ok(code, out)
    assert got[0]["prompt"] == f"默写：唐·{got[0]['作者']}《{got[0]['题目']}》"
    assert got[0]["target"] in [r["正文"] for r in rows] and man["template"] == "默写：{朝代}·{作者}《{题目}》"
    code, out = build(tmp_path, src, "--prompt-template", "{作者}", "--target", r"《{题目}》\n{正文}", out_name="t2")
    got, man = assert_ok(code, out)  # a typed backslash-n (as from a shell) is a line break
    assert got[0]["target"].startswith("《题") and man["target_template"] == "《{题目}》\n{正文}"
    first, *rest = got[0]["target"].split("\n")
    assert re.fullmatch(r"《题\d+》", first) and rest  # the title on its own line, then the poem
    for template, message in (("{作}", "unknown column '作' named by the template"),
                              ("{0}", "placeholder {0} must name a column"),
                              ("{target}", "{target} is a reserved name")):
        code, _ = build(tmp_path, src, "--prompt-template", template, "--target", "正文", out_name="bad")
        err = capsys.readouterr().err.strip()
        assert code == 1 and message in err and len(err.splitlines()) == 1


def test_presets_match_the_paper(tmp_path, shared):
    out = tmp_path / "cn"
    assert run_cli("data", "build", "--preset", "cn-poems", "--source", "shared:cn_poems", "--n", "3", "--max-chars",
                   "80", "--out", out) == 0
    row = read_jsonl(out / "poems.jsonl")[0]
    assert row["prompt"] == f"Dictation: Dynasty: {row['dynasty']} Author: {row['author']} Title: {row['title']}"
    out = tmp_path / "en"
    assert run_cli("data", "build", "--preset", "en-poems", "--source", "shared:en_poems", "--n", "3", "--out",
                   out) == 0
    row = read_jsonl(out / "poems.jsonl")[0]
    assert row["prompt"] == f"Dictation: Author: {row['author']} Title: {row['title']}"


def test_ambiguity_guard(tmp_path):
    rows = EN_ROWS + [
        {"id": "dupe", "author": "Poet 1", "title": "Song 1", "content": "A different poem, same author and title"},
        {"id": "copy", **{k: v for k, v in EN_ROWS[2].items() if k != "id"}},  # an exact duplicate: one memory
    ]
    src = write_jsonl(tmp_path / "p.jsonl", rows)
    code, out = build(tmp_path, src, "--n", "10")
    _, man = assert_ok(code, out, n=10)
    assert man["counts"]["after_dedupe"] == 13
    assert man["ambiguous_inputs"]["inputs"] == 1 and man["ambiguous_inputs"]["poems"] == 2
    assert man["counts"]["after_ambiguity_guard"] == 11
    prompts = [r["prompt"] for r in read_jsonl(out / "poems.jsonl")]
    assert "Dictation: Author: Poet 1 Title: Song 1" not in prompts
    code, out = build(tmp_path, src, "--n", "13", "--ambiguous", "disambiguate", out_name="dis")
    rows_d, _ = assert_ok(code, out, n=13)
    prompts = {r["prompt"] for r in rows_d}
    assert len(prompts) == 13
    assert {"Dictation: Author: Poet 1 Title: Song 1 (1)", "Dictation: Author: Poet 1 Title: Song 1 (2)"} <= prompts


def test_deterministic_and_seed_sensitive(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", EN_ROWS)
    _, a = build(tmp_path, src, out_name="a")
    _, b = build(tmp_path, src, out_name="b")
    assert (a / "poems.jsonl").read_bytes() == (b / "poems.jsonl").read_bytes()
    code, c = build(tmp_path, src, "--seed", "2", out_name="c")
    assert code == 0 and (a / "poems.jsonl").read_bytes() != (c / "poems.jsonl").read_bytes()


def test_length_rules(tmp_path, shared):
    long = {"id": "long", "author": "A", "title": "B", "content": "x" * 300}
    src = write_jsonl(tmp_path / "p.jsonl", EN_ROWS + [long])
    code, out = build(tmp_path, src, "--n", "12", "--max-chars", "100")
    rows, _ = assert_ok(code, out, n=12)
    assert all(len(r["prompt"]) + len(r["target"]) <= 100 for r in rows)
    code, out = build(tmp_path, src, "--n", "1", "--min-chars", "256", "--max-chars", "512", out_name="long")
    rows, _ = assert_ok(code, out, n=1)
    assert rows[0]["id"] == "long"
    tok = shared / "models" / "tokenizers" / "qwen2"
    code, out = build(tmp_path, src, "--n", "12", "--max-tokens", "40", "--tokenizer", tok, out_name="tok")
    rows, _ = assert_ok(code, out, n=12)
    assert all(r["tokens"] <= 40 for r in rows)


def test_too_few_candidates_is_an_error(tmp_path, capsys):
    src = write_jsonl(tmp_path / "p.jsonl", EN_ROWS)
    code, out = build(tmp_path, src, "--n", "50")
    assert code == 1
    assert "only 12 poems pass the filters, 50 requested" in capsys.readouterr().err
    assert not out.exists() or not (out / "poems.jsonl").exists()


BAD = {
    "missing field": ({"id": "x", "author": "A", "content": "poem"}, "missing field 'title'"),
    "empty field": ({"id": "x", "author": "A", "title": "  ", "content": "poem"}, "field 'title' is empty"),
    "wrong type": ({"id": "x", "author": "A", "title": 7, "content": "poem"}, "field 'title' must be text, got int"),
    "null field": ({"id": "x", "author": None, "title": "T", "content": "poem"}, "field 'author' is null"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_rows_name_file_line_and_field(tmp_path, capsys, case):
    row, message = BAD[case]
    src = write_jsonl(tmp_path / "p.jsonl", EN_ROWS[:6] + [row] + EN_ROWS[6:])
    code, out = build(tmp_path, src)
    err = capsys.readouterr().err
    assert code == 1
    assert f"p.jsonl:7: {message}" in err and len(err.strip().splitlines()) == 1
    assert not (out / "poems.jsonl").exists() and not (out / "manifest.json").exists()
    code, out = build(tmp_path, src, "--skip-bad-rows", out_name="skip")
    _, man = assert_ok(code, out)
    assert man["bad_rows"]["skipped"] == 1 and "p.jsonl:7" in man["bad_rows"]["examples"][0]


def test_broken_json_line_and_undecodable_bytes(tmp_path, capsys):
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in EN_ROWS[:3]) + '{"author": "A", "title"\n'
                   + "".join(json.dumps(r) + "\n" for r in EN_ROWS[3:]))
    code, _ = build(tmp_path, src)
    assert code == 1 and "p.jsonl:4: broken JSON line" in capsys.readouterr().err
    code, out = build(tmp_path, src, "--skip-bad-rows", out_name="skip")
    assert assert_ok(code, out)[1]["bad_rows"]["skipped"] == 1
    bad = tmp_path / "bytes.jsonl"
    bad.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in EN_ROWS[:2]) + b'{"author": "\xff\xfe"}\n')
    code, out = build(tmp_path, bad, out_name="bytes")
    assert code == 1 and "bytes.jsonl:3: not UTF-8 text" in capsys.readouterr().err
    assert not (out / "poems.jsonl").exists()


def test_unknown_preset_column_and_unreadable_sources(tmp_path, capsys):
    src = write_jsonl(tmp_path / "p.jsonl", EN_ROWS)
    with pytest.raises(SystemExit) as e:
        run_cli("data", "build", "--preset", "haiku", "--source", src, "--out", tmp_path / "o")
    assert e.value.code == 2 and "invalid choice: 'haiku'" in capsys.readouterr().err
    code, _ = build(tmp_path, src, "--columns", "author=poet")
    assert code == 1 and "unknown column 'poet' for field 'author'" in capsys.readouterr().err
    code, _ = build(tmp_path, src, "--columns", "colour=poet")
    assert code == 1 and "unknown field 'colour'" in capsys.readouterr().err
    code, _ = build(tmp_path, tmp_path / "nope.jsonl")
    assert code == 1 and "nope.jsonl: source file not found" in capsys.readouterr().err
    (tmp_path / "p.txt").write_text("hello")
    code, _ = build(tmp_path, tmp_path / "p.txt")
    assert code == 1 and "unknown file type" in capsys.readouterr().err
    (tmp_path / "trunc.jsonl.xz").write_bytes(lzma.compress(b'{"a": 1}\n' * 100)[:40])
    code, _ = build(tmp_path, tmp_path / "trunc.jsonl.xz")
    assert code == 1 and "trunc.jsonl.xz" in capsys.readouterr().err
    code, _ = build(tmp_path, "hf:/no/such/dataset/folder")
    assert code == 1 and "cannot load dataset" in capsys.readouterr().err


def test_existing_output_is_replaced_atomically(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", EN_ROWS)
    code, out = build(tmp_path, src)
    assert code == 0
    before = (out / "poems.jsonl").read_bytes()
    code, out = build(tmp_path, src, "--n", "99")  # fails: the good files from the first build stay
    assert code == 1 and (out / "poems.jsonl").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "manifest.json", "poems.jsonl"]  # no temp files


@pytest.mark.parametrize("preset,corpus,extra", [
    ("cn-poems", "cn_poems.jsonl.xz", ["--max-chars", "256"]),
    ("en-poems", "en_poems.jsonl.xz", ["--max-chars", "256"]),
    ("cn-poems", "cn_poems.jsonl.xz", ["--min-chars", "256", "--max-chars", "512"]),
])
def test_paper_datasets(tmp_path, shared, preset, corpus, extra):
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert run_cli("data", "build", "--preset", preset, "--source", shared / "data" / corpus, "--n", "2000",
                       "--seed", "0", "--out", out, *extra) == 0
        outs.append(out)
    rows = read_jsonl(outs[0] / "poems.jsonl")
    assert len(rows) == 2000 and len({r["prompt"] for r in rows}) == 2000
    lo = int(extra[extra.index("--min-chars") + 1]) if "--min-chars" in extra else 0
    hi = int(extra[extra.index("--max-chars") + 1])
    assert all(lo <= len(r["prompt"]) + len(r["target"]) <= hi for r in rows)
    assert (outs[0] / "poems.jsonl").read_bytes() == (outs[1] / "poems.jsonl").read_bytes()


def test_yaml_config_fills_data_build(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", EN_ROWS)
    (tmp_path / "d.yaml").write_text(f"source: {src}\npreset: en-poems\nn: 7\nseed: 3\n")
    out = tmp_path / "o"
    assert run_cli("data", "build", "--config", tmp_path / "d.yaml", "--n", "4", "--out", out) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["counts"]["sampled"] == 4 and man["seed"] == 3
    (tmp_path / "bad.yaml").write_text("sauce: tomato\n")
    assert run_cli("data", "build", "--config", tmp_path / "bad.yaml", "--out", out) == 1


@pytest.mark.parametrize("command", [["data", "build"], ["train"], ["recite"], ["run"], ["report"], ["ls"],
                                     ["compare"]])
def test_every_subcommand_help_renders(capsys, command):
    with pytest.raises(SystemExit) as e:
        run_cli(*command, "--help")
    out = capsys.readouterr().out
    assert e.value.code == 0 and "usage: recitebench" in out and "examples:" in out
    if command == ["train"]:
        assert "~30% slower" in out  # a percent sign in a help string renders literally


@pytest.mark.parametrize("template", ["plain", "chat"])
def test_batched_encoding_equals_one_poem_at_a_time(small_cn, shared, template):
    """Training and recitation tokenise the whole dataset in one batched call; ids must equal per-poem tokenisation."""
    from transformers import AutoTokenizer

    from recitebench.data import load_frozen
    from recitebench.models.formatting import encode_many, prompt_text

    tok = AutoTokenizer.from_pretrained(shared / "models" / "tokenizers" / "qwen2")
    poems = load_frozen(small_cn).poems
    items = encode_many(tok, poems, template)
    assert [it.id for it in items] == [p["id"] for p in poems]
    for p, it in zip(poems, items):
        ids = tok(prompt_text(tok, p["prompt"], template), add_special_tokens=template == "plain")["input_ids"]
        target = tok(p["target"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert it.prompt_ids == ids and it.target_ids == target
    assert items[0].prompt_ids[-1] != tok.eos_token_id


def test_a_dataset_folder_loads_with_hugging_face_datasets_through_its_card(small_cn):
    """The card's front matter points load_dataset at poems.jsonl (manifest.json is not data)."""
    datasets = pytest.importorskip("datasets")
    rows = read_jsonl(small_cn / "poems.jsonl")
    ds = datasets.load_dataset(str(small_cn))
    assert list(ds) == ["train"] and ds["train"].num_rows == len(rows) == 20
    assert ds["train"][0]["target"] == rows[0]["target"] and "poems_sha256" not in ds["train"].column_names
    assert "sha256" in (small_cn / "README.md").read_text()


def test_hf_sources_take_options_load_save_to_disk_folders_and_record_what_they_resolved(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    datasets.DatasetDict({"train": datasets.Dataset.from_list(EN_ROWS)}).save_to_disk(str(tmp_path / "disk"))
    files = write_jsonl(tmp_path / "en.jsonl", EN_ROWS)
    for source, loader in ((f"hf:{tmp_path / 'disk'}", "load_from_disk"), (f"hf:json?data_files={files}",
                                                                           "load_dataset")):
        code, out = build(tmp_path, source, out_name=loader)
        assert_ok(code, out)
        info = json.loads((out / "manifest.json").read_text())["source_info"]
        assert info["loader"] == loader and info["rows"] == 12 and info["fingerprint"]
        if loader == "load_dataset":
            assert info["data_files"] == str(files) and info["ref"] == "json"
        again, out2 = build(tmp_path, source, out_name=loader + "2")
        assert (out2 / "manifest.json").read_bytes() == (out / "manifest.json").read_bytes()
    code, _ = build(tmp_path, "hf:json?colour=red", out_name="bad")
    assert code == 1 and "unknown option 'colour' (hf: takes name, revision, data_files)" in capsys.readouterr().err
