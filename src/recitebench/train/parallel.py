"""Several processes under torchrun: DDP (replicated) or FSDP2 (sharded), and their full-state I/O."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import RecitebenchError
from ..models.forward import unwrap
from .config import TrainConfig


@dataclass(frozen=True)
class World:
    size: int
    rank: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_world() -> World:
    """This process's place under torchrun (a world of one without it)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return World(size, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")))


def check_options(tcfg: TrainConfig, device: torch.device, world: World) -> None:
    if tcfg.cuda_graphs and (device.type != "cuda" or world.size > 1):
        raise RecitebenchError("--cuda-graphs needs a single CUDA GPU (not CPU, not torchrun)")
    if tcfg.fsdp and (world.size < 2 or tcfg.lora or tcfg.cuda_graphs):
        raise RecitebenchError("--fsdp needs torchrun with 2+ processes, and works without --lora and --cuda-graphs")


def wrap(model, scored: torch.nn.Module, tcfg: TrainConfig, device: torch.device, world: World) -> torch.nn.Module:
    """The module the loop calls: sharded (FSDP2), replicated (DDP) or as is."""
    if tcfg.fsdp:
        _shard(model, scored, device, world.size)
        return scored
    if world.size > 1:
        ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(scored, device_ids=ids)
    return scored


def _shard(model, scored, device, world: int) -> None:
    """FSDP2: each decoder layer is one shard group; the wrapper (embeddings, final norm, head) is the root."""
    # Imported here: torch.distributed's FSDP modules are only needed, and only importable everywhere, under torchrun.
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


def full_states(model, optim, fsdp: bool) -> tuple[dict, dict | None]:
    """Unsharded model (and optimizer) state on CPU; under FSDP every rank must call this."""
    if not fsdp:
        return model.state_dict(), (optim.state_dict() if optim is not None else None)
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    optim_sd = get_optimizer_state_dict(model, optim, options=opts) if optim else None
    return get_model_state_dict(model, options=opts), optim_sd


def load_states(model, optim, state: dict, fsdp: bool) -> None:
    if not fsdp:
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

    opts = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, state["model"], options=opts)
    set_optimizer_state_dict(model, optim, state["optim"], options=opts)


def all_sum(values: list[float], device: torch.device, world: World) -> list[float]:
    """Sum per-rank totals (the loss and token counts of an epoch) over every rank."""
    if world.size == 1:
        return values
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(totals)
    return totals.tolist()
