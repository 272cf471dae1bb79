"""Memory over time and dose (issue #29): the extraction probe on any model."""
import json

import pytest
import torch
import yaml

from conftest import run_cli


@pytest.fixture(scope="module")
def others(tmp_path_factory, shared, small_cn):
    """20 poems of the same corpus that the trained runs never saw."""
    out = tmp_path_factory.mktemp("data") / "cn20_other"
    assert run_cli("data", "build", "--preset", "cn-poems", "--source", shared / "data" / "cn_poems.jsonl.xz",
                   "--n", "20", "--max-chars", "64", "--seed", "1", "--exclude", small_cn, "--out", out) == 0
    return out


def test_memorised_poems_are_extractable_and_unseen_ones_are_not(trained_run, others, tmp_path):
    """After the prompt and k poem tokens, the memorised poems' next tokens come back greedily; the unseen poems'
    do not; with k = 0 the probe is recitation's opening."""
    args = ["--prefix-tokens", "0", "4", "--continuation-tokens", "8", "--device", "cpu"]
    assert run_cli("extract", "--run", trained_run, *args) == 0
    members = json.loads((trained_run / "extract" / "extraction.json").read_text())
    assert members["kind"] == "recitebench-extraction/1" and [r["k"] for r in members["per_k"]] == [0, 4]
    assert run_cli("extract", "--run", trained_run, "--data", others, "--out", tmp_path / "o", *args) == 0
    unseen = json.loads((tmp_path / "o" / "extraction.json").read_text())
    for m, u in zip(members["per_k"], unseen["per_k"]):
        assert m["n"] == 20 and m["exact"] >= 0.9 and u["exact"] <= 0.1
        assert m["token_match"] > u["token_match"] + 0.5
        assert 0 <= m["exact_ci95"][0] <= m["exact"] <= m["exact_ci95"][1] <= 1
    rows = [json.loads(line) for line in (trained_run / "extract" / "extraction.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and all(r["exact"] == (r["token_match"] == 1.0) for r in rows)


def test_the_probe_equals_plain_generate_per_poem(half_trained_run, tmp_path):
    """A half-trained model (mixed outcomes) probed in left-padded batches gives, poem by poem, what an unpadded
    Hugging Face generate() gives from the same context."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from recitebench.data.frozen import load_frozen
    from recitebench.models.formatting import encode_many, end_token_ids
    from recitebench.rundir import RunDir

    assert run_cli("extract", "--run", half_trained_run, "--prefix-tokens", "3", "--continuation-tokens", "12",
                   "--batch-size", "7", "--device", "cpu", "--out", tmp_path / "x") == 0
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "x" / "extraction.jsonl").read_text().splitlines())}
    run = RunDir(half_trained_run)
    model = AutoModelForCausalLM.from_pretrained(run.model).eval()
    tok = AutoTokenizer.from_pretrained(run.tokenizer)
    items = encode_many(tok, load_frozen(run.read_config()["train"]["data"]).poems, "plain")
    ends = list(end_token_ids(tok, model))
    mixed = 0
    for it in items:
        want = it.target_ids[3 : 3 + 12]
        ctx = torch.tensor([it.prompt_ids + it.target_ids[:3]])
        cfg = GenerationConfig(do_sample=False, max_new_tokens=len(want), eos_token_id=ends,
                               pad_token_id=tok.pad_token_id)
        with torch.no_grad():
            got = model.generate(ctx, attention_mask=torch.ones_like(ctx), generation_config=cfg)[0, ctx.shape[1]:]
        assert rows[it.id]["continuation"] == tok.decode(got.tolist()[: len(want)]), it.id
        mixed += rows[it.id]["exact"]
    assert 0 < mixed < len(items)  # hard inputs: some poems extractable, some not


def test_bad_probe_settings_are_one_line_errors(trained_run, capsys):
    for bad, says in ((["--prefix-tokens", "8", "4"], "prefix_tokens must be increasing"),
                      (["--continuation-tokens", "0"], "continuation_tokens"),
                      (["--model", "qwen2-0.5b-instruct"], "extract --run probes the run's own model")):
        assert run_cli("extract", "--run", trained_run, *bad) == 1
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1


SPEC = """
runs_dir: {out}
datasets:
  cn: {{preset: cn-poems, source: shared:cn_poems, n: 12, max_chars: 64, seed: 0}}
  cnx: {{preset: cn-poems, source: shared:cn_poems, n: 6, max_chars: 64, seed: 1, exclude: [cn]}}
models:
  tiny: {{model: tiny}}
grid: [[cn, tiny]]
train: {{epochs: 30, lr: 3.0e-3, batch_size: 4, recall_every: 0}}
extract: {{prefix_tokens: [0, 4], continuation_tokens: 8}}
lens: {{batch_size: 4, heldout: cnx}}
"""


@pytest.mark.slow  # trains through the grid runner: ~20 s
def test_a_spec_with_extract_probes_every_run_and_reports_it(tmp_path, shared, capsys):
    """`extract:` in a spec: each run is probed after its recitation, the report has the section and the plot; a run
    recited before the probe existed gets only the probe (no training, no recitation again)."""
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.format(out=tmp_path / "runs"))
    assert run_cli("run", spec) == 0
    run = tmp_path / "runs" / "cn__tiny"
    probe = json.loads((run / "extract" / "extraction.json").read_text())
    assert [p["k"] for p in probe["per_k"]] == [0, 4] and probe["per_k"][1]["n"] == 12
    md = (tmp_path / "runs" / "report.md").read_text()
    assert "## Extraction probe" in md and (tmp_path / "runs" / "report_files" / "extraction.png").is_file()
    assert "| cn__tiny | 4 | 8 | 12 |" in md
    assert "## Layer-wise probe (logit lens)" in md and "| cn__tiny | members | 2 |" in md
    data = tmp_path / "runs" / "data"  # the lens's held-out set: a spec dataset no run trains on, built after cn
    ids = [{json.loads(line)["id"] for line in (data / d / "poems.jsonl").read_text().splitlines()}
           for d in ("cn", "cnx")]
    assert len(ids[1]) == 6 and not ids[0] & ids[1] and not (tmp_path / "runs" / "cnx__tiny").exists()
    held = json.loads((run / "lens" / "lens.json").read_text())["heldout"]
    assert len(held[-1]["per_poem_bits"]) == 6
    lens = (run / "lens" / "lens.json").read_bytes()
    results = (run / "recite" / "results.json").read_bytes()
    for f in (run / "extract").iterdir():
        f.unlink()
    (run / "extract").rmdir()
    assert run_cli("run", spec) == 0
    assert (run / "extract" / "extraction.json").is_file() and (run / "recite" / "results.json").read_bytes() == results
    assert (run / "lens" / "lens.json").read_bytes() == lens  # written already, under the same settings: kept
    spec.write_text(SPEC.format(out=tmp_path / "runs").replace("continuation_tokens: 8", "continuation_tokens: 6"))
    assert run_cli("run", spec) == 0  # other probe settings: the probe is redone, never a stale figure kept
    assert json.loads((run / "extract" / "extraction.json").read_text())["config"]["continuation_tokens"] == 6
    spec.write_text(SPEC.format(out=tmp_path / "runs").replace("continuation_tokens: 8", "out: x"))
    assert run_cli("run", spec, "--dry-run") == 1
    assert "extract.out is set by the experiment runner" in capsys.readouterr().err
    spec.write_text(SPEC.format(out=tmp_path / "runs").replace("heldout: cnx", "heldout: nope"))
    assert run_cli("run", spec, "--dry-run") == 1  # neither a dataset of the spec nor a folder: before any training
    err = capsys.readouterr().err
    assert "lens.heldout: 'nope' is neither one of the spec's datasets (cn, cnx)" in err and len(err.splitlines()) == 1
    spec.write_text(SPEC.format(out=tmp_path / "runs").replace("exclude: [cn]", "exclude: [cnx]"))
    assert run_cli("run", spec, "--dry-run") == 1
    err = capsys.readouterr().err
    assert "datasets.cnx.exclude: a circle (cnx -> cnx)" in err and len(err.splitlines()) == 1


def test_the_lens_last_layer_is_the_model_and_memorised_poems_decode_where_unseen_do_not(trained_run, others,
                                                                                         tmp_path):
    """The logit lens at the last layer is the model's own output (its bits per poem are the recitation's); the
    memorised poems are decodable there and not from the embeddings; the unseen poems are not decodable."""
    assert run_cli("lens", "--run", trained_run, "--heldout", others, "--device", "cpu", "--out", tmp_path / "l") == 0
    lens = json.loads((tmp_path / "l" / "lens.json").read_text())
    assert lens["kind"] == "recitebench-lens/1" and [x["layer"] for x in lens["members"]] == [0, 1, 2]
    assert run_cli("recite", "--run", trained_run, "--heldout", "none", "--device", "cpu",
                   "--out", tmp_path / "r") == 0
    recited = [json.loads(line)["nll_bits"] for line in (tmp_path / "r" / "samples.jsonl").read_text().splitlines()]
    assert lens["members"][-1]["per_poem_bits"] == pytest.approx(recited, abs=1e-2)
    members, unseen = lens["members"], lens["heldout"]
    assert members[-1]["top1"] >= 0.95 and members[0]["top1"] < 0.5 and unseen[-1]["top1"] < 0.5
    assert unseen[-1]["bits_per_poem"] > 2 * members[-1]["bits_per_poem"]


def test_a_dose_epoch_shows_each_copy_of_a_poem_in_another_step_evenly_spread():
    """Copies share a length, so bucketing an epoch by length would put a poem's 128 copies side by side: it would
    be seen in a handful of steps, many copies at once (the shipped dose set's first H200 runs: ~3.5 per epoch)."""
    import random

    from recitebench.train.batching import epoch_batches

    rng = random.Random(0)
    lengths = [rng.randint(20, 120) for _ in range(400)]
    repeats = [(1, 2, 4, 8, 16, 32, 64, 128)[i % 8] for i in range(400)]
    args = {"seed": 3, "epoch": 1, "max_rows": None, "max_tokens": 4096, "window": None, "repeats": repeats}
    batches = epoch_batches(lengths, **args)
    assert batches == epoch_batches(lengths, **args)  # fixed by (seed, epoch)
    steps: dict[int, list[int]] = {}
    for k, b in enumerate(batches):
        assert len(set(b)) == len(b)  # no poem twice in one step
        assert max(lengths[i] for i in b) * len(b) <= 4096
        for i in b:
            steps.setdefault(i, []).append(k)
    assert all(len(steps[i]) == repeats[i] for i in range(400))
    # evenly spread: a poem's copies 1/r of the epoch apart, within a few steps of that
    for i in range(400):
        gaps = [b - a for a, b in zip(steps[i], steps[i][1:])]
        assert all(abs(g - len(batches) / repeats[i]) <= 3 + 0.1 * len(batches) / repeats[i] for g in gaps), i
    # padding stays moderate (length-bucketed within windows that hold at most one copy of a poem)
    real = sum(lengths[i] for b in batches for i in b)
    assert real / sum(len(b) * max(lengths[i] for i in b) for b in batches) > 0.7


@pytest.mark.slow  # trains through the grid runner: ~20 s
def test_recall_rises_with_exposures_of_a_dose_set(tmp_path, shared):
    """A dose set: half the poems once per epoch, half eight times (seeded shares, recorded per poem, same bytes on a
    re-build); trained briefly, the eight-times poems are recalled where the once poems are not yet."""
    build = ["data", "build", "--preset", "cn-poems", "--source", shared / "data" / "cn_poems.jsonl.xz", "--n", "24",
             "--max-chars", "64", "--exposures", "1", "8"]
    assert run_cli(*build, "--out", tmp_path / "dose") == 0
    assert run_cli(*build, "--out", tmp_path / "again") == 0
    assert (tmp_path / "dose" / "poems.jsonl").read_bytes() == (tmp_path / "again" / "poems.jsonl").read_bytes()
    poems = [json.loads(line) for line in (tmp_path / "dose" / "poems.jsonl").read_text().splitlines()]
    assert sorted(p["exposures"] for p in poems) == [1] * 12 + [8] * 12
    assert json.loads((tmp_path / "dose" / "manifest.json").read_text())["exposures"] == {"1": 12, "8": 12}
    assert run_cli("train", "--data", tmp_path / "dose", "--model", "tiny", "--epochs", "12", "--lr", "3e-3",
                   "--batch-size", "8", "--recall-every", "0", "--no-progress", "--out", tmp_path / "run") == 0
    steps = json.loads((tmp_path / "run" / "train_summary.json").read_text())["final"]["step"]
    assert steps == 12 * 14  # 12 x 1 + 12 x 8 = 108 poems per epoch, 8 per step, no poem twice in a step
    assert run_cli("recite", "--run", tmp_path / "run", "--device", "cpu") == 0
    res = json.loads((tmp_path / "run" / "recite" / "results.json").read_text())
    once, eight = res["by_exposure"]["levels"]
    assert (once["exposures"], once["n"], eight["exposures"], eight["n"]) == (1, 12, 8, 12)
    assert eight["exact"] >= once["exact"] + 0.4, (once, eight, steps)
    assert 1 - eight["memorized_fraction"] < 0.5 * (1 - once["memorized_fraction"])  # bits the model still lacks
    assert res["by_exposure"]["exposures_for_50"] == 8 and res["schema_version"] == 5
    # in all: per epoch x the 12 epochs trained
    assert (once["exposures_total"], eight["exposures_total"], res["by_exposure"]["epochs"]) == (12, 96, 12)
    assert res["by_exposure"]["total_exposures_for_50"] == 96
    assert run_cli("report", tmp_path) == 0  # the run folder's report: the dose section with its table and plot
    md = (tmp_path / "report.md").read_text()
    assert "## Exposure dose" in md and "| run | 1 | 12 | 12 |" in md  # per epoch, in all, poems
    assert (tmp_path / "report_files" / "dose.png").is_file()


def test_retention_of_a_drops_while_b_is_learned_and_stays_when_a_goes_on(trained_run, small_cn, others, tmp_path):
    """A memorised (trained_run), then 10 epochs on B from A's model with snapshots every 4 and at 2 and 6 (so every
    even epoch, the last included): reciting A with every snapshot, its exact recall starts at the top and falls,
    correct poems turning into distortions and forgotten ones; the control (10 more epochs on A itself) keeps it
    (within a poem's flicker)."""
    common = ["--model", trained_run / "model", "--epochs", "10", "--lr", "1e-3", "--batch-size", "8",
              "--recall-every", "0", "--snapshot-every", "4", "--snapshot-at", "2", "6", "--no-progress"]
    assert run_cli("train", "--data", others, *common, "--out", tmp_path / "b") == 0
    assert run_cli("train", "--data", small_cn, *common, "--out", tmp_path / "a") == 0
    assert sorted(p.name for p in (tmp_path / "b" / "snapshots").iterdir()) == [
        f"epoch_{e:04d}" for e in range(0, 11, 2)]
    curves = {}
    for name in ("a", "b"):
        assert run_cli("retention", "--run", tmp_path / name, "--data", small_cn, "--device", "cpu") == 0
        curves[name] = json.loads((tmp_path / name / "retention" / small_cn.name / "retention.json").read_text())
    b, a = curves["b"]["points"], curves["a"]["points"]
    assert [p["epoch"] for p in b] == [0, 2, 4, 6, 8, 10] and b[0]["exact"] == 1.0 == a[0]["exact"]
    assert b[-1]["exact"] <= 0.5 and b[-1]["outcomes"]["forgotten"] > b[0]["outcomes"]["forgotten"]
    assert all(p["exact"] >= 0.9 for p in a)
    assert (tmp_path / "b" / "recite").exists() is False  # snapshots recite into retention/, not over RUN/recite
    done = tmp_path / "b" / "retention" / small_cn.name
    kept = {p.parent.name: p.stat().st_mtime_ns for p in done.glob("epoch_*/results.json")}
    for f in (done / "epoch_0004").iterdir():  # a retention cut short: one snapshot's recitation missing
        f.unlink()
    assert run_cli("retention", "--run", tmp_path / "b", "--data", small_cn, "--device", "cpu") == 0
    again = json.loads((done / "retention.json").read_text())
    assert [p["exact"] for p in again["points"]] == [p["exact"] for p in b]
    now = {p.parent.name: p.stat().st_mtime_ns for p in done.glob("epoch_*/results.json")}
    assert {k for k in now if now[k] != kept[k]} == {"epoch_0004"}  # only the missing one was recited again
    assert run_cli("recite", "--run", tmp_path / "b", "--device", "cpu") == 0  # a reported run: its own recitation
    assert run_cli("report", tmp_path) == 0
    md = (tmp_path / "report.md").read_text()
    assert "## Retention" in md and f"| b | {small_cn.name} | 10 |" in md
    assert (tmp_path / "report_files" / "retention.png").is_file()


RETENTION_SPEC = """
runs_dir: {out}
datasets:
  cn: {{preset: cn-poems, source: shared:cn_poems, n: 12, max_chars: 64, seed: 0}}
  cnb: {{preset: cn-poems, source: shared:cn_poems, n: 12, max_chars: 64, seed: 1}}
models:
  tiny: {{model: tiny}}
grid: [[cn, tiny]]
train: {{epochs: 40, lr: 3.0e-3, batch_size: 4, recall_every: 0}}
retention: {{first: cn, then: cnb, snapshot_every: 3, snapshot_at: [1], train: {{epochs: 9, lr: 1.0e-3}}}}
"""


@pytest.mark.slow  # trains through the grid runner: ~20 s
def test_a_spec_with_retention_continues_each_run_on_b_and_reports_a_over_time(tmp_path, shared, capsys):
    """`retention:` in a spec: phase B (cn.then.cnb__tiny) starts from cn__tiny's final model in a second wave, its
    snapshots recite cn, and the curve starts where phase A's own recitation ended, then falls; the report has it."""
    spec = tmp_path / "s.yaml"
    spec.write_text(RETENTION_SPEC.format(out=tmp_path / "runs"))
    assert run_cli("run", spec, "--dry-run") == 0
    assert "cn.then.cnb__tiny" in capsys.readouterr().out
    assert run_cli("run", spec) == 0
    a, b = tmp_path / "runs" / "cn__tiny", tmp_path / "runs" / "cn.then.cnb__tiny"
    saved = yaml.safe_load((b / "config.yaml").read_text())
    assert saved["model"]["model"] == str(a / "model") and saved["train"]["snapshot_every"] == 3
    curve = json.loads((b / "retention" / "cn" / "retention.json").read_text())
    points = curve["points"]
    assert [p["epoch"] for p in points] == [0, 1, 3, 6, 9]  # every 3, and the denser start snapshot_at asks for
    assert points[0]["exact"] == json.loads((a / "recite" / "results.json").read_text())["exact_match"] >= 0.75
    assert points[-1]["exact"] < points[0]["exact"]  # A fades while B is learned
    md = (tmp_path / "runs" / "report.md").read_text()
    assert "## Retention" in md and "| cn.then.cnb__tiny | cn | 9 |" in md
    mtime = (b / "retention" / "cn" / "retention.json").stat().st_mtime_ns
    assert run_cli("run", spec) == 0  # finished: nothing is redone
    assert (b / "retention" / "cn" / "retention.json").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("section, message", [
    ("{first: cn, then: nope}", "retention.then: 'nope' is not one of the spec's datasets"),
    ("{first: cnb, then: cn}", "retention.first: no grid run trains on 'cnb'"),
    ("{first: cn, then: cn}", "then must be another dataset than first"),
    ("{first: cn, then: cnb, train: {out: x}}", "retention.train.out is set by the experiment runner"),
    ("{first: cn, then: cnb, train: {snapshot_at: [2]}}", "retention.train.snapshot_at is set by the experiment"),
    ("{first: cn, then: cnb, snapshot_at: [10], train: {epochs: 9}}", "snapshot_at: epochs must lie in 1..9"),
])
def test_bad_retention_sections_are_one_line_errors_at_load(tmp_path, shared, capsys, section, message):
    spec = tmp_path / "s.yaml"
    text = RETENTION_SPEC.format(out=tmp_path / "runs")
    spec.write_text(text.replace(text.split("retention: ")[1], section + "\n"))
    assert run_cli("run", spec, "--dry-run") == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def _published():
    """(docs/dynamics_results, the text of docs/DYNAMICS.md): the shipped raw files and the prose that cites them."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "docs"
    return root / "dynamics_results", (root / "DYNAMICS.md").read_text(encoding="utf-8")


def test_the_published_h200_extraction_and_dose_figures_say_what_docs_dynamics_says():
    """docs/DYNAMICS.md's H200 tables, read back from the shipped raw files: the extraction sweep's rows (English and
    Chinese), and the two void dose runs' bits per level."""
    root, doc = _published()
    for folder, name, commit in (("extract_h200", "en256", "9f146ae"), ("extract_h200_cn", "cn256", "c0afbd4")):
        ext = json.loads((root / folder / f"{name}.extraction.json").read_text())
        assert ext["git_commit"] == commit and ext["model"]["model"] == "smollm2-135m-instruct-gguf"
        for r in ext["per_k"]:
            hi = 100 * r["exact_ci95"][1]
            row = f"| {r['k']} | {r['n']:,} | {r['full_length']:,} | 0.0 % [0.0, {hi:.2f}] | {r['token_match']:.3f} |"
            assert row in doc, (name, r)
    flat = " ".join(doc.split())
    for folder, recalled in (("dose_h200_1epoch", [0] * 8), ("dose_h200_4epochs_clustered", [0] * 7 + [4])):
        levels = json.loads((root / folder / "results.json").read_text())["by_exposure"]["levels"]
        assert [lv["exposures"] for lv in levels] == [1, 2, 4, 8, 16, 32, 64, 128]
        assert [lv["exact_count"] for lv in levels] == recalled and all(lv["n"] == 250 for lv in levels)
        assert " / ".join(f"{lv['memorized_bits_per_poem']:.0f}" for lv in levels) in flat


def test_the_published_h200_dose_curve_says_what_docs_dynamics_says():
    """The dose table of docs/DYNAMICS.md, row by row from the shipped results.json, and the 50 % / 90 % doses the
    prose names are the ones by_exposure computed."""
    root, doc = _published()
    raw = root / "dose_h200"
    res = json.loads((raw / "results.json").read_text())
    dose = res["by_exposure"]
    assert res["git_commit"] == "e22b98a" and res["n"] == 2000 and dose["epochs"] == 4
    for lv in dose["levels"]:
        lo, hi = (100 * x for x in lv["exact_ci95"])
        row = (f"| {lv['exposures']} | {lv['exposures_total']} | {lv['exact_count']} / {lv['n']} | "
               f"{100 * lv['exact']:.1f} % [{lo:.1f}, {hi:.1f}] | {lv['memorized_bits_per_poem']:.0f} | "
               f"{lv['memorized_fraction']:.3f} |")
        assert row in doc, lv
    flat = " ".join(doc.split())
    assert (dose["exposures_for_50"], dose["total_exposures_for_50"]) == (4, 16)
    assert (dose["exposures_for_90"], dose["total_exposures_for_90"]) == (16, 64)
    assert "**4 exposures per epoch (16 in all)**" in flat and "**16 per epoch (64 in all)**" in flat
    summary = json.loads((raw / "train_summary.json").read_text())
    assert summary["final"]["step"] == 1024 and "1,024 steps (256 per epoch" in flat


def test_the_published_h200_retention_says_what_docs_dynamics_says():
    """The retention table of docs/DYNAMICS.md from the per-snapshot recitations shipped for both models; where the
    run wrote its curve (SmolLM2), retention.json holds the same points."""
    root, doc = _published()
    raw = root / "retention_h200"
    for model, run in (("0.5B", "cn256.then.en256__q05"), ("SmolLM2", "cn256.then.en256__smollm2")):
        for epoch in (0, 20, 40, 60, 80, 100):
            res = json.loads((raw / run / "retention" / f"epoch_{epoch:04d}" / "results.json").read_text())
            assert res["git_commit"] == "e22b98a" and res["n"] == 2000
            o = res["outcomes"]
            lo, hi = (100 * x for x in res["exact_match_ci95"])
            cell = (f"{100 * res['exact_match']:.1f} % [{lo:.1f}, {hi:.1f}] | {o['correct']:,} / "
                    f"{o['minor_distortion']} / {o['severe_distortion']} / {o['forgotten']:,}")
            line = next(ln for ln in doc.splitlines() if ln.startswith(f"| {epoch} | ") and "%" in ln)
            assert cell in line, (model, epoch)
            assert (epoch == 0) == (o["forgotten"] < 2000)  # every Chinese poem forgotten from epoch 20 on
    curve = json.loads((raw / "cn256.then.en256__smollm2" / "retention" / "retention.json").read_text())
    for p in curve["points"]:
        res = json.loads((raw / "cn256.then.en256__smollm2" / "retention" / p["snapshot"] / "results.json").read_text())
        assert (p["exact"], p["outcomes"]) == (res["exact_match"], res["outcomes"])
    for run, shown in (("cn256__q05", "97.0 % (1,941 / 2,000)"), ("cn256.then.en256__q05", "94.2 % (1,884 / 2,000)"),
                       ("cn256__smollm2", "75.8 % (1,517 / 2,000)"),
                       ("cn256.then.en256__smollm2", "99.1 % (1,982 / 2,000)")):
        res = json.loads((raw / run / "results.json").read_text())
        assert f"{100 * res['exact_match']:.1f} % ({res['n_correct']:,} / {res['n']:,})" == shown and shown in doc
