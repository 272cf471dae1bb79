"""`recitebench capacity`: the protocol is CAPACITY_PROTOCOL in experiment/config.py (also its --help)."""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from ..config import to_dict
from ..errors import RecitebenchError
from ..io import write_json
from ..provenance import provenance
from ..rundir import RunDir
from ..schema import read_results
from ..stats import mean_interval
from .config import CapacityConfig, ExecutorConfig
from .runner import run_spec
from .spec import Spec, load_spec


def capacity(spec: Spec, ccfg: CapacityConfig, xcfg: ExecutorConfig | None, *, out: str | None = None,
             dry_run: bool = False, log=print) -> dict | None:
    """Pilot, sweep, and OUT/capacity.json; returns what it wrote (None for a dry run)."""
    raw = capacity_spec(spec)
    root = Path(out) if out else spec.runs_dir
    root.mkdir(parents=True, exist_ok=True)
    if ccfg.engine == "stacked":
        from .capacity_stacked import run_stacked

        return run_stacked(raw, ccfg, root, jobs=(xcfg.jobs if xcfg and xcfg.jobs else 1), dry_run=dry_run, log=log)
    own = [m for m, v in raw["models"].items() if "capacity" in (v or {})]
    if own:
        raise RecitebenchError(f"{spec.path}: models.{own[0]}.capacity: a model's own learning-rate grid and sizes are "
                               f"read by `engine: stacked` only (the grid engine pilots capacity.lrs for every model)")
    if dry_run:  # both grids written and validated (the pilot only if it runs); the sweep at the spec's own rates
        if ccfg.lrs:
            run_spec(load_spec(_write_spec(root / "pilot.yaml", pilot_spec(raw, ccfg, root))), xcfg, dry_run=True,
                     log=log)
        run_spec(load_spec(_write_spec(root / "sweep.yaml", sweep_spec(raw, ccfg, root, {}))), xcfg, dry_run=True,
                 log=log)
        return None
    lrs = pilot(raw, ccfg, root, xcfg, log)
    sweep_path = _write_spec(root / "sweep.yaml", sweep_spec(raw, ccfg, root, lrs))
    outcomes = run_spec(load_spec(sweep_path), xcfg, log=log)
    failed = [o.name for o in outcomes if o.state == "failed"]
    if failed:
        raise RecitebenchError(f"{len(failed)} sweep runs failed ({', '.join(failed[:3])}); see their logs, then run "
                               f"`recitebench capacity` again to finish them")
    result = summarise(raw, ccfg, root, lrs)
    write_json(root / "capacity.json", result)
    return result


def capacity_spec(spec: Spec) -> dict:
    """The spec's sections (input paths already absolute) with its one dataset as `data`: what the pilot and sweep
    grids are generated from."""
    if len(spec.datasets) != 1:
        raise RecitebenchError(f"{spec.path}: a capacity spec has exactly one dataset under `datasets:` (its n and "
                               f"seed are set per point of the sweep); it has {len(spec.datasets)}")
    for key in ("grid", "stop_after"):
        if key in spec.raw:
            raise RecitebenchError(f"{spec.path}: `{key}:` is set by `recitebench capacity` (the pilot and sweep "
                                   f"grids); remove it")
    (dataset,) = spec.raw["datasets"].values()
    return {**spec.raw, "name": spec.name, "data": dict(dataset or {}), "_path": spec.path}


def pilot(raw: dict, ccfg: CapacityConfig, root: Path, xcfg, log) -> dict[str, float]:
    """The learning rate per model: the spec's own when `lrs` is empty, else the pilot's pick (OUT/pilot.json)."""
    base_lr = (raw.get("train") or {}).get("lr")
    if not ccfg.lrs:
        return {m: ((raw["models"][m] or {}).get("train") or {}).get("lr", base_lr) for m in raw["models"]}
    path = _write_spec(root / "pilot.yaml", pilot_spec(raw, ccfg, root))
    run_spec(load_spec(path), xcfg, retry_failed=False, log=log)
    picks, losses = {}, {}
    for m in raw["models"]:
        losses[m] = {lr: _final_loss(_pilot_run(root, ccfg, m, lr)) for lr in ccfg.lrs}
        finite = {lr: loss for lr, loss in losses[m].items() if math.isfinite(loss)}
        if not finite:
            first = RunDir(_pilot_run(root, ccfg, m, ccfg.lrs[0])).failure_reason()
            raise RecitebenchError(f"pilot: every run of {m} failed (first: {first}); logs in {root / 'pilot'}")
        picks[m] = min(finite, key=lambda lr: (finite[lr], lr))
        log(f"pilot {m}: lr {picks[m]:g} (final loss per lr: "
            + ", ".join(f"{lr:g}={loss:.4g}" for lr, loss in losses[m].items()) + ")")
    write_json(root / "pilot.json", {"picked": picks, "final_loss": {m: {f"{k:g}": v for k, v in d.items()}
                                                                       for m, d in losses.items()}})
    return picks


def _final_loss(run_path: Path) -> float:
    summ = RunDir(run_path).read_summary()
    loss = summ.get("final", {}).get("loss")
    return float(loss) if loss is not None else math.inf


def _pilot_data(ccfg: CapacityConfig) -> str:
    return f"n{ccfg.pilot_size or ccfg.sizes[-1]}_s{ccfg.seeds[0]}"


def _pilot_model(m: str, lr: float) -> str:
    return f"{m}_lr{lr:g}"


def _pilot_run(root: Path, ccfg: CapacityConfig, m: str, lr: float) -> Path:
    """The folder of model m's pilot run at rate lr (the runner names runs DATASET__MODEL)."""
    return root / "pilot" / f"{_pilot_data(ccfg)}__{_pilot_model(m, lr)}"


