"""Collapse early warning over a metric stream, framework-free: docs/theory.md §4–§5 read online.

A run collapses when θ leaves the region where the clipped surrogate is valid:
the stale drift ‖θ_t − β_t‖ passes the batch radius r_clip (32), or the drift
‖θ_t − θ_0‖ passes R (34). Before either happens the run shows it: the stale
drift and the drift approach their radii, the clip fraction rises and the ESS
of the ratios falls as β_t and θ_t part, and consecutive surrogate gradients
align (the ballistic regime of §4.4, GAC's signature). :class:`EarlyWarning`
watches those per-step signals (whichever a run records) and raises an
:class:`Alarm` the first step any of them crosses its threshold, with the η
the rule (36)–(38) suggests. Thresholds come from theory (fractions of r_clip
and R when the constants are known) or from :func:`calibrate`, which sets each
at the level the stable runs of a calibration sweep never reach, so that at
most a chosen fraction of them would have alarmed. :func:`evaluate` measures
lead time before t* and false alarms on held-out runs
(``benchmarks/bench_warning.py``).
"""

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from analysis.events import collapse_events
from theory.rule import safe_learning_rate

SIGNALS = {
    "stale_drift": "‖θ_t − β_t‖, against r_clip (32)",
    "drift": "‖θ_t − θ_0‖, against R (34)",
    "drift_ahead": "‖θ_t − θ_0‖ carried two syncs (2τ steps) ahead at its pace over the last sync cycle(s): "
                   "ballistic drift (33) reaches R that much sooner",
    "clip_frac": "fraction of clipped ratios",
    "ess_loss": "1 − ESS of the ratios",
    "cosine": "cos of consecutive surrogate gradients (raw_grad_cos, else grad_cos), mean over one sync cycle",
}
"""Signal → what it is; each rises as a run approaches collapse."""


@dataclass(frozen=True)
class Thresholds:
    """A signal alarms at or above its threshold (None: not watched) for ``persist`` consecutive steps."""

    stale_drift: float | None = None
    drift: float | None = None
    drift_ahead: float | None = None
    clip_frac: float | None = None
    ess_loss: float | None = None
    cosine: float | None = None
    persist: int = 1
    notes: dict = field(default_factory=dict)
    """How each threshold was set (calibration split, quantile, number of runs)."""

    def active(self):
        return {name: getattr(self, name) for name in SIGNALS if getattr(self, name) is not None}

    def to_json(self):
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("thresholds must be a JSON object")
        unknown = sorted(set(data) - set(SIGNALS) - {"persist", "notes"})
        if unknown:
            raise ValueError(f"unknown threshold(s) {', '.join(unknown)}; known: {', '.join(SIGNALS)}, persist")
        for name in SIGNALS:
            value = data.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0):
                raise ValueError(f"threshold {name} = {value!r} must be a finite number > 0 or null")
        persist = data.get("persist", 1)
        if isinstance(persist, bool) or not isinstance(persist, int) or persist < 1:
            raise ValueError(f"persist = {persist!r} must be an integer ≥ 1")
        return cls(**data)

    @classmethod
    def from_constants(cls, r_clip=None, R=None, fraction=0.5, clip_frac=None, ess_loss=None, cosine=None):
        """Theory's thresholds: a ``fraction`` of r_clip for the stale drift and of R for the drift."""
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction = {fraction!r} must be in (0, 1]")
        return cls(stale_drift=None if r_clip is None else fraction * r_clip,
                   drift=None if R is None else fraction * R, clip_frac=clip_frac, ess_loss=ess_loss, cosine=cosine,
                   notes={"source": f"{fraction:g} of r_clip and R"})


@dataclass(frozen=True)
class Alarm:
    """The first step a watched signal crossed its threshold, and what to do about it."""

    step: int
    signals: dict
    """Signal → (value, threshold) for every signal at or above its threshold at ``step``."""
    eta: float
    suggested_eta: float | None
    """η by the rule (36)–(38) with constants estimated from the run, or None when they cannot be."""
    reason: str

    def as_dict(self):
        return asdict(self)


def signal_series(series, tau):
    """The :data:`SIGNALS` of a run (dict of per-step arrays) that it records, each as a float array."""
    out = {}
    for name in ("stale_drift", "drift", "clip_frac"):
        if series.get(name) is not None:
            out[name] = np.asarray(series[name], dtype=float)
    if "drift" in out:
        out["drift_ahead"] = _ahead(out["drift"], int(tau))
    if series.get("ess") is not None:
        out["ess_loss"] = 1.0 - np.asarray(series["ess"], dtype=float)
    cos = series.get("raw_grad_cos")
    if cos is None or not np.isfinite(np.asarray(cos, dtype=float)).any():
        cos = series.get("grad_cos")
    if cos is not None:
        out["cosine"] = _trailing_mean(np.asarray(cos, dtype=float), max(2, int(tau)))
    return {name: values for name, values in out.items() if np.isfinite(values).any()}


