"""The verdict rule is an equivalence test; seeds_needed scales the interval like 1/√seeds."""

import math

from hypothesis import assume, given
from hypothesis import strategies as st

from analysis.intervals import Interval
from analysis.verdicts import FAILS, HOLDS, INCONCLUSIVE, PREDICTIONS, RULE, Prediction, seeds_needed, verdict

C = {p.key: p for p in PREDICTIONS}["c"]
BOUND = Prediction("ratio", "measured ≤ 1", 1.0, 0.05, bound=True)
ends = st.floats(-5, 5, allow_nan=False)


def test_the_issues_permissive_row_is_now_inconclusive():
    # c = −0.34 [−0.54, 0.20] "held" under the old rule although the estimate is outside the tolerance
    assert verdict(C, Interval(-0.34, -0.54, 0.20)) == INCONCLUSIVE
    assert verdict(C, Interval(0.05, -0.2, 0.24)) == HOLDS
    assert verdict(C, Interval(0.6, 0.3, 0.9)) == FAILS


def test_edges_nan_and_infinite_ends():
    assert verdict(C, Interval(0.0, -0.25, 0.25)) == HOLDS, "the margin is closed"
    assert verdict(C, Interval(0.3, 0.25, 0.35)) == INCONCLUSIVE, "touching the margin is not outside it"
    assert verdict(C, Interval(0.0, math.nan, 0.1)) == INCONCLUSIVE
    assert verdict(C, Interval(math.inf, 0.3, math.inf)) == FAILS, "a one-sided interval can fail"
    assert verdict(C, Interval(math.inf, 0.1, math.inf)) == INCONCLUSIVE, "…but never hold"
    assert verdict(C, Interval(math.nan, -math.inf, math.inf)) == INCONCLUSIVE


def test_bound_rule():
    assert verdict(BOUND, Interval(0.5, 0.2, 1.05)) == HOLDS
    assert verdict(BOUND, Interval(1.0, 0.9, 1.2)) == INCONCLUSIVE
    assert verdict(BOUND, Interval(1.3, 1.1, 1.5)) == FAILS
    assert verdict(BOUND, Interval(0.1, -math.inf, 0.5)) == HOLDS


@given(ends, ends, st.sampled_from(PREDICTIONS + (BOUND,)))
def test_rule_is_the_equivalence_test(x, y, p):
    low, high = min(x, y), max(x, y)
    v = verdict(p, Interval((low + high) / 2, low, high))
    upper = p.theory + p.tolerance
    lower = -math.inf if p.bound else p.theory - p.tolerance
    assert (v == HOLDS) == (lower <= low and high <= upper)
    assert (v == FAILS) == (low > upper or high < lower)


def test_seeds_needed_cases():
    assert seeds_needed(C, Interval(0.0, -0.1, 0.1), 8) == 8, "already decisive"
    # estimate 0.1, half-width 0.3 at 8 seeds: holds once 0.3·√(8/n) ≤ 0.15, n = 32
    assert seeds_needed(C, Interval(0.1, -0.2, 0.4), 8) == 32
    # estimate 0.5, half-width 0.5: fails once the lower end clears 0.25, 0.5·√(8/n) < 0.25, n > 32
    assert seeds_needed(C, Interval(0.5, 0.0, 1.0), 8) == 33
    assert seeds_needed(C, Interval(0.25, 0.0, 0.5), 8) == math.inf, "on the margin: no number of seeds"
    assert seeds_needed(C, Interval(0.1, math.nan, 0.4), 8) is None
    assert seeds_needed(C, Interval(0.1, 0.05, math.inf), 8) is None
    # upper end 0.8 + 0.4·√(4/n) ≤ 1.05 once n ≥ 10.24
    assert seeds_needed(BOUND, Interval(0.8, 0.5, 1.2), 4) == 11


@given(st.floats(-1, 1), st.floats(0.01, 2), st.floats(0.01, 2), st.integers(2, 64))
def test_seeds_needed_makes_the_row_decisive_and_grows_with_the_spread(value, down, up, n):
    iv = Interval(value, value - down, value + up)
    need = seeds_needed(C, iv, n)
    assume(need is not None and math.isfinite(need))
    shrink = math.sqrt(n / need)
    assert verdict(C, Interval(value, value - down * shrink, value + up * shrink)) != INCONCLUSIVE
    wider = seeds_needed(C, Interval(value, value - 2 * down, value + 2 * up), n)
    assert wider >= need


def test_rule_paragraph_states_the_decisions():
    for word in ("holds", "fails", "inconclusive", "90 %", "tolerance", "one-sided", "seeds"):
        assert word in RULE
