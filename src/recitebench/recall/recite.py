"""Recite every poem from its input and score it: exact match (the paper's Acc, Eq. 4) and graded recall.

The pipeline, top to bottom: prepare (model, tokenizer, poems) -> certify (one teacher-forced pass) ->
decode the rest -> verify a sample of certified poems -> grade each poem -> summarise -> write.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.profiler import record_function

from ..config import build, to_dict
from ..data.frozen import FrozenDataset, load_frozen
from ..devices import default_margin, eval_dtype, pick_device
from ..errors import RecitebenchError
from ..lock import writing
from ..models.certify import Scoring, TeacherResult, teacher_forced
from ..models.config import ModelConfig
from ..models.formatting import Encoded, decode_prediction, encode_many, end_token_ids
from ..models.kernels import apply_kernels
from ..models.load import load_model
from ..provenance import provenance
from ..rundir import RunDir
from ..schema import Results, Sample, write_recitation
from ..trackers import report_recitation
from .bits import LN2, BitsContext, Reference, memorized, memory_speed, memory_summary, reference_bits
from .config import ReciteConfig
from .controls import Scored, check_unseen, control_summary, heldout_set, score_set
from .decoders import Decoder, resolve_decoder
from .dose import dose_summary
from .generate import generation_overrides
from .graded import grade, sample_totals


@dataclass
class Job:
    """Everything the steps of one recitation share."""

    rcfg: ReciteConfig
    mcfg: ModelConfig
    data: FrozenDataset
    poems: list[dict]
    items: list[Encoded]
    model: torch.nn.Module
    tok: object
    info: dict
    dtype: torch.dtype
    scoring: Scoring  # device, pad and end tokens, margin, batch sizes: one setting for every pass
    kernels: str
    out: Path
    base: ModelConfig | None = None  # the run's model before training (the default reference of memorised bits)
    run: RunDir | None = None
    reference: Reference | None = None
    timings: dict[str, float] = field(default_factory=dict)
    trained_on: str | None = None  # the run's training set's sha256 when that set is the one recited

    @property
    def device(self) -> torch.device:
        return self.scoring.device

    def decoder(self, name: str) -> Decoder:
        cfg = build(ReciteConfig, {**to_dict(self.rcfg), "decoder": name})
        return resolve_decoder(cfg, self.model, model_dir=self.mcfg.model, scoring=self.scoring,
                               clean=self.rcfg.generation == "greedy")

    def bits_context(self, extra: list[dict] = ()) -> BitsContext:
        """What the reference is computed from: the recited poems, then `extra` ones (the held-out set)."""
        return BitsContext(self.rcfg.reference, self.poems + list(extra), self.data.path, self.mcfg.template,
                           self.dtype, self.scoring, self.base, self.run, own_training_set=self.trained_on is not None,
                           recited=len(self.poems))


@dataclass
class Certified:
    """The teacher-forced pass: its per-poem statistics (always computed: they give the bits) and what it proved."""

    teacher: list[TeacherResult]
    ids: set[int]  # empty when certification is off

    def safe_prefix(self, i: int) -> int:
        return self.teacher[i].safe_prefix if self.ids else 0


def recite(rcfg: ReciteConfig, mcfg: ModelConfig | None = None, *, log=print) -> Results:
    """Recite every poem of the dataset and write OUT/results.json + samples.jsonl (holding OUT's lock)."""
    t0 = time.perf_counter()
    where = resolve(rcfg, mcfg)
    with writing(where.out, "recitation folder"):
        return _recite(rcfg, where, t0, log)


def _recite(rcfg: ReciteConfig, where: Resolved, t0: float, log) -> Results:
    if where.run is not None and where.trained_on is None:
        log(f"note: reciting {where.data}, not the run's training set ({where.run.read_config()['train']['data']})")
    job = prepare(rcfg, where)
    job.timings["load"] = time.perf_counter() - t0
    log(
        f"reciting {len(job.items)} poems with {job.info['source']} on {job.device} "
        f"({str(job.dtype).replace('torch.', '')}, certify {'on' if rcfg.certify else 'off'}, decoder {rcfg.decoder})"
    )
    with _timed(job, "teacher_forced"), record_function("recitebench.teacher_forced"):
        certified = certify(job)
    held = heldout_set(rcfg.heldout, job.data)
    if held is not None:
        check_unseen(held.poems, job.data, "the recited set (held-out poems must be non-members)")
    with _timed(job, "reference"):  # members and held-out poems under one load of the reference
        both = reference_bits(job.bits_context(extra=held.poems if held else []))
        job.reference = None if both is None else Reference(both.label, both.bits[: len(job.poems)])
    with _timed(job, "controls"):
        held_ref = None if both is None else both.bits[len(job.poems):]
        controls, heldout_rows = heldout_controls(job, certified, held, held_ref)
    with _timed(job, "generate"):
        decoder = job.decoder(rcfg.decoder)
        with record_function("recitebench.decode"):  # named regions for bench/recite_bench.py --profile
            decoded = decode_rest(job, certified, decoder)
        verification = verify(job, certified)
    with _timed(job, "score"):
        samples = [grade_poem(job, i, certified, decoded) for i in range(len(job.items))]
    job.timings["total"] = time.perf_counter() - t0
    results = summarise(job, samples, certified, decoder if decoded else None, verification)
    results.controls = controls
    results.by_exposure = dose_summary(job.poems, [s.exact for s in samples],
                                       [s.memorized_bits for s in samples] if job.reference else None,
                                       job.reference.bits if job.reference else None, _epochs_trained(where, rcfg))
    write_recitation(job.out, results, samples, heldout_rows)
    if job.run is not None:  # a tracked run's trackers get its recitations too
        report_recitation(job.run.path, job.out, results)
    log(
        f"exact recall {results.exact_match:.1%} ({results.n_correct}/{results.n}); decided by teacher forcing: "
        f"{len(certified.ids)}, by generation: {len(decoded)}; wrote {job.out}/results.json"
        + (f"; {results.invalid_utf8} predictions hold invalid UTF-8 (shown as U+FFFD)" if results.invalid_utf8 else "")
        + _near_tie_note(results.near_ties)
    )
    return results


def heldout_controls(job: Job, certified: Certified, ds: FrozenDataset | None,
                     ref: list[float] | None) -> tuple[dict, list[dict] | None]:
    """The held-out set `ds` scored beside the members (results.json `controls`, heldout.jsonl), or ({}, None);
    `ref`: its poems' bits under the reference (scored with the members')."""
    if ds is None:
        return {}, None
    bits, tokens = score_set(job.model, job.tok, job.mcfg.template, job.scoring, ds.poems)
    members = Scored([p["id"] for p in job.poems], [t.nll_sum / LN2 for t in certified.teacher],
                     job.reference.bits if job.reference else None, [len(it.target_ids) for it in job.items])
    heldout = Scored([p["id"] for p in ds.poems], bits, ref, tokens)
    rows = [{"id": i, "nll_bits": round(b, 4), "ref_bits": None if ref is None else round(ref[k], 4), "tokens": n}
            for k, (i, b, n) in enumerate(zip(heldout.ids, bits, tokens))]
    label = job.reference.label if job.reference else None
    return control_summary(members, heldout, label, ds), rows


def _near_tie_note(t: dict) -> str:
    if not t.get("n"):
        return ""
    lo, hi = t["exact_match_range"]
    return (f"; {t['n']} verdicts rest on a lead within the margin {t['margin']:g} (exact recall "
            f"{lo:.1%}-{hi:.1%} if each went the other way)")


class _timed:
    def __init__(self, job: Job, key: str):
        self.job, self.key = job, key

    def __enter__(self):
        self.t = time.perf_counter()

    def __exit__(self, *exc):
        self.job.timings[self.key] = time.perf_counter() - self.t


@dataclass
class Resolved:
    model: ModelConfig  # what is recited
    data: Path
    out: Path
    trained_on: str | None  # sha256 the run was trained on, when the run's own dataset is recited
    base: ModelConfig | None = None  # the run's model before training
    run: RunDir | None = None


def resolve(rcfg: ReciteConfig, mcfg: ModelConfig | None) -> Resolved:
    """The model, dataset and output folder, from a run folder or flags."""
    if not rcfg.run:
        if mcfg is None or not rcfg.data:
            raise RecitebenchError("recite needs --run RUN, or --model MODEL with --data DATASET")
        return Resolved(mcfg, Path(rcfg.data), Path(rcfg.out or "recite_out"), None)
    run = RunDir(rcfg.run)
    saved = run.read_config()
    weights = run.snapshots / rcfg.snapshot if rcfg.snapshot else run.model
    if rcfg.snapshot and not (weights / "config.json").is_file():
        have = ", ".join(sorted(p.name for p in run.snapshots.glob("epoch_*"))) or "none"
        raise RecitebenchError(f"{weights}: no such snapshot (the run has: {have})")
    if not run.has_model() and not rcfg.snapshot:
        raise RecitebenchError(
            f"{run.path}: the run has no final model yet (finish it with `recitebench train --out {run.path} --resume`)"
        )
    template = saved.get("model", {}).get("template", "plain")
    attn = mcfg.attn_implementation if mcfg else "sdpa"
    run_model = build(
        ModelConfig,
        {"model": str(weights), "init": "pretrained", "template": template, "attn_implementation": attn},
        where=str(run.config),
    )
    base = None
    if saved.get("model"):  # the same config, with the run's tokenizer: a scratch model gets the same init
        tokenizer = str(run.tokenizer) if run.tokenizer.is_dir() else saved["model"].get("tokenizer")
        try:
            base = build(ModelConfig, {**saved["model"], "tokenizer": tokenizer, "attn_implementation": attn},
                         where=str(run.config))
        except RecitebenchError:  # its architecture file moved since: the run's base_bits.json still serves
            base = None
    trained_on = None if rcfg.data else saved.get("dataset", {}).get("poems_sha256")
    out = Path(rcfg.out) if rcfg.out else run.path / f"recite_{rcfg.snapshot}" if rcfg.snapshot else run.recite
    return Resolved(run_model, Path(rcfg.data or saved["train"]["data"]), out, trained_on,
                    base, run)


def prepare(rcfg: ReciteConfig, where: Resolved) -> Job:
    mcfg, trained_on = where.model, where.trained_on
    ds = load_frozen(where.data)
    if trained_on and ds.sha256 != trained_on:
        raise RecitebenchError(f"{where.data}: the dataset changed since {rcfg.run} was trained on it (sha256 "
                               f"{trained_on[:12]} then, {ds.sha256[:12]} now); pass --data to recite another dataset")
    poems = ds.poems[: rcfg.limit] if rcfg.limit else ds.poems
    device = pick_device(rcfg.device)
    dtype = eval_dtype(rcfg.precision, device)
    t0 = time.perf_counter()
    model, tok, info = load_model(
        mcfg, corpus=[p["prompt"] + "\n" + p["target"] for p in poems], dtype=dtype, device=device
    )
    model.to(device)
    t1 = time.perf_counter()
    kernels = apply_kernels(model, rcfg.kernels, device)
    t2 = time.perf_counter()
    items = encode_many(tok, poems, mcfg.template)
    # the parts of "load" that a slow start-up can come from (the rest is reading the run's config and dataset)
    parts = {"load_weights": t1 - t0, "load_kernels": t2 - t1, "load_encode": time.perf_counter() - t2}
    margin = rcfg.margin if rcfg.margin is not None else default_margin(dtype)
    scoring = Scoring(device, tok.pad_token_id, end_token_ids(tok, model), margin, None, rcfg.batch_size,
                      rcfg.batch_tokens)
    return Job(rcfg, mcfg, ds, poems, items, model, tok, info, dtype, scoring, kernels, where.out, where.base,
               where.run, timings=parts, trained_on=where.trained_on)


def certify(job: Job) -> Certified:
    """The teacher-forced pass (always: it gives every poem's code length in bits) and the poems whose every greedy
    step it proves (lead over the margin) when certification is on."""
    teacher = teacher_forced(job.model, job.items, job.scoring)
    if not job.rcfg.certify or job.rcfg.generation == "model":
        return Certified(teacher, set())
    return Certified(teacher, {i for i, r in enumerate(teacher) if r.certified})


def decode_rest(job: Job, certified: Certified, decoder: Decoder) -> dict[int, list[int]]:
    """Greedy output ids of every poem not certified, decoded after the prefix the pass proved."""
    todo = [i for i in range(len(job.items)) if i not in certified.ids]
    prefixes = [list(job.items[i].target_ids[: certified.safe_prefix(i)]) for i in todo]
    return dict(zip(todo, decoder.decode([job.items[i] for i in todo], prefixes)))


def verify(job: Job, certified: Certified) -> dict:
    """Decode a seeded sample of certified poems from scratch with HF generate() and count agreement."""
    rcfg = job.rcfg
    if not rcfg.verify or not certified.ids:
        return {"n": 0, "agree": 0, "rate": None}
    ids = sorted(random.Random(rcfg.seed).sample(sorted(certified.ids), min(rcfg.verify, len(certified.ids))))
    decoder = job.decoder("generate")
    outputs = decoder.decode([job.items[i] for i in ids], [[] for _ in ids])
    agree = sum(out == job.items[i].target_ids for i, out in zip(ids, outputs))
    return {"n": len(ids), "agree": agree, "rate": agree / len(ids)}


def grade_poem(job: Job, i: int, certified: Certified, decoded: dict[int, list[int]]) -> Sample:
    poem, item, rcfg = job.poems[i], job.items[i], job.rcfg
    ids = item.target_ids if i in certified.ids else decoded[i]
    text, stopped = decode_prediction(job.tok, ids, job.scoring.end_ids)  # a certified poem's text is its own
    g = grade(text, poem["target"], normalization=rcfg.normalize, minor_overlap=rcfg.minor_overlap,
              forgotten_overlap=rcfg.forgotten_overlap, stopped=stopped)
    n_target = len(item.target_ids) - 1
    prefix = next((k for k, (a, b) in enumerate(zip(ids, item.target_ids[:-1])) if a != b), min(len(ids), n_target))
    r = certified.teacher[i]
    tf = {"tf_token_accuracy": r.token_accuracy, "tf_loss": r.loss, "tf_min_margin": r.min_margin,
          "nll_bits": r.nll_sum / LN2}
    if job.reference is not None:
        ref = job.reference.bits[i]
        tf.update(ref_bits=ref, memorized_bits=memorized([tf["nll_bits"]], [ref])[0])
    return Sample(
        id=poem["id"],
        prompt=poem["prompt"],
        target=poem["target"],
        prediction=text,
        decided_by="certified" if i in certified.ids else "generated",
        stopped=stopped,
        chars=len(poem["prompt"]) + len(poem["target"]),
        target_tokens=n_target,
        prefix_tokens=prefix,
        **g.as_dict(),
        **tf,
    )


def near_ties(samples: list[Sample], margin: float) -> dict:
    """Poems whose verdict rests on a step where the poem's token leads or trails its rival by less than the margin.
    Rounding (batch shape, padding, kernels, precision) can flip such a step, so these verdicts are the fragile ones:
    one such poem made a batched bf16 generate() disagree with the same greedy decoding of the poem alone
    (BENCHMARKS.md). A poem with a step lost by more than the margin stays wrong whatever its near-ties do."""
    fragile = [s for s in samples if s.tf_min_margin is not None and abs(s.tf_min_margin) < margin]
    n, exact = len(samples), sum(s.exact for s in samples)
    won = sum(s.exact for s in fragile)
    return {"margin": margin, "n": len(fragile), "exact": won, "not_exact": len(fragile) - won,
            "exact_match_range": [(exact - won) / n, (exact + len(fragile) - won) / n] if n else [0.0, 0.0]}


def _epochs_trained(where: Resolved, rcfg: ReciteConfig) -> int | None:
    """The epochs the recited weights were trained for on the recited set (a dose set's exposures per epoch times
    this are its total exposures); None for a model without its run, or a set the run was not trained on."""
    if where.run is None or where.trained_on is None:
        return None
    if rcfg.snapshot:  # snapshots are named epoch_N
        tail = rcfg.snapshot.rpartition("_")[2]
        return int(tail) if tail.isdigit() else None
    try:
        return int(where.run.read_summary()["epochs_done"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def error_rates(samples: list[Sample], run: RunDir | None) -> dict:
    """What separates "memorised less" from "more chances to err" on longer poems: the per-character error rate of
    the recitations (edit distance over target characters), the teacher-forced per-token error rate (poem and end
    token positions whose arg-max is wrong), and the memory curve's last three recall checks, whose mean is a less
    noisy outcome than the last check alone."""
    from rapidfuzz.distance import Levenshtein

    chars = sum(len(s.target) for s in samples)
    cer = sum(Levenshtein.distance(s.prediction, s.target) for s in samples) / chars if chars else 0.0
    scored = [(s.tf_token_accuracy, s.target_tokens + 1) for s in samples if s.tf_token_accuracy is not None]
    ter = 1 - sum(a * n for a, n in scored) / sum(n for _, n in scored) if scored else None
    curve = [row["recall"] for row in (run.read_metrics() if run else []) if "recall" in row]
    last3 = curve[-3:]
    return {"char_error_rate": cer, "token_error_rate": ter,
            "recall_last3_mean": sum(last3) / len(last3) if last3 else None, "recall_last3": last3}


def training_set(job: Job) -> bool | None:
    """Whether a run recited the very poems it was trained on (None: no run)."""
    if job.run is None:
        return None
    return job.data.sha256 == (job.run.read_config().get("dataset") or {}).get("poems_sha256")


def invalid_utf8(prediction: str, target: str) -> bool:
    """A byte-level model can emit token sequences that are not UTF-8; decoding shows them as U+FFFD."""
    return prediction.count("\ufffd") > target.count("\ufffd")


def summarise(
    job: Job, samples: list[Sample], certified: Certified, decoder: Decoder | None, verification: dict
) -> Results:
    rcfg, n = job.rcfg, len(samples)
    hits = [s.exact for s in samples]
    return Results(
        **sample_totals(samples),
        invalid_utf8=sum(invalid_utf8(s.prediction, s.target) for s in samples),
        decided_by={
            "certified": len(certified.ids),
            "generated": n - len(certified.ids),
            "generated_by_draft": decoder.by_draft if decoder else 0,
        },
        decoder=decoder.name if decoder else None,
        kernels=job.kernels,
        verification=verification,
        normalization=rcfg.normalize,
        thresholds=rcfg.thresholds(),
        end_token_ids=list(job.scoring.end_ids), generation=rcfg.generation,
        generation_overrides=generation_overrides(job.model),
        not_round_trip=sum(not it.round_trip for it in job.items),
        memory=memory_summary([s.nll_bits or 0.0 for s in samples], job.reference, hits, job.info["parameters"]),
        speed=memory_speed(job.run, sum(it.length - 1 for it in job.items)),
        near_ties=near_ties(samples, job.scoring.margin),
        error_rates=error_rates(samples, job.run),
        certify_margin=job.scoring.margin if rcfg.certify and rcfg.generation == "greedy" else None,
        model=job.info,
        template=job.mcfg.template,
        dataset={
            "path": str(job.data.path),
            "poems_sha256": job.data.sha256,
            "preset": job.data.manifest.get("preset"),
            "source": job.data.manifest.get("source"),
            "training_set": training_set(job),
        },
        config={"recite": to_dict(rcfg), "model": to_dict(job.mcfg)},
        seed=rcfg.seed,
        device=str(job.device),
        dtype=str(job.dtype).replace("torch.", ""),
        timings_s={k: round(v, 3) for k, v in job.timings.items()},
        **provenance(),
    )