def _ahead(drift, tau, syncs=2):
    """``drift_t + 2τ·v_t`` with v_t its mean rise per step over the last max(τ, 4) steps (never negative)."""
    width = max(tau, 4)
    out = np.full(drift.shape, np.nan)
    if drift.size > width:
        pace = np.maximum(drift[width:] - drift[:-width], 0.0) / width
        out[width:] = drift[width:] + syncs * tau * pace
    return out


def _trailing_mean(values, width):
    """Mean of the last ``width`` finite values at each step (NaN until ``width`` are seen)."""
    out = np.full(values.shape, np.nan)
    finite = np.isfinite(values)
    for t in range(values.size):
        window = values[max(0, t - width + 1):t + 1][finite[max(0, t - width + 1):t + 1]]
        if window.size == width:
            out[t] = window.mean()
    return out


class EarlyWarning:
    """Online detector: feed one step's metrics at a time with :meth:`update`; it returns the first :class:`Alarm`.

    ``constants`` (optional): ``c_loc``/``c_hor`` or ``r_clip``/``R``/``U`` for the suggested η; without
    them the run's own largest update and the thresholds stand in for U, r_clip and R.
    """

    def __init__(self, thresholds, tau, eta, horizon, constants=None):
        if not thresholds.active():
            raise ValueError("no threshold is set: calibrate on a sweep or give r_clip and R")
        for name, value in (("tau", tau), ("eta", eta), ("horizon", horizon)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} = {value!r} must be a finite number > 0")
        self.thresholds, self.tau, self.eta, self.horizon = thresholds, int(tau), float(eta), int(horizon)
        self.constants = dict(constants or {})
        self.history = {name: [] for name in ("stale_drift", "drift", "clip_frac", "ess", "raw_grad_cos",
                                              "grad_cos", "update_norm")}
        self.streak = 0
        self.alarm = None
        self.steps = 0

    def update(self, step, **metrics):
        """Record step ``step``'s metrics (any of :data:`SIGNALS`' inputs and ``update_norm``); the first alarm."""
        for name, values in self.history.items():
            value = metrics.get(name)
            values.append(np.nan if value is None else float(value))
        self.steps += 1
        if self.alarm is not None:
            return self.alarm
        tail = max(self.tau, 4) + 2 * self.tau + 2  # every signal at the last step needs no older step
        signals = signal_series({k: v[-tail:] for k, v in self.history.items()}, self.tau)
        crossed = {name: (float(values[-1]), threshold) for name, threshold in self.thresholds.active().items()
                   if name in signals and np.isfinite(values := signals[name])[-1] and values[-1] >= threshold}
        self.streak = self.streak + 1 if crossed else 0
        if self.streak >= self.thresholds.persist:
            self.alarm = self._alarm(int(step), crossed)
        return self.alarm

    def _alarm(self, step, crossed):
        suggested, how = suggest_eta(self.tau, self.horizon, self.eta, step, self.history.get("update_norm"),
                                     self.thresholds, self.constants)
        names = ", ".join(f"{name} {value:.3g} ≥ {threshold:.3g}" for name, (value, threshold) in crossed.items())
        reason = f"step {step}: {names}; " + (f"suggested η = {suggested:.3g} ({how})" if suggested else how)
        return Alarm(step=step, signals=crossed, eta=self.eta, suggested_eta=suggested, reason=reason)


def suggest_eta(tau, horizon, eta, step, update_norm, thresholds, constants):
    """η ≤ min(c_loc/τ, c_hor/T) (36)–(38): from given constants, else from the run (U) and the thresholds.

    Without ``c_loc``/``c_hor``: U is the largest ‖u_t‖ recorded so far, r_clip and R the stale-drift and
    drift thresholds (the radii the run was not to pass), c_loc = r_clip/U and c_hor = R/U (32), (34).
    Without U either: η·(step + 1)/T, the η under which this run's pace would reach the alarm at the horizon (37).
    """
    c = {k: v.get("value") if isinstance(v, dict) else v for k, v in (constants or {}).items()}
    c = {k: float(v) for k, v in c.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
         and math.isfinite(v) and v > 0}  # `repro fit --out` and `repro constants` JSON alike
    c_loc, c_hor = c.get("c_loc"), c.get("c_hor")
    U = c.get("U")
    if U is None and update_norm is not None:
        finite = np.asarray(update_norm, dtype=float)
        finite = finite[np.isfinite(finite) & (finite > 0)]
        U = float(finite.max()) if finite.size else None
    r_clip = c.get("r_clip", thresholds.stale_drift)
    R = c.get("R", thresholds.drift)
    if c_loc is None and U and r_clip:
        c_loc = r_clip / U
    if c_hor is None and U and R:
        c_hor = R / U
    if c_loc and c_hor:
        advice = safe_learning_rate(int(tau), int(horizon), c_loc, c_hor)
        return advice.eta_max, f"rule (36)–(38): c_loc = {c_loc:.3g}, c_hor = {c_hor:.3g}, {advice.binding} binds"
    if c_hor:
        return c_hor / horizon, f"horizon constraint (37): c_hor = {c_hor:.3g}"
    if c_loc:
        return c_loc / tau, f"local constraint (36): c_loc = {c_loc:.3g}"
    return eta * (step + 1) / horizon, "η·(alarm step + 1)/T: this run's pace reaches the alarm only at the horizon"


