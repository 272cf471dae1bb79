"""Experiments as data: a YAML spec expands to a grid of (dataset x model) runs.

name: demo
runs_dir: runs/demo
datasets:            # name -> DataConfig fields
  cn: {preset: cn-poems, source: shared:cn_poems, n: 24, max_chars: 64}
models:              # name -> ModelConfig fields, plus optional per-model `train:` overrides
  tiny: {model: tiny, train: {lr: 3.0e-3}}
train: {epochs: 60}  # TrainConfig fields shared by every run
recite: {}           # ReciteConfig fields
extract: {prefix_tokens: [0, 8, 32]}  # optional: every run also runs the extraction probe (ExtractConfig fields)
lens: {heldout: cnx} # optional: every run also runs the logit lens (LensConfig fields; heldout: a spec dataset)
retention: {first: cn, then: en, snapshot_every: 10}  # optional: phase B runs cn.then.en__MODEL (RetentionSpec)
grid: [[cn, tiny]]   # optional: the pairs to run (default: every dataset x every model)
executor: {executor: pool, jobs: 2}   # optional: ExecutorConfig fields (flags override)

A dataset's `exclude:` and the lens's `heldout` may name another of the spec's datasets (its folder; it is built
first, and a held-out set no run trains on is built all the same). A model entry may also set `gpus_per_run` (a
fraction shares a GPU; 2+ trains under torchrun). A capacity spec
(`recitebench capacity`) is the same grammar with one dataset and a `capacity:` section; with `engine: stacked` a
model entry may set its own grid, sizes and rate design, `capacity: {lrs: [...], size_multiples: [...], rate_points:
all}`.

Paths: a relative model, tokenizer or source path is read from the spec file's folder (so a spec works from any
working directory and from an installed package); outputs (`runs_dir`) are relative to the working directory. A
path that does not exist is an error when the spec is loaded, and a dry run reads each local corpus still to build
through the build's filters (too few poems is its error too), so `--dry-run` fails where a run would. Dataset and
model names become folder names (`DATASET__MODEL`): letters, digits, '.', '-' and single '_' only, so two pairs can
never share a run folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config import build, load_yaml
from ..data.config import DataConfig
from ..data.frozen import load_frozen
from ..errors import RecitebenchError
from ..models.config import ModelConfig
from ..models.presets import MODEL_PRESETS, looks_like_path
from ..recall.config import ExtractConfig, LensConfig, ReciteConfig
from ..rundir import RunDir
from ..train.config import TrainConfig
from .config import CapacityConfig, ExecutorConfig, RetentionSpec

SPEC_KEYS = {"name", "description", "runs_dir", "datasets", "models", "train", "recite", "extract", "lens", "grid",
             "executor", "capacity", "retention", "stop_after"}


@dataclass
class PlannedRun:
    name: str  # "<dataset>__<model>"
    dataset: str
    model_name: str
    data_cfg: DataConfig
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    recite_cfg: ReciteConfig
    run: RunDir
    gpus_per_run: float | None = None  # the model entry's own (None: the executor's)
    stop_after: str = "recite"  # the spec's stop_after
    extract_cfg: ExtractConfig | None = None  # the spec's `extract:` section: the probe after recitation
    lens_cfg: LensConfig | None = None  # the spec's `lens:` section: the logit lens after recitation
    continues: PlannedRun | None = None  # phase B of `retention:`: this run starts from that run's final model
    retention: RetentionSpec | None = None  # phase B: its snapshots recite the first run's dataset

    def finished(self) -> bool:
        if self.stop_after == "train":
            return self.run.status() in ("trained", "done")
        return self.run.status() == "done" and not self.probes_missing()

    def probes_missing(self) -> list[str]:
        """The probes the spec asks for that this run has not written yet, or wrote under other settings."""
        import json

        from ..config import to_dict

        def stale(cfg, path: Path) -> bool:
            if not path.is_file():
                return True
            saved = {k: v for k, v in json.loads(path.read_text(encoding="utf-8"))["config"].items()
                     if k not in ("run", "out")}
            return saved != {k: v for k, v in to_dict(cfg).items() if k not in ("run", "out")}

        missing = [name for name, cfg, path in (("extract", self.extract_cfg, self.run.extract / "extraction.json"),
                                                ("lens", self.lens_cfg, self.run.lens / "lens.json"))
                   if cfg is not None and stale(cfg, path)]
        if self.retention is not None:
            curve = self.retention_file()
            if not curve.is_file() or json.loads(curve.read_text(encoding="utf-8"))["reference"] != \
                    self.retention.reference:
                missing.append("retention")
        return missing

    def retention_file(self) -> Path:
        """Phase B's curve: RUN/retention/A/retention.json (A: the first run's dataset folder name)."""
        return self.run.retention / Path(self.continues.train_cfg.data).name / "retention.json"

    @property
    def path(self) -> Path:
        return self.run.path


@dataclass
class Spec:
    path: str
    name: str
    runs_dir: Path
    datasets: dict[str, DataConfig]
    runs: list[PlannedRun]
    description: str = ""
    executor: dict = field(default_factory=dict)  # the `executor:` section (ExecutorConfig fields)
    capacity: dict = field(default_factory=dict)  # the `capacity:` section, read by `recitebench capacity`
    stop_after: str = "recite"  # train: runs end trained, not recited (a learning-rate pilot needs only the loss)
    raw: dict = field(default_factory=dict)  # the file's sections with every input path made absolute

    def data_dir(self, dataset: str) -> Path:
        return self.runs_dir / "data" / dataset


def default_spec_path(name: str = "demo.yaml") -> Path:
    """configs/NAME of the working folder, else the package's own copy (the wheel ships configs/ as the package
    data `recitebench.configs`), else the checkout this package runs from."""
    cands = [Path.cwd() / "configs" / name]
    try:
        from importlib.resources import files

        cands.append(Path(str(files("recitebench.configs") / name)))
    except (ModuleNotFoundError, TypeError):  # a source tree on PYTHONPATH: configs/ is beside src/, not inside
        pass
    cands.append(Path(__file__).resolve().parents[3] / "configs" / name)
    for cand in cands:
        if cand.is_file():
            return cand
    raise RecitebenchError(f"no spec given and configs/{name} not found; pass a spec file")


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*(_[A-Za-z0-9.-]+)*$")  # no "__": it separates dataset and model


def apply_overrides(raw: dict, overrides: list[str], where: str) -> dict:
    """`train.lr=1e-3`, `models.tiny.train.epochs=5`, `capacity.seeds=[0, 1]`: each dotted key set to its value
    read as YAML (a number, a list, a word), in a copy of the spec; the spec's own checks then apply to it."""
    import copy

    import yaml

    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise RecitebenchError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. train.lr=1e-3")
        node = raw
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecitebenchError(f"--set {item!r}: {'.'.join(parts[: i + 1])} in {where} is not a mapping")
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise RecitebenchError(f"--set {item!r}: the value is not YAML ({str(e).splitlines()[0]})") from None
    return raw


