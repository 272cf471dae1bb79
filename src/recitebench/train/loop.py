"""The memorisation loop, top to bottom: data -> model -> optimizer -> epochs -> memory curve -> model/.

Read it like nanoGPT's train.py: one function, no callbacks. Multi-GPU: start the same command
under `torchrun --nproc_per_node N`; each rank takes every N-th batch, DDP averages the
gradients, and only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from ..config import build, load_yaml, to_dict
from ..data.frozen import load_frozen
from ..errors import RecitebenchError
from ..io import atomic_dir, atomic_path, write_json
from ..models.config import ModelConfig
from ..models.formatting import encode_many
from ..models.forward import head_loss_sum, hidden_states, logits_at, split_supported, unwrap
from ..models.kernels import apply_kernels
from ..models.load import load_model
from ..provenance import provenance
from ..runtime import default_margin, pick_device, train_precision
from . import checkpoint
from .batching import collate, epoch_batches
from .config import TrainConfig
from .master import MasterWeights


class ScoredLM(torch.nn.Module):
    """Summed cross-entropy over the poem tokens only; the module DDP wraps."""

    def __init__(self, model, chunk: int = 8192, kernels: str = "torch"):
        super().__init__()
        self.model = model
        self.chunk = chunk
        self.kernels = kernels

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, rows=None, cols=None) -> torch.Tensor:
        if labels is None:  # logits at (rows, cols): the recall check, routed through the FSDP root
            return logits_at(self.model, input_ids, rows, cols)
        rows, cols = (labels != -100).nonzero(as_tuple=True)
        y = labels[rows, cols]
        if not split_supported(self.model):
            return F.cross_entropy(logits_at(self.model, input_ids, rows, cols).float(), y, reduction="sum")
        return head_loss_sum(self.model, hidden_states(self.model, input_ids)[rows, cols], y, self.chunk, self.kernels)


def default_lr(tcfg: TrainConfig, init: str) -> float:
    if tcfg.lr is not None:
        return tcfg.lr
    if init == "scratch":
        return 1e-3
    return 2e-4 if tcfg.lora else 2e-5


def lr_factor(step: int, total: int, tcfg: TrainConfig) -> float:
    warm = int(total * tcfg.warmup_ratio)
    if step < warm:
        return (step + 1) / warm
    if tcfg.schedule == "constant":
        return 1.0
    progress = (step - warm) / max(1, total - warm)
    return tcfg.min_lr_ratio + (1 - tcfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _distributed() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def resolve_resume(tcfg_values: dict, mcfg_values: dict, out: Path) -> tuple[dict, dict]:
    """On --resume, the run's saved config is the base; flags given now override it."""
    saved = load_yaml(out / "config.yaml")
    t = {**saved["train"], **tcfg_values, "resume": True}
    m = {**saved["model"], **mcfg_values}
    return t, m


