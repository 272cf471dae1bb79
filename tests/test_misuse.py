"""A new user's mistakes, swept through the real CLI: every case ends in a non-zero exit and one line naming the
file, row, field or flag (never a traceback), or, where the input is legitimate, in the right result (never a silent
wrong one). The closing count is printed by `test_the_sweep_is_large` (at least 150 cases)."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli, write_jsonl

ROWS = [{"id": f"p{i}", "author": f"Poet {i % 3}", "title": f"Song {i}", "content": f"line {i}\nline two {i}"}
        for i in range(10)]


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """A ten-poem English corpus (data build cases read this, not the large shared one)."""
    return write_jsonl(tmp_path_factory.mktemp("src") / "poems.jsonl", ROWS)


@pytest.fixture(scope="module")
def data(tmp_path_factory, src):
    out = tmp_path_factory.mktemp("data") / "d"
    assert run_cli("data", "build", "--preset", "en-poems", "--source", src, "--n", "6", "--out", out) == 0
    return out


def fails(capsys, args, needle: str) -> None:
    """The command exits non-zero with one line naming `needle` and no traceback."""
    try:
        code = run_cli(*args)
    except SystemExit as e:  # argparse: exit 2 with a usage line
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code not in (0, None), (args, err)
    assert "Traceback" not in err, err
    assert needle in err.splitlines()[-1], (needle, err)


DATA_BAD = [
    (["--n", "0"], "n must be positive"),
    (["--n", "-3"], "n must be positive"),
    (["--n", "abc"], "invalid int value"),
    (["--n", "11"], "--n"),  # too few: the message names the flag to change
    (["--max-chars", "0"], "max_chars must be positive"),
    (["--min-chars", "50", "--max-chars", "10"], "min_chars (50) is larger"),
    (["--preset", "cn-poem"], "invalid choice"),
    (["--columns", "author"], "FIELD=COLUMN"),
    (["--columns", "poet=author"], "unknown field 'poet'"),
    (["--columns", "author=nosuch"], "nosuch"),
    (["--prompt-template", "{0}"], "placeholder"),
    (["--prompt-template", "{id}"], "reserved"),
    (["--prompt-template", "{author"], "not a format template"),
    (["--target", "{nosuch}"], "nosuch"),
    (["--max-tokens", "10"], "needs tokenizer"),
    (["--ambiguous", "keep"], "invalid choice"),
    (["--seed", "x"], "invalid int value"),
    (["--bogus"], "unrecognized arguments"),
]


@pytest.mark.parametrize("extra,needle", DATA_BAD, ids=[" ".join(a) for a, _ in DATA_BAD])
def test_data_build_flags(tmp_path, capsys, src, extra, needle):
    fails(capsys, ["data", "build", "--preset", "en-poems", "--source", src, "--n", "5", "--out", tmp_path / "o",
                   *extra], needle)
    assert not (tmp_path / "o").exists()


RANDOM_BAD = [
    (["--alphabet", "aa"], "distinct"),
    (["--alphabet", "a"], "at least 2"),
    (["--alphabet", "a b"], "whitespace"),
    (["--min-symbols", "9", "--max-symbols", "3"], "min_symbols (9)"),
    (["--min-symbols", "0"], "min_symbols must be positive"),
    (["--source", "poems.csv"], "random"),  # the random preset reads no source: a given one is not ignored
]


@pytest.mark.parametrize("extra,needle", RANDOM_BAD, ids=[" ".join(a) for a, _ in RANDOM_BAD])
def test_random_preset_flags(tmp_path, capsys, extra, needle):
    fails(capsys, ["data", "build", "--preset", "random", "--n", "5", "--out", tmp_path / "o", *extra], needle)


def test_sources(tmp_path, capsys):
    base = ["data", "build", "--preset", "en-poems", "--n", "2", "--out", tmp_path / "o", "--source"]
    fails(capsys, [*base, tmp_path / "missing.jsonl"], "missing.jsonl")
    (tmp_path / "p.txt").write_text("x")
    fails(capsys, [*base, tmp_path / "p.txt"], "unknown file type")
    fails(capsys, [*base, "shared:nosuch"], "known: shared:cn_poems, shared:en_poems")
    (tmp_path / "bad.jsonl").write_bytes(b"\xff\xfe{}\n")
    fails(capsys, [*base, tmp_path / "bad.jsonl"], "bad.jsonl")
    (tmp_path / "empty.csv").write_text("")
    fails(capsys, [*base, tmp_path / "empty.csv"], "empty CSV")
    (tmp_path / "broken.json").write_text("[{")
    fails(capsys, [*base, tmp_path / "broken.json"], "broken.json")
    (tmp_path / "dup.csv").write_text("author,title,content,title\na,b,c,d\n")
    fails(capsys, [*base, tmp_path / "dup.csv"], "'title' more than once")


def test_a_csv_byte_order_mark_is_not_part_of_a_column_name(tmp_path):
    text = "author,title,content\n" + "".join(f"Poet {i},Song {i},line {i}\n" for i in range(4))
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert run_cli("data", "build", "--preset", "en-poems", "--source", tmp_path / "bom.csv", "--n", "3",
                   "--out", tmp_path / "o") == 0
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert man["columns"]["author"] == "author"  # not '\ufeffauthor'


def test_bidirectional_controls_are_counted_at_build(tmp_path):
    rows = [dict(r) for r in ROWS[:4]]
    rows[1]["content"] = "abc\u202edef"
    src = write_jsonl(tmp_path / "p.jsonl", rows)
    assert run_cli("data", "build", "--preset", "en-poems", "--source", src, "--n", "4", "--out", tmp_path / "o") == 0
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert man["bidi_controls"]["poems"] == 1 and "U+202E" in man["bidi_controls"]["examples"][0]


def test_bidirectional_controls_are_shown_not_obeyed_in_the_report():
    from recitebench.report.diff import diff_html, diff_text

    target, pred = "abc\u202edef", "abc\u202edeg"
    t_html, p_html = diff_html(target, pred)
    assert "\u202e" not in t_html + p_html and "U+202E" in t_html and "U+202E" in p_html
    assert "\u202e" not in diff_text(target, pred) and "[U+202E]" in diff_text(target, pred)


def test_the_ambiguity_guard_says_how_to_keep_what_it_drops(tmp_path, capsys):
    rows = [dict(r) for r in ROWS] + [{**ROWS[0], "id": "twin", "content": "another poem"}]
    src = write_jsonl(tmp_path / "p.jsonl", rows)
    assert run_cli("data", "build", "--preset", "en-poems", "--source", src, "--n", "3", "--out", tmp_path / "o") == 0
    assert "--ambiguous disambiguate" in capsys.readouterr().out


def test_data_build_config_files(tmp_path, capsys, src):
    cfg = tmp_path / "c.yaml"
    base = ["data", "build", "--out", tmp_path / "o", "--config", cfg]
    cfg.write_text(f"preset: en-poems\nsource: {src}\nn: 3\nbogus: 1\n")
    fails(capsys, base, "unknown field 'bogus'")
    cfg.write_text(f"data: {{preset: en-poems, source: {src}, n: 3}}\nn: 4\n")
    fails(capsys, base, "'n' is neither a section")
    cfg.write_text(f"preset: en-poems\nsource: {src}\nn: 3\nn: 4\n")
    fails(capsys, base, "duplicate key 'n'")
    cfg.write_bytes(b"\x00\xff")
    fails(capsys, base, "not a text file")
    fails(capsys, ["data", "build", "--out", tmp_path / "o", "--config", tmp_path / "none.yaml"], "file not found")
    cfg.write_text(f"data: {{preset: en-poems, source: {src}, n: 3}}\n")
    assert run_cli(*base) == 0  # sectioned works too


TRAIN_BAD = [
    (["--epochs", "0"], "epochs must be positive"),
    (["--lr", "0"], "lr must be positive"),
    (["--lr", "-1e-3"], "lr must be positive"),  # a negative number parses (then fails the rule)
    (["--lr", "inf"], "lr must be a finite"),
    (["--lr", "nan"], "lr must be a finite"),
    (["--warmup-ratio", "1"], "warmup_ratio"),
    (["--warmup-ratio", "-0.1"], "warmup_ratio"),
    (["--betas", "0.9"], "betas"),
    (["--betas", "0.9", "1.0"], "betas"),
    (["--weight-decay", "-1"], "weight_decay"),
    (["--grad-clip", "-2"], "grad_clip"),
    (["--batch-size", "0"], "batch_size must be positive"),
    (["--batch-tokens", "0"], "batch_tokens must be positive"),
    (["--grad-accum", "0"], "grad_accum must be positive"),
    (["--bucket-window", "0"], "bucket_window must be positive"),
    (["--recall-every", "-1"], "recall_every"),
    (["--checkpoint-every", "-1"], "checkpoint_every"),
    (["--recall-batch-size", "0"], "recall_batch_size"),
    (["--cuda-graphs", "--grad-accum", "2"], "cuda_graphs"),
    (["--packing", "--cuda-graphs"], "packing"),
    (["--fsdp", "--precision", "bf16-master"], "fsdp"),
    (["--precision", "fp16"], "invalid choice"),
    (["--schedule", "linear"], "invalid choice"),
    (["--kernels", "triton"], "invalid choice"),
    (["--template", "chatt"], "invalid choice"),
    (["--init", "random"], "invalid choice"),
    (["--attn-implementation", "flash"], "invalid choice"),
    (["--model", "tinyy"], "did you mean 'tiny'"),
    (["--model", "missing.json"], "missing.json: no such model file"),
    (["--model", "./nowhere"], "no such model file"),
    (["--device", "cuda"], "no CUDA GPU"),
    (["--epochs", "two"], "invalid int value"),
    (["--bogus"], "unrecognized arguments"),
    (["--kernels", "liger"], "--kernels liger needs a CUDA GPU"),
    (["--packing", "--cuda-graphs"], "cuda_graphs"),
]


@pytest.mark.parametrize("extra,needle", TRAIN_BAD, ids=[" ".join(a) for a, _ in TRAIN_BAD])
def test_train_flags(tmp_path, capsys, data, extra, needle):
    fails(capsys, ["train", "--data", data, "--model", "tiny", "--epochs", "1", "--no-progress",
                   "--out", tmp_path / "r", *extra], needle)
    assert not (tmp_path / "r" / "model").exists()


def test_train_folders(tmp_path, capsys, data):
    fails(capsys, ["train", "--model", "tiny", "--out", tmp_path / "r"], "needs --data")
    fails(capsys, ["train", "--data", tmp_path / "none", "--model", "tiny", "--out", tmp_path / "r"], "none")
    fails(capsys, ["train", "--data", tmp_path, "--model", "tiny", "--out", tmp_path / "r2"], "not a frozen dataset")
    fails(capsys, ["train", "--out", tmp_path / "r3", "--resume"], "not a training run")


def test_train_config_files(tmp_path, capsys, data):
    cfg = tmp_path / "c.yaml"
    base = ["train", "--data", data, "--no-progress", "--out", tmp_path / "r", "--config", cfg]
    cfg.write_text("epochs: 2\nlr: 3.0e-3\nbogus: 1\n")
    fails(capsys, base, "unknown field 'bogus'")
    cfg.write_text("train: {epochs: 2}\nmodel: tiny\n")
    fails(capsys, base, "model: must be a mapping")
    cfg.write_text("train: {epochs: 2}\nepochs: 3\n")
    fails(capsys, base, "'epochs' is neither a section")
    cfg.write_text("train: {epochs: 2, epochs: 3}\n")
    fails(capsys, base, "duplicate key 'epochs'")
    cfg.write_text("epochs: 2\nlr: 3.0e-3\nmodel: tiny\nrecall_every: 0\n")  # flat: honoured, not ignored
    assert run_cli(*base) == 0
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").open()]
    assert [r["epoch"] for r in rows] == [1, 2] and rows[-1]["lr"] == pytest.approx(3e-3)


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, capsys, data):
    import subprocess
    import sys

    from conftest import ROOT

    out = tmp_path / "r"
    hold = ("import sys, time\nfrom recitebench.lock import writing\nwith writing(sys.argv[1]):\n"
            "    print('held', flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE, text=True,
                            env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    try:
        assert proc.stdout.readline().strip() == "held"
        fails(capsys, ["train", "--data", data, "--model", "tiny", "--epochs", "1", "--out", out],
              f"another process is writing this run folder (pid {proc.pid}")
        fails(capsys, ["data", "build", "--preset", "en-poems", "--source", data / "poems.jsonl", "--columns",
                       "content=target", "--n", "2", "--out", out], "another process is writing")
        assert not (out / "metrics.jsonl").exists()
    finally:
        proc.kill()
        proc.wait()


def test_a_diverged_run_leaves_no_partial_folder(tmp_path, capsys, data):
    out = tmp_path / "r"
    fails(capsys, ["train", "--data", data, "--model", "tiny", "--epochs", "2", "--lr", "1e30", "--precision", "fp32",
                   "--grad-clip", "0", "--checkpoint-every", "0", "--no-progress", "--out", out], "loss became")
    assert not out.exists() or not any(p.name != "logs" for p in out.iterdir())
    assert run_cli("train", "--data", data, "--model", "tiny", "--epochs", "1", "--no-progress", "--out", out) == 0


def test_the_divergence_advice_fits_the_precision():
    from recitebench.train.loop import divergence_advice

    assert "--precision fp32" not in divergence_advice("fp32")
    assert "--precision fp32" in divergence_advice("bf16-master")


RECITE_BAD = [
    (["--decoder", "statik"], "invalid choice"),
    (["--minor-overlap", "0.2", "--forgotten-overlap", "0.5"], "thresholds"),
    (["--generation", "model", "--decoder", "static"], "generation 'model'"),
    (["--verify", "-1"], "verify"),
    (["--batch-size", "0"], "batch_size"),
    (["--gen-batch-size", "0"], "gen_batch_size"),
    (["--limit", "0"], "limit"),
    (["--minor-overlap", "1.5"], "thresholds"),
    (["--precision", "fp16"], "invalid choice"),
    (["--normalize", "nfkc"], "invalid choice"),
    (["--reference", "bsae"], "did you mean 'base'"),
    (["--reference", "nothere.json"], "nothere.json"),
    (["--margin", "x"], "invalid"),
    (["--model", "someone/nomodel"], "someone/nomodel: not in the local Hugging Face cache and HF_HUB_OFFLINE"),
]


@pytest.mark.parametrize("extra,needle", RECITE_BAD, ids=[" ".join(a) for a, _ in RECITE_BAD])
def test_recite_flags(tmp_path, capsys, data, extra, needle):
    fails(capsys, ["recite", "--model", "tiny", "--data", data, "--out", tmp_path / "o", *extra], needle)
    assert not (tmp_path / "o").exists()


def test_an_unreachable_hub_fails_at_once_naming_the_model(tmp_path, capsys, data, monkeypatch):
    import time

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # loopback, nothing listens: refused at once
    t0 = time.perf_counter()
    fails(capsys, ["recite", "--model", "someone/nomodel", "--data", data, "--out", tmp_path / "o"],
          "someone/nomodel: not in the local Hugging Face cache and the hub (127.0.0.1) cannot be reached")
    assert time.perf_counter() - t0 < 20


def test_recite_sources(tmp_path, capsys, data):
    fails(capsys, ["recite", "--data", data], "recite needs --run RUN")
    fails(capsys, ["recite", "--model", "tiny"], "recite needs --run RUN")
    fails(capsys, ["recite", "--run", tmp_path / "none"], "not a training run")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.yaml").write_text("train: {data: x}\nmodel: {model: tiny}\n")
    fails(capsys, ["recite", "--run", tmp_path / "r"], "no final model yet")
    fails(capsys, ["recite", "--model", "tiny", "--data", tmp_path / "nodata", "--out", tmp_path / "o"], "nodata")


SPEC_BAD = [
    ("nosuch: 1\n", "unknown key 'nosuch'"),
    ("datasets: [cn]\nmodels: {m: {model: tiny}}\n", "'datasets' must be a non-empty mapping"),
    ("datasets: {}\nmodels: {m: {model: tiny}}\n", "'datasets' must be a non-empty mapping"),
    ("datasets: {cn: {n: 4}}\nmodels: {}\n", "'models' must be a non-empty mapping"),
    ("datasets: {cn: {n: 4}}\n", "'models' must be a non-empty mapping"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny}}\ngrid: [[cn]]\n", "grid entries"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny}}\ngrid: cn\n", "grid must be a list"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny}}\ngrid: [[en, m]]\n", "unknown dataset 'en'"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny}}\ngrid: [[cn, x]]\n", "unknown model 'x'"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny}}\ngrid: [[cn, m, {out: x}]]\n", "train.out"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny}}\ngrid: [[cn, m, {epochs: 0}]]\n", "epochs must be"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny}}\ntrain: {data: x}\n", "train.data is set by"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny}}\ntrain: {resume: true}\n", "train.resume"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny}}\ntrain: {bogus: 1}\n", "unknown field 'bogus'"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny}}\nrecite: {bogus: 1}\n", "unknown field 'bogus'"),
    ("datasets: {cn: {n: 4, bogus: 1}}\nmodels: {m: {model: tiny}}\n", "unknown field 'bogus'"),
    ("datasets: {cn: {n: 0}}\nmodels: {m: {model: tiny}}\n", "n must be positive"),
    ("datasets: {cn: {n: four}}\nmodels: {m: {model: tiny}}\n", "must be int"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny, bogus: 1}}\n", "unknown field 'bogus'"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tinyy}}\n", "did you mean 'tiny'"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: m.json}}\n", "m.json not found"),
    ("datasets: {cn: {n: 4, source: poems.csv}}\nmodels: {m: {model: tiny}}\n", "poems.csv not found"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny, gpus_per_run: 1.5}}\n", "whole number"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny, train: [1]}}\n", "models.m.train: must be a mapping"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny}}\nexecutor: {executor: k8s}\n", "executor must be one of"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny}}\nexecutor: {jobs: 0}\n", "jobs must be positive"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny}}\nstop_after: eval\n", "stop_after must be"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny}}\nrecite: {reference: bsae}\n", "did you mean 'base'"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny}}\ntrain: {lr: .inf}\n", "lr must be a finite"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny}}\ntrain: {precision: fp8}\n", "precision must be one of"),
    ("datasets: {a__b: {n: 4}}\nmodels: {c: {model: tiny}}\n", "datasets.a__b"),
    ("datasets: {a: {n: 4}}\nmodels: {b__c: {model: tiny}}\n", "models.b__c"),
    ("datasets: {a/b: {n: 4}}\nmodels: {c: {model: tiny}}\n", "datasets.a/b"),
    ("datasets: {cn: {n: 4}}\nmodels: {m: {model: tiny}}\nmodels: {n: {model: tiny}}\n", "duplicate key 'models'"),
    ("datasets: {cn: {n: 4}, cn: {n: 5}}\nmodels: {m: {model: tiny}}\n", "duplicate key 'cn'"),
    ("- 1\n- 2\n", "expected a mapping"),
    ("datasets: {cn: {n: 4}\n", "not valid YAML"),
    ("datasets: {cn: {n: 4, preset: random, source: x.csv}}\nmodels: {m: {model: tiny}}\n", "x.csv"),
]


@pytest.mark.parametrize("text,needle", SPEC_BAD, ids=[str(i) for i in range(len(SPEC_BAD))])
def test_run_specs(tmp_path, capsys, text, needle):
    spec = tmp_path / "s.yaml"
    spec.write_text(text)
    fails(capsys, ["run", spec, "--dry-run"], needle)


def test_spec_files(tmp_path, capsys):
    fails(capsys, ["run", tmp_path / "none.yaml", "--dry-run"], "config file not found")
    fails(capsys, ["run", tmp_path, "--dry-run"], "is a folder")
    (tmp_path / "b.yaml").write_bytes(bytes(range(256)))
    fails(capsys, ["run", tmp_path / "b.yaml", "--dry-run"], "not a text file")
    fails(capsys, ["run", "--executor", "cloud"], "invalid choice")
    fails(capsys, ["run", "--gpus-per-run", "0"], "gpus_per_run must be positive")


CAPACITY_BAD = [
    ("datasets: {a: {preset: random}, b: {preset: random}}\nmodels: {m: {model: tiny}}\n", "exactly one dataset"),
    ("datasets: {a: {preset: random}}\nmodels: {m: {model: tiny}}\ngrid: [[a, m]]\n", "`grid:` is set by"),
    ("datasets: {a: {preset: random}}\nmodels: {m: {model: tiny}}\ncapacity: {sizes: [8, 4]}\n", "increasing"),
    ("datasets: {a: {preset: random}}\nmodels: {m: {model: tiny}}\ncapacity: {threshold: 0}\n", "threshold"),
    ("datasets: {a: {preset: random}}\nmodels: {m: {model: tiny}}\ncapacity: {seeds: []}\n", "seeds must not"),
    ("datasets: {a: {preset: random}}\nmodels: {m: {model: tiny}}\ncapacity: {steps: 10}\n", "train.batch_size"),
    ("datasets: {a: {preset: random}}\nmodels: {m: {model: tiny}}\ncapacity: {bogus: 1}\n", "unknown field 'bogus'"),
    ("data: {preset: random}\nmodels: {m: {model: tiny}}\n", "unknown key 'data'"),
    ("datasets: {a: {preset: random}}\nmodels: {m: {model: nope.json}}\n", "nope.json not found"),
    ("datasets: {a: {preset: random}}\nmodels: {m: {model: tiny}}\ncapacity: {sizes: [4], lrs: [0]}\n",
     "lrs must be positive"),
]


@pytest.mark.parametrize("text,needle", CAPACITY_BAD, ids=[str(i) for i in range(len(CAPACITY_BAD))])
def test_capacity_specs(tmp_path, capsys, text, needle):
    spec = tmp_path / "c.yaml"
    spec.write_text(f"runs_dir: {tmp_path / 'out'}\n" + text)
    fails(capsys, ["capacity", spec, "--dry-run"], needle)


def test_listing_and_export(tmp_path, capsys, data, trained_run):
    fails(capsys, ["ls", tmp_path / "none"], "no such runs folder")
    fails(capsys, ["report", tmp_path / "none"], "none")
    fails(capsys, ["compare", tmp_path / "none"], "not a finished run")
    fails(capsys, ["compare", trained_run, trained_run], "named twice")
    fails(capsys, ["export", "lm-eval", tmp_path / "none", "--out", tmp_path / "t"], "not a frozen dataset")
    assert run_cli("export", "lm-eval", data, "--out", tmp_path / "t") == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "t").iterdir()}
    fails(capsys, ["export", "lm-eval", data, "--out", tmp_path / "t"], "--overwrite")
    assert {p.name: p.read_bytes() for p in (tmp_path / "t").iterdir()} == before
    assert run_cli("export", "lm-eval", data, "--out", tmp_path / "t", "--overwrite") == 0
    fails(capsys, ["export", "lm-eval", data, "--out", tmp_path / "u", "--normalize", "nfc"], "invalid choice")
    fails(capsys, [], "give a subcommand")
    fails(capsys, ["data"], "give a subcommand")
    fails(capsys, ["frobnicate"], "invalid choice")


def test_recite_run_with_another_dataset_says_so(trained_run, data, tmp_path, capsys):
    assert run_cli("recite", "--run", trained_run, "--data", data, "--out", tmp_path / "o") == 0
    out = capsys.readouterr().out
    assert "not the run's training set" in out
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["dataset"]["training_set"] is False


def test_lm_eval_generation_budget_fits_the_context(tmp_path, data, capsys):
    assert run_cli("export", "lm-eval", data, "--out", tmp_path / "t", "--max-gen-toks", "24") == 0
    (task,) = (tmp_path / "t").glob("*.yaml")
    assert "max_gen_toks: 24" in task.read_text()
    assert "too small" in capsys.readouterr().out  # 24 tokens cannot hold the longest poem: said, not silent


def count_cases() -> int:
    """Cases in this sweep: one per parametrised row, plus the calls of `fails`/checks in the other tests."""
    import inspect
    import sys

    mod = sys.modules[__name__]
    source = inspect.getsource(mod)
    table = len(DATA_BAD) + len(RANDOM_BAD) + len(TRAIN_BAD) + len(RECITE_BAD) + len(SPEC_BAD) + len(CAPACITY_BAD)
    inline = source.count("    fails(capsys, [") + source.count("\n    assert run_cli(")
    return table + inline


def test_the_sweep_is_large():
    n = count_cases()
    print(f"misuse sweep: {n} cases")
    assert n >= 150, n
