"""Incidence and latency of collapse: b and c from the latency part, honest about censoring and few collapses."""

import math

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import log_ndtr

from analysis.events import collapse_events
from analysis.planted import planted_world
from analysis.survival import _Cure, _Data, _Latency, fit_collapse_times
from analysis.verdicts import FAILS, HOLDS, PREDICTIONS, verdict

BY_KEY = {p.key: p for p in PREDICTIONS}


def _arrays(kind, seed, **kwargs):
    ds, truth = planted_world(kind, seed, **kwargs)
    events = collapse_events(ds)
    log_eta = np.log(ds.eta.values)[None, :, None]
    log_tau = np.log(ds.tau.values)[:, None, None]
    return (events.collapsed, events.t_low, events.t_high, events.censor_at, log_eta, log_tau), truth


@pytest.fixture(scope="module")
def tau_incidence():
    """P(collapse) rises with τ, t* given collapse does not (the issue's confounded regression: c = −0.94)."""
    return _arrays("tau_incidence", 21)


def _no_cure_regression(collapsed, t_low, t_high, censor_at, log_eta, log_tau):
    """The naive model: every run would collapse; the survivors are right-censored at the censoring step."""
    arrays = np.broadcast_arrays(collapsed, t_low, t_high, censor_at, log_eta, log_tau)
    collapsed, t_low, t_high, censor_at, log_eta, log_tau = (a.ravel() for a in arrays)
    design = np.stack([np.ones_like(log_eta), -log_eta, log_tau], axis=1)
    y_low = np.log(np.maximum(np.nan_to_num(t_low) - 1, 1e-9))
    y_high, y_c = np.log(np.maximum(np.nan_to_num(t_high), 1)), np.log(censor_at)

    def nll(theta):
        mu, sigma = design @ theta[:3], math.exp(theta[3])
        zh, zl, zc = (y_high - mu) / sigma, (y_low - mu) / sigma, (y_c - mu) / sigma
        mass = np.log(np.maximum(np.exp(log_ndtr(zh)) - np.exp(log_ndtr(zl)), 1e-300))
        return -(mass[collapsed].sum() + log_ndtr(-zc[~collapsed]).sum())

    return minimize(nll, np.array([1.0, 1.0, 0.0, 0.0]), method="Nelder-Mead",
                    options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-8}).x


def test_tau_incidence_world_reads_c_zero_b_one(tau_incidence):
    arrays, truth = tau_incidence
    fit = fit_collapse_times(*arrays, level=0.95)
    assert fit.b.covers(truth["b"]) and fit.c.covers(truth["c"]) and fit.sigma.covers(truth["sigma"])
    assert fit.b.low < fit.b.value < fit.b.high and fit.c.low < fit.c.value < fit.c.high
    verdicts = fit_collapse_times(*arrays)
    assert verdict(BY_KEY["b"], verdicts.b) == HOLDS and verdict(BY_KEY["c"], verdicts.c) == HOLDS
    # the incidence carries the τ-dependence instead
    assert fit.incidence["log_tau"].low > 0.5
    # the regression without a cure fraction reads the rising incidence as t* falling with τ
    naive = _no_cure_regression(*arrays)
    assert naive[2] < -0.25, "the planted world must break the naive model"


def test_cure_formulation_recovers_the_planted_incidence(tau_incidence):
    arrays, truth = tau_incidence
    fit = fit_collapse_times(*arrays, level=0.95, formulation="cure")
    g0, g_eta, g_tau = truth["incidence"]
    assert fit.incidence["intercept"].covers(g0)
    assert fit.incidence["log_eta"].covers(g_eta) and fit.incidence["log_tau"].covers(g_tau)
    assert fit.b.covers(1.0) and fit.c.covers(0.0)


@pytest.mark.parametrize("kind, seed", [("sync", 22), ("heavy_tail", 23), ("false_law", 101)])
def test_worlds_that_break_naive_assumptions(kind, seed):
    arrays, truth = _arrays(kind, seed)
    fit = fit_collapse_times(*arrays, level=0.95)
    assert fit.b.covers(truth["b"]) and fit.c.covers(truth["c"]), (fit.b, fit.c)
    if kind == "false_law":  # b = 0.7, c = 0.5: the rule must not let it pass
        at90 = fit_collapse_times(*arrays)
        assert verdict(BY_KEY["c"], at90.c) == FAILS and verdict(BY_KEY["b"], at90.b) != HOLDS


