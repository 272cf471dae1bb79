"""The results schema: what `recitebench recite` writes and every reader (report, index, bench) reads.

results.json holds one `Results`; samples.jsonl one `Sample` per poem. `schema_version` counts breaking
changes: 1 = the unversioned files of recitebench 0.1 (certified predictions were the placeholder
"= target"), 2 = certified poems carry their real text, 3 = outcomes graded by overlap (LCS F1 of units) and a
Wilson interval for exact_match, 4 = `controls` (held-out non-members and membership AUC; heldout.jsonl), 5 =
`by_exposure` (recall and memorised bits per exposure level of a dose set; with the run's epochs, the exposures
in all).
Readers accept every version.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .io import read_json, read_jsonl, write_json, write_jsonl

SCHEMA_VERSION = 5
LEGACY_CERTIFIED = "= target"  # schema 1's prediction for a certified poem
# The paper's four outcomes of a memory query, best first (recall.graded decides them; the report shows them).
OUTCOMES = ("correct", "minor_distortion", "severe_distortion", "forgotten")


@dataclass
class Sample:
    """One poem's recitation and its grades."""

    id: str
    prompt: str
    target: str
    prediction: str  # the recited text before the end token (a certified poem: the text greedy decoding yields)
    decided_by: str  # certified | generated
    stopped: bool  # an end token was produced
    chars: int  # len(prompt) + len(target)
    target_tokens: int  # poem tokens, end token excluded
    prefix_tokens: int  # poem tokens reproduced before the first wrong one
    outcome: str  # correct | minor_distortion | severe_distortion | forgotten
    exact: bool
    similarity: float
    prefix_chars: int
    line_accuracy: float
    chrf: float
    refusal: bool
    overlap: float | None = None  # LCS F1 of units, the outcome's measure (schema 3; before: graded by similarity)
    tf_token_accuracy: float | None = None  # teacher-forced statistics (absent when certification is off)
    tf_loss: float | None = None
    tf_min_margin: float | None = None
    nll_bits: float | None = None  # -log2 p(poem + end token | prompt) under the recited model
    ref_bits: float | None = None  # the same under the reference (results.memory.reference names it)
    memorized_bits: float | None = None  # max(0, ref_bits - nll_bits)

    @classmethod
    def from_dict(cls, d: dict) -> Sample:
        s = cls(**{f.name: d.get(f.name) for f in dataclasses.fields(cls) if f.name in d})
        if s.prediction == LEGACY_CERTIFIED:
            s.prediction = s.target
        return s


@dataclass
class Results:
    """The aggregate of one recitation of a dataset by a model, with its provenance."""

    exact_match: float  # the paper's Acc (Eq. 4)
    n: int
    n_correct: int
    exact_match_ci95: list[float]  # 95 % over poems: Wilson (schema 3), a percentile bootstrap before
    outcomes: dict[str, int]
    mean_similarity: float
    mean_prefix_chars: float
    mean_prefix_tokens: float
    mean_line_accuracy: float
    mean_chrf: float
    decided_by: dict[str, int]  # certified / generated / generated_by_draft
    decoder: str | None  # the decoder that finished the uncertified poems (None: none were left)
    kernels: str
    verification: dict  # certified poems decoded again with generate(): n, agree, rate
    normalization: str
    thresholds: dict[str, float]
    certify_margin: float | None
    model: dict
    template: str
    dataset: dict
    config: dict
    seed: int
    device: str
    dtype: str
    timings_s: dict[str, float]
    end_token_ids: list[int] = field(default_factory=list)  # any of these ends a recitation
    generation: str = "greedy"  # greedy (the definition) or model (the model's own generation_config)
    generation_overrides: dict = field(default_factory=dict)  # the model's settings plain greedy decoding ignored
    not_round_trip: int = 0  # poems whose tokens do not decode back to their text: never certified
    invalid_utf8: int = 0  # predictions with bytes that are not UTF-8 (decoded as U+FFFD where the target has none)
    memory: dict = field(default_factory=dict)  # bits: under the model, the reference, memorised, per parameter
    speed: dict = field(default_factory=dict)  # epochs and training tokens to 50 % / 90 % recall (a run's curve)
    near_ties: dict = field(default_factory=dict)  # verdicts resting on a lead within the margin, and Acc's range
    error_rates: dict = field(default_factory=dict)  # per character, per token, and the curve's last three checks
    controls: dict = field(default_factory=dict)  # held-out non-members beside the members, membership AUC (schema 4)
    by_exposure: dict = field(default_factory=dict)  # a dose set: recall and bits per exposure level (schema 5)
    versions: dict = field(default_factory=dict)
    git_commit: str | None = None
    hardware: dict = field(default_factory=dict)
    created_at: str | None = None
    exact_match_ci_method: str = "bootstrap"  # wilson since schema 3
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, d: dict) -> Results:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(
            **{k: v for k, v in d.items() if k in names}, **({} if "schema_version" in d else {"schema_version": 1})
        )


def write_recitation(out: Path, results: Results, samples: list[Sample], heldout: list[dict] | None = None) -> None:
    """samples.jsonl (and heldout.jsonl, the control set's per-poem bits) first, then results.json: a results file
    never points at missing samples."""
    write_jsonl(out / "samples.jsonl", (asdict(s) for s in samples))
    if heldout is not None:
        write_jsonl(out / "heldout.jsonl", heldout)
    elif (out / "heldout.jsonl").is_file():
        (out / "heldout.jsonl").unlink()  # a recitation without a control set keeps no stale one
    write_json(out / "results.json", asdict(results))


def read_results(folder: Path) -> Results:
    return Results.from_dict(read_json(Path(folder) / "results.json"))


def read_samples(folder: Path) -> list[Sample] | None:
    """The per-poem log; None where a run was kept without it (docs/study_results keeps results.json only)."""
    path = Path(folder) / "samples.jsonl"
    return [Sample.from_dict(d) for d in read_jsonl(path)] if path.is_file() else None
