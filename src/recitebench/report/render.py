"""report.html (self-contained, offline) and its Markdown twin report.md, from a runs folder."""

from __future__ import annotations

import base64
import html
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import RecitebenchError
from ..io import atomic_path
from ..provenance import now_iso
from ..schema import OUTCOMES
from . import plots
from .collect import RunView, collect
from .diff import diff_html, diff_text
from .explorer import explorer_html

FIGURES = {"memory_curves": "memory curves", "accuracy_by_length": "accuracy by length", "outcomes": "outcomes",
           "extraction": "extraction probe", "dose": "exposure dose", "retention": "retention"}

CSS = """body{font-family:'WenQuanYi Micro Hei','Noto Sans CJK SC','Noto Sans SC',sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#111}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #999;
padding:4px 8px;text-align:left}th{background:#eee}mark{background:#ddd;text-decoration:underline}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:8px;
margin:6px 0 14px}.pair div{border:1px solid #ccc;padding:6px;white-space:normal;font-size:14px}img{max-width:100%}
code{font-size:12px}small{color:#555}del{background:#f3c4c4}ins{background:#c4e8c4;text-decoration:none}
mark.bytes{background:#f0a030;outline:1px solid #a05000}mark.ctl{background:#c0d0ff;font-size:70%}
.xbar{margin:8px 0}table.x th{cursor:pointer}
table.x tbody tr{cursor:pointer}table.x tbody tr:hover{background:#f4f4f4}"""
EXAMPLES_SEED = 0  # which poems of a class the report shows: the same ones every time it is rendered


def render(runs_dir: str | Path, title: str | None = None) -> Path:
    """Write report.html, report.md and report_files/*.png; return the HTML path."""
    runs_dir = Path(runs_dir)
    runs = collect(runs_dir)
    if not runs:
        raise RecitebenchError(f"{runs_dir}: no finished runs (no */recite/results.json) to report on")
    title = title or f"recitebench report: {runs_dir.name}"
    figs = {
        "memory_curves": plots.memory_curves(runs),
        "accuracy_by_length": plots.accuracy_by_length(runs),
        "outcomes": plots.outcome_bars(runs),
    }
    for sec in present_sections(runs):
        if sec.plot is not None:
            figs[sec.key] = sec.plot(runs)
    files = runs_dir / "report_files"
    files.mkdir(exist_ok=True)
    for name, png in figs.items():
        with atomic_path(files / f"{name}.png") as tmp:
            tmp.write_bytes(png)
    with atomic_path(runs_dir / "report.html") as tmp:
        tmp.write_text(html_report(runs, runs_dir, title, figs), encoding="utf-8")
    with atomic_path(runs_dir / "report.md") as tmp:
        tmp.write_text(markdown_report(runs, runs_dir, title), encoding="utf-8")
    return runs_dir / "report.html"


def extraction_table(runs: list[RunView]) -> tuple[list[str], list[list[str]]]:
    """One row per run and k of the extraction probe."""
    rows = []
    for r in runs:
        for p in (r.extraction or {}).get("per_k", []):
            lo, hi = p["exact_ci95"]
            rows.append([r.name, str(p["k"]), str(r.extraction["config"]["continuation_tokens"]), str(p["n"]),
                         f"{100 * p['exact']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]", f"{p['token_match']:.3f}"])
    return ["run", "k", "m", "poems", "exact", "token match"], rows


def dose_table(runs: list[RunView]) -> tuple[list[str], list[list[str]]]:
    """One row per run and exposure level of a dose set."""
    rows = []
    for r in runs:
        dose = r.results.by_exposure
        for lv in dose.get("levels", []):
            lo, hi = lv["exact_ci95"]
            reach = f"{dose['exposures_for_50'] or '-'} / {dose['exposures_for_90'] or '-'}"
            frac = f"{lv['memorized_fraction']:.3f}" if "memorized_fraction" in lv else "-"
            total = str(lv.get("exposures_total", "-"))
            rows.append([r.name, str(lv["exposures"]), total, str(lv["n"]), f"{100 * lv['exact']:.1f}% "
                         f"[{100 * lo:.1f}, {100 * hi:.1f}]", frac, reach])
    return ["run", "exposures per epoch", "in all", "poems", "exact", "memorised share",
            "reaches 50% / 90% at (per epoch)"], rows


