"""The stability boundary η_max(τ) of the two-constraint rule (36)–(38), docs/theory.md §5, by maximum likelihood.

Model (docs/statistics.md §2). For a horizon of T learner steps

    log η_max(τ) = min( log c_loc − a·log τ ,  log c_hor − log T )          (36)–(38)
    P(collapse within T | τ, η) = σ( (log η − log η_max(τ)) / w ),  σ the logistic function, w > 0,

and the collapse count k of a cell (τ, η) with n runs is Binomial(n, P). The four parameters
(log c_loc, a, log c_hor, log w) are fitted by binomial maximum likelihood; the min is a soft-min of
scale :data:`SMOOTH` (0.01 in log η, far below any grid spacing) so the likelihood is differentiable.
``a`` is thereby estimated from the τ where the local branch binds only. Every interval is a
two-sided profile-likelihood interval (:func:`analysis.intervals.profile_interval`); a constant whose
branch binds nowhere on the grid is bounded on one side only and its interval says so (an infinite end).

Per τ the fit reports η_max(τ) with its profile interval and which branch binds: ``local`` or
``horizon`` when the likelihood-ratio test of "both branches equal at τ" rejects at the fit's level,
``either`` when it does not. The same data are fitted by a single power law log η_max = log c − a log τ
(the two-branch model with c_hor → ∞) and the two are compared by likelihood ratio and AIC.

The binomial likelihood treats every run as independent. Runs of one seed share its randomness across
cells; given the per-run outcomes (``per_seed``) each interval's deviance threshold is scaled by the
quantity's design effect, the sandwich variance over the model variance with the seeds as clusters
(:func:`analysis.intervals.design_effects`).
"""

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit, log_expit
from scipy.stats import chi2

from analysis.intervals import (NAN_INTERVAL, VERDICT_LEVEL, BetterOptimum, Interval, design_effects, minimize_box,
                                profile_interval, to_interval)

SMOOTH = 0.01
"""Scale of the soft-min between the branches, in log η: min − s·log 2 ≤ softmin ≤ min."""
W_MIN, W_MAX = 1e-2, 10.0
"""Range of the width w of the logistic link, in log η (w = W_MIN is a step at the grid's resolution)."""
A_MAX = 8.0
"""Search range of the exponent a: |a| ≤ A_MAX (a profile that stays flat to it is unbounded)."""
SPAN = 15.0
"""Search range of a branch's log η_max: this many log units beyond the grid's η (then ±inf)."""


@dataclass(frozen=True)
class BoundaryFit:
    """The fitted boundary (module docstring): constants, per-τ η_max and branch, model comparison."""

    level: float
    taus: tuple
    horizon: float
    a: Interval = NAN_INTERVAL
    c_loc: Interval = NAN_INTERVAL
    c_hor: Interval = NAN_INTERVAL
    w: Interval = NAN_INTERVAL
    eta_max: tuple = ()
    """Interval of η_max(τ) per τ."""
    branch: tuple = ()
    """``local``, ``horizon`` or ``either`` per τ."""
    loglik: float = math.nan
    """Binomial log-likelihood of the two-branch model (without the constant Σ log C(n, k))."""
    loglik_single: float = math.nan
    """The same for the single power law."""
    a_single: Interval = NAN_INTERVAL
    """a of the single power law (profile interval), for comparison."""
    c_single: Interval = NAN_INTERVAL
    lr: float = math.nan
    """2 (loglik − loglik_single) ≥ 0."""
    p_value: float = math.nan
    """P(χ²₁ > lr): approximate (under the single law c_hor sits at infinity)."""
    aic: float = math.nan
    aic_single: float = math.nan
    preferred: str = ""
    """``two-branch`` or ``single power law``: the lower AIC."""
    reason: str = ""
    """Why the fit is NaN ("" when it is not)."""
    notes: tuple = ()
    """One line per interval that is one-sided or unbounded, saying why."""
    levels: dict = field(default_factory=dict)
    """``{level: {name: Interval}}`` for every level computed (``a``, ``c_loc``, ``c_hor``, ``w``, ``eta_max[i]``)."""
    n_runs: int = 0
    n_collapsed: int = 0
    design_effect: dict = field(default_factory=dict)
    """Per quantity, the factor on its deviance threshold at ``level`` from shared seeds (design effect × the
    t correction for the number of seeds; 1: runs treated as independent, no ``per_seed``)."""
    predicted: tuple = ()
    """Interval of η_max(τ) at each τ of ``predict`` (:func:`fit_boundary`)."""

    def at(self, level):
        """The intervals at another computed ``level`` (see ``levels`` argument of :func:`fit_boundary`)."""
        return self.levels[level]

    @property
    def preference(self):
        """One sentence: which model the data prefer, and by how much."""
        if not self.preferred:
            return "no model comparison (" + (self.reason or "not fitted") + ")"
        return (f"the data prefer the {self.preferred} model: ΔAIC = {self.aic_single - self.aic:+.1f} "
                f"(single − two-branch), likelihood ratio {self.lr:.1f}, p ≈ {self.p_value:.2g} (χ²₁)")

    def as_dict(self):
        return {
            "level": self.level, "horizon": self.horizon, "taus": list(self.taus),
            **{k: getattr(self, k).as_dict() for k in ("a", "c_loc", "c_hor", "w", "a_single", "c_single")},
            "eta_max": [iv.as_dict() for iv in self.eta_max], "branch": list(self.branch),
            "predicted": [iv.as_dict() for iv in self.predicted],
            "loglik": self.loglik, "loglik_single": self.loglik_single, "lr": self.lr, "p_value": self.p_value,
            "aic": self.aic, "aic_single": self.aic_single, "preferred": self.preferred,
            "preference": self.preference, "reason": self.reason, "notes": list(self.notes),
            "n_runs": self.n_runs, "n_collapsed": self.n_collapsed,
        }


