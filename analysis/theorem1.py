"""Theorem 1 (docs/theory.md §4) and the rule's constants (32)–(37) as rows that can fail.

* **Scaling.** Slope of log ‖b_t‖ on log(τ_t·η) over the probes of stable cells
  (no seed collapses), τ_t the measured lag at the probe (the store's
  ``staleness``, else t mod τ (11)); probes at τ_t = 0 carry no staleness and are
  left out, and so are probes whose exact ‖b_t‖ lies below float64 resolution
  (:data:`BIAS_RESOLUTION` · G_on, ``probe_G_on`` where recorded; else ‖b_t‖ = 0):
  there the bias is the rounding of a difference of two gradients, not staleness,
  and its log would set the slope (runs frozen at a saturated policy).
  Theory: 1. LLM stores estimate ‖b‖² (``bias_sq``, unbiased, may be
  negative): there the slope s of ‖b‖² = A (τ_t η)^{2s} is fitted on ``bias_sq``
  itself, weighted by its interval, never on logs of a floored norm.
* **Held-out bound.** C_b = max ‖b_t‖/‖θ_t − β_t‖ and U = max ‖u_t‖ over the stable
  runs of even seed index; on the odd ones, the share of probes with
  ‖b_t‖ ≤ C_b‖θ_t − β_t‖ (Lemma 1's form) and ‖b_t‖ ≤ C_b U η τ_t (Theorem 1's),
  and the median slack bound/‖b_t‖.
* **Vacuity.** Lemma 1's bound ``bias_bound`` = 2 G TV + gap and the other split's
  ``bias_bound_alt`` = 2 G_on TV + gap_β: the share of probes each respects and the
  median factor bound/‖b_t‖ by which it overshoots; each split's C_b as the largest
  secant bound/‖θ_t − β_t‖ over stable runs. Ratios to ‖b_t‖ (here and in the
  held-out check) skip the probes below float64 resolution, as the slope does.
* **The rule from constants.** Pilot runs are every run at the smallest grid η (far
  below the boundary, so they carry no information on where it lies). U: the
  median over pilot runs of their largest ‖u_t‖ (``const_U`` where the engine
  records it); r_clip: ``const_r_clip`` where recorded, else the stale drift at
  which ``clip_frac`` first exceeds :data:`CLIP_THRESHOLD` on a pilot run (median).
  R: the median drift at collapse ‖θ_{t*} − θ_0‖ over collapsing runs (Theorem 2).
  Predicted c_loc = r_clip/U (32) and c_hor = R/U (34) are set against the c_loc
  and c_hor of the two-branch boundary fit, as ratios with intervals.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import norm

from analysis.intervals import NAN_INTERVAL, Interval
from analysis.resample import bootstrap
from analysis.store import grid, per_run, series

CLIP_THRESHOLD = 0.1
"""clip_frac above which a pilot run's stale drift has reached r_clip **[choice]**."""
BIAS_RESOLUTION = 1e-10
"""‖b_t‖ ≤ this · G_on counts as float64 rounding **[choice]**: ‖b_t‖ is the difference of two gradients of size up to
G_on, whose rounding is ~1e-16·G_on; two equivalent float64 computations of the same probes differed by at most
1.1e-16 in ‖b_t‖, beyond 1e-10 relative only where ‖b_t‖ < 2.2e-10·G_on (docs/substrate.md). On the 2026-12-03
stores nearly every probe below the floor is exactly 0 (graded: 926 of 938)."""
PROBE_LEVEL = 0.90
"""Level of the LLM probes' ``bias_sq_lo``/``bias_sq_hi`` intervals (CONTRACTS: 90 %)."""


@dataclass
class Theorem1:
    """Theorem 1's rows on one store (module docstring)."""

    slope: Interval = NAN_INTERVAL
    """Slope of log ‖b‖ on log(τ_t η) over stable cells (theory 1)."""
    slope_source: str = "not measured"
    probes: int = 0
    unresolved: int = 0
    """Probes of stable cells left out of the slope because their ‖b_t‖ is below float64 resolution."""
    heldout: dict = field(default_factory=dict)
    """``{"lemma1": {...}, "theorem1": {...}}``: C_b, U, respected share, median slack, probes checked."""
    vacuity: dict = field(default_factory=dict)
    """``{"lemma1": {...}, "alt": {...}}``: respected share, median factor, C_b (secant sup)."""
    points: dict = field(default_factory=dict)
    """Figure data: probes ``x`` = τ_t η, ``y`` (‖b‖, or ‖b‖² with ``lo``/``hi``), ``stable``; per distinct x
    ``bins`` with the median ``bound``/``bound_alt``; the fitted line ``fit`` and held-out ``theorem1`` line."""


