"""Planted worlds are stores in the sweep schema whose logged series say what the truth says."""

import math

import numpy as np
import pytest

from analysis.coverage import coverage
from analysis.events import collapse_events
from analysis.planted import KINDS, WORLDS, planted_world
from theory.metrics import PROJECTIONS, SWEEP_DIMS

SMALL = {"taus": (1, 4, 16), "etas": (0.025, 0.1, 0.4, 1.6), "seeds": 6, "steps": 200}


@pytest.fixture(scope="module")
def worlds():
    return {kind: planted_world(kind, seed=3, **SMALL) for kind in KINDS}


def test_every_kind_is_a_sweep_store(worlds):
    for kind, (ds, truth) in worlds.items():
        assert ds.reward.dims == SWEEP_DIMS, kind
        assert ds.theta_proj.dims == (*SWEEP_DIMS, "proj") and ds.theta_proj.dtype == np.float32
        assert ds.sizes["proj"] == PROJECTIONS
        assert ("success" in ds) == WORLDS[kind].get("success", True), kind
        assert {"a", "b", "c", "c_loc", "c_hor", "H", "eta_max"} <= set(truth)
        assert truth["n_collapsed"] > 0 and truth["n_collapsed"] < np.prod(ds.reward.shape[:3])


def test_same_seed_same_world_other_seed_other_world():
    a, _ = planted_world("kicks", seed=5, **SMALL)
    b, _ = planted_world("kicks", seed=5, **SMALL)
    c, _ = planted_world("kicks", seed=6, **SMALL)
    assert np.array_equal(a.reward.values, b.reward.values, equal_nan=True)
    assert np.array_equal(a.theta_proj.values, b.theta_proj.values, equal_nan=True)
    assert not np.array_equal(a.reward.values, c.reward.values, equal_nan=True)


def test_collapses_are_absorbing_and_only_where_planted(worlds):
    for kind, (ds, truth) in worlds.items():
        reward, t_star = ds.reward.values, truth["t_star"]
        steps = np.arange(reward.shape[-1])
        version = steps - steps % ds.tau.values[:, None, None, None]
        dead = version >= t_star[..., None]
        assert np.all((reward[dead] == 0) | np.isnan(reward[dead])), kind
        # healthy batches are rewarded, unless the learner itself diverged at t* (NaN from its step on)
        assert np.all((reward[~dead] > 0) | np.isnan(reward[~dead])), kind
        healthy = steps < t_star[..., None]
        assert np.all(reward[healthy] > 0), kind
        # a divergence stays NaN to the end
        nan_runs = np.isnan(reward).any(axis=-1)
        assert np.all(np.isnan(reward[nan_runs][:, -1]))


def test_events_bracket_the_planted_collapse_step(worlds):
    for kind, (ds, truth) in worlds.items():
        events = collapse_events(ds)
        planted = np.isfinite(truth["t_star"])
        assert np.array_equal(events.collapsed, planted), kind
        t = truth["t_star"][planted]
        assert np.all((events.t_low[planted] <= t) & (t <= events.t_high[planted])), kind
        if "success" in ds:
            assert np.array_equal(events.t_low[planted], events.t_high[planted])