def load_spec(path: str | Path, runs_dir: str | None = None, overrides: list[str] | None = None) -> Spec:
    """Read and validate a spec completely (every section, every config, every input path) before anything runs;
    `overrides` (`--set KEY.PATH=VALUE`) are applied to the file's contents first."""
    path = Path(path)
    raw = apply_overrides(load_yaml(path), overrides or [], str(path))
    unknown = sorted(set(raw) - SPEC_KEYS)
    if unknown:
        raise RecitebenchError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(SPEC_KEYS))})")
    for key in ("datasets", "models"):
        if not isinstance(raw.get(key), dict) or not raw[key]:
            raise RecitebenchError(f"{path}: '{key}' must be a non-empty mapping of name -> settings")
        for name in raw[key]:
            if not isinstance(name, str) or not NAME.match(name):
                raise RecitebenchError(f"{path}: {key}.{name}: a name may hold letters, digits, '.', '-' and single "
                                       f"'_' (it becomes part of the run folder DATASET__MODEL)")
    raw = resolve_paths(raw, path)
    name = raw.get("name") or path.stem
    rdir = Path(runs_dir or raw.get("runs_dir") or f"runs/{name}")
    names = {d: str(rdir / "data" / d) for d in raw["datasets"]}  # a dataset named where a folder is asked for
    datasets = {}
    for d in raw["datasets"]:
        values = _section(raw["datasets"][d], f"{path}: datasets.{d}")
        if isinstance(values.get("exclude"), list):
            values["exclude"] = [names.get(x, x) if isinstance(x, str) else x for x in values["exclude"]]
        datasets[d] = build(DataConfig, values, where=f"{path}: datasets.{d}")
    recite_cfg = build(ReciteConfig, _section(raw.get("recite"), f"{path}: recite"), where=f"{path}: recite")
    extract_cfg = _probe_section(ExtractConfig, raw.get("extract"), f"{path}: extract")
    lens_cfg = _lens_section(path, raw.get("lens"), names)
    train_base = _section(raw.get("train"), f"{path}: train")
    models = {m: _model_entry(path, m, raw["models"][m], train_base) for m in raw["models"]}
    executor = _section(raw.get("executor"), f"{path}: executor")
    build(ExecutorConfig, executor, where=f"{path}: executor")  # validate now
    stop_after = raw.get("stop_after", "recite")
    if stop_after not in ("train", "recite"):
        raise RecitebenchError(f"{path}: stop_after must be train or recite, got {stop_after!r}")
    runs = []
    for d, m, extra in _grid(path, raw.get("grid"), datasets, models):
        mcfg, tvals, gpus = models[m]
        run_path = rdir / f"{d}__{m}"
        tcfg = build(
            TrainConfig,
            {**tvals, **extra, "data": str(rdir / "data" / d), "out": str(run_path)},
            where=f"{path}: grid [{d}, {m}]",
        )
        runs.append(PlannedRun(f"{d}__{m}", d, m, datasets[d], mcfg, tcfg, recite_cfg, RunDir(run_path), gpus,
                               stop_after, extract_cfg, lens_cfg))
    runs += _retention_runs(path, raw.get("retention"), runs, models, datasets, rdir)
    spec = Spec(str(path), name, rdir, datasets, runs, raw.get("description", ""), executor,
                _section(raw.get("capacity"), f"{path}: capacity"), stop_after, raw)
    needed_datasets(spec, runs)  # a circle of excludes fails here
    return spec


