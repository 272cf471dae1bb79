"""`recitebench capacity` with `engine: stacked`: capacity on random tokens, measured where it converges.

For each model of the spec (a Qwen2-architecture config.json), the dataset sizes come from the model: `size_multiples`
of its predicted capacity (`prior_bits_per_parameter` x parameters / bits per sequence). All points of one model —
sizes x seeds, and the learning-rate grid at the largest size of the first seed — train together as one stacked
group (train/stacked.py) until each one's memorised bits stop growing (converged) or the cap (not converged, reported
as a lower bound). Each group is one process (`python -m recitebench.experiment.capacity_stacked SPEC OUT MODEL`),
so groups share the GPU; a finished group is not trained again.

Reading it off: the learning rate is the grid's best by memorised bits at the largest size (first seed), and it must
not be at an edge of the grid; a model's capacity (per seed) is the plateau: its two largest sizes within
`plateau_tolerance` of each other and both converged, else a lower bound. Across models, capacity = alpha x
parameters through the origin, with alpha's interval over seeds and the fit's R^2, per precision.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..data.build import build_dataset
from ..data.config import DataConfig
from ..data.frozen import load_frozen
from ..data.random_strings import SPECIALS
from ..errors import RecitebenchError
from ..io import write_json
from ..provenance import provenance
from ..stats import mean_interval
from .config import CapacityConfig
from .runner import dataset_current

PRECISIONS = {"fp32": "fp32", "auto": "fp32", "bf16": "bf16", "bf16-master": "bf16", "bf16-mixed": "bf16"}


def model_arch(raw: dict, m: str, vocab: int):
    """(Arch, precision) of a spec's model entry: a Qwen2 config.json file."""
    from ..train.stacked import Arch

    entry = raw["models"][m] or {}
    path = Path(entry.get("model", ""))
    if path.suffix != ".json" or not path.is_file():
        raise RecitebenchError(f"{raw['_path']}: models.{m}: the stacked engine needs a Qwen2 config.json (got "
                               f"{entry.get('model')!r})")
    try:
        arch = Arch.from_config(json.loads(path.read_text(encoding="utf-8")), vocab)
    except (ValueError, KeyError) as e:
        raise RecitebenchError(f"{path}: {e}") from None
    precision = ((entry.get("train") or {}).get("precision") or (raw.get("train") or {}).get("precision") or "fp32")
    if precision not in PRECISIONS:
        raise RecitebenchError(f"{raw['_path']}: models.{m}: the stacked engine trains in fp32 or bf16, not "
                               f"{precision}")
    return arch, PRECISIONS[precision]


def bits_per_sequence(data: dict) -> float:
    cfg = DataConfig(**data)  # the preset's own defaults for vocab and length
    return cfg.length * math.log2(cfg.vocab)


def sizes_for(params: int, data: dict, ccfg: CapacityConfig, multiples: list[float] | None = None) -> list[int]:
    """Dataset sizes spanning the model's predicted capacity (multiples of prior x parameters: the model's own, else
    the spec's), else `sizes`."""
    multiples = multiples or ccfg.size_multiples
    if not multiples:
        return list(ccfg.sizes)
    predicted = ccfg.prior_bits_per_parameter * params / bits_per_sequence(data)
    return sorted({max(1, round(mult * predicted)) for mult in multiples})


