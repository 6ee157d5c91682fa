"""GRPO's group advantage, importance ratio and clipped surrogate, docs/theory.md §1.

Every function works on numpy, JAX (also under jit/vmap/grad) and torch (also
under autograd) arrays: the namespace is taken from the inputs.
"""

from array_api_compat import array_namespace

ADVANTAGE_DELTA = 1e-6
"""δ in (1): keeps a group with zero reward spread finite (its advantages are 0)."""


def advantages(r, delta=ADVANTAGE_DELTA):
    """Group-normalised advantages (1): ``A_i = (r_i − mean r) / (std r + δ)``.

    ``r`` has the group on its last axis; the std is the population std, so a
    group whose rewards are all equal gets ``A = 0`` exactly.
    """
    xp = array_namespace(r)
    centred = r - xp.mean(r, axis=-1, keepdims=True)
    std = xp.sqrt(xp.mean(centred * centred, axis=-1, keepdims=True))
    return centred / (std + delta)


def ratio(logp_theta, logp_beta):
    """Importance ratio (2): ``ρ = π_θ(y|x) / π_β(y|x) = exp(log π_θ − log π_β)``."""
    xp = array_namespace(logp_theta, logp_beta)
    return xp.exp(logp_theta - logp_beta)


def clipped_term(rho, adv, eps, dual_clip=None):
    """Per-sample clipped objective of (3): ``min(ρA, clip(ρ, 1−ε, 1+ε) A)``.

    With ``dual_clip = c > 1`` a negative-advantage term is floored at ``c·A``
    (dual-clip PPO): its gradient vanishes once ``ρ > c``, so a sample that has
    become much likelier than when it was drawn cannot kick the policy.
    """
    xp = array_namespace(rho, adv)
    term = xp.minimum(rho * adv, xp.clip(rho, 1.0 - eps, 1.0 + eps) * adv)
    if dual_clip is None:
        return term
    return xp.where(adv < 0, xp.maximum(term, dual_clip * adv), term)


def clipped_slopes(rho, adv, eps, dual_clip=None):
    """The partial derivatives ``(∂ψ/∂ρ, ∂ψ/∂A)`` of :func:`clipped_term` ψ (3): ``(A, ρ)`` where the unclipped
    ρA is the minimum, ``(0, clip(ρ, 1−ε, 1+ε))`` where the clip binds, and with ``dual_clip = c`` ``(0, c)`` where
    the floor c·A binds. At a kink the unclipped side counts: inside [1 − ε, 1 + ε] both terms are ρA, so there
    this is the derivative itself (and autodiff's average of the two equal sides)."""
    xp = array_namespace(rho, adv)
    clipped = xp.clip(rho, 1.0 - eps, 1.0 + eps)
    unclipped = rho * adv <= clipped * adv
    d_rho, d_adv = xp.where(unclipped, adv, 0.0 * adv), xp.where(unclipped, rho, clipped)
    if dual_clip is None:
        return d_rho, d_adv
    floored = (adv < 0) & (xp.minimum(rho * adv, clipped * adv) < dual_clip * adv)
    return xp.where(floored, 0.0 * adv, d_rho), xp.where(floored, dual_clip + 0.0 * adv, d_adv)


def surrogate(rho, adv, eps, kl=0.0, kappa=0.0, dual_clip=None):
    """Behaviour-aware surrogate (3) of one group, to be maximised.

    ``ℓ = (1/n) Σ_i min(ρ_i A_i, clip(ρ_i) A_i) − κ · KL(π_θ ‖ π_ref)``; the group
    is the last axis of ``rho`` and ``adv``.
    """
    xp = array_namespace(rho, adv)
    return xp.mean(clipped_term(rho, adv, eps, dual_clip), axis=-1) - kappa * kl


def k3_kl(logp_theta, logp_ref):
    """Per-token k3 estimate of KL(π_θ ‖ π_ref) on samples from π_θ (§1, (3)).

    ``exp(q) − q − 1`` with ``q = log π_ref − log π_θ``: unbiased and ≥ 0.
    """
    xp = array_namespace(logp_theta, logp_ref)
    q = logp_ref - logp_theta
    return xp.exp(q) - q - 1.0


def clip_fraction(rho, eps, mask=None):
    """``clip_frac`` (§6): fraction of ratios outside ``[1−ε, 1+ε]``, over the entries where ``mask`` is 1."""
    xp = array_namespace(rho)
    outside = xp.astype((rho < 1.0 - eps) | (rho > 1.0 + eps), rho.dtype)
    if mask is None:
        return xp.mean(outside)
    return xp.sum(mask * outside) / xp.sum(mask)


def effective_sample_size(w, mask=None):
    """``ess`` (§6): normalised effective sample size ``(Σw)² / (n Σw²)`` ∈ (0, 1] of the ratios ``w``.

    With ``mask`` (1 on the entries that count), ``n = Σ mask`` and the sums run over those entries.
    """
    xp = array_namespace(w)
    if mask is None:
        mask = xp.ones_like(w)
    return xp.sum(mask * w) ** 2 / (xp.sum(mask) * xp.sum(mask * w * w))
