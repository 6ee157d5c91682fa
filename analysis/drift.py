"""Ballistic or diffusive: the lag-MSD exponent H of θ_t, against shuffled increments (§4.4, Theorem 2).

From ``theta_proj`` (per run ``[step, k]``: k random projections of θ_t − θ_0 scaled so that
E‖Px‖² = ‖x‖², docs/theory.md §6), over a window of steps [start, end) (docs/statistics.md §4):

    M(Δ) = median_t ‖P(θ_{t+Δ} − θ_t)‖²,   t, t + Δ in the window,        M(Δ) ∝ Δ^{2H},

fitted by least squares of log M on log Δ over the geometric lags Δ = 1, 2, 4, … ≤ n/4 (n the window
length). H = 1 is ballistic (consecutive updates aligned, ‖θ_t − θ_0‖ ∝ t), H = ½ diffusive, H → 0 a
path that stops moving. The differences start at every t of the window (not ‖θ_t − θ_0‖ over
[t*/2, t*)), and M is their median (``statistic="mean"``: the plain mean): a one-off kick or offset
changes Δ of the n − Δ differences, which moves a mean by O(Δ/n) — enough to turn a ballistic run
diffusive on the planted ``offsets`` world — and a median hardly at all. For Gaussian increments the
median of ‖·‖² is a fixed multiple of the mean, so the exponent is the same.

**Reference.** The same statistic on the path rebuilt from the window's increments in a random order
with random signs (seeded): the same step sizes, no order and no alignment, so M_ref(Δ) ∝ Δ and
H_ref ≈ ½ up to the estimator's finite-window bias (lower on short windows). A permutation alone keeps
a net drift (a sum of aligned increments does not depend on their order), so a ballistic path would stay
ballistic; the signs remove it. ``corrected`` = H − H_ref + ½ is H with that bias taken out.

**Labels** (per run): ``undetermined`` when the window is shorter than :data:`MIN_WINDOW`; ``converging``
when the steps shrink by :data:`SHRINK` or more over the window (median step of the first quarter ÷ the
last), so that the late path barely moves and the MSD is bounded by the early motion, or when the MSD
saturates outright (corrected H ≤ :data:`CONVERGING_BELOW`); else ``ballistic`` when H ≥
:data:`BALLISTIC_ABOVE` (raw H: the estimator's bias on short windows is downward, so this errs towards
"diffusive"); else ``diffusive``. A converging run is never called diffusive.

The window of a collapsing run ends before the final sync cycle before its collapse
(:func:`window_end`): a kick that triggers the collapse is not part of the walk that led to it.
"""

from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

from analysis.intervals import NAN_INTERVAL, VERDICT_LEVEL, Interval

MIN_WINDOW = 16
"""Shortest window (steps) with three lags (1, 2, 4 ≤ n/4)."""
BALLISTIC_ABOVE = 0.75
"""H at or above which a run is ballistic (halfway between ½ and 1)."""
CONVERGING_BELOW = 0.25
"""Corrected H at or below which a run is converging (halfway between 0 and ½)."""
SHRINK = 3.0
"""Step sizes falling by this factor (median over the first quarter of the window ÷ over the last) mark a
converging run: its late path barely moves, so the MSD is bounded by the early motion (saturates)."""
LABELS = ("ballistic", "diffusive", "converging", "undetermined")


def window_end(t_low, tau, steps=None):
    """End (exclusive) of the pre-collapse window: the sync step that opens the cycle holding step t_low − 1.

    ``t_low`` is the first step t* may be; the cycle the collapse happens in, [v(t_low − 1), …) with
    v(t) = t − t mod τ (12), is left out. NaN where ``t_low`` is NaN (no collapse: use the run's length).
    With ``steps`` (the store's step coordinate) the end is an entry index along it: the entries before it
    have steps before that sync step (without: steps 0, 1, 2, …, where the two agree).
    """
    t_low = np.asarray(t_low, dtype=float)
    tau = np.asarray(tau, dtype=float)
    last = t_low - 1
    with np.errstate(invalid="ignore"):
        end = np.where(np.isfinite(t_low), np.maximum(last - np.mod(last, tau), 0.0), np.nan)
    if steps is None:
        return end
    return np.where(np.isfinite(end), np.searchsorted(steps, np.nan_to_num(end)), np.nan)


def lags(n):
    """Geometric lags 1, 2, 4, … ≤ n // 4 of a window of n steps."""
    out = []
    lag = 1
    while lag <= n // 4:
        out.append(lag)
        lag *= 2
    return np.array(out, dtype=int)


def _msd(path, start, end, lag_list, statistic="mean"):
    """``(runs, lags)`` mean (or median) over the window of ‖x_{t+Δ} − x_t‖² (NaN where it has no pair)."""
    runs, steps = path.shape[:2]
    out = np.full((runs, len(lag_list)), np.nan)
    t = np.arange(steps)
    for j, lag in enumerate(lag_list):
        if lag >= steps:
            break
        diff = path[:, lag:] - path[:, :-lag]
        sq = np.einsum("rtk,rtk->rt", diff, diff)
        valid = (t[None, :-lag] >= start[:, None]) & (t[None, :-lag] < (end - lag)[:, None]) & np.isfinite(sq)
        if statistic == "median":
            out[:, j] = _masked_median(sq, valid)
            continue
        count = valid.sum(axis=1)
        total = np.where(valid, sq, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, j] = np.where(count > 0, total / count, np.nan)
    return out


