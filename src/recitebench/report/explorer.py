"""The per-poem explorer of report.html: every poem of every run in one self-contained, offline table.

Data is embedded once as compact JSON (each dataset's prompts and targets once, however many runs recite it; a
correct poem's recitation is its target and is not repeated; a wrong one carries its edit script), so 2,000+ poems
per run stay a few hundred kB. The page's script sorts, filters (outcome, run, length, text) and draws the aligned
diff of a clicked row; a URL fragment such as `#outcome=forgotten&run=0&open&solo` sets the filters on load, opens
the first matching poem's diff and hides the rest of the report.
"""

from __future__ import annotations

import json

from ..schema import OUTCOMES
from .collect import RunView
from .diff import compact_ops


def _table_key(r: RunView) -> str:
    """Runs share a poem table when they recited the same frozen dataset (its hash), not merely one of the same
    folder name: two one-off runs on data/a/cn20 and data/b/cn20 keep their own targets."""
    return r.results.dataset.get("poems_sha256") or r.dataset


def explorer_data(runs: list[RunView]) -> dict:
    poems: dict[str, list] = {}  # dataset hash -> [[id, prompt, target], ...]
    index: dict[tuple[str, str], int] = {}
    rows = []
    for k, r in enumerate(runs):
        table = poems.setdefault(_table_key(r), [])
        for s in r.samples or []:
            key = (_table_key(r), s.id)
            if key not in index:
                index[key] = len(table)
                table.append([s.id, s.prompt, s.target])
            wrong = s.prediction != s.target
            bits = None if s.memorized_bits is None else round(s.memorized_bits)
            rows.append([k, index[key], OUTCOMES.index(s.outcome), round(s.similarity, 3), s.prefix_chars, s.chars,
                         bits, s.prediction if wrong else 0, compact_ops(s.target, s.prediction) if wrong else 0])
    return {
        "runs": [{"name": r.name, "dataset": r.dataset, "model": r.model, "table": _table_key(r)} for r in runs],
        "outcomes": list(OUTCOMES),
        "poems": poems,
        "rows": rows,
    }