class _Cells:
    """The cells with runs, as flat arrays; log τ centred (xc) so that a and the local level decorrelate."""

    def __init__(self, collapsed, runs, taus, etas, horizon, per_seed=None, exponent=None):
        collapsed, runs = np.asarray(collapsed, dtype=float), np.asarray(runs, dtype=float)
        self.log_taus = np.log(np.asarray(taus, dtype=float))
        self.center = float(self.log_taus.mean())
        xt, xe = np.meshgrid(self.log_taus, np.log(np.asarray(etas, dtype=float)), indexing="ij")
        keep = runs > 0
        self.k, self.n = collapsed[keep], runs[keep]
        self.xc, self.xe = xt[keep] - self.center, xe[keep]
        self.row = np.broadcast_to(np.arange(len(self.log_taus))[:, None], runs.shape)[keep]
        self.log_t = math.log(horizon)
        spacing = np.diff(np.unique(self.xe))
        self.spacing = float(np.median(spacing)) if spacing.size else 1.0
        self.lo, self.hi = float(self.xe.min()) - SPAN, float(self.xe.max()) + SPAN
        # (cells, seeds) 0/1 outcomes, NaN where a seed has no run in a cell; None: no clustering
        self.by_seed = None if per_seed is None else np.asarray(per_seed, dtype=float)[keep]
        self.a_range = (-A_MAX, A_MAX) if exponent is None else (float(exponent), float(exponent))


def _scores(theta, cells, single=False):
    """Per seed, the score (∂ nll/∂θ) summed over that seed's runs: (p − y)·∂z/∂θ per run."""
    if single:
        l, a, lam = theta
        m, w_loc = l - a * cells.xc, np.ones_like(cells.xc)
    else:
        l, a, h, lam = theta
        local = l - a * cells.xc
        m = -SMOOTH * np.logaddexp(-local / SMOOTH, -h / SMOOTH)
        w_loc = expit((h - local) / SMOOTH)
    inv_w = math.exp(-lam)
    z = (cells.xe - m) * inv_w
    dm = np.stack([w_loc, -cells.xc * w_loc] + ([] if single else [1.0 - w_loc]), axis=1)
    jac = np.hstack([-inv_w * dm, -z[:, None]])
    residual = np.nan_to_num(expit(z)[:, None] - cells.by_seed)
    return residual.T @ jac


