"""The paper's figures, drawn from a store and its :class:`analysis.SweepAnalysis`; nothing is computed here.

Each function returns a matplotlib Figure; the seaborn theme is set per figure
(``theme()``), never globally. Every prediction is drawn against the data it is
judged on, the interval type is named on the panel, and legends sit inside the canvas.
"""

import contextlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from analysis.advisor import MEASURED_TOLERANCE  # noqa: E402
from analysis.intervals import fmt_interval  # noqa: E402
from analysis.store import series  # noqa: E402

MAX_POINTS = 400
"""Curves are thinned to at most this many steps (the figures stay light as PDF)."""

STABLE, COLLAPSING = "#1f77b4", "#d62728"


@contextlib.contextmanager
def theme():
    """The seaborn style of every figure, local to one figure."""
    with sns.axes_style("whitegrid"), sns.plotting_context("paper"):
        yield


def _thin(n):
    return np.unique(np.linspace(0, n - 1, min(n, MAX_POINTS)).astype(int))


def note(ax, text, where=(0.02, 0.02), **kwargs):
    """Small text inside the axes (interval types, "not measured")."""
    ax.text(*where, text, transform=ax.transAxes, fontsize=6, va="bottom", ha="left",
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.8", "alpha": 0.85}, **kwargs)


def legend(ax, **kwargs):
    """A legend inside the axes, only when something is labelled."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, framealpha=0.85, **kwargs)


def _empty(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=8)


def reward_curves(ds, an, title):
    """Fig. 1–2: the quality series t* is read from, per seed, on the τ × η grid; × marks t*."""
    quality = an.events.source
    values = series(ds, quality)
    keep = _thin(an.steps.size)
    rows, cols = an.taus.size, an.etas.size
    with theme():
        fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols + 1, 1.3 * rows + 1), sharex=True, sharey=True,
                                 squeeze=False)
        for i, tau in enumerate(an.taus):
            for j, eta in enumerate(an.etas):
                ax = axes[i, j]
                for s in range(values.shape[2]):
                    hit = an.events.collapsed[i, j, s]
                    ax.plot(an.steps[keep], values[i, j, s, keep], lw=0.5, alpha=0.5,
                            color=COLLAPSING if hit else STABLE)
                    if hit:
                        ax.plot(an.events.t_star[i, j, s], 0, "kx", ms=3)
                if i == 0:
                    ax.set_title(f"η={eta:.3g}", fontsize=7)
                if j == 0:
                    ax.set_ylabel(f"τ={tau:g}", fontsize=7)
        fig.supxlabel("learner step t")
        fig.suptitle(f"{title}: {quality} per seed (red: collapsed, × = t*, middle of its censoring interval)")
        fig.tight_layout()
    return fig


def phase_diagram(ds, an, title):
    """Collapse probability over (τ, η); measured η_max; the two-branch fit with its per-τ intervals and
    branches; the single power law; the rule predicted from the pilot runs' constants."""
    tau_grid, eta_grid = np.meshgrid(an.taus, an.etas, indexing="ij")
    taus = np.geomspace(an.taus.min(), an.taus.max(), 60)
    fit = an.boundary
    with theme():
        fig, ax = plt.subplots(figsize=(6, 4.6))
        points = ax.scatter(tau_grid.ravel(), eta_grid.ravel(), c=an.events.probability.ravel(), cmap="RdYlBu_r",
                            vmin=0, vmax=1, s=110, marker="s", edgecolors="k", linewidths=0.3)
        fig.colorbar(points, ax=ax, label="collapse probability over seeds")
        ax.plot(an.taus, an.eta_max_grid, "ko", mfc="none", ms=11,
                label=f"measured η_max (largest grid η, ≤ {MEASURED_TOLERANCE:.0%} collapse)")
        if fit.reason:
            note(ax, f"no boundary fit: {fit.reason}", where=(0.02, 0.9))
        else:
            two, single = an.boundary_curve(taus)
            ax.plot(taus, two, "k-", lw=1.5, label=f"two-branch fit min(c_loc τ^−a, c_hor/T), a = {fit.a.value:.2f}")
            ax.plot(taus, single, "k:", lw=1, label=f"single power law, a = {fit.a_single.value:.2f}")
            centre = np.array([iv.value for iv in fit.eta_max])
            low = np.array([iv.low for iv in fit.eta_max])
            high = np.array([iv.high for iv in fit.eta_max])
            finite = np.isfinite(centre) & np.isfinite(low) & np.isfinite(high)
            ax.errorbar(an.taus[finite] * 1.04, centre[finite], yerr=[centre[finite] - low[finite],
                        high[finite] - centre[finite]], fmt="none", ecolor="k", capsize=2, lw=0.8,
                        label="fitted η_max(τ), 90 % profile-likelihood interval")
            for tau, branch in an.binding().items():
                ax.annotate(branch, (tau, 1.0), xycoords=("data", "axes fraction"), xytext=(0, -10),
                            textcoords="offset points", ha="center", fontsize=6)
            note(ax, fit.preference, where=(0.02, 0.02))
        predicted = an.estimates.get("c_loc_pred")
        if predicted is not None and np.isfinite(predicted.value):
            ax.plot(taus, predicted.value / taus, "g--", lw=1, label="c_loc/τ predicted as r_clip/U (pilot runs)")
        ax.set(xscale="log", yscale="log", xlabel="staleness τ", ylabel="learning rate η",
               title=f"{title}: phase diagram (branch binding per τ on top)")
        ax.set_ylim(an.etas.min() / 2, an.etas.max() * 2)
        legend(ax, loc="upper right")
        fig.tight_layout()
    return fig


def survival(ds, an, title):
    """t* as survival with a cure fraction: incidence (collapse within T) and latency (t* given collapse)."""
    ev, fit = an.events, an.survival
    colors = plt.cm.viridis(np.linspace(0, 0.9, an.taus.size))
    with theme():
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
        for i, tau in enumerate(an.taus):
            left.plot(an.etas, ev.probability[i], "o", color=colors[i], ms=4, label=f"τ = {tau:g} (measured)")
            curve = an.incidence_curve(tau)
            if curve is not None:
                left.plot(*curve, "-", color=colors[i], lw=1)
            hit = ev.collapsed[i]
            if hit.any():
                eta = np.broadcast_to(an.etas[:, None], hit.shape)[hit] * np.exp(0.03 * (i - an.taus.size / 2))
                low, high = ev.t_low[i][hit], ev.t_high[i][hit]
                right.errorbar(eta, (low + high) / 2, yerr=[(high - low) / 2, (high - low) / 2], fmt="o", ms=2.5,
                               color=colors[i], lw=0.6, alpha=0.7, label=f"τ = {tau:g}")
            curve = an.latency_curve(tau)
            if curve is not None:
                right.plot(*curve, "-", color=colors[i], lw=1)
        left.set(xscale="log", xlabel="learning rate η", ylabel="P(collapse within T)", ylim=(-0.05, 1.05),
                 title="incidence")
        note(left, "lines: fitted incidence σ(γ0 + γ_η log η + γ_τ log τ)")
        right.set(xscale="log", yscale="log", xlabel="learning rate η", ylabel="t* (censoring interval)",
                  title="latency t* ∝ η^−b τ^c given collapse")
        hor = an.estimates.get("c_hor")
        if hor is not None and np.isfinite(hor.value) and ev.collapsed.any():
            right.plot(an.etas, hor.value / an.etas, "k--", lw=1, label="Theorem 2: t* = c_hor/η (boundary fit)")
        note(right, f"b = {fmt_interval(fit.b)}, c = {fmt_interval(fit.c)} (90 % profile likelihood; theory 1, 0)\n"
                    f"bars: t* censoring interval (from {ev.source}); lines: fitted median t*")
        if not ev.collapsed.any():
            _empty(right, "no run collapsed")
        legend(left, loc="upper left")
        legend(right, loc="upper right")
        fig.suptitle(f"{title}: collapse time as survival")
        fig.tight_layout()
    return fig


def drift_exponent(ds, an, title):
    """Lag-MSD ⟨‖θ_t+Δ − θ_t‖²⟩ against Δ for collapsing (before t*, final sync cycle excluded) and stable
    runs, beside the same statistic on shuffled increments; reference slopes 2H = 1 and 2."""
    with theme():
        fig, ax = plt.subplots(figsize=(5.8, 4.4))
        drawn = False
        for name, color in (("collapsing", COLLAPSING), ("stable", STABLE)):
            curve = an.msd_curves.get(name)
            if curve is None:
                continue
            lags, msd, shuffled = curve
            h = an.estimates[f"H_{name}"]
            labels = ", ".join(f"{n} {k}" for k, n in an.drift_labels[name].items() if n)
            ax.plot(lags, msd, "o-", color=color, ms=3,
                    label=f"{name}: H = {fmt_interval(h)} ({labels})")
            ax.plot(lags, shuffled, "x--", color=color, ms=3, lw=0.8, label=f"{name}, shuffled increments")
            drawn = True
        if drawn:
            ax.set(xscale="log", yscale="log")
            lags = next(c for c in an.msd_curves.values() if c is not None)[0]
            ax.plot(lags, lags / lags[0], "k:", lw=0.8, label="slope 1 (H = ½, diffusive)")
            ax.plot(lags, (lags / lags[0]) ** 2, "k-.", lw=0.8, label="slope 2 (H = 1, ballistic)")
            note(ax, "H: 90 % t interval over seeds; curves: geometric mean of M(Δ)/M(1) over runs")
        else:
            _empty(ax, "theta_proj not in store: drift exponent not measured")
        ax.set(xlabel="lag Δ (learner steps)", ylabel="lag-MSD M(Δ)/M(1) of P(θ_t − θ_0)",
               title=f"{title}: drift exponent")
        legend(ax, loc="upper left")
        fig.tight_layout()
    return fig


def dynamics(ds, an, title):
    """Fig. 3: both cosines and the drift, medians of stable runs and of collapsing runs before t*."""
    panels = (("raw_grad_cos", "cos(ĝ_t, ĝ_t−1) surrogate gradients"), ("grad_cos", "cos(u_t, u_t−1) applied updates"),
              ("drift", "‖θ_t − θ_0‖"))
    with theme():
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        for ax, (name, ylabel) in zip(axes, panels):
            stable, collapsing = an.curves.get(name, (None, None))
            if stable is None and collapsing is None:
                _empty(ax, f"{name} not in store")
            for curve, color, label in ((stable, STABLE, "stable runs"), (collapsing, COLLAPSING,
                                                                          "collapsing runs, before t*")):
                if curve is not None:
                    ax.plot(an.steps, curve, color=color, lw=1, label=f"{label} (median)")
            ax.set(xlabel="learner step t", ylabel=ylabel)
            legend(ax, loc="best")
        for key, ax in (("alignment_raw", axes[0]), ("alignment_applied", axes[1])):
            iv = an.estimates.get(key)
            if iv is not None and np.isfinite(iv.value):
                note(ax, f"cos before t* − stable: {fmt_interval((-iv.value, -iv.high, -iv.low))} "
                         f"(90 % bootstrap over seeds)", where=(0.02, 0.02))
        if "drift" in an.curves:
            axes[2].set(xscale="symlog", yscale="log")
        fig.suptitle(f"{title}: alignment and drift")
        fig.tight_layout()
    return fig


def bias(ds, an, title):
    """‖b_t‖ against τ_t·η (τ_t the measured lag at the probe), the fitted slope, the held-out Theorem 1
    line C_b U τ_t η and both splits' bounds; on LLM stores ‖b‖² with its per-probe 90 % interval."""
    t1 = an.theorem1
    p = t1.points
    with theme():
        fig, ax = plt.subplots(figsize=(6, 4.6))
        if not p:
            _empty(ax, "no bias probes in store: Theorem 1 not measured")
            ax.set(title=f"{title}: staleness bias")
            fig.tight_layout()
            return fig
        x, y, stable = p["x"], p["y"], p["stable"]
        squared = "lo" in p
        if squared:
            ax.errorbar(x[stable], y[stable], yerr=[y[stable] - p["lo"][stable], p["hi"][stable] - y[stable]],
                        fmt="o", ms=3, lw=0.6, color=STABLE, label="‖b‖² estimate, stable cells (90 % interval)")
            ax.plot(x[~stable], y[~stable], ".", color=COLLAPSING, ms=3, alpha=0.5, label="collapsing cells")
        else:
            ax.plot(x[stable], y[stable], ".", color=STABLE, ms=3, alpha=0.5, label="‖b_t‖ exact, stable cells")
            ax.plot(x[~stable], y[~stable], ".", color=COLLAPSING, ms=3, alpha=0.4, label="collapsing cells")
        # the axes follow the probes: a vacuous bound is named in a note, never drawn off the scale
        data = np.concatenate([y, p["hi"]]) if squared else y
        data = data[np.isfinite(data) & ((data > 0) | squared)]
        top = 3 * data.max() if data.size else 1.0
        for name, marker, label, split in (("bound", "_", "Lemma 1 bound", "lemma1"),
                                           ("bound_alt", "1", "other split (17b)", "alt")):
            if name not in p:
                continue
            inside = p[name] <= top
            if inside.any():
                ax.plot(p["bins"][inside], p[name][inside], "k" + marker, ms=8, label=f"{label} (median per τ_t η)")
            if not inside.all():
                factor = t1.vacuity.get(split, {}).get("median_factor", np.nan)
                note(ax, f"{label} above the axes at {int((~inside).sum())} of {inside.size} τ_t η "
                         f"(median bound/‖b‖ = {factor:.2g})", where=(0.02, 0.9 if split == "lemma1" else 0.82))
        if p.get("fit") is not None:
            ax.plot(*p["fit"], "k-", lw=1.2, label=f"fit: slope s = {fmt_interval(t1.slope)} (90 % bootstrap)")
        ax.set(xscale="log", yscale="symlog" if squared else "log",
               xlabel="τ_t·η (τ_t: measured lag at the probe)",
               ylabel="‖b_t‖²" if squared else "‖b_t‖", title=f"{title}: staleness bias (Theorem 1: s = 1)")
        bottom, _ = ax.get_ylim()
        ax.set_ylim(bottom, top)
        line = p.get("theorem1")
        if line is not None:
            line = (line[0], line[1] ** 2) if squared else line
            shown = line[1] <= top * 10
            if shown.any():
                ax.plot(line[0][shown], line[1][shown], "k--", lw=1, label="held-out Theorem 1 line C_b U τ_t η")
            else:
                note(ax, f"held-out Theorem 1 line C_b U τ_t η lies above the axes (≥ {line[1].min():.2g})",
                     where=(0.02, 0.74))
            ax.set_ylim(bottom, top)
        legend(ax, loc="lower right")
        fig.tight_layout()
    return fig


def staleness(ds, an, title):
    """Histogram of the measured lag τ_t of every consumed batch, per τ (issue 12)."""
    with theme():
        fig, ax = plt.subplots(figsize=(5.8, 3.8))
        if not an.lags:
            _empty(ax, "staleness not in store (t mod τ assumed)")
        width = 0.8 / max(len(an.lags), 1)
        for k, (tau, (values, counts)) in enumerate(an.lags.items()):
            ax.bar(values + (k - len(an.lags) / 2) * width, counts / counts.sum(), width=width, label=f"τ = {tau:g}")
        ax.set(xlabel="measured lag τ_t (learner version − batch version)", ylabel="share of steps",
               title=f"{title}: measured staleness")
        legend(ax, loc="upper right")
        fig.tight_layout()
    return fig


TABLE2_COLUMNS = (("tau", "τ", "{:g}"), ("eta", "η", "{:.3g}"), ("p_collapse", "P(collapse)", "{:.2f}"),
                  ("k_star", "k*", "{:g}"), ("t_star", "t*", "{:g}"), ("eta_t_star", "η·t*", "{:.3g}"),
                  ("k_tau_eta", "k*·τ·η", "{:.3g}"))
"""Table 2 columns: key, header, format (medians over the cell's collapsed seeds)."""


def table2_cells(rows):
    return [[fmt.format(row[key]) for key, _, fmt in TABLE2_COLUMNS] for row in rows]


def table2_markdown(rows, title):
    """Table 2 as markdown: one line per collapsing cell."""
    headers = [header for _, header, _ in TABLE2_COLUMNS]
    lines = [f"### Table 2 — {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table2_cells(rows)]
    if not rows:
        lines.append("| " + " | ".join(["—"] * len(headers)) + " |")
    return "\n".join(lines) + "\n"


def table2_figure(ds, an, title):
    """Table 2 rendered as a figure."""
    cells = table2_cells(an.table2()) or [["—"] * len(TABLE2_COLUMNS)]
    with theme():
        fig, ax = plt.subplots(figsize=(7, 0.8 + 0.25 * len(cells)))
        ax.axis("off")
        ax.table(cellText=cells, colLabels=[h for _, h, _ in TABLE2_COLUMNS], loc="center")
        ax.set_title(f"Table 2 — {title}: collapsing cells (medians over collapsed seeds; t* mid-interval)")
        fig.tight_layout()
    return fig


def baselines(ds, an, title, outcomes):
    """Final quality (val_reward, else the training reward; ± s.e. over seeds) and collapse rate against τ for each
    learning-rate policy."""
    with theme():
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.8, 5.8), sharex=True)
        for name, rows in outcomes.items():
            if not rows:
                continue
            tau = [r["tau"] for r in rows]
            top.errorbar(tau, [r["final"] for r in rows], yerr=[r["final_se"] for r in rows],
                         marker="o", ms=4, capsize=2, label=name)
            bottom.plot(tau, [r["collapse_rate"] for r in rows], marker="o", ms=4, label=name)
        quality = {r["quality"] for rows in outcomes.values() for r in rows}
        top.set(ylabel="final val_reward" if quality == {"val_reward"} else "final training reward",
                title=f"{title}: learning-rate policies on the (τ, η) grid")
        note(top, "bars: ± 1 s.e. over seeds", where=(0.02, 0.02))
        legend(top, loc="upper right")
        bottom.set(xscale="log", xlabel="staleness τ", ylabel="collapse rate", ylim=(-0.05, 1.05))
        bottom.set_xticks(an.taus, [f"{t:g}" for t in an.taus], minor=False)
        bottom.minorticks_off()
        if "ESS-scaled" not in outcomes:
            note(bottom, "ESS-scaled η·min(1, ESS/ESS₀): no ESS sweep given", where=(0.02, 0.85))
        fig.tight_layout()
    return fig


FIGURES = {"reward": reward_curves, "phase": phase_diagram, "survival": survival, "drift": drift_exponent,
           "table2": table2_figure, "dynamics": dynamics, "bias": bias, "staleness": staleness}
"""Figure name → drawing function ``f(ds, analysis, title) -> Figure``."""
