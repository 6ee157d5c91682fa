"""Baselines on the same grid (issue 5, item 4): learning-rate policies read off a (τ, η) sweep.

A static policy picks one η per τ; its outcome is the sweep's cell at the largest
grid η not above it (**[choice]**: snapping down, so a policy is never credited
with a larger step than it asked for). Policies, with η₀ = η_max at the smallest τ:

* ``fixed η``: η₀ at every τ;
* ``η/τ``: the classical rule η₀·τ_min/τ;
* ``advisor``: the two-constraint rule (36)–(38) with the store's fitted c_loc, c_hor
  (in-sample: the same store fits the constants);
* ``ESS-scaled``: η₀·min(1, ess_t/ess_base) at every step, as VCPO does. Its η
  changes every step, so it is not a cell of the grid: it is read from a second
  store, the same sweep at η₀ with the engines' ``ess_base`` option, when one is given.
"""

import matplotlib.pyplot as plt
import numpy as np

from figures.analysis import series
from figures.plots import theme
from theory import collapse, fits
from theory.rule import safe_learning_rate


def _snap_down(eta, etas):
    below = np.flatnonzero(etas <= eta * (1 + 1e-9))
    return int(below[np.argmax(etas[below])]) if below.size else None


ESS_BASE = 1.0
"""ess_base of the ESS-scaled policy **[choice]**: VCPO calibrates it on the first update, which is on-policy
here (ess = 1), so η_t = η₀·ess_t."""


def store_reference_eta(ds, threshold=0.0):
    """η₀ of a sweep store (what the ESS-scaled sweep must run at), from its collapse census alone."""
    reward, etas = series(ds, "reward"), ds.eta.values.astype(float)
    collapsed = collapse.collapse_step(reward, collapse.censor_window(reward.shape[-1])) >= 0
    return reference_eta(fits.eta_max(collapsed, etas, threshold), etas)


def reference_eta(eta_max, etas):
    """η₀ of the policies: η_max at the smallest τ, or the smallest grid η when even that collapses."""
    return float(eta_max[0]) if np.isfinite(eta_max[0]) else float(np.min(etas))


def policy_etas(an):
    """Policy name → η it asks for at each τ of the store."""
    eta0 = reference_eta(an.eta_max, an.etas)
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


def _row(tau, asked, eta, final, t_star):
    v = final[np.isfinite(final)]
    return {"tau": float(tau), "eta_asked": float(asked), "eta": float(eta),
            "val_reward": float(v.mean()) if v.size else np.nan,
            "val_reward_se": float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0,
            "collapse_rate": float((t_star >= 0).mean())}


def policy_outcomes(ds, an, ess=None):
    """Policy → rows per τ: asked η, grid η used, mean and s.e. of final val_reward, collapse rate.

    ``ess``: the store of the ESS-scaled sweep (same τ and seeds), read at the grid η nearest below η₀.
    """
    final = final_val_reward(ds)
    outcomes = {}
    for name, asked in policy_etas(an).items():
        rows = []
        for i, (tau, eta) in enumerate(zip(an.taus, asked)):
            j = _snap_down(eta, an.etas)
            if j is not None:
                rows.append(_row(tau, eta, an.etas[j], final[i, j], an.t_star[i, j]))
        outcomes[name] = rows
    if ess is not None:
        eta0, etas = reference_eta(an.eta_max, an.etas), ess.eta.values.astype(float)
        j = _snap_down(eta0, etas)
        reward = series(ess, "reward")
        t_star = collapse.collapse_step(reward, collapse.censor_window(reward.shape[-1]))
        final = final_val_reward(ess)
        outcomes["ESS-scaled"] = [] if j is None else [
            _row(tau, eta0, etas[j], final[i, j], t_star[i, j]) for i, tau in enumerate(ess.tau.values)]
    return outcomes


def advisor_check(an):
    """The advisor on held-out cells: for each τ, constants fitted on the *other* τ, outcomes at this one.

    Rows per τ: the advised η (from c_loc, c_hor of the other τ, every seed),
    the grid η used (snapped down), its collapse fraction over every seed, and
    the same at 4× the advised η. A τ is left out (no row) when the other τ give
    no c_loc (no η_max inside the grid).
    """
    collapsed = an.t_star >= 0
    rows = []
    for i, tau in enumerate(an.taus):
        others = np.arange(an.taus.size) != i
        c_loc = fits.c_loc(collapsed[others], an.taus[others], an.etas, an.threshold, n_boot=1).value
        c_hor = fits.c_hor(an.t_star[others], an.etas, n_boot=1).value
        if not np.isfinite(c_loc):
            continue
        advised = safe_learning_rate(tau, an.steps.size, c_loc, c_hor if np.isfinite(c_hor) else np.inf).eta_max
        row = {"tau": float(tau), "eta_advised": float(advised)}
        for key, factor in (("", 1), ("_4x", 4)):
            j = _snap_down(factor * advised, an.etas)
            row[f"eta{key}"] = np.nan if j is None else float(an.etas[j])
            row[f"p_collapse{key}"] = np.nan if j is None else float(collapsed[i, j].mean())
        rows.append(row)
    return rows


def baselines(ds, an, title, ess=None):
    """Final val_reward (± s.e. over seeds) and collapse rate against τ for each learning-rate policy."""
    with theme():
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 5.5), sharex=True)
        for name, rows in policy_outcomes(ds, an, ess).items():
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
        if ess is None:
            bottom.text(0.01, 0.02, "ESS-scaled η·min(1, ESS/ESS₀): no ESS sweep given",
                        transform=bottom.transAxes, fontsize=6)
        fig.tight_layout()
    return fig
