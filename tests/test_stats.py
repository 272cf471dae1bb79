"""Every interval the tool reports, checked against a library (scipy) or a property that fails on nonsense."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sp

from recitebench import stats


def test_the_t_quantile_is_scipys_past_nine_degrees_of_freedom():
    assert stats.t_quantile(11) == pytest.approx(sp.t.ppf(0.975, 11))
    assert stats.t_quantile(11) > 1.96 * 1.1  # the old table's fallback was ~12 % too narrow at 11 seeds
    iv = stats.mean_interval([1.0, 2.0, 3.0, 4.0])
    lo, hi = sp.t.interval(0.95, 3, loc=2.5, scale=sp.sem([1.0, 2.0, 3.0, 4.0]))
    assert (iv["low"], iv["high"]) == pytest.approx((lo, hi))


def test_wilson_is_scipys_and_not_degenerate_at_the_ceiling():
    assert stats.wilson_interval(1990, 2000) == pytest.approx(
        list(sp.binomtest(1990, 2000).proportion_ci(method="wilson")[:2]))
    lo, hi = stats.wilson_interval(2000, 2000)
    assert lo < 1.0 and hi == pytest.approx(1.0) and 0 <= lo


def test_three_seeds_at_the_ceiling_stay_inside_the_unit_interval():
    """Seeds at 97-100 %: the raw t-interval reaches past 100 %; the reported one does not."""
    hits, n = [1940, 1990, 2000], 2000
    raw = stats.mean_interval([k / n for k in hits])
    assert raw["high"] > 1.0  # the old figure's shape: 96.5 % [91.8, 101.1]
    iv = stats.seed_proportion_interval(hits, [n] * 3)
    assert 0.0 < iv["low"] < iv["mean"] < iv["high"] < 1.0


def test_a_hierarchical_difference_carries_seed_noise():
    """Two configurations whose seeds differ by a few points: the seed-aware interval is wider than poems alone."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = [rng.random(2000) < p for p in (0.93, 0.97, 0.95)]
    b = [rng.random(2000) < p for p in (0.95, 0.99, 0.96)]
    hier = stats.hierarchical_difference(a, b, resamples=500)
    pooled = stats.hierarchical_difference([np.concatenate(a)], [np.concatenate(b)], resamples=500)
    assert hier["high"] - hier["low"] > 2 * (pooled["high"] - pooled["low"])
    assert hier["low"] < hier["difference"] < hier["high"] and "seeds, then poems" in hier["method"]


def test_holm_matches_its_definition():
    p = [0.01, 0.04, 0.03, 0.2, 0.037]
    adj = stats.holm(p)  # sorted: .01*5, .03*4, .037*3, .04*2, .2*1, made monotone
    assert adj == pytest.approx([0.05, 0.12, 0.12, 0.2, 0.12])
    assert all(a >= b for a, b in zip(adj, p))


@pytest.mark.parametrize("low,high,effect,word", [(0.1, 1.6, 1.0, "supported"), (-5.0, 3.7, 4.0, "not supported"),
                                                  (-2.5, 6.1, 4.0, "inconclusive")])
def test_the_verdict_word_comes_from_the_interval(low, high, effect, word):
    assert stats.verdict(low, high, effect) == word
    assert not math.isnan(low)