def scan(series, tau, eta, thresholds, horizon=None, constants=None):
    """The first :class:`Alarm` of a whole recorded run (dict of per-step arrays), or None."""
    signals = signal_series(series, tau)
    steps = len(next(iter(series.values())))
    horizon = horizon or steps
    streak = 0
    for t in range(steps):
        crossed = {name: (float(signals[name][t]), threshold) for name, threshold in thresholds.active().items()
                   if name in signals and np.isfinite(signals[name][t]) and signals[name][t] >= threshold}
        streak = streak + 1 if crossed else 0
        if streak >= thresholds.persist:
            warning = EarlyWarning(thresholds, tau, eta, horizon, constants)
            warning.history["update_norm"] = list(series.get("update_norm", [])[:t + 1])
            return warning._alarm(t, crossed)
    return None


# ---------------------------------------------------------------- runs, calibration, evaluation


@dataclass(frozen=True)
class Run:
    """One run of a sweep: its series, τ, η and collapse step t* (−1 if none)."""

    series: dict
    tau: int
    eta: float
    t_star: int
    label: str = ""


def runs_of(ds, label=""):
    """Every (τ, η, seed) run of a store Dataset on (tau, eta, seed, step), with t* as the analysis finds it.

    t* is the first step the collapse may have happened (:func:`analysis.events.collapse_events`: exact
    from ``success`` where recorded, else the start of its interval), so lead times are never flattered.
    """
    names = ("reward", "stale_drift", "drift", "clip_frac", "ess", "raw_grad_cos", "grad_cos", "update_norm")
    arrays = {n: ds[n].transpose("tau", "eta", "seed", "step").values.astype(float) for n in names if n in ds}
    arrays |= {n: a for n, a in _from_projections(ds).items() if n not in arrays}
    events = collapse_events(ds.transpose("tau", "eta", "seed", "step", ...))
    t_star = np.where(events.collapsed, np.nan_to_num(events.t_low, nan=-1), -1).astype(int)
    runs = []
    for i, tau in enumerate(ds.tau.values):
        for j, eta in enumerate(ds.eta.values):
            for k, seed in enumerate(ds.seed.values):
                series = {n: a[i, j, k] for n, a in arrays.items() if np.isfinite(a[i, j, k]).any()}
                runs.append(Run(series, int(tau), float(eta), int(t_star[i, j, k]),
                                f"{label}τ={int(tau)},η={float(eta):g},seed={int(seed)}"))
    return runs


def _from_projections(ds):
    """``drift`` and ``stale_drift`` from ``theta_proj`` (E‖P x‖² = ‖x‖², docs/theory.md §6) if not stored.

    β_t is θ at the step whose weights made the batch of step t: t − ``staleness`` where recorded, else
    t − t mod τ (11)–(12).
    """
    if "theta_proj" not in ds:
        return {}
    proj = ds.theta_proj.transpose("tau", "eta", "seed", "step", "proj").values.astype(float)
    steps = np.arange(proj.shape[3])
    if "staleness" in ds and np.isfinite(ds.staleness.values).any():
        lag = np.nan_to_num(ds.staleness.transpose("tau", "eta", "seed", "step").values, nan=0).astype(int)
    else:
        lag = np.broadcast_to((steps[None, :] % ds.tau.values[:, None])[:, None, None, :], proj.shape[:4])
    source = np.clip(steps - lag, 0, steps.size - 1)
    behaviour = np.take_along_axis(proj, source[..., None], axis=3)
    return {"drift": np.linalg.norm(proj, axis=-1), "stale_drift": np.linalg.norm(proj - behaviour, axis=-1)}


def _run_maxima(run, name):
    """The largest value of signal ``name`` a run reaches before its collapse (the whole run if stable)."""
    values = signal_series(run.series, run.tau).get(name)
    if values is None:
        return None
    end = run.t_star if run.t_star >= 0 else values.size
    values = values[:end]
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else None


