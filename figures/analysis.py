"""One results store → the collapse statistics and fits behind every figure and verdict.

A store has dims ``(tau, eta, seed, step)`` (THEORY.md §6 layout) and at least
``reward``; every other variable is optional and may be partly NaN.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from results.store import StoreError, open_store
from theory import collapse, fits
from theory.metrics import SWEEP_DIMS
from theory.verdicts import PREDICTIONS, verdict


def load_sweep(path):
    """Open a sweep store; a one-line :class:`StoreError` when it is not one."""
    ds = open_store(Path(path), required=("reward",), dims=SWEEP_DIMS)
    if set(ds.reward.dims) != set(SWEEP_DIMS):
        raise StoreError(f"results store {path}: reward has dims {ds.reward.dims}, expected {SWEEP_DIMS}")
    return ds


def series(ds, name):
    """Variable ``name`` as a float array on ``(tau, eta, seed, step)``, or None when absent/all NaN."""
    if name not in ds.data_vars or set(ds[name].dims) != set(SWEEP_DIMS):
        return None
    values = ds[name].transpose(*SWEEP_DIMS).values.astype(float)
    return values if np.isfinite(values).any() else None


@dataclass
class SweepAnalysis:
    """Per-run summaries, per-cell probabilities and the fitted quantities of one sweep."""

    taus: np.ndarray
    etas: np.ndarray
    steps: np.ndarray
    t_star: np.ndarray
    """(tau, eta, seed) collapse step, −1 when none or censored."""
    k_star: np.ndarray
    probability: np.ndarray
    """(tau, eta) fraction of seeds that collapse."""
    eta_max: np.ndarray
    """(tau,) largest grid η with collapse fraction ≤ threshold."""
    msd: np.ndarray
    """(tau, eta, seed) msd_slope, NaN without a drift series."""
    kind: np.ndarray
    """(tau, eta, seed) ``kick`` / ``drift`` / ``none``."""
    window: int
    threshold: float
    estimates: dict = field(default_factory=dict)
    """Prediction key (and ``c_loc``, ``c_hor``) → :class:`theory.fits.Interval`."""

    def verdicts(self):
        """Rows ``(prediction, interval, verdict)`` for every prediction of :data:`PREDICTIONS`."""
        return [(p, self.estimates[p.key], verdict(p, *self.estimates[p.key])) for p in PREDICTIONS]

    def table2(self):
        """Table 2: one row per cell with a collapsing seed (medians over its collapsed seeds)."""
        rows = []
        for i, tau in enumerate(self.taus):
            for j, eta in enumerate(self.etas):
                t = self.t_star[i, j]
                t = t[t >= 0]
                if t.size:
                    t_med, k_med = float(np.median(t)), float(np.median(t // tau))
                    rows.append({"tau": int(tau), "eta": float(eta), "p_collapse": float(self.probability[i, j]),
                                 "k_star": k_med, "t_star": t_med, "eta_t_star": eta * t_med,
                                 "k_tau_eta": k_med * tau * eta})
        return rows

    def summary(self):
        """JSON-ready summary: grid, collapse probabilities, η_max and every estimate."""
        return {
            "tau": self.taus.tolist(), "eta": self.etas.tolist(), "censor_window": self.window,
            "threshold": self.threshold, "collapse_probability": self.probability.tolist(),
            "eta_max": [None if np.isnan(v) else float(v) for v in self.eta_max],
            "kicks": int((self.kind == "kick").sum()), "drifts": int((self.kind == "drift").sum()),
            "estimates": {k: v.as_dict() for k, v in self.estimates.items()},
            "verdicts": {p.key: v for p, _, v in self.verdicts()},
        }


def analyze(ds, threshold=0.0, n_boot=200, seed=0):
    """Collapse detection (§6) and every fit of :mod:`theory.fits` on one store."""
    taus = ds.tau.values.astype(float)
    etas = ds.eta.values.astype(float)
    steps = ds.step.values.astype(float)
    reward = series(ds, "reward")
    if reward is None:
        raise StoreError("results store has no finite reward")
    window = collapse.censor_window(reward.shape[-1])
    t_star = collapse.collapse_step(reward, window)
    collapsed = t_star >= 0
    drift, update = series(ds, "drift"), series(ds, "update_norm")
    msd = fits.msd_slope(drift, t_star, steps) if drift is not None else np.full(t_star.shape, np.nan)
    kind = (collapse.classify_collapse(update, t_star, window) if update is not None
            else np.full(t_star.shape, "none"))
    boot = {"n_boot": n_boot, "seed": seed}
    b, c = fits.collapse_time_regression(t_star, taus, etas, reward.shape[-1] - window, **boot)
    bias, bound = series(ds, "bias_norm"), series(ds, "bias_bound")
    estimates = {
        "a": fits.eta_max_exponent(collapsed, taus, etas, threshold, **boot),
        "b": b,
        "c": c,
        "eta_tstar_slope": fits.eta_tstar_slope(t_star, etas, taus, **boot),
        "msd_stable": fits.class_mean(msd, ~collapsed, **boot),
        "msd_collapsing": fits.class_mean(msd, collapsed, **boot),
        "bias_ratio": (fits.max_bias_ratio(bias, bound, **boot) if bias is not None and bound is not None
                       else fits.NAN_INTERVAL),
        "c_loc": fits.c_loc(collapsed, taus, etas, threshold, **boot),
        "c_hor": fits.c_hor(t_star, etas, **boot),
    }
    return SweepAnalysis(
        taus=taus, etas=etas, steps=steps, t_star=t_star,
        k_star=collapse.collapse_sync(t_star, taus.astype(int)[:, None, None]),
        probability=collapse.collapse_probability(t_star), eta_max=fits.eta_max(collapsed, etas, threshold),
        msd=msd, kind=kind, window=window, threshold=threshold, estimates=estimates,
    )
