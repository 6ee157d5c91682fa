"""The learning-rate advisor: the rule (36)–(38) from constants, and its check on held-out τ (docs/theory.md §5).

Held-out check (docs/statistics.md §8): for each τ of a sweep, the two-branch boundary is
fitted on the *other* τ only, and an advisor turns that fit into an η at this τ:

    η_p(τ) = η_max(τ) · exp(w · logit p),

where the fit puts P(collapse within T) at ``p`` (the rule min(c_loc/τ^a, c_hor/T), moved down by
the link width w). η_max(τ) comes from the fit with a free (``fitted``), from the fit with a fixed at
1 as the rule states it (``1``), or the smaller of the two (``smaller``: the rule, capped where the
data's own exponent says less), at the point estimate or at the lower end of its 90 % profile
interval. :data:`ADVISOR` is the one chosen by measured safety and efficiency (§8). An advice is judged
at this τ: **safety** = collapse rate of the largest grid η not above it (snapping down: a policy is
never credited with a larger step than it asked for); **efficiency** = advised η ÷ the measured
η_max(τ), the largest grid η whose collapse fraction is at most :data:`MEASURED_TOLERANCE`. Goal: no
collapse and efficiency ≥ :data:`EFFICIENCY_GOAL`.
"""

import dataclasses
import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.special import expit, logit, ndtr

from analysis.boundary import fit_boundary
from analysis.events import collapse_events
from analysis.intervals import VERDICT_LEVEL, fmt, to_json
from analysis.planted import detect_limit, planted_world
from theory.rule import c_hor_from_radius, c_loc_from_radius, safe_learning_rate

MEASURED_TOLERANCE = 0.05
"""Measured η_max(τ): the largest grid η whose collapse fraction over seeds is at most this **[choice]**: under a
smooth link a cell far below the boundary still collapses now and then, and one such run must not define η_max."""
EFFICIENCY_GOAL = 0.5
"""An advisor is useful when its η is at least this fraction of the measured η_max."""
EXPONENTS = {"fitted": None, "1": 1.0}
"""The boundary fits an advisor draws on: the exponent a fitted, or fixed at 1 as the rule (36) states it."""


class Advisor(NamedTuple):
    """How a boundary fit on the other τ becomes an η at a held-out τ (module docstring)."""

    exponent: str
    """``fitted``, ``1`` or ``smaller`` (the smaller advice of the two)."""
    probability: float
    """P(collapse within T) the fit allows at the advised η."""
    bound: str = "point"
    """``point``: η_max(τ) at the estimate; ``lower``: at the lower end of its 90 % profile interval."""

    @property
    def name(self):
        fit = {"fitted": "a fitted", "1": "a = 1", "smaller": "min(a fitted, a = 1)"}[self.exponent]
        return f"{fit}, {self.bound} estimate, P = {self.probability:g}"


ADVISOR = Advisor("smaller", 0.01)
"""The advisor of ``repro analyze`` and REPORT.md: chosen by safety and efficiency on held-out τ (§8)."""
CANDIDATES = tuple(Advisor(e, p, b) for e in ("fitted", "1", "smaller") for b in ("point", "lower")
                   for p in (0.05, 0.01))
"""Every advisor compared in docs/statistics.md §8; REPORT.md shows the ``point`` ones."""


def snap_down(eta, etas):
    """Index of the largest grid η ≤ ``eta`` (relative 1e-9), None when every grid η is larger."""
    etas = np.asarray(etas, dtype=float)
    below = np.flatnonzero(etas <= eta * (1 + 1e-9))
    return int(below[np.argmax(etas[below])]) if below.size else None


def grid_eta_max(collapsed, etas, tolerance=MEASURED_TOLERANCE):
    """``(tau,)`` measured η_max: the largest grid η whose collapse fraction over seeds is ≤ ``tolerance``
    (NaN for a τ with none)."""
    stable = np.asarray(collapsed, dtype=float).mean(axis=-1) <= tolerance * (1 + 1e-9)
    best = np.where(stable, np.asarray(etas, dtype=float)[None, :], -np.inf).max(axis=1)
    return np.where(np.isfinite(best), best, np.nan)


def fitted_eta_max(fit, tau):
    """η_max(τ) = min(c_loc·τ^−a, c_hor/T) of a boundary fit, at any τ (NaN when the fit has no c_loc)."""
    local = fit.c_loc.value * float(tau) ** -fit.a.value
    horizon = fit.c_hor.value / fit.horizon
    value = min(local, horizon)
    return value if math.isfinite(value) and value > 0 else math.nan


def advised_eta(fits, advisor):
    """η_p(τ) at the τ the ``fits`` (``{exponent: BoundaryFit with predict=(τ,)}``) predict (module docstring)."""
    if advisor.exponent == "smaller":
        return float(np.fmin(*(advised_eta(fits, advisor._replace(exponent=e)) for e in EXPONENTS)))
    fit = fits[advisor.exponent]
    centre = fit.predicted[0].value if advisor.bound == "point" else fit.predicted[0].low
    return float(centre * math.exp(fit.w.value * logit(advisor.probability)))