def calibrate(runs, false_alarm=0.05, persist=1, margin=0.25):
    """Thresholds at which at most ``false_alarm`` of the stable ``runs`` would alarm.

    Each signal's threshold is ``1 + margin`` times the stable runs' largest value but for a share
    ``false_alarm/k`` of them (k signals, Bonferroni), so the union alarms on at most
    ``false_alarm`` of the calibration runs, and the margin absorbs the seed-to-seed spread of
    held-out runs; signals no stable run records are not watched.
    """
    if not 0 <= false_alarm < 1:
        raise ValueError(f"false_alarm = {false_alarm!r} must be in [0, 1)")
    if not margin >= 0:
        raise ValueError(f"margin = {margin!r} must be ≥ 0")
    stable = [run for run in runs if run.t_star < 0]
    if len(stable) < 2:
        raise ValueError(f"calibration needs at least two stable runs, got {len(stable)}")
    maxima = {name: [m for run in stable if (m := _run_maxima(run, name)) is not None] for name in SIGNALS}
    maxima = {name: np.asarray(values) for name, values in maxima.items() if len(values) >= 2}
    if not maxima:
        raise ValueError("the stable runs record none of " + ", ".join(SIGNALS))
    share = false_alarm / len(maxima)
    thresholds = {}
    for name, values in maxima.items():
        allowed = int(math.floor(share * values.size))  # stable runs allowed above the threshold
        level = np.sort(values)[::-1][allowed] if allowed < values.size else values.min()
        above = np.nextafter(level * (1 + margin), np.inf) if level > 0 else np.finfo(float).tiny
        thresholds[name] = float(above)
    notes = {"stable_runs": len(stable), "false_alarm": false_alarm, "margin": margin,
             "rule": f"(1 + margin) × largest stable value but ⌊{share:.3g}·n⌋ per signal"}
    return Thresholds(**thresholds, persist=persist, notes=notes)


def evaluate(runs, thresholds, lead_syncs=2):
    """Lead time before t* on collapsing runs and the false-alarm rate on stable runs.

    A collapse is warned in time when the alarm comes at least ``lead_syncs`` weight syncs (τ steps each)
    before t*; an alarm at or after t* is no warning.
    """
    leads, missed, false_alarms, first_signal = [], 0, 0, {}
    collapsed = [run for run in runs if run.t_star >= 0]
    stable = [run for run in runs if run.t_star < 0]
    for run in runs:
        alarm = scan(run.series, run.tau, run.eta, thresholds)
        if run.t_star < 0:
            false_alarms += alarm is not None
            continue
        if alarm is None or alarm.step >= run.t_star:
            missed += 1
            leads.append(0.0)
            continue
        leads.append((run.t_star - alarm.step) / run.tau)
        for name in alarm.signals:
            first_signal[name] = first_signal.get(name, 0) + 1
    leads = np.asarray(leads)
    # a warning 2 syncs ahead needs a sync of the run to watch first: t* ≥ (lead + 1)·τ
    warnable = np.asarray([run.t_star >= (lead_syncs + 1) * run.tau for run in collapsed], dtype=bool)
    return {
        "collapses": len(collapsed), "stable": len(stable),
        "warned": int(len(collapsed) - missed),
        "warned_by_lead": int((leads >= lead_syncs).sum()) if leads.size else 0,
        "share_warned_by_lead": float((leads >= lead_syncs).mean()) if leads.size else math.nan,
        "median_lead_syncs": float(np.median(leads)) if leads.size else math.nan,
        "warnable": int(warnable.sum()),
        "share_of_warnable": float((leads[warnable] >= lead_syncs).mean()) if warnable.any() else math.nan,
        "false_alarms": int(false_alarms),
        "false_alarm_rate": false_alarms / len(stable) if stable else math.nan,
        "first_signals": first_signal, "lead_syncs": lead_syncs,
    }


def warn_store(ds, thresholds, constants=None, horizon=None):
    """Every run of a store scanned: ``[{tau, eta, seed, t_star, alarm}]`` (alarm: :meth:`Alarm.as_dict` or None)."""
    rows = []
    for run in runs_of(ds):
        alarm = scan(run.series, run.tau, run.eta, thresholds, horizon or ds.sizes["step"], constants)
        rows.append({"run": run.label, "tau": run.tau, "eta": run.eta, "t_star": run.t_star,
                     "alarm": None if alarm is None else alarm.as_dict()})
    return rows


def warn_text(rows):
    """One line per run: its alarm (step, signals, suggested η) or none, and its t*."""
    lines = []
    for row in rows:
        alarm = row["alarm"]
        collapse = f"t* = {row['t_star']}" if row["t_star"] >= 0 else "no collapse"
        lines.append(f"{row['run']}: " + (f"ALARM at {alarm['reason']}" if alarm else "no alarm") + f"  ({collapse})")
    return "\n".join(lines)
