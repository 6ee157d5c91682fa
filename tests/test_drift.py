"""The lag-MSD exponent separates ballistic, diffusive and converging runs, and is not fooled by one jump."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from analysis.drift import MIN_WINDOW, class_exponent, drift_exponents, window_end
from analysis.events import collapse_events
from analysis.planted import planted_world
from analysis.store import projections

K, T = 8, 400


def _walks(rng, runs, drift=0.0, noise=1.0, steps=T):
    direction = rng.standard_normal((runs, 1, K))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    increments = drift * direction + noise * rng.standard_normal((runs, steps - 1, K)) / np.sqrt(K)
    return np.concatenate([np.zeros((runs, 1, K)), np.cumsum(increments, axis=1)], axis=1)


def test_ballistic_path_reads_one_and_its_shuffle_reads_a_half():
    paths = _walks(np.random.default_rng(0), 20, drift=1.0, noise=0.3)
    d = drift_exponents(paths, seed=1)
    assert np.all(np.abs(d.H - 1.0) < 0.02)
    assert np.all(np.abs(d.H_shuffled - 0.5) < 0.1)
    assert set(d.label) == {"ballistic"}


def test_random_walk_is_diffusive():
    d = drift_exponents(_walks(np.random.default_rng(1), 20), seed=2)
    assert np.abs(d.H - 0.5).max() < 0.08 and np.abs(d.corrected - 0.5).max() < 0.1
    assert set(d.label) == {"diffusive"}


def test_converging_runs_are_not_called_diffusive():
    rng = np.random.default_rng(2)
    t = np.arange(T - 1)[None, :, None]
    shrinking = np.exp(-t / 40.0) * rng.standard_normal((20, T - 1, K))
    paths = np.concatenate([np.zeros((20, 1, K)), np.cumsum(shrinking, axis=1)], axis=1)
    d = drift_exponents(paths, seed=3)
    assert set(d.label) == {"converging"}
    assert np.all(d.shrink > 100)


def test_short_windows_are_undetermined():
    paths = _walks(np.random.default_rng(3), 3, drift=1.0, noise=0.1)
    d = drift_exponents(paths, start=0, end=[MIN_WINDOW - 1, MIN_WINDOW, np.nan])
    assert list(d.label) == ["undetermined", "ballistic", "ballistic"]
    assert np.isnan(d.H[0]) and d.window.tolist() == [0.0, MIN_WINDOW, T]


def test_one_offset_does_not_turn_a_ballistic_run_diffusive():
    paths = _walks(np.random.default_rng(4), 10, drift=1.0, noise=0.05, steps=120)
    jump = np.zeros_like(paths)
    jump[:, 50:, 0] = 30.0  # a one-off jump of 30 steps' worth of drift
    median = drift_exponents(paths + jump, seed=5)
    mean = drift_exponents(paths + jump, seed=5, statistic="mean")
    assert np.all(np.abs(median.H - 1.0) < 0.03) and set(median.label) == {"ballistic"}
    assert np.all(mean.H < 0.9), "the plain mean is what the offset fools"


def test_non_finite_steps_end_the_window():
    paths = _walks(np.random.default_rng(5), 2, drift=1.0, noise=0.1)
    paths[0, 200:] = np.nan
    d = drift_exponents(paths)
    assert d.window.tolist() == [200.0, T] and set(d.label) == {"ballistic"}


@given(st.integers(1, 500), st.integers(1, 32))
def test_window_end_leaves_out_the_final_sync_cycle(t_low, tau):
    end = window_end(t_low, tau)
    assert end % tau == 0 and end <= t_low - 1 < end + tau


def test_window_end_without_a_collapse_is_nan():
    assert np.isnan(window_end(np.nan, 4)) and window_end([9, 10], [1, 4]).tolist() == [8.0, 8.0]


def test_window_end_is_an_entry_index_on_a_sparse_log():
    # logged every 10 steps: the window of a collapse at t* ∈ [391, 400], τ = 4, ends at the sync step 388, so
    # it holds the entries of steps 0 … 380 (39 of them), not 388 entries
    steps = 10.0 * np.arange(100)
    assert window_end([391.0, np.nan], 4, steps)[0] == 39 and np.isnan(window_end([391.0, np.nan], 4, steps)[1])


def test_planted_worlds_label_their_runs():
    for kind, stable in (("clean", "diffusive"), ("converging", "converging")):
        ds, truth = planted_world(kind, 31, seeds=8)
        events = collapse_events(ds)
        end = window_end(events.t_low, ds.tau.values[:, None, None])
        d = drift_exponents(projections(ds), 0, end, seed=1)
        assert set(d.label[~events.collapsed]) == {stable}, kind
        assert set(d.label[events.collapsed]) <= {"ballistic", "undetermined"}, kind
        members = events.collapsed & (d.label != "undetermined")
        h = class_exponent(d.H, members)
        assert h.low <= h.value <= h.high and abs(h.value - truth["H"]) < 0.01


def test_class_exponent_is_a_t_interval_over_seeds():
    rng = np.random.default_rng(6)
    covered = 0
    for _ in range(200):
        values = 0.5 + 0.1 * rng.standard_normal((3, 4, 8))
        covered += class_exponent(values, np.ones_like(values, dtype=bool), level=0.9).covers(0.5)
    assert 0.85 <= covered / 200 <= 0.95
    one_seed = np.zeros((2, 3), dtype=bool)
    one_seed[:, 0] = True
    assert np.isnan(class_exponent(np.ones((2, 3)), one_seed).value)