def plan(raw: dict, ccfg: CapacityConfig) -> dict[str, dict]:
    """Per model: arch, precision, parameters, sizes, and its points (n, seed, lr)."""
    data = raw["data"]
    if data.get("preset") != "random-tokens":
        raise RecitebenchError(f"{raw['_path']}: the stacked engine measures capacity on `preset: random-tokens`")
    if data.get("exposures"):
        raise RecitebenchError(f"{raw['_path']}: datasets: exposures: the stacked engine samples every sequence "
                               f"uniformly (a dose set is trained by `recitebench train` or a `run` spec)")
    if not ccfg.lrs:
        raise RecitebenchError(f"{raw['_path']}: capacity.lrs: the stacked engine needs a learning-rate grid (at "
                               f"least three rates, so the best one can be inside it)")
    vocab = DataConfig(**data).vocab + len(SPECIALS)  # the symbol tokenizer's specials follow the symbols
    out = {}
    for m in raw["models"]:
        arch, precision = model_arch(raw, m, vocab)
        own = (raw["models"][m] or {}).get("capacity") or {}
        sizes = sizes_for(arch.parameters(), data, ccfg, [float(x) for x in own.get("size_multiples", [])])
        lrs = model_lrs(raw, m, ccfg)
        out[m] = {"arch": arch, "precision": precision, "parameters": arch.parameters(), "sizes": sizes,
                  "lrs": lrs, "points": rate_design(sizes, lrs, ccfg.seeds, own.get("rate_points", ccfg.rate_points))}
    return out


