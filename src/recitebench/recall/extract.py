"""The extraction probe: is a poem's continuation extractable from its prompt and its first k tokens?

Pythia's memorisation score (Biderman et al. 2023) and Carlini et al.'s extraction ask the same question of any model,
trained by recitebench or not: given a context, does greedy decoding reproduce the next m tokens of a training text?
Here the context is a poem's prompt plus its first k tokens (k swept; Pythia: k = m = 32) and the continuation is
scored against the poem's next m' = min(m, tokens left) tokens (the end token included, so a poem shorter than
k + m is scored on what it has): exact (all m' tokens) and token match (the share of the m' positions where the
greedy token is the poem's, Pythia's score). A poem with no token after its first k is not eligible at that k.

Decoding is the tool's plain greedy reference (`generate.greedy_generate`: Hugging Face generate() under exactly
greedy settings, left-padded batches, each poem's own budget), with the k poem tokens fed as context.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..config import build, to_dict
from ..io import write_json, write_jsonl
from ..lock import writing
from ..models.config import ModelConfig
from ..provenance import provenance
from ..rundir import RunDir
from ..stats import wilson_interval
from .config import ExtractConfig, ReciteConfig
from .generate import greedy_generate
from .recite import prepare, resolve

FORMAT = "recitebench-extraction/1"


def extract(ecfg: ExtractConfig, mcfg: ModelConfig | None = None, *, log=print) -> dict:
    """Probe every poem at every k; write OUT/extraction.json (per k) and OUT/extraction.jsonl (per poem and k)."""
    rcfg, where, out = probe_setup(ecfg, mcfg, "extract")
    with writing(out, "extraction folder"):
        t0 = time.perf_counter()
        job = prepare(rcfg, where)  # loading and encoding as a recitation does
        log(f"extraction probe: {len(job.items)} poems, k = {', '.join(map(str, ecfg.prefix_tokens))}, "
            f"m = {ecfg.continuation_tokens}, on {job.device}")
        rows, per_k = [], []
        for k in ecfg.prefix_tokens:
            got = probe(job, k, ecfg)
            rows += got
            per_k.append(summarise_k(k, got, len(job.items), ecfg.continuation_tokens))
            log(f"k = {k}: exact {per_k[-1]['exact']:.1%} of {per_k[-1]['n']} eligible, token match "
                f"{per_k[-1]['token_match']:.3f}")
        result = {"kind": FORMAT, "config": to_dict(ecfg), "model": job.info, "dataset": {
            "path": str(job.data.path), "poems_sha256": job.data.sha256, "n": len(job.items)},
            "per_k": per_k, "seconds": round(time.perf_counter() - t0, 3), **provenance()}
        write_jsonl(out / "extraction.jsonl", rows)
        write_json(out / "extraction.json", result)
    log(f"wrote {out}/extraction.json")
    return result


def probe_setup(cfg, mcfg: ModelConfig | None, folder: str):
    """(ReciteConfig, Resolved, output folder) of a probe (extract, lens): the recitation's model and dataset
    resolution, no reference and no held-out set; output in RUN/FOLDER (or FOLDER_out without a run)."""
    rcfg = build(ReciteConfig, {"run": cfg.run, "data": cfg.data, "device": cfg.device, "limit": cfg.limit,
                                "precision": cfg.precision, "reference": "none", "heldout": "none"}, where=folder)
    out = Path(cfg.out) if cfg.out else RunDir(cfg.run).path / folder if cfg.run else Path(f"{folder}_out")
    return rcfg, resolve(rcfg, mcfg), out


def probe(job, k: int, ecfg: ExtractConfig) -> list[dict]:
    """Per eligible poem: the greedy continuation after its prompt and first k tokens, against its next m' tokens."""
    m = ecfg.continuation_tokens
    idx = [i for i, it in enumerate(job.items) if len(it.target_ids) > k]
    items = [job.items[i] for i in idx]
    gens = greedy_generate(job.model, items, device=job.device, pad_id=job.scoring.pad_id,
                           end_ids=job.scoring.end_ids, batch_size=ecfg.batch_size, extra_tokens=0,
                           prefix_ids=[it.target_ids[:k] for it in items], max_new=m)
    rows = []
    for it, gen in zip(items, gens):
        want = it.target_ids[k : k + m]
        got = gen[k : k + len(want)]
        hits = sum(a == b for a, b in zip(got, want))
        rows.append({"id": it.id, "k": k, "m": len(want), "exact": got == want, "token_match": hits / len(want),
                     "continuation": job.tok.decode(got), "target": job.tok.decode(want)})
    return rows


def summarise_k(k: int, rows: list[dict], n_poems: int, m: int) -> dict:
    """Per k: eligible poems, exact share with its Wilson interval, mean token match, and how many were scored on
    the full m tokens (the rest are shorter than k + m)."""
    n, exact = len(rows), sum(r["exact"] for r in rows)
    return {"k": k, "n": n, "not_eligible": n_poems - n, "full_length": sum(r["m"] == m for r in rows),
            "exact_count": exact, "exact": exact / n if n else 0.0,
            "exact_ci95": wilson_interval(exact, n) if n else [0.0, 1.0],
            "token_match": sum(r["token_match"] for r in rows) / n if n else 0.0}
