"""The collapse time t* as survival data with a cure fraction: Theorem 2, (34), docs/theory.md §5.

Theorem 2 predicts t* ≈ c_hor/η for a run that collapses, whatever τ. Whether a run collapses at all
(incidence) and when it does (latency) are different questions — a store where the probability of
collapse grows with τ while t* given collapse does not must read c = 0 — so they are modelled apart
(docs/statistics.md §3), over per-run arrays:

    incidence   P(collapse) = σ(γ0 + γ_η log η + γ_τ log τ)                          σ the logistic
    latency     log t* ~ Normal(μ0 − b log η + c log τ, σ²)        (log-normal AFT; theory b = 1, c = 0)

A collapsed run says t* ∈ [t_low, t_high] (interval censoring; in whole learner steps, so with
``discrete`` the latent continuous time lies in (t_low − 1, t_high]); a run without a detected collapse
says t* > C = ``censor_at`` (right censoring: the last step at which a collapse could still be seen).
Two formulations, the same latency law:

* ``two_part`` (the default): incidence is "collapses within the run" (a logistic regression on all
  runs), and the latency of the collapsed runs is truncated at C:
  L = Π_collapsed [F(t_high) − F(t_low)] / F(C). The censored runs inform the incidence only.
* ``cure``: incidence is "ever collapses" (π), latency untruncated, the mixture-cure likelihood
  L = Π_collapsed π [F(t_high) − F(t_low)] · Π_censored [(1 − π) + π (1 − F(C))].

With q = π F(C) the cure likelihood factors into the same truncated latency likelihood times a Bernoulli
likelihood of collapsing within the run with probability q, which ties that probability to the latency.
So the two-part b and c do not depend on the incidence's functional form at all; the cure model's do,
through q. On the planted worlds
both gave the same coverage of b and c (docs/statistics.md §3, §6); the two-part fit is the default because
it is right by construction and 4–5× faster. With ``clusters`` (the seed of each run) its intervals are
widened by their design effects: runs of one seed share randomness across cells. All intervals are
two-sided profile-likelihood intervals.
"""

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit, log_expit, log_ndtr, ndtr

from analysis.intervals import (NAN_INTERVAL, VERDICT_LEVEL, BetterOptimum, Interval, linear_intervals, minimize_box,
                                to_interval)

MIN_COLLAPSES = 5
"""Fewer collapses than this and the latency is not fitted (NaN with a reason)."""
FORMULATIONS = ("two_part", "cure")
B_MAX = 10.0
"""Search range of b and c: |b|, |c| ≤ B_MAX (a profile flat to it is unbounded on that side)."""
GAMMA_MAX = 30.0
"""Search range of the incidence coefficients (separated data: the logistic MLE runs off to infinity)."""
SIGMA_RANGE = (1e-2, 20.0)
"""Range of the latency's σ in log t*."""


@dataclass(frozen=True)
class SurvivalFit:
    """The incidence and latency fits (module docstring)."""

    level: float
    formulation: str
    b: Interval = NAN_INTERVAL
    """t* ∝ η^−b given collapse (theory: 1)."""
    c: Interval = NAN_INTERVAL
    """t* ∝ τ^c given collapse (theory: 0)."""
    sigma: Interval = NAN_INTERVAL
    """Spread of log t* around the law."""
    t0: Interval = NAN_INTERVAL
    """Median t* at η = 1, τ = 1: exp(μ0) (theory: c_hor)."""
    incidence: dict = field(default_factory=dict)
    """``{"intercept", "log_eta", "log_tau"}`` → Interval of the incidence logistic regression."""
    loglik: float = math.nan
    n_runs: int = 0
    n_collapsed: int = 0
    reason: str = ""
    """Why the latency is NaN ("" when it is not)."""
    notes: tuple = ()
    levels: dict = field(default_factory=dict)
    """``{level: {name: Interval}}`` (b, c, sigma, t0, incidence_*) for every level computed."""

    def at(self, level):
        return self.levels[level]

    def as_dict(self):
        return {
            "level": self.level, "formulation": self.formulation,
            **{k: getattr(self, k).as_dict() for k in ("b", "c", "sigma", "t0")},
            "incidence": {k: v.as_dict() for k, v in self.incidence.items()},
            "loglik": self.loglik, "n_runs": self.n_runs, "n_collapsed": self.n_collapsed,
            "reason": self.reason, "notes": list(self.notes),
        }


