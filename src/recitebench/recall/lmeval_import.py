"""`recitebench import lm-eval SAMPLES`: grade an lm-evaluation-harness run of an exported recitebench task.

lm-eval's `--log_samples` file holds, per document, the doc (id, prompt, target, as `export lm-eval` wrote them) and
the model's filtered response. Each is matched to the frozen dataset by id (the poem must be the same text), graded
by recitebench's own rule (exact match and the paper's four outcomes) and written as a recitation folder:
results.json + samples.jsonl, the schema `recite` writes. With `--model` the poems' code lengths under that model
come from one teacher-forced pass (bits, token counts, the token prefix); without one they are left empty, not
guessed. lm-eval does not say whether a response ended on the end token; the exported task's budget exceeds every
poem, so a response cut off by it is longer than its poem and fails as it would in `recite`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..config import to_dict
from ..data.frozen import load_frozen
from ..errors import RecitebenchError
from ..models.config import ModelConfig
from ..provenance import provenance
from ..schema import Results, Sample, write_recitation
from .config import ReciteConfig
from .graded import grade, sample_totals

DECIDED_BY = "lm-eval"


def read_lmeval_samples(path: Path) -> list[tuple[int, dict, str]]:
    """(line, doc, prediction) per document of an lm-eval samples file (JSON lines)."""
    if not path.is_file():
        raise RecitebenchError(f"{path}: no such lm-eval samples file (lm_eval --log_samples writes samples_*.jsonl)")
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise RecitebenchError(f"{path}:{i}: not JSON ({e.msg})") from None
            doc = row.get("doc") if isinstance(row, dict) else None
            if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) for k in ("id", "target")):
                raise RecitebenchError(f"{path}:{i}: no `doc` with `id` and `target` (a task from `recitebench "
                                       f"export lm-eval`?)")
            resp = row.get("filtered_resps", row.get("resps"))
            while isinstance(resp, list) and resp:  # lm-eval nests one response per request in lists
                resp = resp[0]
            if not isinstance(resp, str):
                raise RecitebenchError(f"{path}:{i}: no text response in `filtered_resps`")
            out.append((i, doc, resp))
    if not out:
        raise RecitebenchError(f"{path}: holds no samples")
    return out


def _matched(path: Path, rows: list[tuple[int, dict, str]], data: Path) -> tuple[object, list[tuple[dict, str]]]:
    ds = load_frozen(data)
    by_id = {p["id"]: p for p in ds.poems}
    matched, seen = [], set()
    for line, doc, pred in rows:
        poem = by_id.get(doc["id"])
        if poem is None or poem["target"] != doc["target"]:
            why = "is not in" if poem is None else "has another poem text than"
            raise RecitebenchError(f"{path}:{line}: document {doc['id']!r} {why} {data}")
        if doc["id"] in seen:
            raise RecitebenchError(f"{path}:{line}: document {doc['id']!r} appears twice")
        seen.add(doc["id"])
        matched.append((poem, pred))
    return ds, matched


def _token_stats(model_ref: str, template: str, poems: list[dict], preds: list[str]) -> tuple[list, list, list]:
    """Per poem: bits under the model, target tokens, tokens of the prediction that match the target's prefix."""
    from ..devices import eval_dtype, pick_device
    from ..models.certify import Scoring
    from ..models.formatting import end_token_ids
    from ..models.load import load_model
    from .controls import score_set

    device = pick_device("auto")
    mcfg = ModelConfig(model=model_ref, init="pretrained", template=template)
    model, tok, _ = load_model(mcfg, dtype=eval_dtype("auto", device), device=device)
    model.to(device)
    scoring = Scoring(device, tok.pad_token_id, end_token_ids(tok, model), 0.0, None, 64, 65536)
    bits, tokens = score_set(model, tok, template, scoring, poems)
    prefixes = []
    for poem, pred in zip(poems, preds):
        t, p = tok(poem["target"], add_special_tokens=False)["input_ids"], tok(pred, add_special_tokens=False)[
            "input_ids"]
        prefixes.append(next((k for k, (a, b) in enumerate(zip(p, t)) if a != b), min(len(p), len(t))))
    return bits, [n - 1 for n in tokens], prefixes


def import_lmeval(samples: str | Path, data: str | Path, out: str | Path, *, model: str | None = None,
                  template: str = "plain", rcfg: ReciteConfig | None = None) -> Results:
    """Grade an lm-eval samples file against its frozen dataset; write OUT/results.json and samples.jsonl."""
    t0 = time.perf_counter()
    rcfg = rcfg or ReciteConfig()
    path, out = Path(samples), Path(out)
    ds, matched = _matched(path, read_lmeval_samples(path), Path(data))
    poems, preds = [p for p, _ in matched], [r for _, r in matched]
    bits, tokens, prefixes = (_token_stats(model, template, poems, preds) if model else
                              ([None] * len(poems), [None] * len(poems), [None] * len(poems)))
    out_samples = []
    for poem, pred, b, n_tok, pre in zip(poems, preds, bits, tokens, prefixes):
        g = grade(pred, poem["target"], normalization=rcfg.normalize, minor_overlap=rcfg.minor_overlap,
                  forgotten_overlap=rcfg.forgotten_overlap, stopped=True)
        out_samples.append(Sample(id=poem["id"], prompt=poem["prompt"], target=poem["target"], prediction=pred,
                                  decided_by=DECIDED_BY, stopped=True, chars=len(poem["prompt"]) + len(poem["target"]),
                                  target_tokens=n_tok, prefix_tokens=pre, nll_bits=b, **g.as_dict()))
    results = _results(out_samples, ds, path, model, template, rcfg, time.perf_counter() - t0)
    out.mkdir(parents=True, exist_ok=True)
    write_recitation(out, results, out_samples)
    return results


def _results(samples: list[Sample], ds, path: Path, model: str | None, template: str, rcfg: ReciteConfig,
             seconds: float) -> Results:
    n = len(samples)
    return Results(
        **sample_totals(samples),
        decided_by={"certified": 0, "generated": 0, DECIDED_BY: n}, decoder=DECIDED_BY, kernels="n/a",
        verification={"n": 0, "agree": 0, "rate": None}, normalization=rcfg.normalize,
        thresholds=rcfg.thresholds(),
        certify_margin=None, model={"model": model, "source": f"lm-eval samples {path}"}, template=template,
        dataset={"path": str(ds.path), "poems_sha256": ds.sha256, "preset": ds.manifest.get("preset"),
                 "source": ds.manifest.get("source"), "training_set": None, "poems_in_samples": n,
                 "poems_in_dataset": len(ds.poems)},
        config={"import": {"samples": str(path), "model": model, "template": template}, "recite": to_dict(rcfg)},
        seed=rcfg.seed, device="n/a", dtype="n/a", timings_s={"total": round(seconds, 3)},
        memory={"nll_bits": round(sum(s.nll_bits for s in samples), 3), "reference": None} if model else {},
        generation="lm-eval", **provenance())
