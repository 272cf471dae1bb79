"""Every interval the tool reports, in one place: over poems (one run) and over seeds (a configuration).

Library distributions (scipy) where one exists: a t quantile is scipy's, not a table that stops at 9 degrees of
freedom (a 1.96 fallback is ~12 % too narrow at 11 seeds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95


def bootstrap_ci(values: Sequence[float], resamples: int, seed: int) -> list[float]:
    """95 % percentile bootstrap interval of the mean of `values` (hits as 0/1, or paired differences per poem)."""
    if not len(values):
        return [0.0, 0.0]
    rng = np.random.default_rng(seed)
    arr = np.asarray(values, dtype=np.float64)
    means = arr[rng.integers(0, len(arr), size=(resamples, len(arr)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student t quantile (scipy)."""
    from scipy.stats import t  # scipy is imported where an interval is computed, not at start-up

    return float(t.ppf(0.5 + confidence / 2, df))


def _t_half(values: Sequence[float], confidence: float) -> tuple[float, float]:
    """(mean, half-width of its t-interval) of two or more values."""
    k = len(values)
    mean = sum(values) / k
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1))
    return mean, t_quantile(k - 1, confidence) * sd / math.sqrt(k)


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """Mean with a t-interval over seeds (None with one seed), and the values themselves. For quantities without
    bounds (bits, sizes); a proportion over poems has wilson_interval."""
    if len(values) < 2:
        return {"mean": sum(values) / len(values), "low": None, "high": None, "per_seed": list(values)}
    mean, half = _t_half(values, confidence)
    return {"mean": mean, "low": mean - half, "high": mean + half, "per_seed": list(values)}


def welch_difference(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE
                     ) -> tuple[float, float, float]:
    """mean(a) - mean(b) with Welch's t-interval, the Welch-Satterthwaite degrees of freedom rounded down (the
    conservative convention docs/STUDY.md states)."""
    va, vb = (sum((v - sum(x) / len(x)) ** 2 for v in x) / (len(x) - 1) / len(x) for x in (a, b))  # var / n
    df = math.floor((va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)))
    d = sum(a) / len(a) - sum(b) / len(b)
    half = t_quantile(df, confidence) * math.sqrt(va + vb)
    return d, d - half, d + half


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> list[float]:
    """Wilson score interval of a proportion k / n (scipy's binomtest): inside [0, 1] by construction, and not
    degenerate at 0 % or 100 % as a percentile bootstrap of 0/1 hits is."""
    if n == 0:
        return [0.0, 1.0]
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return [float(ci.low), float(ci.high)]


def seed_proportion_interval(hits: Sequence[int], totals: Sequence[int], confidence: float = CONFIDENCE) -> dict:
    """A configuration's proportion over seeds (seed i: hits[i] of totals[i]) with a t-interval on the logit scale,
    back-transformed: inside (0, 1) whatever the seeds (a t-interval on the raw proportions at 97-100 % reaches past
    100 %). Each seed's logit uses (k + 0.5) / (n + 1), finite at 0 % and 100 %."""
    props = [k / n for k, n in zip(hits, totals)]
    mean = sum(props) / len(props)
    if len(props) < 2:
        return {"mean": mean, "low": None, "high": None, "per_seed": props, "method": "one seed"}
    zm, half = _t_half([math.log((k + 0.5) / (n - k + 0.5)) for k, n in zip(hits, totals)], confidence)
    low, high = (1 / (1 + math.exp(-(zm + h))) for h in (-half, half))
    return {"mean": mean, "low": low, "high": high, "per_seed": props, "method": "t over seeds, logit scale"}


