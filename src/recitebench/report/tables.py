"""Plain-text tables of runs for `recitebench ls` and `compare`, read from the run folders (nothing written)."""

from __future__ import annotations

from pathlib import Path

from ..errors import RecitebenchError
from ..io import read_json
from ..rundir import RunDir, key_numbers
from ..schema import read_samples
from ..stats import bootstrap_ci

LS_COLUMNS = [
    ("run", "name"),
    ("status", "status"),
    ("n", "n"),
    ("exact", "exact_match"),
    ("ci low", "ci_low"),
    ("ci high", "ci_high"),
    ("epochs", "epochs"),
    ("loss", "final_loss"),
    ("train s", "train_seconds"),
    ("recite s", "recite_seconds"),
    ("certified", "certified"),
    ("generated", "generated"),
]


def list_runs(runs_dir: Path) -> list[dict]:
    """Every run in a folder, finished or not, sorted by name: key numbers of the finished ones, the status of the
    others (queued: waiting in a `run` invocation; running: a live worker holds its lock; trained, interrupted,
    partial, failed: from its files)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise RecitebenchError(f"{runs_dir}: no such runs folder")
    done = [key_numbers(RunDir(res.parent.parent)) for res in sorted(runs_dir.glob("*/recite/results.json"))]
    rows = [{**r, "status": "done"} for r in done]
    rows += [_unfinished(runs_dir, name) for name in _unfinished_names(runs_dir, {r["name"] for r in done})]
    return sorted(rows, key=lambda r: r["name"])


def _unfinished_names(runs_dir: Path, done: set[str]) -> list[str]:
    started = {p.parent.name for p in runs_dir.glob("*/config.yaml")} | {p.parent.parent.name
                                                                         for p in runs_dir.glob("*/logs/run.log")}
    queue = runs_dir / "queue.json"
    queued = set(read_json(queue).get("runs", [])) if queue.is_file() else set()
    return sorted((started | queued) - done)


def _unfinished(runs_dir: Path, name: str) -> dict:
    from ..lock import RunLock  # reads the lock file only

    run = RunDir(runs_dir / name)
    lock = RunLock(runs_dir, name)
    status = run.status()
    if lock.owner() and not lock.stale():
        status = "running"
    elif status == "todo":
        status = "queued"
    final = run.read_summary().get("final") or (run.read_metrics() or [{}])[-1]
    dataset, model = run.labels()
    return {"name": name, "status": status, "dataset": dataset, "model": model, "epochs": final.get("epoch"),
            "final_loss": final.get("loss")}


def describe_runs(runs_dir: Path) -> str:
    """`recitebench ls RUNS_DIR`."""
    rows = list_runs(Path(runs_dir))
    return format_table(rows) if rows else f"{runs_dir}: no runs yet"


def format_table(rows: list[dict], cols: list[tuple[str, str]] = LS_COLUMNS) -> str:
    cells = [[h for h, _ in cols]] + [[fmt(r.get(k), k) for _, k in cols] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(cols))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def side_by_side(paths: list[str]) -> str:
    """One column per run, one row per key number, and the paired difference against the first run."""
    runs = [RunDir(p) for p in paths]
    seen = [r.path.resolve() for r in runs]
    twice = next((r for r, here in zip(runs, seen) if seen.count(here) > 1), None)
    if twice is not None:
        raise RecitebenchError(f"{twice.path}: named twice; compare needs the same run only once (a run minus "
                               f"itself is 0 by construction)")
    for r in runs:
        if r.status() != "done":
            raise RecitebenchError(f"{r.path}: not a finished run (no recite/results.json)")
    rows = [key_numbers(r) for r in runs]
    keys = ["dataset", "model"] + [k for _, k in LS_COLUMNS if k not in ("name", "status")]
    width = max(len(k) for k in keys)
    cols = [max(len(s) for s in [r["name"], *(fmt(r.get(k), k) for k in keys)]) for r in rows]  # widest cell
    paired = paired_row(runs)
    controls = control_rows(runs)
    width = max([width, len(PAIRED_LABEL), *(len(label) for label in controls)])
    cols = [max(c, len(x), *(len(v[j]) for v in controls.values())) for j, (c, x) in enumerate(zip(cols, paired))]
    lines = [" " * width + "  " + "  ".join(r["name"].ljust(c) for r, c in zip(rows, cols))]
    for k in keys:
        lines.append(k.ljust(width) + "  " + "  ".join(fmt(r.get(k), k).ljust(c) for r, c in zip(rows, cols)))
    for label, cells in controls.items():
        lines.append(label.ljust(width) + "  " + "  ".join(x.ljust(c) for x, c in zip(cells, cols)))
    lines.append(PAIRED_LABEL.ljust(width) + "  " + "  ".join(x.ljust(c) for x, c in zip(paired, cols)))
    return "\n".join(lines)


PAIRED_LABEL = "vs first, poem-paired (one run each: no seed noise) [95%]"


def control_rows(runs: list[RunDir]) -> dict[str, list[str]]:
    """The held-out control of each run that has one (results.json `controls`): gains per poem against its
    reference, members and non-members, and membership AUCs; {} when no run has a control set."""
    ctl = [read_json(r.recite / "results.json").get("controls") or {} for r in runs]
    if not any(ctl):
        return {}

    def gain(c: dict, side: str) -> str:
        v = (c.get(side) or {}).get("gain_bits_per_poem")
        return "-" if v is None else f"{v:+,.1f}"

    def auc(c: dict, kind: str) -> str:
        a = (c.get("mia_auc") or {}).get(kind) or {}
        return "-" if a.get("auc") is None else f"{a['auc']:.3f} [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}]"

    return {"member gain, bits/poem (vs reference)": [gain(c, "members") for c in ctl],
            "held-out gain, bits/poem (generalisation)": [gain(c, "nonmembers") for c in ctl],
            "membership AUC, loss [95%]": [auc(c, "loss") for c in ctl],
            "membership AUC, ref-calibrated [95%]": [auc(c, "calibrated") for c in ctl]}


def paired_row(runs: list[RunDir]) -> list[str]:
    """Each run's exact recall minus the first run's, poem by poem, where both recited the same dataset: the
    difference with a paired bootstrap interval over poems (tighter than comparing two separate intervals)."""
    sha = [read_json(r.recite / "results.json").get("dataset", {}).get("poems_sha256") for r in runs]
    first = _exact_by_poem(runs[0])
    cells = ["-"]
    for r, h in zip(runs[1:], sha[1:]):
        if h is None or h != sha[0]:
            cells.append("other dataset")
            continue
        other = _exact_by_poem(r)
        if first is None or other is None:  # a run copied without its per-poem log (e.g. docs/study_results)
            cells.append("no samples.jsonl")
            continue
        d, lo, hi = paired_difference(first, other)
        cells.append(f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]")
    return cells


def _exact_by_poem(run: RunDir) -> dict[str, bool] | None:
    samples = read_samples(run.recite)
    return None if samples is None else {s.id: s.exact for s in samples}


def paired_difference(first: dict[str, bool], other: dict[str, bool], resamples: int = 2000, seed: int = 0
                      ) -> tuple[float, float, float]:
    """(mean of other - first, 2.5th and 97.5th percentiles of its bootstrap over the poems both have)."""
    d = [float(other[i]) - float(first[i]) for i in sorted(first.keys() & other.keys())]
    if not d:
        return 0.0, 0.0, 0.0
    lo, hi = bootstrap_ci(d, resamples, seed)
    return sum(d) / len(d), lo, hi


def fmt(v, key: str) -> str:
    if v is None:
        return "-"
    if key in ("exact_match", "ci_low", "ci_high"):
        return f"{100 * v:.1f}%"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