def _nll(theta, cells, single=False, hessian=False):
    """Negative log-likelihood, gradient (and Hessian); θ = (l, a, h, log w) with l the local log η_max at the
    centre τ and h the horizon's log η_max = log c_hor − log T (single: θ = (l, a, log w))."""
    if single:
        l, a, lam = theta
    else:
        l, a, h, lam = theta
    local = l - a * cells.xc
    if single:
        m, w_loc = local, np.ones_like(local)
    else:
        m = -SMOOTH * np.logaddexp(-local / SMOOTH, -h / SMOOTH)
        w_loc = expit((h - local) / SMOOTH)
    inv_w = math.exp(-lam)
    z = (cells.xe - m) * inv_w
    log_p = log_expit(z)
    # log(1 − p) = log p − z
    value = -(cells.n @ log_p - (cells.n - cells.k) @ z)
    p = np.exp(log_p)
    g_z = cells.n * p - cells.k
    # ∇m per cell, columns (l, a[, h])
    dm = [w_loc, -cells.xc * w_loc] + ([] if single else [1.0 - w_loc])
    dm = np.stack(dm, axis=1)
    grad = np.append(-inv_w * (g_z @ dm), -(g_z @ z))
    if not hessian:
        return float(value), grad
    jac = np.hstack([-inv_w * dm, -z[:, None]])
    out = jac.T @ (jac * (cells.n * p * (1.0 - p))[:, None])
    mixed = inv_w * (g_z @ dm)
    out[:-1, -1] += mixed
    out[-1, :-1] += mixed
    out[-1, -1] += g_z @ z
    if not single:
        q = g_z * w_loc * (1.0 - w_loc) * (inv_w / SMOOTH)
        v = np.stack([np.ones_like(z), -cells.xc, -np.ones_like(z)], axis=1)
        out[:3, :3] += v.T @ (v * q[:, None])
    return float(value), grad, out


def _bounds(cells, single=False):
    level = (cells.lo, cells.hi)
    width = (math.log(W_MIN), math.log(W_MAX))
    return [level, cells.a_range, width] if single else [level, cells.a_range, level, width]


def _cached(full):
    """``(fun, hess)`` for :func:`minimize_box` from one ``full(x) -> (value, grad, hessian)``: the Newton
    step asks for the Hessian at the point the line search just evaluated, so it is kept, not recomputed."""
    last = {}

    def fun(x):
        value, grad, h = full(x)
        last["key"], last["hess"] = x.tobytes(), h
        return value, grad

    def hess(x):
        return last["hess"] if last.get("key") == x.tobytes() else full(x)[2]

    return fun, hess


def _crossings(cells):
    """Per τ, a rough log η where the collapse fraction crosses ½ (cells below it count as stable)."""
    out = np.empty(len(cells.log_taus))
    for i in range(out.size):
        rows = cells.row == i
        if not rows.any():
            out[i] = np.nan
            continue
        order = np.argsort(cells.xe[rows])
        xe, f = cells.xe[rows][order], (cells.k / cells.n)[rows][order]
        out[i] = xe[0] - cells.spacing / 2 + cells.spacing * np.sum(1.0 - f)
    return out


def _starts(cells):
    cross = _crossings(cells)
    ok = np.isfinite(cross)
    xc = cells.log_taus - cells.center
    lam = math.log(min(max(cells.spacing / 2, 2 * W_MIN), W_MAX / 2))
    top = cells.xe.max() + 3.0
    starts = []
    if ok.sum() >= 2:
        slope, intercept = np.polyfit(xc[ok], cross[ok], 1)
        starts.append([intercept, -slope, top, lam])
    for a in (0.5, 1.0, 2.0):
        starts.append([np.nanmedian(cross[ok] + a * xc[ok]), a, top, lam])
    for j in range(1, len(xc)):
        head, tail = ok[:j], ok[j:]
        if not head.any() or not tail.any():
            continue
        h = float(np.mean(cross[:j][head]))
        if tail.sum() >= 2:
            slope, intercept = np.polyfit(xc[j:][tail], cross[j:][tail], 1)
            starts.append([intercept, -slope, h, lam])
        starts.append([np.mean(cross[j:][tail] + xc[j:][tail]), 1.0, h, lam])
    return starts


