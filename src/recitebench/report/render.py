"""report.html (self-contained, offline) and its Markdown twin report.md, from a runs folder."""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

from ..errors import RecitebenchError
from ..io import atomic_path, read_jsonl
from ..provenance import now_iso
from . import plots


def collect(runs_dir: Path) -> list[dict]:
    runs = []
    for res_path in sorted(Path(runs_dir).glob("*/recite/results.json")):
        run = res_path.parent.parent
        dataset, _, model = run.name.partition("__")
        metrics = read_jsonl(run / "metrics.jsonl") if (run / "metrics.jsonl").is_file() else []
        summ = json.loads((run / "train_summary.json").read_text()) if (run / "train_summary.json").is_file() else {}
        runs.append({"name": run.name, "path": run, "dataset": dataset, "model": model or run.name,
                     "results": json.loads(res_path.read_text(encoding="utf-8")), "metrics": metrics,
                     "samples": read_jsonl(run / "recite" / "samples.jsonl"), "summary": summ})
    return runs


def _acc(r: dict) -> str:
    res = r["results"]
    lo, hi = res["exact_match_ci95"]
    return f"{100 * res['exact_match']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def table(runs: list[dict]) -> tuple[list[str], list[str], dict]:
    datasets = sorted({r["dataset"] for r in runs})
    models = sorted({r["model"] for r in runs})
    cells = {(r["dataset"], r["model"]): r for r in runs}
    return datasets, models, cells


def _diff_html(target: str, pred: str) -> tuple[str, str]:
    """Mark where the recitation leaves the target (after the longest common prefix)."""
    k = len(os.path.commonprefix([target, pred]))
    esc = lambda s: html.escape(s).replace("\n", "<br>")  # noqa: E731
    return (esc(target[:k]) + (f"<mark>{esc(target[k:])}</mark>" if target[k:] else ""),
            esc(pred[:k]) + (f"<mark class=bad>{esc(pred[k:])}</mark>" if pred[k:] else ""))


def examples(r: dict, n: int = 3) -> tuple[list[dict], list[dict]]:
    right = [s for s in r["samples"] if s["exact"]][:n]
    wrong = sorted((s for s in r["samples"] if not s["exact"]), key=lambda s: -s["similarity"])[:n]
    return right, wrong


CSS = """body{font-family:'WenQuanYi Micro Hei','Noto Sans CJK SC','Noto Sans SC',sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#111}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #999;padding:4px 8px;text-align:left}
th{background:#eee}mark{background:#ddd;text-decoration:underline}mark.bad{background:#bbb;text-decoration:line-through}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:8px;margin:6px 0 14px}.pair div{border:1px solid #ccc;padding:6px;
white-space:normal;font-size:14px}img{max-width:100%}code{font-size:12px}small{color:#555}"""


