"""Intervals over poems, shared by recitation (one run's exact recall) and the report (two runs' paired difference)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_ci(values: Sequence[float], resamples: int, seed: int) -> list[float]:
    """95 % percentile bootstrap interval of the mean of `values` (hits as 0/1, or paired differences per poem)."""
    if not len(values):
        return [0.0, 0.0]
    rng = np.random.default_rng(seed)
    arr = np.asarray(values, dtype=np.float64)
    means = arr[rng.integers(0, len(arr), size=(resamples, len(arr)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]