class _Profiler:
    """Profiles of functions of θ through maps x, free → (θ, ∂θ/∂free, curvature of the map)."""

    def __init__(self, cells, single=False):
        self.cells, self.single = cells, single

    def profile(self, mapping, free0, free_bounds):
        """``x -> (nll, θ)`` minimised over the free parameters, from the optimum's own ``free0`` and from the
        solution at the nearest x solved so far: the inner problem can have several basins (which branch
        binds where), and a warm start alone can stay in one that is not the profile's."""
        solved = []

        def at(x):
            def full(free):
                theta, jac, curvature = mapping(x, free)
                value, grad, h = _nll(theta, self.cells, self.single, hessian=True)
                h = jac.T @ h @ jac
                if curvature is not None:
                    i, c = curvature
                    h[i, i] += grad @ c
                return value, jac.T @ grad, h

            fun, hess = _cached(full)
            starts = [free0] + ([min(solved, key=lambda s: abs(s[0] - x))[1]] if solved else [])
            value, free = min((minimize_box(fun, s, free_bounds, hess) for s in starts), key=lambda r: r[0])
            solved.append((x, free))
            return value, mapping(x, free)[0]

        return at


def _linear(index, theta):
    """Map that fixes parameter ``index`` of θ at x (the others free)."""
    free_idx = [i for i in range(len(theta)) if i != index]
    jac = np.zeros((len(theta), len(free_idx)))
    jac[free_idx, range(len(free_idx))] = 1.0

    def mapping(x, free):
        out = np.empty(len(theta))
        out[free_idx] = free
        out[index] = x
        return out, jac, None

    return mapping, np.asarray(theta)[free_idx], free_idx


def _softmin(local, h):
    return float(-SMOOTH * np.logaddexp(-local / SMOOTH, -h / SMOOTH))


def _estimates(cells, theta, single, log_taus):
    """{name: estimate} of every reported quantity at the optimum θ (``eta_max{i}`` at ``log_taus[i]``)."""
    out = {"a": theta[1], "lam": theta[-1], "log_c_loc": theta[0] + theta[1] * cells.center}
    if not single:
        out["h"] = theta[2]
        for i, x in enumerate(log_taus):
            out[f"eta_max{i}"] = _softmin(theta[0] - theta[1] * (x - cells.center), theta[2])
    return out


def _profiles(cells, theta, single, log_taus):
    """{name: (mapping, free0, free_bounds, fallback step, limits, ∂ψ/∂θ)} of the profiled quantities."""
    bounds = _bounds(cells, single)
    out = {}
    names = ("l", "a", "lam") if single else ("l", "a", "h", "lam")
    fixed_a = cells.a_range[0] == cells.a_range[1]
    for name in (() if fixed_a else ("a",)) + ("lam",) + (() if single else ("h",)):
        index = names.index(name)
        mapping, free0, free_idx = _linear(index, theta)
        step = {"a": 0.2, "lam": 0.5, "h": cells.spacing}[name]
        out[name] = (mapping, free0, [bounds[i] for i in free_idx], step, bounds[index], np.eye(len(theta))[index])
    # log c_loc = l + a·centre (log τ = 0): fix it, free (a, h, log w) [or (a, log w)]
    c = cells.center
    n_free = len(theta) - 1

    def local_map(x, free):
        a = free[0]
        theta_ = np.concatenate([[x - a * c, a], free[1:]])
        jac = np.zeros((len(theta), n_free))
        jac[0, 0], jac[1, 0] = -c, 1.0
        jac[2:, 1:] = np.eye(n_free - 1)
        return theta_, jac, None

    gradient = np.zeros(len(theta))
    gradient[:2] = (1.0, c)
    out["log_c_loc"] = (local_map, np.asarray(theta[1:]), bounds[1:], cells.spacing,
                        (cells.lo - A_MAX * abs(c), cells.hi + A_MAX * abs(c)), gradient)
    if not single:
        for i, x in enumerate(log_taus):
            xc = x - c
            local = theta[0] - theta[1] * xc
            w_loc = expit((theta[2] - local) / SMOOTH)
            free0 = np.array([theta[1], local - theta[2], theta[3]])
            out[f"eta_max{i}"] = (_eta_max_map(cells, x), free0, [cells.a_range, (-2 * SPAN, 2 * SPAN), bounds[3]],
                                  cells.spacing, (cells.lo, cells.hi), np.array([w_loc, -xc * w_loc, 1 - w_loc, 0]))
    return out


