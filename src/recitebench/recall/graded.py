"""Graded recall: the paper's four outcomes of a memory query, made measurable.

correct           the output equals the target (after the chosen normalisation; none by default)
minor distortion  wrong, but overlap >= minor_overlap
severe distortion wrong, with forgotten_overlap <= overlap < minor_overlap
forgotten         empty output, a refusal ("I do not know"), or unrelated text (overlap < forgotten_overlap)

Overlap is the F1 of the longest common subsequence of the two texts' units (a word of alphabetic text, a character
of CJK text): how much of the target the output recites, in order, and how much of the output is the target. It is
calibrated on the paper's own example (docs/VERDICTS.md; tests/test_recall.py keeps it as a golden test): against
Newton's first law, dropping a clause is a minor distortion (overlap 0.85), reciting the opening words with one word
changed is a severe distortion (0.36), "I do not know." is forgotten (0). Edit similarity, the earlier measure, is
still reported per poem; it graded the first answer severe (0.77 < 0.8) and the second forgotten (0.25 < 0.3),
because it charges a dropped clause character by character.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import asdict, dataclass

import numpy as np

from ..schema import OUTCOMES
from ..stats import wilson_interval

_REFUSALS = re.compile(
    r"(i\s*(do\s*not|don'?t)\s*know|i'?m\s*not\s*sure|i\s*(cannot|can'?t)\s*(recall|remember)|no\s*idea|"
    r"不知道|不清楚|不记得|无法回答|抱歉)",
    re.IGNORECASE,
)

_CJK_PUNCT = str.maketrans(
    {
        "。": ".",
        "、": ",",
        "“": '"',
        "”": '"',
        "‘": "'",
        "’": "'",
        "《": "<",
        "》": ">",
        "【": "[",
        "】": "]",
        "…": "...",
        "—": "-",
    }
)


def normalize(text: str, how: str) -> str:
    if how in ("width", "whitespace+width"):
        text = unicodedata.normalize("NFKC", text).translate(_CJK_PUNCT)
    if how in ("whitespace", "whitespace+width"):
        text = " ".join(text.split())
    return text


@dataclass
class Graded:
    outcome: str
    exact: bool
    similarity: float  # normalised Levenshtein similarity, 0..1
    prefix_chars: int  # characters before the first divergence
    line_accuracy: float  # share of target lines reproduced exactly at their position
    chrf: float  # chrF (sacrebleu), 0..100
    refusal: bool
    overlap: float  # F1 of the longest common subsequence of units: what the outcome is graded by

    def as_dict(self) -> dict:
        return asdict(self)


# A unit of text: one CJK character (or CJK/full-width punctuation), or one run of other non-space characters.
_CJK = "\u3400-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef"
UNIT = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")


def units(text: str) -> list[str]:
    return UNIT.findall(text)


def overlap(prediction: str, target: str) -> float:
    """F1 of the longest common subsequence of units: 1 for equal texts, 0 when they share no unit in order."""
    from rapidfuzz.distance import LCSseq  # the longest common subsequence over lists of units, in C

    p, t = units(prediction), units(target)
    if not p or not t:
        return float(p == t)
    common = LCSseq.similarity(p, t)
    return 0.0 if common == 0 else 2 * common / (len(p) + len(t))


def similarity(a: str, b: str) -> float:
    from rapidfuzz.distance import Levenshtein

    return float(Levenshtein.normalized_similarity(a, b))


def chrf(pred: str, target: str) -> float:
    from sacrebleu.metrics import CHRF

    return float(CHRF().sentence_score(pred, [target]).score)


def grade(
    prediction: str,
    target: str,
    *,
    normalization: str = "none",
    minor_overlap: float = 0.75,
    forgotten_overlap: float = 0.2,
    stopped: bool = True,
) -> Graded:
    """Grade one recitation. `stopped=False` (no end token) can never be `correct`."""
    p, t = normalize(prediction, normalization), normalize(target, normalization)
    exact = stopped and p == t
    sim = 1.0 if p == t else similarity(p, t)
    ov = 1.0 if p == t else overlap(p, t)
    t_lines, p_lines = t.split("\n"), p.split("\n")
    line_acc = sum(1 for i, line in enumerate(t_lines) if i < len(p_lines) and p_lines[i] == line) / len(t_lines)
    refusal = bool(_REFUSALS.search(p)) and ov < minor_overlap
    if exact:
        outcome = "correct"
    elif not p.strip() or refusal or ov < forgotten_overlap:
        outcome = "forgotten"
    elif ov >= minor_overlap:
        outcome = "minor_distortion"
    else:
        outcome = "severe_distortion"
    return Graded(
        outcome, exact, sim, len(os.path.commonprefix([p, t])), line_acc, 100.0 if p == t else chrf(p, t), refusal, ov
    )


def sample_totals(samples: list) -> dict:
    """Results' aggregate of graded samples: exact recall with its Wilson interval, the outcome counts, and the
    means of the per-poem figures (None where a sample lacks one, e.g. token counts of an import without a
    tokenizer)."""
    n, hits = len(samples), sum(s.exact for s in samples)

    def mean(key: str) -> float | None:
        vals = [getattr(s, key) for s in samples]
        if not vals:
            return 0.0
        return None if any(v is None for v in vals) else float(np.mean(vals))

    return {"exact_match": hits / n if n else 0.0, "n": n, "n_correct": hits,
            "exact_match_ci95": wilson_interval(hits, n), "exact_match_ci_method": "wilson",
            "outcomes": {o: sum(1 for s in samples if s.outcome == o) for o in OUTCOMES},
            **{f"mean_{k}": mean(k) for k in ("similarity", "prefix_chars", "prefix_tokens", "line_accuracy", "chrf")}}