def _slopes(msd, lag_list, n):
    """Per run: H, half the least-squares slope of log M on log Δ over the lags ≤ n/4 (NaN below 3 lags)."""
    log_lag = np.log(lag_list.astype(float))
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(msd)
    use = np.isfinite(y) & (lag_list[None, :] <= (n // 4)[:, None])
    count = use.sum(axis=1)
    x = np.where(use, log_lag[None, :], 0.0)
    yy = np.where(use, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = x.sum(axis=1) / count
        my = yy.sum(axis=1) / count
        sxx = np.where(use, (x - mx[:, None]) ** 2, 0.0).sum(axis=1)
        sxy = np.where(use, (x - mx[:, None]) * (yy - my[:, None]), 0.0).sum(axis=1)
        return np.where(count >= 3, sxy / sxx / 2, np.nan)


def _shuffled(path, start, end, rng):
    """Paths rebuilt from each window's increments, permuted and with random signs, starting at 0.

    The signs are drawn per projection: an aligned path would otherwise become a one-dimensional random
    walk along its direction, whose MSD over one window is far noisier than a k-dimensional one's."""
    runs, steps, k = path.shape
    inc = np.diff(path, axis=1)
    t = np.arange(steps - 1)
    inside = (t[None, :] >= start[:, None]) & (t[None, :] < (end - 1)[:, None])
    keys = np.where(inside, rng.random(inside.shape), np.inf)
    order = np.argsort(keys, axis=1)
    moved = np.take_along_axis(inc, order[..., None], axis=1)
    signs = rng.choice(np.array([-1.0, 1.0], dtype=path.dtype), size=(runs, steps - 1, k))
    moved = np.where(np.take_along_axis(inside, order, axis=1)[..., None], moved * signs, 0.0)
    rebuilt = np.zeros_like(path)
    np.cumsum(moved, axis=1, out=rebuilt[:, 1:])
    return rebuilt


@dataclass(frozen=True)
class DriftExponents:
    """Per-run drift statistics, arrays of the runs' leading shape."""

    H: np.ndarray
    """Lag-MSD exponent over the window."""
    H_shuffled: np.ndarray
    """The same on shuffled, sign-randomised increments (the diffusive reference)."""
    label: np.ndarray
    """``ballistic`` / ``diffusive`` / ``converging`` / ``undetermined``."""
    shrink: np.ndarray
    """Median step size over the first quarter of the window ÷ over the last quarter."""
    window: np.ndarray
    """Window length in steps."""

    @property
    def corrected(self):
        """H − H_shuffled + ½: H with the estimator's finite-window bias taken out."""
        return self.H - self.H_shuffled + 0.5


def drift_exponents(theta_proj, start=0, end=None, seed=0, shuffles=2, statistic="median", runs=None):
    """:class:`DriftExponents` of every run of ``theta_proj`` ``(..., step, k)`` over windows [start, end).

    ``start``/``end`` broadcast to the runs' leading shape (``end`` NaN or None: the whole run); steps
    with a non-finite projection shorten the window to the finite stretch before them. ``runs`` (bool, the
    leading shape) limits the work to those runs (the others are ``undetermined``). ``statistic`` is the
    median over t by default: a one-off offset moves Δ of the n − Δ differences, which shifts a mean by
    O(Δ/n) but a median hardly at all (``"mean"``: the plain lag-MSD).
    """
    lead, steps, total, chosen, path, start, end, n, lag_list = _windows(theta_proj, start, end, runs)
    n_runs = path.shape[0]
    h = _slopes(_msd(path, start, end, lag_list, statistic), lag_list, n)
    rng = np.random.default_rng(seed)
    reference = []
    for _ in range(shuffles):
        rebuilt = _shuffled(path, start, end, rng)
        reference.append(_slopes(_msd(rebuilt, np.zeros(n_runs, dtype=int), n, lag_list, statistic), lag_list, n))
    h_ref = np.mean(reference, axis=0) if n_runs else np.zeros(0)

    step_size = np.linalg.norm(np.diff(path, axis=1), axis=-1)
    t = np.arange(steps - 1)
    quarter = np.maximum(n // 4, 1)
    first = (t[None, :] >= start[:, None]) & (t[None, :] < (start + quarter)[:, None])
    last = (t[None, :] >= (end - 1 - quarter)[:, None]) & (t[None, :] < (end - 1)[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        shrink = _masked_median(step_size, first) / _masked_median(step_size, last)

    corrected = h - h_ref + 0.5
    label = np.where(h >= BALLISTIC_ABOVE, "ballistic", "diffusive")
    label = np.where((corrected <= CONVERGING_BELOW) | (shrink >= SHRINK), "converging", label)
    label = np.where((n < MIN_WINDOW) | ~np.isfinite(h), "undetermined", label)

    def spread(values, fill):
        out = np.full(total, fill, dtype=np.asarray(values).dtype if fill != "undetermined" else object)
        out[chosen] = values
        return out.reshape(lead)

    return DriftExponents(spread(h, np.nan), spread(h_ref, np.nan), spread(label, "undetermined").astype(str),
                          spread(shrink, np.nan), spread(n.astype(float), 0.0))


def _windows(theta_proj, start, end, runs):
    """The runs worth fitting (window ≥ :data:`MIN_WINDOW`) as float64 paths with their clipped windows."""
    theta_proj = np.asarray(theta_proj)
    lead, (steps, k) = theta_proj.shape[:-2], theta_proj.shape[-2:]
    total = int(np.prod(lead))
    chosen = np.ones(total, dtype=bool) if runs is None else np.broadcast_to(np.asarray(runs, dtype=bool), lead).ravel()
    end = np.full(lead, steps, dtype=float) if end is None else np.broadcast_to(np.asarray(end, dtype=float), lead)
    end = np.where(np.isfinite(end), end, steps).ravel()
    start = np.broadcast_to(np.asarray(start, dtype=float), lead).ravel()
    # too short a window cannot be labelled: skip the work (the run stays undetermined)
    chosen = chosen & (end - start >= MIN_WINDOW)
    end, start = end[chosen], start[chosen]
    path = theta_proj.reshape(total, steps, k)[chosen].astype(np.float64)
    finite = np.isfinite(path).all(axis=-1)
    first_bad = np.where(finite.all(axis=1), steps, np.argmin(finite, axis=1))
    end = np.clip(np.minimum(end, first_bad), 0, steps).astype(int)
    start = np.clip(start, 0, steps).astype(int)
    n = np.maximum(end - start, 0)
    path = np.where(finite[..., None], path, 0.0)
    lag_list = lags(max(int(n.max()) if path.shape[0] else 0, MIN_WINDOW))
    return lead, steps, total, chosen, path, start, end, n, lag_list


def msd_curve(theta_proj, start=0, end=None, runs=None, seed=0, statistic="median"):
    """``(lags, M, M_shuffled)`` over a class of runs, for figures: per lag, the geometric mean over the runs
    whose window holds 4 lags of M(Δ)/M(1) and of the same for the shuffled reference (None: no such run)."""
    _, _, _, _, path, start, end, n, lag_list = _windows(theta_proj, start, end, runs)
    if path.shape[0] == 0:
        return None
    rebuilt = _shuffled(path, start, end, np.random.default_rng(seed))
    curves = []
    for m in (_msd(path, start, end, lag_list, statistic),
              _msd(rebuilt, np.zeros(path.shape[0], dtype=int), n, lag_list, statistic)):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.log(m / m[:, :1])
        ratio = np.where(lag_list[None, :] <= (n // 4)[:, None], ratio, np.nan)
        finite = np.isfinite(ratio)
        total = np.where(finite, ratio, 0.0).sum(axis=0)
        count = finite.sum(axis=0)  # a lag no run reaches gets NaN, not numpy's empty-slice warning
        curves.append(np.exp(np.where(count > 0, total / np.maximum(count, 1), np.nan)))
    return lag_list, curves[0], curves[1]


def _masked_median(values, mask):
    filled = np.where(mask, values, np.nan)
    out = np.full(values.shape[0], np.nan)
    ok = mask.any(axis=1)
    if ok.any():
        out[ok] = np.nanmedian(filled[ok], axis=1)
    return out


def class_exponent(values, members, seed_axis=-1, level=VERDICT_LEVEL):
    """Mean of per-run ``values`` over the runs where ``members`` holds, with a t interval over seeds.

    Runs of one seed share its randomness across cells, so seeds are the independent units: the mean is
    the ratio Σ values / Σ runs over the class, and its standard error comes from the per-seed sums (the
    delta method for a ratio of seed totals), with n_seeds − 1 degrees of freedom. NaN below two seeds
    holding a finite member.
    """
    values = np.moveaxis(np.asarray(values, dtype=float), seed_axis, -1)
    members = np.moveaxis(np.asarray(members, dtype=bool), seed_axis, -1) & np.isfinite(values)
    n_seeds = values.shape[-1]
    totals = np.where(members, values, 0.0).reshape(-1, n_seeds).sum(axis=0)
    counts = members.reshape(-1, n_seeds).sum(axis=0).astype(float)
    used = counts > 0
    if used.sum() < 2:
        return NAN_INTERVAL
    totals, counts = totals[used], counts[used]
    mean = totals.sum() / counts.sum()
    m = used.sum()
    residual = (totals - mean * counts) / counts.mean()
    se = np.sqrt(np.sum(residual ** 2) / (m * (m - 1)))
    half = student_t.ppf((1 + level) / 2, m - 1) * se
    return Interval(float(mean), float(mean - half), float(mean + half))
