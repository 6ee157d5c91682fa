"""The GRPO loss of docs/theory.md (3) on token log-probs, built from :mod:`theory.grpo`.

**[choice]** Per-token ratios (2) by default: each completion's clipped terms are
averaged over its tokens, then over the n completions and the B groups (the
original GRPO normalisation), so one completion is one sample ``ℓ_i``. With
``sequence_ratio`` the ratio is ``ρ_i = exp Σ_t (log π_θ − log π_β)`` as in the
theory. The KL to the reference is the per-token k3 estimator, averaged alike.
"""

from theory.grpo import advantages, clipped_term, k3_kl, ratio


def masked_mean(x, mask):
    """Mean of each row of ``x`` over its ``mask``; an empty row gives 0."""
    return (x * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def sequence_advantages(rewards):
    """[B, n] rewards → [B·n] advantages (1), prompt-major as the rows of a batch."""
    return advantages(rewards).reshape(-1)


def grpo_loss(logp, behaviour_logp, mask, adv, eps, ref_logp=None, kappa=0.0, sequence_ratio=False):
    """``−(1/(B n)) Σ_i [clipped term of (3) − κ · KL_i]`` and the ratios it used.

    ``logp``, ``behaviour_logp``, ``ref_logp`` and ``mask`` are [N, L]; ``adv`` is [N].
    Returns ``(loss, rho, rho_mask)``: the ratios (per token [N, L], or per
    sequence [N]) and which of them are real, for ``clip_frac`` and ``ess``.
    """
    mask = mask.to(logp.dtype)
    if sequence_ratio:
        rho = ratio((logp * mask).sum(-1), (behaviour_logp * mask).sum(-1))
        terms, rho_mask = clipped_term(rho, adv, eps), mask.sum(-1) > 0
    else:
        rho = ratio(logp, behaviour_logp)
        terms, rho_mask = masked_mean(clipped_term(rho, adv[:, None], eps), mask), mask > 0
    if ref_logp is not None and kappa:
        terms = terms - kappa * masked_mean(k3_kl(logp, ref_logp), mask)
    return -terms.mean(), rho.detach(), rho_mask