def lens_table(runs: list[RunView]) -> tuple[list[str], list[list[str]]]:
    """One row per run, poem set and layer of the logit lens."""
    rows = []
    for r in runs:
        for name in ("members", "heldout"):
            for lay in (r.lens or {}).get(name, []):
                rows.append([r.name, name, str(lay["layer"]), f"{lay['bits_per_poem']:.1f}",
                             f"{100 * lay['top1']:.1f}%"])
    return ["run", "poems", "layer", "bits per poem", "top-1"], rows


def retention_table(runs: list[RunView]) -> tuple[list[str], list[list[str]]]:
    """One row per run, recited set and snapshot."""
    rows = []
    for r in runs:
        for c in r.retention or []:
            for p in c["points"]:
                lo, hi = p["exact_ci95"]
                rows.append([r.name, c["data"].rsplit("/", 1)[-1], str(p["epoch"]),
                             f"{100 * p['exact']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]",
                             *(str(p["outcomes"][o]) for o in OUTCOMES)])
    return ["run", "recited set", "epoch", "exact", *OUTCOMES], rows


@dataclass(frozen=True)
class Section:
    """An optional report section: shown when any run holds its data, with its table and (if any) its plot."""

    key: str  # the figure's file name in report_files/
    title: str
    text: str
    present: Callable[[RunView], object]
    table: Callable[[list[RunView]], tuple[list[str], list[list[str]]]]
    plot: Callable[[list[RunView]], bytes] | None


SECTIONS = (
    Section("extraction", "Extraction probe", "After the prompt and the first k poem tokens, the next m tokens decoded "
            "greedily: exact share with 95% interval (Wilson) and the share of matching tokens (Pythia's memorisation "
            "score).", lambda r: r.extraction, extraction_table, plots.extraction_curves),
    Section("dose", "Exposure dose", "Exact recall (95% interval, Wilson) per exposure level of a dose set, and the "
            "fewest exposures per epoch that reach 50% / 90%.", lambda r: r.results.by_exposure, dose_table,
            plots.dose_curves),
    Section("lens", "Layer-wise probe (logit lens)", "Per layer, the poems' bits and the share of their tokens that "
            "are the lens's top-1 (the hidden state through the model's own final norm and head).",
            lambda r: r.lens, lens_table, None),
    Section("retention", "Retention", "Another set recited with every snapshot of a run (`recitebench retention`): "
            "exact recall and the graded outcomes over the run's epochs.", lambda r: r.retention, retention_table,
            plots.retention_curves),
)


def present_sections(runs: list[RunView]) -> list[Section]:
    return [sec for sec in SECTIONS if any(sec.present(r) for r in runs)]


def accuracy_cell(r: RunView) -> str:
    res = r.results
    lo, hi = res.exact_match_ci95
    return f"{100 * res.exact_match:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def grid(runs: list[RunView]) -> tuple[list[str], list[str], dict[tuple[str, str], RunView]]:
    """(datasets, models, cells): the paper's Table 1 layout."""
    return (sorted({r.dataset for r in runs}), sorted({r.model for r in runs}), {(r.dataset, r.model): r for r in runs})


NO_SAMPLES = "No per-poem log (recite/samples.jsonl) was kept for this run: no examples, no explorer rows."


def examples(r: RunView, per_class: int = 2, seed: int = EXAMPLES_SEED) -> list[tuple[str, int, list]]:
    """(outcome, count, shown) for every outcome class: a seeded random draw from each class, so a report shows
    what each kind of error looks like, not only the nearest misses."""
    out = []
    for o in OUTCOMES:
        group = [s for s in r.samples if s.outcome == o]
        picked = random.Random(f"{seed}:{r.name}:{o}").sample(range(len(group)), min(per_class, len(group)))
        out.append((o, len(group), [group[i] for i in sorted(picked)]))
    return out