def _log_mass(z_low, z_high):
    """log(Φ(z_high) − Φ(z_low)) without cancellation (upper tails where both are positive)."""
    upper = z_low > 0
    big = np.where(upper, log_ndtr(-z_low), log_ndtr(z_high))
    small = np.where(upper, log_ndtr(-z_high), log_ndtr(z_low))
    with np.errstate(divide="ignore"):
        return big + np.log1p(-np.exp(small - big))


def _phi_ratio(z, log_denominator):
    """φ(z)/D and z·φ(z)/D from log D, 0 at z = ±inf."""
    finite = np.isfinite(z)
    zf = np.where(finite, z, 0.0)
    # exp overflows only where D underflows: parameters of vanishing likelihood, met when a store's collapses are
    # nearly all left-censored; the rows fitted there say inconclusive, and the warning would only repeat it
    with np.errstate(over="ignore"):
        ratio = np.where(finite, np.exp(-0.5 * zf ** 2 - 0.5 * math.log(2 * math.pi) - log_denominator), 0.0)
    return ratio, ratio * zf


class _Data:
    """Per-run arrays, cleaned: the runs that count, their covariates (centred) and log times."""

    def __init__(self, collapsed, t_low, t_high, censor_at, log_eta, log_tau, discrete, clusters=None):
        arrays = np.broadcast_arrays(np.asarray(collapsed, dtype=bool), np.asarray(t_low, dtype=float),
                                     np.asarray(t_high, dtype=float), np.asarray(censor_at, dtype=float),
                                     np.asarray(log_eta, dtype=float), np.asarray(log_tau, dtype=float),
                                     np.zeros(1) if clusters is None else np.asarray(clusters))
        collapsed, t_low, t_high, censor_at, log_eta, log_tau, clusters_ = (a.ravel() for a in arrays)
        notes = []
        use = np.isfinite(log_eta) & np.isfinite(log_tau) & np.isfinite(censor_at) & (censor_at >= 1)
        bad = collapsed & ~(np.isfinite(t_low) & np.isfinite(t_high) & (t_high >= t_low))
        if (bad & use).any():
            raise ValueError("a collapsed run needs finite t_low ≤ t_high")
        dead = use & collapsed & (t_high < 1)
        if dead.any():
            notes.append(f"{int(dead.sum())} run(s) collapsed at step 0 (no log t*): left out")
        use &= ~dead
        low = np.where(collapsed, t_low - 1.0 if discrete else t_low, np.nan)
        late = use & collapsed & (low >= censor_at)
        if late.any():
            notes.append(f"{int(late.sum())} collapse(s) after the censoring step: counted as censored there")
        collapsed = collapsed & ~late
        self.collapsed = collapsed[use]
        self.exact = self.collapsed & (not discrete) & (t_low[use] == t_high[use])
        # a censored run's interval is everything: mass 1, so it drops out of the latency terms
        with np.errstate(divide="ignore"):
            self.y_low = np.where(self.collapsed, np.log(np.maximum(np.nan_to_num(low[use]), 0.0)), -np.inf)
            self.y_high = np.where(self.collapsed, np.log(np.maximum(np.nan_to_num(t_high[use]), 1.0)), np.inf)
        self.y_censor = np.log(censor_at[use])
        self.xe, self.xt = log_eta[use], log_tau[use]
        self.center_e, self.center_t = (float(self.xe.mean()), float(self.xt.mean())) if use.any() else (0.0, 0.0)
        self.n = int(use.sum())
        self.notes = notes
        # cluster index per used run (None: runs independent)
        self.cluster = None if clusters is None else np.unique(clusters_[use], return_inverse=True)[1].ravel()