def test_coarser_intervals_widen_the_interval_but_keep_the_truth():
    """Knowing t* only to a sync cycle of 16 steps: less information, the same law."""
    (collapsed, t_low, t_high, censor_at, log_eta, log_tau), truth = _arrays("clean", 25)
    exact = fit_collapse_times(collapsed, t_low, t_high, censor_at, log_eta, log_tau, level=0.95)
    cycle = np.ceil(t_high / 16) * 16
    coarse = fit_collapse_times(collapsed, np.maximum(cycle - 15, 1), cycle, censor_at, log_eta, log_tau, level=0.95)
    assert coarse.b.covers(1.0) and coarse.c.covers(0.0)
    assert coarse.b.high - coarse.b.low > exact.b.high - exact.b.low


def test_few_collapses_one_eta_one_tau():
    shape = (2, 3, 4)
    log_eta = np.log([0.1, 0.2, 0.4])[None, :, None]
    log_tau = np.log([1, 4])[:, None, None]
    none = np.zeros(shape, dtype=bool)
    nan = np.full(shape, np.nan)
    fit = fit_collapse_times(none, nan, nan, 100, log_eta, log_tau)
    assert math.isnan(fit.b.value) and "0 collapse" in fit.reason and "no run collapsed" in fit.notes[-1]
    few = none.copy()
    few[1, 2, :3] = True
    t = np.where(few, 30.0, np.nan)
    fit = fit_collapse_times(few, t, t, 100, log_eta, log_tau)
    assert math.isnan(fit.b.low) and "only 3" in fit.reason
    one_eta = none.copy()
    one_eta[:, 2, :] = True
    t = np.where(one_eta, 30.0 + np.arange(4), np.nan)
    assert "one η" in fit_collapse_times(one_eta, t, t, 100, log_eta, log_tau).reason
    one_tau = none.copy()
    one_tau[1, 1:, :] = True
    t = np.where(one_tau, np.where(np.arange(3)[None, :, None] == 1, 40.0, 20.0) + np.arange(4), np.nan)
    fit = fit_collapse_times(one_tau, t, t, 100, log_eta, log_tau)
    assert math.isfinite(fit.b.value) and math.isnan(fit.c.value) and any("one τ" in n for n in fit.notes)
    with pytest.raises(ValueError, match="formulation"):
        fit_collapse_times(one_tau, t, t, 100, log_eta, log_tau, formulation="weibull")


def test_likelihood_gradients_match_finite_differences():
    (collapsed, t_low, t_high, censor_at, log_eta, log_tau), _ = _arrays("sync", 26, seeds=4)
    data = _Data(collapsed, t_low, t_high, censor_at, log_eta, log_tau, discrete=True)
    latency = _Latency(data, data.collapsed, True, truncate=True)
    cure = _Cure(data, True, True)
    for fun, theta in ((latency.nll, np.array([1.2, 0.9, 0.1, -0.6])),
                       (cure.nll, np.array([0.2, 0.5, 1.0, 1.2, 0.9, 0.1, -0.6]))):
        grad = fun(theta)[1]
        numeric = [(fun(theta + 1e-6 * e)[0] - fun(theta - 1e-6 * e)[0]) / 2e-6 for e in np.eye(theta.size)]
        assert grad == pytest.approx(numeric, rel=1e-5, abs=1e-4)


def test_seed_clusters_widen_b_and_c_where_seeds_are_shared():
    arrays, truth = _arrays("shared_seed", 27)
    seeds = np.broadcast_to(np.arange(arrays[0].shape[-1]), arrays[0].shape)
    naive = fit_collapse_times(*arrays, level=0.95)
    clustered = fit_collapse_times(*arrays, level=0.95, clusters=seeds)
    assert clustered.b.value == pytest.approx(naive.b.value) and clustered.c.value == pytest.approx(naive.c.value)
    for key in ("b", "c"):
        wide, narrow = getattr(clustered, key), getattr(naive, key)
        assert wide.high - wide.low >= narrow.high - narrow.low - 1e-9
        assert wide.covers(truth[key])
