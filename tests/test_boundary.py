"""The two-branch η_max fit recovers planted boundaries, says which branch binds, and is honest when it cannot."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2

from analysis.boundary import _Cells, _nll, fit_boundary
from analysis.events import collapse_events
from analysis.intervals import hessian
from analysis.planted import planted_world
from analysis.verdicts import FAILS, HOLDS, PREDICTIONS, verdict

A = {p.key: p for p in PREDICTIONS}["a"]


def _fit(kind, seed, level=0.95, **kwargs):
    ds, truth = planted_world(kind, seed, **kwargs)
    events = collapse_events(ds)
    counts = events.collapsed.sum(axis=-1)
    runs = np.full(counts.shape, events.collapsed.shape[-1])
    return fit_boundary(counts, runs, ds.tau.values, ds.eta.values, ds.sizes["step"], level=level), truth


@pytest.fixture(scope="module")
def horizon():
    """The issue's world: η_max = min(c_loc/τ, c_hor/T) with the horizon binding at τ = 1, 2."""
    return _fit("horizon", 11)


@pytest.fixture(scope="module")
def clean():
    return _fit("clean", 12)


def test_horizon_world_constants_within_their_intervals(horizon):
    fit, truth = horizon
    for name in ("a", "c_loc", "c_hor", "w"):
        interval = getattr(fit, name)
        assert interval.covers(truth[name]), (name, interval, truth[name])
        assert interval.low < interval.value < interval.high, "two-sided"
    # c_hor to within ±25 % (the percentile-bootstrap fit read it 20× too small)
    assert fit.c_hor.value == pytest.approx(truth["c_hor"], rel=0.25)
    assert all(iv.covers(true) for iv, true in zip(fit.eta_max, truth["eta_max"]))


def test_horizon_world_names_the_binding_branch_and_rejects_one_power_law(horizon):
    fit, _ = horizon
    assert fit.branch[:2] == ("horizon", "horizon") and fit.branch[-2:] == ("local", "local")
    assert fit.preferred == "two-branch" and fit.p_value < 1e-3 and fit.lr > chi2.ppf(0.999, 1)
    assert "two-branch" in fit.preference
    # the single power law is the old row: its a is far from 1 and its verdict fails, the two-branch a holds
    assert verdict(A, fit.a_single) == FAILS
    assert verdict(A, fit.a) != FAILS


def test_clean_world_a_holds_and_c_hor_is_only_bounded_below(clean):
    fit, truth = clean
    assert fit.a.covers(1.0) and fit.c_loc.covers(truth["c_loc"])
    assert verdict(A, _fit("clean", 12, level=0.90)[0].a) == HOLDS
    # the horizon branch (c_hor/T = 2.5) lies above the grid: c_hor ∈ [x, inf], x below the truth
    assert math.isinf(fit.c_hor.high) and fit.c_hor.low <= truth["c_hor"]
    assert any("c_hor" in note for note in fit.notes)
    assert set(fit.branch) <= {"local", "either"} and fit.branch[-1] == "local"
    assert fit.preferred == "single power law"


def test_levels_nest(clean):
    ds, _ = planted_world("clean", 12)
    events = collapse_events(ds)
    counts = events.collapsed.sum(axis=-1)
    fit = fit_boundary(counts, np.full(counts.shape, 32), ds.tau.values, ds.eta.values, 400, level=0.95,
                       levels=(0.5, 0.9))
    for name in ("a", "c_loc"):
        narrow, mid, wide = (fit.at(lv)[name] for lv in (0.5, 0.9, 0.95))
        assert wide.low < mid.low < narrow.low <= narrow.value <= narrow.high < mid.high < wide.high
        assert wide == getattr(fit, name)


def test_point_estimates_alone_are_the_full_fits_estimates(horizon):
    """``intervals=False`` (callers that refit many times) returns the same estimates, no interval ends."""
    ds, truth = planted_world("horizon", 11)
    events = collapse_events(ds)
    counts = events.collapsed.sum(axis=-1)
    args = (counts, np.full(counts.shape, 32), ds.tau.values, ds.eta.values, 400)
    full, _ = horizon
    point = fit_boundary(*args, level=0.95, intervals=False, predict=(32,))
    for name in ("a", "c_loc", "c_hor", "w", "a_single", "c_single"):
        estimate = getattr(point, name)
        assert estimate.value == pytest.approx(getattr(full, name).value, rel=1e-9), name
        assert math.isnan(estimate.low) and math.isnan(estimate.high) and not point.notes
    assert [iv.value for iv in point.eta_max] == pytest.approx([iv.value for iv in full.eta_max], rel=1e-9)
    assert point.branch == full.branch and point.loglik == pytest.approx(full.loglik)
    # η_max predicted at a τ off the grid: the fitted rule there (τ = 32: local branch, c_loc/32^a)
    assert point.predicted[0].value == pytest.approx(full.c_loc.value * 32.0 ** -full.a.value, rel=0.01)


def test_the_rule_with_its_exponent_fixed(horizon):
    """``exponent=1``: a is the rule's, not fitted; the constants and η_max off the grid keep profile intervals."""
    ds, truth = planted_world("horizon", 11)
    events = collapse_events(ds)
    counts = events.collapsed.sum(axis=-1)
    fit = fit_boundary(counts, np.full(counts.shape, 32), ds.tau.values, ds.eta.values, 400, level=0.95,
                       exponent=1.0, predict=(32,), per_seed=events.collapsed)
    assert fit.a == (1.0, 1.0, 1.0) and fit.a_single == (1.0, 1.0, 1.0)
    assert fit.c_loc.covers(truth["c_loc"]) and fit.c_hor.covers(truth["c_hor"])
    assert fit.predicted[0].covers(truth["c_loc"] / 32) and fit.predicted[0].low < fit.predicted[0].high
    assert fit.aic_single - 2 * -fit.loglik_single == 4, "a fixed: two parameters in the single law"
    with pytest.raises(ValueError, match="exponent"):
        fit_boundary(counts, np.full(counts.shape, 32), ds.tau.values, ds.eta.values, 400, exponent=math.inf)


