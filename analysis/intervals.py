"""Point estimates with intervals, and the profile-likelihood interval every fit of analysis/ uses.

An :class:`Interval` is ``(value, low, high)``. An end may be ±inf: the data bound the quantity on one
side only (e.g. ``c_hor ∈ [x, inf]`` when the horizon branch (37) binds at no τ of the grid), and the
interval says so rather than inventing a second end. NaN means "not estimable" (a reason travels with
the fit that returned it).

Profile likelihood (docs/statistics.md §1). For a scalar ψ = g(θ) of a model with negative
log-likelihood ``nll(θ)``, the profile is ``p(x) = min { nll(θ) : g(θ) = x }`` and the level-L interval is

    { x : 2 [p(x) − nll(θ̂)] ≤ χ²₁(L) },

two-sided by construction. :func:`profile_interval` walks out from ψ̂ on each side until the deviance
crosses the threshold (then solves for the crossing on the signed root ``r(x) = √(2[p(x) − nll(θ̂)])``,
nearly linear in x), or until a search limit, beyond which that end is reported as ±inf.
"""

import math
from typing import NamedTuple

import numpy as np
from scipy.stats import chi2, norm
from scipy.stats import t as student_t

VERDICT_LEVEL = 0.90
"""Level of the intervals verdicts are judged on (an equivalence test at 5 % per side)."""
COVERAGE_LEVEL = 0.95
"""Level of the intervals whose coverage the planted-world benchmark measures."""


class Interval(NamedTuple):
    """A point estimate with an interval; ends may be ±inf (one-sided), NaN when not estimable."""

    value: float
    low: float
    high: float

    def as_dict(self):
        return {"value": float(self.value), "low": float(self.low), "high": float(self.high)}

    @property
    def estimable(self):
        """Both ends are numbers (possibly infinite), so the interval says something."""
        return not (math.isnan(self.low) or math.isnan(self.high))

    def covers(self, x):
        """``low ≤ x ≤ high`` (False when the interval or x is NaN)."""
        return self.estimable and not math.isnan(x) and self.low <= x <= self.high

    def map(self, f):
        """The interval of a monotone increasing ``f`` of the quantity (e.g. exp of a log constant)."""
        with np.errstate(over="ignore"):
            return Interval(*(float(f(v)) if not math.isnan(v) else math.nan for v in self))


NAN_INTERVAL = Interval(math.nan, math.nan, math.nan)