def _eta_max_map(cells, log_tau):
    """Map fixing log η_max(τ) = softmin(L_τ, h) = x; free (a, d, log w) with d = L_τ − h the branch gap."""
    xc = log_tau - cells.center

    def mapping(x, free):
        a, d, lam = free
        soft = -SMOOTH * np.logaddexp(-d / SMOOTH, 0.0)
        h = x - soft
        local = h + d
        theta = np.array([local + a * xc, a, h, lam])
        dh = -expit(-d / SMOOTH)
        dl = expit(d / SMOOTH)
        jac = np.array([[xc, dl, 0.0], [1.0, 0.0, 0.0], [0.0, dh, 0.0], [0.0, 0.0, 1.0]])
        # ∂²h/∂d² = ∂²l/∂d² = q/s, q = σ(1 − σ) of the soft-min's weight
        q = -dh * (1.0 + dh) / SMOOTH
        return theta, jac, (1, np.array([q, 0.0, q, 0.0]))

    return mapping


def _gap_map(cells, i):
    """Map fixing the gap d = L_i − h between the branches at τ_i (d < 0: local binds); free (l, a, log w)."""
    xc = cells.log_taus[i] - cells.center
    jac = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, -xc, 0.0], [0.0, 0.0, 1.0]])

    def mapping(d, free):
        l, a, lam = free
        return np.array([l, a, l - a * xc - d, lam]), jac, None

    return mapping


def _fit(cells, single, extra_starts=()):
    bounds = _bounds(cells, single)
    starts = [[s[0], s[1], s[3]] for s in _starts(cells)] if single else _starts(cells) + list(extra_starts)
    best = (math.inf, None)
    fun, hess = _cached(lambda t: _nll(t, cells, single, hessian=True))
    for start in starts:
        value, theta = minimize_box(fun, start, bounds, hess)
        if value < best[0]:
            best = (value, theta)
    return best


def _profiled(cells, single, levels, log_taus, extra_starts=()):
    """MLE and profile intervals, refitting when a profile finds a better optimum (at most 3 times)."""
    value, theta = _fit(cells, single, extra_starts)
    for _ in range(3):
        try:
            return value, theta, _all_intervals(cells, theta, value, single, levels, log_taus)
        except BetterOptimum as better:
            fun, hess = _cached(lambda t: _nll(t, cells, single, hessian=True))
            value, theta = minimize_box(fun, better.theta, _bounds(cells, single), hess)
    return value, theta, _all_intervals(cells, theta, value, single, levels, log_taus, strict=False)


def _all_intervals(cells, theta, value, single, levels, log_taus, strict=True):
    """{name: (estimate, {level: ends}, at_limit)}, ``gap{i}``: (gap, deviance rise at gap 0, threshold scale),
    and ``design_effect``: {name: level → scale}."""
    profiler = _Profiler(cells, single)
    tolerance = 1e-6 if strict else math.inf
    estimates = _estimates(cells, theta, single, log_taus)
    quantities = _profiles(cells, theta, single, log_taus)
    names = list(quantities)
    gradients = [quantities[name][-1] for name in names]
    if not single:
        names += [f"gap{i}" for i in range(len(cells.log_taus))]
        gradients += [np.array([1.0, -(t - cells.center), -1.0, 0.0]) for t in cells.log_taus]
    # the exponent, when fixed, is no parameter: information, scores and gradients on the free ones only
    free = np.array([i != 1 or cells.a_range[0] < cells.a_range[1] for i in range(len(theta))])
    information = _nll(theta, cells, single, hessian=True)[2][np.ix_(free, free)]
    gradients = np.array(gradients)[:, free]
    variance = np.einsum("ij,jk,ik->i", gradients, np.linalg.pinv(information), gradients)
    se = dict(zip(names, np.where(variance > 0, np.sqrt(np.abs(variance)), np.nan)))
    effect = dict.fromkeys(names, lambda level: 1.0)
    if cells.by_seed is not None:
        effect = dict(zip(names, design_effects(information, _scores(theta, cells, single)[:, free], gradients)))
    result = {"design_effect": effect}
    for name, (mapping, free0, free_bounds, step, limits, _) in quantities.items():
        k = effect[name]
        step = se[name] * math.sqrt(k(levels[0])) if np.isfinite(se[name]) else step
        at = profiler.profile(mapping, free0, free_bounds)
        ends, at_limit = profile_interval(at, estimates[name], value, levels, step, limits, tolerance, k)
        result[name] = (estimates[name], ends, at_limit)
    for i in range(0 if single else len(cells.log_taus)):
        gap = profiler.profile(_gap_map(cells, i), np.array([theta[0], theta[1], theta[3]]),
                               [_bounds(cells)[k] for k in (0, 1, 3)])
        equal, theta_equal = gap(0.0)
        if equal < value - tolerance:
            raise BetterOptimum(theta_equal, equal)
        local = theta[0] - theta[1] * (cells.log_taus[i] - cells.center)
        result[f"gap{i}"] = (local - theta[2], equal - value, effect[f"gap{i}"])
    return result


