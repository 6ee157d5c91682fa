"""Baselines on the same grid (issue 5, item 4): learning-rate policies read off a (τ, η) sweep.

A static policy picks one η per τ; its outcome is the sweep's cell at the largest
grid η not above it (**[choice]**: snapping down, so a policy is never credited
with a larger step than it asked for). Policies, with η₀ = η_max at the smallest τ:

* ``fixed η``: η₀ at every τ;
* ``η/τ``: the classical rule η₀·τ_min/τ;
* ``advisor``: the two-constraint rule (36)–(38) with the store's fitted c_loc, c_hor
  (in-sample: the same store fits the constants).

The ESS-scaled policy η·min(1, ESS/ESS₀) changes η at every step, so it is not a
cell of a (τ, η) grid; it needs its own sweep and is drawn only when the store
has a ``policy`` coordinate naming it (not yet produced by the engines).
"""

import matplotlib.pyplot as plt
import numpy as np

from figures.analysis import series
from figures.plots import theme
from theory import fits
from theory.rule import safe_learning_rate


def _snap_down(eta, etas):
    below = np.flatnonzero(etas <= eta * (1 + 1e-9))
    return int(below[np.argmax(etas[below])]) if below.size else None


def policy_etas(an):
    """Policy name → η it asks for at each τ of the store."""
    eta0 = an.eta_max[0] if np.isfinite(an.eta_max[0]) else an.etas.min()
    c_loc, c_hor = an.estimates["c_loc"].value, an.estimates["c_hor"].value
    policies = {"fixed η": np.full(an.taus.size, eta0), "η/τ": eta0 * an.taus.min() / an.taus}
    if np.isfinite(c_loc):
        c_hor = c_hor if np.isfinite(c_hor) else np.inf
        policies["advisor"] = np.array([safe_learning_rate(t, an.steps.size, c_loc, c_hor).eta_max for t in an.taus])
    return policies


def final_val_reward(ds):
    """``(tau, eta, seed)`` last finite val_reward of each run (reward where val_reward is absent)."""
    values = series(ds, "val_reward")
    values = series(ds, "reward") if values is None else values
    finite = np.isfinite(values)
    last = values.shape[-1] - 1 - np.argmax(finite[..., ::-1], axis=-1)
    picked = np.take_along_axis(values, last[..., None], axis=-1)[..., 0]
    return np.where(finite.any(axis=-1), picked, np.nan)


def policy_outcomes(ds, an):
    """Policy → rows per τ: asked η, grid η used, mean and s.e. of final val_reward, collapse rate."""
    final = final_val_reward(ds)
    outcomes = {}
    for name, asked in policy_etas(an).items():
        rows = []
        for i, (tau, eta) in enumerate(zip(an.taus, asked)):
            j = _snap_down(eta, an.etas)
            if j is None:
                continue
            v = final[i, j][np.isfinite(final[i, j])]
            rows.append({"tau": float(tau), "eta_asked": float(eta), "eta": float(an.etas[j]),
                         "val_reward": float(v.mean()) if v.size else np.nan,
                         "val_reward_se": float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0,
                         "collapse_rate": float((an.t_star[i, j] >= 0).mean())})
        outcomes[name] = rows
    return outcomes


def advisor_check(an):
    """The advisor on held-out seeds: constants fitted on the even seeds, collapse fractions on the odd ones.

    Rows per τ: advised η, the grid η used (snapped down), its held-out
    collapse fraction, and the same at 4× the advised η. Empty when the even
    seeds give no c_loc (no η_max inside the grid) or there are < 2 seeds.
    """
    n = an.t_star.shape[-1]
    fit, held = np.arange(0, n, 2), np.arange(1, n, 2)
    if held.size == 0:
        return []
    collapsed = an.t_star >= 0
    c_loc = fits.c_loc(collapsed[..., fit], an.taus, an.etas, an.threshold, n_boot=1).value
    c_hor = fits.c_hor(an.t_star[..., fit], an.etas, n_boot=1).value
    if not np.isfinite(c_loc):
        return []
    c_hor = c_hor if np.isfinite(c_hor) else np.inf
    rows = []
    for i, tau in enumerate(an.taus):
        advised = safe_learning_rate(tau, an.steps.size, c_loc, c_hor).eta_max
        row = {"tau": float(tau), "eta_advised": float(advised)}
        for key, factor in (("", 1), ("_4x", 4)):
            j = _snap_down(factor * advised, an.etas)
            row[f"eta{key}"] = np.nan if j is None else float(an.etas[j])
            row[f"p_collapse{key}"] = np.nan if j is None else float(collapsed[i, j][held].mean())
        rows.append(row)
    return rows


def baselines(ds, an, title):
    """Final val_reward (± s.e. over seeds) and collapse rate against τ for each learning-rate policy."""
    with theme():
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 5.5), sharex=True)
        for name, rows in policy_outcomes(ds, an).items():
            if not rows:
                continue
            tau = [r["tau"] for r in rows]
            top.errorbar(tau, [r["val_reward"] for r in rows], yerr=[r["val_reward_se"] for r in rows],
                         marker="o", ms=4, capsize=2, label=name)
            bottom.plot(tau, [r["collapse_rate"] for r in rows], marker="o", ms=4, label=name)
        top.set(ylabel="final val_reward", title=f"{title}: learning-rate policies on the (τ, η) grid")
        top.legend(fontsize=7)
        bottom.set(xscale="log", xlabel="staleness τ", ylabel="collapse rate", ylim=(-0.05, 1.05))
        bottom.set_xticks(an.taus, [f"{t:g}" for t in an.taus], minor=False)
        bottom.minorticks_off()
        bottom.text(0.01, 0.02, "ESS-scaled η·min(1, ESS/ESS₀): needs its own sweep (not in this store)",
                    transform=bottom.transAxes, fontsize=6)
        fig.tight_layout()
    return fig
