"""The CLI's subcommands as plain functions: parse -> typed config -> stage function."""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import from_args, load_yaml


def _yaml(args: argparse.Namespace, section: str | None = None) -> dict:
    if not getattr(args, "config", None):
        return {}
    data = load_yaml(args.config)
    return data.get(section, {}) if section else data


def cmd_data_build(args: argparse.Namespace) -> int:
    from .data import DataConfig, build_dataset

    cfg = from_args(DataConfig, args, _yaml(args))
    man = build_dataset(cfg, args.out)
    c = man["counts"]
    print(f"wrote {c['sampled']} poems to {args.out}/poems.jsonl (read {c['read']}, valid {c['valid']}, "
          f"unambiguous {c['after_ambiguity_guard']}, within length {c['after_length_rule']}); "
          f"sha256 {man['poems_sha256'][:12]}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .config import build
    from .models.config import ModelConfig
    from .train import TrainConfig, train
    from .train.loop import resolve_resume

    given = vars(args)
    tnames = set(TrainConfig.__dataclass_fields__)
    mnames = set(ModelConfig.__dataclass_fields__)
    yaml = _yaml(args)
    tvals = {**yaml.get("train", {}), **{k: v for k, v in given.items() if k in tnames}}
    mvals = {**yaml.get("model", {}), **{k: v for k, v in given.items() if k in mnames}}
    if tvals.get("resume"):
        tvals, mvals = resolve_resume(tvals, mvals, Path(tvals.get("out", TrainConfig.out)))
    train(build(TrainConfig, tvals, where="train config"), build(ModelConfig, mvals, where="model config"))
    return 0


def cmd_recite(args: argparse.Namespace) -> int:
    from .models.config import ModelConfig
    from .recall import ReciteConfig, recite

    yaml = _yaml(args)
    rcfg = from_args(ReciteConfig, args, yaml.get("recite", yaml if "recite" not in yaml and "model" not in yaml else {}))
    mcfg = None
    if "model" in vars(args) or yaml.get("model"):
        mcfg = from_args(ModelConfig, args, yaml.get("model", {}))
    recite(rcfg, mcfg)
    return 0
