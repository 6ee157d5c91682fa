"""Every figure and ``REPORT.md`` (the verdict table) from a set of named results stores."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from tqdm import tqdm

from figures import plots
from figures.analysis import analyze, load_sweep
from figures.baselines import advisor_check, baselines, policy_outcomes
from figures.plots import table2_markdown
from theory import collapse, fits
from theory.verdicts import RULE

FIGURES = {**plots.FIGURES, "baselines": baselines}
"""Figure name → drawing function ``f(ds, analysis, title) -> Figure``."""

NAMES = (*FIGURES, "report")
"""What ``only`` may name: one figure kind, or ``report`` for REPORT.md alone."""


def _fmt(x):
    return "—" if x is None or not np.isfinite(x) else f"{x:.3g}"


def _interval(iv):
    return f"{_fmt(iv.value)} [{_fmt(iv.low)}, {_fmt(iv.high)}]"


def report_markdown(datasets, analyses, ess=None):
    """REPORT.md: the verdict rule, then one verdict row per prediction and substrate."""
    lines = [
        "# Verdicts on the paper's predictions", "",
        f"**Rule.** {RULE}", "",
        "**Conventions.** " + " ".join(line.strip() for line in (
            f"A run collapses at t*, the first step after which its training reward is 0 (or NaN) to the end; "
            f"a finite zero tail shorter than W = max(5, ⌈T/20⌉) steps is censored; censored and stable runs count "
            f"as not collapsed in every collapse probability. The t* regression runs over the collapsing cells "
            f"(some seed collapses) by maximum likelihood, log t* normal: a seed of such a cell that did not "
            f"collapse is right-censored at T − W, not dropped; stable cells are outside the law. "
            f"η_max(τ) is the largest grid η with collapse fraction ≤ the threshold (stated per substrate). "
            f"Intervals: {fits.LEVEL:.0%} percentile bootstrap over seeds. A collapse is a kick when the largest "
            f"update_norm in the W steps before t* exceeds {collapse.KICK_RATIO:g}× the median before t*.",)), "",
        "| substrate | prediction | theory | measured [95 % CI] | tolerance | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for name, an in analyses.items():
        for prediction, interval, verdict in an.verdicts():
            relation = "≤ " if prediction.bound else ""
            lines.append(f"| {name} | {prediction.statement} | {relation}{prediction.theory:g} | {_interval(interval)} "
                         f"| {prediction.tolerance:g} | **{verdict}** |")
    lines += ["", "## Fitted constants and collapse census", "",
              "| substrate | T | W | threshold | c_loc = η_max·τ | c_hor = η·t* | collapsed runs | kicks | drifts |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, an in analyses.items():
        lines.append(f"| {name} | {an.steps.size} | {an.window} | {an.threshold:g} | {_interval(an.estimates['c_loc'])} "
                     f"| {_interval(an.estimates['c_hor'])} | {int((an.t_star >= 0).sum())}/{an.t_star.size} "
                     f"| {int((an.kind == 'kick').sum())} | {int((an.kind == 'drift').sum())} |")
    lines += ["", "## Baselines (learning-rate policies read off the grid; see figures/baselines.py)", "",
              "| substrate | policy | η per τ (grid) | final val_reward per τ | collapse rate per τ |",
              "|---|---|---|---|---|"]
    for name, an in analyses.items():
        for policy, rows in policy_outcomes(datasets[name], an, (ess or {}).get(name)).items():
            lines.append(f"| {name} | {policy} | {', '.join(_fmt(r['eta']) for r in rows)} "
                         f"| {', '.join(_fmt(r['val_reward']) for r in rows)} "
                         f"| {', '.join(format(r['collapse_rate'], '.2f') for r in rows)} |")
    lines += ["", "## Advisor on held-out cells", "",
              "For each τ, c_loc and c_hor are fitted on the other τ of the grid (every seed); the collapse fraction "
              "over every seed is measured at this τ at the advised η and at 4× it (each snapped down to the grid).",
              "",
              "| substrate | τ | advised η | grid η | P(collapse) | grid η ≤ 4× | P(collapse) at 4× |",
              "|---|---|---|---|---|---|---|"]
    for name, an in analyses.items():
        rows = advisor_check(an)
        lines += [f"| {name} | {r['tau']:g} | {_fmt(r['eta_advised'])} | {_fmt(r['eta'])} | {_fmt(r['p_collapse'])} "
                  f"| {_fmt(r['eta_4x'])} | {_fmt(r['p_collapse_4x'])} |" for r in rows]
        if not rows:
            lines.append(f"| {name} | — | no η_max inside the grid on any other τ | | | | |")
    return "\n".join(lines) + "\n"


def _save(fig, out_dir, stem):
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths


def render_all(stores, out_dir, only=None, threshold=0.0, n_boot=200, ess_stores=None, progress=True):
    """Draw every figure of every store (``{substrate name: store path}``) and REPORT.md into ``out_dir``.

    Files: ``{name}_{figure}.png|.pdf`` for each figure of :data:`FIGURES`,
    ``{name}_table2.md`` and ``REPORT.md``; ``only`` restricts to one entry of
    :data:`NAMES`. ``ess_stores`` (``{substrate name: store path}``) adds the
    ESS-scaled baseline. Returns the paths written.
    """
    if only is not None and only not in NAMES:
        raise ValueError(f"--only {only!r} is not one of {', '.join(NAMES)}")
    if not stores:
        raise ValueError("no results stores to draw from")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    datasets = {name: load_sweep(path) for name, path in stores.items()}
    ess = {name: load_sweep(path) for name, path in (ess_stores or {}).items()}
    analyses = {name: analyze(ds, threshold, n_boot) for name, ds in datasets.items()}
    kinds = [k for k in FIGURES if only in (None, k)]
    written = []
    for name, kind in tqdm([(n, k) for n in datasets for k in kinds], desc="figures", unit="fig", leave=False,
                           disable=not progress):
        extra = {"ess": ess.get(name)} if kind == "baselines" else {}
        written += _save(FIGURES[kind](datasets[name], analyses[name], name, **extra), out_dir, f"{name}_{kind}")
        if kind == "table2":
            path = out_dir / f"{name}_table2.md"
            path.write_text(table2_markdown(analyses[name].table2(), name))
            written.append(path)
    if only in (None, "report"):
        path = out_dir / "REPORT.md"
        path.write_text(report_markdown(datasets, analyses, ess))
        written.append(path)
    return written
