"""Percentile bootstrap over seeds, for the statistics without a likelihood (slopes, medians, mean differences).

Every resample draws seed indices with replacement, the same indices in every
(τ, η) cell, so what one seed contributes to several cells moves together.
"""

import numpy as np

from analysis.intervals import NAN_INTERVAL, VERDICT_LEVEL, Interval


def bootstrap(statistic, n_seeds, n_boot=200, seed=0, level=VERDICT_LEVEL):
    """``statistic(seed_indices)`` on every seed, with a percentile interval over ``n_boot`` resamples.

    NaN ends when the estimate is NaN or fewer than half the resamples give a finite value.
    """
    value = float(statistic(np.arange(n_seeds)))
    if not np.isfinite(value):
        return NAN_INTERVAL
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(rng.integers(0, n_seeds, n_seeds)) for _ in range(n_boot)], dtype=float)
    draws = draws[np.isfinite(draws)]
    if draws.size < n_boot / 2:
        return Interval(value, np.nan, np.nan)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(value, float(min(low, value)), float(max(high, value)))
