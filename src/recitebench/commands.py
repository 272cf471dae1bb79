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


def cmd_run(args: argparse.Namespace) -> int:
    from .report.experiment import default_spec_path, load_spec, run_spec
    from .report.render import render

    spec = load_spec(args.spec or default_spec_path(), runs_dir=args.runs_dir)
    run_spec(spec, dry_run=args.dry_run, only=args.only)
    if not args.dry_run:
        path = render(spec.runs_dir, title=f"recitebench: {spec.name}")
        print(f"report: {path} (and {path.with_suffix('.md')})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report.render import render

    path = render(args.runs_dir, title=args.title)
    print(f"report: {path} (and {path.with_suffix('.md')})")
    return 0


LS_COLUMNS = [("run", "name"), ("n", "n"), ("exact", "exact_match"), ("ci low", "ci_low"), ("ci high", "ci_high"),
              ("epochs", "epochs"), ("loss", "final_loss"), ("train s", "train_seconds"), ("recite s", "recite_seconds"),
              ("certified", "certified"), ("generated", "generated")]


def cmd_ls(args: argparse.Namespace) -> int:
    from .report.index import format_table, list_runs

    if args.models:
        from .models.presets import MODEL_PRESETS

        for name, p in MODEL_PRESETS.items():
            print(f"{name:28s} {p.hub_id or '-':32s} {p.note}")
        return 0
    if args.presets:
        from .data.presets import PRESETS

        for name, p in PRESETS.items():
            print(f"{name:10s} {p.template}    ({p.description})")
        return 0
    rows = list_runs(Path(args.runs_dir))
    if not rows:
        print(f"{args.runs_dir}: no finished runs yet")
        return 0
    print(format_table(rows, LS_COLUMNS))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .errors import RecitebenchError
    from .report.index import _fmt, summarize_run

    rows = []
    for r in args.runs:
        p = Path(r)
        if not (p / "recite" / "results.json").is_file():
            raise RecitebenchError(f"{p}: not a finished run (no recite/results.json)")
        rows.append(summarize_run(p))
    keys = [k for _, k in LS_COLUMNS if k != "name"] + ["dataset", "model"]
    width = max(len(k) for k in keys)
    cols = [max(len(r["name"]), 10) for r in rows]
    print(" " * width + "  " + "  ".join(r["name"].ljust(c) for r, c in zip(rows, cols)))
    for k in keys:
        print(k.ljust(width) + "  " + "  ".join(_fmt(r.get(k), k).ljust(c) for r, c in zip(rows, cols)))
    return 0
