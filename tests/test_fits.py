"""The fits of theory.fits recover planted laws; the verdict rule can say the paper is wrong."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from figures.analysis import analyze
from planted import C_HOR, C_LOC, ETAS, TAUS, planted_dataset
from theory import collapse, fits
from theory.verdicts import FAILS, HOLDS, INCONCLUSIVE, INFORMATIVE_WIDTH, PREDICTIONS, verdict

BY_KEY = {p.key: p for p in PREDICTIONS}


@pytest.fixture(scope="module")
def paper_world():
    """η_max = c_loc/τ, t* = c_hor/η with 30 % log-normal noise per run: the paper's laws."""
    return analyze(planted_dataset(seeds=8, steps=600, noise=0.3, seed=1), n_boot=100)


@pytest.fixture(scope="module")
def tau_world():
    """Like the paper's world but t* ∝ τ^0.7: the horizon law (34) is false."""
    return analyze(planted_dataset(seeds=8, steps=1500, c_hor=10.0, tau_power=0.7, seed=2), n_boot=100)


def _contains(interval, x):
    return interval.low <= x <= interval.high


def test_exponents_recovered_within_their_intervals(paper_world):
    est = paper_world.estimates
    assert _contains(est["a"], 1.0)
    assert _contains(est["b"], 1.0) and est["b"].high - est["b"].low < 0.5
    assert _contains(est["c"], 0.0)
    assert _contains(est["c_loc"], C_LOC)
    assert est["c_hor"].value == pytest.approx(C_HOR, rel=0.1)


def test_eta_max_is_the_planted_boundary(paper_world):
    assert paper_world.eta_max.tolist() == pytest.approx([C_LOC / t for t in TAUS])
    expected = np.array([[eta * tau > C_LOC * (1 + 1e-9) for eta in ETAS] for tau in TAUS], dtype=float)
    assert np.array_equal(paper_world.probability, expected)


def test_msd_slopes_separate_diffusive_from_ballistic(paper_world):
    est = paper_world.estimates
    assert est["msd_stable"].value == pytest.approx(0.5, abs=0.02)
    assert est["msd_collapsing"].value == pytest.approx(1.0, abs=0.02)
    assert est["bias_ratio"].value == pytest.approx(0.5)


def test_every_prediction_holds_in_a_low_noise_paper_world(paper_world):
    quiet = analyze(planted_dataset(seeds=8, steps=600, noise=0.1, seed=3), n_boot=100)
    assert {p.key: v for p, _, v in quiet.verdicts()} == {p.key: HOLDS for p in PREDICTIONS}
    slope = paper_world.estimates["eta_tstar_slope"]
    assert _contains(slope, 0.0), "η·t* is planted independent of τ: noise must not read as a slope"


def test_t_star_depending_on_tau_fails(tau_world):
    est = tau_world.estimates
    assert _contains(est["c"], 0.7)
    verdicts = {p.key: v for p, _, v in tau_world.verdicts()}
    assert verdicts["c"] == FAILS and verdicts["eta_tstar_slope"] == FAILS
    assert _contains(est["eta_tstar_slope"], 0.7), "η·t* ∝ τ^0.7 when t* is"
    assert verdicts["b"] == HOLDS


def test_censored_runs_count_as_stable_and_stay_out_of_t_star():
    t_star = np.full((2, 2, 4), -1)
    t_star[0, 1] = [10, 20, -1, -1]
    t_star[1, 1] = [5, 10, 10, -1]
    assert fits.eta_max(t_star >= 0, [0.1, 0.2], threshold=0.5).tolist() == [0.2, 0.1]
    assert fits.c_hor(t_star, [0.1, 0.2], n_boot=10).value == pytest.approx(2.0)


def test_censored_seeds_of_collapsing_cells_pull_t_star_up_instead_of_being_dropped():
    # Short runs: the slowest seeds of the slowest collapsing cells outlive the horizon. Dropping them, as a plain
    # regression on the observed t* does, flattens t* ∝ 1/η; the censored likelihood keeps b = 1 on average.
    censored, dropped = [], []
    for world in range(8):
        ds = planted_dataset(seeds=16, steps=300, noise=0.5, seed=100 + world)
        window = collapse.censor_window(300)
        t_star = collapse.collapse_step(ds.reward.values, window)
        censored.append(fits.collapse_time_regression(t_star, TAUS, ETAS, 300 - window, n_boot=1)[0].value)
        seen = t_star >= 1
        log_eta = np.broadcast_to(np.log(ETAS)[None, :, None], t_star.shape)[seen]
        log_tau = np.broadcast_to(np.log(TAUS)[:, None, None], t_star.shape)[seen]
        design = np.stack([np.ones_like(log_eta), log_eta, log_tau], axis=1)
        dropped.append(-np.linalg.lstsq(design, np.log(t_star[seen]), rcond=None)[0][1])
    assert (t_star < 0).any() and (t_star >= 0).any(axis=-1).sum() > 5, "the worlds have censored collapsing cells"
    assert np.mean(censored) == pytest.approx(1.0, abs=0.07)
    assert np.mean(dropped) < 0.93, "the planted censoring must bias a regression that drops it"


def test_t_star_regression_needs_three_collapses_at_two_eta():
    t_star = np.full((2, 3, 4), -1)
    t_star[0, 2, :2] = [40, 50]
    t_star[1, 2, 0] = 30
    assert all(np.isnan(iv.value) for iv in fits.collapse_time_regression(t_star, [1, 2], [0.1, 0.2, 0.4], 90))


def test_eta_max_exponent_from_a_planted_power_law():
    taus, etas = np.array([1, 2, 4, 8, 16]), 2.0 ** -np.arange(10)
    collapsed = (etas[None, :] > 0.5 * taus[:, None] ** -0.5)[..., None].repeat(5, axis=-1)
    est = fits.eta_max_exponent(collapsed, taus, etas, n_boot=20)
    assert est.value == pytest.approx(0.5, abs=0.1)
    assert verdict(BY_KEY["a"], *est) == FAILS


@given(st.floats(-3, 3), st.floats(0, 2))
def test_verdict_rule(center, width):
    p = BY_KEY["b"]
    low, high = center - width, center + width
    v = verdict(p, center, low, high)
    if low <= p.theory <= high:
        assert v == (HOLDS if high - low <= INFORMATIVE_WIDTH * p.tolerance else INCONCLUSIVE)
    elif low > p.theory + p.tolerance or high < p.theory - p.tolerance:
        assert v == FAILS
    else:
        assert v in (HOLDS, INCONCLUSIVE)
    assert verdict(p, center, np.nan, high) == INCONCLUSIVE


def test_bound_verdict():
    p = BY_KEY["bias_ratio"]
    assert verdict(p, 0.5, 0.4, 0.9) == HOLDS
    assert verdict(p, 0.99, 0.9, 1.02) == INCONCLUSIVE
    assert verdict(p, 1.5, 1.3, 1.7) == FAILS


@given(st.integers(2, 8), st.integers(0, 1000))
def test_bootstrap_interval_contains_the_estimate(n, seed):
    data = np.random.default_rng(seed).normal(size=n)
    iv = fits.bootstrap(lambda idx: data[idx].mean(), n, n_boot=30, seed=seed)
    assert iv.low <= iv.value <= iv.high and iv.value == pytest.approx(data.mean())


def test_an_uninformative_interval_confirms_nothing():
    p = BY_KEY["a"]
    assert verdict(p, 0.2, -1.35, 1.93) == INCONCLUSIVE  # llm-small's first default run: wide, covers a = 1
    assert verdict(p, 0.9, 0.7, 1.2) == HOLDS
