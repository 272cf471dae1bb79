"""Graded recall: the paper's four outcomes of a memory query, made measurable.

correct           the output equals the target (after the chosen normalisation; none by default)
minor distortion  wrong, but edit similarity >= minor_similarity
severe distortion wrong, with forgotten_similarity <= similarity < minor_similarity
forgotten         empty output, a refusal ("I do not know"), or unrelated text (similarity < forgotten_similarity)
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import asdict, dataclass

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

    def as_dict(self) -> dict:
        return asdict(self)


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
    minor_similarity: float = 0.8,
    forgotten_similarity: float = 0.3,
    stopped: bool = True,
) -> Graded:
    """Grade one recitation. `stopped=False` (no end token) can never be `correct`."""
    p, t = normalize(prediction, normalization), normalize(target, normalization)
    exact = stopped and p == t
    sim = 1.0 if p == t else similarity(p, t)
    t_lines, p_lines = t.split("\n"), p.split("\n")
    line_acc = sum(1 for i, line in enumerate(t_lines) if i < len(p_lines) and p_lines[i] == line) / len(t_lines)
    refusal = bool(_REFUSALS.search(p)) and sim < minor_similarity
    if exact:
        outcome = "correct"
    elif not p.strip() or refusal or sim < forgotten_similarity:
        outcome = "forgotten"
    elif sim >= minor_similarity:
        outcome = "minor_distortion"
    else:
        outcome = "severe_distortion"
    return Graded(
        outcome, exact, sim, len(os.path.commonprefix([p, t])), line_acc, 100.0 if p == t else chrf(p, t), refusal
    )