def _class_title(o: str, count: int, n: int, shown: int) -> str:
    return f"{o.replace('_', ' ')}: {count:,} of {n:,} poems" + (f" ({shown} shown, drawn at random)" if shown else "")


def provenance_rows(runs: list[RunView]) -> list[dict[str, str]]:
    """The same provenance columns for the HTML and the Markdown report."""
    rows = []
    for r in runs:
        res, info = r.results, r.summary.get("model_info", r.results.model)
        v = res.versions
        rows.append(
            {
                "run": r.name,
                "model": str(info.get("source")),
                "params": f"{info.get('parameters', 0):,}",
                "epochs": str(r.summary.get("epochs_done", "-")),
                "train time": f"{r.summary.get('train_seconds', '-')} s",
                "recite time": f"{res.timings_s['total']} s",
                "device": f"{res.device} {res.hardware.get('gpus', '')}".strip(),
                "versions": f"torch {v.get('torch')}, transformers {v.get('transformers')}",
                "git": str(res.git_commit),
            }
        )
    return rows


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{alt}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_report(runs: list[RunView], runs_dir: Path, title: str, figs: dict[str, bytes]) -> str:
    datasets, models, cells = grid(runs)
    esc = html.escape
    h = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><h1>{esc(title)}</h1><p><small>generated {now_iso()} from {esc(str(runs_dir))}</small></p>",
        "<h2>Exact recall (Acc, Eq. 4) with 95% interval over poems (Wilson)</h2>",
        _html_table(
            ["dataset \\ model", *models],
            [
                [f"<b>{esc(d)}</b>"] + [accuracy_cell(cells[(d, m)]) if (d, m) in cells else "–" for m in models]
                for d in datasets
            ],
        ),
        "<h2>Memory over training</h2><p>Certified exact recall of the training poems (teacher-forced check) and "
        "loss.</p>" + _img(figs["memory_curves"], FIGURES["memory_curves"]),
        "<h2>Length effect</h2>" + _img(figs["accuracy_by_length"], FIGURES["accuracy_by_length"]),
        "<h2>Graded recall</h2>" + _img(figs["outcomes"], FIGURES["outcomes"]),
    ]
    outcomes = list(runs[0].results.outcomes)
    h.append(
        _html_table(
            ["run", "n", *outcomes, "mean similarity", "mean prefix (chars)", "mean chrF"],
            [
                [
                    esc(r.name),
                    str(r.results.n),
                    *(str(v) for v in r.results.outcomes.values()),
                    f"{r.results.mean_similarity:.3f}",
                    f"{r.results.mean_prefix_chars:.1f}",
                    f"{r.results.mean_chrf:.1f}",
                ]
                for r in runs
            ],
        )
    )
    for sec in present_sections(runs):
        header, rows = sec.table(runs)
        h.append(f"<h2>{esc(sec.title)}</h2><p>{esc(sec.text)}</p>"
                 + (_img(figs[sec.key], FIGURES[sec.key]) if sec.key in figs else "")
                 + _html_table(header, [[esc(c) for c in row] for row in rows]))
    h.append("<h2>Recitations of every outcome class</h2><p><small>Edit script at character level: "
             "<del>target only</del> <ins>recitation only</ins>; <mark class=bytes>&#xfffd;</mark> = bytes that are "
             "not UTF-8.</small></p>")
    h += [_html_examples(r) for r in runs]
    h.append(explorer_html(runs))
    prov = provenance_rows(runs)
    h.append("<h2>Provenance</h2>" + _html_table(list(prov[0]), [[esc(v) for v in row.values()] for row in prov]))
    return "\n".join(h) + "</body></html>"


