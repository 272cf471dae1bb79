"""How much a model memorised, in bits, and how fast it learned to.

The code length of a poem under a model is -log2 p(poem tokens + end token | prompt): what an arithmetic coder
driven by the model would spend on it. Memorised bits of a poem = max(0, bits under a reference - bits under the
trained model), the likelihood definition of Morris et al. (2025, "How much do language models memorize?"). The
reference is the same model before training by default, so only what training put into the weights counts; for a
random-string dataset it is the true distribution (the known entropy), so nothing a model could generalise counts.
Both sides come from the teacher-forced pass recitation runs anyway; the reference costs one more pass.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import build
from ..data.frozen import poem_hash
from ..errors import RecitebenchError
from ..io import read_json
from ..models.certify import Scoring, teacher_forced
from ..models.config import ModelConfig
from ..models.formatting import encode_many, end_token_ids
from ..models.load import load_model
from ..rundir import RunDir
from .controls import check_unseen, trained_reference

LN2 = math.log(2.0)


@dataclass
class Reference:
    label: str  # what the bits are measured against, as results.json records it
    bits: list[float]  # per poem: -log2 p(poem + end | prompt) under the reference


@dataclass
class BitsContext:
    """What the reference's code lengths depend on (a recitation builds it once)."""

    reference: str  # ReciteConfig.reference: auto, base, truth, none, or a model
    poems: list[dict]
    dataset: Path
    template: str
    dtype: torch.dtype
    scoring: Scoring
    base: ModelConfig | None = None  # the run's model before training
    run: RunDir | None = None
    own_training_set: bool = False  # the recited poems are the run's training set (old base_bits records: by id)
    recited: int | None = None  # poems[:recited] are the recited ones, the rest held-out (None: all recited)


def truth_bits(poems: list[dict]) -> list[float] | None:
    """The known entropy of each row of a random-string dataset (None when the dataset is not one)."""
    if not all("entropy_bits" in p for p in poems):
        return None
    return [float(p["entropy_bits"]) for p in poems]


def reference_bits(job: BitsContext) -> Reference | None:
    """The reference code lengths `job.reference` names (None: no memorised bits are reported)."""
    ref, truth = job.reference, truth_bits(job.poems)
    if ref == "none":
        return None
    if ref == "truth" or (ref == "auto" and truth is not None):
        if truth is None:
            raise RecitebenchError(f"{job.dataset}: --reference truth needs a random-string dataset "
                                   f"(`data build --preset random`: rows carry entropy_bits)")
        return Reference("truth: the known entropy of each random string", truth)
    if ref in ("auto", "base"):
        saved = saved_base_bits(job)
        if len(saved) == len(job.poems):
            model = job.base.model if job.base else "the run's model"
            return Reference(f"base: {model}, before training (recorded by the run at its start)",
                             [saved[p["id"]] for p in job.poems])
        if job.base is None:
            if ref == "auto":
                return None
            raise RecitebenchError("--reference base needs --run (a model with no training run has no 'before'); "
                                   "name a reference model instead")
        # the poems the run's record lacks (a held-out set) are scored by the base model itself
        rest = [p for p in job.poems if p["id"] not in saved]
        scored = dict(zip((p["id"] for p in rest), model_bits(dataclasses.replace(job, poems=rest), job.base)))
        note = " (the recited poems as recorded by the run at its start)" if saved else ""
        return Reference(f"base: {job.base.model}, before training{note}",
                         [saved[p["id"]] if p["id"] in saved else scored[p["id"]] for p in job.poems])
    trained = trained_reference(ref)
    if trained is not None:  # a run folder: a reference trained on poems of the kind, never on these
        mcfg, seen = trained
        check_unseen(job.poems, seen, f"the training set of the reference {ref}")
        return Reference(f"trained reference: {ref} (trained on {seen.path}, {len(seen.poems)} poems, sha256 "
                         f"{seen.sha256[:12]})", model_bits(job, mcfg))
    mcfg = build(ModelConfig, {"model": ref, "template": job.template}, where="--reference")
    return Reference(f"model: {ref}", model_bits(job, mcfg))


def saved_base_bits(job: BitsContext) -> dict[str, float]:
    """The run's own record of the base model's code lengths, for the poems of `job` it covers: by id and text (a
    record without text hashes, from an older run, by id for the run's own training set only)."""
    if job.run is None or not job.run.base_bits.is_file():
        return {}
    saved = read_json(job.run.base_bits)
    if "text_sha256" in saved:
        known = {(i, h): float(b) for i, h, b in zip(saved["ids"], saved["text_sha256"], saved["bits"])}
        return {p["id"]: known[(p["id"], poem_hash(p))] for p in job.poems if (p["id"], poem_hash(p)) in known}
    if not job.own_training_set:
        return {}
    by_id = dict(zip(saved["ids"], saved["bits"]))
    return {p["id"]: float(by_id[p["id"]]) for p in job.poems[: job.recited] if p["id"] in by_id}


def model_bits(job: BitsContext, mcfg: ModelConfig) -> list[float]:
    """Per poem code length under another model (its own tokenizer and end token), from one teacher-forced pass."""
    corpus = [p["prompt"] + "\n" + p["target"] for p in job.poems]
    device = job.scoring.device
    model, tok, _ = load_model(mcfg, corpus=corpus, dtype=job.dtype, device=device)
    model.to(device)
    items = encode_many(tok, job.poems, mcfg.template)
    scoring = dataclasses.replace(job.scoring, pad_id=tok.pad_token_id, end_ids=end_token_ids(tok, model))
    res = teacher_forced(model, items, scoring)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return [r.nll_sum / LN2 for r in res]


def memory_summary(nll_bits: list[float], reference: Reference | None, exact: list[bool], parameters: int) -> dict:
    """Totals of results.json: bits under the model and the reference, memorised bits, per parameter, and the
    same restricted to exactly recalled poems."""
    out: dict = {"nll_bits": round(sum(nll_bits), 3), "parameters": parameters}
    if reference is None:
        return {**out, "reference": None}
    mem = memorized(nll_bits, reference.bits)
    total = sum(mem)
    return {
        **out,
        "reference": reference.label,
        "reference_bits": round(sum(reference.bits), 3),
        "memorized_bits": round(total, 3),
        "memorized_fraction": total / sum(reference.bits) if sum(reference.bits) > 0 else 0.0,
        "bits_per_parameter": total / parameters if parameters else None,
        "memorized_bits_exact": round(sum(m for m, e in zip(mem, exact) if e), 3),
        "reference_bits_exact": round(sum(b for b, e in zip(reference.bits, exact) if e), 3),
    }


def memorized(nll_bits: list[float], ref_bits: list[float]) -> list[float]:
    return [max(0.0, r - b) for b, r in zip(nll_bits, ref_bits)]


def memory_speed(run: RunDir | None, tokens_per_epoch: int, levels: tuple[float, ...] = (0.5, 0.9)) -> dict:
    """Epochs (and training tokens) until the memory curve's recall first reached each level; None if never.

    Resolution: the run's recall_every (the curve is measured every that many epochs)."""
    curve = [(row["epoch"], row["recall"]) for row in (run.read_metrics() if run else []) if "recall" in row]
    if not curve:
        return {}
    out: dict = {"tokens_per_epoch": tokens_per_epoch, "curve_points": len(curve)}
    for level in levels:
        epoch = next((e for e, r in curve if r >= level), None)
        key = f"{round(level * 100)}"
        out[f"epochs_to_{key}"] = epoch
        out[f"tokens_to_{key}"] = epoch * tokens_per_epoch if epoch is not None else None
    return out
