"""The CLI's subcommands as plain functions: parsed flags -> typed configs (one merge rule) -> stage function.

Stage modules import torch and Transformers (seconds), so each command imports the stage it runs: `--help`,
`ls` and `compare` start at once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import build, load_yaml, merge, sections
from .data.config import DataConfig
from .experiment.config import CapacityConfig, ExecutorConfig
from .models.config import ModelConfig
from .recall.config import ReciteConfig
from .train.config import TrainConfig


def _yaml(args: argparse.Namespace) -> dict:
    return load_yaml(args.config) if getattr(args, "config", None) else {}


def _where(args: argparse.Namespace, section: str | None = None) -> str:
    where = str(args.config) if getattr(args, "config", None) else "command line"
    return f"{where}: {section}" if section and getattr(args, "config", None) else where


def data_build(args: argparse.Namespace) -> int:
    from .data.build import build_dataset, build_summary  # stage import (see the module docstring)

    values = sections(_yaml(args), {"data": DataConfig}, _where(args))
    cfg = merge(DataConfig, yaml=values["data"], flags=args, where=_where(args, "data"))
    print(build_summary(build_dataset(cfg, args.out, overwrite=args.overwrite), args.out))
    return 0


def train(args: argparse.Namespace) -> int:
    from .train import train as run_training  # stage import
    from .train.config import train_configs

    values = sections(_yaml(args), {"train": TrainConfig, "model": ModelConfig}, _where(args))
    run_training(*train_configs(values, args, where=_where(args)))
    return 0


def recite(args: argparse.Namespace) -> int:
    from .recall.config import recite_configs
    from .recall.recite import recite as run_recitation  # stage import (loads torch)

    values = sections(_yaml(args), {"recite": ReciteConfig, "model": ModelConfig}, _where(args))
    run_recitation(*recite_configs(values, args, where=_where(args)))
    return 0


def extract(args: argparse.Namespace) -> int:
    from .recall.config import ExtractConfig, probe_configs
    from .recall.extract import extract as run_probe  # stage import (loads torch)

    values = sections(_yaml(args), {"extract": ExtractConfig, "model": ModelConfig}, _where(args))
    run_probe(*probe_configs(ExtractConfig, "extract", values, args, where=_where(args)))
    return 0


def lens(args: argparse.Namespace) -> int:
    from .recall.config import LensConfig, probe_configs
    from .recall.lens import lens as run_lens  # stage import (loads torch)

    values = sections(_yaml(args), {"lens": LensConfig, "model": ModelConfig}, _where(args))
    run_lens(*probe_configs(LensConfig, "lens", values, args, where=_where(args)))
    return 0


def retention(args: argparse.Namespace) -> int:
    from .recall.retention import retention as measure  # stage import (loads torch)

    measure(args.run, args.data, reference=args.reference, device=args.device)
    return 0


def run(args: argparse.Namespace) -> int:
    from .experiment.runner import raise_if_failed, run_spec  # stage import
    from .experiment.spec import default_spec_path, load_spec
    from .report.render import render

    spec = load_spec(args.spec or default_spec_path(), runs_dir=args.runs_dir, overrides=args.overrides)
    xcfg = merge(ExecutorConfig, yaml=spec.executor, flags=args, where=f"{spec.path}: executor")
    outcomes = run_spec(spec, xcfg, dry_run=args.dry_run, only=args.only)
    if args.dry_run:
        return 0
    path = render(spec.runs_dir, title=f"recitebench: {spec.name}")
    print(f"report: {path} (and {path.with_suffix('.md')})")
    raise_if_failed(outcomes)
    return 0


def capacity(args: argparse.Namespace) -> int:
    from .experiment.capacity import capacity as measure  # stage import
    from .experiment.spec import default_spec_path, load_spec
    from .report.capacity import capacity_summary, write_capacity_report

    spec = load_spec(args.spec or default_spec_path("capacity_demo.yaml"), overrides=args.overrides)
    ccfg = merge(CapacityConfig, yaml=spec.capacity, flags=args, where=f"{spec.path}: capacity")
    xcfg = merge(ExecutorConfig, yaml=spec.executor, flags=args, where=f"{spec.path}: executor")
    result = measure(spec, ccfg, xcfg, out=args.out, dry_run=args.dry_run)
    if result is None:
        return 0
    path = write_capacity_report(result["root"])
    print(capacity_summary(result))
    print(f"capacity: {path} (and capacity.png, capacity.json)")
    return 0


def report(args: argparse.Namespace) -> int:
    from .report.render import render  # matplotlib

    path = render(args.runs_dir, title=args.title)
    print(f"report: {path} (and {path.with_suffix('.md')})")
    return 0


def ls(args: argparse.Namespace) -> int:
    from .data.presets import describe_presets
    from .models.presets import describe_model_presets
    from .report.tables import describe_runs

    print(describe_model_presets() if args.models else describe_presets() if args.presets
          else describe_runs(Path(args.runs_dir)))
    return 0


def compare(args: argparse.Namespace) -> int:
    from .report.tables import side_by_side

    print(side_by_side(args.runs))
    return 0


def study(args: argparse.Namespace) -> int:
    from .experiment.spec import default_spec_path
    from .io import write_json
    from .report.study import evaluate, load_study, markdown

    settings, claims = load_study(args.spec or default_spec_path("verdicts.yaml"))
    result = evaluate(settings, claims)
    table = markdown(result)
    if args.out:
        write_json(Path(args.out) / "study.json", result)
        (Path(args.out) / "study.md").write_text(table, encoding="utf-8")
    print(table, end="")
    return 0


def export_lmeval(args: argparse.Namespace) -> int:
    from .recall.lmeval_export import export_lmeval as export  # stage import

    path = export(args.data, args.out, args.normalize, overwrite=args.overwrite, max_gen_toks=args.max_gen_toks,
                  template=args.template, extraction=tuple(args.extraction) if args.extraction else None,
                  tokenizer=args.tokenizer)
    chat = " --apply_chat_template" if args.template == "chat" else ""
    print(f"wrote {path} (lm-eval task {path.stem}); run it with: lm_eval --model hf --model_args pretrained=MODEL "
          f"--include_path {args.out} --tasks {path.stem}{chat}")
    return 0


def import_lmeval(args: argparse.Namespace) -> int:
    from .recall.lmeval_import import import_lmeval as run_import  # stage import

    rcfg = build(ReciteConfig, {"normalize": args.normalize}, where="import lm-eval")
    res = run_import(args.samples, args.data, args.out, model=args.model, template=args.template, rcfg=rcfg)
    print(f"imported {res.n} lm-eval samples: exact recall {res.exact_match:.1%} ({res.n_correct}/{res.n}), outcomes "
          f"{res.outcomes}; wrote {args.out}/results.json")
    return 0
