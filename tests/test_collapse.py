"""Collapse detection (THEORY.md §6) on planted reward series: censoring, NaN, recovery, kicks."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from theory.collapse import (
    CENSORED, censor_window, classify_collapse, collapse_probability, collapse_step, collapse_sync, collapsed_mask,
)


def test_zero_tail_gives_first_zero_step():
    reward = np.r_[np.full(50, 0.4), np.zeros(30)]
    assert collapse_step(reward, window=10) == 50


def test_zero_tail_shorter_than_window_is_censored():
    reward = np.r_[np.full(50, 0.4), np.zeros(9)]
    assert collapse_step(reward, window=10) == CENSORED
    assert collapse_step(np.r_[np.full(50, 0.4), np.zeros(10)], window=10) == 50


def test_default_window_is_max_of_five_and_a_twentieth():
    assert censor_window(40) == 5
    assert censor_window(1000) == 50
    assert censor_window(1001) == 51
    reward = np.r_[np.full(950, 0.5), np.zeros(49)]
    assert collapse_step(reward) == CENSORED


def test_dip_then_recovery_is_not_a_collapse():
    reward = np.r_[np.full(20, 0.5), np.zeros(40), np.full(20, 0.5)]
    assert collapse_step(reward, window=5) == CENSORED


def test_dip_before_final_collapse_does_not_move_t_star():
    reward = np.r_[np.full(20, 0.5), np.zeros(10), np.full(20, 0.5), np.zeros(30)]
    assert collapse_step(reward, window=5) == 50


def test_nan_counts_as_collapsed_from_its_first_nan_and_is_never_censored():
    reward = np.r_[np.full(30, 0.5), np.zeros(4), [np.nan], np.full(3, 0.7)]
    assert collapse_step(reward, window=20) == 30
    assert collapse_step(np.r_[np.full(30, 0.5), [np.nan]], window=20) == 30


def test_vectorised_over_leading_axes_and_sync_index():
    reward = np.ones((2, 3, 40))
    reward[0, 1, 12:] = 0
    reward[1, 2, 33:] = 0
    t_star = collapse_step(reward, window=5)
    assert t_star.tolist() == [[-1, 12, -1], [-1, -1, 33]]
    assert collapse_sync(t_star, np.array([[4], [8]])).tolist() == [[-1, 3, -1], [-1, -1, 4]]
    assert collapse_probability(t_star, seed_axis=-1).tolist() == [1 / 3, 1 / 3]


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


def test_kick_is_a_huge_update_just_before_collapse():
    update = np.ones((2, 100))
    update[0, 58] = 50.0
    update[1, 58] = 2.0
    kinds = classify_collapse(update, np.array([60, 60]), window=5)
    assert kinds.tolist() == ["kick", "drift"]
    assert classify_collapse(update, np.array([-1, 60]), window=5).tolist() == ["none", "drift"]


def test_an_infinite_reward_is_a_divergence_like_nan():
    reward = np.array([0.5, 0.4, np.inf, 0.3, 0.6])  # a blown-up step: collapsed from there, never censored
    assert collapse_step(reward, window=5).item() == 2
    assert collapsed_mask(reward).tolist() == [False, False, True, True, True]