def train(tcfg: TrainConfig, mcfg: ModelConfig, *, log=print) -> dict:
    world, rank, local_rank = _distributed()
    is_main = rank == 0
    out = Path(tcfg.out)
    if tcfg.resume and not (out / checkpoint.NAME).is_file():
        if (out / "model" / "config.json").is_file():
            raise RecitebenchError(f"{out}: the run already finished (model/ exists); nothing to resume")
        raise RecitebenchError(f"{out}: nothing to resume (no {checkpoint.NAME})")
    if not tcfg.resume and (out / "config.yaml").exists():
        raise RecitebenchError(f"{out}: a run already exists here; pass --resume to continue it or choose another --out")
    if not tcfg.data:
        raise RecitebenchError("train needs --data DATASET (a folder made by `recitebench data build`)")
    ds = load_frozen(tcfg.data)

    device = pick_device(tcfg.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    weight_dtype, autocast_dtype, use_master = train_precision(tcfg.precision, device, fsdp=tcfg.fsdp)
    if tcfg.resume and (out / "tokenizer").is_dir():
        mcfg = build(ModelConfig, {**to_dict(mcfg), "tokenizer": str(out / "tokenizer")})
    torch.manual_seed(tcfg.seed)
    model, tok, info = load_model(mcfg, corpus=[p["prompt"] + "\n" + p["target"] for p in ds.poems], dtype=weight_dtype)
    lr = default_lr(tcfg, info["init"])
    if tcfg.lora:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise RecitebenchError("--lora needs peft (pip install 'recitebench[lora]')") from None
        model = get_peft_model(model, LoraConfig(r=tcfg.lora_r, lora_alpha=tcfg.lora_alpha, lora_dropout=0.0,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    if tcfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.to(device)
    model.train()
    items = encode_many(tok, ds.poems, mcfg.template)
    lengths = [it.length - 1 for it in items]

    # Every epoch's batches are fixed by (seed, epoch): the schedule length is known up front and
    # a resumed run sees exactly the order an uninterrupted one would.
    plan = [epoch_batches(lengths, seed=tcfg.seed, epoch=e, batch_size=tcfg.batch_size, batch_tokens=tcfg.batch_tokens,
                          world_size=world) for e in range(tcfg.epochs)]
    steps_per_epoch = [math.ceil(len(b) / world / tcfg.grad_accum) for b in plan]
    total_steps = sum(steps_per_epoch)

    if tcfg.cuda_graphs and (device.type != "cuda" or world > 1):
        raise RecitebenchError("--cuda-graphs needs a single CUDA GPU (not CPU, not torchrun)")
    if tcfg.fsdp and (world < 2 or tcfg.lora or tcfg.cuda_graphs):
        raise RecitebenchError("--fsdp needs torchrun with 2+ processes, and works without --lora and --cuda-graphs")
    # Graph capture cannot take Liger's cross-entropy (it reads a count back to the CPU); its other kernels are fine.
    kernels = apply_kernels(model, tcfg.kernels, device)
    scored = ScoredLM(model, kernels=kernels)
    if tcfg.fsdp:
        _shard(model, scored, device, world)
    elif world > 1:
        scored = torch.nn.parallel.DistributedDataParallel(scored, device_ids=[device.index] if device.type == "cuda" else None)
    if tcfg.compile:
        scored = torch.compile(scored, dynamic=True)

    # The optimizer sees the parameters as wrapped (FSDP2 replaces them with sharded DTensors), or
    # their fp32 masters under bf16-master.
    params = [p for p in model.parameters() if p.requires_grad]
    master = MasterWeights(params) if use_master else None
    opt_params = master.master if master else params
    b1, b2 = (float(x) for x in tcfg.betas.split(","))
    # A captured optimizer step reads the learning rate from a device tensor the scheduler fills in place.
    optim = torch.optim.AdamW(opt_params, lr=torch.tensor(lr, device=device) if tcfg.cuda_graphs else lr, betas=(b1, b2),
                              weight_decay=tcfg.weight_decay, fused=device.type == "cuda" and not tcfg.fsdp,
                              capturable=tcfg.cuda_graphs)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: lr_factor(s, total_steps, tcfg))

    graphed = None
    if tcfg.cuda_graphs:
        from .graphs import GraphedSteps

        graphed = GraphedSteps(model, optim, params, master=master, grad_clip=tcfg.grad_clip, autocast_dtype=autocast_dtype,
                               device=device, pad_id=tok.pad_token_id)

    start_epoch, step, elapsed = 0, 0, 0.0
    if tcfg.resume:
        state = checkpoint.load(out)
        _load_states(model, optim, state, tcfg.fsdp)
        if master is not None:
            master.load_state_dict(state["master"])
        sched.load_state_dict(state["sched"])
        checkpoint.set_rng_state(state["rng"])
        start_epoch, step, elapsed = state["epoch"], state["step"], state["elapsed"]
        if is_main:
            _truncate_metrics(out / "metrics.jsonl", start_epoch)
            log(f"resuming {out} after epoch {start_epoch} (step {step})")
    elif is_main:
        out.mkdir(parents=True, exist_ok=True)
        tok.save_pretrained(str(out / "tokenizer"))
        resolved = {"train": {**to_dict(tcfg), "lr": lr}, "kernels": kernels, "model": to_dict(mcfg), "model_info": info,
                    "dataset": {"path": str(tcfg.data), "poems_sha256": ds.sha256, "n": len(ds.poems)},
                    "world_size": world, "device": str(device), **provenance()}
        with atomic_path(out / "config.yaml") as tmp:
            tmp.write_text(yaml.safe_dump(resolved, allow_unicode=True, sort_keys=False), encoding="utf-8")

    tb = None
    if tcfg.tensorboard and is_main:
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(out / "tensorboard"))
        except ImportError:
            raise RecitebenchError("--tensorboard needs the tensorboard package (pip install 'recitebench[tensorboard]')") from None

    bar = None
    if is_main and tcfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True, mininterval=1.0,
                   desc=f"epoch {start_epoch + 1}/{tcfg.epochs}", disable=None)  # None: no bar when not a terminal
        if bar.disable:
            bar = None
    margin = default_margin(autocast_dtype or weight_dtype)
    fault_epoch = int(os.environ.get("RECITEBENCH_FAULT_AFTER_EPOCH", "0"))
    last: dict = {}
    stopped_early = False
    for epoch in range(start_epoch, tcfg.epochs):
        t_epoch = time.perf_counter()
        batches = plan[epoch][rank::world]
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        n_target = 0
        n_tokens = 0
        for s in range(0, len(batches), tcfg.grad_accum):
            group = batches[s : s + tcfg.grad_accum]
            micro = [collate([items[i] for i in b], tok.pad_token_id) for b in group]
            step_targets = sum(int((lab != -100).sum()) for _, lab in micro)
            try:
                if graphed is not None:  # forward, backward, clipping and the update in one replay
                    loss_sum += graphed(micro[0][0], micro[0][1], step_targets)
                else:
                    for x, y in micro:
                        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                        with torch.autocast(device_type=device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                            loss = scored(x, y)
                        (loss / step_targets).backward()
                        loss_sum += loss.detach()
                        if master is not None:  # micro-batch gradients sum in fp32
                            master.accumulate()
                    if tcfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(opt_params, tcfg.grad_clip)
                    optim.step()
                    if master is not None:
                        master.publish()
                        master.zero_grad()
                    else:
                        optim.zero_grad(set_to_none=True)
                sched.step()
            except torch.OutOfMemoryError:
                longest = max(x.shape[1] for x, _ in micro)
                raise RecitebenchError(
                    f"out of GPU memory at epoch {epoch + 1} (batch of {len(group[0])} x {longest} tokens): lower "
                    f"--batch-size or --batch-tokens (use --grad-accum to keep the step size), or add "
                    f"--gradient-checkpointing or --lora") from None
            n_target += step_targets
            n_tokens += sum(len(items[i].prompt_ids) + len(items[i].target_ids) - 1 for b in group for i in b)
            step += 1
            if bar is not None:
                bar.update(1)
        if world > 1:  # log the loss and tokens of all ranks, not rank 0's share
            totals = torch.tensor([float(loss_sum), n_target, n_tokens], dtype=torch.float64, device=device)
            torch.distributed.all_reduce(totals)
            loss_sum, n_target, n_tokens = totals[0], int(totals[1]), int(totals[2])
        mean_loss = float(loss_sum) / max(1, n_target)
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t_epoch
        elapsed += dt
        if not math.isfinite(mean_loss):
            ck = out / checkpoint.NAME
            kept = f"the last good checkpoint is {ck} (epoch {checkpoint.peek_epoch(ck)})" if ck.exists() else "no checkpoint was saved yet"
            raise RecitebenchError(f"loss became {mean_loss} in epoch {epoch + 1}; training stopped and {kept}. "
                                   f"Lower --lr, or use --precision fp32")
        done = epoch + 1
        row = {"epoch": done, "step": step, "loss": mean_loss, "lr": float(sched.get_last_lr()[0]),
               "tokens_per_s": n_tokens / dt, "elapsed_s": round(elapsed, 3)}
        if graphed is not None:
            row["cuda_graphs"] = dict(graphed.stats)
        if (tcfg.recall_every and done % tcfg.recall_every == 0) or done == tcfg.epochs:
            row.update(recall_check(model, items, device, tcfg, autocast_dtype, margin, tok.pad_token_id,
                                    logits_fn=(lambda x, r, c: scored(x, None, r, c)) if tcfg.fsdp else None))
        if bar is not None:
            bar.set_description(f"epoch {done}/{tcfg.epochs}")
            bar.set_postfix(loss=f"{mean_loss:.4f}", tok_s=f"{row['tokens_per_s']:.0f}",
                            **({"recall": f"{row['recall']:.1%}"} if "recall" in row else {}))
        if is_main and bar is None and tcfg.progress and "recall" in row:
            eta = elapsed / (done - start_epoch) * (tcfg.epochs - done) if done > start_epoch else 0.0
            log(f"epoch {done}/{tcfg.epochs}  loss {mean_loss:.4f}  recall {row['recall']:.1%}  "
                f"{row['tokens_per_s']:.0f} tok/s  elapsed {elapsed:.0f}s  eta {eta:.0f}s")
        if is_main:
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            if tb is not None:
                for k, v in row.items():
                    if k != "epoch" and isinstance(v, (int, float)):
                        tb.add_scalar(k, v, done)
        last = row
        stopped_early = tcfg.stop_when_memorised and row.get("recall") == 1.0
        if (tcfg.checkpoint_every and done % tcfg.checkpoint_every == 0) and done < tcfg.epochs:
            model_sd, optim_sd = _full_states(model, optim, tcfg.fsdp)  # a collective under FSDP: every rank calls it
            if is_main:
                checkpoint.save(out, {"epoch": done, "step": step, "elapsed": elapsed, "model": model_sd, "optim": optim_sd,
                                      "sched": sched.state_dict(), "rng": checkpoint.rng_state(),
                                      **({"master": master.state_dict()} if master is not None else {})})
        if fault_epoch and done == fault_epoch:
            os._exit(137)  # test hook: die like a killed process, with no cleanup
        if stopped_early:
            break
    if bar is not None:
        bar.close()
    if tb is not None:
        tb.close()

    summary = {}
    full_sd = _full_states(model, None, True)[0] if tcfg.fsdp else None
    if is_main:
        final = model.merge_and_unload() if tcfg.lora else model
        with atomic_dir(out / "model") as tmp:
            final.save_pretrained(str(tmp), safe_serialization=True, **({"state_dict": full_sd} if full_sd else {}))
            tok.save_pretrained(str(tmp))
        (out / checkpoint.NAME).unlink(missing_ok=True)  # the final model supersedes it
        summary = {"status": "finished", "epochs_done": last.get("epoch"), "stopped_early": stopped_early,
                   "final": last, "train_seconds": round(elapsed, 3), "model_info": info, "lr": lr,
                   "kernels": kernels}
        write_json(out / "train_summary.json", summary)
        log(f"trained {last.get('epoch')} epochs in {elapsed:.1f}s; final loss {last.get('loss', float('nan')):.4f}"
            + (f", certified recall {last['recall']:.1%}" if "recall" in last else "") + f"; model in {out / 'model'}")
    if world > 1:
        torch.distributed.barrier()
    return summary


def recall_check(model, items, device, tcfg, autocast_dtype, margin, pad_id, logits_fn=None) -> dict:
    """The memory curve's point: certified exact recall of the training poems (teacher forcing)."""
    from ..recall.teacher import teacher_forced

    res = teacher_forced(model, items, device=device, batch_size=tcfg.recall_batch_size, margin=margin,
                         autocast_dtype=autocast_dtype, pad_id=pad_id, logits_fn=logits_fn)
    n = len(res)
    return {"recall": sum(r.certified for r in res) / n, "recall_argmax": sum(r.all_argmax_correct for r in res) / n,
            "token_accuracy": sum(r.token_accuracy for r in res) / n,
            "mean_prefix_tokens": sum(r.prefix_tokens for r in res) / n}


def _shard(model, scored, device, world: int) -> None:
    """FSDP2: each decoder layer is one shard group; the wrapper (embeddings, final norm, head) is the root."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world,))
    layer_types = set(getattr(unwrap(model), "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in layer_types]
    if not layers:
        raise RecitebenchError(f"--fsdp: cannot find the decoder layers of {type(unwrap(model)).__name__}")
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(scored, mesh=mesh)


def _full_states(model, optim, fsdp: bool) -> tuple[dict, dict | None]:
    """Unsharded model (and optimizer) state on CPU; under FSDP every rank must call this."""
    if not fsdp:
        return model.state_dict(), (optim.state_dict() if optim is not None else None)
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=opts), (get_optimizer_state_dict(model, optim, options=opts) if optim else None)


def _load_states(model, optim, state: dict, fsdp: bool) -> None:
    if not fsdp:
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

    opts = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, state["model"], options=opts)
    set_optimizer_state_dict(model, optim, state["optim"], options=opts)


def _truncate_metrics(path: Path, epoch: int) -> None:
    """Drop curve points written after the checkpoint we resume from (they will be recomputed)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and json.loads(line)["epoch"] <= epoch]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
