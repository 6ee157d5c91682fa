"""Coverage measured, not assumed: the estimators of analysis/ on planted worlds (docs/statistics.md §6).

For each world of :mod:`analysis.planted` (a store in the sweep schema with a known truth) the store goes
through the same path as a real one — collapse events (:func:`analysis.events.collapse_events`), the
boundary fit on per-cell counts, the collapse-time fit on per-run intervals (both with the seeds as the
independent units), the drift exponent of the collapsing runs over their pre-collapse windows — and each
interval is checked against the planted value:

    coverage = share of worlds whose level-L interval contains the truth        (goal at L = 95 %: ≥ 90 %)

per quantity and per kind of world, over the quantities the world defines (NaN truth: not counted). The
same fits at the verdict level (90 %) give the verdict rule's decisiveness: the share of rows that hold,
fail or stay inconclusive, and the share that are wrong (hold although the truth is outside the
tolerance, or fail although it is inside).
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np

from analysis.drift import class_exponent, drift_exponents, window_end
from analysis.events import collapse_events, horizon
from analysis.intervals import COVERAGE_LEVEL, VERDICT_LEVEL
from analysis.planted import KINDS, planted_world
from analysis.store import grid, projections
from analysis.sweep import fit_events
from analysis.verdicts import FAILS, HOLDS, INCONCLUSIVE, PREDICTIONS, verdict

QUANTITIES = ("a", "c_loc", "c_hor", "w", "eta_max", "b", "c", "sigma", "H")
"""Intervals whose coverage is measured (``eta_max`` counts one interval per τ)."""


def fit_world(ds, levels=(COVERAGE_LEVEL, VERDICT_LEVEL), formulation="two_part", seed=0):
    """``{quantity: {level: Interval or [Interval per τ]}}`` of one store, through the analysis path."""
    events = collapse_events(ds)
    taus, etas, steps = grid(ds)
    boundary, survival = fit_events(events, taus, etas, horizon(steps), levels[0], levels[1:], formulation)
    out = {}
    for level in levels:
        b_iv = boundary.at(level) if boundary.levels else {}
        s_iv = survival.at(level) if survival.levels else {}
        for name in ("a", "c_loc", "c_hor", "w"):
            out.setdefault(name, {})[level] = b_iv.get(name, getattr(boundary, name))
        out.setdefault("eta_max", {})[level] = [b_iv.get(f"eta_max[{i}]", boundary.eta_max[i])
                                                for i in range(len(taus))]
        for name in ("b", "c", "sigma"):
            out.setdefault(name, {})[level] = s_iv.get(name, getattr(survival, name))
        for name in ("intercept", "log_eta", "log_tau"):
            out.setdefault(f"incidence_{name}", {})[level] = s_iv.get(f"incidence_{name}", survival.incidence[name])
    proj = projections(ds)
    if proj is not None:
        end = window_end(events.t_low, taus[:, None, None], steps)
        drift = drift_exponents(proj, 0, end, seed=seed, runs=events.collapsed)
        members = events.collapsed & (drift.label != "undetermined")
        for level in levels:
            out.setdefault("H", {})[level] = class_exponent(drift.H, members, level=level)
    return out


def _truths(truth, formulation):
    values = {name: truth.get(name, math.nan) for name in ("a", "c_loc", "c_hor", "w", "b", "c", "sigma", "H")}
    values["eta_max"] = truth["eta_max"]
    if formulation == "cure" and truth.get("incidence") is not None:
        for name, value in zip(("intercept", "log_eta", "log_tau"), truth["incidence"]):
            values[f"incidence_{name}"] = value
    return values


@dataclass
class CoverageRow:
    """Coverage of one quantity on one kind of world."""

    kind: str
    quantity: str
    n: int = 0
    """Intervals checked (worlds × τ for η_max) with a finite truth."""
    covered: int = 0
    estimable: int = 0
    """Intervals with both ends estimable (the others count as not covering)."""
    one_sided: int = 0
    """Intervals with an infinite end."""
    errors: list = field(default_factory=list)
    """Estimate − truth (log ratio for the constants) where the estimate is finite."""
    verdicts: dict = field(default_factory=lambda: {HOLDS: 0, FAILS: 0, INCONCLUSIVE: 0, "wrong": 0})

    @property
    def rate(self):
        return self.covered / self.n if self.n else math.nan

    @property
    def bias(self):
        return float(np.median(self.errors)) if self.errors else math.nan


@dataclass
class CoverageTable:
    """Coverage rows with the settings they were measured at."""

    rows: list
    level: float
    n_worlds: int
    grid: dict
    formulation: str
    seconds: float

    def row(self, kind, quantity):
        return next(r for r in self.rows if r.kind == kind and r.quantity == quantity)

    def format(self):
        """A markdown table: coverage per quantity (columns) and kind (rows), then the verdict shares."""
        quantities = [q for q in dict.fromkeys(r.quantity for r in self.rows)]
        kinds = list(dict.fromkeys(r.kind for r in self.rows))
        head = (f"Coverage of {self.level:.0%} intervals ({self.n_worlds} worlds per kind, grid "
                f"{self.grid}, t* formulation {self.formulation}, {self.seconds:.0f} s):\n\n")
        lines = ["| world | " + " | ".join(quantities) + " |", "|---" * (len(quantities) + 1) + "|"]
        for kind in kinds:
            cells = []
            for q in quantities:
                r = self.row(kind, q)
                cells.append(f"{r.rate:.0%} ({r.n})" if r.n else "–")
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
        verdict_lines = ["", "Verdicts at 90 % (holds / fails / inconclusive / wrong, share of worlds):", "",
                         "| world | " + " | ".join(p.key for p in PREDICTIONS) + " |",
                         "|---" * (len(PREDICTIONS) + 1) + "|"]
        for kind in kinds:
            cells = []
            for p in PREDICTIONS:
                r = self.row(kind, p.key)
                total = sum(r.verdicts[k] for k in (HOLDS, FAILS, INCONCLUSIVE))
                cells.append("/".join(f"{r.verdicts[k] / total:.0%}" for k in (HOLDS, FAILS, INCONCLUSIVE, "wrong"))
                             if total else "–")
            verdict_lines.append(f"| {kind} | " + " | ".join(cells) + " |")
        return head + "\n".join(lines + verdict_lines) + "\n"

    def as_dict(self):
        return {"level": self.level, "n_worlds": self.n_worlds, "grid": self.grid, "formulation": self.formulation,
                "seconds": self.seconds,
                "rows": [{"kind": r.kind, "quantity": r.quantity, "n": r.n, "covered": r.covered, "rate": r.rate,
                          "estimable": r.estimable, "one_sided": r.one_sided, "bias": r.bias,
                          "verdicts": dict(r.verdicts)} for r in self.rows]}


LOG_SCALE = ("c_loc", "c_hor", "w", "eta_max", "sigma")
"""Positive quantities whose error is a log ratio."""


def _error(quantity, interval, truth):
    """Estimate − truth (log ratio on :data:`LOG_SCALE`); None where that is not finite: an estimate at ±inf, or
    a positive quantity estimated at 0 (its optimum at the edge, e.g. w → 0 on separated data)."""
    value = interval.value
    if quantity in LOG_SCALE:
        error = math.log(value / truth) if value > 0 else math.nan
    else:
        error = value - truth
    return error if math.isfinite(error) else None


def coverage(kinds=KINDS, n_worlds=20, seed=0, grid=None, level=COVERAGE_LEVEL, formulation="two_part",
             quantities=QUANTITIES):
    """:class:`CoverageTable` of the ``level`` intervals over ``n_worlds`` planted worlds of each kind.

    ``grid``: keyword arguments of :func:`analysis.planted.planted_world` (taus, etas, seeds, steps); world i
    of a kind is ``planted_world(kind, seed + i, fit_grid=True, **grid)`` (its boundary and t* moved onto the
    grid), so tables are reproducible.
    """
    grid = dict(grid or {})
    start = time.perf_counter()
    predictions = {p.key: p for p in PREDICTIONS}
    if formulation == "cure":
        quantities = tuple(quantities) + ("incidence_intercept", "incidence_log_eta", "incidence_log_tau")
    rows = {(kind, q): CoverageRow(kind, q) for kind in kinds for q in quantities}
    for kind in kinds:
        for i in range(n_worlds):
            ds, truth = planted_world(kind, seed + i, fit_grid=True, **grid)
            fitted = fit_world(ds, (level, VERDICT_LEVEL), formulation, seed=seed + i)
            truths = _truths(truth, formulation)
            for q in quantities:
                if q not in fitted or q not in truths:
                    continue
                row = rows[(kind, q)]
                intervals = fitted[q][level] if q == "eta_max" else [fitted[q][level]]
                values = truths[q] if q == "eta_max" else [truths[q]]
                for iv, true in zip(intervals, values):
                    if not math.isfinite(true):
                        continue
                    row.n += 1
                    row.covered += iv.covers(true)
                    row.estimable += iv.estimable
                    row.one_sided += iv.estimable and (math.isinf(iv.low) or math.isinf(iv.high))
                    err = _error(q, iv, true)
                    if err is not None:
                        row.errors.append(err)
                if q in predictions and math.isfinite(truths[q]):
                    p = predictions[q]
                    decision = verdict(p, fitted[q][VERDICT_LEVEL])
                    row.verdicts[decision] += 1
                    inside = abs(truths[q] - p.theory) <= p.tolerance
                    row.verdicts["wrong"] += (decision == HOLDS and not inside) or (decision == FAILS and inside)
    shown = {k: v for k, v in grid.items()} or {"taus": "default", "etas": "default"}
    return CoverageTable(list(rows.values()), level, n_worlds, shown, formulation, time.perf_counter() - start)
