"""The paper's figures as functions of a store and its :class:`figures.analysis.SweepAnalysis`.

Each function returns a matplotlib Figure; the seaborn theme is set per figure
(``theme()``), never globally. Figures read stores only; nothing is recomputed
beyond the analysis.
"""

import contextlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from figures.analysis import series  # noqa: E402
from theory.bounds import theorem1_bound  # noqa: E402
from theory.rule import safe_learning_rate  # noqa: E402

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


def reward_curves(ds, an, title):
    """Fig. 1–2: reward per seed (val_reward mean dashed) on the τ × η grid; × marks t*."""
    reward, val = series(ds, "reward"), series(ds, "val_reward")
    keep = _thin(an.steps.size)
    rows, cols = an.taus.size, an.etas.size
    with theme():
        fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols + 1, 1.3 * rows + 1), sharex=True, sharey=True,
                                 squeeze=False)
        for i, tau in enumerate(an.taus):
            for j, eta in enumerate(an.etas):
                ax = axes[i, j]
                for s in range(reward.shape[2]):
                    t = an.t_star[i, j, s]
                    ax.plot(an.steps[keep], reward[i, j, s, keep], lw=0.6, alpha=0.6,
                            color=COLLAPSING if t >= 0 else STABLE)
                    if t >= 0:
                        ax.plot(an.steps[t], 0, "kx", ms=4)
                if val is not None:
                    with _quiet():
                        val_mean = np.nanmean(val[i, j][:, keep], axis=0)
                    ax.plot(an.steps[keep], val_mean, "k--", lw=0.8)
                if i == 0:
                    ax.set_title(f"η={eta:.3g}", fontsize=7)
                if j == 0:
                    ax.set_ylabel(f"τ={tau:g}", fontsize=7)
        fig.supxlabel("learner step t")
        fig.suptitle(f"{title}: reward (red: collapsed, × = t*; dashed: val_reward)")
        fig.tight_layout()
    return fig


def _boundary_fit(an):
    ok = np.isfinite(an.eta_max) & (an.eta_max < an.etas.max())
    if ok.sum() < 2:
        return None
    slope, intercept = np.polyfit(np.log(an.taus[ok]), np.log(an.eta_max[ok]), 1)
    return lambda tau: np.exp(intercept) * tau ** slope


def phase_diagram(ds, an, title):
    """Collapse probability over (τ, η), measured η_max, fitted η_max ∝ τ^−a and the rule (36)–(38)."""
    tau_grid, eta_grid = np.meshgrid(an.taus, an.etas, indexing="ij")
    taus = np.geomspace(an.taus.min(), an.taus.max(), 50)
    with theme():
        fig, ax = plt.subplots(figsize=(5.5, 4.2))
        points = ax.scatter(tau_grid.ravel(), eta_grid.ravel(), c=an.probability.ravel(), cmap="RdYlBu_r",
                            vmin=0, vmax=1, s=120, marker="s", edgecolors="k", linewidths=0.3)
        fig.colorbar(points, ax=ax, label="collapse probability over seeds")
        ax.plot(an.taus, an.eta_max, "ko", mfc="none", ms=10, label="measured η_max")
        fitted = _boundary_fit(an)
        if fitted is not None:
            a = an.estimates["a"].value
            ax.plot(taus, fitted(taus), "k-", label=f"fit η_max ∝ τ^−{a:.2f}")
        c_loc, c_hor = an.estimates["c_loc"].value, an.estimates["c_hor"].value
        if np.isfinite(c_loc) and np.isfinite(c_hor) and c_loc > 0 and c_hor > 0:
            rule = [safe_learning_rate(t, an.steps.size, c_loc, c_hor).eta_max for t in taus]
            ax.plot(taus, rule, "g--", label="rule min(c_loc/τ, c_hor/T)")
        ax.set(xscale="log", yscale="log", xlabel="staleness τ", ylabel="learning rate η", title=title)
        ax.legend(fontsize=7, loc="best")
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
    rows = an.table2()
    cells = table2_cells(rows) or [["—"] * len(TABLE2_COLUMNS)]
    with theme():
        fig, ax = plt.subplots(figsize=(7, 0.8 + 0.25 * len(cells)))
        ax.axis("off")
        ax.table(cellText=cells, colLabels=[h for _, h, _ in TABLE2_COLUMNS], loc="center")
        ax.set_title(f"Table 2 — {title}: collapsing cells (medians over collapsed seeds)")
        fig.tight_layout()
    return fig


def _class_curve(values, mask):
    """Median over runs in ``mask`` of a (tau, eta, seed, step) series, NaN where none is finite."""
    chosen = values[mask]
    if chosen.size == 0 or not np.isfinite(chosen).any():
        return None
    with np.errstate(all="ignore"), _quiet():
        return np.nanmedian(chosen, axis=0)


