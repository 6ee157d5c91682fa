"""One sweep store → every statistic behind the figures and REPORT.md (docs/theory.md §4–6).

:func:`analyze` assembles collapse events (:mod:`analysis.events`), the two-branch
boundary of η_max(τ) (36)–(38), the survival of t* (34), the drift exponent,
Theorem 1's rows (:mod:`analysis.theorem1`), the rule from constants, Theorem 2's
mechanism, the alignment of consecutive gradients and the held-out advisor
(:mod:`analysis.advisor`). Each judged row is a :class:`Prediction`; its verdict
comes from the equivalence rule of :mod:`analysis.verdicts` on its interval.
"""

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from analysis import advisor, events, theorem1
from analysis.boundary import fit_boundary
from analysis.drift import LABELS, class_exponent, drift_exponents, msd_curve, window_end
from analysis.intervals import NAN_INTERVAL as NAN
from analysis.intervals import VERDICT_LEVEL as LEVEL
from analysis.intervals import fmt, fmt_interval, to_json
from analysis.resample import bootstrap
from analysis.store import grid, projections, series
from analysis.survival import fit_collapse_times
from analysis.verdicts import PREDICTIONS, Prediction, seeds_needed, verdict

EXPONENTS = {p.key: p for p in PREDICTIONS}
ROWS = (
    EXPONENTS["a"], EXPONENTS["b"], EXPONENTS["c"],
    Prediction("c_loc", "c_loc of the boundary = r_clip/U of the pilot runs (32): log₂(predicted/measured) = 0",
               0.0, 1.0),
    Prediction("c_hor", "c_hor of the boundary = R/U, R the drift at collapse (34): log₂(predicted/measured) = 0",
               0.0, 1.0),
    Prediction("radius_eta", "‖θ_t* − θ_0‖ independent of η: slope on log η = 0 (Theorem 2)", 0.0, 0.25),
    Prediction("radius_tau", "‖θ_t* − θ_0‖ independent of τ: slope on log τ = 0 (Theorem 2)", 0.0, 0.25),
    EXPONENTS["H"]._replace(key="H_collapsing"),
    Prediction("H_stable", "stable runs drift diffusively: H = 0.5 (§4.4)", 0.5, 0.15),
    Prediction("theorem1_slope", "‖b_t‖ ∝ (τ_t η)^s over stable cells, s = 1 (Theorem 1)", 1.0, 0.25),
    Prediction("alignment_raw", "surrogate gradients align before collapse: stable runs' cos(ĝ_t, ĝ_t−1) minus "
                                "the pre-collapse one ≤ 0 (§4.4)", 0.0, 0.05, True),
    Prediction("alignment_applied", "applied updates align before collapse: stable runs' cos(u_t, u_t−1) minus "
                                    "the pre-collapse one ≤ 0 (§4.4)", 0.0, 0.05, True),
)
"""Every judged row. ``alignment_*`` rows measure stable minus pre-collapse, so "aligned before collapse" is a
bound ≤ 0 and the printed number is the quantity the statement names."""
BY_KEY = {row.key: row for row in ROWS}
INTERVALS = {"a": "profile likelihood", "b": "profile likelihood", "c": "profile likelihood",
             "c_loc": "profile likelihood ⊕ bootstrap (log₂ ratio)",
             "c_hor": "profile likelihood ⊕ bootstrap (log₂ ratio)",
             "H_collapsing": "t interval over seeds", "H_stable": "t interval over seeds"}
"""Interval type of each estimate (the rest: percentile bootstrap over seeds, :mod:`analysis.resample`)."""
ADVISORS = (advisor.ADVISOR, *(a for a in advisor.CANDIDATES if a.bound == "point" and a != advisor.ADVISOR))
"""The held-out advisors of the analysis: the chosen one first, then the other point-estimate candidates."""
JUDGED_ON = {"c_loc": "c_loc_log2_ratio", "c_hor": "c_hor_log2_ratio"}
"""Rows judged on another estimate than their own key (``estimates.c_loc`` is the measured constant)."""


