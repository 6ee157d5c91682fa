"""The one metrics schema of docs/theory.md §6, and the tree statistics behind it.

``synthetic/`` and ``llm/`` record exactly these names, per learner step, on the
dims of :data:`RUN_DIMS`; sweeps add their grid dims in front. Diagnostics that
separate staleness bias from momentum and batch reuse (docs/theory.md §6) are
listed in :data:`DIAGNOSTICS`.
"""

import functools

import numpy as np
from array_api_compat import array_namespace, device, is_torch_namespace

METRICS = {
    "reward": "mean group reward of the batch consumed at step t",
    "val_reward": "mean reward on a held-out prompt split never used for rollouts",
    "grad_cos": "cos(u_t, u_{t-1}) of consecutive applied updates",
    "drift": "‖θ_t − θ_0‖",
    "stale_drift": "‖θ_t − β_t‖",
    "bias_norm": "‖b_t‖ = ‖g(θ_t, β_t) − g_on(θ_t)‖ (exact for bandits; estimated for LLMs)",
    "clip_frac": "fraction of ratios outside [1−ε, 1+ε]",
    "ess": "normalised effective sample size (Σw)²/(n Σw²) of the ratios",
    "kl_ref": "KL(π_θ ‖ π_ref)",
}
"""§6 per-step quantities: name → definition."""

DIAGNOSTICS = {
    "bias_bound": "Lemma 1 at the probe pair: 2·probe_G·probe_tv + probe_gap ≥ bias_norm",
    "bias_bound_alt": "the other split (17b) at the probe pair: 2·probe_G_on·probe_tv + probe_gap_beta ≥ bias_norm",
    "probe_G": "sup_z ‖∇ℓ(θ_t; β_t, z)‖ at the probe (exact or an upper bound)",
    "probe_G_on": "sup_z ‖∇ℓ(θ_t; θ_t, z)‖ at the probe: no importance ratio",
    "probe_tv": "TV(D_β, D_θ) of the groups at the probe (exact or the bound min(1, n·TV of one answer))",
    "probe_gap": "‖E_{D_θ}[∇ℓ(θ; β, ·) − ∇ℓ(θ; θ, ·)]‖ at the probe, exact",
    "probe_gap_beta": "‖E_{D_β}[∇ℓ(θ; β, ·) − ∇ℓ(θ; θ, ·)]‖ at the probe, exact",
    "success": "exact expected train success of θ_t (synthetic engines), every step",
    "theta_proj": "P (θ_t − θ_0), P a sparse ±1 sign sketch from a fixed seed, E‖Px‖² = ‖x‖² "
                  "(dims … step, proj), float32",
    "update_norm": "‖u_t‖ = ‖θ_{t+1} − θ_t‖ / η, the applied update without η (its max is U)",
    "raw_grad_cos": "cos(ĝ_t, ĝ_{t−1}) of consecutive raw surrogate gradients",
    "batch_cos": "cos of the summed updates of consecutive rollout batches (weight-sync cycles)",
    "max_neg_ratio": "largest ratio ρ on a negative-advantage sample in the batch",
    "trunc_prob": "probability that an answer does not end (autoregressive tasks)",
    "staleness": "τ_t measured from policy-version tags: learner version − batch version",
    "eta_scale": "η_t/η of an adaptive learning-rate policy (ESS-scaled: min(1, ess/ess_base))",
}
"""Per-step diagnostics beside §6 (absent where a substrate cannot measure one)."""

RUN_SUMMARIES = {
    "collapse_step": "t*: first step after which training reward is 0 to the end (−1 if none; censored)",
    "collapse_sync": "k* = ⌊t*/τ⌋ (−1 if no collapse)",
    "msd_slope": "slope of log ‖θ_t − θ_0‖ against log t (≈1 ballistic, ≈0.5 diffusive)",
}
"""§6 per-run quantities, computed from the per-step series by the analysis."""

RUN_DIMS = ("seed", "step")
"""Dims of one run's series; a sweep prepends its grid dims, e.g. ``("tau", "eta")``."""

SWEEP_DIMS = ("tau", "eta", "seed", "step")
"""The standard sweep layout of a results store."""

SCHEMA_VERSION = 4
"""Version of the meaning of the stored variables; bumped whenever one changes, so stores named with it are
recomputed rather than silently reused by newer code."""

PROJECTIONS = 8
"""k: random projections of θ_t − θ_0 recorded per step (``theta_proj``), enough for lag-MSD statistics."""

PROJECTION_SEED = 20240611
"""Seed of the projection matrix P of ``theta_proj``: one fixed P for every run and engine."""

PROJECTION_CHUNK = 1 << 24
"""Columns whose codes are generated at a time above :data:`PROJECTION_CODES_CACHE`."""

PROJECTION_CACHE = 1 << 22
"""Entries (k·d) up to which P is kept as a dense matrix (one matmul per call; JAX traces it as a constant)."""

PROJECTION_CODES_CACHE = 1 << 28
"""Parameters d up to which the sketch's per-coordinate codes are kept between calls (2 bytes each)."""


def l2_norm(x):
    """Euclidean norm of a flat parameter vector (§1: norms live in parameter space)."""
    xp = array_namespace(x)
    return xp.sqrt(xp.sum(x * x))


def cosine(u, v, tiny=1e-30):
    """``cos(u, v) = ⟨u, v⟩ / (‖u‖ ‖v‖)``; 0 when either vector is 0 (no direction)."""
    xp = array_namespace(u, v)
    denominator = l2_norm(u) * l2_norm(v)
    return xp.where(denominator > tiny, xp.sum(u * v) / xp.maximum(denominator, tiny), 0.0 * denominator)