def _point(cells, theta, single, levels, log_taus):
    """:func:`_all_intervals`'s result without profiles: NaN ends, and each gap with an untested rise (NaN)."""
    fixed_a = cells.a_range[0] == cells.a_range[1]
    result = {name: (estimate, dict.fromkeys(levels, (math.nan, math.nan)), (None, None))
              for name, estimate in _estimates(cells, theta, single, log_taus).items() if not (fixed_a and name == "a")}
    for i in range(0 if single else len(cells.log_taus)):
        local = theta[0] - theta[1] * (cells.log_taus[i] - cells.center)
        result[f"gap{i}"] = (local - theta[2], math.nan, lambda level: 1.0)
    return result | {"design_effect": {}}


def _nan_fit(level, taus, horizon, reason, n_runs=0, n_collapsed=0, predict=()):
    return BoundaryFit(level, tuple(float(t) for t in taus), float(horizon), eta_max=(NAN_INTERVAL,) * len(taus),
                       branch=("either",) * len(taus), reason=reason, n_runs=n_runs, n_collapsed=n_collapsed,
                       predicted=(NAN_INTERVAL,) * len(predict))


def fit_boundary(collapsed, runs, taus, etas, horizon, level=VERDICT_LEVEL, levels=(), per_seed=None, exponent=None,
                 predict=(), intervals=True):
    """Fit (36)–(38) to per-cell collapse counts ``collapsed[τ, η]`` out of ``runs[τ, η]`` (module docstring).

    ``horizon`` is T in learner steps (the c_hor branch is c_hor/T). Intervals are two-sided profile-likelihood
    intervals at ``level``; ``levels`` adds others (read them with :meth:`BoundaryFit.at`). ``per_seed``, the
    per-run outcomes ``(τ, η, seed)`` (bool, or 0/1 with NaN where a seed has no run), makes the seeds the
    independent units: each interval is widened by its design effect (:func:`analysis.intervals.design_effects`),
    so that runs sharing a seed across cells do not count as independent evidence. ``exponent`` fixes a (the
    rule as the paper states it: 1) instead of fitting it. ``predict``: τ values (e.g. held out of the grid) at
    which η_max(τ) is reported too (:attr:`BoundaryFit.predicted`). ``intervals=False`` fits the point estimates
    only (every end NaN, the branch per τ the one that binds at the estimate, untested), ~10× faster, for
    callers that refit many times. The fit is NaN, with a ``reason``, when the grid cannot identify a boundary
    (no collapse, no stable run, a single τ or η).
    """
    taus, etas = np.asarray(taus, dtype=float), np.asarray(etas, dtype=float)
    collapsed, runs = np.asarray(collapsed, dtype=float), np.asarray(runs, dtype=float)
    if collapsed.shape != (taus.size, etas.size) or runs.shape != collapsed.shape:
        raise ValueError(f"collapsed {collapsed.shape} and runs {runs.shape} must be (τ, η) = "
                         f"{(taus.size, etas.size)}")
    predict = tuple(float(t) for t in predict)
    if (np.any(collapsed < 0) or np.any(collapsed > runs) or np.any(taus <= 0) or np.any(etas <= 0) or horizon <= 0
            or any(t <= 0 for t in predict)):
        raise ValueError("need 0 ≤ collapsed ≤ runs, τ > 0, η > 0 and a positive horizon")
    if exponent is not None and not abs(exponent) <= A_MAX:
        raise ValueError(f"exponent {exponent} must be a number in [−{A_MAX:g}, {A_MAX:g}]")
    levels = tuple(dict.fromkeys((level, *levels)))
    n_runs, n_collapsed = int(runs.sum()), int(collapsed.sum())
    has = runs > 0
    nan_fit = functools.partial(_nan_fit, level, taus, horizon, n_runs=n_runs, n_collapsed=n_collapsed,
                                predict=predict)
    if np.unique(taus[has.any(axis=1)]).size < 2 or np.unique(etas[has.any(axis=0)]).size < 2:
        return nan_fit("needs runs at two τ and two η at least")
    if n_collapsed == 0:
        return nan_fit("no run collapsed: η_max lies above the grid at every τ")
    if n_collapsed == n_runs:
        return nan_fit("every run collapsed: η_max lies below the grid at every τ")
    if per_seed is not None:
        per_seed = np.asarray(per_seed, dtype=float)
        if per_seed.shape[:2] != collapsed.shape or per_seed.ndim != 3:
            raise ValueError(f"per_seed {per_seed.shape} must be (τ, η, seed) with (τ, η) = {collapsed.shape}")
    cells = _Cells(collapsed, runs, taus, etas, horizon, per_seed, exponent)
    log_taus = (*cells.log_taus, *np.log(predict))

    if intervals:
        single_value, single_theta, single_iv = _profiled(cells, True, levels, log_taus)
    else:
        single_value, single_theta = _fit(cells, True)
        single_iv = _point(cells, single_theta, True, levels, log_taus)
    extra = [[single_theta[0], single_theta[1], cells.hi - 1.0, single_theta[2]]]
    if intervals:
        value, theta, iv = _profiled(cells, False, levels, log_taus, extra)
    else:
        value, theta = _fit(cells, False, extra)
        iv = _point(cells, theta, False, levels, log_taus)

    log_t = cells.log_t
    per_level = {}
    for lv in levels:
        def get(source, name, transform=float, shift=0.0):
            if name not in source:  # the exponent, fixed
                return Interval(*(float(exponent),) * 3)
            estimate, ends, at_limit = source[name]
            return to_interval(estimate + shift, [e + shift for e in ends[lv]], at_limit).map(transform)

        named = {
            "a": get(iv, "a"), "c_loc": get(iv, "log_c_loc", math.exp), "c_hor": get(iv, "h", math.exp, log_t),
            "w": get(iv, "lam", math.exp), "a_single": get(single_iv, "a"),
            "c_single": get(single_iv, "log_c_loc", math.exp),
        }
        for i in range(len(log_taus)):
            named[f"eta_max[{i}]"] = get(iv, f"eta_max{i}", math.exp)
        per_level[lv] = named
    main = per_level[level]
    critical = chi2.ppf(level, 1) / 2
    branch = []
    for i in range(taus.size):
        gap, rise, scale = iv[f"gap{i}"]
        branch.append("either" if rise <= critical * scale(level) else ("local" if gap < 0 else "horizon"))
    lr = max(2.0 * (single_value - value), 0.0)
    n_params = 3 if exponent is None else 2
    aic, aic_single = 2 * value + 2 * (n_params + 1), 2 * single_value + 2 * n_params
    notes = []
    for name, what in (("a", "the local branch binds at too few τ"), ("c_loc", "the local branch binds at no τ"),
                       ("c_hor", "the horizon branch binds at no τ")):
        iv_ = main[name]
        if not intervals or (name == "a" and exponent is not None):
            continue
        if math.isinf(iv_.low) and math.isinf(iv_.high):
            notes.append(f"{name}: unbounded at this level ({what})")
        elif math.isinf(iv_.low) or math.isinf(iv_.high) or iv_.low == 0:
            side = "above" if math.isinf(iv_.high) else "below"
            notes.append(f"{name}: bounded on one side only (unbounded {side}: {what})")
    return BoundaryFit(
        level=level, taus=tuple(float(t) for t in taus), horizon=float(horizon), a=main["a"], c_loc=main["c_loc"],
        c_hor=main["c_hor"], w=main["w"], eta_max=tuple(main[f"eta_max[{i}]"] for i in range(taus.size)),
        branch=tuple(branch), loglik=-value, loglik_single=-single_value, a_single=main["a_single"],
        c_single=main["c_single"], lr=lr, p_value=float(chi2.sf(lr, 1)), aic=aic, aic_single=aic_single,
        preferred="two-branch" if aic < aic_single else "single power law", notes=tuple(notes),
        levels=per_level, n_runs=n_runs, n_collapsed=n_collapsed,
        design_effect={k: v(level) for k, v in iv["design_effect"].items() if not k.startswith("gap")},
        predicted=tuple(main[f"eta_max[{i}]"] for i in range(taus.size, len(log_taus))),
    )
