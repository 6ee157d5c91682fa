"""Verdicts on the paper's predictions: an equivalence test on a measured interval (docs/statistics.md §7).

A prediction states that a measured quantity equals ``theory`` up to ``tolerance`` (the practical
margin: what would still count as the law), or, for a bound, that it is at most ``theory``. Given the
two-sided 90 % interval [low, high] (:data:`analysis.intervals.VERDICT_LEVEL`):

* **holds** iff [low, high] ⊂ [theory − tol, theory + tol]: both one-sided tests of "outside the margin"
  reject at 5 % (two one-sided tests, TOST);
* **fails** iff [low, high] ∩ [theory − tol, theory + tol] = ∅: the quantity is outside the margin at 5 %;
* **inconclusive** otherwise, and whenever an end is NaN (not estimable). An infinite end (a one-sided
  interval) can still fail: c_hor ∈ [x, inf] with x above theory + tol does.

For a bound (measured ≤ theory): holds iff high ≤ theory + tol; fails iff low > theory + tol.

Seeds needed. Interval half-widths shrink like 1/√n with the number of seeds n; with the interval's
upper and lower half-widths u = high − value, l = value − low observed at n seeds, n′ seeds give
u√(n/n′), l√(n/n′). The smallest n′ at which the rule would be decisive at the same estimate is
n′ = ⌈n / s²⌉, s the largest shrink factor that fits the interval inside the margin (holds) or clear
of it (fails); none when the estimate sits on the margin's edge, or the interval is not finite.
"""

import math
from typing import NamedTuple

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"


class Prediction(NamedTuple):
    """One prediction of the paper as a checkable statement."""

    key: str
    """Short name used in tables and JSON."""
    statement: str
    """The prediction in words and symbols."""
    theory: float
    """The theory's value of the measured quantity."""
    tolerance: float
    """Practical margin around ``theory`` inside which the law counts as holding."""
    bound: bool = False
    """True when the prediction is ``measured ≤ theory`` rather than ``measured = theory``."""


PREDICTIONS = (
    Prediction("a", "η_max ∝ τ^−a on the local branch of the boundary, a = 1 (32), (36)", 1.0, 0.25),
    Prediction("b", "t* ∝ η^−b given collapse, b = 1 (34)", 1.0, 0.25),
    Prediction("c", "t* ∝ τ^c given collapse, c = 0: t* independent of τ (34)", 0.0, 0.25),
    Prediction("H", "pre-collapse drift is ballistic: lag-MSD exponent H = 1 (§4.4)", 1.0, 0.15),
)
"""The exponents' predictions (coverage judges these; :data:`analysis.sweep.ROWS` adds the others)."""


def _nan(x):
    return x is None or (isinstance(x, float) and math.isnan(x)) or x != x


def verdict(prediction, interval):
    """``holds`` / ``fails`` / ``inconclusive`` for ``interval`` = (value, low, high) (module docstring)."""
    _, low, high = interval
    if _nan(low) or _nan(high):
        return INCONCLUSIVE
    low, high = float(low), float(high)
    upper = prediction.theory + prediction.tolerance
    if prediction.bound:
        if high <= upper:
            return HOLDS
        return FAILS if low > upper else INCONCLUSIVE
    lower = prediction.theory - prediction.tolerance
    if lower <= low and high <= upper:
        return HOLDS
    if high < lower or low > upper:
        return FAILS
    return INCONCLUSIVE


def seeds_needed(prediction, interval, n_seeds):
    """Seeds that would make the row decisive at the spread observed (module docstring).

    ``n_seeds`` when it already is; ``math.inf`` when no number of seeds can (the estimate on the margin's
    edge, or exactly at it for a bound); ``None`` when the interval is not finite (nothing to scale).
    """
    value, low, high = (float(x) if not _nan(x) else math.nan for x in interval)
    if not all(math.isfinite(x) for x in (value, low, high)) or n_seeds < 1:
        return None
    if verdict(prediction, (value, low, high)) != INCONCLUSIVE:
        return int(n_seeds)
    up, down = max(high - value, 0.0), max(value - low, 0.0)
    upper = prediction.theory + prediction.tolerance
    lower = -math.inf if prediction.bound else prediction.theory - prediction.tolerance

    def limit(room, half):
        # largest shrink factor s with s·half ≤ room (room > 0); inf when the half-width is already 0
        return math.inf if half == 0 else room / half

    if lower < value < upper:
        scale = min(limit(upper - value, up), limit(value - lower, down))
    elif value > upper:
        scale = limit(value - upper, down) * (1 - 1e-9)
    elif value < lower:
        scale = limit(lower - value, up) * (1 - 1e-9)
    else:
        return math.inf
    if scale <= 0:
        return math.inf
    if math.isinf(scale):
        return int(n_seeds)
    # a relative 1e-9 absorbs rounding in the ratio of half-widths (0.15/0.3 is not exactly ½)
    return max(int(n_seeds), math.ceil(n_seeds / scale ** 2 * (1 - 1e-9)))


RULE = (
    "Each prediction states a value and a tolerance (the margin inside which the law counts as holding). "
    "It holds when the whole 90 % two-sided interval lies inside value ± tolerance (an equivalence test: two "
    "one-sided tests at 5 %), fails when the interval lies wholly outside that margin, and is inconclusive "
    "otherwise or when the interval cannot be estimated; a bound (measured ≤ value) holds when the interval's "
    "upper end is at most value + tolerance and fails when its lower end exceeds it. An interval may be "
    "one-sided (an infinite end, e.g. c_hor when the horizon branch binds nowhere): it can then fail but not "
    "hold. Intervals are profile-likelihood intervals (η_max, t* fits) or t intervals over seeds (drift "
    "exponent), and every row prints the seeds that would make it decisive at the spread observed, "
    "assuming half-widths shrink like 1/√seeds."
)
"""The verdict rule in one paragraph, for REPORT.md."""
