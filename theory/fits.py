"""The fits of THEORY.md §6 with bootstrap intervals over seeds (pure numpy).

Inputs are arrays on the sweep axes ``(tau, eta, seed)`` (``t_star``,
``collapsed``) or ``(tau, eta, seed, step)`` (series). Every interval is a
percentile bootstrap (95 %) that resamples seeds with replacement, the same
seed indices in every cell, so a cell's collapse probability and its t*
values move together. Conventions **[choice]**:

* ``η_max(τ)`` is the largest grid η whose collapse fraction is ≤
  ``threshold`` (default 0: every seed stable); a τ whose η_max is the largest
  grid η (only a lower bound) or that has no stable η is left out of the fit
  and of c_loc;
* the t* regression runs over the collapsing cells (some seed collapses): a
  seed of such a cell that did not collapse within the run is right-censored
  (it says t* > T − W), not dropped; cells where no seed collapses are stable,
  outside the law; every collapse probability counts every run;
* ``msd_slope`` is fitted over the second half of the pre-collapse window
  (the whole run when it does not collapse), steps t ≥ 1 with finite drift > 0.
"""

from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm

LEVEL = 0.95
"""Coverage of every bootstrap interval."""


class Interval(NamedTuple):
    """A point estimate with a bootstrap interval (all NaN when not estimable)."""

    value: float
    low: float
    high: float

    def as_dict(self):
        return {"value": self.value, "low": self.low, "high": self.high}


NAN_INTERVAL = Interval(np.nan, np.nan, np.nan)


def bootstrap(statistic, n_seeds, n_boot=200, seed=0):
    """``statistic(seed_indices)`` on all seeds, with a percentile interval over resampled seeds.

    Resamples where the statistic is NaN are dropped; the interval is NaN when
    fewer than half of them are finite.
    """
    return bootstrap_joint(lambda idx: (statistic(idx),), n_seeds, n_boot, seed)[0]


def bootstrap_joint(statistic, n_seeds, n_boot=200, seed=0):
    """:func:`bootstrap` of a statistic with several components (a tuple), one fit per resample for all of them."""
    value = np.asarray(statistic(np.arange(n_seeds)), dtype=float)
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(rng.integers(0, n_seeds, n_seeds)) for _ in range(n_boot)], dtype=float)
    tail = 100 * (1 - LEVEL) / 2
    intervals = []
    for v, d in zip(value, draws.T):
        d = d[np.isfinite(d)]
        if not np.isfinite(v) or d.size < n_boot / 2:
            intervals.append(Interval(float(v), np.nan, np.nan))
            continue
        low, high = np.percentile(d, [tail, 100 - tail])
        intervals.append(Interval(float(v), float(min(low, v)), float(max(high, v))))
    return tuple(intervals)


def eta_max(collapsed, etas, threshold=0.0):
    """η_max(τ): largest grid η whose collapse fraction over seeds is ≤ ``threshold``.

    ``collapsed``: bool ``(tau, eta, seed)``. NaN for a τ with no such η.
    """
    fraction = np.asarray(collapsed, dtype=float).mean(axis=-1)
    etas = np.asarray(etas, dtype=float)
    stable = fraction <= threshold
    best = np.where(stable, etas[None, :], -np.inf).max(axis=1)
    return np.where(np.isfinite(best), best, np.nan)


def _loglog_slope(x, y):
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if np.unique(x[ok]).size < 2:
        return np.nan
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def _interior_eta_max(collapsed, etas, threshold):
    limit = eta_max(collapsed, etas, threshold)
    return np.where(limit < np.max(etas), limit, np.nan)


def eta_max_exponent(collapsed, taus, etas, threshold=0.0, n_boot=200, seed=0):
    """a in ``η_max ∝ τ^−a`` (theory: a = 1 when the local condition (32) binds)."""
    collapsed = np.asarray(collapsed, dtype=bool)

    def statistic(idx):
        return -_loglog_slope(taus, _interior_eta_max(collapsed[:, :, idx], etas, threshold))

    return bootstrap(statistic, collapsed.shape[-1], n_boot, seed)


def _regress(log_t, log_eta, log_tau, observed, log_censor):
    """Censored normal regression of log t* on [1, log η, log τ] by maximum likelihood.

    ``observed`` runs contribute the density of their log t*, the others
    ``P(log t* > log_censor)``. Returns ``(b, c)`` with t* ∝ η^−b τ^c, NaN where
    not identified (fewer than 3 collapses, or a single η among them).
    """
    if observed.sum() < 3 or np.unique(log_eta[observed]).size < 2:
        return np.nan, np.nan
    with_tau = np.unique(log_tau).size >= 2
    X = np.stack([np.ones_like(log_t), log_eta] + ([log_tau] if with_tau else []), axis=1)
    start = np.linalg.lstsq(X[observed], log_t[observed], rcond=None)[0]
    spread = np.std(log_t[observed] - X[observed] @ start)
    params = np.r_[start, np.log(max(spread, 1e-3))]
    if not observed.all():
        def negative_log_likelihood(p):
            mu, sigma = X @ p[:-1], np.exp(p[-1])
            z = np.where(observed, log_t, log_censor) - mu
            return -(np.sum(norm.logpdf(z[observed] / sigma) - p[-1]) + np.sum(norm.logsf(z[~observed] / sigma)))

        bounds = [(None, None)] * X.shape[1] + [(np.log(1e-3), np.log(1e3))]
        params = minimize(negative_log_likelihood, params, method="L-BFGS-B", bounds=bounds).x
    return -params[1], (params[2] if with_tau else np.nan)