def resolve_paths(raw: dict, spec_path: Path) -> dict:
    """A copy of the spec with every relative input path (models' model and tokenizer, datasets' source and
    tokenizer) read from the spec file's folder; a path that does not exist there is an error naming it."""
    base = spec_path.resolve().parent
    out = dict(raw)
    out["models"] = {m: _with_paths(v, base, ("model", "tokenizer"), f"{spec_path}: models.{m}")
                     for m, v in raw["models"].items()}
    out["datasets"] = {d: _with_paths(v, base, ("source", "tokenizer"), f"{spec_path}: datasets.{d}")
                       for d, v in raw["datasets"].items()}
    return out


def _with_paths(entry, base: Path, keys: tuple[str, ...], where: str):
    if not isinstance(entry, dict):
        return entry  # _section reports it
    entry = dict(entry)
    for key in keys:
        if isinstance(entry.get(key), str):
            entry[key] = spec_relative(entry[key], base, f"{where}.{key}")
    return entry


def spec_relative(ref: str, base: Path, where: str) -> str:
    """An existing path (absolute, or relative to the spec's folder `base`) as an absolute path; presets, hub ids
    and corpus names (shared:, hf:) unchanged; a missing path is an error."""
    if ref in MODEL_PRESETS or ref.startswith(("shared:", "hf:")):
        return ref
    p = Path(ref).expanduser()
    cand = p if p.is_absolute() else base / p
    if cand.exists():
        return str(cand.resolve())
    if looks_like_path(ref) or where.endswith(".source"):
        raise RecitebenchError(f"{where}: {cand} not found (a relative path is read from the spec's folder)")
    return ref  # a hub id (OWNER/NAME) or a name the config rejects


