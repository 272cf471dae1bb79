"""`recitebench study SPEC`: the verdict table of a study, computed from its run folders by one rule.

A study spec (configs/verdicts.yaml) names claims; a claim compares two arms (the configuration the claim says
memorises more, and the other one). An arm is a configuration run at several seeds at one learning rate, plus the
learning-rate grid it was chosen from (one run per rate on the selection seed). From the runs' results.json and
train_summary.json alone:

- each arm's exact recall over its seeds, with an interval that stays in [0, 1] (a logit-scale t-interval over
  seeds; Wilson over poems for a single run);
- each claim's difference (better - other) with a hierarchical bootstrap that resamples seeds, then poems, at the
  family-wise level (Bonferroni over the claims tested), and Welch's t-test over the seeds' proportions with Holm's
  adjustment across the claims;
- design checks: at least two seeds per arm, a best rate inside its grid (three or more rates), the seeds run at the
  grid's best rate, and whether the selection run is among the reported seeds (then the rate was chosen on the
  evaluation set itself, which the table says);
- the verdict (stats.claim_verdict): supported / not supported / inconclusive from the statistics, inconclusive when
  a design check fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..config import load_yaml
from ..errors import RecitebenchError
from ..stats import (
    claim_verdict,
    hierarchical_difference,
    holm,
    seed_proportion_interval,
    welch_pvalue,
    wilson_interval,
)

KIND = "recitebench-study/1"


@dataclass(frozen=True)
class Run:
    path: str  # relative to the study's results folder
    lr: float
    seed: int | None
    hits: int
    n: int


@dataclass
class Arm:
    label: str
    seeds: list[Run]
    grid: list[Run] = field(default_factory=list)


@dataclass
class Claim:
    name: str
    claim: str
    better: Arm  # the configuration the claim says memorises more
    other: Arm
    effect_of_interest: float


def _read_run(root: Path, rel: str, where: str) -> Run:
    folder = root / rel
    try:
        res = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        summary = json.loads((folder / "train_summary.json").read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise RecitebenchError(f"{where}: {rel}: no {Path(e.filename).name} in {folder}") from None
    except json.JSONDecodeError as e:
        raise RecitebenchError(f"{where}: {rel}: not JSON ({e.msg}, line {e.lineno})") from None
    return Run(rel, float(summary["lr"]), res.get("seed"), int(res["n_correct"]), int(res["n"]))


def _arm(root: Path, raw, where: str) -> Arm:
    if not isinstance(raw, dict) or not raw.get("seeds"):
        raise RecitebenchError(f"{where}: an arm needs `label` and `seeds` (run folders); `grid` is optional")
    unknown = set(raw) - {"label", "seeds", "grid"}
    if unknown:
        raise RecitebenchError(f"{where}: unknown field {sorted(unknown)[0]!r} (fields: label, seeds, grid)")
    seeds = [_read_run(root, r, f"{where}.seeds") for r in raw["seeds"]]
    if len({r.lr for r in seeds}) > 1:
        raise RecitebenchError(f"{where}.seeds: the seeds of one arm must share a learning rate, got "
                               f"{sorted({r.lr for r in seeds})}")
    grid = [_read_run(root, r, f"{where}.grid") for r in raw.get("grid") or []]
    if len({r.lr for r in grid}) < len(grid):
        raise RecitebenchError(f"{where}.grid: one run per learning rate")
    return Arm(str(raw.get("label") or where), seeds, grid)


def load_study(path: str | Path) -> tuple[dict, list[Claim]]:
    """The spec's settings and its claims, every run folder read (relative to the spec's `results`)."""
    path = Path(path)
    raw = load_yaml(path)
    unknown = set(raw) - {"name", "description", "results", "alpha", "effect_of_interest", "claims"}
    if unknown:
        raise RecitebenchError(f"{path}: unknown field {sorted(unknown)[0]!r}")
    if not raw.get("results") or not isinstance(raw.get("claims"), dict) or not raw["claims"]:
        raise RecitebenchError(f"{path}: a study needs `results` (a folder of runs) and `claims`")
    root = (path.parent / raw["results"]).resolve()
    if not root.is_dir():
        raise RecitebenchError(f"{path}: results: {raw['results']} is not a folder (relative to the spec file)")
    alpha = float(raw.get("alpha", 0.05))
    if not 0 < alpha < 1:
        raise RecitebenchError(f"{path}: alpha must be in (0, 1), got {alpha}")
    claims = []
    for name, c in raw["claims"].items():
        where = f"{path}: claims.{name}"
        if not isinstance(c, dict) or not {"better", "other"} <= set(c):
            raise RecitebenchError(f"{where}: a claim needs `better` and `other` arms")
        effect = float(c.get("effect_of_interest", raw.get("effect_of_interest", 0.02)))
        claims.append(Claim(name, str(c.get("claim", name)), _arm(root, c["better"], f"{where}.better"),
                            _arm(root, c["other"], f"{where}.other"), effect))
    return {"name": raw.get("name", path.stem), "alpha": alpha, "results": str(root), "spec": str(path)}, claims


def design_problems(arm: Arm) -> list[str]:
    """What keeps an arm from carrying a verdict (empty: none)."""
    out = []
    if len(arm.seeds) < 2:
        out.append(f"{arm.label}: one seed (no seed variance)")
    if arm.grid:
        rates = sorted(r.lr for r in arm.grid)
        best = max(arm.grid, key=lambda r: r.hits / r.n)
        if len(rates) < 3:
            out.append(f"{arm.label}: a grid of {len(rates)} rates cannot bracket the best")
        elif best.lr in (rates[0], rates[-1]):
            out.append(f"{arm.label}: best rate {best.lr:g} at the grid's edge ({rates[0]:g}-{rates[-1]:g})")
        if best.lr != arm.seeds[0].lr:
            out.append(f"{arm.label}: seeds at {arm.seeds[0].lr:g}, the grid's best is {best.lr:g}")
    else:
        out.append(f"{arm.label}: no learning-rate grid")
    return out


def chosen_on_evaluation_set(arm: Arm) -> bool:
    """The reported seeds include the grid run their rate was picked by (picked on the very poems it is scored on)."""
    return any(r.path in {g.path for g in arm.grid} for r in arm.seeds)


def arm_summary(arm: Arm) -> dict:
    if len(arm.seeds) == 1:
        r = arm.seeds[0]
        low, high = wilson_interval(r.hits, r.n)
        iv = {"mean": r.hits / r.n, "low": low, "high": high, "per_seed": [r.hits / r.n],
              "method": "Wilson over poems (one seed)"}
    else:
        iv = seed_proportion_interval([r.hits for r in arm.seeds], [r.n for r in arm.seeds])
    return {"label": arm.label, "lr": arm.seeds[0].lr, "runs": [r.path for r in arm.seeds], **iv,
            "grid": {f"{r.lr:g}": r.hits / r.n for r in sorted(arm.grid, key=lambda r: r.lr)},
            "chosen_on_evaluation_set": chosen_on_evaluation_set(arm)}


def _hits(arm: Arm) -> list[list[float]]:
    """Per seed, its poems' outcomes as 0/1 in any order: an unpaired bootstrap over poems depends on the count only."""
    return [[1.0] * r.hits + [0.0] * (r.n - r.hits) for r in arm.seeds]