def to_json(value):
    """``value`` for strict JSON, recursively (docs/statistics.md §8): an :class:`Interval` becomes
    ``{value, low, high}``, NaN (not estimable) ``null``, ±inf (an unbounded end) the string ``"inf"`` /
    ``"-inf"``, which ``float()`` reads back; numpy scalars and arrays become numbers and lists."""
    if isinstance(value, Interval):
        value = value.as_dict()
    if isinstance(value, dict):
        return {key: to_json(v) for key, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_json(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else float(value)
    return value


def fmt(x, digits=3):
    """A number for tables (or :func:`to_json`'s form of one): ``digits`` significant digits, ∞ / −∞ for an
    unbounded end, — for NaN or None."""
    x = math.nan if x is None else float(x)
    return "—" if math.isnan(x) else ("∞" if x > 0 else "−∞") if math.isinf(x) else f"{x:.{digits}g}"


def fmt_interval(interval):
    """``value [low, high]`` of an :class:`Interval` with :func:`fmt`."""
    return f"{fmt(interval[0])} [{fmt(interval[1])}, {fmt(interval[2])}]"


def threshold(level):
    """Half the χ²₁ quantile: how far the profile may rise above its minimum inside the level-L interval."""
    return 0.5 * chi2.ppf(level, 1)


def _crossing(f, target, x0, r0, x1, r1, iterations=30, accuracy=5e-3, xtol=1e-3):
    """x in [x0, x1] with f(x) = target, by the Illinois variant of regula falsi from known end values.

    Safer than re-evaluating the ends (a profile found by warm-started inner fits need not return the same
    value twice). Stops when f is within ``accuracy`` of the target (on the signed-root scale, where 1 is
    one standard error: the end is then placed to about 0.5 % of a standard error), or when the bracket is
    narrower than ``xtol`` (the quantities profiled are logs and exponents: 0.1 %), which is what ends the
    search on the step-like profiles of separated data, where regula falsi crawls.
    """
    f0, f1 = r0 - target, r1 - target
    if abs(f1) <= accuracy:
        return x1
    side = 0
    for _ in range(iterations):
        if abs(x1 - x0) <= xtol:
            break
        x = x1 - f1 * (x1 - x0) / (f1 - f0) if f1 != f0 else (x0 + x1) / 2
        fx = f(x) - target
        if abs(fx) <= accuracy:
            return x
        if (fx > 0) == (f1 > 0):
            x1, f1 = x, fx
            if side == 1:
                f0 /= 2
            side = 1
        else:
            x0, f0 = x, fx
            if side == -1:
                f1 /= 2
            side = -1
    return x1 - f1 * (x1 - x0) / (f1 - f0) if f1 != f0 else (x0 + x1) / 2


def minimize_box(fun, x0, bounds, hess=None, max_iter=200, gtol=1e-7):
    """``(value, x)`` minimising ``fun(x) -> (value, gradient)`` inside the box ``bounds`` (a list of pairs).

    A damped Newton method for the small smooth likelihoods of analysis/: the Hessian is ``hess(x)`` or,
    without it, forward differences of the analytic gradient, made positive definite by a Levenberg shift,
    and each step is
    projected on the box and backtracked until the value falls. A variable held at a bound by its gradient
    stays out of the step. An order of magnitude faster than scipy's L-BFGS-B on these 3–8 parameter
    problems, where the latter's per-call overhead dominates.
    """
    lo = np.array([b[0] for b in bounds], dtype=float)
    hi = np.array([b[1] for b in bounds], dtype=float)
    x = np.clip(np.asarray(x0, dtype=float), lo, hi)
    f, g = fun(x)
    for _ in range(max_iter):
        active = ((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0))
        free = np.flatnonzero(~active)
        if free.size == 0 or np.max(np.abs(g[free])) < gtol:
            break
        if hess is not None:
            hessian = hess(x)[np.ix_(free, free)]
        else:
            h = 1e-6 * np.maximum(1.0, np.abs(x[free]))
            hessian = np.empty((free.size, free.size))
            for j, i in enumerate(free):
                shifted = x.copy()
                shifted[i] += h[j]
                hessian[:, j] = (fun(shifted)[1][free] - g[free]) / h[j]
            hessian = (hessian + hessian.T) / 2
        shift = 0.0
        scale = max(np.max(np.abs(np.diag(hessian))), 1e-12)
        lowest = np.linalg.eigvalsh(hessian)[0]
        if lowest < 0:
            # straight to the first shift of the sequence 1e-8·scale·2^k that can make it positive definite
            shift = 1e-8 * scale * 2.0 ** max(math.ceil(math.log2(-lowest / (1e-8 * scale))), 0)
        while True:
            try:
                chol = np.linalg.cholesky(hessian + shift * np.eye(free.size))
                break
            except np.linalg.LinAlgError:
                shift = max(2 * shift, 1e-8 * scale)
        direction = -np.linalg.solve(chol.T, np.linalg.solve(chol, g[free]))
        t, moved = 1.0, False
        for _ in range(40):
            candidate = x.copy()
            candidate[free] = np.clip(x[free] + t * direction, lo[free], hi[free])
            f_new, g_new = fun(candidate)
            if f_new <= f + 1e-4 * g[free] @ (candidate[free] - x[free]) and np.isfinite(f_new):
                moved = True
                break
            t /= 2
        if not moved:
            break
        done = abs(f - f_new) <= 1e-12 * max(1.0, abs(f)) and np.max(np.abs(candidate - x)) < 1e-9
        x, f, g = candidate, f_new, g_new
        if done:
            break
    return float(f), x


def hessian(fun, x, h=1e-5):
    """Symmetrised forward-difference Hessian of ``fun(x) -> (value, gradient)`` at x."""
    x = np.asarray(x, dtype=float)
    g = fun(x)[1]
    out = np.empty((x.size, x.size))
    for i in range(x.size):
        shifted = x.copy()
        step = h * max(1.0, abs(x[i]))
        shifted[i] += step
        out[:, i] = (fun(shifted)[1] - g) / step
    return (out + out.T) / 2


def standard_errors(fun, x, gradients):
    """Delta-method standard errors of quantities with ``gradients`` (rows, ∂ψ/∂x) at the optimum x.

    From the pseudo-inverse of the observed information; NaN where it is not positive. Only a first step
    for the profile searches, never an interval.
    """
    information = hessian(fun, x)
    covariance = np.linalg.pinv(information)
    gradients = np.atleast_2d(gradients)
    variance = np.einsum("ij,jk,ik->i", gradients, covariance, gradients)
    return np.where(variance > 0, np.sqrt(np.abs(variance)), np.nan)


def design_effects(information, scores, gradients):
    """Per quantity, how much correlated runs inflate its variance over what the likelihood assumes:
    functions ``level -> scale`` of the profile deviance threshold (:func:`profile_interval`).

    The likelihoods of analysis/ treat runs as independent; runs of one seed share its randomness across
    cells (common random numbers), so the independent units are the seeds. With H the observed information
    at the optimum, s_j the score summed over the runs of cluster j and J = m/(m − 1) Σ_j s_j s_jᵀ (m
    clusters), a quantity with gradient g has sandwich variance gᵀH⁻¹JH⁻¹g against gᵀH⁻¹g; their ratio k,
    floored at 1 so that a sample ratio below 1 never narrows an interval, rescales its profile deviance
    (the magnitude adjustment of a composite likelihood). As with any cluster-robust variance from m
    clusters, the reference distribution is t with m − 1 degrees of freedom rather than normal: the scale
    at level L is k · (t_{m−1}((1+L)/2) / z((1+L)/2))². Fewer than 3 clusters: no adjustment (scale 1).
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    m = scores.shape[0]
    gradients = np.atleast_2d(np.asarray(gradients, dtype=float))
    if m < 3:
        return [lambda level: 1.0 for _ in gradients]
    bread = np.linalg.pinv(information)
    meat = scores.T @ scores * (m / (m - 1))
    naive = np.einsum("ij,jk,ik->i", gradients, bread, gradients)
    robust = np.einsum("ij,jk,ik->i", gradients, bread @ meat @ bread, gradients)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = robust / naive
    ratio = np.where(np.isfinite(ratio) & (naive > 0), np.maximum(ratio, 1.0), 1.0)

    def scale(k):
        return lambda level: float(k * (student_t.ppf((1 + level) / 2, m - 1) / norm.ppf((1 + level) / 2)) ** 2)

    return [scale(k) for k in ratio]


class BetterOptimum(Exception):
    """The profile found a lower negative log-likelihood than the fit: refit from :attr:`theta`."""

    def __init__(self, theta, value):
        super().__init__(f"profile found nll {value:.6g} below the optimum")
        self.theta, self.value = theta, value


def profile_interval(profile, estimate, nll_min, levels, step, limits, tolerance=1e-6, scale=1.0):
    """Ends of the profile-likelihood intervals of one quantity at each of ``levels``.

    ``profile(x) -> (nll, theta)`` minimises the negative log-likelihood with the quantity fixed at x
    (warm starts are the caller's business). ``estimate`` is the quantity at the optimum ``nll_min``,
    ``step`` its standard error or a guess at it (the first try is that many times the widest target),
    ``limits = (lo, hi)`` the search range: an end not reached inside it is ±inf. Returns
    ``({level: (low, high)}, (r_low, r_high))`` with r the signed-root deviance where the search stopped at
    a limit (None where the profile crossed first): a small r there means the profile is flat out to the
    limit, i.e. the optimum lies at infinity on that side. ``scale`` (a number, or a function of the level)
    multiplies the χ² threshold (:func:`design_effects`). Raises :class:`BetterOptimum` when a profile point
    beats the optimum by more than ``tolerance``, so the caller can refit.
    """
    levels = tuple(levels)
    scale_at = scale if callable(scale) else (lambda level: scale)
    targets = {level: math.sqrt(2 * scale_at(level) * threshold(level)) for level in levels}
    top = max(targets.values())
    ends = {level: [-math.inf, math.inf] for level in levels}
    at_limit = [None, None]

    def signed_root(x):
        value, theta = profile(x)
        if value < nll_min - tolerance:
            raise BetterOptimum(theta, value)
        return math.sqrt(max(2.0 * (value - nll_min), 0.0))

    for side, limit in ((-1, limits[0]), (1, limits[1])):
        points = [(estimate, 0.0)]
        h = 1.02 * top * max(abs(step), 1e-6)
        while points[-1][1] < top:
            x = estimate + side * h
            if side * (x - limit) >= 0:
                x = limit
            r = signed_root(x)
            points.append((x, r))
            if x == limit:
                at_limit[0 if side < 0 else 1] = r
                break
            # the signed root is nearly linear in x: aim just past the widest target, at most 4× further
            slope = r / h
            h = min(4 * h, max(1.25 * h, 1.05 * top / slope)) if slope > 0 else 4 * h
        for level, target in targets.items():
            for (x0, r0), (x1, r1) in zip(points, points[1:]):
                if r0 < target <= r1:
                    ends[level][0 if side < 0 else 1] = _crossing(signed_root, target, x0, r0, x1, r1)
                    break
    return {level: tuple(ends[level]) for level in levels}, tuple(at_limit)


def linear_profile(fun, theta, weights, bounds, hess=None):
    """``x -> (nll, θ)``: ``fun(θ) -> (value, gradient)`` minimised subject to ``weights · θ = x``.

    The parameter with the largest weight is solved for; the others are free inside their ``bounds`` and
    warm-started from the solution at the nearest x solved so far (the optimum ``theta`` at first).
    """
    theta, weights = np.asarray(theta, dtype=float), np.asarray(weights, dtype=float)
    pivot = int(np.argmax(np.abs(weights)))
    free_idx = np.array([i for i in range(theta.size) if i != pivot], dtype=int)
    jac = np.zeros((theta.size, free_idx.size))
    jac[free_idx, np.arange(free_idx.size)] = 1.0
    jac[pivot] = -weights[free_idx] / weights[pivot]
    free_bounds = [bounds[i] for i in free_idx]
    solved = []

    def full(x, free):
        out = np.empty(theta.size)
        out[free_idx] = free
        out[pivot] = (x - weights[free_idx] @ free) / weights[pivot]
        return out

    def at(x):
        def f(free):
            value, grad = fun(full(x, free))
            return value, jac.T @ grad

        h = None if hess is None else (lambda free: jac.T @ hess(full(x, free)) @ jac)
        start = min(solved, key=lambda s: abs(s[0] - x))[1] if solved else theta[free_idx]
        value, free = minimize_box(f, start, free_bounds, h)
        solved.append((x, free))
        return value, full(x, free)

    return at


def linear_intervals(fun, theta, value, bounds, functionals, levels, hess=None, tolerance=1e-6, scores=None):
    """Profile-likelihood intervals of linear functionals ``{name: (weights, limits)}`` of θ at the optimum.

    Returns ``{name: (estimate, {level: (low, high)}, at_limit)}`` (see :func:`profile_interval`); raises
    :class:`BetterOptimum` when a profile beats the optimum. ``scores(θ)`` → per-cluster score sums turns on
    the design-effect adjustment of :func:`design_effects`.
    """
    names = list(functionals)
    weights = np.array([functionals[n][0] for n in names], dtype=float)
    if hess is None:
        se = standard_errors(fun, theta, weights)
    else:
        covariance = np.linalg.pinv(hess(theta))
        variance = np.einsum("ij,jk,ik->i", weights, covariance, weights)
        se = np.where(variance > 0, np.sqrt(np.abs(variance)), np.nan)
    effects = [lambda level: 1.0] * len(names)
    if scores is not None:
        information = hess(theta) if hess is not None else hessian(fun, theta)
        effects = design_effects(information, scores(theta), weights)
    out = {}
    for name, w, s, k in zip(names, weights, se, effects):
        estimate = float(w @ theta)
        at = linear_profile(fun, theta, w, bounds, hess)
        step = s * math.sqrt(k(levels[0])) if np.isfinite(s) and s > 0 else 0.1 * max(1.0, abs(estimate))
        ends, at_limit = profile_interval(at, estimate, value, levels, step, functionals[name][1], tolerance, k)
        out[name] = (estimate, ends, at_limit)
    return out


def to_interval(estimate, ends, at_limit, flat=0.05):
    """The :class:`Interval` of a profiled quantity: its value is ±inf when the profile is flat out to a
    search limit on that side (the optimum lies at infinity), NaN when on both."""
    value = estimate
    if at_limit[1] is not None and at_limit[1] < flat:
        value = math.inf
    if at_limit[0] is not None and at_limit[0] < flat:
        value = -math.inf if value != math.inf else math.nan
    return Interval(float(value), float(ends[0]), float(ends[1]))
