"""theory.rule: the two-constraint rule (36)–(38) and which side binds."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.bounds import collapse_step_lower_bound, local_stale_condition
from theory.rule import c_hor_from_radius, c_loc_from_radius, safe_learning_rate


@given(tau=st.integers(1, 64), horizon=st.integers(1, 10**6), c_loc=st.floats(1e-4, 10), c_hor=st.floats(1e-2, 1e3))
@settings(max_examples=60, derandomize=True)
def test_eta_max_is_the_tighter_constraint(tau, horizon, c_loc, c_hor):
    rule = safe_learning_rate(tau, horizon, c_loc, c_hor)
    assert rule.eta_max == min(c_loc / tau, c_hor / horizon)
    assert rule.binding == ("horizon" if c_hor / horizon < c_loc / tau else "local")
    assert rule.margin >= 1.0
    assert rule.eta_max * tau <= c_loc * (1 + 1e-12) and rule.eta_max * horizon <= c_hor * (1 + 1e-12)


def test_reduces_to_the_local_rule_when_the_horizon_is_slack():
    rules = [safe_learning_rate(tau, horizon=10, c_loc=0.1, c_hor=100.0) for tau in (1, 2, 4, 8)]
    assert all(rule.binding == "local" for rule in rules)
    assert [rule.eta_max for rule in rules] == pytest.approx([0.1 / tau for tau in (1, 2, 4, 8)])  # η_max ∝ 1/τ


def test_horizon_binding_makes_eta_max_independent_of_tau():
    rules = [safe_learning_rate(tau, horizon=10**5, c_loc=0.1, c_hor=10.0) for tau in (1, 2, 4)]
    assert all(rule.binding == "horizon" for rule in rules)
    assert len({rule.eta_max for rule in rules}) == 1


def test_constants_from_radii_match_the_conditions():
    U, r_clip, R, tau = 2.0, 0.3, 5.0, 4
    eta = c_loc_from_radius(r_clip, U) / tau
    assert local_stale_condition(U, eta, tau, r_clip) and not local_stale_condition(U, eta * 1.01, tau, r_clip)
    assert c_hor_from_radius(R, U) / eta == pytest.approx(collapse_step_lower_bound(R, U, eta))


@pytest.mark.parametrize("field", ["tau", "horizon", "c_loc", "c_hor"])
def test_nonpositive_inputs_are_named(field):
    kwargs = {**dict(tau=2, horizon=100, c_loc=0.1, c_hor=1.0), field: 0}
    with pytest.raises(ValueError, match=field):
        safe_learning_rate(**kwargs)