def _section(value, where: str) -> dict:
    """A spec section must be a mapping (or absent)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecitebenchError(f"{where}: must be a mapping of field: value, got {type(value).__name__} {value!r:.40}")
    return dict(value)


def _model_entry(path: Path, name: str, values, train_base: dict) -> tuple[ModelConfig, dict, float | None]:
    """(model config, train values, GPUs per run) of one `models:` entry; its optional `train:` overrides the
    shared one."""
    mvals = _section(values, f"{path}: models.{name}")
    overrides = _section(mvals.pop("train", None), f"{path}: models.{name}.train")
    _capacity_override(mvals.pop("capacity", None), f"{path}: models.{name}.capacity")
    gpus = mvals.pop("gpus_per_run", None)
    if gpus is not None:
        build(ExecutorConfig, {"gpus_per_run": float(gpus) if isinstance(gpus, int) else gpus},
              where=f"{path}: models.{name}")
        gpus = float(gpus)
    mcfg = build(ModelConfig, mvals, where=f"{path}: models.{name}")
    tvals = {**train_base, **overrides}
    for forbidden in ("data", "out", "resume"):
        if forbidden in tvals:
            raise RecitebenchError(f"{path}: train.{forbidden} is set by the experiment runner; remove it")
    build(TrainConfig, tvals, where=f"{path}: models.{name}.train")  # validate now, before anything runs
    return mcfg, tvals, gpus


def _probe_section(cls: type, value, where: str):
    """The spec's `extract:` or `lens:` section: the probe every run gets after its recitation (its own poems)."""
    if value is None:
        return None
    values = _section(value, where)
    for fixed in ("run", "data", "out"):
        if fixed in values:
            raise RecitebenchError(f"{where}.{fixed} is set by the experiment runner (each run, its own poems); "
                                   f"remove it")
    return build(cls, values, where=where)


def _lens_section(path: Path, value, names: dict[str, str]) -> LensConfig | None:
    """The `lens:` section; its `heldout` names one of the spec's datasets (built with the grid's) or an existing
    dataset folder: a missing one fails here, not after every run has trained."""
    cfg = _probe_section(LensConfig, value, f"{path}: lens")
    if cfg is None or cfg.heldout is None:
        return cfg
    if cfg.heldout in names:
        return replace(cfg, heldout=names[cfg.heldout])
    try:
        load_frozen(cfg.heldout)
    except RecitebenchError as e:
        raise RecitebenchError(f"{path}: lens.heldout: {cfg.heldout!r} is neither one of the spec's datasets "
                               f"({', '.join(names)}) nor a dataset folder ({e})") from None
    return cfg


def needed_datasets(spec: Spec, runs: list[PlannedRun]) -> list[str]:
    """The datasets the runs read (their own, a lens's held-out set, and what those leave out), each after the
    datasets its `exclude` names, so a held-out draw is built after the set it must avoid."""
    folders = {str(spec.data_dir(d)): d for d in spec.datasets}
    order: list[str] = []

    def visit(d: str, path: tuple[str, ...] = ()) -> None:
        if d in path:  # each would have to be built before the other
            raise RecitebenchError(f"{spec.path}: datasets.{d}.exclude: a circle ({' -> '.join((*path, d))})")
        if d in order:
            return
        for x in spec.datasets[d].exclude:
            if x in folders:
                visit(folders[x], (*path, d))
        order.append(d)

    for d in sorted({r.dataset for r in runs}
                    | {folders[r.lens_cfg.heldout] for r in runs if r.lens_cfg and r.lens_cfg.heldout in folders}):
        visit(d)
    return order


