"""The one metrics schema of THEORY.md §6, and the tree statistics behind it.

``synthetic/`` and ``llm/`` record exactly these names, per learner step, on the
dims of :data:`RUN_DIMS`; sweeps add their grid dims in front. Diagnostics that
separate staleness bias from momentum and batch reuse (SYNTHETIC_NOTES.md) are
listed in :data:`DIAGNOSTICS`.
"""

from array_api_compat import array_namespace

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
    "bias_bound": "Lemma 1 bound C_b ‖θ_t − β_t‖ with the run's local constants",
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


def l2_norm(x):
    """Euclidean norm of a flat parameter vector (§1: norms live in parameter space)."""
    xp = array_namespace(x)
    return xp.sqrt(xp.sum(x * x))


def cosine(u, v, tiny=1e-30):
    """``cos(u, v) = ⟨u, v⟩ / (‖u‖ ‖v‖)``; 0 when either vector is 0 (no direction)."""
    xp = array_namespace(u, v)
    denominator = l2_norm(u) * l2_norm(v)
    return xp.where(denominator > tiny, xp.sum(u * v) / xp.maximum(denominator, tiny), 0.0 * denominator)
