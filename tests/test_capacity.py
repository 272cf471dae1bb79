"""Memory capacity: the random-string control corpus, bits accounting, and `recitebench capacity` end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from conftest import KILL, ROOT, read_jsonl, run_cli


def build_random(out, *extra) -> dict:
    assert run_cli("data", "build", "--preset", "random", "--n", "16", "--min-symbols", "6", "--max-symbols", "9",
                   "--seed", "3", *extra, "--out", out) == 0
    return json.loads((out / "manifest.json").read_text())


def test_random_preset_is_byte_identical_per_seed_and_nested(tmp_path):
    a = build_random(tmp_path / "a")
    build_random(tmp_path / "b")
    assert (tmp_path / "a" / "poems.jsonl").read_bytes() == (tmp_path / "b" / "poems.jsonl").read_bytes()
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    other = build_random(tmp_path / "c", "--alphabet", "ab")
    assert other["poems_sha256"] != a["poems_sha256"]
    rows = read_jsonl(tmp_path / "a" / "poems.jsonl")
    for r in rows:  # the exact entropy: L symbols of log2(10) bits, plus which of the 4 lengths
        assert set(r["target"]) <= set("0123456789") and 6 <= len(r["target"]) <= 9
        assert r["entropy_bits"] == pytest.approx(len(r["target"]) * math.log2(10) + 2, abs=1e-5)
    assert a["random"]["entropy_bits"] == pytest.approx(sum(r["entropy_bits"] for r in rows), abs=1e-4)
    assert run_cli("data", "build", "--preset", "random", "--n", "8", "--min-symbols", "6", "--max-symbols", "9",
                   "--seed", "3", "--out", tmp_path / "small") == 0
    assert read_jsonl(tmp_path / "small" / "poems.jsonl") == rows[:8]  # a smaller N is a prefix


def test_nested_poem_subsets_are_prefixes(tmp_path, shared):
    def build(n):
        assert run_cli("data", "build", "--source", shared / "data" / "cn_poems.jsonl.xz", "--n", n, "--max-chars",
                       "64", "--nested", "--out", tmp_path / f"n{n}") == 0
        return read_jsonl(tmp_path / f"n{n}" / "poems.jsonl")

    small, large = build(10), build(30)
    assert large[:10] == small


@pytest.fixture(scope="module")
def random_run(tmp_path_factory):
    """A tiny model that recalls 16 random strings exactly, trained to a near-zero loss."""
    base = tmp_path_factory.mktemp("rnd")
    build_random(base / "data")
    assert run_cli("train", "--data", base / "data", "--model", "tiny", "--epochs", "80", "--lr", "3e-3",
                   "--batch-size", "8", "--recall-every", "10", "--no-progress", "--out", base / "run") == 0
    assert run_cli("recite", "--run", base / "run") == 0
    return base / "run"


def test_exactly_recalled_random_string_holds_its_entropy(random_run):
    res = json.loads((random_run / "recite" / "results.json").read_text())
    samples = read_jsonl(random_run / "recite" / "samples.jsonl")
    assert res["exact_match"] == 1.0
    assert res["memory"]["reference"].startswith("truth")
    for s, p in zip(samples, read_jsonl(random_run.parent / "data" / "poems.jsonl")):
        assert s["ref_bits"] == p["entropy_bits"]
        assert s["memorized_bits"] == pytest.approx(p["entropy_bits"], rel=0.01)
    assert res["memory"]["memorized_bits_exact"] == pytest.approx(res["memory"]["reference_bits"], rel=0.01)
    assert res["memory"]["bits_per_parameter"] == pytest.approx(res["memory"]["memorized_bits"]
                                                                / res["model"]["parameters"])
    assert res["speed"]["epochs_to_90"] is not None and res["speed"]["epochs_to_50"] <= res["speed"]["epochs_to_90"]
    assert res["speed"]["tokens_to_90"] == res["speed"]["epochs_to_90"] * res["speed"]["tokens_per_epoch"]


def test_bits_count_every_poem_token_and_the_end_token(random_run):
    """nll_bits equals -log2 p(poem tokens + end token | prompt), recomputed here from the model's logits."""
    from transformers import AutoModelForCausalLM

    from recitebench.models.tokenizer import load_tokenizer

    tok = load_tokenizer(str(random_run / "model"))
    model = AutoModelForCausalLM.from_pretrained(random_run / "model", dtype=torch.float32).eval()
    poem = read_jsonl(random_run.parent / "data" / "poems.jsonl")[0]
    sample = read_jsonl(random_run / "recite" / "samples.jsonl")[0]
    prompt = tok(poem["prompt"] + "\n", add_special_tokens=False)["input_ids"]
    target = tok(poem["target"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with torch.no_grad():
        logp = model(torch.tensor([prompt + target])).logits[0].float().log_softmax(-1)
    per_token = [-logp[len(prompt) - 1 + k, t].item() / math.log(2) for k, t in enumerate(target)]
    assert sample["nll_bits"] == pytest.approx(sum(per_token), rel=1e-3, abs=1e-3)
    assert per_token[-1] > 0  # the end token's share is counted too (dropping it would change the sum)
    assert sample["nll_bits"] != pytest.approx(sum(per_token[:-1]), rel=1e-6, abs=1e-9)


def test_an_untrained_model_memorises_nothing(tmp_path, small_cn):
    """A run whose weights never moved (lr 1e-12) against its own initialisation: ~0 bits memorised."""
    assert run_cli("train", "--data", small_cn, "--model", "tiny", "--epochs", "1", "--lr", "1e-12",
                   "--batch-size", "8", "--no-progress", "--out", tmp_path / "run") == 0
    assert run_cli("recite", "--run", tmp_path / "run") == 0
    mem = json.loads((tmp_path / "run" / "recite" / "results.json").read_text())["memory"]
    assert mem["reference"].startswith("base: tiny") and "recorded by the run" in mem["reference"]
    assert mem["reference_bits"] > 1000
    assert mem["memorized_bits"] < 1e-3 * mem["reference_bits"]
    assert mem["nll_bits"] == pytest.approx(mem["reference_bits"], rel=1e-4)
    # Without the run's record, the base model is rebuilt (same config, init seed, tokenizer): the same bits.
    (tmp_path / "run" / "base_bits.json").unlink()
    assert run_cli("recite", "--run", tmp_path / "run", "--out", tmp_path / "again") == 0
    rebuilt = json.loads((tmp_path / "again" / "results.json").read_text())["memory"]
    assert "recorded" not in rebuilt["reference"]
    assert rebuilt["reference_bits"] == pytest.approx(mem["reference_bits"], rel=1e-5)


CAPACITY_SPEC = """
name: cap
runs_dir: {out}
datasets:
  rnd: {{preset: random, min_symbols: 6, max_symbols: 8}}
models:
  tiny: {{model: tiny}}
train: {{epochs: 30, batch_size: 8, lr: 3.0e-3, recall_every: 5, checkpoint_every: 5}}
capacity: {{sizes: [4, 8, 16], seeds: [0], lrs: [3.0e-3, 1.0e-2], pilot_epochs: 6}}
"""


@pytest.mark.slow
def test_capacity_sweep_end_to_end_resumes_after_a_kill(tmp_path):
    spec = tmp_path / "cap.yaml"
    out = tmp_path / "cap"
    spec.write_text(CAPACITY_SPEC.format(out=out))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    killed = subprocess.run([sys.executable, KILL, "15", "capacity", str(spec)], env=env, capture_output=True)
    assert killed.returncode == 137  # died in the first sweep run, after its epoch-15 checkpoint
    assert (out / "pilot.json").is_file() and (out / "sweep" / "n4_s0__tiny_s0" / "checkpoint.pt").is_file()
    done = subprocess.run([sys.executable, "-m", "recitebench", "capacity", str(spec)], env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stdout and "capacity" in done.stdout
    epochs = [json.loads(x)["epoch"] for x in (out / "sweep" / "n4_s0__tiny_s0" / "metrics.jsonl").open()]
    assert epochs == list(range(1, 31))
    cap = json.loads((out / "capacity.json").read_text())
    tiny = cap["models"]["tiny"]
    assert tiny["lr"] in (3e-3, 1e-2) and json.loads((out / "pilot.json").read_text())["picked"]["tiny"] == tiny["lr"]
    assert [p["size"] for p in tiny["points"]] == [4, 8, 16]
    bits = [p["dataset_bits"] for p in tiny["points"]]
    assert bits[0] < bits[1] < bits[2]
    assert tiny["capacity_bits"]["mean"] == max(p["memorized_bits"] for p in tiny["points"])
    assert (out / "capacity.png").read_bytes()[:4] == b"\x89PNG"
    assert "| tiny |" in (out / "capacity.md").read_text()


def test_capacity_help_teaches_the_protocol(capsys):
    with pytest.raises(SystemExit):
        run_cli("capacity", "--help")
    text = capsys.readouterr().out
    for words in ("Pilot", "nested subsets", "plateau of memorised bits", "--sizes", "--lrs", "--executor"):
        assert words in text


def test_capacity_dry_run_validates_both_grids(tmp_path, capsys):
    spec = tmp_path / "cap.yaml"
    spec.write_text(CAPACITY_SPEC.format(out=tmp_path / "cap"))
    assert run_cli("capacity", spec, "--dry-run", "--sizes", "4", "8") == 0
    text = capsys.readouterr().out
    assert "n8_s0__tiny_lr0.01" in text and "n4_s0__tiny_s0" in text and "n16" not in text
    spec.write_text(CAPACITY_SPEC.format(out=tmp_path / "cap").replace("sizes: [4, 8, 16]", "sizes: [8, 4]"))
    assert run_cli("capacity", spec, "--dry-run") == 1
    assert "sizes must be positive and increasing" in capsys.readouterr().err
    own = CAPACITY_SPEC.replace("tiny: {{model: tiny}}", "tiny: {{model: tiny, capacity: {{lrs: [1.0e-3, 3.0e-3]}}}}")
    spec.write_text(own.format(out=tmp_path / "cap"))
    assert run_cli("capacity", spec, "--dry-run") == 1
    assert "models.tiny.capacity: a model's own learning-rate grid and sizes are read by `engine: stacked` only" in (
        capsys.readouterr().err)


def test_capacity_spec_paths_are_relative_to_the_spec_file(tmp_path, capsys, monkeypatch):
    """A relative `model: m.json` is read from the spec's folder, whatever the working directory; a missing one
    fails the dry run, as the run itself would. Capacity specs share the grid grammar (`datasets:`)."""
    from recitebench.models.presets import TINY_CONFIG

    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "m.json").write_text(json.dumps(TINY_CONFIG))
    spec = folder / "cap.yaml"
    spec.write_text(CAPACITY_SPEC.format(out=tmp_path / "cap").replace("{model: tiny}", "{model: m.json}"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run_cli("capacity", spec, "--dry-run") == 0
    sweep = (tmp_path / "cap" / "sweep.yaml").read_text()
    assert str(folder / "m.json") in sweep  # the generated grids hold absolute paths
    spec.write_text(CAPACITY_SPEC.format(out=tmp_path / "cap").replace("{model: tiny}", "{model: missing.json}"))
    assert run_cli("capacity", spec, "--dry-run") == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(folder / "missing.json") in err and "spec's folder" in err
    spec.write_text(CAPACITY_SPEC.format(out=tmp_path / "cap").replace("datasets:\n  rnd:", "data:"))
    assert run_cli("capacity", spec, "--dry-run") == 1
    assert "unknown key 'data'" in capsys.readouterr().err


def test_random_tokens_are_exact_nested_and_their_tokenizer_round_trips(tmp_path):
    """The random-tokens preset: S ids from V symbols per sequence, S*log2(V) bits each, the smaller set a prefix of
    the larger, the same bytes for the same arguments, and a symbol tokenizer (one symbol = one token)."""
    from transformers import AutoTokenizer

    args = ["data", "build", "--preset", "random-tokens", "--vocab", "16", "--length", "8", "--seed", "3"]
    assert run_cli(*args, "--n", "6", "--nested", "--out", tmp_path / "a") == 0
    assert run_cli(*args, "--n", "9", "--nested", "--out", tmp_path / "b") == 0
    assert run_cli(*args, "--n", "9", "--nested", "--out", tmp_path / "c") == 0
    a, b = read_jsonl(tmp_path / "a" / "poems.jsonl"), read_jsonl(tmp_path / "b" / "poems.jsonl")
    assert b[:6] == a and (tmp_path / "b" / "poems.jsonl").read_bytes() == (tmp_path / "c" / "poems.jsonl").read_bytes()
    assert all(len(r["token_ids"]) == 8 and all(0 <= t < 16 for t in r["token_ids"]) and r["prompt"] == "" for r in b)
    assert {r["entropy_bits"] for r in b} == {32.0}
    tok = AutoTokenizer.from_pretrained(tmp_path / "b" / "tokenizer")
    assert all(tok(r["target"], add_special_tokens=False)["input_ids"] == r["token_ids"] for r in b)
    assert tok.decode(b[0]["token_ids"]) == b[0]["target"]
    assert run_cli(*args, "--n", "2", "--keyed", "--out", tmp_path / "k") == 0
    assert read_jsonl(tmp_path / "k" / "poems.jsonl")[1]["prompt"] == "Recite sequence r00001:"


def test_a_stacked_copy_computes_what_qwen2_computes():
    """Copy k of the stacked engine has the logits of Transformers' Qwen2ForCausalLM with copy k's weights."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from recitebench.train.stacked import Arch, init_weights, logits

    arch = Arch(vocab=20, hidden=32, layers=2, heads=4, kv_heads=2, ffn=64)
    w = init_weights(arch, [0, 1, 2], torch.device("cpu"))
    cfg = Qwen2Config(vocab_size=20, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=64, tie_word_embeddings=True)
    cfg._attn_implementation = "sdpa"
    model = Qwen2ForCausalLM(cfg).eval()
    model.load_state_dict({n: t[1].detach() for n, t in w.items()}, strict=False)  # lm_head is tied
    ids = torch.randint(0, 20, (3, 4, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(logits(arch, w, ids)[1], model(input_ids=ids[1]).logits, atol=1e-5)
        assert not torch.allclose(logits(arch, w, ids)[0], model(input_ids=ids[0]).logits, atol=1e-3)  # own weights
    assert arch.parameters() == sum(p.numel() for p in model.parameters())


def test_a_tiny_model_trained_to_convergence_memorises_the_known_entropy():
    """Eight random sequences (V=16, S=64: 2,048 bits): trained until memorised bits stop growing, the model holds
    them within 2 % (the first token of each sequence follows <bos> alone, so at most 3 bits of each stay unknown);
    the same points stopped early are labelled not converged."""
    from recitebench.train.stacked import Arch, Point, StackedSettings, StackedTrainer

    data = {0: torch.randint(0, 16, (8, 64), generator=torch.Generator().manual_seed(0))}
    arch = Arch(vocab=20, hidden=64, layers=2, heads=4, kv_heads=4, ffn=128)
    points = [Point(8, 0, 3e-3), Point(8, 0, 1e-2)]
    settings = StackedSettings(batch=8, max_steps=3000, min_steps=400, eval_every=100, warmup=50)
    results, _ = StackedTrainer(arch, points, data, 16, 64 * 4.0, settings, torch.device("cpu"),
                                log=lambda m: None).run()
    assert all(r.converged for r in results)
    assert max(r.memorized_bits for r in results) >= 0.98 * 2048
    early = StackedSettings(batch=8, max_steps=100, min_steps=50, eval_every=50, warmup=50)
    results, _ = StackedTrainer(arch, points, data, 16, 256.0, early, torch.device("cpu"), log=lambda m: None).run()
    assert not any(r.converged for r in results) and all(r.memorized_bits < 2048 for r in results)


def test_inverse_sqrt_warms_up_then_decays_without_a_horizon():
    from recitebench.train.stacked import StackedSettings, lr_scale

    s = StackedSettings(warmup=100, schedule="inverse-sqrt", decay_steps=1000)
    at = {t: float(lr_scale(torch.tensor(float(t)), s)) for t in (50, 100, 1000, 4000, 16000)}
    assert at == pytest.approx({50: 0.5, 100: 1.0, 1000: 1.0, 4000: 0.5, 16000: 0.25})
    assert float(lr_scale(torch.tensor(4000.0), StackedSettings(warmup=100))) == 1.0
    with pytest.raises(ValueError, match="schedule"):
        StackedSettings(schedule="cosine")


def test_converged_points_leave_the_stack_and_a_saved_stack_continues(tmp_path):
    """A small set converges early and leaves (its result is the one at convergence, its curve ends there); the others
    train on. Stopped at a cap and continued from its state under a higher cap, the run equals one uninterrupted run."""
    from recitebench.train.stacked import Arch, Point, StackedSettings, StackedTrainer

    data = {0: torch.randint(0, 16, (16, 32), generator=torch.Generator().manual_seed(1))}
    arch = Arch(vocab=20, hidden=32, layers=1, heads=2, kv_heads=2, ffn=64)
    points = [Point(2, 0, 1e-2), Point(16, 0, 3e-3)]
    cfg = {"batch": 8, "min_steps": 100, "eval_every": 50, "warmup": 20}
    logs: list[str] = []

    def trainer(cap, state=None):
        return StackedTrainer(arch, points, data, 16, 32 * 4.0, StackedSettings(max_steps=cap, **cfg),
                              torch.device("cpu"), log=logs.append, state_path=state)

    whole, _ = trainer(400).run()
    small = whole[0]
    assert small.converged and small.curve[-1]["step"] == small.converged_step < 400
    assert whole[1].curve[-1]["step"] == 400 and "1 still in the stack" in logs[-1]
    state = tmp_path / "state.pt"
    trainer(250, state).run()
    again, thr = trainer(400, state).run()
    assert any(m.startswith("resumed at step 250") for m in logs)
    assert [r.curve for r in again] == [r.curve for r in whole] and thr["steps"] == 400
    with pytest.raises(ValueError, match="other points or settings"):
        StackedTrainer(arch, points[:1], data, 16, 128.0, StackedSettings(max_steps=450, **cfg), torch.device("cpu"),
                       log=logs.append, state_path=state).run()


def test_a_diverged_rate_leaves_the_stack_and_no_point_depends_on_its_stack_mates():
    from recitebench.train.stacked import Arch, Point, StackedSettings, StackedTrainer

    data = {0: torch.randint(0, 16, (16, 32), generator=torch.Generator().manual_seed(1))}
    arch = Arch(vocab=20, hidden=32, layers=1, heads=2, kv_heads=1, ffn=64)
    s = StackedSettings(batch=8, max_steps=100, min_steps=100, eval_every=20, warmup=1)

    def run(mate):
        return StackedTrainer(arch, [Point(16, 0, 3e-3), mate], data, 16, 128.0, s, torch.device("cpu"),
                              log=lambda m: None).run()[0]

    blown, calm = run(Point(16, 0, 1e30)), run(Point(4, 0, 1e-2))
    assert blown[1].diverged_step == 20 and blown[1].memorized_bits == 0.0 and not blown[1].converged
    assert blown[0].curve == calm[0].curve and blown[0].memorized_bits > 0


def test_annealed_measurements_at_budgets_four_thirds_apart_leave_the_trunk_as_it_was(tmp_path):
    """With anneal_steps, a measurement is of an annealed copy at budgets 4/3 apart; the trunk goes on as if the
    anneal never ran (its bits equal a run without anneals at the same steps), and annealing gains bits."""
    from recitebench.train.stacked import Arch, Point, StackedSettings, StackedTrainer

    s = StackedSettings(min_steps=4000, anneal_steps=500)
    chain = [s.next_measurement(0)]
    while chain[-1] < 13000:
        chain.append(s.next_measurement(chain[-1]))
    assert chain == [3000, 4000, 5400, 7200, 9600, 12800, 17100]
    assert all(a <= 0.75 * b for a, b in zip(chain, chain[1:]))
    assert StackedSettings().next_measurement(3000) == 4000
    data = {0: torch.randint(0, 16, (64, 32), generator=torch.Generator().manual_seed(2))}
    arch = Arch(vocab=20, hidden=16, layers=1, heads=2, kv_heads=1, ffn=32)
    cfg = {"batch": 8, "max_steps": 600, "min_steps": 400, "warmup": 20, "tolerance": 0.0}

    def run(**extra):
        return StackedTrainer(arch, [Point(64, 0, 3e-2)], data, 16, 128.0, StackedSettings(**cfg, **extra),
                              torch.device("cpu"), log=lambda m: None).run()[0][0].curve

    annealed, plain = run(anneal_steps=50), {c["step"]: c["memorized_bits"] for c in run(eval_every=100)}
    assert [c["step"] for c in annealed] == [300, 400, 600]
    assert all(c["trunk_memorized_bits"] == plain[c["step"]] for c in annealed)
    assert all(c["memorized_bits"] > c["trunk_memorized_bits"] for c in annealed)
    # killed between two measurements (at trunk step 450), it continues from its last save (every eval_every = 100
    # steps: step 400) to the same curve as the uninterrupted run
    state = tmp_path / "state.pt"
    tr = StackedTrainer(arch, [Point(64, 0, 3e-2)], data, 16, 128.0,
                        StackedSettings(**cfg, anneal_steps=50, eval_every=100), torch.device("cpu"),
                        log=lambda m: None, state_path=state)
    calls, step = [0], tr.step

    def killed():
        calls[0] += 1
        if calls[0] > 300 + 50 + 100 + 50 + 50:
            raise KeyboardInterrupt
        step()

    tr.step = killed
    with pytest.raises(KeyboardInterrupt):
        tr.run()
    assert torch.load(state, weights_only=False)["progress"]["step"] == 400
    again = StackedTrainer(arch, [Point(64, 0, 3e-2)], data, 16, 128.0,
                           StackedSettings(**cfg, anneal_steps=50, eval_every=100), torch.device("cpu"),
                           log=lambda m: None, state_path=state).run()[0][0].curve
    assert again == run(anneal_steps=50, eval_every=100)


STACKED_SPEC = """
runs_dir: {out}
datasets:
  tokens: {{preset: random-tokens, vocab: 8, length: 8}}
models:
  t: {{model: t.json}}
executor: {{jobs: 1}}
capacity: {{engine: stacked, seeds: [0, 1], lrs: [3.0e-3, 1.0e-2, 3.0e-2], size_multiples: [0.5, 2], batch: 16,
            max_steps: 200, min_steps: 100, eval_every: 100}}
"""


def test_recitebench_capacity_stacked_labels_an_unconverged_capacity_a_lower_bound(tmp_path, capsys):
    """Through the CLI: sizes from the model's predicted capacity, one stack per model, and a cap that stops the
    points early: the table says lower bound and not converged, never capacity."""
    (tmp_path / "t.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 16, "intermediate_size": 32,
                                                 "num_hidden_layers": 1, "num_attention_heads": 2,
                                                 "num_key_value_heads": 1, "tie_word_embeddings": True}))
    spec = tmp_path / "cap.yaml"
    spec.write_text(STACKED_SPEC.format(out=tmp_path / "out"))
    assert run_cli("capacity", spec) == 0
    cap = json.loads((tmp_path / "out" / "capacity.json").read_text())
    t = cap["models"]["t"]
    assert t["sizes"] == [round(0.5 * 3.6 * t["parameters"] / 24), round(2 * 3.6 * t["parameters"] / 24)]
    assert t["label"] == "lower bound" and cap["fits"]["fp32"]["alpha"] is None
    assert "at_least" not in cap["fits"]["fp32"]  # one model: no slope, not even a bound
    assert any(not p["converged"] for s in t["per_seed"] for p in s["points"])
    md = (tmp_path / "out" / "capacity.md").read_text()
    assert "| lower bound |" in md and "not converged" in md and "lower bound" in capsys.readouterr().out
    assert run_cli("capacity", spec, "--max-steps", "300") == 0  # a higher cap continues the unconverged points
    group = json.loads((tmp_path / "out" / "stacked" / "t" / "group.json").read_text())
    assert group["settings"]["max_steps"] == group["throughput"]["steps"] == 300
    assert "resumed at step 200" in (tmp_path / "out" / "stacked" / "t" / "run.log").read_text()
    # a model's own grid: a group written for other rates is not reused (its stale state is named, not continued)
    (tmp_path / "out" / "stacked" / "t" / "state.pt").unlink()
    own = STACKED_SPEC.replace("t: {{model: t.json}}",
                               "t: {{model: t.json, capacity: {{lrs: [1.0e-3, 3.0e-3, 1.0e-2]}}}}")
    spec.write_text(own.format(out=tmp_path / "out"))
    assert run_cli("capacity", spec, "--max-steps", "300") == 0
    group = json.loads((tmp_path / "out" / "stacked" / "t" / "group.json").read_text())
    assert group["lrs"] == [1e-3, 3e-3, 1e-2] and {p["lr"] for p in group["points"]} == {1e-3, 3e-3, 1e-2}
    assert json.loads((tmp_path / "out" / "capacity.json").read_text())["models"]["t"]["lr"] == 3e-3
    spec.write_text(own.replace("length: 8}}", "length: 8, exposures: [1, 2]}}").format(out=tmp_path / "out"))
    assert run_cli("capacity", spec, "--dry-run") == 1 and "samples every sequence" in capsys.readouterr().err
    for bad, says in (("[1.0e-2, 1.0e-3]", "increasing positive"), ("[]", "increasing positive")):
        spec.write_text(own.replace("[1.0e-3, 3.0e-3, 1.0e-2]", bad).format(out=tmp_path / "out"))
        capsys.readouterr()
        assert run_cli("capacity", spec, "--dry-run") != 0
        err = capsys.readouterr().err
        assert "models.t.capacity.lrs" in err and says in err and "Traceback" not in err


def test_a_size_added_to_a_finished_group_trains_only_the_points_it_lacks(tmp_path, capsys):
    """A model given a larger size after its group finished keeps the group's finished points (their records as
    written) and trains the new ones in a stack of their own, which a raised cap continues from its state; the grid
    moves to the new largest size, the earlier group file and stack state stay beside the new ones, and a dry run
    says what it would train."""
    (tmp_path / "t.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 16, "intermediate_size": 32,
                                                 "num_hidden_layers": 1, "num_attention_heads": 2,
                                                 "num_key_value_heads": 1, "tie_word_embeddings": True}))
    spec, folder = tmp_path / "cap.yaml", tmp_path / "out" / "stacked" / "t"
    quick = STACKED_SPEC.replace("max_steps: 200", "max_steps: 1200, prior_bits_per_parameter: 0.05")  # 3-21 rows
    spec.write_text(quick.format(out=tmp_path / "out"))
    assert run_cli("capacity", spec) == 0
    first = json.loads((folder / "group.json").read_text())
    before = (folder / "group.json").read_bytes()
    finished = {(q["n"], q["seed"], q["lr"]): q for q in first["points"] if q["converged"]}
    wider = quick.replace("t: {{model: t.json}}", "t: {{model: t.json, capacity: {{size_multiples: [0.5, 2, 4]}}}}")
    spec.write_text(wider.format(out=tmp_path / "out"))
    capsys.readouterr()
    assert run_cli("capacity", spec, "--dry-run") == 0
    from recitebench.experiment.capacity import capacity_spec
    from recitebench.experiment.capacity_stacked import plan
    from recitebench.experiment.config import CapacityConfig
    from recitebench.experiment.spec import load_spec

    planned = plan(capacity_spec(load_spec(spec)), CapacityConfig(**load_spec(spec).capacity))["t"]["points"]
    keep = [k for k in ((q.n, q.seed, q.lr) for q in planned) if k in finished]
    assert keep and len(keep) < len(planned)  # the 0.5x and 2x points at the middle rate; the grid moved to 4x
    assert f"keeps {len(keep)} finished points of its group file, trains {len(planned) - len(keep)} more" in (
        capsys.readouterr().out)
    # stopped by a low cap, the new stack is continued from its own state under the spec's cap (its kept points too)
    assert run_cli("capacity", spec, "--max-steps", "200") == 0
    capped = json.loads((folder / "group.json").read_text())
    assert any(not q["converged"] for q in capped["points"] if q["stack"] == 1)
    capsys.readouterr()
    assert run_cli("capacity", spec, "--dry-run") == 0
    assert "more in its last stack, continued" in capsys.readouterr().out
    assert run_cli("capacity", spec) == 0
    assert "resumed at step 200" in (folder / "run.log").read_text()
    assert not (folder / "group.stack1.json").exists()  # a continued stack is not a new one
    group = json.loads((folder / "group.json").read_text())
    assert [(q["n"], q["seed"], q["lr"]) for q in group["points"]] == [(q.n, q.seed, q.lr) for q in planned]
    by_key = {(q["n"], q["seed"], q["lr"]): q for q in group["points"]}
    assert all(by_key[k] == {**finished[k], "stack": 0} for k in keep)
    assert {q["stack"] for k, q in by_key.items() if k not in keep} == {1}
    assert [x["stack"] for x in group["stacks"]] == [0, 1] and group["stacks"][1]["points"] == len(planned) - len(keep)
    assert (folder / "group.stack0.json").read_bytes() == before and (folder / "state.stack0.pt").is_file()
    assert "finished points kept" in (folder / "run.log").read_text()
    t = json.loads((tmp_path / "out" / "capacity.json").read_text())["models"]["t"]
    assert t["sizes"] == group["sizes"] and len(t["sizes"]) == 3 and set(t["lr_grid"]) == {"0.003", "0.01", "0.03"}
    assert run_cli("capacity", spec, "--dry-run") == 0 and "finished (reused)" in capsys.readouterr().out


def test_a_models_own_size_multiples_set_its_sizes_and_are_validated(tmp_path, capsys):
    """`capacity: {size_multiples: [...]}` on one model replaces the spec's multiples for that model only (the dry
    run prints the sizes it would train); a bad list fails in one line naming the field."""
    (tmp_path / "t.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 16, "intermediate_size": 32,
                                                 "num_hidden_layers": 1, "num_attention_heads": 2,
                                                 "num_key_value_heads": 1, "tie_word_embeddings": True}))
    spec = tmp_path / "cap.yaml"
    own = STACKED_SPEC.replace("t: {{model: t.json}}", "t: {{model: t.json}}\n  u: {{model: t.json, capacity: "
                                                       "{{size_multiples: [0.5, 2, 8]}}}}")
    spec.write_text(own.format(out=tmp_path / "out"))
    assert run_cli("capacity", spec, "--dry-run") == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith(("t ", "u "))}
    from recitebench.experiment.capacity import capacity_spec
    from recitebench.experiment.capacity_stacked import plan
    from recitebench.experiment.config import CapacityConfig
    from recitebench.experiment.spec import load_spec

    ccfg = CapacityConfig(**load_spec(spec).capacity)
    plans = plan(capacity_spec(load_spec(spec)), ccfg)
    predicted = 3.6 * plans["t"]["parameters"] / 24
    assert plans["t"]["sizes"] == [round(0.5 * predicted), round(2 * predicted)]
    assert plans["u"]["sizes"] == [round(0.5 * predicted), round(2 * predicted), round(8 * predicted)]
    assert str(plans["u"]["sizes"]).replace(" ", "") in lines["u"].replace(" ", "")
    for bad in ("[2, 0.5]", "[]", "[0, 2]", "two"):
        spec.write_text(own.replace("[0.5, 2, 8]", bad).format(out=tmp_path / "out"))
        assert run_cli("capacity", spec, "--dry-run") != 0
        err = capsys.readouterr().err
        assert "models.u.capacity.size_multiples" in err and "Traceback" not in err
    spec.write_text(own.replace("{{size_multiples: [0.5, 2, 8]}}", "{{steps: 3}}").format(out=tmp_path / "out"))
    assert run_cli("capacity", spec, "--dry-run") != 0
    assert "only `lrs`, `rate_points`, `size_multiples`" in capsys.readouterr().err


def _group(params: int, bits: dict, converged: bool = True, best_lr: float = 2e-3,
           lrs: tuple = (1e-3, 2e-3, 4e-3), below: float = 0.9) -> dict:
    """A stacked group's record: sizes 100/400/800, seeds 0-1 at the middle rate, the grid at the largest size (the
    other rates store `below` x the middle one's bits, the best 1 % more)."""
    mid = lrs[len(lrs) // 2]
    pts = [{"n": n, "seed": s, "lr": mid, "converged": converged, "converged_step": 5000 if converged else None,
            "memorized_bits": bits[n] * (1 + 0.01 * s), "dataset_bits": 704.0 * n} for s in (0, 1) for n in bits]
    pts += [{"n": 800, "seed": 0, "lr": lr, "converged": True, "converged_step": 5000, "dataset_bits": 704.0 * 800,
             "memorized_bits": bits[800] * (1.01 if lr == best_lr else below)} for lr in lrs if lr != mid]
    return {"parameters": params, "precision": "fp32", "sizes": sorted(bits), "points": pts,
            "throughput": {}, "wall_seconds": 1.0, "device": "cpu"}


def test_the_read_off_rule_and_the_fitted_slope():
    """A capacity needs a plateau (two largest sizes within 5 %, converged) at an interior best rate; alpha is the
    least-squares slope through the origin (numpy agrees), over measured models only."""
    import numpy as np

    from recitebench.experiment.capacity_stacked import fit_alpha, read_off
    from recitebench.experiment.config import CapacityConfig

    ccfg = CapacityConfig(engine="stacked", seeds=[0, 1], lrs=[1e-3, 2e-3, 4e-3], size_multiples=[0.5, 2, 4])
    flat = {100: 50_000.0, 400: 340_000.0, 800: 350_000.0}
    a, b = read_off(_group(100_000, flat), ccfg), read_off(_group(200_000, {k: 2 * v for k, v in flat.items()}), ccfg)
    assert a["label"] == b["label"] == "capacity" and a["per_seed"][0]["kind"] == "plateau"
    assert a["per_seed"][0]["capacity_bits"] == pytest.approx(345_000.0)
    rising = read_off(_group(100_000, {100: 50_000.0, 400: 200_000.0, 800: 350_000.0}), ccfg)
    assert rising["label"] == "lower bound" and rising["per_seed"][0]["capacity_bits"] == pytest.approx(350_000.0)
    assert read_off(_group(100_000, flat, converged=False), ccfg)["label"] == "lower bound"
    edge = read_off(_group(100_000, flat, best_lr=4e-3), ccfg)
    assert edge["lr_best"] == 4e-3 and not edge["lr_interior"] and edge["label"] == "lower bound"
    four = (1e-3, 2e-3, 4e-3, 8e-3)  # the middle rate is 4e-3; the best, 2e-3, is inside the grid
    near = read_off(_group(100_000, flat, best_lr=2e-3, lrs=four), CapacityConfig(**{**ccfg.__dict__, "lrs": four}))
    assert near["lr_best"] == 2e-3 and near["lr_interior"] and 0 < near["lr_gap"] < 0.01 and near["label"] == "capacity"
    far = _group(100_000, flat, best_lr=2e-3, lrs=four)
    for p in far["points"]:
        if p["lr"] == 2e-3:
            p["memorized_bits"] *= 1.05
    far = read_off(far, CapacityConfig(**{**ccfg.__dict__, "lrs": four}))
    assert far["lr_gap"] > 0.01 and far["label"] == "lower bound"
    capped = _group(100_000, flat)  # a grid rate stopped by the cap may still end above the rate used
    next(p for p in capped["points"] if p["lr"] == 1e-3)["converged"] = False
    capped = read_off(capped, ccfg)
    assert capped["lr_unconverged"] == [1e-3] and capped["lr_interior"] and capped["label"] == "lower bound"
    assert a["lr_unconverged"] == []
    fit = fit_alpha({"a": a, "b": b, "r": rising}, [0, 1])
    x = np.array([1e5, 2e5, 1e5, 2e5])
    y = np.array([s["capacity_bits"] for j in (0, 1) for s in (a["per_seed"][j], b["per_seed"][j])])
    assert fit["alpha"] == pytest.approx(float(np.linalg.lstsq(x[:, None], y, rcond=None)[0][0]))
    assert fit["models"] == ["a", "b"] and fit["left_out"] == ["r"] and fit["r2"] > 0.99
    low = fit["at_least"]  # the slope over every model's figure, the rising one's lower bound included
    y_all = np.array([s["capacity_bits"] for j in (0, 1) for s in (a["per_seed"][j], b["per_seed"][j],
                                                                     rising["per_seed"][j])])
    x_all = np.array([1e5, 2e5, 1e5] * 2)
    assert low["alpha"] == pytest.approx(float(np.linalg.lstsq(x_all[:, None], y_all, rcond=None)[0][0]))
    assert "at_least" not in fit_alpha({"a": a, "b": b}, [0, 1])


def test_rate_points_all_reads_the_capacity_at_the_best_rate_of_every_size_and_seed(tmp_path, capsys):
    """`rate_points: all` trains every size and seed at every rate, so a best rate away from the grid's middle is
    a capacity read at that rate (the same record with only the middle rate at every size is a lower bound); a
    model's own `rate_points` sets its points and a bad value fails in one line naming the field."""
    from recitebench.experiment.capacity_stacked import rate_design, read_off
    from recitebench.experiment.config import CapacityConfig

    four = (1e-3, 2e-3, 4e-3, 8e-3)
    ccfg = CapacityConfig(engine="stacked", seeds=[0, 1], lrs=list(four), size_multiples=[0.5, 2, 4])
    flat = {100: 50_000.0, 400: 340_000.0, 800: 350_000.0}
    gain = {1e-3: 0.97, 2e-3: 1.05, 4e-3: 1.0, 8e-3: 0.9}  # 2e-3 stores 5 % more than the middle at every size
    pts = [{"n": q.n, "seed": q.seed, "lr": q.lr, "converged": True, "converged_step": 5000,
            "memorized_bits": flat[q.n] * gain[q.lr] * (1 + 0.01 * q.seed), "dataset_bits": 704.0 * q.n}
           for q in rate_design(sorted(flat), list(four), [0, 1], "all")]
    assert len(pts) == 3 * 2 * 4 and len(rate_design(sorted(flat), list(four), [0, 1], "largest")) == 3 * 2 + 3
    group = {"parameters": 100_000, "precision": "fp32", "sizes": sorted(flat), "lrs": list(four), "points": pts,
             "throughput": {}, "wall_seconds": 1.0, "device": "cpu"}
    got = read_off(group, ccfg)
    assert got["lr"] == got["lr_best"] == 2e-3 and got["lr_gap"] == 0.0 and got["label"] == "capacity"
    assert got["per_seed"][1]["capacity_bits"] == pytest.approx(1.05 * 1.01 * 345_000.0)
    from recitebench.report.capacity import stacked_markdown

    md = stacked_markdown({"config": ccfg.__dict__, "models": {"t": got}, "fits": {}})
    assert "| 0.002 (" in md and "read at the best, chosen on the first seed" in md and "| capacity |" in md
    middle_only = {**group, "points": [p for p in pts if p["lr"] == 4e-3 or (p["n"] == 800 and p["seed"] == 0)]}
    assert read_off(middle_only, ccfg)["lr"] == 4e-3 and read_off(middle_only, ccfg)["label"] == "lower bound"
    (tmp_path / "t.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 16, "intermediate_size": 32,
                                                 "num_hidden_layers": 1, "num_attention_heads": 2,
                                                 "num_key_value_heads": 1, "tie_word_embeddings": True}))
    spec = tmp_path / "cap.yaml"
    own = STACKED_SPEC.replace("t: {{model: t.json}}", "t: {{model: t.json, capacity: {{rate_points: all}}}}")
    spec.write_text(own.format(out=tmp_path / "out"))
    assert run_cli("capacity", spec, "--dry-run") == 0
    assert "12 points in one stack" in capsys.readouterr().out  # 2 sizes x 2 seeds x the spec's 3 rates
    spec.write_text(own.replace("rate_points: all", "rate_points: every").format(out=tmp_path / "out"))
    assert run_cli("capacity", spec, "--dry-run") != 0
    err = capsys.readouterr().err
    assert "models.t.capacity.rate_points: one of largest, all" in err and "Traceback" not in err


def _published_ladder(folder: str, models: tuple = ("tok-100k", "tok-200k", "tok-250k", "tok-100k-bf16",
                                                     "tok-200k-bf16")) -> tuple:
    """A shipped H200 ladder read off with the shipped spec's settings: (its CapacityConfig, model -> reading)."""
    from recitebench.config import build, load_yaml
    from recitebench.experiment.capacity_stacked import read_off
    from recitebench.experiment.config import CapacityConfig

    root = ROOT / "docs" / "capacity_results" / "tokens_h200" / folder
    ccfg = build(CapacityConfig, load_yaml(ROOT / "configs" / "capacity_tokens.yaml")["capacity"], where="spec")
    return ccfg, {m: read_off(json.loads((root / f"{m}.group.json").read_text()), ccfg) for m in models}


def test_the_published_ladder_with_the_models_own_grids_reads_off_as_docs_capacity_says():
    """The second annealed ladder (tok-200k and tok-250k on their own, lower grids) recomputes from its raw group
    files with the shipped spec: the fp32 slope over two measured models, tok-250k a lower bound (its lowest rate did
    not converge by the cap)."""
    from recitebench.experiment.capacity_stacked import fit_alpha

    ccfg, models = _published_ladder("7_ladder_annealed_grids")
    got = {m: (v["label"], round(v["bits_per_parameter"]["mean"], 3)) for m, v in models.items()}
    assert got == {"tok-100k": ("capacity", 3.862), "tok-200k": ("capacity", 3.942),
                   "tok-250k": ("lower bound", 3.919), "tok-100k-bf16": ("capacity", 3.787),
                   "tok-200k-bf16": ("capacity", 3.842)}
    assert models["tok-250k"]["lr_unconverged"] == [2.5e-3]
    fits = {prec: fit_alpha({m: v for m, v in models.items() if v["precision"] == prec}, ccfg.seeds)
            for prec in ("fp32", "bf16")}
    assert round(fits["fp32"]["alpha"], 3) == 3.922 and fits["fp32"]["r2"] > 0.998
    assert round(fits["fp32"]["at_least"]["alpha"], 3) == 3.920 and round(fits["bf16"]["alpha"], 3) == 3.828
    text = (ROOT / "docs" / "CAPACITY.md").read_text()
    assert all(f"{bpp:.3f}" in text for _, bpp in got.values()) and "3.922" in text and "3.920" in text


def test_the_published_ladder_with_tok_70k_and_a_raised_cap_reads_off_as_docs_capacity_says():
    """The third annealed ladder (tok-70k added, tok-250k re-trained under a 96,000-step cap) recomputes from its raw
    group files: both new models lower bounds, each for its own reason, and the fits of the two measured ones."""
    from recitebench.experiment.capacity_stacked import fit_alpha

    ccfg, models = _published_ladder("8_ladder_70k_250k_cap96k", ("tok-70k", "tok-100k", "tok-200k", "tok-250k",
                                                                  "tok-100k-bf16", "tok-200k-bf16"))
    got = {m: (v["label"], round(v["bits_per_parameter"]["mean"], 3)) for m, v in models.items()}
    assert got["tok-70k"] == ("lower bound", 4.052) and got["tok-250k"] == ("lower bound", 3.906)
    seven = models["tok-70k"]
    assert [x["kind"] for x in seven["per_seed"]] == ["lower bound", "plateau"] and not seven["lr_unconverged"]
    assert models["tok-250k"]["lr_best"] == 5e-3 and models["tok-250k"]["lr_unconverged"] == [2.5e-3]
    assert round(models["tok-250k"]["lr_gap"], 3) == 0.021
    fp32 = fit_alpha({m: v for m, v in models.items() if v["precision"] == "fp32"}, ccfg.seeds)
    assert fp32["models"] == ["tok-100k", "tok-200k"] and round(fp32["alpha"], 3) == 3.922
    assert round(fp32["at_least"]["alpha"], 3) == 3.918
    text = " ".join((ROOT / "docs" / "CAPACITY.md").read_text().split())
    assert "≥ 4.052 [3.441, 4.664]" in text and "≥ 3.906 [3.832, 3.979]" in text and "≥ 3.918" in text


def test_the_published_annealed_ladder_reads_off_as_docs_capacity_says():
    """docs/CAPACITY.md's annealed ladder recomputes from its raw group files with the shipped spec's settings."""
    from recitebench.experiment.capacity_stacked import fit_alpha

    ccfg, models = _published_ladder("6_ladder_annealed")
    got = {m: (v["label"], round(v["bits_per_parameter"]["mean"], 3)) for m, v in models.items()}
    assert got == {"tok-100k": ("capacity", 3.862), "tok-200k": ("lower bound", 3.885),
                   "tok-250k": ("lower bound", 3.806), "tok-100k-bf16": ("capacity", 3.787),
                   "tok-200k-bf16": ("capacity", 3.842)}
    bf16 = fit_alpha({m: v for m, v in models.items() if v["precision"] == "bf16"}, ccfg.seeds)
    assert round(bf16["alpha"], 3) == 3.828 and bf16["r2"] > 0.999
    text = (ROOT / "docs" / "CAPACITY.md").read_text()
    assert all(f"{bpp:.3f}" in text for _, bpp in got.values()) and "3.828" in text


UNFINISHED = ROOT / "docs" / "capacity_results" / "tokens_h200"
# the ladders no group of which finished: their folder, and the models docs/CAPACITY.md's table quotes
UNFINISHED_TABLES = {"9_ladder_d4_partial": ("tok-70k", "tok-130k-d4", "tok-240k-d4"),
                     "10_ladder_d4_continued": ("tok-130k-d4", "tok-240k-d4")}


def _last_measurement(log) -> tuple[int, list[str]]:
    """The step and the printed bits (with their * marks) of a run log's last measurement."""
    import re

    last = [ln for ln in log.read_text().splitlines() if ": step " in ln][-1]
    step, bits = re.match(r".*: step (\d+): memorised bits (.*) \(\* converged", last).groups()
    return int(step), bits.split(", ")


@pytest.mark.parametrize("folder", sorted(UNFINISHED_TABLES))
def test_an_unfinished_ladders_table_is_its_run_logs_last_measurements(folder):
    """docs/CAPACITY.md's table of a ladder no group of which finished (the table after the paragraph naming its
    folder) quotes each run log's last measurement: every point's bits at its step, converged marks included."""
    text = (ROOT / "docs" / "CAPACITY.md").read_text().replace("\\*", "*")
    lines = text[text.index(folder):].splitlines()
    table = next(i for i, ln in enumerate(lines) if ln.startswith("| model |"))
    rows = []
    for ln in lines[table + 2:]:
        if not ln.startswith("|"):
            break
        rows.append(ln)
    for m in UNFINISHED_TABLES[folder]:
        step, bits = _last_measurement(UNFINISHED / folder / f"{m}.run.log")
        mine = " ".join(r for r in rows if r.split("|")[1].strip() == m)  # a model may take one row per rate
        assert f"| {step:,} |" in mine, (folder, m)
        assert all(b in mine for b in bits), (folder, m, [b for b in bits if b not in mine])


SPEC_MODELS = ("tok-100k", "tok-130k-d4", "tok-200k", "tok-240k-d4", "tok-130k-w40", "tok-100k-bf16", "tok-200k-bf16")


def test_the_ladder_whose_every_point_converged_reads_off_as_docs_capacity_says():
    """The 2026-12-04 evening ladder (every point of the seven groups converged) recomputes from its group files with
    the shipped spec: the three newest models lower bounds, each for the reason docs/CAPACITY.md gives."""
    from recitebench.experiment.capacity_stacked import fit_alpha

    ccfg, models = _published_ladder("11_ladder_all_converged", SPEC_MODELS)
    got = {m: (v["label"], round(v["bits_per_parameter"]["mean"], 3)) for m, v in models.items()}
    assert got == {"tok-100k": ("capacity", 3.862), "tok-130k-d4": ("lower bound", 4.247),
                   "tok-200k": ("capacity", 3.942), "tok-240k-d4": ("lower bound", 4.193),
                   "tok-130k-w40": ("lower bound", 4.006), "tok-100k-bf16": ("capacity", 3.787),
                   "tok-200k-bf16": ("capacity", 3.842)}
    assert all(p["converged"] for m in SPEC_MODELS for s in models[m]["per_seed"] for p in s["points"])
    assert [x["kind"] for x in models["tok-130k-d4"]["per_seed"]] == ["lower bound", "plateau"]
    assert [x["kind"] for x in models["tok-240k-d4"]["per_seed"]] == ["plateau", "plateau"]
    assert models["tok-240k-d4"]["lr_best"] == 5e-3 and round(models["tok-240k-d4"]["lr_gap"], 3) == 0.021
    fp32 = fit_alpha({m: v for m, v in models.items() if v["precision"] == "fp32"}, ccfg.seeds)
    assert fp32["models"] == ["tok-100k", "tok-200k"] and round(fp32["alpha"], 3) == 3.922
    assert round(fp32["at_least"]["alpha"], 3) == 4.095 and round(fp32["at_least"]["r2"], 4) == 0.9896
    text = " ".join((ROOT / "docs" / "CAPACITY.md").read_text().split())
    assert all(f"≥ {bpp:.3f}" in text for label, bpp in got.values() if label == "lower bound")
    assert "alpha ≥ 4.095 [4.035, 4.155] (R² 0.9896)" in text


def test_the_shipped_spec_keeps_the_finished_points_and_trains_the_8x_sizes(tmp_path, capsys):
    """With the last ladder's group files in place, the shipped spec's dry run reuses five groups and trains only the
    8x points tok-130k-d4 and tok-130k-w40 gained (the plan the next device call runs)."""
    import shutil

    folder = UNFINISHED / "11_ladder_all_converged"
    for m in SPEC_MODELS:
        (tmp_path / "stacked" / m).mkdir(parents=True)
        shutil.copy(folder / f"{m}.group.json", tmp_path / "stacked" / m / "group.json")
    assert run_cli("capacity", ROOT / "configs" / "capacity_tokens.yaml", "--out", tmp_path, "--dry-run") == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("tok-")}
    assert "sizes [326, 1305, 2611, 5222]" in lines["tok-130k-d4"]
    assert "keeps 18 finished points of its group file, trains 6 more" in lines["tok-130k-d4"]
    assert "keeps 6 finished points of its group file, trains 4 more" in lines["tok-130k-w40"]
    assert all("finished (reused)" in lines[m] for m in SPEC_MODELS if m not in ("tok-130k-d4", "tok-130k-w40"))