@dataclass
class SweepAnalysis:
    """Everything :func:`analyze` measures on one store; ``summary()`` is the JSON of ``repro analyze``."""

    taus: np.ndarray
    etas: np.ndarray
    steps: np.ndarray
    events: object
    eta_max_grid: np.ndarray
    boundary: object
    survival: object
    drift_labels: dict
    """``{"collapsing" | "stable": {label: runs}}`` of the drift exponent (empty without ``theta_proj``)."""
    theorem1: object
    constants: dict
    estimates: dict
    advisor: list
    level: float
    not_measured: list = field(default_factory=list)
    curves: dict = field(default_factory=dict)
    """Figure data: ``{name: (stable median, collapsing median before t*)}`` per step."""
    lags: dict = field(default_factory=dict)
    """``{tau: (lag values, counts)}`` of the measured staleness τ_t."""
    msd_curves: dict = field(default_factory=dict)
    """``{"collapsing" | "stable": (lags, M(Δ)/M(1), the same on shuffled increments)}`` (None: no such run)."""

    @property
    def horizon(self):
        """T in learner steps (:func:`analysis.events.horizon`)."""
        return events.horizon(self.steps)

    @property
    def n_seeds(self):
        return self.events.collapsed.shape[-1]

    def verdicts(self):
        """``{key: verdict}`` for every row of :data:`ROWS`."""
        return {row.key: verdict(row, self.judged(row.key)) for row in ROWS}

    def judged(self, key):
        """The interval row ``key`` is judged on."""
        return self.estimates.get(JUDGED_ON.get(key, key), NAN)

    def seeds_needed(self):
        """``{key: seeds per cell}`` that would make each row decisive at the spread observed (None: cannot say)."""
        return {row.key: seeds_needed(row, self.judged(row.key), self.n_seeds) for row in ROWS}

    def binding(self):
        """``{τ: "local" | "horizon" | "either"}``: the branch of the fitted boundary at each τ of the grid."""
        return {float(t): b for t, b in zip(self.taus, self.boundary.branch)}

    def boundary_curve(self, taus):
        """``(two-branch η_max, single power law η_max)`` of the fits at ``taus`` (NaN where not fitted)."""
        taus = np.asarray(taus, dtype=float)
        two = np.array([advisor.fitted_eta_max(self.boundary, t) for t in taus])
        single = self.boundary.c_single.value * taus ** -self.boundary.a_single.value
        return two, single

    def incidence_curve(self, tau):
        """``(η, P(collapse within T))`` of the fitted incidence at ``tau``; None when not fitted."""
        inc = self.survival.incidence
        g0, g_eta, g_tau = (inc.get(k, NAN).value for k in ("intercept", "log_eta", "log_tau"))
        if not (np.isfinite(g0) and np.isfinite(g_eta)):
            return None
        etas = np.geomspace(self.etas.min(), self.etas.max(), 50)
        return etas, expit(g0 + g_eta * np.log(etas) + (g_tau if np.isfinite(g_tau) else 0.0) * np.log(tau))

    def latency_curve(self, tau):
        """``(η, median t*)`` of the fitted latency t0·η^−b·τ^c at ``tau`` over the collapsing η; None if unfitted."""
        fit = self.survival
        if not (np.isfinite(fit.t0.value) and np.isfinite(fit.b.value)):
            return None
        hit = self.events.collapsed.any(axis=(0, 2))
        etas = np.geomspace(self.etas[hit].min(), self.etas[hit].max(), 50)
        c = fit.c.value if np.isfinite(fit.c.value) else 0.0
        return etas, fit.t0.value * etas ** -fit.b.value * tau ** c

    def table2(self):
        """Table 2: one row per cell with a collapsing seed (medians over its collapsed seeds)."""
        rows = []
        ev = self.events
        for i, tau in enumerate(self.taus):
            for j, eta in enumerate(self.etas):
                hit = ev.collapsed[i, j]
                if hit.any():
                    t = float(np.median(ev.t_star[i, j][hit]))
                    k = float(np.median(ev.t_high[i, j][hit] // tau))
                    rows.append({"tau": float(tau), "eta": float(eta), "p_collapse": float(hit.mean()),
                                 "k_star": k, "t_star": t, "eta_t_star": eta * t, "k_tau_eta": k * tau * eta})
        return rows

    def summary(self):
        """JSON-ready dict: grid, events, census, boundary, every estimate with its verdict and seeds needed
        (:func:`analysis.intervals.to_json`: null = not estimable, "inf"/"-inf" = an unbounded end)."""
        ev = self.events
        fit = self.boundary
        boundary = {"binding": {f"{t:g}": b for t, b in self.binding().items()},
                    "eta_max": {f"{t:g}": iv for t, iv in zip(self.taus, fit.eta_max)},
                    "preferred": fit.preferred, "preference": fit.preference, "reason": fit.reason,
                    "notes": fit.notes, "w": fit.w, "single_power_law": {"a": fit.a_single, "c": fit.c_single}}
        t1 = self.theorem1
        return to_json({
            "tau": self.taus, "eta": self.etas, "steps": int(self.horizon), "seeds": self.n_seeds,
            "level": self.level, "event_source": ev.source,
            "censor_window": {f"{t:g}": w for t, w in zip(self.taus, ev.window)},
            "collapse_probability": ev.probability, "eta_max": self.eta_max_grid, "census": ev.census(),
            "boundary": boundary, "estimates": self.estimates, "verdicts": self.verdicts(),
            "seeds_needed": {k: "never" if v == math.inf else v for k, v in self.seeds_needed().items()},
            "drift_labels": self.drift_labels,
            "theorem1": {"slope_source": t1.slope_source, "probes": t1.probes,
                         "unresolved_probes": t1.unresolved, "heldout": t1.heldout,
                         "vacuity": t1.vacuity},
            "constants": self.constants,
            "advisor": {"name": advisor.ADVISOR.name, "rows": self.advisor, **advisor.summarise(self.advisor),
                        "candidates": {a.name: advisor.summarise(self.advisor, a.name) for a in ADVISORS}},
            "not_measured": self.not_measured,
        })

    def table(self):
        """The summary as text (``repro analyze`` without ``--json``)."""
        ev, fit = self.events, self.boundary
        rows = [f"grid: τ = {self.taus.tolist()}, η = {self.etas.tolist()}, {self.n_seeds} seeds, T = {self.horizon:g};"
                f" t* from {ev.source}; censor window W(τ) = "
                f"{ {f'{t:g}': int(w) for t, w in zip(self.taus, ev.window)} } steps",
                "collapse probability over seeds (rows τ, columns η):"]
        rows += ["  " + " ".join(f"{p:5.2f}" for p in row) for row in ev.probability]
        rows.append(f"measured η_max(τ) (largest grid η with collapse fraction ≤ {advisor.MEASURED_TOLERANCE:g}): "
                    + ", ".join(fmt(v) for v in self.eta_max_grid))
        rows.append("census: " + ", ".join(f"{k} {v}" for k, v in ev.census().items()))
        rows.append(f"boundary: {fit.reason}" if fit.reason else
                    f"boundary binds per τ: { {f'{t:g}': b for t, b in self.binding().items()} }; {fit.preference}")
        rows.append(f"{'':18}{'estimate [' + format(self.level, '.0%') + ' interval]':>34}  verdict       seeds")
        verdicts, needed = self.verdicts(), self.seeds_needed()
        for key, iv in self.estimates.items():
            n = needed.get(key)
            rows.append(f"{key:18}{fmt_interval(iv):>34}  {verdicts.get(key, ''):13} "
                        f"{'' if n is None else 'never' if n == math.inf else n}")
        adv = advisor.summarise(self.advisor)
        rows.append(f"advisor ({advisor.ADVISOR.name}) on held-out τ: worst collapse rate {fmt(adv['safety'])}, "
                    f"worst efficiency {fmt(adv['efficiency'])} (goal: 0 and ≥ {advisor.EFFICIENCY_GOAL:g})")
        if self.not_measured:
            rows.append("not measured: " + ", ".join(self.not_measured))
        return "\n".join(rows)


def analyze(ds, level=LEVEL, n_boot=200, seed=0):
    """Every statistic of one sweep store (module docstring) as a :class:`SweepAnalysis`."""
    taus, etas, steps = grid(ds)
    ev = events.collapse_events(ds)
    horizon = events.horizon(steps)
    boundary, survival = fit_events(ev, taus, etas, horizon, level)
    t1 = theorem1.theorem1(ds, ev, n_boot, seed)
    consts = theorem1.constants(ds, ev, n_boot, seed)
    drift, drift_labels, msd = _drift(ds, ev, taus, steps, seed)
    boot = {"n_boot": n_boot, "seed": seed}
    estimates = {
        "a": boundary.a, "b": survival.b, "c": survival.c,
        "c_loc": boundary.c_loc, "c_hor": boundary.c_hor,
        "c_loc_pred": consts["c_loc_pred"], "c_hor_pred": consts["c_hor_pred"],
        "c_loc_log2_ratio": theorem1.log2_ratio(consts["c_loc_pred"], boundary.c_loc),
        "c_hor_log2_ratio": theorem1.log2_ratio(consts["c_hor_pred"], boundary.c_hor),
        **_radius_slopes(ev, taus, etas, boot),
        "H_collapsing": drift["collapsing"], "H_stable": drift["stable"],
        "theorem1_slope": t1.slope,
        **{key: _alignment(series(ds, name), ev, taus, steps, boot) for key, name in
           (("alignment_raw", "raw_grad_cos"), ("alignment_applied", "grad_cos"))},
    }
    rows = advisor.held_out(ev.collapsed, taus, etas, horizon, ADVISORS)
    return SweepAnalysis(
        taus=taus, etas=etas, steps=steps, events=ev, eta_max_grid=advisor.grid_eta_max(ev.collapsed, etas),
        boundary=boundary, survival=survival, drift_labels=drift_labels, theorem1=t1, constants=consts,
        estimates=estimates, advisor=rows, level=level, not_measured=_not_measured(ds), curves=_curves(ds, ev),
        lags=_lags(ds, taus), msd_curves=msd,
    )


def fit_events(ev, taus, etas, horizon, level=LEVEL, levels=(), formulation="two_part"):
    """``(boundary, survival)`` of a store's collapse events: the two-branch η_max(τ) (36)–(38) on per-cell counts
    and the t* survival (34) on per-run intervals, both with the seeds as the independent units."""
    shape = ev.collapsed.shape
    counts = ev.collapsed.sum(axis=-1)
    boundary = fit_boundary(counts, np.full(counts.shape, shape[-1]), taus, etas, horizon, level, levels,
                            per_seed=ev.collapsed)
    survival = fit_collapse_times(ev.collapsed, ev.t_low, ev.t_high, ev.censor_at, np.log(etas)[None, :, None],
                                  np.log(taus)[:, None, None], level, levels, formulation,
                                  clusters=np.broadcast_to(np.arange(shape[-1]), shape))
    return boundary, survival


EXPECTED = {"success": "exact success (t* interval-censored from reward instead)", "drift": "drift",
            "update_norm": "update_norm", "theta_proj": "theta_proj (drift exponent)",
            "bias_norm": "bias probes (Theorem 1 rows)", "stale_drift": "stale_drift",
            "raw_grad_cos": "raw_grad_cos", "grad_cos": "grad_cos", "staleness": "measured staleness (t mod τ used)"}


def _not_measured(ds):
    return [text for name, text in EXPECTED.items() if name not in ds.data_vars
            or not np.isfinite(ds[name].values).any()]


def _drift(ds, ev, taus, steps, seed):
    """Drift exponent per class (docs/statistics.md §4): ``({class: H Interval}, {class: label counts},
    {class: MSD curve})``. Collapsing runs: the window ends before the final sync cycle before t*; stable runs:
    the whole run, converging ones left out of H (labelled, never called diffusive)."""
    proj = projections(ds)
    classes = (("collapsing", ev.collapsed), ("stable", ~ev.collapsed))
    if proj is None:
        return {name: NAN for name, _ in classes}, {}, {}
    end = window_end(ev.t_low, taus[:, None, None], steps)
    runs = drift_exponents(proj, 0, end, seed=seed)
    exponents, labels, curves = {}, {}, {}
    for name, members in classes:
        determined = members & (runs.label != "undetermined")
        used = determined & (runs.label != "converging") if name == "stable" else determined
        exponents[name] = class_exponent(runs.H, used)
        labels[name] = {label: int((members & (runs.label == label)).sum()) for label in LABELS}
        curves[name] = msd_curve(proj, 0, end, runs=used, seed=seed) if used.any() else None
    return exponents, labels, curves


def _radius_slopes(ev, taus, etas, boot):
    """Theorem 2's mechanism: slopes of log ‖θ_t* − θ_0‖ on log η and log τ over collapsing runs (both 0)."""
    radius = ev.radius
    log_eta = np.broadcast_to(np.log(etas)[None, :, None], radius.shape)
    log_tau = np.broadcast_to(np.log(taus)[:, None, None], radius.shape)

    def slope(idx, which):
        r = radius[:, :, idx]
        ok = ev.collapsed[:, :, idx] & np.isfinite(r) & (r > 0)
        regressors = {"eta": log_eta[:, :, idx][ok], "tau": log_tau[:, :, idx][ok]}
        varying = [k for k, v in regressors.items() if np.unique(v).size > 1]
        if which not in varying or ok.sum() < len(varying) + 2:
            return np.nan
        design = np.stack([np.ones(ok.sum())] + [regressors[k] for k in varying], axis=1)
        coef = np.linalg.lstsq(design, np.log(r[ok]), rcond=None)[0]
        return float(coef[1 + varying.index(which)])

    n = radius.shape[-1]
    return {f"radius_{k}": bootstrap(lambda idx, k=k: slope(idx, k), n, **boot) for k in ("eta", "tau")}


def _alignment(cos, ev, taus, steps, boot):
    """−(mean cos over the last 5 sync cycles before t* − mean cos of the same τ's stable runs at those steps),
    averaged over collapsing runs; the stable reference is resampled with the seeds (window sums by cumsum)."""
    if cos is None or not ev.collapsed.any() or ev.collapsed.all():
        return NAN
    finite = np.isfinite(cos)
    pad = np.zeros((*cos.shape[:-1], 1))
    total = np.concatenate([pad, np.cumsum(np.where(finite, cos, 0.0), axis=-1)], axis=-1)
    count = np.concatenate([pad, np.cumsum(finite, axis=-1)], axis=-1)
    stable = ~ev.collapsed[..., None]
    ref_total, ref_count = (total * stable).sum(axis=1), (count * stable).sum(axis=1)  # (tau, seed, step + 1)
    i, j, s = np.nonzero(ev.collapsed)
    t_low = ev.t_low[i, j, s]
    # entries (not steps) index the cumulative sums: the window is the steps in [t* − max(5, 5τ), t*)
    end = np.searchsorted(steps, t_low)
    start = np.maximum(1, np.searchsorted(steps, t_low - np.maximum(5, 5 * taus[i])))
    end = np.maximum(end, start)
    with np.errstate(invalid="ignore", divide="ignore"):
        own = (total[i, j, s, end] - total[i, j, s, start]) / (count[i, j, s, end] - count[i, j, s, start])
    ref_sum = ref_total[i, :, end] - ref_total[i, :, start]  # (collapsing run, seed)
    ref_n = ref_count[i, :, end] - ref_count[i, :, start]
    n_seeds = cos.shape[2]

    def statistic(sample):
        weight = np.bincount(sample, minlength=n_seeds).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = own - (ref_sum @ weight) / (ref_n @ weight)
        use = np.isfinite(gap) & (weight[s] > 0)
        return -float(np.sum(weight[s][use] * gap[use]) / np.sum(weight[s][use])) if use.any() else np.nan

    return bootstrap(statistic, n_seeds, **boot)


def _curves(ds, ev):
    """Per-step medians of the dynamics series: stable runs, and collapsing runs before their t*."""
    before = ds.step.values < np.where(ev.collapsed, ev.t_low, np.inf)[..., None]
    curves = {}
    for name in ("grad_cos", "raw_grad_cos", "drift"):
        values = series(ds, name)
        if values is None:
            continue
        values = np.where(before, values, np.nan)
        curves[name] = tuple(_median(values[mask]) for mask in (~ev.collapsed, ev.collapsed))
    return curves


def _median(values):
    if values.size == 0 or not np.isfinite(values).any():
        return None
    with np.errstate(all="ignore"):
        finite = np.isfinite(values).any(axis=0)
        out = np.full(values.shape[-1], np.nan)
        out[finite] = np.nanmedian(values[:, finite], axis=0)
        return out


def _lags(ds, taus):
    lag = series(ds, "staleness")
    if lag is None:
        return {}
    out = {}
    for i, tau in enumerate(taus):
        values = lag[i][np.isfinite(lag[i])]
        out[float(tau)] = np.unique(values, return_counts=True)
    return out


def grid_coverage(analysis, worlds, kinds, seed=0):
    """Coverage of the intervals on planted worlds at this analysis's own grid (τ, η, seeds, T):
    :func:`analysis.coverage.coverage`'s markdown table; a one-line reason when it cannot be measured."""
    from analysis.coverage import coverage

    grid = {"taus": tuple(int(t) for t in analysis.taus), "etas": tuple(float(e) for e in analysis.etas),
            "seeds": int(analysis.n_seeds), "steps": int(analysis.horizon)}
    try:
        return coverage(kinds=tuple(kinds), n_worlds=worlds, seed=seed, grid=grid).format()
    except (ValueError, ArithmeticError) as error:  # a planted world this grid cannot hold: say so in the report
        return f"not measured at this grid ({type(error).__name__}: {error})\n"
