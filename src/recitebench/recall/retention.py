"""Retention and interference: how the memory of one set changes while a model goes on learning another.

Train on set A (a run), then continue on a disjoint set B from A's model with snapshots (`train --data B --model
RUN_A/model --snapshot-every K`): `recitebench retention --run RUN_B --data A` recites A with every snapshot (the
whole recitation: exact, the four graded outcomes, bits against `--reference`) into RUN_B/retention/A/SNAPSHOT/, and
writes RUN_B/retention/A/retention.json, the curve over epochs: exact recall with its Wilson interval, the outcome
counts (how correct poems become minor, then severe distortions, then forgotten: the paper's categories as a
trajectory), and memorised bits. Continuing on A itself instead of B is the control: its curve stays at the top.
"""

from __future__ import annotations

from pathlib import Path

from ..config import build, to_dict
from ..errors import RecitebenchError
from ..io import write_json
from ..provenance import provenance
from ..rundir import RunDir
from ..schema import Results, read_results
from .config import ReciteConfig
from .recite import recite

FORMAT = "recitebench-retention/1"


def retention(run: str | Path, data: str | Path, *, reference: str = "none", device: str = "auto",
              log=print) -> dict:
    """Recite `data` with every snapshot of `run`; RUN/retention/NAME/retention.json (NAME: the dataset folder's)."""
    rd = RunDir(run)
    snaps = sorted(p.name for p in rd.snapshots.glob("epoch_*") if (p / "config.json").is_file())
    if not snaps:
        raise RecitebenchError(f"{rd.path}: no snapshots (train it with --snapshot-every K)")
    folder = rd.retention / Path(data).resolve().name
    points = []
    for name in snaps:
        rcfg = build(ReciteConfig, {"run": str(rd.path), "data": str(data), "snapshot": name, "reference": reference,
                                    "heldout": "none", "device": device, "out": str(folder / name)},
                     where="retention")
        res = _recited(rcfg, folder / name) or recite(rcfg, None, log=lambda m, name=name: log(f"{name}: {m}"))
        points.append({"snapshot": name, "epoch": int(name.split("_")[1]), "exact": res.exact_match,
                       "exact_ci95": res.exact_match_ci95, "outcomes": res.outcomes, "n": res.n,
                       "memorized_bits": (res.memory or {}).get("memorized_bits")})
    result = {"kind": FORMAT, "run": str(rd.path), "data": str(Path(data).resolve()), "reference": reference,
              "trained_on": rd.read_config().get("dataset", {}), "points": points,
              "recite": to_dict(build(ReciteConfig, {"reference": reference})), **provenance()}
    write_json(folder / "retention.json", result)
    log(f"retention of {data}: exact {points[0]['exact']:.1%} at epoch {points[0]['epoch']} -> "
        f"{points[-1]['exact']:.1%} at epoch {points[-1]['epoch']}; wrote {folder}/retention.json")
    return result


def _recited(rcfg: ReciteConfig, out: Path) -> Results | None:
    """A snapshot's recitation written before under the same settings (a retention cut short resumes where it
    stopped); None when there is none or it was made otherwise."""
    if not (out / "results.json").is_file():
        return None
    prior = read_results(out)
    return prior if (prior.config or {}).get("recite") == to_dict(rcfg) else None
