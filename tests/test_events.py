"""Collapse events (docs/theory.md §6): τ-independent windows, interval censoring, exact success, the census."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from stores import one_run, sweep_dataset

from analysis.events import (
    CENSORED, KICK_RATIO, censor_window, collapse_events, collapse_step, collapsed_mask,
)


def cycles(values, tau):
    """A per-batch series repeated over each batch's τ steps (whole-batch reuse)."""
    return np.repeat(np.asarray(values, dtype=float), tau)


def test_whole_batch_reuse_gives_a_sync_cycle_wide_interval():
    # τ = 4: batches from θ_0, θ_4, θ_8 are healthy, θ_12 on give zero reward: θ_8 healthy, θ_12 collapsed
    ev = collapse_events(one_run(tau=4, reward=cycles([0.5, 0.4, 0.6] + [0.0] * 22, 4)))
    assert ev.collapsed.item() and ev.source == "reward"
    assert (ev.t_low.item(), ev.t_high.item()) == (9, 12)


def test_at_tau_one_the_interval_is_one_step():
    ev = collapse_events(one_run(tau=1, reward=np.r_[np.full(40, 0.5), np.zeros(60)]))
    assert (ev.t_low.item(), ev.t_high.item()) == (40, 40)


def test_the_measured_staleness_sets_the_batch_versions():
    # an async pipeline whose lag is 2 at every step: the zero batch at step 30 came from θ_28, the last
    # healthy one (step 29) from θ_27, so t* = 28 exactly, although 30 mod 4 ≠ 0
    reward = np.r_[np.full(30, 0.5), np.zeros(70)]
    ev = collapse_events(one_run(tau=4, reward=reward, staleness=np.full(100, 2.0)))
    assert (ev.t_low.item(), ev.t_high.item()) == (28, 28)


def test_exact_success_is_not_quantised_by_the_sync_schedule():
    success = np.r_[np.linspace(0.3, 0.02, 37), np.full(63, 0.001)]
    reward = cycles([0.3] * 10 + [0.0] * 15, 4)  # the batch reward only says "somewhere in a sync cycle"
    ev = collapse_events(one_run(tau=4, reward=reward, success=success))
    assert ev.source == "success" and (ev.t_low.item(), ev.t_high.item()) == (37, 37)


def test_success_floor_is_relative_to_a_low_start():
    # θ_0 at success 0.005 (below the absolute floor): only a fall below a tenth of it is a collapse
    flat = collapse_events(one_run(success=np.full(100, 0.005), reward=np.full(100, 0.1)))
    fall = collapse_events(one_run(success=np.r_[np.full(50, 0.005), np.full(50, 1e-4)], reward=np.full(100, 0.1)))
    assert not flat.collapsed.item() and fall.t_high.item() == 50


@pytest.mark.parametrize("tau, collapsed", [(1, True), (4, True), (16, False)])
def test_window_counts_rollout_batches_as_well_as_steps(tau, collapsed):
    # T = 200: W(τ) = max(5, 10, 5τ) = 10, 20, 80; a 48-step zero tail is 3 batches at τ = 16
    assert censor_window(200, tau) == max(10, 5 * tau)
    reward = np.r_[np.full(152, 0.5), np.zeros(48)]
    assert collapse_events(one_run(tau=tau, reward=reward)).collapsed.item() is collapsed


def test_a_divergence_is_exact_at_its_first_non_finite_step_and_never_censored():
    reward = np.r_[np.full(97, 0.5), [np.nan], [0.5, 0.5]]
    ev = collapse_events(one_run(tau=4, reward=reward))
    assert ev.collapsed.item() and ev.diverged.item() and (ev.t_low.item(), ev.t_high.item()) == (97, 97)


def test_censoring_step_is_the_horizon_minus_the_window():
    taus = (1, 8)
    reward = np.full((2, 1, 2, 120), 0.5)
    ev = collapse_events(sweep_dataset(taus, [1.0], {"reward": reward}))
    assert ev.window.tolist() == [6, 40] and np.all(ev.censor_at[0] == 114) and np.all(ev.censor_at[1] == 80)
    assert np.isnan(ev.t_star).all() and ev.census() == {"drift": 0, "kick": 0, "absorption": 0, "unclassified": 0}


@given(st.integers(1, 8), st.integers(60, 140), st.integers(1, 120))
def test_a_collapse_is_detected_exactly_when_it_is_not_after_the_censoring_step(tau, steps, t_star):
    # reward only: the batch of version v_t = t − t mod τ is 0 iff θ at v_t had collapsed (v_t ≥ t*); the latest
    # detectable t* is the last sync step at or before T − W(τ), not T − W(τ) itself
    version = np.arange(steps) - np.arange(steps) % tau
    ev = collapse_events(one_run(tau=tau, reward=np.where(version >= t_star, 0.0, 0.5)))
    limit = steps - censor_window(steps, tau)
    assert ev.censor_at.item() == limit - limit % tau
    assert ev.collapsed.item() == (t_star <= ev.censor_at.item())


def test_success_is_censored_at_the_horizon_minus_the_window():
    ev = collapse_events(one_run(tau=8, reward=np.full(123, 0.5), success=np.full(123, 0.5)))
    assert ev.censor_at.item() == 123 - 40  # W = max(5, ⌈123/20⌉, 5·8) = 40; exact t*: no sync rounding


