"""Recite every poem from its input and score it: exact match (the paper's Acc, Eq. 4) and graded recall."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np
from torch.profiler import record_function

from ..config import load_yaml, to_dict
from ..data.frozen import load_frozen
from ..errors import RecitebenchError
from ..io import write_json, write_jsonl
from ..models.config import ModelConfig
from ..models.formatting import Encoded, decode_prediction, encode_many
from ..models.kernels import apply_kernels
from ..models.load import load_model
from ..provenance import provenance
from ..runtime import default_margin, eval_dtype, pick_device
from .config import ReciteConfig
from .draft import draft_decode
from .generate import greedy_generate, vllm_generate
from .graded import OUTCOMES, grade
from .static_decode import static_greedy
from .static_decode import supported as static_supported
from .teacher import teacher_forced


def _mean(samples: list[dict], key: str) -> float:
    return float(np.mean([s[key] for s in samples])) if samples else 0.0


def bootstrap_ci(hits: list[bool], resamples: int, seed: int) -> list[float]:
    if not hits:
        return [0.0, 0.0]
    rng = np.random.default_rng(seed)
    arr = np.asarray(hits, dtype=np.float64)
    means = arr[rng.integers(0, len(arr), size=(resamples, len(arr)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def resolve(rcfg: ReciteConfig, mcfg: ModelConfig | None) -> tuple[ModelConfig, Path, Path]:
    """(model config, dataset folder, output folder) from a run folder or explicit flags."""
    if rcfg.run:
        run = Path(rcfg.run)
        if not (run / "config.yaml").is_file():
            raise RecitebenchError(f"{run}: not a training run (no config.yaml)")
        if not (run / "model" / "config.json").is_file():
            raise RecitebenchError(f"{run}: the run has no final model yet (finish it with `recitebench train --out {run} --resume`)")
        saved = load_yaml(run / "config.yaml")
        template = saved.get("model", {}).get("template", "plain")
        mcfg = ModelConfig(model=str(run / "model"), init="pretrained", template=template,
                           attn_implementation=(mcfg.attn_implementation if mcfg else "sdpa"))
        data = Path(rcfg.data or saved["train"]["data"])
        out = Path(rcfg.out or run / "recite")
    else:
        if mcfg is None or not rcfg.data:
            raise RecitebenchError("recite needs --run RUN, or --model MODEL with --data DATASET")
        data, out = Path(rcfg.data), Path(rcfg.out or "recite_out")
    return mcfg, data, out


def recite(rcfg: ReciteConfig, mcfg: ModelConfig | None = None, *, log=print) -> dict:
    t0 = time.perf_counter()
    mcfg, data_dir, out = resolve(rcfg, mcfg)
    ds = load_frozen(data_dir)
    poems = ds.poems[: rcfg.limit] if rcfg.limit else ds.poems
    device = pick_device(rcfg.device)
    dtype = eval_dtype(rcfg.precision, device)
    model, tok, info = load_model(mcfg, corpus=[p["prompt"] + "\n" + p["target"] for p in poems], dtype=dtype, device=device)
    model.to(device)
    kernels = apply_kernels(model, rcfg.kernels, device)
    items = encode_many(tok, poems, mcfg.template)
    margin = rcfg.margin if rcfg.margin is not None else default_margin(dtype)
    t_load = time.perf_counter() - t0
    log(f"reciting {len(items)} poems with {info['source']} on {device} ({str(dtype).replace('torch.', '')}, mode {rcfg.mode})")

    tf_results = None
    certified: set[int] = set()
    t_tf = time.perf_counter()
    if rcfg.mode == "certified":
        with record_function("recitebench.teacher_forced"):  # named regions for bench/recite_bench.py --profile
            tf_results = teacher_forced(model, items, device=device, batch_size=rcfg.batch_size,
                                        batch_tokens=rcfg.batch_tokens, margin=margin,
                                        pad_id=tok.pad_token_id)
        certified = {i for i, r in enumerate(tf_results) if r.certified}
    t_tf = time.perf_counter() - t_tf

    todo = [i for i in range(len(items)) if i not in certified]
    verify_ids: list[int] = []
    if rcfg.verify and certified:
        verify_ids = sorted(random.Random(rcfg.seed).sample(sorted(certified), min(rcfg.verify, len(certified))))
    t_gen = time.perf_counter()
    # Uncertified poems start after their provably-greedy prefix; verification samples decode from scratch.
    prefix = {i: list(items[i].target_ids[: tf_results[i].safe_prefix]) if tf_results else [] for i in todo}
    generated: dict[int, list[int]] = {}
    n_draft = 0
    if todo and tf_results and rcfg.decode == "draft" and rcfg.backend == "hf":
        done, handoff = draft_decode(model, [items[i] for i in todo], [len(prefix[i]) for i in todo], device=device,
                                     pad_id=tok.pad_token_id, eos_id=tok.eos_token_id, margin=margin,
                                     extra_tokens=rcfg.extra_tokens)
        generated.update({todo[k]: v for k, v in done.items()})
        prefix.update({todo[k]: v for k, v in handoff.items()})
        n_draft = len(done)
    rest = [i for i in todo if i not in generated]
    decoder = _decoder(rcfg, model)
    with record_function("recitebench.decode"):
        generated.update(zip(rest, _generate(rcfg, decoder, model, tok, [items[i] for i in rest], device, mcfg,
                                             [prefix[i] for i in rest])))
    # Verification decodes certified poems from scratch with the reference, HF generate().
    verified_gen = dict(zip(verify_ids, _generate(rcfg, "generate", model, tok, [items[i] for i in verify_ids], device,
                                                  mcfg, [[] for _ in verify_ids])))
    t_gen = time.perf_counter() - t_gen

    t_score = time.perf_counter()
    samples, hits = [], []
    for i, (poem, item) in enumerate(zip(poems, items)):
        if i in certified:
            g = grade(poem["target"], poem["target"], normalization=rcfg.normalize)
            pred, stopped, prefix_tok, decided = "= target", True, len(item.target_ids) - 1, "certified"
        else:
            ids = generated[i]
            text, stopped = decode_prediction(tok, ids)
            g = grade(text, poem["target"], normalization=rcfg.normalize, minor_similarity=rcfg.minor_similarity,
                      forgotten_similarity=rcfg.forgotten_similarity, stopped=stopped)
            pred, decided = text, "generated"
            prefix_tok = next((k for k, (a, b) in enumerate(zip(ids, item.target_ids[:-1])) if a != b),
                              min(len(ids), len(item.target_ids) - 1))
        hits.append(g.exact)
        row = {"id": poem["id"], "prompt": poem["prompt"], "target": poem["target"], "prediction": pred,
               "decided_by": decided, "stopped": stopped, "chars": len(poem["prompt"]) + len(poem["target"]),
               "target_tokens": len(item.target_ids) - 1, "prefix_tokens": prefix_tok, **g.as_dict()}
        if tf_results is not None:
            r = tf_results[i]
            row.update(tf_token_accuracy=r.token_accuracy, tf_loss=r.loss, tf_min_margin=r.min_margin)
        samples.append(row)

    agree = [verified_gen[i] == items[i].target_ids for i in verify_ids]
    n = len(samples)
    results = {
        "exact_match": sum(hits) / n if n else 0.0,
        "n": n,
        "n_correct": sum(hits),
        "exact_match_ci95": bootstrap_ci(hits, rcfg.bootstrap, rcfg.seed),
        "outcomes": {o: sum(1 for s in samples if s["outcome"] == o) for o in OUTCOMES},
        "mean_similarity": _mean(samples, "similarity"),
        "mean_prefix_chars": _mean(samples, "prefix_chars"),
        "mean_prefix_tokens": _mean(samples, "prefix_tokens"),
        "mean_line_accuracy": _mean(samples, "line_accuracy"),
        "mean_chrf": _mean(samples, "chrf"),
        "decided_by": {"certified": len(certified), "generated": len(todo), "generated_by_draft": n_draft},
        "decoder": decoder if rest else None,
        "kernels": kernels,
        "verification": {"n": len(verify_ids), "agree": sum(agree), "rate": (sum(agree) / len(agree)) if agree else None},
        "normalization": rcfg.normalize,
        "thresholds": {"minor_similarity": rcfg.minor_similarity, "forgotten_similarity": rcfg.forgotten_similarity},
        "certify_margin": margin if rcfg.mode == "certified" else None,
        "model": info,
        "template": mcfg.template,
        "dataset": {"path": str(data_dir), "poems_sha256": ds.sha256, "preset": ds.manifest.get("preset"),
                    "source": ds.manifest.get("source")},
        "config": {"recite": to_dict(rcfg), "model": to_dict(mcfg)},
        "seed": rcfg.seed,
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
        "timings_s": {"load": round(t_load, 3), "teacher_forced": round(t_tf, 3), "generate": round(t_gen, 3),
                      "score": round(time.perf_counter() - t_score, 3),
                      "total": round(time.perf_counter() - t0, 3)},
        **provenance(),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "samples.jsonl", samples)
    write_json(out / "results.json", results)
    log(f"exact recall {results['exact_match']:.1%} ({results['n_correct']}/{n}); "
        f"decided by teacher forcing: {len(certified)}, by generation: {len(todo)}; wrote {out}/results.json")
    return results


def _decoder(rcfg: ReciteConfig, model) -> str:
    """Which decoder finishes the poems the certified pass leaves: static, generate or vllm."""
    if rcfg.backend == "vllm":
        return "vllm"
    if rcfg.decode in ("auto", "draft"):  # draft hands its leftovers to the same decoder auto picks
        return "static" if static_supported(model) else "generate"
    if rcfg.decode == "static" and not static_supported(model):
        raise RecitebenchError(f"--decode static supports Llama/Qwen2-family models without sliding windows, not "
                               f"{type(model).__name__}; use --decode generate")
    return rcfg.decode


def _generate(rcfg, decoder: str, model, tok, items: list[Encoded], device, mcfg, prefix_ids: list[list[int]]) -> list[list[int]]:
    if not items:
        return []
    if decoder == "vllm":
        if not os.path.isdir(mcfg.model):
            raise RecitebenchError("--backend vllm needs a model folder (a run's model/ or a local checkpoint)")
        return vllm_generate(mcfg.model, items, eos_id=tok.eos_token_id, extra_tokens=rcfg.extra_tokens)
    from tqdm.auto import tqdm

    fn = static_greedy if decoder == "static" else greedy_generate
    with tqdm(total=len(items), unit="poem", desc="decoding", disable=None, mininterval=1.0) as bar:
        return fn(model, items, device=device, pad_id=tok.pad_token_id, eos_id=tok.eos_token_id,
                  batch_size=rcfg.gen_batch_size, extra_tokens=rcfg.extra_tokens, prefix_ids=prefix_ids,
                  progress=bar.update)
