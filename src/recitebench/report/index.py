"""The run index: one SQLite table in RUNS_DIR/index.sqlite, for `recitebench ls` and `compare`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ..errors import RecitebenchError

COLUMNS = ("name", "path", "dataset", "model", "n", "exact_match", "ci_low", "ci_high", "epochs", "final_loss",
           "train_seconds", "recite_seconds", "certified", "generated", "updated_at")


def _connect(runs_dir: Path) -> sqlite3.Connection:
    con = sqlite3.connect(runs_dir / "index.sqlite")
    con.execute(f"CREATE TABLE IF NOT EXISTS runs ({', '.join(c + (' PRIMARY KEY' if c == 'name' else '') for c in COLUMNS)})")
    return con


def summarize_run(run: Path) -> dict:
    """Key numbers of one finished run, read from its files."""
    res = json.loads((run / "recite" / "results.json").read_text(encoding="utf-8"))
    summ_path = run / "train_summary.json"
    summ = json.loads(summ_path.read_text(encoding="utf-8")) if summ_path.is_file() else {}
    final = summ.get("final", {})
    name = run.name
    dataset, _, model = name.partition("__")
    return {"name": name, "path": str(run), "dataset": dataset, "model": model or res["model"].get("model"),
            "n": res["n"], "exact_match": res["exact_match"], "ci_low": res["exact_match_ci95"][0],
            "ci_high": res["exact_match_ci95"][1], "epochs": final.get("epoch"), "final_loss": final.get("loss"),
            "train_seconds": summ.get("train_seconds"), "recite_seconds": res["timings_s"]["total"],
            "certified": res["decided_by"]["certified"], "generated": res["decided_by"]["generated"],
            "updated_at": res.get("created_at")}


def update_index(runs_dir: Path, run: Path) -> None:
    row = summarize_run(run)
    with _connect(runs_dir) as con:
        con.execute(f"INSERT OR REPLACE INTO runs VALUES ({', '.join('?' for _ in COLUMNS)})", [row[c] for c in COLUMNS])


def list_runs(runs_dir: Path) -> list[dict]:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise RecitebenchError(f"{runs_dir}: no such runs folder")
    # The files are the truth; the index is refreshed from any finished run it does not know yet.
    for res in sorted(runs_dir.glob("*/recite/results.json")):
        update_index(runs_dir, res.parent.parent)
    with _connect(runs_dir) as con:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY dataset, model")]


def format_table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    cells = [[h for h, _ in cols]] + [[_fmt(r.get(k), k) for _, k in cols] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(cols))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v, key: str) -> str:
    if v is None:
        return "-"
    if key in ("exact_match", "ci_low", "ci_high"):
        return f"{100 * v:.1f}%"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