def test_sync_world_logs_one_reward_per_sync_cycle(worlds):
    ds, _ = worlds["sync"]
    reward = ds.reward.values
    for i, tau in enumerate(ds.tau.values):
        cycles = reward[i, ..., : reward.shape[-1] // tau * tau].reshape(*reward.shape[1:3], -1, tau)
        assert np.all(cycles == cycles[..., :1]), f"τ = {tau}"


def test_kicks_sit_in_the_final_sync_cycle_before_the_collapse():
    ds, truth = planted_world("kicks", seed=4, **SMALL)
    assert truth["n_kicks"] > 0
    update = ds.update_norm.values
    t_star = truth["t_star"]
    spikes = 0
    for index in zip(*np.nonzero(np.isfinite(t_star))):
        t, tau = int(t_star[index]), int(ds.tau.values[index[0]])
        u = update[index]
        big = np.flatnonzero(u[:t] > 10 * np.nanmedian(u[:t]))
        if big.size:
            spikes += 1
            assert big.min() >= (t - 1) - (t - 1) % tau, "a kick before the final cycle"
    assert spikes == truth["n_kicks"]


def test_collapsing_runs_reach_the_planted_radius(worlds):
    ds, truth = worlds["clean"]
    drift = ds.drift.values
    t_star = truth["t_star"]
    at = [drift[index][int(t_star[index])] for index in zip(*np.nonzero(np.isfinite(t_star)))]
    # ballistic with 5 % step noise: ‖θ_{t*} − θ_0‖ = R (1 ± a few %)
    assert np.median(at) == pytest.approx(truth["radius"], rel=0.05)


def test_update_norm_is_the_step_over_eta_and_stable_runs_follow_the_rule(worlds):
    # schema (docs/theory.md §6): update_norm = ‖θ_{t+1} − θ_t‖/η; the stable runs' largest is U = R/c_hor, so
    # the rule's c_hor = R/U (34) holds in the planted truth
    for kind in ("clean", "horizon", "converging", "offsets"):
        ds, truth = worlds[kind]
        step = np.linalg.norm(np.diff(ds.theta_proj.values.astype(float), axis=-2), axis=-1)
        update = ds.update_norm.values[..., :-1] * ds.eta.values[:, None, None]
        finite = np.isfinite(update)
        assert np.allclose(update[finite], step[finite], rtol=1e-5), kind
        stable = ~np.isfinite(truth["t_star"])
        largest = np.nanmax(ds.update_norm.values, axis=-1)[stable]
        assert largest == pytest.approx(truth["U"], rel=1e-5) and truth["U"] == truth["radius"] / truth["c_hor"]


def test_coverage_is_measured_on_a_small_grid():
    # 2 τ × 4 η × 4 seeds: w is estimated at its edge (0, separated data) in world 0; its log error is not
    # finite but the interval still covers or not (a math domain error before)
    small = {"taus": (1, 4), "etas": (0.1, 0.2, 0.4, 0.8), "seeds": 4, "steps": 160}
    table = coverage(kinds=("clean",), n_worlds=1, seed=0, grid=small)
    w = table.row("clean", "w")
    assert w.n == 1 and w.errors == [] and w.covered == 1
    assert "| clean |" in table.format()


def test_the_planted_boundary_follows_the_grid():
    _, default = planted_world("clean", seed=0, seeds=2, fit_grid=True)
    assert (default["c_loc"], default["c_hor"], default["t0"]) == (0.4, 1000.0, 4.0)
    _, absolute = planted_world("clean", seed=0, etas=(0.001, 0.002), seeds=2)
    assert absolute["c_loc"] == 0.4 and absolute["n_collapsed"] == 0, "without fit_grid the constants stay put"
    etas = tuple(1e-4 * 2.0 ** k for k in range(6))
    ds, truth = planted_world("horizon", seed=0, taus=(1, 2, 4, 8), etas=etas, seeds=8, steps=200, fit_grid=True)
    assert min(etas) < min(truth["eta_max"]) and max(truth["eta_max"]) < max(etas)
    assert 0 < truth["n_collapsed"] < ds.reward[..., 0].size


def test_truth_overrides_and_undefined_truths():
    _, truth = planted_world("clean", seed=0, a=0.7, c_loc=0.3, fit_grid=True, **SMALL)
    assert truth["a"] == 0.7 and truth["c_loc"] == 0.3
    assert truth["eta_max"] == pytest.approx(np.minimum(0.3 * np.array([1, 4, 16.0]) ** -0.7,
                                                        truth["c_hor"] / 200))
    _, cure = planted_world("tau_incidence", seed=0, **SMALL)
    assert math.isnan(cure["c_loc"]) and all(math.isnan(e) for e in cure["eta_max"])
    _, heavy = planted_world("heavy_tail", seed=0, **SMALL)
    assert math.isnan(heavy["sigma"]) and heavy["latency_scale"] == 0.5
    with pytest.raises(ValueError, match="unknown planted world"):
        planted_world("nonsense")
