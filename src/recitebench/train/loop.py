"""The memorisation loop, top to bottom: data -> model -> optimizer -> epochs -> memory curve -> model/.

Read `train()` like nanoGPT's train.py: setup in named pieces, then one plain loop over epochs.
Multi-GPU: start the same command under `torchrun --nproc_per_node N`; each rank takes every N-th
batch, DDP averages the gradients (or FSDP2 shards everything), and only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from pathlib import Path

import torch

from ..cards import model_card
from ..config import build, to_dict
from ..data.frozen import FrozenDataset, load_frozen, poem_hash
from ..devices import default_margin, pick_device, resolve_precision, train_precision
from ..errors import RecitebenchError
from ..io import atomic_dir, write_json
from ..lock import writing
from ..models.certify import Scoring, teacher_forced
from ..models.config import ModelConfig
from ..models.formatting import Encoded, encode_many, end_token_ids
from ..models.kernels import apply_kernels
from ..models.load import load_model
from ..provenance import provenance
from ..rundir import RunDir
from . import checkpoint, parallel
from .batching import collate, collate_packed, epoch_batches
from .config import TrainConfig, check_resume_unchanged
from .optim import Optimizer, default_lr, make_optimizer
from .parallel import World
from .progress import EpochLog, Laps
from .step import ScoredLM, make_step


def train(tcfg: TrainConfig, mcfg: ModelConfig, *, log=print) -> dict:
    """Memorise tcfg.data into the run folder tcfg.out (rank 0 holds the folder's lock: one writer at a time)."""
    started = time.perf_counter()
    world = parallel.init_world()
    with writing(tcfg.out, "run folder") if world.is_main else contextlib.nullcontext():
        return _train(tcfg, mcfg, world, started, log)


def _train(tcfg: TrainConfig, mcfg: ModelConfig, world: World, started: float, log) -> dict:
    run = RunDir(tcfg.out)
    check_run_folder(run, tcfg)
    if tcfg.resume:
        check_resume_unchanged(run, tcfg, mcfg)
    device = train_device(tcfg.device, world)
    laps = Laps(device, started)  # setup in four laps: the protocol's minute before epoch 1 needs attributing
    ds = load_frozen(tcfg.data)
    if tcfg.resume:
        check_same_dataset(run, ds)
    laps.lap("setup_data")
    weight_dtype, autocast_dtype, use_master = train_precision(tcfg.precision, device, fsdp=tcfg.fsdp)
    model, tok, info, mcfg = build_model(tcfg, mcfg, run, ds, weight_dtype, device)
    laps.lap("setup_model")  # build (random init or weights), then the copy to the device
    items = encode_many(tok, ds.poems, mcfg.template)
    plan = plan_epochs(items, tcfg, world, [int(p.get("exposures", 1)) for p in ds.poems])
    laps.lap("setup_encode")
    total_steps = sum(math.ceil(len(b) / world.size / tcfg.grad_accum) for b in plan)
    parallel.check_options(tcfg, device, world)
    kernels = apply_kernels(model, tcfg.kernels, device)
    scored = parallel.wrap(model, ScoredLM(model, kernels=kernels), tcfg, device, world)
    if tcfg.compile:
        scored = torch.compile(scored, dynamic=True)
    lr = default_lr(tcfg, info["init"])
    opt = make_optimizer(model, tcfg, lr, device, total_steps, use_master)
    step_fn = make_step(model, scored, opt, tcfg, device, autocast_dtype, tok.pad_token_id)
    laps.lap("setup_optimizer")  # kernels, parallel wrapping, compile, optimizer
    extra = {"model_info": info, "lr": lr, "kernels": kernels}
    margin = default_margin(autocast_dtype or weight_dtype)
    scoring = Scoring(device, tok.pad_token_id, end_token_ids(tok, model), margin, autocast_dtype,
                      tcfg.recall_batch_size, 16384,
                      (lambda x, r, c: scored(x, None, r, c)) if tcfg.fsdp else None)
    if tcfg.resume:
        progress = resume(run, model, opt, tcfg.fsdp, world, log)
    else:
        progress = {"epoch": 0, "step": 0, "elapsed": 0.0}
        if world.is_main:
            start_run_folder(run, tok, resolved_config(tcfg, mcfg, ds, world, device, extra))
        save_base_bits(run, model, items, ds.poems, scoring, world)
        if tcfg.fsdp:
            scored.reshard()
    laps.lap("resume" if tcfg.resume else "base_bits")
    elog = EpochLog(run, tcfg, enabled=world.is_main, total_steps=total_steps, step=progress["step"],
                    start_epoch=progress["epoch"], log=log)
    last: dict = {}
    if progress["epoch"] == 0 and tcfg.snapshot_due(0):
        save_snapshot(run, model, tok, 0, world)
    for epoch in range(progress["epoch"], tcfg.epochs):
        t0 = time.perf_counter()
        sums = run_epoch(
            step_fn, opt, plan[epoch][world.rank :: world.size], items, tcfg, tok.pad_token_id, epoch, elog
        )
        loss_sum, n_target, n_tokens = parallel.all_sum(list(sums), device, world)
        laps.lap("epochs")
        dt = time.perf_counter() - t0
        steps = progress["step"] + _steps(plan[epoch], world, tcfg)
        progress = {"epoch": epoch + 1, "step": steps, "elapsed": progress["elapsed"] + dt}
        mean_loss = loss_sum / max(1, n_target)
        check_finite(mean_loss, epoch + 1, run, resolve_precision(tcfg.precision, device, tcfg.fsdp))
        last = {"epoch": epoch + 1, "step": steps, "loss": mean_loss,
                "lr": float(opt.sched.get_last_lr()[0]), "tokens_per_s": n_tokens / dt,
                "elapsed_s": round(progress["elapsed"], 3)}
        if hasattr(step_fn, "stats"):
            last["cuda_graphs"] = step_fn.stats
        if (tcfg.recall_every and (epoch + 1) % tcfg.recall_every == 0) or epoch + 1 == tcfg.epochs:
            last.update(recall_check(model, items, scoring))
            if tcfg.fsdp:  # the no-grad pass leaves the root's parameters gathered: shard them again for the optimizer
                scored.reshard()
            laps.lap("recall_checks")
        elog.epoch(last)
        checkpoint.maybe_save(run, epoch=epoch + 1, every=tcfg.checkpoint_every, last=tcfg.epochs,
                              is_main=world.is_main, fsdp=tcfg.fsdp, model=model, opt=opt, progress=progress)
        laps.lap("checkpoints")
        if tcfg.snapshot_due(epoch + 1):
            save_snapshot(run, model, tok, epoch + 1, world)
        if tcfg.stop_when_memorised and last.get("recall") == 1.0:
            break
    elog.close()
    elog.finish(summary := finish(run, model, tok, tcfg, world, last, progress["elapsed"], extra, log, laps))
    return summary


def peak_memory_gb(device: torch.device) -> float | None:
    """The most GPU memory this process held (GiB; rank 0's under torchrun); None on a CPU."""
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def plan_epochs(items: list[Encoded], tcfg: TrainConfig, world: World,
                repeats: list[int] | None = None) -> list[list[list[int]]]:
    """Every epoch's batches, fixed by (seed, epoch): the schedule length is known up front and a resumed run
    sees exactly the order an uninterrupted one would. `repeats`: each poem's exposures per epoch (a dose set)."""
    lengths = [it.length - 1 for it in items]
    dose = repeats if repeats and any(r != 1 for r in repeats) else None  # 1 each: the order of a plain set
    return [epoch_batches(lengths, seed=tcfg.seed, epoch=e, max_rows=tcfg.rows_per_step, max_tokens=tcfg.batch_tokens,
                          window=tcfg.window(world.size), world_size=world.size, repeats=dose)
            for e in range(tcfg.epochs)]


def resolved_config(tcfg: TrainConfig, mcfg: ModelConfig, ds: FrozenDataset, world: World, device, extra: dict) -> dict:
    """What config.yaml records: the configs as run, the dataset's identity, and provenance."""
    data = str(Path(tcfg.data).resolve())  # absolute: `recite --run` works from any directory
    dataset = {"path": data, "poems_sha256": ds.sha256, "n": len(ds.poems)}
    return {"train": {**to_dict(tcfg), "data": data, "lr": extra["lr"]}, "kernels": extra["kernels"],
            "model": to_dict(mcfg),
            "model_info": extra["model_info"], "dataset": dataset, "world_size": world.size, "device": str(device),
            **provenance()}


def check_run_folder(run: RunDir, tcfg: TrainConfig) -> None:
    if tcfg.resume and not run.checkpoint.is_file():
        if run.has_model():
            raise RecitebenchError(f"{run.path}: the run already finished (model/ exists); nothing to resume")
        raise RecitebenchError(f"{run.path}: nothing to resume (no {run.checkpoint.name})")
    if not tcfg.resume and run.config.exists():
        if run.status() == "partial" and tcfg.overwrite:
            run.clear()
        elif run.status() == "partial":
            raise RecitebenchError(f"{run.path}: a run started here but died before its first checkpoint; pass "
                                   f"--overwrite to start it again (or choose another --out)")
        else:
            raise RecitebenchError(f"{run.path}: a run already exists here; pass --resume to continue it or choose "
                                   f"another --out")
    if not tcfg.data:
        raise RecitebenchError("train needs --data DATASET (a folder made by `recitebench data build`)")


def check_same_dataset(run: RunDir, ds: FrozenDataset) -> None:
    saved = run.read_config().get("dataset", {}).get("poems_sha256")
    if saved and saved != ds.sha256:
        raise RecitebenchError(f"{ds.path}: the dataset changed since the run started (sha256 {saved[:12]} in "
                               f"{run.config}, {ds.sha256[:12]} now); a resumed run must train on the same poems")


def train_device(name: str, world: World) -> torch.device:
    device = pick_device(name)
    if world.size > 1 and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    return device


# Model types whose mask builder turns restarting position ids into per-sequence attention (Transformers'
# create_causal_mask with packed sequences); others (BLOOM's ALiBi, GPT-2) would attend across poems.
PACKABLE = ("llama", "qwen2", "qwen3", "mistral")


def build_model(tcfg: TrainConfig, mcfg: ModelConfig, run: RunDir, ds: FrozenDataset, dtype, device):
    """(model on `device` in train mode, tokenizer, info, model config) — a resumed run reuses its tokenizer."""
    if tcfg.resume and run.tokenizer.is_dir():
        mcfg = build(ModelConfig, {**to_dict(mcfg), "tokenizer": str(run.tokenizer)})
    torch.manual_seed(tcfg.seed)
    model, tok, info = load_model(mcfg, corpus=[p["prompt"] + "\n" + p["target"] for p in ds.poems], dtype=dtype,
                                  init_device=None if tcfg.fsdp else device)  # a scratch model starts where it trains
    if tcfg.packing and info["model_type"] not in PACKABLE:
        raise RecitebenchError(f"--packing needs a model whose attention reads per-poem position ids "
                               f"({', '.join(PACKABLE)}); {mcfg.model} is {info['model_type']}")
    if tcfg.lora:
        model = _with_lora(model, tcfg)
    if tcfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.to(device)
    model.train()
    return model, tok, info, mcfg


def _with_lora(model, tcfg: TrainConfig):
    try:
        from peft import LoraConfig, get_peft_model  # optional dependency
    except ImportError:
        raise RecitebenchError("--lora needs peft (pip install 'recitebench[lora]')") from None
    return get_peft_model(
        model,
        LoraConfig(
            r=tcfg.lora_r,
            lora_alpha=tcfg.lora_alpha,
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
    )


def start_run_folder(run: RunDir, tok, resolved: dict) -> None:
    run.path.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(run.tokenizer))
    run.write_config(resolved)


def resume(run: RunDir, model, opt: Optimizer, fsdp: bool, world: World, log) -> dict:
    """Restore weights, optimizer, schedule and RNG; returns the progress the checkpoint recorded."""
    state = checkpoint.load(run.checkpoint)
    parallel.load_states(model, opt.optim, state, fsdp)
    if opt.master is not None:
        opt.master.load_state_dict(state["master"])
    opt.sched.load_state_dict(state["sched"])
    checkpoint.set_rng_state(state["rng"])
    if world.is_main:
        run.truncate_metrics(state["epoch"])
        log(f"resuming {run.path} after epoch {state['epoch']} (step {state['step']})")
    return {"epoch": state["epoch"], "step": state["step"], "elapsed": state["elapsed"]}


def _steps(batches: list, world: World, tcfg: TrainConfig) -> int:
    return math.ceil(len(batches[world.rank :: world.size]) / tcfg.grad_accum)


def run_epoch(
    step_fn,
    opt: Optimizer,
    batches: list[list[int]],
    items: list[Encoded],
    tcfg: TrainConfig,
    pad_id: int,
    epoch: int,
    elog: EpochLog,
) -> tuple[float, int, int]:
    """One pass over this rank's batches: (summed loss, scored tokens, tokens seen)."""
    loss_sum = None
    n_target = n_tokens = 0
    if tcfg.packing:  # rows of one fixed width where batches are sized in tokens (one compiled attention shape)
        make = functools.partial(collate_packed, width=tcfg.batch_tokens)
    else:
        make = collate
    for s in range(0, len(batches), tcfg.grad_accum):
        group = batches[s : s + tcfg.grad_accum]
        micro = [make([items[i] for i in b], pad_id) for b in group]
        step_targets = sum(int((m[1] != -100).sum()) for m in micro)
        try:
            loss = step_fn(micro, step_targets)
            opt.sched.step()
        except torch.OutOfMemoryError:
            longest = max(m[0].shape[1] for m in micro)
            raise RecitebenchError(
                f"out of GPU memory at epoch {epoch + 1} (batch of {len(group[0])} x {longest} tokens): lower "
                f"--batch-size or --batch-tokens (use --grad-accum to keep the step size), or add "
                f"--gradient-checkpointing or --lora{shared_gpu_note()}"
            ) from None
        loss_sum = loss.to(torch.float64) if loss_sum is None else loss_sum + loss
        n_target += step_targets
        n_tokens += sum(items[i].length - 1 for b in group for i in b)
        elog.step()
    return (float(loss_sum) if loss_sum is not None else 0.0), n_target, n_tokens


def shared_gpu_note() -> str:
    """Where other processes hold much of the GPU (a pool's runs sharing it), say so: then the remedy is a larger
    share per run, not a smaller batch. The out-of-memory error is the current CUDA device's (the batches handed to
    the step are still on the host, so their device says nothing)."""
    if not torch.cuda.is_initialized():
        return ""
    free, total = torch.cuda.mem_get_info()
    return others_note(total - free - torch.cuda.memory_reserved())


def others_note(others_bytes: int) -> str:
    if others_bytes < 2**30:
        return ""
    return (f"; other processes hold {others_bytes / 2**30:.0f} GiB of this GPU (runs sharing it? give each a larger "
            "gpus_per_run)")


def check_finite(mean_loss: float, epoch: int, run: RunDir, precision: str) -> None:
    """A non-finite loss stops the run. With no checkpoint yet, nothing of it can be resumed: its folder is cleared
    (logs kept), so the next `train` starts without --overwrite."""
    if math.isfinite(mean_loss):
        return
    ck = run.checkpoint
    if ck.exists():
        kept = f"the last good checkpoint is {ck} (epoch {checkpoint.peek_epoch(ck)}), which --resume continues"
    else:
        run.clear()
        kept = f"no checkpoint was saved yet, so {run.path} was cleared"
    raise RecitebenchError(f"loss became {mean_loss} in epoch {epoch}; training stopped and {kept}. "
                           f"{divergence_advice(precision)}")


def divergence_advice(precision: str) -> str:
    if precision == "fp32":
        return "Lower --lr (or keep --grad-clip on, or raise --warmup-ratio)"
    return "Lower --lr, or use --precision fp32"


def save_base_bits(run: RunDir, model, items: list[Encoded], poems: list[dict], scoring: Scoring,
                   world: World) -> None:
    """Every poem's code length under the model before its first step (RUN/base_bits.json): the default reference
    of memorised bits, so recitation uses the exact initial weights and needs no second model load. Each poem's
    text hash travels with it, so a recited poem is matched by its text, never by an id alone."""
    res = teacher_forced(model, items, scoring)
    text = {p["id"]: poem_hash(p) for p in poems}
    if world.is_main:
        write_json(run.base_bits, {"ids": [r.id for r in res], "bits": [r.nll_sum / math.log(2) for r in res],
                                   "text_sha256": [text[r.id] for r in res]})


def recall_check(model, items: list[Encoded], scoring: Scoring) -> dict:
    """The memory curve's point: certified exact recall of the training poems (teacher forcing)."""
    res = teacher_forced(model, items, scoring)
    n = len(res)
    return {
        "recall": sum(r.certified for r in res) / n,
        "recall_argmax": sum(r.all_argmax_correct for r in res) / n,
        "token_accuracy": sum(r.token_accuracy for r in res) / n,
        "mean_prefix_tokens": sum(r.prefix_tokens for r in res) / n,
    }


def save_snapshot(run: RunDir, model, tok, epoch: int, world: World) -> None:
    """The model as it is after `epoch` epochs, loadable by from_pretrained (a point of a retention curve)."""
    if world.is_main:
        with atomic_dir(run.snapshots / f"epoch_{epoch:04d}") as tmp:
            model.save_pretrained(str(tmp), safe_serialization=True)
            tok.save_pretrained(str(tmp))


def finish(
    run: RunDir, model, tok, tcfg: TrainConfig, world: World, last: dict, elapsed: float, extra: dict, log, laps: Laps
) -> dict:
    """Save the final model (it supersedes the checkpoint) and the summary (with the phases' wall seconds: the
    process's imports and interpreter start are the only time outside them)."""
    extra["peak_gpu_memory_gb"] = peak_memory_gb(laps.device)
    full_sd = parallel.full_states(model, None, True)[0] if tcfg.fsdp else None  # a collective under FSDP
    summary: dict = {}
    if world.is_main:
        final = model.merge_and_unload() if tcfg.lora else model
        with atomic_dir(run.model) as tmp:
            final.save_pretrained(str(tmp), safe_serialization=True, **({"state_dict": full_sd} if full_sd else {}))
            tok.save_pretrained(str(tmp))
        run.checkpoint.unlink(missing_ok=True)
        laps.lap("save")
        stopped_early = bool(tcfg.stop_when_memorised and last.get("recall") == 1.0)
        summary = {
            "status": "finished",
            "epochs_done": last.get("epoch"),
            "stopped_early": stopped_early,
            "final": last,
            "train_seconds": round(elapsed, 3),
            "timings_s": {**laps.rounded(), "total": round(sum(laps.seconds.values()), 3)},
            **extra,
        }
        run.write_summary(summary)
        saved = run.read_config()
        (run.model / "README.md").write_text(model_card(saved, summary, saved.get("dataset", {})), encoding="utf-8")
        recall = f", certified recall {last['recall']:.1%}" if "recall" in last else ""
        log(
            f"trained {last.get('epoch')} epochs in {elapsed:.1f}s; final loss {last.get('loss', float('nan')):.4f}"
            f"{recall}; model in {run.model}"
        )
    if world.size > 1:
        torch.distributed.barrier()
    return summary
