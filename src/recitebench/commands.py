"""The CLI's subcommands as plain functions: parsed flags -> typed configs (one merge rule) -> stage function.

Stage modules import torch and Transformers (seconds), so each command imports the stage it runs: `--help`,
`ls` and `compare` start at once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import load_yaml, merge, to_dict
from .data.config import DataConfig
from .errors import RecitebenchError
from .experiment.config import CapacityConfig, ExecutorConfig
from .models.config import ModelConfig
from .recall.config import ReciteConfig
from .rundir import RunDir
from .train.config import RESUME_FIXED, TrainConfig


def _yaml(args: argparse.Namespace) -> dict:
    return load_yaml(args.config) if getattr(args, "config", None) else {}


def _where(args: argparse.Namespace, section: str) -> str:
    return f"{args.config}: {section}" if getattr(args, "config", None) else "command line"


def data_build(args: argparse.Namespace) -> int:
    from .data import build_dataset  # stage import (see the module docstring)

    cfg = merge(DataConfig, yaml=_yaml(args), flags=args, where=_where(args, "data"))
    man = build_dataset(cfg, args.out, overwrite=args.overwrite)
    c = man["counts"]
    print(
        f"wrote {c['sampled']} poems to {args.out}/poems.jsonl (read {c['read']}, valid {c['valid']}, "
        f"unambiguous {c['after_ambiguity_guard']}, within length {c['after_length_rule']}); "
        f"sha256 {man['poems_sha256'][:12]}"
    )
    if man.get("columns"):  # say which source columns fed which field, guessed ones marked
        guessed = set(man.get("columns_guessed", []))
        pairs = [f"{f}={c}" + (" (guessed)" if f in guessed else "") for f, c in man["columns"].items()]
        print("columns: " + ", ".join(pairs) + ("; set them with --columns FIELD=COLUMN" if guessed else ""))
    return 0


def train(args: argparse.Namespace) -> int:
    from .train import train as run_training  # stage import

    yaml = _yaml(args)
    tyaml, myaml = yaml.get("train") or {}, yaml.get("model") or {}
    saved: dict = {}
    if vars(args).get("resume", tyaml.get("resume")):
        # A resumed run starts from its own saved config; the YAML and flags given now override it.
        saved = RunDir(vars(args).get("out", tyaml.get("out", TrainConfig.out))).read_config()
        saved["train"]["resume"] = True
    tcfg = merge(TrainConfig, saved=saved.get("train"), yaml=tyaml, flags=args, where=_where(args, "train"))
    if saved:
        check_resume_unchanged(saved["train"], tcfg, RunDir(tcfg.out))
    mcfg = merge(ModelConfig, saved=saved.get("model"), yaml=myaml, flags=args, where=_where(args, "model"))
    run_training(tcfg, mcfg)
    return 0


def check_resume_unchanged(saved: dict, tcfg: TrainConfig, run: RunDir) -> None:
    """--resume continues the same run: refuse settings that change its schedule, data order or optimizer."""
    now = to_dict(tcfg)
    changed = [k for k in RESUME_FIXED if k in saved and k != "data" and saved[k] != now[k]]
    if changed:
        diffs = ", ".join(f"{k} {saved[k]!r} -> {now[k]!r}" for k in changed)
        raise RecitebenchError(f"{run.config}: --resume continues the run as it was configured, but {diffs} changed "
                               f"(the learning-rate schedule and data order are fixed at the start); start a new run "
                               f"with another --out instead")


def recite(args: argparse.Namespace) -> int:
    from .recall.recite import recite as run_recitation  # stage import (loads torch)

    yaml = _yaml(args)
    sectioned = "recite" in yaml or "model" in yaml  # a plain file of recite fields is allowed too
    rcfg = merge(ReciteConfig, yaml=yaml.get("recite") if sectioned else yaml, flags=args, where=_where(args, "recite"))
    mcfg = None
    if "model" in vars(args) or yaml.get("model"):
        mcfg = merge(ModelConfig, yaml=yaml.get("model"), flags=args, where=_where(args, "model"))
    run_recitation(rcfg, mcfg)
    return 0


def run(args: argparse.Namespace) -> int:
    from .experiment.runner import run_spec  # stage import
    from .experiment.spec import default_spec_path, load_spec
    from .report.render import render

    spec = load_spec(args.spec or default_spec_path(), runs_dir=args.runs_dir)
    xcfg = merge(ExecutorConfig, yaml=spec.executor, flags=args, where=f"{spec.path}: executor")
    outcomes = run_spec(spec, xcfg, dry_run=args.dry_run, only=args.only)
    if args.dry_run:
        return 0
    path = render(spec.runs_dir, title=f"recitebench: {spec.name}")
    print(f"report: {path} (and {path.with_suffix('.md')})")
    failed = [o for o in outcomes if o.state == "failed"]
    if failed:
        raise RecitebenchError(f"{len(failed)} of {len(outcomes)} runs failed (first: {failed[0].name}: "
                               f"{failed[0].detail}); `recitebench run` again retries them")
    return 0


def capacity(args: argparse.Namespace) -> int:
    from .experiment.capacity import capacity as measure  # stage import
    from .experiment.spec import default_spec_path
    from .report.capacity import write_capacity_report

    spec = args.spec or str(default_spec_path("capacity_demo.yaml"))
    raw = load_yaml(spec)
    ccfg = merge(CapacityConfig, yaml=raw.get("capacity") or {}, flags=args, where=f"{spec}: capacity")
    xcfg = merge(ExecutorConfig, yaml=raw.get("executor") or {}, flags=args, where=f"{spec}: executor")
    result = measure(spec, ccfg, xcfg, out=args.out, dry_run=args.dry_run)
    if result is None:
        return 0
    path = write_capacity_report(result["root"])
    for name, m in result["models"].items():
        bpp = m["bits_per_parameter"]["mean"]
        print(f"{name}: capacity {m['capacity_bits']['mean']:,.0f} bits"
              + (f" ({bpp:.4f} bits/parameter)" if bpp is not None else "")
              + f", largest size at {result['threshold']:.0%} recall: {m['max_size_at_threshold']['mean']:g}"
              + ("" if m["saturated"] else " (not saturated: a lower bound)"))
    print(f"capacity: {path} (and capacity.png, capacity.json)")
    return 0


def report(args: argparse.Namespace) -> int:
    from .report.render import render  # matplotlib

    path = render(args.runs_dir, title=args.title)
    print(f"report: {path} (and {path.with_suffix('.md')})")
    return 0


def ls(args: argparse.Namespace) -> int:
    from .data.presets import PRESETS
    from .models.presets import MODEL_PRESETS
    from .report.tables import format_table, list_runs

    if args.models:
        for name, p in MODEL_PRESETS.items():
            print(f"{name:28s} {p.hub_id or '-':32s} {p.note}")
        return 0
    if args.presets:
        for name, p in PRESETS.items():
            print(f"{name:10s} {p.template}    ({p.description})")
        return 0
    rows = list_runs(Path(args.runs_dir))
    print(format_table(rows) if rows else f"{args.runs_dir}: no runs yet")
    return 0


def compare(args: argparse.Namespace) -> int:
    from .report.tables import side_by_side

    print(side_by_side(args.runs))
    return 0


def export_lmeval(args: argparse.Namespace) -> int:
    from .recall.lmeval_export import export_lmeval as export  # stage import

    path = export(args.data, args.out, args.normalize)
    print(f"wrote {path} (lm-eval task {path.stem}); run it with: lm_eval --model hf --model_args pretrained=MODEL "
          f"--include_path {args.out} --tasks {path.stem}")
    return 0