def _dataset(raw: dict, n: int, seed: int) -> dict:
    return {**raw["data"], "n": n, "seed": seed, "nested": True}


def _model(raw: dict, m: str, seed: int, train: dict) -> dict:
    entry = dict(raw["models"][m] or {})  # paths are absolute already: the generated specs live in OUT
    return {**entry, "init_seed": seed, "train": {**(entry.get("train") or {}), **train}}


def pilot_spec(raw: dict, ccfg: CapacityConfig, root: Path) -> dict:
    seed, n = ccfg.seeds[0], ccfg.pilot_size or ccfg.sizes[-1]
    models = {_pilot_model(m, lr): _model(raw, m, seed, {"lr": lr, "epochs": ccfg.pilot_epochs, "seed": seed})
              for m in raw["models"] for lr in ccfg.lrs}
    return {"name": f"{raw.get('name', 'capacity')}-pilot", "runs_dir": str(root / "pilot"), "stop_after": "train",
            "datasets": {_pilot_data(ccfg): _dataset(raw, n, seed)}, "models": models,
            "train": raw.get("train") or {}, "recite": raw.get("recite") or {}, "executor": raw.get("executor") or {}}


def sweep_spec(raw: dict, ccfg: CapacityConfig, root: Path, lrs: dict[str, float]) -> dict:
    datasets = {f"n{n}_s{s}": _dataset(raw, n, s) for s in ccfg.seeds for n in ccfg.sizes}
    models = {f"{m}_s{s}": _model(raw, m, s, {"seed": s, **({"lr": lrs[m]} if lrs.get(m) else {})})
              for m in raw["models"] for s in ccfg.seeds}
    grid = [[f"n{n}_s{s}", f"{m}_s{s}", *_budget(raw, m, n, ccfg)] for m in raw["models"] for s in ccfg.seeds
            for n in ccfg.sizes]
    return {"name": f"{raw.get('name', 'capacity')}-sweep", "runs_dir": str(root / "sweep"), "datasets": datasets,
            "models": models, "train": raw.get("train") or {}, "recite": raw.get("recite") or {}, "grid": grid,
            "executor": raw.get("executor") or {}}


def _budget(raw: dict, m: str, n: int, ccfg: CapacityConfig) -> list[dict]:
    """The pair's train override that gives every size the same number of optimizer steps ([] without `steps`)."""
    if not ccfg.steps:
        return []
    train = {**(raw.get("train") or {}), **((raw["models"][m] or {}).get("train") or {})}
    rows = train.get("batch_size")
    if not rows or train.get("batch_tokens") or train.get("grad_accum", 1) != 1:
        raise RecitebenchError(f"{raw['_path']}: capacity.steps needs train.batch_size (rows per step) and no "
                               f"batch_tokens or grad_accum, so steps per epoch are known")
    return [{"epochs": math.ceil(ccfg.steps / math.ceil(n / rows))}]


def _write_spec(path: Path, spec: dict) -> Path:
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text("# written by `recitebench capacity`; re-run with `recitebench run` " + path.name + "\n"
                       + yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def summarise(raw: dict, ccfg: CapacityConfig, root: Path, lrs: dict) -> dict:
    """capacity.json: every point of every curve, and per model the capacity with intervals over seeds."""
    models = {}
    for m in raw["models"]:
        points = [_point(root / "sweep" / f"n{n}_s{s}__{m}_s{s}", n, s) for s in ccfg.seeds for n in ccfg.sizes]
        models[m] = {"lr": lrs.get(m), "parameters": points[0]["parameters"], "points": points,
                     **_capacity_of(points, ccfg)}
    spec = {k: v for k, v in raw.items() if k not in ("_path", "data")}
    return {"kind": "recitebench-capacity/1", "root": str(root), "threshold": ccfg.threshold, "config": to_dict(ccfg),
            "spec": spec, "spec_path": raw["_path"], "models": models, **provenance()}


def _point(run_path: Path, n: int, seed: int) -> dict:
    res = read_results(RunDir(run_path).recite)
    mem = res.memory or {}
    return {"size": n, "seed": seed, "run": str(run_path), "exact_match": res.exact_match,
            "dataset_bits": mem.get("reference_bits"), "memorized_bits": mem.get("memorized_bits"),
            "memorized_bits_exact": mem.get("memorized_bits_exact"), "parameters": mem.get("parameters"),
            "reference": mem.get("reference"), "epochs_to_90": (res.speed or {}).get("epochs_to_90")}


def _capacity_of(points: list[dict], ccfg: CapacityConfig) -> dict:
    per_seed_bits, per_seed_size, saturated = [], [], []
    for s in ccfg.seeds:
        pts = [p for p in points if p["seed"] == s]
        bits = [p["memorized_bits"] or 0.0 for p in pts]
        per_seed_bits.append(max(bits))
        held = [p["size"] for p in pts if p["exact_match"] >= ccfg.threshold]
        per_seed_size.append(max(held) if held else 0)
        last = pts[-1]
        saturated.append(bool(last["dataset_bits"]) and (last["memorized_bits"] or 0) < 0.9 * last["dataset_bits"])
    params = points[0]["parameters"] or 0
    bits = mean_interval(per_seed_bits)
    return {"capacity_bits": bits,
            "bits_per_parameter": {k: (v / params if params and v is not None else None) for k, v in bits.items()
                                   if k != "per_seed"} | {"per_seed": [b / params for b in per_seed_bits] if params
                                                          else None},
            "max_size_at_threshold": mean_interval(per_seed_size), "saturated": all(saturated),
            "saturated_per_seed": saturated}