class _Latency:
    """The latency part: μ = μ0' − b (log η − ē) [+ c (log τ − t̄)], θ = (μ0', b[, c], log σ)."""

    def __init__(self, data, rows, with_tau, truncate):
        self.with_tau, self.truncate = with_tau, truncate
        self.y_low, self.y_high, self.y_censor = data.y_low[rows], data.y_high[rows], data.y_censor[rows]
        self.exact = data.exact[rows]
        columns = [np.ones(rows.sum()), -(data.xe[rows] - data.center_e)]
        if with_tau:
            columns.append(data.xt[rows] - data.center_t)
        self.design = np.stack(columns, axis=1)

    def terms(self, theta):
        """Per-run log-likelihood of the observed interval and its derivatives in μ and log σ."""
        mu = self.design @ theta[:-1]
        log_sigma = theta[-1]
        sigma = math.exp(log_sigma)
        z_low, z_high = (self.y_low - mu) / sigma, (self.y_high - mu) / sigma
        log_mass = _log_mass(z_low, z_high)
        r_high, zr_high = _phi_ratio(z_high, log_mass)
        r_low, zr_low = _phi_ratio(z_low, log_mass)
        value = log_mass
        d_mu = -(r_high - r_low) / sigma
        d_ls = -(zr_high - zr_low)
        if self.exact.any():
            ze = z_high[self.exact]
            value = np.where(self.exact, 0.0, value)
            value[self.exact] = -0.5 * ze ** 2 - 0.5 * math.log(2 * math.pi) - log_sigma - self.y_high[self.exact]
            d_mu[self.exact] = ze / sigma
            d_ls[self.exact] = ze ** 2 - 1.0
        if self.truncate:
            z_c = (self.y_censor - mu) / sigma
            log_f = log_ndtr(z_c)
            r_c, zr_c = _phi_ratio(z_c, log_f)
            value = value - log_f
            d_mu = d_mu + r_c / sigma
            d_ls = d_ls + zr_c
        return value, d_mu, d_ls

    def nll(self, theta):
        value, d_mu, d_ls = self.terms(theta)
        return -float(value.sum()), -np.append(d_mu @ self.design, d_ls.sum())

    def run_scores(self, theta):
        """Per run, ∂ nll/∂θ of its own term (rows)."""
        _, d_mu, d_ls = self.terms(theta)
        return -np.hstack([d_mu[:, None] * self.design, d_ls[:, None]])

    def start(self):
        mid = np.where(np.isfinite(self.y_low), (self.y_low + self.y_high) / 2, self.y_high)
        coef = np.linalg.lstsq(self.design, mid, rcond=None)[0]
        spread = float(np.std(mid - self.design @ coef))
        return np.append(coef, math.log(min(max(spread, 0.1), 5.0)))

    def bounds(self):
        return [(-50.0, 50.0)] + [(-B_MAX, B_MAX)] * (self.design.shape[1] - 1) + [tuple(map(math.log, SIGMA_RANGE))]