def lag_series(ds):
    """``(tau, eta, seed, step)`` measured lag τ_t (``staleness``; t mod τ (11) where not recorded)."""
    taus, _, steps = grid(ds)
    nominal = np.mod(steps[None, :], taus[:, None])[:, None, None, :]
    lag = series(ds, "staleness")
    if lag is None:
        return np.broadcast_to(nominal, ds.reward.shape).astype(float)
    return np.where(np.isfinite(lag), lag, nominal)


def theorem1(ds, events, n_boot=200, seed=0):
    """:class:`Theorem1` of a store with bias probes; empty rows ("not measured") without them."""
    _, etas, _ = grid(ds)
    stable = np.broadcast_to(~events.collapsed.any(axis=-1)[..., None, None], ds.reward.shape)
    x = lag_series(ds) * etas[None, :, None, None]
    result = Theorem1()
    bias_sq = series(ds, "bias_sq")
    bias = series(ds, "bias_norm")
    above = None if bias is None else resolved(ds, bias)
    if bias_sq is not None:
        low, high = series(ds, "bias_sq_lo"), series(ds, "bias_sq_hi")
        sigma = (high - low) / (2 * norm.ppf(0.5 + PROBE_LEVEL / 2)) if low is not None and high is not None else None
        use = stable & (x > 0) & np.isfinite(bias_sq)
        result.slope = bootstrap(lambda idx: _sq_slope(x[:, :, idx], bias_sq[:, :, idx], use[:, :, idx],
                                                       None if sigma is None else sigma[:, :, idx]),
                                 ds.sizes["seed"], n_boot, seed)
        result.slope_source, result.probes = "bias_sq (weighted fit of ‖b‖² = A (τ_t η)^2s)", int(use.sum())
        shown = (x > 0) & np.isfinite(bias_sq)
        result.points = {"x": x[shown], "y": bias_sq[shown], "stable": stable[shown]}
        if low is not None and high is not None:
            result.points |= {"lo": low[shown], "hi": high[shown]}
        amplitude = _sq_amplitude(x, bias_sq, use, sigma, result.slope.value)
        result.points["fit"] = _line(x[use], lambda v: amplitude * v ** (2 * result.slope.value))
    elif bias is not None:
        measured = stable & (x > 0) & np.isfinite(bias)
        use = measured & above
        result.slope = bootstrap(lambda idx: _log_slope(x[:, :, idx], bias[:, :, idx], use[:, :, idx]),
                                 ds.sizes["seed"], n_boot, seed)
        result.slope_source, result.probes = "bias_norm (exact)", int(use.sum())
        result.unresolved = int((measured & ~use).sum())
        shown = (x > 0) & np.isfinite(bias) & above
        result.points = {"x": x[shown], "y": bias[shown], "stable": stable[shown], **_bound_medians(ds, x, shown)}
        if np.isfinite(result.slope.value):
            intercept = np.mean(np.log(bias[use]) - result.slope.value * np.log(x[use]))
            result.points["fit"] = _line(x[use], lambda v: np.exp(intercept) * v ** result.slope.value)
    if bias is not None:
        result.heldout = _heldout(ds, bias, above, stable, x)
        result.vacuity = {name: _vacuity(ds, bias, above, stable, var) for name, var in
                          (("lemma1", "bias_bound"), ("alt", "bias_bound_alt"))}
        line = result.heldout.get("theorem1", {})
        c_bu = line.get("C_b", np.nan) * line.get("U", np.nan)
        if np.isfinite(c_bu) and result.points:
            result.points["theorem1"] = _line(result.points["x"], lambda v: c_bu * v)
    return result


def resolved(ds, bias):
    """Where the exact ‖b_t‖ is above float64 resolution: > :data:`BIAS_RESOLUTION` · ``probe_G_on`` where the store
    records it, else > 0."""
    scale = series(ds, "probe_G_on")
    floor = 0.0 if scale is None else BIAS_RESOLUTION * np.where(np.isfinite(scale), scale, 0.0)
    return bias > floor


