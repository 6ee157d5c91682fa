"""Learning-rate policies read off a (τ, η) sweep, and the ESS-scaled twin sweep (issue 5).

A static policy picks one η per τ; its outcome is the sweep's cell at the largest
grid η not above it (**[choice]**: snapping down, so a policy is never credited
with a larger step than it asked for). Policies, with η₀ = the measured η_max at
the smallest τ:

* ``fixed η``: η₀ at every τ;
* ``η/τ``: the classical rule η₀·τ_min/τ;
* ``advisor``: the held-out advice of :mod:`analysis.advisor` (boundary fitted on the other τ);
* ``ESS-scaled``: η₀·min(1, ess_t/ess_base) at every step, as VCPO does. Its η
  changes every step, so it is not a cell of the grid: it is read from a second
  store, the same sweep at η₀ with the engines' ``ess_base`` option, when one is given.
"""

import numpy as np

from analysis.advisor import grid_eta_max, snap_down
from analysis.events import collapse_events
from analysis.store import series

ESS_BASE = 1.0
"""ess_base of the ESS-scaled policy **[choice]**: VCPO calibrates it on the first update, which is on-policy
here (ess = 1), so η_t = η₀·ess_t."""


def reference_eta(eta_max, etas):
    """η₀ of the policies: η_max at the smallest τ, or the smallest grid η when even that collapses."""
    return float(eta_max[0]) if np.isfinite(eta_max[0]) else float(np.min(etas))


def store_reference_eta(ds):
    """η₀ of a sweep store (the η its ESS-scaled twin runs at), from its collapse events alone."""
    return reference_eta(grid_eta_max(collapse_events(ds).collapsed, ds.eta.values), ds.eta.values.astype(float))


def final_quality(ds):
    """``(name, (tau, eta, seed) last finite value of each run)`` of ``val_reward``, or of the training ``reward``
    where the store has no ``val_reward`` (the name says which)."""
    name = "val_reward" if series(ds, "val_reward") is not None else "reward"
    values = series(ds, name)
    finite = np.isfinite(values)
    last = values.shape[-1] - 1 - np.argmax(finite[..., ::-1], axis=-1)
    picked = np.take_along_axis(values, last[..., None], axis=-1)[..., 0]
    return name, np.where(finite.any(axis=-1), picked, np.nan)


def _row(tau, asked, eta, quality, collapsed):
    name, final = quality
    v = final[np.isfinite(final)]
    return {"tau": float(tau), "eta_asked": float(asked), "eta": float(eta), "quality": name,
            "final": float(v.mean()) if v.size else np.nan,
            "final_se": float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0,
            "collapse_rate": float(np.mean(collapsed))}


def policy_outcomes(ds, events, advised, ess=None):
    """Policy → rows per τ: asked η, grid η used, mean and s.e. of the final quality (``quality``: val_reward,
    or the training reward where the store has none), collapse rate.

    ``advised``: the advisor's η per τ (NaN where it has none); ``ess``: the store of
    the ESS-scaled sweep (same τ and seeds), read at the grid η nearest below η₀.
    """
    taus, etas = ds.tau.values.astype(float), ds.eta.values.astype(float)
    eta0 = reference_eta(grid_eta_max(events.collapsed, etas), etas)
    quality, final = final_quality(ds)
    policies = {"fixed η": np.full(taus.size, eta0), "η/τ": eta0 * taus.min() / taus,
                "advisor": np.asarray(advised, dtype=float)}
    outcomes = {}
    for policy, asked in policies.items():
        rows = []
        for i, (tau, eta) in enumerate(zip(taus, asked)):
            j = snap_down(eta, etas) if np.isfinite(eta) else None
            if j is not None:
                rows.append(_row(tau, eta, etas[j], (quality, final[i, j]), events.collapsed[i, j]))
        outcomes[policy] = rows
    if ess is not None:
        ess_etas = ess.eta.values.astype(float)
        j = snap_down(eta0, ess_etas)
        ess_events, (ess_name, ess_final) = collapse_events(ess), final_quality(ess)
        outcomes["ESS-scaled"] = [] if j is None else [
            _row(tau, eta0, ess_etas[j], (ess_name, ess_final[i, j]), ess_events.collapsed[i, j])
            for i, tau in enumerate(ess.tau.values)]
    return outcomes