@contextlib.contextmanager
def _quiet():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def dynamics(ds, an, title):
    """Fig. 3: grad_cos over time, stable vs collapsing (before t*); drift vs t, log–log, slopes ½ and 1."""
    collapsed = an.t_star >= 0
    before = an.steps[None, None, None, :] < np.where(collapsed, an.t_star, an.steps.size)[..., None]
    with theme():
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        for name, ax, ylabel in (("grad_cos", left, "cos(u_t, u_{t−1})"), ("drift", right, "‖θ_t − θ_0‖")):
            values = series(ds, name)
            if values is None:
                ax.text(0.5, 0.5, f"{name} not in store", ha="center", transform=ax.transAxes)
                continue
            values = np.where(before, values, np.nan)
            for mask, color, label in ((~collapsed, STABLE, "stable"), (collapsed, COLLAPSING, "collapsing")):
                curve = _class_curve(values, mask)
                if curve is not None:
                    ax.plot(an.steps, curve, color=color, label=f"{label} (median)")
            ax.set(xlabel="learner step t", ylabel=ylabel)
        if series(ds, "drift") is not None:
            right.set(xscale="log", yscale="log")
            t = an.steps[an.steps >= 1]
            drift = series(ds, "drift")
            anchor = np.nanmedian(drift[..., np.searchsorted(an.steps, 1)]) if t.size else np.nan
            if np.isfinite(anchor) and anchor > 0:
                right.plot(t, anchor * t ** 0.5, "k:", label="slope ½ (diffusive)")
                right.plot(t, anchor * t, "k--", label="slope 1 (ballistic)")
        for ax in (left, right):
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
        fig.suptitle(f"{title}: update alignment and drift (msd_slope stable "
                     f"{an.estimates['msd_stable'].value:.2f}, collapsing {an.estimates['msd_collapsing'].value:.2f})")
        fig.tight_layout()
    return fig


def theorem1_constants(ds, runs):
    """``(C_b, U)`` over the runs where ``runs`` (``(tau, eta, seed)`` bool) holds: the largest secant
    ``bias_bound / stale_drift`` and ``update_norm`` they recorded (NaN when absent)."""
    bound, drift, update = series(ds, "bias_bound"), series(ds, "stale_drift"), series(ds, "update_norm")
    if bound is None or drift is None or update is None or not runs.any():
        return np.nan, np.nan
    with _quiet(), np.errstate(divide="ignore", invalid="ignore"):
        secant = np.where(drift[runs] > 0, bound[runs] / drift[runs], np.nan)
        u = np.where(np.isfinite(update[runs]), update[runs], np.nan)
        return (float(np.nanmax(secant)) if np.isfinite(secant).any() else np.nan,
                float(np.nanmax(u)) if np.isfinite(u).any() else np.nan)


def _cell_medians(values, cells):
    """Median over every axis but the (τ, η) cell, one value per cell."""
    with _quiet():
        return np.nanmedian(values.reshape(cells, -1), axis=1)


def bias(ds, an, title):
    """bias_norm against τη (log–log) per cell, beside Lemma 1's bias_bound and the Theorem 1 line C_b U τη."""
    bias_norm = series(ds, "bias_norm")
    tau_eta = (an.taus[:, None] * an.etas[None, :]).ravel()
    med = None if bias_norm is None else _cell_medians(bias_norm, tau_eta.size)
    with theme():
        fig, ax = plt.subplots(figsize=(5.5, 4.2))
        if med is None or not (med > 0).any():
            ax.text(0.5, 0.5, "bias_norm not in store" if med is None else "bias_norm is 0 in every cell",
                    ha="center", transform=ax.transAxes)
        else:
            _draw_bias(ax, ds, an, tau_eta, med)
        ax.set(xlabel="τ·η", ylabel="‖b_t‖", title=f"{title}: staleness bias")
        fig.tight_layout()
    return fig


def _draw_bias(ax, ds, an, tau_eta, med):
    shown = med > 0  # τ = 1 has no staleness: b = 0 exactly, off a log axis
    lo, hi = series(ds, "bias_norm_lo"), series(ds, "bias_norm_hi")
    if lo is not None and hi is not None:  # an estimate (llm): the median of its own interval
        low, high = _cell_medians(lo, tau_eta.size), _cell_medians(hi, tau_eta.size)
        label = "bias_norm estimate (median, median interval)"
    else:
        with _quiet():
            low, high = np.nanpercentile(series(ds, "bias_norm").reshape(tau_eta.size, -1), [5, 95], axis=1)
        label = "bias_norm (median, 5–95 % over steps and seeds)"
    ax.errorbar(tau_eta[shown], med[shown], yerr=np.clip([med - low, high - med], 0, None)[:, shown], fmt="o",
                ms=4, label=label)
    drawn = [low, high, med]
    bound = series(ds, "bias_bound")
    if bound is not None:
        drawn.append(_cell_medians(bound, tau_eta.size))
        ax.plot(tau_eta[shown], drawn[-1][shown], "k_", ms=9, mew=1.5, label="bias_bound (Lemma 1, median per cell)")
    ax.set(xscale="log", yscale="log")
    values = np.concatenate([v[shown] for v in drawn])
    values = values[np.isfinite(values) & (values > 0)]
    ax.set_ylim(values.min() / 3, values.max() * 3)  # a vacuous bound line must not flatten the data
    # Theorem 1's constants are sups over the region training visits: the stable runs' region, since a collapse
    # leaves every region where they stay finite (its ratios, hence G, grow without bound)
    c_b, u = theorem1_constants(ds, an.t_star < 0)
    if np.isfinite(c_b) and np.isfinite(u):
        x = np.geomspace(tau_eta[shown].min(), tau_eta[shown].max(), 50)
        line = theorem1_bound(c_b, u, x, 1.0)
        where = "" if line.min() <= ax.get_ylim()[1] else f"; above the axes, ≥ {line.min():.2g}"
        ax.plot(x, line, "k--", lw=1, label=f"Theorem 1: C_b U τη (C_b = {c_b:.3g}, U = {u:.3g}, sups over "
                                             f"stable runs{where})")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=7)


FIGURES = {"reward": reward_curves, "phase": phase_diagram, "table2": table2_figure, "dynamics": dynamics,
           "bias": bias}
"""Figure name → drawing function ``f(ds, analysis, title) -> Figure``."""