def _line(x, f):
    if not np.size(x):
        return None
    grid_x = np.geomspace(np.min(x), np.max(x), 50)
    return grid_x, f(grid_x)


def _bound_medians(ds, x, shown):
    bins, inverse = np.unique(x[shown], return_inverse=True)
    out = {"bins": bins}
    for key, name in (("bound", "bias_bound"), ("bound_alt", "bias_bound_alt")):
        bound = series(ds, name)
        if bound is not None:
            out[key] = _group_median(bound[shown], inverse, bins.size)
    return out


def _group_median(values, groups, n):
    """Median of the finite ``values`` of each group 0…n−1 (NaN for a group without one)."""
    out = np.full(n, np.nan)
    finite = np.isfinite(values)
    order = np.argsort(groups[finite], kind="stable")
    sorted_groups, sorted_values = groups[finite][order], values[finite][order]
    starts = np.searchsorted(sorted_groups, np.arange(n + 1))
    for g in range(n):
        if starts[g + 1] > starts[g]:
            out[g] = np.median(sorted_values[starts[g]:starts[g + 1]])
    return out


def _sq_amplitude(x, y, use, sigma, slope):
    """A of ‖b‖² = A x^{2s} at the fitted s (weighted least squares, closed form)."""
    if not np.isfinite(slope) or not use.any():
        return np.nan
    basis = x[use] ** (2 * slope)
    w = np.ones_like(basis) if sigma is None else 1 / np.maximum(sigma[use], 1e-300) ** 2
    return float(np.sum(w * basis * y[use]) / np.sum(w * basis ** 2))


def _log_slope(x, y, use):
    if np.unique(x[use]).size < 2:
        return np.nan
    return float(np.polyfit(np.log(x[use]), np.log(y[use]), 1)[0])


def _sq_slope(x, y, use, sigma):
    """s in E[bias_sq] = A x^{2s}, weighted least squares on the unfloored estimates."""
    x, y = x[use], y[use]
    if np.unique(x).size < 2:
        return np.nan
    w = np.ones_like(y) if sigma is None else 1 / np.maximum(sigma[use], 1e-12 * np.abs(y).max() + 1e-300)
    positive = y > 0
    start = [np.log(np.median(np.abs(y)) + 1e-300), 1.0]
    if np.unique(x[positive]).size >= 2:
        slope, intercept = np.polyfit(np.log(x[positive]), np.log(y[positive]), 1)
        start = [intercept, slope / 2]
    scale = np.abs(y).max() or 1.0
    fit = least_squares(lambda p: w * (y - np.exp(p[0]) * x ** (2 * p[1])) / (w.max() * scale), start,
                        x_scale=[1.0, 0.1])
    return float(fit.x[1]) if fit.success else np.nan


def _halves(ds):
    seeds = np.arange(ds.sizes["seed"])
    return seeds % 2 == 0, seeds % 2 == 1


def _max_over(values, runs):
    v = values[runs]
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else np.nan


def _heldout(ds, bias, above, stable, x):
    drift = series(ds, "stale_drift")
    update = series(ds, "update_norm")
    fit_seeds, check_seeds = _halves(ds)
    fit_runs = stable & fit_seeds[None, None, :, None]
    check = stable & check_seeds[None, None, :, None] & np.isfinite(bias) & above & (x > 0)
    rows = {}
    if drift is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            secant = np.where(drift > 0, bias / drift, np.nan)
        c_b = _max_over(secant, fit_runs & np.isfinite(bias))
        rows["lemma1"] = _check(bias, c_b * drift, check, {"C_b": c_b})
        u_const = per_run(ds, "const_U")
        u = (_max_over(u_const[..., None] * np.ones_like(bias), fit_runs) if u_const is not None
             else _max_over(update, fit_runs) if update is not None else np.nan)
        rows["theorem1"] = _check(bias, c_b * u * x, check, {"C_b": c_b, "U": u})
    return rows


def _check(bias, bound, check, constants):
    use = check & np.isfinite(bound)
    if not use.any():
        return {**constants, "respected": np.nan, "median_slack": np.nan, "probes": 0}
    return {**constants, "respected": float(np.mean(bias[use] <= bound[use] * (1 + 1e-9))),
            "median_slack": float(np.median(bound[use] / bias[use])), "probes": int(use.sum())}


