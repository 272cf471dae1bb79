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


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """Mean with a t-interval over seeds (None with one seed), and the values themselves. For quantities without
    bounds (bits, sizes); a proportion over poems has wilson_interval."""
    k = len(values)
    mean = sum(values) / k
    if k < 2:
        return {"mean": mean, "low": None, "high": None, "per_seed": list(values)}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1))
    half = t_quantile(k - 1, confidence) * sd / math.sqrt(k)
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
