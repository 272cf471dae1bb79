"""The run index: one SQLite table in RUNS_DIR/index.sqlite that the grid runner keeps up to date, for tools
that query many runs at once. The run folders stay the truth; `ls` and `compare` read those."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..rundir import RunDir, key_numbers

COLUMNS = (
    "name",
    "path",
    "dataset",
    "model",
    "n",
    "exact_match",
    "ci_low",
    "ci_high",
    "epochs",
    "final_loss",
    "train_seconds",
    "recite_seconds",
    "certified",
    "generated",
    "updated_at",
)


def update_index(runs_dir: Path, run: RunDir) -> None:
    if run.status() != "done":
        return
    row = key_numbers(run)
    con = sqlite3.connect(Path(runs_dir) / "index.sqlite")
    try:
        with con:
            key = {"name": " PRIMARY KEY"}
            con.execute(f"CREATE TABLE IF NOT EXISTS runs ({', '.join(c + key.get(c, '') for c in COLUMNS)})")
            con.execute(
                f"INSERT OR REPLACE INTO runs VALUES ({', '.join('?' for _ in COLUMNS)})", [row[c] for c in COLUMNS]
            )
    finally:
        con.close()