def _vacuity(ds, bias, above, stable, name):
    bound = series(ds, name)
    if bound is None:
        return {"respected": np.nan, "median_factor": np.nan, "C_b": np.nan, "probes": 0}
    use = np.isfinite(bias) & np.isfinite(bound) & above
    drift = series(ds, "stale_drift")
    c_b = np.nan
    if drift is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            c_b = _max_over(np.where(drift > 0, bound / drift, np.nan), stable & np.isfinite(bound))
    if not use.any():
        return {"respected": np.nan, "median_factor": np.nan, "C_b": c_b, "probes": 0}
    return {"respected": float(np.mean(bias[use] <= bound[use] * (1 + 1e-9))),
            "median_factor": float(np.median(bound[use] / bias[use])), "C_b": c_b, "probes": int(use.sum())}


def pilot_runs(ds):
    """``(tau, eta, seed)`` bool: the runs the rule's constants come from (every run at the smallest η)."""
    _, etas, _ = grid(ds)
    pilot = np.zeros(ds.reward.shape[:3], dtype=bool)
    pilot[:, int(np.argmin(etas))] = True
    return pilot


def _per_run_sup(values):
    with np.errstate(all="ignore"):
        finite = np.isfinite(values).any(axis=-1)
        return np.where(finite, np.nanmax(np.where(np.isfinite(values), values, -np.inf), axis=-1), np.nan)


def _crossing(stale, clip):
    """Per run: the stale drift at the first step where clip_frac exceeds the threshold (NaN if never)."""
    over = np.isfinite(clip) & (clip > CLIP_THRESHOLD) & np.isfinite(stale)
    first = np.argmax(over, axis=-1)
    value = np.take_along_axis(stale, first[..., None], axis=-1)[..., 0]
    return np.where(over.any(axis=-1), value, np.nan)


def constants(ds, events, n_boot=200, seed=0):
    """``{U, r_clip, R, c_loc_pred, c_hor_pred}`` as Intervals over seeds (module docstring); NaN when unmeasured."""
    pilot = pilot_runs(ds)
    u_run = per_run(ds, "const_U")
    if u_run is None and series(ds, "update_norm") is not None:
        u_run = _per_run_sup(series(ds, "update_norm"))
    r_run = per_run(ds, "const_r_clip")
    if r_run is None and series(ds, "clip_frac") is not None and series(ds, "stale_drift") is not None:
        r_run = _crossing(series(ds, "stale_drift"), series(ds, "clip_frac"))
    radius = events.radius

    def median(values, runs):
        def statistic(idx):
            v = values[:, :, idx][runs[:, :, idx]]
            v = v[np.isfinite(v)]
            return float(np.median(v)) if v.size else np.nan
        return statistic

    def ratio(a, b, runs_a, runs_b):
        return lambda idx: median(a, runs_a)(idx) / median(b, runs_b)(idx)

    n = ds.sizes["seed"]
    out = dict.fromkeys(("U", "r_clip", "R", "c_loc_pred", "c_hor_pred"), NAN_INTERVAL)
    if u_run is not None:
        out["U"] = bootstrap(median(u_run, pilot), n, n_boot, seed)
        if r_run is not None:
            out["r_clip"] = bootstrap(median(r_run, pilot), n, n_boot, seed)
            out["c_loc_pred"] = bootstrap(ratio(r_run, u_run, pilot, pilot), n, n_boot, seed)
        if np.isfinite(radius).any():
            out["R"] = bootstrap(median(radius, events.collapsed), n, n_boot, seed)
            out["c_hor_pred"] = bootstrap(ratio(radius, u_run, events.collapsed, pilot), n, n_boot, seed)
    return out


def log2_ratio(predicted, measured):
    """log₂(predicted/measured) with an interval: each end combines the two intervals' log half-widths on
    the side that moves the ratio that way, in quadrature (an infinite end of either stays infinite)."""
    values = np.array([*predicted, *measured], dtype=float)
    if np.isnan(values).any() or not (values > 0).all() or not np.isfinite([predicted.value, measured.value]).all():
        return NAN_INTERVAL
    with np.errstate(divide="ignore"):
        centre = np.log2(predicted.value / measured.value)
        down = np.hypot(np.log2(predicted.value / predicted.low), np.log2(measured.high / measured.value))
        up = np.hypot(np.log2(predicted.high / predicted.value), np.log2(measured.value / measured.low))
    return Interval(float(centre), float(centre - down), float(centre + up))
