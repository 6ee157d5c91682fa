"""theory.bounds: the right-hand sides of Lemma 1, Theorem 1, (25), (29), (30), (32)–(35), (40)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import bounds

positive = st.floats(1e-3, 1e3)


@given(G=positive, L_D=positive, L_beta=positive, U=positive, eta=positive, tau=st.integers(1, 64))
@settings(max_examples=50, derandomize=True)
def test_theorem1_is_lemma1_at_the_drift_bound(G, L_D, L_beta, U, eta, tau):
    C_b = bounds.lemma1_constant(G, L_D, L_beta)
    assert C_b == pytest.approx(2 * G * L_D + L_beta)
    drift = bounds.stale_drift_bound(U, eta, tau)
    assert bounds.theorem1_bound(C_b, U, eta, tau) == pytest.approx(bounds.bias_bound(C_b, drift))
    expected = eta * bounds.theorem1_bound(C_b, U, eta, tau)
    assert bounds.step_perturbation_bound(C_b, U, eta, tau) == pytest.approx(expected)
    assert bounds.mean_stale_drift_bound(U, eta, tau) == pytest.approx(drift)  # (40) with U_2 = U


def test_split_bound_is_twice_G_tv_plus_the_gap():
    assert bounds.split_bound(2.0, 0.25, 0.1) == pytest.approx(1.1)
    np.testing.assert_allclose(bounds.split_bound(np.array([1.0, 3.0]), 0.5, 0.0), [1.0, 3.0])


def test_no_staleness_gives_no_bias_bound():
    assert bounds.theorem1_bound(3.0, 2.0, 0.1, 0) == 0.0
    assert bounds.bias_bound(3.0, 0.0) == 0.0


def test_bias_bound_is_linear_in_tau_and_eta():
    taus = np.array([1, 2, 4, 8])
    values = bounds.theorem1_bound(2.0, 1.5, 0.01, taus)
    np.testing.assert_allclose(values / taus, values[0])
    assert bounds.theorem1_bound(2.0, 1.5, 0.02, 4) == pytest.approx(2 * bounds.theorem1_bound(2.0, 1.5, 0.01, 4))


@given(R=positive, U=positive, eta=positive)
@settings(max_examples=30, derandomize=True)
def test_collapse_step_bound_is_where_the_horizon_drift_reaches_R(R, U, eta):
    t_star = bounds.collapse_step_lower_bound(R, U, eta)
    assert bounds.horizon_drift_bound(U, eta, t_star) == pytest.approx(R)


def test_regions_and_sync_index():
    assert bounds.within_local_region(0.01, 4, 0.04) and not bounds.within_local_region(0.01, 5, 0.04)
    assert bounds.local_stale_condition(2.0, 0.01, 4, 0.08) and not bounds.local_stale_condition(2.0, 0.01, 5, 0.08)
    assert bounds.collapse_sync(37, 4) == 9