def collapse_time_regression(t_star, taus, etas, censor_at, n_boot=200, seed=0):
    """``log t* = α − b log η + c log τ + σε`` over the collapsing cells; returns ``(b, c)`` Intervals.

    Theory (34): b = 1 (t* ≈ c_hor/η) and c = 0 (independent of τ). A cell is
    collapsing when any of its seeds collapses; its seeds that did not collapse
    are right-censored at ``censor_at`` (the last step at which a collapse
    could still be detected), so they pull t* up instead of being dropped.
    Cells where no seed collapses are stable and are not part of the law.
    """
    t_star = np.asarray(t_star)
    grid_tau, grid_eta = np.meshgrid(np.log(taus), np.log(etas), indexing="ij")
    log_censor = np.log(max(censor_at, 1))

    def fit(idx):
        t = t_star[:, :, idx]
        collapsed = t >= 1
        # the seeds of collapsing cells, but a t* = 0 (no reward from the start) has no log
        rows = np.broadcast_to((t >= 0).any(axis=-1, keepdims=True), t.shape) & (t != 0)
        lt = np.broadcast_to(grid_tau[..., None], t.shape)[rows]
        le = np.broadcast_to(grid_eta[..., None], t.shape)[rows]
        observed = collapsed[rows]
        return _regress(np.log(np.where(observed, t[rows], 1)), le, lt, observed, log_censor)

    return bootstrap_joint(fit, t_star.shape[-1], n_boot, seed)


def eta_tstar_by_tau(t_star, etas):
    """Median η·t* over the collapsed runs of each τ (NaN for a τ without one)."""
    t_star = np.asarray(t_star, dtype=float)
    product = np.where(t_star >= 1, t_star * np.asarray(etas, dtype=float)[None, :, None], np.nan)
    flat = product.reshape(product.shape[0], -1)
    return np.array([np.median(row[np.isfinite(row)]) if np.isfinite(row).any() else np.nan for row in flat])


def eta_tstar_slope(t_star, etas, taus, n_boot=200, seed=0):
    """Slope of log(median η·t*) against log τ over the τ with a collapse (Table 2, (34): 0); needs two τ.

    A max/min ratio of noisy medians is ≥ 1 by construction, so it reads noise as
    a violation; a slope is centred on 0 under the theory and signed otherwise.
    """
    t_star = np.asarray(t_star)

    def statistic(idx):
        return _loglog_slope(taus, eta_tstar_by_tau(t_star[:, :, idx], etas))

    return bootstrap(statistic, t_star.shape[-1], n_boot, seed)


def msd_slope(drift, t_star, steps=None):
    """Slope of log ‖θ_t − θ_0‖ vs log t per run (§6; ≈1 ballistic, ≈0.5 diffusive).

    ``drift``: ``(..., step)``; ``t_star``: the leading shape. The fit uses the
    second half of ``[0, t*)`` (of the whole run when t* = −1).
    """
    drift = np.asarray(drift, dtype=float)
    steps = np.arange(drift.shape[-1]) if steps is None else np.asarray(steps, dtype=float)
    t_star = np.asarray(t_star)
    flat = drift.reshape(-1, drift.shape[-1])
    slopes = np.full(flat.shape[0], np.nan)
    for i, (d, t) in enumerate(zip(flat, t_star.reshape(-1))):
        end = d.size if t < 0 else int(t)
        half = slice(end // 2, end)
        slopes[i] = _loglog_slope(steps[half], d[half])
    return slopes.reshape(t_star.shape)


def class_mean(values, members, n_boot=200, seed=0):
    """Mean of per-run ``values`` over runs where ``members`` holds, bootstrap over seeds (last axis)."""
    values = np.asarray(values, dtype=float)
    members = np.asarray(members, dtype=bool)

    def statistic(idx):
        chosen = values[..., idx][members[..., idx]]
        chosen = chosen[np.isfinite(chosen)]
        return chosen.mean() if chosen.size else np.nan

    return bootstrap(statistic, values.shape[-1], n_boot, seed)


def c_loc(collapsed, taus, etas, threshold=0.0, n_boot=200, seed=0):
    """c_loc (36) as the median over τ of η_max(τ)·τ (the τ whose η_max lies inside the grid)."""
    collapsed = np.asarray(collapsed, dtype=bool)
    taus = np.asarray(taus, dtype=float)

    def statistic(idx):
        product = _interior_eta_max(collapsed[:, :, idx], etas, threshold) * taus
        product = product[np.isfinite(product)]
        return np.median(product) if product.size else np.nan

    return bootstrap(statistic, collapsed.shape[-1], n_boot, seed)


def c_hor(t_star, etas, n_boot=200, seed=0):
    """c_hor (34) as the median of η·t* over all collapsed runs."""
    t_star = np.asarray(t_star)
    product_eta = np.asarray(etas, dtype=float)[None, :, None]

    def statistic(idx):
        t = t_star[:, :, idx]
        product = (t * product_eta)[t >= 1]
        return np.median(product) if product.size else np.nan

    return bootstrap(statistic, t_star.shape[-1], n_boot, seed)


def max_bias_ratio(bias_norm, bias_bound, n_boot=200, seed=0):
    """max over steps and runs of ``bias_norm / bias_bound`` (Lemma 1 / Theorem 1: ≤ 1).

    Series of shape ``(tau, eta, seed, step)``; steps where either is NaN or the
    bound is 0 are skipped. NaN when no step has both.
    """
    bias_norm, bias_bound = np.asarray(bias_norm, dtype=float), np.asarray(bias_bound, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bias_bound > 0, bias_norm / bias_bound, np.nan)
    ratio = np.moveaxis(ratio, 2, -1)

    def statistic(idx):
        chosen = ratio[..., idx]
        return np.nanmax(chosen) if np.isfinite(chosen).any() else np.nan

    return bootstrap(statistic, ratio.shape[-1], n_boot, seed)