def hierarchical_difference(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], resamples: int = 2000,
                            seed: int = 0, confidence: float = CONFIDENCE) -> dict:
    """mean(b) - mean(a) for two configurations, each a list of seeds holding per-poem outcomes (0/1), with a
    hierarchical bootstrap: seeds are resampled, then poems within each drawn seed, so the interval carries the
    seed-to-seed variance as well as the poems'. With one seed per side it is a bootstrap over poems only."""
    rng = np.random.default_rng(seed)
    arrs = [[np.asarray(s, dtype=np.float64) for s in side] for side in (a, b)]

    def draw(side: list[np.ndarray]) -> float:
        picks = rng.integers(0, len(side), size=len(side))
        return float(np.mean([side[i][rng.integers(0, len(side[i]), size=len(side[i]))].mean() for i in picks]))

    diffs = np.array([draw(arrs[1]) - draw(arrs[0]) for _ in range(resamples)])
    point = float(np.mean([s.mean() for s in arrs[1]]) - np.mean([s.mean() for s in arrs[0]]))
    tail = 100 * (1 - confidence) / 2
    method = ("hierarchical bootstrap (seeds, then poems)" if min(len(a), len(b)) > 1
              else "bootstrap over poems (one seed per side: no seed variance)")
    return {"difference": point, "low": float(np.percentile(diffs, tail)),
            "high": float(np.percentile(diffs, 100 - tail)), "seeds": [len(a), len(b)], "method": method}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error across a study's claims), in the input order."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [0.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def verdict(low: float, high: float, paper_effect: float) -> str:
    """The verdict word from a claim's interval of (claimed direction positive) effect, after correction:
    supported when the whole interval is above 0; not supported when it excludes an effect of the paper's size
    (high < paper_effect); otherwise inconclusive."""
    if low > 0:
        return "supported"
    if high < paper_effect:
        return "not supported"
    return "inconclusive"


def welch_pvalue(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p of Welch's t-test of mean(a) = mean(b) over seeds (scipy), e.g. the seeds' exact recall."""
    from scipy.stats import ttest_ind

    return float(ttest_ind(list(a), list(b), equal_var=False).pvalue)


def claim_verdict(low: float, high: float, effect_of_interest: float, p_adjusted: float | None, alpha: float,
                  problems: Sequence[str] = ()) -> tuple[str, str]:
    """(verdict, reason) of a claim that `better` memorises more, from its family-wise interval of the difference
    and its multiplicity-adjusted p over seeds: supported needs both (interval above 0, adjusted p < alpha); not
    supported needs the interval to exclude the effect of interest; a failed design check (one seed, an untuned
    rate) makes any verdict inconclusive, and the reason says what the numbers alone would give."""
    numbers = verdict(low, high, effect_of_interest)
    if numbers == "supported" and (p_adjusted is None or p_adjusted >= alpha):
        numbers = "inconclusive"
    reasons = {"supported": f"interval above 0 and adjusted p < {alpha:g}",
               "not supported": f"interval below the effect of interest ({100 * effect_of_interest:+.1f} points)",
               "inconclusive": "the interval neither excludes 0 (with adjusted p < alpha) nor the effect of interest"}
    if problems:
        return "inconclusive", f"a design check fails (the numbers alone: {numbers})"
    return numbers, reasons[numbers]


def auc_interval(positive: Sequence[float], negative: Sequence[float], resamples: int = 1000, seed: int = 0,
                 confidence: float = CONFIDENCE) -> dict:
    """ROC AUC of scores that should rank `positive` above `negative` (the Mann-Whitney U / (n1 n2), ties half;
    scipy), with a percentile bootstrap interval that resamples each class within itself."""
    from scipy.stats import mannwhitneyu

    pos, neg = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    if len(pos) == 0 or len(neg) == 0:
        return {"auc": None, "ci95": None, "n": [len(pos), len(neg)]}

    def auc(p: np.ndarray, q: np.ndarray) -> float:
        return float(mannwhitneyu(p, q, alternative="two-sided").statistic / (len(p) * len(q)))

    rng = np.random.default_rng(seed)
    draws = [auc(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))) for _ in range(resamples)]
    tail = 100 * (1 - confidence) / 2
    return {"auc": auc(pos, neg), "ci95": [float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))],
            "n": [len(pos), len(neg)], "method": "Mann-Whitney AUC, stratified bootstrap"}