def step_statistics(theta_t, theta_0, beta_t, u_t, u_prev=None, g_t=None, g_prev=None):
    """The §6 tree statistics of step t: ``drift`` ‖θ_t − θ_0‖ (33), ``stale_drift`` ‖θ_t − β_t‖ (25),
    ``update_norm`` ‖u_t‖ (8), ``grad_cos`` cos(u_t, u_{t−1}) and ``raw_grad_cos`` cos(ĝ_t, ĝ_{t−1}) (4).

    A cosine whose previous vector is None (the first step) is left out of the dict.
    """
    stats = {"drift": l2_norm(theta_t - theta_0), "stale_drift": l2_norm(theta_t - beta_t), "update_norm": l2_norm(u_t)}
    if u_prev is not None:
        stats["grad_cos"] = cosine(u_t, u_prev)
    if g_t is not None and g_prev is not None:
        stats["raw_grad_cos"] = cosine(g_t, g_prev)
    return stats


_MASK = 0xFFFFFFFF


def _mix32(x):
    """A 32-bit integer hash (lowbias32) on int64 values < 2^32: every output bit depends on every input bit.

    Products wrap modulo 2^64 in int64 on numpy and torch alike, and their low 32 bits are the exact product
    modulo 2^32.
    """
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK
    return x ^ (x >> 16)


def _key(*words):
    """A 32-bit key from Python integers (the same hash, on ints)."""
    key = 0x9E3779B9
    for word in words:
        key = _mix32(key ^ (word & _MASK))
    return key


def _sketch_codes(xp, start, stop, k, seed, dev):
    """code_j = bucket_j + k·[s_j = −1] for the columns ``start:stop``, from one 32-bit hash of (seed, j).

    Every backend computes the same integers, so numpy, JAX and torch get the same P.
    """
    j = xp.arange(start, stop, dtype=xp.int64, device=dev)
    h = _mix32((j * (_key(seed, 1) | 1) + _key(seed, 2)) & _MASK)
    return (h & 0x7FFFFFFF) % k + k * (h >> 31)


@functools.lru_cache(maxsize=8)
def _cached_matrix(d, k, seed, dtype="float64"):
    """P as a dense [k, d] numpy matrix (small d) in ``dtype``: P[i, j] = s_j if bucket_j = i, else 0 (its entries
    are exact in any float type)."""
    code = _sketch_codes(array_namespace(np.empty(0)), 0, d, k, seed, None)
    rows = np.arange(k)[:, None]
    return ((code == rows).astype(np.float64) - (code == rows + k).astype(np.float64)).astype(dtype)


@functools.lru_cache(maxsize=2)
def _cached_codes(xp, d, k, seed, dev):
    """The codes of all d columns on x's device as int16 (2 bytes a parameter), reused between calls."""
    return xp.astype(_sketch_codes(xp, 0, d, k, seed, dev), xp.int16)


def project(x, k=PROJECTIONS, seed=PROJECTION_SEED, chunk=PROJECTION_CHUNK):
    """``P x`` over the last axis of ``x`` (``theta_proj``, §6), a sparse sign sketch fixed by ``seed``: column j
    of P has one entry s_j = ±1 in row h_j, so (P x)_i = Σ_{h_j = i} s_j x_j and E‖P x‖² = ‖x‖²
    (E s_i s_j = δ_ij); shape ``x.shape[:-1] + (k,)`` in x's namespace, device and dtype.

    One hash per coordinate, O(d) work and no k × d matrix for large d (a 135M-parameter model costs one
    scatter-add per probe); P is the same on numpy, JAX (also traced) and torch. d must stay below 2^32.
    """
    xp = array_namespace(x)
    d = x.shape[-1]
    if d >= 2**32 or not 1 <= k < 2**14:
        raise ValueError(f"d = {d} parameters, k = {k} rows: project takes d < 2^32 and 1 ≤ k < 2^14")
    if k * d <= PROJECTION_CACHE:
        # kept in x's precision where it is float32: no per-call cast of the k·d entries
        matrix = _cached_matrix(d, k, seed, "float32" if x.dtype == xp.float32 else "float64")
        matrix = xp.asarray(matrix, device=device(x)) if is_torch_namespace(xp) else xp.asarray(matrix)
        return xp.matmul(x, xp.matrix_transpose(xp.astype(matrix, x.dtype, copy=False)))
    cached = _cached_codes(xp, d, k, seed, device(x)) if d <= PROJECTION_CODES_CACHE else None
    total = 0.0
    for start in range(0, d, chunk):
        stop = min(start + chunk, d)
        codes = (xp.astype(cached[start:stop], xp.int64) if cached is not None
                 else _sketch_codes(xp, start, stop, k, seed, device(x)))
        total = total + _signed_bucket_sums(xp, x[..., start:stop], codes, k)
    return total


def _signed_bucket_sums(xp, x, codes, k):
    """(P x)_i = Σ_{code_j = i} x_j − Σ_{code_j = i + k} x_j over the last axis: one scatter-add."""
    shape = x.shape[:-1] + (2 * k,)
    if is_torch_namespace(xp):
        sums = xp.zeros(shape, dtype=x.dtype, device=device(x)).index_add_(-1, codes, x)
    elif hasattr(x, "at"):  # JAX
        sums = xp.zeros(shape, dtype=x.dtype).at[..., codes].add(x)
    else:
        rows = np.reshape(x, (-1, x.shape[-1]))
        sums = np.stack([np.bincount(codes, weights=row, minlength=2 * k) for row in rows]).reshape(shape)
        sums = sums.astype(x.dtype)
    return sums[..., :k] - sums[..., k:]