def test_times_are_in_the_step_coordinate_of_a_sparse_log():
    # logged every 10 steps (0, 10, …, 990): success first collapsed at the entry of step 400, healthy at 390
    steps = 10 * np.arange(100)
    success = np.r_[np.full(40, 0.5), np.zeros(60)]
    drift = steps / 400
    update = np.ones(100)
    update[39] = 5 * KICK_RATIO  # at step 390: within the last max(5, τ) = 5 steps before t* ∈ [391, 400]
    ev = collapse_events(one_run(tau=1, steps=steps, reward=np.full(100, 0.5), success=success, drift=drift,
                                 update_norm=update))
    assert (ev.t_low.item(), ev.t_high.item()) == (391, 400) and ev.window.item() == 50
    assert ev.censor_at.item() == 950 and ev.radius.item() == 1.0 and ev.kind.item() == "kick"
    diverged = collapse_events(one_run(tau=1, steps=steps, reward=np.r_[np.full(97, 0.5), np.full(3, np.nan)]))
    assert (diverged.t_low.item(), diverged.t_high.item()) == (961, 970)
    # windowed reward every 4 steps at τ = 4: each entry is a sync step, its batch from θ at that step
    reward = np.r_[np.full(30, 0.5), np.zeros(20)]
    windowed = collapse_events(one_run(tau=4, steps=4 * np.arange(50), reward=reward))
    assert (windowed.t_low.item(), windowed.t_high.item()) == (117, 120)


def _census_run(drift, update):
    reward = np.r_[np.full(60, 0.5), np.zeros(40)]
    return collapse_events(one_run(tau=1, reward=reward, drift=drift, update_norm=update))


def test_census_drift_kick_and_absorption():
    t = np.arange(100.0)
    smooth = _census_run(0.01 * t, np.ones(100))
    assert smooth.kind.item() == "drift" and smooth.radius.item() == pytest.approx(0.6)
    kicked = np.ones(100)
    kicked[57] = 2 * KICK_RATIO
    assert _census_run(0.01 * t, kicked).kind.item() == "kick"
    back = np.where(t < 40, 0.02 * t, 0.8 - 0.035 * (t - 40)).clip(0.05)  # out to 0.8, then back near θ_0
    absorbed = _census_run(back, kicked)
    assert absorbed.kind.item() == "absorption" and absorbed.census()["absorption"] == 1


def test_a_collapse_in_the_first_steps_is_not_called_drift():
    t = np.arange(100.0)
    reward = np.r_[np.full(3, 0.5), np.zeros(97)]  # t* = 3 at τ = 1: no update before the kick window
    ev = collapse_events(one_run(tau=1, reward=reward, drift=0.01 * t, update_norm=np.ones(100)))
    assert ev.collapsed.item() and ev.kind.item() == "unclassified"
    assert ev.radius.item() == pytest.approx(0.03)  # the radius is still measured


def test_census_without_drift_is_unclassified():
    ev = collapse_events(one_run(reward=np.r_[np.full(60, 0.5), np.zeros(40)]))
    assert ev.kind.item() == "unclassified" and np.isnan(ev.radius.item())
    assert ev.census() == {"drift": 0, "kick": 0, "absorption": 0, "unclassified": 1}


def test_census_and_probability_over_the_seeds_of_a_cell():
    t = np.arange(100.0)
    reward = np.stack([np.r_[np.full(60, 0.5), np.zeros(40)], np.full(100, 0.5)])[None, None]
    drift = np.broadcast_to(0.01 * t, reward.shape)
    ev = collapse_events(sweep_dataset([1], [1.0], {"reward": reward, "drift": drift}))
    assert ev.census()["drift"] == 1 and ev.probability.item() == 0.5


# ---------------------------------------------------------------- step-valued helpers (the TRL callback uses them)


def test_zero_tail_gives_first_zero_step_and_short_tails_are_censored():
    assert collapse_step(np.r_[np.full(50, 0.4), np.zeros(30)], window=10) == 50
    assert collapse_step(np.r_[np.full(50, 0.4), np.zeros(9)], window=10) == CENSORED
    assert collapse_step(np.r_[np.full(20, 0.5), np.zeros(40), np.full(20, 0.5)], window=5) == CENSORED


def test_an_infinite_reward_is_a_divergence_like_nan():
    reward = np.array([0.5, 0.4, np.inf, 0.3, 0.6])
    assert collapse_step(reward, window=5).item() == 2
    assert collapsed_mask(reward).tolist() == [False, False, True, True, True]


@given(st.lists(st.sampled_from([0.0, 0.25, 1.0]), min_size=1, max_size=60), st.integers(1, 10))
def test_definition_holds_on_any_series(values, window):
    reward = np.array(values)
    t = int(collapse_step(reward, window))
    if t >= 0:
        assert np.all(reward[t:] == 0) and reward.size - t >= window
        assert t == 0 or reward[t - 1] != 0
    else:
        tail = reward.size - np.flatnonzero(np.r_[1.0, reward] != 0)[-1]
        assert reward[-1] != 0 or tail < window


@given(st.integers(1, 16), st.integers(1, 30), st.integers(0, 29))
def test_reward_interval_always_contains_the_planted_collapse_version(tau, cycles_before, offset):
    # planted: θ collapses at version t*; reward of the batch at step t is 0 iff its version v_t ≥ t*
    steps = 40 * tau + 200
    t_star = cycles_before * tau + offset % tau + 1
    version = np.arange(steps) - np.arange(steps) % tau
    reward = np.where(version >= t_star, 0.0, 0.5)
    ev = collapse_events(one_run(tau=tau, reward=reward))
    assert ev.t_low.item() <= t_star <= ev.t_high.item() and ev.t_high.item() - ev.t_low.item() < tau