def _retention_runs(path: Path, value, runs: list[PlannedRun], models: dict, datasets: dict,
                    rdir: Path) -> list[PlannedRun]:
    """Phase B of the `retention:` section: for every grid run on `first`, a run on `then` that continues from its
    final model (built when it starts: the model does not exist yet) with snapshots."""
    if value is None:
        return []
    where = f"{path}: retention"
    cfg = build(RetentionSpec, _section(value, where), where=where)
    for key in ("first", "then"):
        if getattr(cfg, key) not in datasets:
            raise RecitebenchError(f"{where}.{key}: {getattr(cfg, key)!r} is not one of the spec's datasets "
                                   f"({', '.join(datasets)})")
    phase_a = [r for r in runs if r.dataset == cfg.first]
    if not phase_a:
        raise RecitebenchError(f"{where}.first: no grid run trains on {cfg.first!r}; add [{cfg.first}, MODEL] pairs")
    out = []
    for a in phase_a:
        _, tvals, gpus = models[a.model_name]
        name = f"{cfg.first}.then.{cfg.then}__{a.model_name}"
        fixed = {"snapshot_every": cfg.snapshot_every, "snapshot_at": cfg.snapshot_at,
                 "data": str(rdir / "data" / cfg.then), "out": str(rdir / name)}
        tcfg = build(TrainConfig, {**tvals, **cfg.train, **fixed},
                     where=f"{where}: {name}")
        out.append(PlannedRun(name, cfg.then, a.model_name, datasets[cfg.then], a.model_cfg, tcfg, a.recite_cfg,
                              RunDir(rdir / name), gpus, "recite", None, None, a, cfg))
    return out


def _capacity_override(value, where: str) -> None:
    """A model's own learning-rate grid and dataset sizes for `recitebench capacity` (the best rate falls as models
    grow; a small model's 2x set holds a smaller share of its capacity, so its plateau may need an 8x set)."""
    extra = _section(value, where)
    if set(extra) - OWN_CAPACITY_KEYS:
        raise RecitebenchError(f"{where}: only {', '.join(f'`{k}`' for k in sorted(OWN_CAPACITY_KEYS))} may be "
                               f"set per model, not {sorted(set(extra) - OWN_CAPACITY_KEYS)[0]!r}")
    if "rate_points" in extra and extra["rate_points"] not in RATE_POINTS:
        raise RecitebenchError(f"{where}.rate_points: one of {', '.join(RATE_POINTS)}, got {extra['rate_points']!r}")
    for key, what in (("lrs", "learning rates"), ("size_multiples", "multiples of the predicted capacity")):
        vals = extra.get(key)
        if key in extra and (not isinstance(vals, list) or not vals or vals != sorted(set(vals))
                             or any(not isinstance(x, (int, float)) or isinstance(x, bool) or not x > 0
                                    for x in vals)):
            raise RecitebenchError(f"{where}.{key}: a list of increasing positive {what}, got {vals!r}")


OWN_CAPACITY_KEYS = {"lrs", "rate_points", "size_multiples"}
RATE_POINTS = CapacityConfig.__dataclass_fields__["rate_points"].metadata["choices"]


def _grid(path: Path, grid, datasets: dict, models: dict) -> list[tuple[str, str, dict]]:
    """(dataset, model, train overrides of this pair) for every run; a pair may carry a third element, a mapping of
    TrainConfig fields for that run alone (e.g. more epochs for a smaller dataset)."""
    if grid is None:
        return [(d, m, {}) for d in datasets for m in models]
    if not isinstance(grid, list):
        raise RecitebenchError(f"{path}: grid must be a list of [dataset, model] pairs")
    pairs = []
    for pair in grid:
        if not (isinstance(pair, list) and len(pair) in (2, 3) and (len(pair) == 2 or isinstance(pair[2], dict))):
            raise RecitebenchError(f"{path}: grid entries must be [dataset, model] pairs (optionally with a mapping "
                                   f"of train overrides), got {pair!r}")
        d, m = pair[:2]
        extra = dict(pair[2]) if len(pair) == 3 else {}
        for forbidden in ("data", "out", "resume"):
            if forbidden in extra:
                raise RecitebenchError(f"{path}: grid [{d}, {m}]: train.{forbidden} is set by the experiment runner")
        if d not in datasets:
            raise RecitebenchError(f"{path}: grid names unknown dataset {d!r}")
        if m not in models:
            raise RecitebenchError(f"{path}: grid names unknown model {m!r}")
        pairs.append((d, m, extra))
    return pairs