def explorer_html(runs: list[RunView]) -> str:
    data = json.dumps(explorer_data(runs), ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return EXPLORER_HTML + f"<script>const X={data};\n{EXPLORER_JS}</script>"


EXPLORER_HTML = """<h2 id=explorer>Every poem</h2>
<p><small>Click a row for its aligned diff (<del>target only</del> <ins>recitation only</ins>,
<mark class=bytes>&#xfffd;</mark> = bytes that are not UTF-8). Click a column to sort.</small></p>
<div class=xbar>outcome <select id=xo><option value=''>all</option></select>
run <select id=xr><option value=''>all</option></select>
length <input id=xmin size=4 placeholder=min> – <input id=xmax size=4 placeholder=max>
search <input id=xq placeholder='author, title, text'> <span id=xn></span></div><div id=xdiff></div>
<table class=x><thead><tr><th data-k=run>run</th><th data-k=id>poem</th><th data-k=o>outcome</th>
<th data-k=sim>similarity</th><th data-k=pre>correct prefix</th><th data-k=len>length</th>
<th data-k=bits>memorised bits</th></tr></thead><tbody id=xrows></tbody></table>
<p><button id=xmore>show more</button></p>
"""

EXPLORER_JS = r"""
const $ = (id) => document.getElementById(id), PAGE = 200;
let shown = PAGE, sortKey = null, sortDir = 1;
const esc = (s) => s.replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";").replace(/\n/g, "<br>")
  .replace(/[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/g,
           (c) => "<mark class=ctl>U+" + c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0") + "</mark>");
const bytes = (s) => esc(s).replace(/\ufffd/g, "<mark class=bytes>\ufffd</mark>");
const poem = (r) => X.poems[X.runs[r[0]].table][r[1]];
const pred = (r) => (r[7] === 0 ? poem(r)[2] : r[7]);
const val = {run: (r) => X.runs[r[0]].name, id: (r) => poem(r)[0], o: (r) => r[2], sim: (r) => r[3],
             pre: (r) => r[4], len: (r) => r[5], bits: (r) => (r[6] === null ? -1 : r[6])};
X.rows.forEach((r, i) => { r[9] = i; });
X.outcomes.forEach((o, i) => $("xo").add(new Option(o.replace("_", " "), i)));
X.runs.forEach((r, i) => $("xr").add(new Option(r.name, i)));
function matching() {
  const o = $("xo").value, run = $("xr").value, q = $("xq").value.toLowerCase();
  const lo = parseInt($("xmin").value) || 0, hi = parseInt($("xmax").value) || Infinity;
  const rows = X.rows.filter((r) => (o === "" || r[2] == o) && (run === "" || r[0] == run) && r[5] >= lo &&
    r[5] <= hi && (!q || (poem(r)[1] + poem(r)[2]).toLowerCase().includes(q)));
  if (sortKey) rows.sort((a, b) => (val[sortKey](a) > val[sortKey](b) ? 1 : -1) * sortDir);
  return rows;
}
function draw() {
  const rows = matching();
  $("xn").textContent = rows.length + " of " + X.rows.length + " poems";
  $("xrows").innerHTML = rows.slice(0, shown).map((r) => "<tr data-i=" + r[9] + " data-outcome=" +
    X.outcomes[r[2]] + "><td>" + esc(X.runs[r[0]].name) + "</td><td>" + esc(poem(r)[1]) + "</td><td>" +
    X.outcomes[r[2]].replace("_", " ") + "</td><td>" + r[3].toFixed(3) + "</td><td>" + r[4] + "</td><td>" + r[5] +
    "</td><td>" + (r[6] === null ? "–" : r[6]) + "</td></tr>").join("");
  $("xmore").style.display = rows.length > shown ? "" : "none";
}
function diff(r) {
  const t = poem(r)[2], p = pred(r), ops = r[8] || [];
  let a = "", b = "", i = 0, j = 0;
  for (const [c, i1, i2, j1, j2] of ops) {
    a += esc(t.slice(i, i1)); b += bytes(p.slice(j, j1));
    if (i2 > i1) a += "<del>" + esc(t.slice(i1, i2)) + "</del>";
    if (j2 > j1) b += "<ins>" + bytes(p.slice(j1, j2)) + "</ins>";
    i = i2; j = j2;
  }
  a += esc(t.slice(i)); b += bytes(p.slice(j));
  $("xdiff").innerHTML = "<p><b>" + esc(poem(r)[1]) + "</b> <small>(" + esc(X.runs[r[0]].name) + ", " +
    X.outcomes[r[2]].replace("_", " ") + ")</small></p><div class=pair><div><small>target</small><br>" + a +
    "</div><div><small>recitation</small><br>" + b + "</div></div>";
}
$("xrows").addEventListener("click", (e) => { const tr = e.target.closest("tr"); if (tr) diff(X.rows[tr.dataset.i]); });
document.querySelectorAll("table.x th").forEach((th) => th.addEventListener("click", () => {
  sortDir = sortKey === th.dataset.k ? -sortDir : 1; sortKey = th.dataset.k; draw(); }));
["xo", "xr", "xmin", "xmax", "xq"].forEach((id) => $(id).addEventListener("input", () => { shown = PAGE; draw(); }));
$("xmore").addEventListener("click", () => { shown += PAGE; draw(); });
const h = new URLSearchParams(location.hash.slice(1));
if (h.has("outcome")) $("xo").value = X.outcomes.indexOf(h.get("outcome"));
if (h.has("run")) $("xr").value = h.get("run");
if (h.has("q")) $("xq").value = h.get("q");
draw();
if (h.has("open") && matching().length) diff(matching()[0]);  // #...&open: the first matching poem's diff
if (h.has("solo")) {  // #...&solo: the explorer alone (for a link or a screenshot), the report above it hidden
  for (let e = $("explorer").previousElementSibling; e; e = e.previousElementSibling) e.style.display = "none";
} else if (h.has("outcome") || h.has("run") || h.has("q") || h.has("open")) $("explorer").scrollIntoView();
"""