def evaluate(settings: dict, claims: list[Claim], resamples: int = 4000) -> dict:
    """Every claim's arms, difference, tests and verdict (the study's JSON)."""
    alpha = settings["alpha"]
    tested = [c for c in claims if min(len(c.better.seeds), len(c.other.seeds)) >= 2]
    level = 1 - alpha / max(1, len(tested))  # Bonferroni: the intervals hold together over the claims tested
    pvals = {c.name: welch_pvalue([r.hits / r.n for r in c.better.seeds], [r.hits / r.n for r in c.other.seeds])
             for c in tested}
    adjusted = dict(zip(pvals, holm(list(pvals.values())))) if pvals else {}
    out = []
    for c in claims:
        diff = hierarchical_difference(_hits(c.other), _hits(c.better), resamples=resamples, seed=0, confidence=level)
        problems = design_problems(c.better) + design_problems(c.other)
        word, reason = claim_verdict(diff["low"], diff["high"], c.effect_of_interest, adjusted.get(c.name), alpha,
                                     problems)
        out.append({"name": c.name, "claim": c.claim, "better": arm_summary(c.better), "other": arm_summary(c.other),
                    "difference": diff, "confidence": level, "p_welch": pvals.get(c.name),
                    "p_holm": adjusted.get(c.name), "effect_of_interest": c.effect_of_interest,
                    "design_problems": problems, "verdict": word, "reason": reason})
    return {"kind": KIND, **settings, "claims_tested": len(tested), "resamples": resamples, "claims": out}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _arm_cell(a: dict) -> str:
    iv = f"[{_pct(a['low'])}, {_pct(a['high'])}]" if a["low"] is not None else ""
    seeds = " / ".join(_pct(p) for p in a["per_seed"])
    mark = "; rate chosen on the evaluation set" if a["chosen_on_evaluation_set"] else ""
    return f"{a['label']} @ {a['lr']:g}: **{_pct(a['mean'])} %** {iv} (seeds {seeds}{mark})"


def markdown(study: dict) -> str:
    """The verdict table STUDY.md carries verbatim (tests/test_study_numbers.py regenerates and compares it)."""
    lines = [f"<!-- generated by `recitebench study {Path(study['spec']).name}`: do not edit by hand -->", "",
             "| claim | memorises more (claimed) | other | difference, points [family-wise 95 %] | Welch p (Holm) | "
             "design | verdict |", "|---|---|---|---|---|---|---|"]
    for c in study["claims"]:
        d = c["difference"]
        p = "-" if c["p_welch"] is None else f"{c['p_welch']:.3g} ({c['p_holm']:.3g})"
        design = "; ".join(c["design_problems"]) or "ok"
        lines.append(f"| {c['claim']} | {_arm_cell(c['better'])} | {_arm_cell(c['other'])} | "
                     f"{100 * d['difference']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}] | {p} | "
                     f"{design} | **{c['verdict']}**: {c['reason']} |")
    lines += ["", f"Arms: exact recall over seeds with a logit-scale 95 % t-interval (Wilson over poems for one run). "
              f"Differences: hierarchical bootstrap (seeds, then poems; {study['resamples']:,} resamples) at "
              f"{100 * study['claims'][0]['confidence']:.2f} % (Bonferroni over the {study['claims_tested']} claims "
              f"with two or more seeds per arm); p: Welch's t-test over the seeds' proportions, Holm-adjusted "
              f"across them; alpha {study['alpha']:g}."]
    return "\n".join(lines) + "\n"