def _judged(eta, collapsed, etas, measured):
    """Safety and efficiency of the advice ``eta`` at one τ (``collapsed``: its ``(eta, seed)`` outcomes)."""
    j = snap_down(eta, etas) if math.isfinite(eta) else None
    return {"eta_advised": eta, "eta": math.nan if j is None else float(etas[j]),
            "collapse_rate": math.nan if j is None else float(collapsed[j].mean()),
            "efficiency": eta / measured if math.isfinite(measured) else math.nan}


def held_out(collapsed, taus, etas, horizon, advisors=(ADVISOR,), level=VERDICT_LEVEL):
    """Rows per τ (module docstring): ``tau``, ``eta_max_measured``, the fits on the other τ (``fits``:
    per exponent, c_loc, c_hor, a, w, reason) and, per advisor name, its advised η, the grid η used, the collapse
    rate there and the efficiency (``advisors``); the first advisor's also at the top level, with the branch
    that binds there. Point-estimate fits unless an advisor needs a ``lower`` bound (then profiled at ``level``).
    """
    collapsed = np.asarray(collapsed, dtype=bool)
    taus, etas = np.asarray(taus, dtype=float), np.asarray(etas, dtype=float)
    measured = grid_eta_max(collapsed, etas)
    profiled = any(a.bound == "lower" for a in advisors)
    rows = []
    for i, tau in enumerate(taus):
        others = np.arange(taus.size) != i
        counts = collapsed[others].sum(axis=-1)
        fits = {name: fit_boundary(counts, np.full(counts.shape, collapsed.shape[-1]), taus[others], etas, horizon,
                                   level, per_seed=collapsed[others] if profiled else None, exponent=exponent,
                                   predict=(tau,), intervals=profiled)
                for name, exponent in EXPONENTS.items()}
        judged = {a.name: _judged(advised_eta(fits, a), collapsed[i], etas, measured[i]) for a in advisors}
        main = fits["1"] if advisors[0].exponent == "1" else fits["fitted"]
        local = main.c_loc.value * tau ** -main.a.value
        rows.append({
            "tau": float(tau), "eta_max_measured": float(measured[i]), **judged[advisors[0].name],
            "binding": None if main.reason else "horizon" if main.c_hor.value / horizon < local else "local",
            "reason": main.reason, "advisors": judged,
            "fits": {name: {"c_loc": f.c_loc.value, "c_hor": f.c_hor.value, "a": f.a.value, "w": f.w.value,
                            "reason": f.reason} for name, f in fits.items()},
        })
    return rows


def summarise(rows, name=None):
    """``{safety, efficiency, goal_met}`` of one advisor (``name``; default: the rows' top level): worst collapse
    rate and worst efficiency over the held-out τ."""
    rows = [r if name is None else r["advisors"][name] for r in rows]
    rates = [r["collapse_rate"] for r in rows if np.isfinite(r["collapse_rate"])]
    eff = [r["efficiency"] for r in rows if np.isfinite(r["efficiency"])]
    safety = max(rates) if rates else np.nan
    efficiency = min(eff) if eff else np.nan
    return {"safety": safety, "efficiency": efficiency,
            "goal_met": bool(rates and eff and safety == 0 and efficiency >= EFFICIENCY_GOAL)}


def planted_collapse_probability(truth, tau, eta):
    """P(collapse within T) at (τ, η) in a planted world (:mod:`analysis.planted`), from its truth."""
    if truth["incidence"] is None:
        eta_max = min(truth["c_loc"] * tau ** -truth["a"], truth["c_hor"] / truth["horizon"])
        return float(expit((math.log(eta) - math.log(eta_max)) / truth["w"]))
    g0, g_eta, g_tau = truth["incidence"]
    mu = math.log(truth["t0"]) - truth["b"] * math.log(eta) + truth["c"] * math.log(tau)
    limit = detect_limit(truth["horizon"], tau, truth["success"])
    return float(expit(g0 + g_eta * math.log(eta) + g_tau * math.log(tau))
                 * ndtr((math.log(limit) - mu) / truth["sigma"]))


def _shares(values, goals):
    """:func:`compare`'s summary of one advisor on one kind from per-cell (collapse rate, P, efficiency)."""
    rate, p, eff = values
    seen, useful = rate[np.isfinite(rate)], eff[np.isfinite(eff)]
    with np.errstate(invalid="ignore"):
        return {"any_collapse": float(np.mean(seen > 0)) if seen.size else math.nan,
                "collapse_rate": float(np.mean(seen)) if seen.size else math.nan,
                "p_mean": float(np.nanmean(p)), "p_max": float(np.nanmax(p)), "efficiency": float(np.nanmedian(eff)),
                "useful": float(np.mean(useful >= EFFICIENCY_GOAL)) if useful.size else math.nan,
                "below_grid": float(np.mean(~np.isfinite(rate))), "goal_met": float(np.mean(goals))}