def rate_design(sizes: list[int], lrs: list[float], seeds: list[int], rate_points: str) -> list:
    """The points of one model. `largest`: every size and seed at the grid's middle rate, the other rates at the
    largest size of the first seed (the capacity is read at the middle rate, and only where it stores within the
    convergence tolerance of the grid's best). `all`: every size and seed at every rate (the capacity is read at
    the best rate of the first seed's largest size, whichever it is): the grid's price in points, bought where the
    best rate moves as training goes on (lower rates keep gaining after the higher ones flatten)."""
    from ..train.stacked import Point

    if rate_points == "all":
        return [Point(n, s, lr) for lr in lrs for s in seeds for n in sizes]
    mid = lrs[len(lrs) // 2]
    return [Point(n, s, mid) for s in seeds for n in sizes] + [Point(sizes[-1], seeds[0], lr) for lr in lrs
                                                                if lr != mid]


def model_lrs(raw: dict, m: str, ccfg: CapacityConfig) -> list[float]:
    """A model's learning-rate grid: its entry's `capacity: {lrs: ...}` (validated with the spec), else the spec's."""
    own = ((raw["models"][m] or {}).get("capacity") or {}).get("lrs")
    return [float(x) for x in own] if own else list(ccfg.lrs)


def prepare_data(raw: dict, ccfg: CapacityConfig, plans: dict, root: Path, log) -> dict[int, Path]:
    """One nested random-tokens dataset per seed, as large as the largest size any model needs."""
    largest = max(max(p["sizes"]) for p in plans.values())
    folders = {}
    for s in ccfg.seeds:
        cfg = DataConfig(**{**raw["data"], "n": largest, "seed": s, "nested": True})
        folder = root / "data" / f"tokens_s{s}"
        if not dataset_current(folder, cfg):
            log(f"building {folder} ({largest} sequences)")
            build_dataset(cfg, folder, overwrite=True)
        folders[s] = folder
    return folders


def stacked_settings(ccfg: CapacityConfig, precision: str):
    from ..train.stacked import StackedSettings

    return StackedSettings(batch=ccfg.batch, max_steps=ccfg.max_steps, min_steps=ccfg.min_steps,
                           eval_every=ccfg.eval_every, tolerance=ccfg.tolerance, precision=precision,
                           schedule=ccfg.schedule, decay_steps=ccfg.decay_steps, compile=ccfg.compile,
                           anneal_steps=ccfg.anneal_steps, seed=ccfg.seeds[0])


def run_group(raw: dict, ccfg: CapacityConfig, m: str, root: Path, log=print) -> dict:
    """Train one model's points together; write and return OUT/stacked/MODEL/group.json.

    A group written for other points under the same settings (the spec added a size or a rate) keeps its finished
    points: only the others train, in a stack of their own (their batches are drawn for that stack; a point's
    bits do not depend on its stack mates within seed noise, docs/CAPACITY.md), and the earlier file stays beside
    it as group.stackK.json."""
    from ..devices import pick_device

    p = plan(raw, ccfg)[m]
    folder = root / "stacked" / m
    settings = stacked_settings(ccfg, p["precision"])
    kept, earlier, stack = _finished_points(folder / "group.json", ccfg, p)
    todo = [q for q in p["points"] if (q.n, q.seed, q.lr) not in kept]
    stacks = _stacks(earlier)[:stack] if earlier else []
    extends = bool(earlier) and stack == len(_stacks(earlier))  # a new stack, not the last one continued
    device = pick_device("auto")
    results, throughput = [], None
    if todo:
        if kept:
            log(f"{m}: {len(kept)} finished points kept from {folder / 'group.json'}; {len(todo)} train in stack "
                f"{stack}")
        results, throughput = _train(raw, ccfg, m, root, p, todo, device, stack, log)
        stacks = [*stacks, {"stack": stack, "points": len(todo), "throughput": throughput}]
    trained = {(r.point.n, r.point.seed, r.point.lr): _point_record(r, stack) for r in results}
    group = {"model": m, "parameters": p["parameters"], "precision": p["precision"], "sizes": p["sizes"],
             "lrs": p["lrs"], "settings": settings.__dict__, "throughput": throughput or stacks[-1]["throughput"],
             "stacks": stacks,
             # summed over the invocations (and stacks) that trained it
             "wall_seconds": sum(x["throughput"]["wall_seconds"] for x in stacks),
             "points": [{**kept, **trained}[(q.n, q.seed, q.lr)] for q in p["points"]],
             "device": str(device), **provenance()}
    if extends and not (folder / f"group.stack{stack - 1}.json").is_file():
        (folder / "group.json").replace(folder / f"group.stack{stack - 1}.json")  # nothing it held is lost
    write_json(folder / "group.json", group)
    return group


def _train(raw: dict, ccfg: CapacityConfig, m: str, root: Path, p: dict, todo: list, device, stack: int, log):
    """One stack of `todo` points, continued from its saved state where one was saved for exactly these points (a
    state saved for the earlier stack is kept beside it as state.stackK.pt)."""
    import torch

    from ..train.stacked import StackedTrainer

    folder = root / "stacked" / m
    data = {s: torch.tensor([r["token_ids"] for r in load_frozen(root / "data" / f"tokens_s{s}").poems])
            for s in ccfg.seeds}
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 weights and optimizer; TF32 products
    vocab = DataConfig(**raw["data"]).vocab  # <bos> is the first special after the symbols
    trainer = StackedTrainer(p["arch"], todo, data, vocab, bits_per_sequence(raw["data"]),
                             stacked_settings(ccfg, p["precision"]), device, log=lambda msg: log(f"{m}: {msg}"),
                             state_path=folder / "state.pt")
    if stack and (folder / "state.pt").is_file() and not trainer.saved_state_fits():
        (folder / "state.pt").replace(folder / f"state.stack{stack - 1}.pt")
    return trainer.run()


def _point_record(r, stack: int) -> dict:
    return {"n": r.point.n, "seed": r.point.seed, "lr": r.point.lr, "converged": r.converged,
            "converged_step": r.converged_step, "diverged_step": r.diverged_step, "memorized_bits": r.memorized_bits,
            "dataset_bits": r.dataset_bits, "curve": r.curve, "stack": stack}


def _stacks(group: dict) -> list[dict]:
    """A group file's stacks (one, stack 0, in a file written before groups could hold more)."""
    return group.get("stacks") or [{"stack": 0, "points": len(group["points"]), "throughput": group["throughput"]}]


def _finished_points(path: Path, ccfg: CapacityConfig, p: dict) -> tuple[dict, dict | None, int]:
    """What an earlier group file (same settings) leaves to train: (its points kept, keyed (n, seed, lr); that file;
    the stack the others train in). A file for other points keeps those of its finished points the plan still has,
    and the others form a new stack; a file for exactly the plan's points (a raised cap) keeps the points of its
    earlier stacks and continues its last stack from that stack's state."""
    if not path.is_file():
        return {}, None, 0
    group = json.loads(path.read_text(encoding="utf-8"))
    if not _same_settings(group, ccfg, p):
        return {}, None, 0
    key = [(q.n, q.seed, q.lr) for q in p["points"]]
    last = len(_stacks(group)) - 1
    if [(q["n"], q["seed"], q["lr"]) for q in group["points"]] == key:
        kept = {(q["n"], q["seed"], q["lr"]): q for q in group["points"] if q.get("stack", 0) < last}
        return kept, (group if last else None), last
    kept = {(q["n"], q["seed"], q["lr"]): {"stack": 0, **q} for q in group["points"]
            if (q["n"], q["seed"], q["lr"]) in set(key) and (q["converged"] or q.get("diverged_step") is not None)}
    return kept, (group if kept else None), (last + 1 if kept else 0)


def run_stacked(raw: dict, ccfg: CapacityConfig, root: Path, jobs: int, dry_run: bool, log=print) -> dict | None:
    """Every model's group (in `jobs` processes at once), then OUT/capacity.json."""
    plans = plan(raw, ccfg)
    for m, p in plans.items():
        log(f"  {m:24s} {p['parameters']:>10,} parameters, {p['precision']}, sizes {p['sizes']}, rates "
            f"{'/'.join(f'{lr:g}' for lr in p['lrs'])}, {_group_state(root / 'stacked' / m, ccfg, p)}")
    if dry_run:
        return None
    prepare_data(raw, ccfg, plans, root, log)
    todo = [m for m in plans if not _group_finished(root / "stacked" / m / "group.json", ccfg, plans[m])]
    spec_file = root / "capacity_spec.json"
    write_json(spec_file, {"raw": raw, "capacity": ccfg.__dict__})
    running: list[tuple[str, subprocess.Popen]] = []
    failed: list[str] = []
    previous = signal.signal(signal.SIGTERM, _exit_on_term)  # a job's time limit: stop the groups with it
    try:
        while todo or running:
            while todo and len(running) < jobs:
                m = todo.pop(0)
                running.append((m, _start_group(spec_file, root, m)))
                log(f"{m}: training ({len(plans[m]['points'])} models stacked; log {root / 'stacked' / m / 'run.log'})")
            time.sleep(1.0)
            for m, proc in list(running):
                if proc.poll() is not None:
                    running.remove((m, proc))
                    (failed.append(m) if proc.returncode else log(f"{m}: done"))
    finally:
        signal.signal(signal.SIGTERM, previous)
        for m, proc in running:  # interrupted: each group keeps its state at its last measurement
            proc.terminate()
            proc.wait()
            log(f"{m}: stopped; `recitebench capacity` again continues it from its last measurement")
    if failed:
        raise RecitebenchError(f"stacked groups failed: {', '.join(failed)} (see their run.log under {root}/stacked)")
    result = summarise_stacked(raw, ccfg, root, plans)
    write_json(root / "capacity.json", result)
    return result


def _group_state(folder: Path, ccfg: CapacityConfig, p: dict) -> str:
    """What a run would do with this group: reuse it, train only the points its file lacks, continue a saved stack,
    or train it from step 0."""
    whole = f"{len(p['points'])} points in one stack"
    if _group_finished(folder / "group.json", ccfg, p):
        return f"{whole}; finished (reused)"
    kept, earlier, next_stack = _finished_points(folder / "group.json", ccfg, p)
    if kept:
        how = "in a stack of their own" if next_stack == len(_stacks(earlier)) else "in its last stack, continued"
        return (f"{len(p['points'])} points: keeps {len(kept)} finished points of its group file, trains "
                f"{len(p['points']) - len(kept)} more {how}")
    if (folder / "state.pt").is_file():
        return f"{whole}; continues from its saved state"
    return f"{whole}; trains from step 0"


def _group_finished(path: Path, ccfg: CapacityConfig, p: dict) -> bool:
    """A group is not trained again once written for the same points and settings, unless it stopped at a lower cap
    with points still learning (a group written for other points trains the points it lacks, `run_group`)."""
    if not path.is_file():
        return False
    group = json.loads(path.read_text(encoding="utf-8"))
    same_points = [(q["n"], q["seed"], q["lr"]) for q in group["points"]] == [(q.n, q.seed, q.lr) for q in p["points"]]
    same = same_points and _same_settings(group, ccfg, p)
    learning = any(not q["converged"] for q in group["points"])
    return same and not (learning and group["settings"]["max_steps"] < ccfg.max_steps)


def _same_settings(group: dict, ccfg: CapacityConfig, p: dict) -> bool:
    """A group file's settings are the spec's (the cap aside: a cap can be raised)."""
    from dataclasses import asdict

    now = json.loads(json.dumps(asdict(stacked_settings(ccfg, p["precision"]))))
    return {**group["settings"], "max_steps": 0} == {**now, "max_steps": 0}


def _exit_on_term(signum, frame):
    raise SystemExit(128 + signum)


def _start_group(spec_file: Path, root: Path, m: str) -> subprocess.Popen:
    """One model's group as a child process, its output appended to OUT/stacked/MODEL/run.log."""
    (root / "stacked" / m).mkdir(parents=True, exist_ok=True)
    with open(root / "stacked" / m / "run.log", "a", encoding="utf-8") as logf:  # the child keeps its copy
        return subprocess.Popen([sys.executable, "-m", "recitebench.experiment.capacity_stacked", str(spec_file),
                                 str(root), m], stdout=logf, stderr=subprocess.STDOUT)


def summarise_stacked(raw: dict, ccfg: CapacityConfig, root: Path, plans: dict) -> dict:
    models = {}
    for m in plans:
        group = json.loads((root / "stacked" / m / "group.json").read_text(encoding="utf-8"))
        models[m] = read_off(group, ccfg)
    fits = {prec: fit_alpha({m: v for m, v in models.items() if v["precision"] == prec}, ccfg.seeds)
            for prec in sorted({v["precision"] for v in models.values()})}
    spec = {k: v for k, v in raw.items() if k not in ("_path",)}
    return {"kind": "recitebench-capacity/2", "engine": "stacked", "root": str(root), "config": ccfg.__dict__,
            "spec": spec, "spec_path": raw["_path"], "models": models, "fits": fits, **provenance()}


def read_off(group: dict, ccfg: CapacityConfig) -> dict:
    """One model's learning rate (the grid's middle, or its best where every size and seed trained at every rate;
    the best at the largest size, first seed, must be inside the grid, every grid point converged, and the rate
    used within `tolerance` of it) and its
    capacity per seed: the plateau of its two largest sizes, both converged and within plateau_tolerance, else the
    largest memorised bits as a lower bound."""
    pts, sizes, seed0 = group["points"], group["sizes"], ccfg.seeds[0]
    grid = {p["lr"]: p for p in pts if p["n"] == sizes[-1] and p["seed"] == seed0}
    best = max(grid, key=lambda lr: grid[lr]["memorized_bits"])
    lrs = sorted(grid)
    interior = lrs[0] < best < lrs[-1]
    # a grid point stopped by the cap still learns: it may end above the rate used, so the reading is a lower bound
    unconverged = [lr for lr in lrs if not grid[lr]["converged"]]
    grid_lrs = group.get("lrs", ccfg.lrs)  # the model's own grid (older group files: the spec's)
    mid = grid_lrs[len(grid_lrs) // 2]
    # `rate_points: all` trained every size and seed at the best rate too: read there (chosen on the first seed)
    every = all(any(p["n"] == n and p["seed"] == s and p["lr"] == best for p in pts) for n in sizes for s in ccfg.seeds)
    used = best if every else mid
    per_seed = []
    for s in ccfg.seeds:
        curve = [next(p for p in pts if p["n"] == n and p["seed"] == s and p["lr"] == used) for n in sizes]
        top = curve[-2:] if len(curve) >= 2 else curve
        close = abs(top[-1]["memorized_bits"] - top[0]["memorized_bits"]) <= ccfg.plateau_tolerance * max(
            top[-1]["memorized_bits"], 1.0)
        plateau = close and all(p["converged"] for p in top)
        bits = sum(p["memorized_bits"] for p in top) / len(top) if plateau else max(p["memorized_bits"] for p in curve)
        per_seed.append({"seed": s, "capacity_bits": bits, "kind": "plateau" if plateau else "lower bound",
                         "points": [{k: p[k] for k in ("n", "memorized_bits", "dataset_bits", "converged",
                                                       "converged_step")} for p in curve]})
    params = group["parameters"]
    caps = [x["capacity_bits"] for x in per_seed]
    # the rate the sizes and seeds were read at measures the capacity when the grid's best is bracketed and it
    # stores within `tolerance` (the convergence rule's own resolution) of the best (0 when it is the best)
    gap = 1.0 - grid[used]["memorized_bits"] / max(grid[best]["memorized_bits"], 1.0)
    measured = all(x["kind"] == "plateau" for x in per_seed) and interior and gap < ccfg.tolerance and not unconverged
    return {"parameters": params, "precision": group["precision"], "sizes": sizes, "lr": used,
            "lr_chosen": "best" if every else "middle",  # best: of the first seed's largest size
            "lr_grid": {f"{lr:g}": grid[lr]["memorized_bits"] for lr in lrs}, "lr_best": best,
            "lr_interior": interior, "lr_gap": gap, "lr_unconverged": unconverged, "per_seed": per_seed,
            "capacity_bits": mean_interval(caps),
            "bits_per_parameter": mean_interval([c / params for c in caps]),
            "label": "capacity" if measured else "lower bound", "throughput": group["throughput"],
            "wall_seconds": group["wall_seconds"], "device": group["device"]}


def fit_alpha(models: dict, seeds: list[int]) -> dict:
    """capacity = alpha x parameters through the origin, over the models whose capacity was measured (not lower
    bounds): alpha per seed with its interval over seeds, and R^2 of the fit to every (model, seed) point.

    `at_least` fits every model's figure, lower bounds included: the slope through the origin is a positive-weighted
    sum of the capacities, so a slope over lower bounds is a lower bound of the slope (a figure a reader may cite as
    "alpha >= ...", never as alpha)."""
    used = {m: v for m, v in models.items() if v["label"] == "capacity"}
    left_out = sorted(set(models) - set(used))
    fit = {"alpha": None, "models": sorted(used), "left_out": left_out, "note": "fewer than two measured"}
    if len(used) >= 2:
        fit = {**_slope(used, seeds), "models": sorted(used), "left_out": left_out}
    if left_out and len(models) >= 2:
        fit["at_least"] = {**_slope(models, seeds), "models": sorted(models)}
    return fit


def _slope(models: dict, seeds: list[int]) -> dict:
    per_seed, xs, ys = [], [], []
    for j, _ in enumerate(seeds):
        x = [v["parameters"] for v in models.values()]
        y = [v["per_seed"][j]["capacity_bits"] for v in models.values()]
        per_seed.append(sum(a * b for a, b in zip(x, y)) / sum(a * a for a in x))
        xs += x
        ys += y
    alpha = sum(a * b for a, b in zip(xs, ys)) / sum(a * a for a in xs)
    mean_y = sum(ys) / len(ys)
    ss_res = sum((b - alpha * a) ** 2 for a, b in zip(xs, ys))
    ss_tot = sum((b - mean_y) ** 2 for b in ys)
    return {"alpha": alpha, "alpha_per_seed": mean_interval(per_seed), "r2": 1 - ss_res / ss_tot if ss_tot else None,
            "points": len(xs)}


def main(argv: list[str] | None = None) -> int:
    """python -m recitebench.experiment.capacity_stacked SPEC_JSON OUT MODEL: one model's group (a pool child)."""
    spec_file, root, m = (argv or sys.argv[1:])[:3]
    saved = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    ccfg = CapacityConfig(**saved["capacity"])
    run_group(saved["raw"], ccfg, m, Path(root), log=lambda msg: print(msg, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