def _html_examples(r: RunView) -> str:
    esc = html.escape
    h = [f"<h3>{esc(r.name)}</h3>"]
    if r.results.invalid_utf8:
        h.append(f"<p>{r.results.invalid_utf8} recitations hold bytes that are not UTF-8.</p>")
    if r.samples is None:
        return "\n".join(h + [f"<p>{NO_SAMPLES}</p>"])
    for o, count, shown in examples(r):
        h.append(f"<h4>{esc(_class_title(o, count, r.results.n, len(shown)))}</h4>")
        for s in shown:
            t, p = diff_html(s.target, s.prediction)
            h.append(
                f"<p>{esc(s.prompt)} <small>(similarity {s.similarity:.2f}, correct prefix {s.prefix_chars} "
                f"characters)</small></p><div class=pair><div><small>target</small><br>{t}</div>"
                f"<div><small>recitation</small><br>{p}</div></div>"
            )
    return "\n".join(h)


def _md_examples(r: RunView) -> list[str]:
    md = [f"### {r.name}", ""]
    if r.results.invalid_utf8:
        md += [f"{r.results.invalid_utf8} recitations hold bytes that are not UTF-8 (shown as \ufffd).", ""]
    if r.samples is None:
        return md + [NO_SAMPLES, ""]
    for o, count, shown in examples(r):
        md += [f"**{_class_title(o, count, r.results.n, len(shown))}**", ""]
        for s in shown:
            md += [f"{s.prompt} (similarity {s.similarity:.2f})", "", "```text", "target:     "
                   + s.target.replace("\n", " / ")]
            if not s.exact:
                md.append("diff:       " + diff_text(s.target, s.prediction))
            md += ["```", ""]
    return md


def markdown_report(runs: list[RunView], runs_dir: Path, title: str) -> str:
    datasets, models, cells = grid(runs)
    md = [
        f"# {title}",
        "",
        f"Generated {now_iso()} from `{runs_dir}`.",
        "",
        "## Exact recall (Acc, Eq. 4) with 95% interval over poems (Wilson)",
        "",
        "| dataset \\ model | " + " | ".join(models) + " |",
        "|---" * (len(models) + 1) + "|",
    ]
    md += [
        f"| {d} | " + " | ".join(accuracy_cell(cells[(d, m)]) if (d, m) in cells else "–" for m in models) + " |"
        for d in datasets
    ]
    md += [
        "",
        "## Memory over training",
        "",
        "![memory curves](report_files/memory_curves.png)",
        "",
        "## Length effect",
        "",
        "![accuracy by length](report_files/accuracy_by_length.png)",
        "",
        "## Graded recall",
        "",
        "![outcomes](report_files/outcomes.png)",
        "",
    ]
    outcomes = list(runs[0].results.outcomes)
    md += ["| run | n | " + " | ".join(outcomes) + " | mean similarity |", "|---" * (len(outcomes) + 3) + "|"]
    md += [
        f"| {r.name} | {r.results.n} | "
        + " | ".join(str(v) for v in r.results.outcomes.values())
        + f" | {r.results.mean_similarity:.3f} |"
        for r in runs
    ]
    for sec in present_sections(runs):
        header, rows = sec.table(runs)
        figure = [f"![{FIGURES[sec.key]}](report_files/{sec.key}.png)", ""] if sec.plot is not None else []
        md += ["", f"## {sec.title}", "", sec.text, "", *figure, "| " + " | ".join(header) + " |",
               "|---" * len(header) + "|"]
        md += ["| " + " | ".join(row) + " |" for row in rows]
    md += ["", "## Recitations of every outcome class", "",
           "Diffs in wdiff notation: `[-target only-]{+recitation only+}`, at character level.", ""]
    for r in runs:
        md += _md_examples(r)
    prov = provenance_rows(runs)
    md += ["## Provenance", "", "| " + " | ".join(prov[0]) + " |", "|---" * len(prov[0]) + "|"]
    md += ["| " + " | ".join(row.values()) + " |" for row in prov]
    return "\n".join(md) + "\n"