def test_degenerate_grids_return_nan_with_a_reason():
    taus, etas = [1, 2, 4], [0.1, 0.2, 0.4, 0.8]
    zeros = np.zeros((3, 4))
    runs = np.full((3, 4), 2)
    stable = fit_boundary(zeros, runs, taus, etas, 100)
    assert math.isnan(stable.a.value) and "no run collapsed" in stable.reason
    dead = fit_boundary(runs, runs, taus, etas, 100)
    assert math.isnan(dead.c_loc.low) and "every run collapsed" in dead.reason
    one_tau = fit_boundary(np.ones((1, 4)), np.full((1, 4), 2), [1], etas, 100)
    assert "two τ" in one_tau.reason
    with pytest.raises(ValueError):
        fit_boundary(runs + 1, runs, taus, etas, 100)


@settings(max_examples=6, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=12, max_size=12))
def test_small_grids_never_crash_and_intervals_hold_their_estimate(counts):
    """3 τ × 4 η × 2 seeds: whatever the counts, a fit or a reason; every interval contains its estimate."""
    fit = fit_boundary(np.reshape(counts, (3, 4)), np.full((3, 4), 2), [1, 2, 4], [0.1, 0.2, 0.4, 0.8], 100)
    assert fit.reason or math.isfinite(fit.loglik)
    for iv in (fit.a, fit.c_loc, fit.c_hor, fit.w, *fit.eta_max):
        if not math.isnan(iv.value) and iv.estimable:
            assert iv.low <= iv.value <= iv.high or math.isinf(iv.value)
    assert len(fit.branch) == 3 and set(fit.branch) <= {"local", "horizon", "either"}


def test_likelihood_gradient_and_hessian_match_finite_differences():
    rng = np.random.default_rng(0)
    cells = _Cells(rng.integers(0, 9, (4, 5)), np.full((4, 5), 8), [1, 2, 4, 8], 0.1 * 2.0 ** np.arange(5), 300)
    for single, theta in ((False, np.array([-1.3, 0.8, -1.0, -1.2])), (True, np.array([-1.3, 0.8, -1.2]))):
        value, grad, hess = _nll(theta, cells, single, hessian=True)
        numeric = [(_nll(theta + 1e-6 * e, cells, single)[0] - _nll(theta - 1e-6 * e, cells, single)[0]) / 2e-6
                   for e in np.eye(theta.size)]
        assert grad == pytest.approx(numeric, rel=1e-5, abs=1e-5)
        assert hess == pytest.approx(hessian(lambda t: _nll(t, cells, single), theta, 1e-7), rel=1e-4, abs=1e-4)


def test_shared_seeds_widen_the_intervals_never_narrow_them():
    """Runs of one seed share randomness across cells: the seeds, not the runs, are the independent units."""
    ds, truth = planted_world("shared_seed", 15)
    events = collapse_events(ds)
    counts = events.collapsed.sum(axis=-1)
    runs = np.full(counts.shape, events.collapsed.shape[-1])
    args = (counts, runs, ds.tau.values, ds.eta.values, 400)
    naive = fit_boundary(*args, level=0.95)
    clustered = fit_boundary(*args, level=0.95, per_seed=events.collapsed)
    assert min(clustered.design_effect.values()) >= 1.0 and max(clustered.design_effect.values()) > 1.5
    assert all(v == 1.0 for v in naive.design_effect.values())
    widths = [(c.high - c.low) / (n.high - n.low) for c, n in zip(clustered.eta_max, naive.eta_max)]
    assert min(widths) >= 1.0 - 1e-6 and max(widths) > 1.2
    assert clustered.a.value == pytest.approx(naive.a.value), "the estimates are the same, only the intervals move"
    assert all(iv.covers(true) for iv, true in zip(clustered.eta_max, truth["eta_max"]))
    with pytest.raises(ValueError, match="per_seed"):
        fit_boundary(*args, per_seed=events.collapsed[:, :, 0])


def test_design_effect_is_the_sandwich_over_the_model_variance():
    from scipy.stats import norm
    from scipy.stats import t as student_t

    from analysis.intervals import design_effects
    rng = np.random.default_rng(7)
    scores = rng.standard_normal((40, 2))
    meat = scores.T @ scores * 40 / 39
    information = np.diag([4.0, 1.0])
    t_factor = (student_t.ppf(0.95, 39) / norm.ppf(0.95)) ** 2  # level 0.90, 40 clusters
    k = [scale(0.9) for scale in design_effects(information, scores, [[1.0, 0.0], [0.0, 1.0]])]
    assert k == pytest.approx(np.maximum([meat[0, 0] / 4.0, meat[1, 1]], 1.0) * t_factor)
    assert design_effects(information, np.zeros((40, 2)), [[1.0, 0.0]])[0](0.9) == pytest.approx(t_factor), \
        "never below the independent case"
    assert design_effects(information, scores[:2], [[1.0, 0.0]])[0](0.9) == 1.0, "two clusters: no adjustment"
