"""Theorem 1's rows (analysis/theorem1.py) on planted probes: scaling, held-out bound, vacuity, constants → rule."""

import numpy as np
import pytest
from stores import sweep_dataset

from analysis.events import collapse_events
from analysis.intervals import Interval
from analysis.theorem1 import constants, log2_ratio, pilot_runs, theorem1

TAUS, ETAS, SEEDS, STEPS = (1, 2, 4, 8), (0.05, 0.1, 0.2), 6, 48
U, C_B = 2.0, 0.7


def world(power=1.0, staleness=None, collapse_cell=None, **extra):
    """Stable runs with exact probes ‖b‖ = C_B·(U τ_t η)^power at every step with τ_t > 0."""
    shape = (len(TAUS), len(ETAS), SEEDS, STEPS)
    t = np.arange(STEPS)
    lag = np.broadcast_to((t[None, :] % np.array(TAUS)[:, None])[:, None, None, :], shape).astype(float)
    lag = lag if staleness is None else np.broadcast_to(staleness, shape)
    stale = U * lag * np.array(ETAS)[None, :, None, None]
    bias = np.where(lag > 0, C_B * stale ** power, np.nan)
    reward = np.full(shape, 0.5)
    if collapse_cell is not None:
        reward[collapse_cell][..., STEPS // 2:] = 0.0
    series = {"reward": reward, "staleness": lag, "stale_drift": stale, "bias_norm": bias,
              "update_norm": np.full(shape, U), "bias_bound": 3 * bias, "bias_bound_alt": 1.5 * bias, **extra}
    return sweep_dataset(TAUS, ETAS, series)


def covers(interval, x, tol=1e-9):
    """``x`` in the interval up to ``tol``: an interval from noise-free probes has zero width."""
    return interval.low - tol <= x <= interval.high + tol


def rows(ds, **kwargs):
    return theorem1(ds, collapse_events(ds), n_boot=30, **kwargs)


@pytest.mark.parametrize("power", [1.0, 0.5])
def test_slope_recovers_the_planted_power(power):
    t1 = rows(world(power))
    assert t1.slope.value == pytest.approx(power, abs=1e-9) and covers(t1.slope, power)
    assert t1.slope_source.startswith("bias_norm") and t1.probes > 0


def test_slope_uses_the_measured_lag_not_t_mod_tau():
    # an async pipeline whose lag is 1 or 3 (not t mod τ): the bias follows the measured lag
    lag = np.where(np.arange(STEPS) % 2 == 0, 1.0, 3.0)
    t1 = rows(world(staleness=lag))
    assert t1.slope.value == pytest.approx(1.0, abs=1e-9)
    assert set(np.round(t1.points["x"] / np.repeat(ETAS, 1)[0], 6)) >= {1.0, 3.0}


def test_only_stable_cells_enter_the_slope():
    # a collapsing cell whose bias is off the law by 100×: leaving it out keeps the slope at 1
    ds = world(collapse_cell=(1, 2))
    ds["bias_norm"][1, 2] = ds["bias_norm"][1, 2] * 100
    assert collapse_events(ds).collapsed[1, 2].all()
    assert rows(ds).slope.value == pytest.approx(1.0, abs=1e-9)


def test_probes_below_float64_resolution_are_left_out_of_the_slope():
    # runs frozen at a saturated policy: their exact bias is rounding (1e-17 of G_on) whatever τ_t η; left in,
    # its logs would pull the slope towards 0
    ds = world(probe_G_on=np.full((len(TAUS), len(ETAS), SEEDS, STEPS), 1.0))
    frozen = ds["bias_norm"].values.copy()
    frozen[:, -1, : SEEDS // 2] = np.where(np.isfinite(frozen[:, -1, : SEEDS // 2]), 1e-17, np.nan)
    ds["bias_norm"].values[:] = frozen
    t1 = rows(ds)
    assert t1.slope.value == pytest.approx(1.0, abs=1e-9)
    assert t1.unresolved == np.sum(np.isfinite(frozen[:, -1, : SEEDS // 2]))
    assert np.all(t1.points["y"] > 1e-10)
    without_scale = rows(ds.drop_vars("probe_G_on"))  # no gradient scale recorded: only exact zeros are left out
    assert without_scale.unresolved == 0 and without_scale.slope.value < 0.5


def test_held_out_bound_and_vacuity_factors():
    t1 = rows(world())
    lemma, theorem = t1.heldout["lemma1"], t1.heldout["theorem1"]
    assert lemma["C_b"] == pytest.approx(C_B) and theorem["U"] == pytest.approx(U)
    assert lemma["respected"] == 1.0 and lemma["median_slack"] == pytest.approx(1.0)
    assert theorem["respected"] == 1.0 and theorem["probes"] > 0
    assert t1.vacuity["lemma1"]["median_factor"] == pytest.approx(3.0)
    assert t1.vacuity["alt"]["median_factor"] == pytest.approx(1.5)
    assert t1.vacuity["lemma1"]["respected"] == t1.vacuity["alt"]["respected"] == 1.0
    assert t1.vacuity["alt"]["C_b"] == pytest.approx(1.5 * C_B)


def test_held_out_bound_can_fail():
    # the odd seeds (held out) carry twice the bias of the even ones (fitted): the bound C_b‖θ − β‖ misses them
    ds = world()
    ds["bias_norm"][:, :, 1::2] = ds["bias_norm"][:, :, 1::2] * 2
    assert rows(ds).heldout["lemma1"]["respected"] == 0.0


def test_llm_slope_fits_the_unfloored_squared_estimate():
    # ‖b‖² = (τ_t η)² observed with N(0, σ²) noise, σ above the smallest values: many estimates are negative
    rng = np.random.default_rng(0)
    ds = world()
    x = ds["stale_drift"].values / U
    truth = np.where(x > 0, x ** 2, np.nan)
    sigma = 0.02
    sq = truth + sigma * rng.standard_normal(truth.shape)
    half = 1.645 * sigma
    ds = world(bias_sq=sq, bias_sq_lo=sq - half, bias_sq_hi=sq + half)
    t1 = rows(ds)
    assert (sq[np.isfinite(sq)] < 0).mean() > 0.05
    assert t1.slope_source.startswith("bias_sq") and covers(t1.slope, 1.0)
    assert t1.slope.value == pytest.approx(1.0, abs=0.1) and "lo" in t1.points


def test_a_store_without_probes_says_not_measured():
    ds = world().drop_vars(["bias_norm", "bias_bound", "bias_bound_alt"])
    t1 = rows(ds)
    assert t1.slope_source == "not measured" and np.isnan(t1.slope.value) and not t1.points


def test_constants_come_from_the_pilot_runs_and_give_the_rule():
    ds = world()
    pilot = pilot_runs(ds)
    assert pilot[:, 0].all() and not pilot[:, 1:].any()
    shape = ds.reward.shape[:3]
    u_run = np.where(pilot, U, 100.0)  # only the pilot runs may set U
    ds["const_U"] = (("tau", "eta", "seed"), u_run)
    ds["const_r_clip"] = (("tau", "eta", "seed"), np.full(shape, 0.3))
    c = constants(ds, collapse_events(ds), n_boot=20)
    assert c["U"].value == pytest.approx(U) and c["c_loc_pred"].value == pytest.approx(0.3 / U)
    assert np.isnan(c["R"].value), "no run collapses: R is not measured"


def test_r_clip_from_clip_fraction_crossing():
    ds = world()
    stale = ds["stale_drift"].values
    ds["clip_frac"] = (ds["reward"].dims, np.where(stale > 0.5, 0.3, 0.0))
    c = constants(ds, collapse_events(ds), n_boot=20)
    # pilot runs (η = 0.05) pass a stale drift of 0.5 at τ = 8 only, first at U·6·0.05 = 0.6
    assert c["r_clip"].value == pytest.approx(0.6)


def test_log2_ratio_adds_half_widths_in_quadrature():
    ratio = log2_ratio(Interval(2.0, 1.0, 4.0), Interval(1.0, 0.5, 2.0))
    assert ratio.value == pytest.approx(1.0)
    assert ratio.high - ratio.value == pytest.approx(np.hypot(1.0, 1.0))
    assert np.isnan(log2_ratio(Interval(2.0, np.nan, 4.0), Interval(1.0, 0.5, 2.0)).value)