def compare(kinds=("clean", "horizon", "false_law", "tau_incidence", "kicks", "sync"), n_worlds=10, seed=100,
            advisors=CANDIDATES, overrides=None):
    """``{kind: {advisor name: {...}}}`` over ``n_worlds`` planted worlds per kind at the default grid: per held-out
    (world, τ), the share with a collapse at the advised grid η (``any_collapse``), the mean collapse rate there,
    the mean and largest planted P(collapse) at the advised η itself (``p_mean``, ``p_max``), the median efficiency,
    the share with efficiency ≥ :data:`EFFICIENCY_GOAL`, the share of held-out τ whose advice lies below the grid,
    and the share of worlds meeting the goal at every τ. ``overrides``: per kind, planted settings (e.g. the
    ``false_law`` world with ``{"a": 0.5}``)."""
    overrides = {"false_law": {"a": 0.5}} if overrides is None else overrides
    out = {}
    for kind in kinds:
        cells = {a.name: [] for a in advisors}
        goals = {a.name: [] for a in advisors}
        for i in range(n_worlds):
            ds, truth = planted_world(kind, seed + i, **overrides.get(kind, {}))
            rows = held_out(collapse_events(ds).collapsed, ds.tau.values, ds.eta.values, truth["horizon"], advisors)
            for a in advisors:
                for r in rows:
                    cell = r["advisors"][a.name]
                    eta = cell["eta_advised"]
                    p = planted_collapse_probability(truth, r["tau"], eta) if math.isfinite(eta) and eta > 0 \
                        else math.nan
                    cells[a.name].append((cell["collapse_rate"], p, cell["efficiency"]))
                goals[a.name].append(summarise(rows, a.name)["goal_met"])
        out[kind] = {name: _shares(np.array(values, dtype=float).T, goals[name]) for name, values in cells.items()}
    return out


def read_constants(path):
    """``(c_loc, c_hor)`` from a JSON file: ``repro fit`` output, or r_clip, R and U (each maybe ``{value, …}``)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"--constants: cannot read {path}: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--constants: {path} is not a JSON object")
    if "c_loc" in data and "c_hor" in data:
        keys = ("c_loc", "c_hor")
    elif all(k in data for k in ("r_clip", "R", "U")):
        keys = ("r_clip", "R", "U")
    else:
        raise ValueError(f"--constants: {path} has neither c_loc and c_hor nor r_clip, R and U")
    values = {}
    for key in keys:
        value = data[key]["value"] if isinstance(data[key], dict) and "value" in data[key] else data[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"--constants: {key} = {value!r} in {path} must be a finite number > 0")
        values[key] = value
    if "c_loc" in values:
        return values["c_loc"], values["c_hor"]
    return c_loc_from_radius(values["r_clip"], values["U"]), c_hor_from_radius(values["R"], values["U"])


def advise(tau, horizon, c_loc, c_hor):
    """The rule (36)–(38) as a JSON-ready dict."""
    return dataclasses.asdict(safe_learning_rate(tau, horizon, c_loc, c_hor))


def advice_table(a):
    """:func:`advise`'s dict as text."""
    return "\n".join([
        f"η_max = {a['eta_max']:.4g}  ({a['binding']} constraint binds)",
        f"local   η ≤ c_loc/τ = {a['c_loc']:.4g}/{a['tau']} = {a['eta_local']:.4g}",
        f"horizon η ≤ c_hor/T = {a['c_hor']:.4g}/{a['horizon']} = {a['eta_horizon']:.4g}",
        f"margin: the other constraint allows {a['margin']:.3g}× more",
    ])


def fitted_constants(analysis, store):
    """``repro fit``'s JSON: c_loc, c_hor of the boundary fit with their intervals, a, and the branch per τ.

    A constant the grid bounds on one side only (its branch binds at no τ) is given as its finite end, the
    conservative choice for the rule, with a note; an infinite end is written "inf" (:func:`to_json`).
    ValueError (one line) when the store cannot give them.
    """
    fit = analysis.boundary
    if fit.reason:
        raise ValueError(f"cannot fit c_loc, c_hor from {store}: {fit.reason}")
    result = {"store": str(store), "level": analysis.level, "notes": list(fit.notes)}
    for name in ("c_loc", "c_hor"):
        iv = getattr(fit, name)
        value = iv.value if math.isfinite(iv.value) and iv.value > 0 else iv.low
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"cannot fit {name} from {store}: the boundary does not bound it on this grid")
        result |= {name: value, f"{name}_low": iv.low, f"{name}_high": iv.high}
    return to_json(result | {"a": fit.a.value, "binding": {f"{t:g}": b for t, b in zip(fit.taus, fit.branch)}})


def constants_table(r):
    """:func:`fitted_constants`'s dict as text."""
    rows = [f"{n:6}{fmt(r[n], 4)} [{fmt(r[f'{n}_low'], 4)}, {fmt(r[f'{n}_high'], 4)}]" for n in ("c_loc", "c_hor")]
    return "\n".join(rows + [f"binding per τ: {r['binding']}"] + [f"note: {n}" for n in r["notes"]])
