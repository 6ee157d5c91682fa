"""Verdicts on the paper's predictions (its Table 1) from a measured interval.

Rule (stated in REPORT.md): a prediction **holds** when the theory's value lies
in the measured 95 % bootstrap interval and that interval is informative (no
wider than four tolerances: an interval that admits every plausible law
confirms none), or when the whole interval lies within
the prediction's tolerance of it (equal for practical purposes: a very narrow
interval may just miss an approximate law); it **fails** when the interval misses
the theory's value by more than the prediction's tolerance; otherwise — or
when the interval cannot be estimated (too few collapsing cells) — it is
**inconclusive**. A bound (``≤``) holds when the interval's upper end is ≤ the
bound and fails when its lower end exceeds the bound by more than the tolerance.
"""

import math
from typing import NamedTuple

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"
INFORMATIVE_WIDTH = 4.0
"""An interval wider than this many tolerances cannot make a two-sided prediction hold."""


class Prediction(NamedTuple):
    """One row of the paper's Table 1 as a checkable statement."""

    key: str
    """Short name used in tables and JSON."""
    statement: str
    """The prediction in words and symbols."""
    theory: float
    """The theory's value of the measured quantity."""
    tolerance: float
    """How far outside the interval the theory may be before the verdict is ``fails``."""
    bound: bool = False
    """True when the prediction is ``measured ≤ theory`` rather than ``measured = theory``."""


PREDICTIONS = (
    Prediction("a", "η_max ∝ τ^−a, a = 1", 1.0, 0.25),
    Prediction("b", "t* ∝ η^−b, b = 1", 1.0, 0.25),
    Prediction("c", "t* ∝ τ^c, c = 0 (t* independent of τ)", 0.0, 0.25),
    Prediction("eta_tstar_slope", "η·t* independent of τ: slope of log median η·t* on log τ = 0", 0.0, 0.25),
    Prediction("msd_stable", "msd_slope of stable runs ≈ 0.5 (diffusive)", 0.5, 0.15),
    Prediction("msd_collapsing", "msd_slope of collapsing runs ≈ 1 (ballistic)", 1.0, 0.15),
    Prediction("bias_ratio", "max bias_norm / bias_bound ≤ 1 (Lemma 1, Theorem 1)", 1.0, 0.05, bound=True),
)
"""The predictions every substrate is judged on."""


def _finite(*values):
    return all(v is not None and math.isfinite(v) for v in values)


def verdict(prediction, value, low, high):
    """``holds`` / ``fails`` / ``inconclusive`` for a measured ``value`` in ``[low, high]``."""
    if not _finite(value, low, high):
        return INCONCLUSIVE
    theory, tolerance = prediction.theory, prediction.tolerance
    if prediction.bound:
        if high <= theory:
            return HOLDS
        return FAILS if low > theory + tolerance else INCONCLUSIVE
    informative = high - low <= INFORMATIVE_WIDTH * tolerance
    if (low <= theory <= high and informative) or (theory - tolerance <= low and high <= theory + tolerance):
        return HOLDS
    if theory < low - tolerance or theory > high + tolerance:
        return FAILS
    return INCONCLUSIVE


RULE = (
    "holds: the theory's value lies in the 95 % bootstrap interval over seeds and the interval is at most four "
    "tolerances wide, or the whole interval lies "
    "within the row's tolerance of it (for a bound: the interval's upper end is ≤ the bound); fails: the interval misses the theory's value by more than the row's "
    "tolerance (for a bound: its lower end exceeds bound + tolerance); inconclusive: otherwise, or when the "
    "interval cannot be estimated (too few stable/collapsing cells, variable not measured)."
)
"""The verdict rule in one paragraph, printed in REPORT.md."""
