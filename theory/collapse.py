"""Collapse detection, THEORY.md §6 (``collapse_step`` t*, ``collapse_sync`` k*), with censoring.

Conventions **[choice]**, stated once here and in REPORT.md:

* a step is *collapsed* when its training reward is exactly 0 or not finite; a
  NaN (or ±inf) marks divergence, so every step from the first one on counts as collapsed;
* t* is the first step after which every step to the end is collapsed;
* a finite zero tail shorter than ``W = max(5, ⌈T/20⌉)`` steps is *censored*
  (t* = −1): the run ended too soon after the drop to tell a collapse from a
  dip. A NaN tail is never censored (a diverged run cannot recover);
* a collapse is a *kick* when the largest ``update_norm`` in the ``W`` steps
  before t* exceeds :data:`KICK_RATIO` times the median ``update_norm`` before
  t*, and a *drift* otherwise (SYNTHETIC_NOTES.md: single huge steps vs a slow
  ballistic walk).

All functions take numpy arrays whose last axis is the step.
"""

import numpy as np

KICK_RATIO = 10.0
"""A collapse whose largest pre-collapse update exceeds this many medians is a kick."""

CENSORED = -1
"""t* (and k*) of a run that did not collapse, or whose collapse is censored."""


def censor_window(steps):
    """``W = max(5, ⌈T/20⌉)``: the shortest zero tail that counts as a collapse."""
    return max(5, -(-int(steps) // 20))


def collapsed_mask(reward):
    """Steps that count as collapsed: reward 0, or at/after the first non-finite reward of the run."""
    reward = np.asarray(reward, dtype=float)
    after_nan = np.maximum.accumulate(~np.isfinite(reward), axis=-1)
    return (reward == 0) | after_nan


def collapse_step(reward_series, window=None):
    """t* of each run (last axis = step): first step after which reward is 0 to the end.

    Returns an integer array of the leading shape; :data:`CENSORED` (−1) for runs
    whose last step is not collapsed or whose finite zero tail is shorter than
    ``window`` (default :func:`censor_window`).

    >>> collapse_step(np.array([1.0, 0.5, 0, 0.2] + [0.0] * 6), window=5).item()
    4
    """
    reward = np.asarray(reward_series, dtype=float)
    steps = reward.shape[-1]
    window = censor_window(steps) if window is None else int(window)
    mask = collapsed_mask(reward)
    # length of the run of collapsed steps that ends at the last step
    tail = np.cumprod(mask[..., ::-1], axis=-1).sum(axis=-1)
    t_star = steps - tail
    diverged = (~np.isfinite(reward)).any(axis=-1)
    keep = (tail > 0) & ((tail >= window) | diverged)
    return np.where(keep, t_star, CENSORED).astype(int)


def collapse_sync(t_star, tau):
    """k* = ⌊t*/τ⌋ (35), −1 where t* is −1; ``tau`` broadcasts against ``t_star``."""
    t_star = np.asarray(t_star)
    return np.where(t_star >= 0, t_star // np.asarray(tau), CENSORED)


def collapse_probability(t_star, seed_axis=-1):
    """Fraction of seeds that collapse, per cell: censored runs count as not collapsed."""
    return (np.asarray(t_star) >= 0).mean(axis=seed_axis)


def kick_ratio(update_norm, t_star, window=None):
    """Largest ``update_norm`` in the ``window`` steps before t*, over the median before t*.

    ``update_norm`` has shape ``(..., step)`` and ``t_star`` the leading shape;
    NaN for runs without a collapse or without a finite update before t*.
    """
    update_norm = np.asarray(update_norm, dtype=float)
    t_star = np.asarray(t_star)
    window = censor_window(update_norm.shape[-1]) if window is None else int(window)
    flat_u = update_norm.reshape(-1, update_norm.shape[-1])
    ratios = np.full(flat_u.shape[0], np.nan)
    for i, (u, t) in enumerate(zip(flat_u, t_star.reshape(-1))):
        before = u[:t][np.isfinite(u[:t])] if t > 0 else u[:0]
        recent = u[max(0, t - window):t]
        recent = recent[np.isfinite(recent)]
        if before.size and recent.size and np.median(before) > 0:
            ratios[i] = recent.max() / np.median(before)
    return ratios.reshape(t_star.shape)


def classify_collapse(update_norm, t_star, window=None, kick_ratio_threshold=KICK_RATIO):
    """``"kick"``, ``"drift"`` or ``"none"`` (no collapse or no update to judge) per run."""
    ratio = kick_ratio(update_norm, t_star, window)
    return np.where(np.isnan(ratio), "none", np.where(ratio > kick_ratio_threshold, "kick", "drift"))