class _Incidence:
    """Logistic incidence σ(γ0' + γ_η (log η − ē) [+ γ_τ (log τ − t̄)]), on counts per covariate cell."""

    def __init__(self, data, with_tau):
        columns = [np.ones(data.n), data.xe - data.center_e] + ([data.xt - data.center_t] if with_tau else [])
        design = np.stack(columns, axis=1)
        self.run_design, self.run_y = design, data.collapsed.astype(float)
        self.design, inverse = np.unique(design, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        self.n = np.bincount(inverse, minlength=len(self.design)).astype(float)
        self.k = np.bincount(inverse, weights=data.collapsed.astype(float), minlength=len(self.design))

    def nll(self, gamma):
        lin = self.design @ gamma
        value = -(self.k @ log_expit(lin) + (self.n - self.k) @ log_expit(-lin))
        return float(value), self.design.T @ (self.n * expit(lin) - self.k)

    def run_scores(self, gamma):
        """Per run, ∂ nll/∂γ of its own term (rows)."""
        return (expit(self.run_design @ gamma) - self.run_y)[:, None] * self.run_design

    def hess(self, gamma):
        p = expit(self.design @ gamma)
        return self.design.T @ (self.design * (self.n * p * (1 - p))[:, None])

    def start(self):
        rate = (self.k.sum() + 0.5) / (self.n.sum() + 1.0)
        return np.r_[math.log(rate / (1 - rate)), np.zeros(self.design.shape[1] - 1)]

    def bounds(self):
        return [(-GAMMA_MAX, GAMMA_MAX)] * self.design.shape[1]


class _Cure:
    """The mixture-cure likelihood over all runs: θ = (γ…, μ0', b[, c], log σ)."""

    def __init__(self, data, with_tau_inc, with_tau_lat):
        self.incidence = _Incidence(data, with_tau_inc)
        columns = [np.ones(data.n), data.xe - data.center_e] + ([data.xt - data.center_t] if with_tau_inc else [])
        self.inc_design = np.stack(columns, axis=1)
        self.latency = _Latency(data, np.ones(data.n, dtype=bool), with_tau_lat, truncate=False)
        self.collapsed = data.collapsed
        self.k = self.inc_design.shape[1]

    def nll(self, theta):
        gamma, lat = theta[:self.k], theta[self.k:]
        lin = self.inc_design @ gamma
        pi = expit(lin)
        value, d_mu, d_ls = self.latency.terms(lat)
        sigma = math.exp(lat[-1])
        mu = self.latency.design @ lat[:-1]
        z_c = (self.latency.y_censor - mu) / sigma
        # log S = log[(1 − π) + π (1 − F(C))]
        log_s = np.logaddexp(log_expit(-lin), log_expit(lin) + log_ndtr(-z_c))
        f_c = ndtr(z_c)
        ratio_c = np.exp(-0.5 * z_c ** 2 - 0.5 * math.log(2 * math.pi) + log_expit(lin) - log_s)
        c = self.collapsed
        total = np.where(c, log_expit(lin) + value, log_s)
        d_lin = np.where(c, 1.0 - pi, -pi * (1 - pi) * f_c / np.exp(log_s))
        d_mu_all = np.where(c, d_mu, ratio_c / sigma)
        d_ls_all = np.where(c, d_ls, ratio_c * z_c)
        grad = np.concatenate([d_lin @ self.inc_design, d_mu_all @ self.latency.design, [d_ls_all.sum()]])
        return -float(total.sum()), -grad

    def start(self, gamma0, lat0):
        return np.concatenate([gamma0, lat0])

    def bounds(self):
        return self.incidence.bounds() + self.latency.bounds()


def _profiled(fun, theta, bounds, functionals, levels, hess=None, scores=None):
    value, theta = minimize_box(fun, theta, bounds, hess)
    for _ in range(3):
        try:
            return value, theta, linear_intervals(fun, theta, value, bounds, functionals, levels, hess,
                                                  scores=scores)
        except BetterOptimum as better:
            value, theta = minimize_box(fun, better.theta, bounds, hess)
    return value, theta, linear_intervals(fun, theta, value, bounds, functionals, levels, hess, tolerance=math.inf,
                                          scores=scores)


def _cluster_sums(run_scores, cluster):
    """``θ -> (clusters, params)`` sums of per-run score rows; None without clusters."""
    if cluster is None:
        return None
    n = int(cluster.max()) + 1 if cluster.size else 0

    def sums(theta):
        rows = run_scores(theta)
        out = np.zeros((n, rows.shape[1]))
        np.add.at(out, cluster, rows)
        return out

    return sums


def fit_collapse_times(collapsed, t_low, t_high, censor_at, log_eta, log_tau, level=VERDICT_LEVEL, levels=(),
                       formulation="two_part", discrete=True, clusters=None):
    """Incidence and latency of collapse over per-run arrays (module docstring) → :class:`SurvivalFit`.

    ``collapsed`` (bool), ``t_low``/``t_high`` (the closed step interval of t*, NaN where no collapse),
    ``censor_at`` (scalar or per run), ``log_eta``, ``log_tau`` broadcast together. ``discrete``: t* counts
    whole steps, so [t_low, t_high] is the latent time (t_low − 1, t_high]; without it t_low = t_high is an
    exactly known t*. The latency is NaN (with a reason) below :data:`MIN_COLLAPSES` collapses or when
    they all share one η; c is dropped (NaN, noted) when they all share one τ. ``clusters`` (labels, e.g. the
    seed of each run) makes the clusters the independent units of the two-part fit: each interval is widened
    by its design effect (:func:`analysis.intervals.design_effects`).
    """
    if formulation not in FORMULATIONS:
        raise ValueError(f"formulation {formulation!r} is not one of {', '.join(FORMULATIONS)}")
    levels = tuple(dict.fromkeys((level, *levels)))
    data = _Data(collapsed, t_low, t_high, censor_at, log_eta, log_tau, discrete, clusters)
    notes = list(data.notes)
    n_collapsed = int(data.collapsed.sum())
    base = dict(level=level, formulation=formulation, n_runs=data.n, n_collapsed=n_collapsed)
    if data.n == 0:
        return SurvivalFit(**base, reason="no runs with finite η, τ and censoring step", notes=tuple(notes))
    rows = data.collapsed
    tau_inc = np.unique(data.xt).size >= 2
    tau_lat = np.unique(data.xt[rows]).size >= 2
    per_level = {lv: {} for lv in levels}
    incidence = _Incidence(data, tau_inc)
    inc_names = ["intercept", "log_eta"] + (["log_tau"] if tau_inc else [])

    def inc_functionals(offset, size):
        # intercept at log η = log τ = 0 from the centred one
        shift = np.zeros(size)
        shift[offset:offset + len(inc_names)] = [1.0, -data.center_e] + ([-data.center_t] if tau_inc else [])
        out = {"incidence_intercept": (shift, (-4 * GAMMA_MAX, 4 * GAMMA_MAX))}
        for j, name in enumerate(inc_names[1:], start=1):
            out[f"incidence_{name}"] = (np.eye(size)[offset + j], (-GAMMA_MAX, GAMMA_MAX))
        return out

    reason = ""
    if n_collapsed < MIN_COLLAPSES:
        reason = f"only {n_collapsed} collapse(s): the latency needs {MIN_COLLAPSES}"
    elif np.unique(data.xe[rows]).size < 2:
        reason = "every collapse is at one η: b is not identified"
    if not tau_lat and not reason:
        notes.append("every collapse is at one τ: c is not identified (latency fitted without log τ)")

    def lat_functionals(offset, size):
        b_i = offset + 1
        mu0 = np.zeros(size)
        mu0[offset:b_i + 1] = [1.0, data.center_e]
        out = {"b": (np.eye(size)[b_i], (-B_MAX, B_MAX)), "log_t0": (mu0, (-100.0, 100.0)),
               "log_sigma": (np.eye(size)[size - 1], tuple(map(math.log, SIGMA_RANGE)))}
        if tau_lat:
            mu0[b_i + 1] = -data.center_t
            out["c"] = (np.eye(size)[b_i + 1], (-B_MAX, B_MAX))
        return out

    results = {}
    loglik = math.nan
    if formulation == "cure" and reason:
        notes.append("cure model not fitted (latency not identified): incidence is P(collapse within the run)")
    if formulation == "two_part" or reason:
        if 0 < n_collapsed < data.n:
            value, gamma, iv = _profiled(incidence.nll, incidence.start(), incidence.bounds(),
                                         inc_functionals(0, len(inc_names)), levels, incidence.hess,
                                         _cluster_sums(incidence.run_scores, data.cluster))
            results.update(iv)
            loglik = -value
        else:
            notes.append("incidence not fitted: " + ("no run collapsed" if n_collapsed == 0 else "every run collapsed"))
        if not reason:
            latency = _Latency(data, rows, tau_lat, truncate=True)
            size = latency.design.shape[1] + 1
            value, _, iv = _profiled(latency.nll, latency.start(), latency.bounds(), lat_functionals(0, size), levels,
                                     scores=_cluster_sums(latency.run_scores,
                                                          None if data.cluster is None else data.cluster[rows]))
            results.update(iv)
            loglik = loglik - value if math.isfinite(loglik) else -value
    else:
        if data.cluster is not None:
            notes.append("cure model: runs treated as independent (clusters are used by the two-part fit only)")
        cure = _Cure(data, tau_inc, tau_lat)
        lat0 = _Latency(data, rows, tau_lat, truncate=True)
        gamma0 = minimize_box(incidence.nll, incidence.start(), incidence.bounds(), incidence.hess)[1]
        start = np.concatenate([gamma0, minimize_box(lat0.nll, lat0.start(), lat0.bounds())[1]])
        size = start.size
        functionals = {**inc_functionals(0, size), **lat_functionals(len(inc_names), size)}
        value, _, iv = _profiled(cure.nll, start, cure.bounds(), functionals, levels)
        results.update(iv)
        loglik = -value

    transforms = {"b": ("b", float), "c": ("c", float), "log_sigma": ("sigma", math.exp), "log_t0": ("t0", math.exp)}
    for lv in levels:
        for name, (estimate, ends, at_limit) in results.items():
            key, transform = transforms.get(name, (name, float))
            per_level[lv][key] = to_interval(estimate, ends[lv], at_limit).map(transform)
    main = per_level[level]
    incidence_iv = {name: main.get(f"incidence_{name}", NAN_INTERVAL) for name in ("intercept", "log_eta", "log_tau")}
    for key in ("b", "c"):
        iv_ = main.get(key)
        if iv_ is not None and (math.isinf(iv_.low) or math.isinf(iv_.high)):
            notes.append(f"{key}: bounded on one side only at this level (too little spread of the collapses)")
    return SurvivalFit(
        **base, b=main.get("b", NAN_INTERVAL), c=main.get("c", NAN_INTERVAL), sigma=main.get("sigma", NAN_INTERVAL),
        t0=main.get("t0", NAN_INTERVAL), incidence=incidence_iv, loglik=loglik, reason=reason, notes=tuple(notes),
        levels=per_level,
    )
