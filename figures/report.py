"""Every figure and ``REPORT.md`` from a set of named results stores; the numbers come from :mod:`analysis`."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from tqdm import tqdm

from analysis import advisor, events, theorem1
from analysis.baselines import policy_outcomes
from analysis.intervals import fmt, fmt_interval
from analysis.store import load_sweep
from analysis.sweep import ADVISORS, INTERVALS, JUDGED_ON, ROWS, analyze, grid_coverage
from analysis.verdicts import RULE
from figures import plots

FIGURES = {**plots.FIGURES, "baselines": plots.baselines}
"""Figure name → drawing function ``f(ds, analysis, title) -> Figure`` (baselines also take the outcomes)."""

NAMES = (*FIGURES, "report")
"""What ``only`` may name: one figure kind, or ``report`` for REPORT.md alone."""


def definitions():
    """The definitions REPORT.md states before any number (docs/theory.md §5–6, docs/statistics.md)."""
    return [
        "## Definitions", "",
        f"* **Collapse.** Where a store records `success` (exact expected success of θ_t, synthetic), a step is "
        f"collapsed when success ≤ min({events.SUCCESS_FLOOR:g}, {events.SUCCESS_FRACTION:g}·success_0); "
        f"elsewhere when the training reward of the batch it consumes is 0. A non-finite value is a divergence: "
        f"collapsed from that step on, never censored. t* is the first step of the final collapsed tail.",
        f"* **Censoring window.** A finite collapsed tail shorter than W(τ) = max(5, ⌈T/20⌉, "
        f"{events.MIN_BATCHES}τ) steps is censored (no collapse): the window spans at least "
        f"{events.MIN_BATCHES} rollout batches at every τ. Runs without a collapse are right-censored at the latest t* "
        "such a tail can reveal: T − W(τ) from `success`, the last sync step at or before it from `reward`. Times "
        "are in the store's `step` coordinate (T: the step after the last one logged).",
        "* **Interval censoring.** From `reward`, the batch consumed at step t came from version t − τ_t (τ_t the "
        "store's measured `staleness`, else t mod τ): t* lies in [v(t_z − 1) + 1, v(t_z)] for a zero tail "
        "starting at t_z (a sync cycle wide under whole-batch reuse). From `success` logged every step, t* is exact; "
        "a log written every K steps gives the interval between two entries.",
        f"* **Census.** absorption: ‖θ_t* − θ_0‖ ≤ {events.ABSORB_FRACTION:g}× its largest earlier value; else "
        f"kick: one update in the last max(5, τ) steps before t* exceeds {events.KICK_RATIO:g}× the median earlier "
        "update; else drift. unclassified: drift (or update_norm) not measured, collapsed at step 0, or fewer than "
        "5 updates before the kick window (too early to tell a kick from a drift).",
        "* **Boundary.** P(collapse within T | τ, η) = σ((log η − log η_max(τ))/w) with "
        "log η_max(τ) = min(log c_loc − a log τ, log c_hor − log T), fitted by binomial maximum likelihood on "
        "per-cell collapse counts; a comes from the τ where the local branch binds. The branch per τ is the one a "
        "likelihood-ratio test picks (either: not distinguishable). Compared with one power law by AIC. "
        f"Measured η_max(τ): the largest grid η whose collapse fraction is ≤ {advisor.MEASURED_TOLERANCE:g}.",
        "* **Collapse time.** Incidence (collapse within T, logistic in log η, log τ) and latency "
        "(log t* normal around μ0 − b log η + c log τ, interval- and right-censored) are fitted apart; "
        "b and c come from the latency (theory: 1 and 0).",
        "* **Theorem 2 mechanism.** ‖θ_t* − θ_0‖ (drift at the first step known collapsed) regressed on log η "
        "and log τ over collapsing runs: both slopes 0.",
        "* **Drift exponent.** Lag-MSD ⟨‖P(θ_t+Δ − θ_t)‖²⟩ ∝ Δ^{2H} from `theta_proj`, over the pre-collapse "
        "window without the final sync cycle (stable runs: the whole run), against shuffled increments; "
        "converging runs are labelled converging.",
        "* **Alignment.** Mean cosine of consecutive surrogate gradients (`raw_grad_cos`) and of applied updates "
        "(`grad_cos`) over the last 5 sync cycles before t*, minus the same τ's stable runs at those steps; "
        "the paper predicts ≥ 0. Rows store the negated difference so the bound reads ≤ 0.",
        "* **Theorem 1.** Slope of log ‖b_t‖ on log(τ_t η) over stable cells (τ_t: measured lag at the probe; "
        f"probes whose exact ‖b_t‖ is below float64 resolution, {theorem1.BIAS_RESOLUTION:g}·G_on, are counted "
        "apart and left out: there it is rounding, not staleness; "
        "LLM stores: weighted fit of ‖b‖² = A(τ_t η)^{2s} on the unfloored estimates); held-out: C_b and U "
        "are sups over the stable runs of even seed index, the bound checked on the odd ones; vacuity factor: "
        "median of bound ÷ ‖b_t‖ for Lemma 1 (`bias_bound`) and the other split (17b) (`bias_bound_alt`).",
        f"* **Rule from constants.** Pilot runs: every run at the smallest grid η. U: median over them of the "
        f"largest ‖u_t‖ (`const_U` where recorded); r_clip: `const_r_clip`, else the stale drift where "
        f"`clip_frac` first exceeds {theorem1.CLIP_THRESHOLD:g}; R: median drift at collapse. Predicted "
        "c_loc = r_clip/U (32) and c_hor = R/U (34) against the boundary fit's, as log₂(predicted/measured).",
        f"* **Advisor.** For each τ, the boundary is fitted on the other τ, with a fitted and with a = 1 as the "
        f"rule states it; an advisor takes η_max(τ) from one fit (or the smaller of both) and moves it down to "
        f"where that fit puts P(collapse) at p: η_max(τ)·exp(w·logit p). The advisor used ({advisor.ADVISOR.name}) "
        f"was chosen by safety and efficiency on planted worlds (docs/statistics.md §8). Safety: collapse rate at "
        f"the largest grid η ≤ the advice. Efficiency: advice ÷ measured η_max(τ). Goal: no collapse, efficiency "
        f"≥ {advisor.EFFICIENCY_GOAL:g}.",
        "* **Seeds needed.** Seeds per cell that would make a row decisive at the spread observed "
        "(interval half-width shrinking as 1/√seeds).", "",
    ]


def _verdict_rows(analyses):
    lines = ["## Verdicts", "", f"**Rule.** {RULE}", "",
             "| substrate | prediction | theory | estimate [90 % interval] | interval | tolerance | verdict "
             "| seeds needed |", "|---|---|---|---|---|---|---|---|"]
    for name, an in analyses.items():
        verdicts, needed = an.verdicts(), an.seeds_needed()
        for row in ROWS:
            key = JUDGED_ON.get(row.key, row.key)
            relation = "≤ " if row.bound else ""
            lines.append(f"| {name} | {row.statement} | {relation}{row.theory:g} | {fmt_interval(an.estimates[key])} "
                         f"| {INTERVALS.get(row.key, 'bootstrap over seeds')} | {row.tolerance:g} "
                         f"| **{verdicts[row.key]}** | {_seeds(needed[row.key])} |")
    return lines + [""]


def _seeds(n):
    """Seeds needed as a count: — when it cannot be said, never when no number decides the row."""
    return "—" if n is None else "never" if n == float("inf") else str(int(n))


def _boundary_rows(analyses):
    lines = ["## Boundary and census", "",
             "| substrate | T | seeds | t* from | c_loc | c_hor | branch per τ | model | drift | kick | absorption "
             "| unclassified | collapsed runs |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, an in analyses.items():
        census = an.events.census()
        branch = ", ".join(f"{t:g}: {b}" for t, b in an.binding().items())
        model = an.boundary.reason or an.boundary.preferred
        lines.append(f"| {name} | {an.horizon:g} | {an.n_seeds} | {an.events.source} "
                     f"| {fmt_interval(an.estimates['c_loc'])} | {fmt_interval(an.estimates['c_hor'])} | {branch} "
                     f"| {model} "
                     f"| {census['drift']} | {census['kick']} | {census['absorption']} | {census['unclassified']} "
                     f"| {int(an.events.collapsed.sum())}/{an.events.collapsed.size} |")
    notes = [f"* {name}: {note}" for name, an in analyses.items() for note in an.boundary.notes]
    return lines + ([""] + notes if notes else []) + [""]


def _theorem1_rows(analyses):
    lines = ["## Theorem 1 and the rule from constants", "",
             "| substrate | slope s [90 %] | probes | held-out C_b | U | ‖b‖ ≤ C_b‖θ−β‖ respected | median slack "
             "| Lemma 1 vacuity | (17b) vacuity | Lemma 1 C_b | (17b) C_b | c_loc pred / meas | c_hor pred / meas |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, an in analyses.items():
        t1, est = an.theorem1, an.estimates
        held = t1.heldout.get("lemma1", {})
        vac = {k: t1.vacuity.get(k, {}) for k in ("lemma1", "alt")}
        lines.append(
            f"| {name} | {fmt_interval(t1.slope)} | {t1.probes}"
            f"{f' (+{t1.unresolved} below resolution)' if t1.unresolved else ''} | {fmt(held.get('C_b'))} "
            f"| {fmt(t1.heldout.get('theorem1', {}).get('U'))} | {fmt(held.get('respected'))} "
            f"| {fmt(held.get('median_slack'))} | {fmt(vac['lemma1'].get('median_factor'))} "
            f"| {fmt(vac['alt'].get('median_factor'))} | {fmt(vac['lemma1'].get('C_b'))} "
            f"| {fmt(vac['alt'].get('C_b'))} | {fmt(est['c_loc_pred'].value)} / {fmt(est['c_loc'].value)} "
            f"| {fmt(est['c_hor_pred'].value)} / {fmt(est['c_hor'].value)} |")
    return lines + [""]


def _advisor_rows(analyses):
    lines = ["## Advisor on held-out τ", "", f"Advisor: {advisor.ADVISOR.name}.", "",
             "| substrate | τ | advised η | grid η used | collapse rate (safety) | measured η_max | efficiency "
             "| binds |", "|---|---|---|---|---|---|---|---|"]
    for name, an in analyses.items():
        for r in an.advisor:
            lines.append(f"| {name} | {r['tau']:g} | {fmt(r['eta_advised'])} | {fmt(r['eta'])} "
                         f"| {fmt(r['collapse_rate'])} | {fmt(r['eta_max_measured'])} | {fmt(r['efficiency'])} "
                         f"| {r['binding'] or r['reason'] or '—'} |")
        s = advisor.summarise(an.advisor)
        lines.append(f"| {name} | all | | | worst {fmt(s['safety'])} | | worst {fmt(s['efficiency'])} "
                     f"| goal {'met' if s['goal_met'] else 'not met'} |")
    lines += ["", "The candidate advisors on the same held-out τ (docs/statistics.md §8 compares them on planted "
              "worlds):", "", "| substrate | advisor | held-out τ with a collapse | worst collapse rate "
              "| median efficiency | worst efficiency | goal |", "|---|---|---|---|---|---|---|"]
    for name, an in analyses.items():
        if all(r["reason"] for r in an.advisor):
            lines.append(f"| {name} | every advisor | no held-out fit: {an.advisor[0]['reason']} | | | | |")
            continue
        for candidate in ADVISORS:
            cells = [r["advisors"][candidate.name] for r in an.advisor]
            rates = [c["collapse_rate"] for c in cells if np.isfinite(c["collapse_rate"])]
            eff = [c["efficiency"] for c in cells if np.isfinite(c["efficiency"])]
            s = advisor.summarise(an.advisor, candidate.name)
            lines.append(f"| {name} | {candidate.name} | {sum(r > 0 for r in rates)}/{len(rates)} "
                         f"| {fmt(s['safety'])} | {fmt(np.median(eff) if eff else None)} "
                         f"| {fmt(s['efficiency'])} | {'met' if s['goal_met'] else 'not met'} |")
    return lines + [""]


def _baseline_rows(outcomes):
    lines = ["## Learning-rate policies on the grid", "",
             "| substrate | policy | η per τ (grid) | final quality | final quality per τ | collapse rate per τ |",
             "|---|---|---|---|---|---|"]
    for name, policies in outcomes.items():
        for policy, rows in policies.items():
            lines.append(f"| {name} | {policy} | {', '.join(fmt(r['eta']) for r in rows)} | {_quality(rows)} "
                         f"| {', '.join(fmt(r['final']) for r in rows)} "
                         f"| {', '.join(format(r['collapse_rate'], '.2f') for r in rows)} |")
    return lines + [""]


def _quality(rows):
    """What the final-quality column shows: val_reward, or the training reward of a store without it."""
    names = {r["quality"] for r in rows}
    return "val_reward" if names == {"val_reward"} else "training reward (no val_reward in store)" if names else "—"


def _coverage_rows(tables):
    if not tables:
        return []
    lines = ["## Coverage of the intervals at this report's settings", "",
             "Planted worlds with a known truth (analysis/planted.py) on each substrate's own grid (τ, η, seeds, T), "
             "through the same path as the stores: the share of 95 % intervals that cover the truth (goal ≥ 90 %; "
             "few worlds here: `python benchmarks/bench_coverage.py` measures it over ≥ 200).", ""]
    for name, table in tables.items():
        lines += [f"### {name}", "", table]
    return lines


def report_markdown(analyses, outcomes, coverage=None):
    """REPORT.md: definitions, the verdict table, boundary and census, Theorem 1, advisor, baselines, coverage.

    ``coverage``: ``{substrate: markdown}`` (:func:`analysis.sweep.grid_coverage`), or None.
    """
    lines = ["# Verdicts on the paper's predictions", ""] + definitions() + _verdict_rows(analyses)
    lines += _boundary_rows(analyses) + _theorem1_rows(analyses) + _advisor_rows(analyses)
    lines += _baseline_rows(outcomes) + _coverage_rows(coverage)
    missing = [f"* {name}: {', '.join(an.not_measured)}" for name, an in analyses.items() if an.not_measured]
    if missing:
        lines += ["## Not measured", ""] + missing + [""]
    return "\n".join(lines)


def _save(fig, out_dir, stem):
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths


def render_all(stores, out_dir, only=None, n_boot=200, ess_stores=None, progress=True, coverage=None):
    """Draw every figure of every store (``{substrate name: store path}``) and REPORT.md into ``out_dir``.

    Files: ``{name}_{figure}.png|.pdf`` for each figure of :data:`FIGURES`,
    ``{name}_table2.md`` and ``REPORT.md``; ``only`` restricts to one entry of
    :data:`NAMES`. ``ess_stores`` (``{substrate name: store path}``) adds the
    ESS-scaled baseline; ``coverage`` (``{"worlds": n, "kinds": (...)}``) adds REPORT.md's coverage table at
    each store's grid. Returns the paths written.
    """
    if only is not None and only not in NAMES:
        raise ValueError(f"--only {only!r} is not one of {', '.join(NAMES)}")
    if not stores:
        raise ValueError("no results stores to draw from")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    datasets = {name: load_sweep(path) for name, path in stores.items()}
    ess = {name: load_sweep(path) for name, path in (ess_stores or {}).items()}
    analyses = {name: analyze(ds, n_boot=n_boot) for name, ds in datasets.items()}
    outcomes = {name: policy_outcomes(datasets[name], an.events, [r["eta_advised"] for r in an.advisor],
                                      ess.get(name)) for name, an in analyses.items()}
    kinds = [k for k in FIGURES if only in (None, k)]
    written = []
    for name, kind in tqdm([(n, k) for n in datasets for k in kinds], desc="figures", unit="fig", leave=False,
                           disable=not progress):
        extra = (outcomes[name],) if kind == "baselines" else ()
        written += _save(FIGURES[kind](datasets[name], analyses[name], name, *extra), out_dir, f"{name}_{kind}")
        if kind == "table2":
            path = out_dir / f"{name}_table2.md"
            path.write_text(plots.table2_markdown(analyses[name].table2(), name))
            written.append(path)
    if only in (None, "report"):
        path = out_dir / "REPORT.md"
        tables = {name: grid_coverage(an, **coverage) for name, an in analyses.items()} if coverage else None
        path.write_text(report_markdown(analyses, outcomes, tables))
        written.append(path)
    return written