def render(runs_dir: str | Path, title: str | None = None) -> Path:
    runs_dir = Path(runs_dir)
    runs = collect(runs_dir)
    if not runs:
        raise RecitebenchError(f"{runs_dir}: no finished runs (no */recite/results.json) to report on")
    title = title or f"recitebench report: {runs_dir.name}"
    figs = {"memory_curves": plots.memory_curves(runs), "accuracy_by_length": plots.accuracy_by_length(runs),
            "outcomes": plots.outcome_bars(runs)}
    files = runs_dir / "report_files"
    files.mkdir(exist_ok=True)
    for name, png in figs.items():
        with atomic_path(files / f"{name}.png") as tmp:
            tmp.write_bytes(png)
    datasets, models, cells = table(runs)

    # --- HTML ---
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
         f"<h1>{html.escape(title)}</h1><p><small>generated {now_iso()} from {html.escape(str(runs_dir))}</small></p>",
         "<h2>Exact recall (Acc, Eq. 4) with 95% bootstrap interval</h2><table><tr><th>dataset \\ model</th>"
         + "".join(f"<th>{html.escape(m)}</th>" for m in models) + "</tr>"]
    for d in datasets:
        h.append(f"<tr><th>{html.escape(d)}</th>" + "".join(
            f"<td>{_acc(cells[(d, m)]) if (d, m) in cells else '–'}</td>" for m in models) + "</tr>")
    h.append("</table>")
    h.append("<h2>Memory over training</h2><p>Certified exact recall of the training poems (teacher-forced check) and loss.</p>")
    h.append(_img(figs["memory_curves"], "memory curves"))
    h.append("<h2>Length effect</h2>" + _img(figs["accuracy_by_length"], "accuracy by length"))
    h.append("<h2>Graded recall</h2>" + _img(figs["outcomes"], "outcomes"))
    h.append("<table><tr><th>run</th><th>n</th>" + "".join(f"<th>{o}</th>" for o in runs[0]["results"]["outcomes"])
             + "<th>mean similarity</th><th>mean prefix (chars)</th><th>mean chrF</th></tr>")
    for r in runs:
        res = r["results"]
        h.append(f"<tr><td>{html.escape(r['name'])}</td><td>{res['n']}</td>"
                 + "".join(f"<td>{v}</td>" for v in res["outcomes"].values())
                 + f"<td>{res['mean_similarity']:.3f}</td><td>{res['mean_prefix_chars']:.1f}</td><td>{res['mean_chrf']:.1f}</td></tr>")
    h.append("</table><h2>Recitations (correct and wrong, divergence marked)</h2>")
    for r in runs:
        right, wrong = examples(r)
        h.append(f"<h3>{html.escape(r['name'])}</h3>")
        for kind, group in (("correct", right), ("wrong", wrong)):
            for s in group:
                pred = s["target"] if s["prediction"] == "= target" else s["prediction"]
                t, p = _diff_html(s["target"], pred)
                h.append(f"<p><b>{kind}</b> · {html.escape(s['prompt'])} <small>({s['outcome']}, similarity "
                         f"{s['similarity']:.2f})</small></p><div class=pair><div><small>target</small><br>{t}</div>"
                         f"<div><small>recitation</small><br>{p}</div></div>")
    h.append("<h2>Provenance</h2><table><tr><th>run</th><th>model</th><th>params</th><th>epochs</th><th>train time</th>"
             "<th>recite time</th><th>device</th><th>versions</th><th>git</th></tr>")
    for r in runs:
        res, summ = r["results"], r["summary"]
        v = res.get("versions", {})
        h.append(f"<tr><td>{html.escape(r['name'])}</td><td>{html.escape(str(summ.get('model_info', {}).get('source', res['model'].get('source'))))}</td>"
                 f"<td>{summ.get('model_info', {}).get('parameters', res['model'].get('parameters')):,}</td>"
                 f"<td>{summ.get('epochs_done', '-')}</td><td>{summ.get('train_seconds', '-')} s</td>"
                 f"<td>{res['timings_s']['total']} s</td><td>{html.escape(res['device'])} {html.escape(str(res['hardware'].get('gpus', '')))}</td>"
                 f"<td><small>torch {v.get('torch')}, transformers {v.get('transformers')}</small></td>"
                 f"<td><small>{html.escape(str(res.get('git_commit')))}</small></td></tr>")
    h.append("</table></body></html>")
    with atomic_path(runs_dir / "report.html") as tmp:
        tmp.write_text("\n".join(h), encoding="utf-8")

    # --- Markdown twin ---
    md = [f"# {title}", "", f"Generated {now_iso()} from `{runs_dir}`.", "",
          "## Exact recall (Acc, Eq. 4) with 95% bootstrap interval", "",
          "| dataset \\ model | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    for d in datasets:
        md.append(f"| {d} | " + " | ".join(_acc(cells[(d, m)]) if (d, m) in cells else "–" for m in models) + " |")
    md += ["", "## Memory over training", "", "![memory curves](report_files/memory_curves.png)", "",
           "## Length effect", "", "![accuracy by length](report_files/accuracy_by_length.png)", "",
           "## Graded recall", "", "![outcomes](report_files/outcomes.png)", "",
           "| run | n | " + " | ".join(runs[0]["results"]["outcomes"]) + " | mean similarity |",
           "|---" * (len(runs[0]["results"]["outcomes"]) + 3) + "|"]
    for r in runs:
        res = r["results"]
        md.append(f"| {r['name']} | {res['n']} | " + " | ".join(str(v) for v in res["outcomes"].values())
                  + f" | {res['mean_similarity']:.3f} |")
    md += ["", "## Recitations", ""]
    for r in runs:
        right, wrong = examples(r, 2)
        md.append(f"### {r['name']}")
        for kind, group in (("correct", right), ("wrong", wrong)):
            for s in group:
                pred = s["target"] if s["prediction"] == "= target" else s["prediction"]
                md += ["", f"**{kind}** · {s['prompt']} ({s['outcome']}, similarity {s['similarity']:.2f})", "",
                       "```text", "target:     " + s["target"].replace("\n", " / "),
                       "recitation: " + pred.replace("\n", " / "), "```"]
        md.append("")
    md += ["## Provenance", "", "| run | device | train s | recite s | git |", "|---|---|---|---|---|"]
    for r in runs:
        res = r["results"]
        md.append(f"| {r['name']} | {res['device']} | {r['summary'].get('train_seconds', '-')} | {res['timings_s']['total']} | "
                  f"{res.get('git_commit')} |")
    with atomic_path(runs_dir / "report.md") as tmp:
        tmp.write_text("\n".join(md) + "\n", encoding="utf-8")
    return runs_dir / "report.html"


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{alt}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
