"""The split-halves staleness-bias estimator of THEORY.md §7, with a bootstrap interval.

Given per-group surrogate gradients at θ_t on a *new* stale batch from β_t
(``S``, [B_s, d]) and on a fresh batch from θ_t (``F``, [B_f, d]), the §7
estimator ``‖ḡ_s − ḡ_f‖² − ¼‖ĝ_s⁽¹⁾ − ĝ_s⁽²⁾‖² − ¼‖ĝ_f⁽¹⁾ − ĝ_f⁽²⁾‖²`` averaged
over all ways of splitting each batch into halves is

    ‖b‖² ≈ ‖S̄ − F̄‖² − tr Ĉ_s / B_s − tr Ĉ_f / B_f      (Ĉ: unbiased covariance),

an unbiased estimate of ``‖g(θ_t, β_t) − g_on(θ_t)‖²`` (it can be negative).
Its interval comes from a delete-one-group jackknife. Everything runs on the
Gram matrices of the gradients, so a recomputation costs O(B²), not O(d).
"""

from statistics import NormalDist

import torch

from llm.loss import grpo_loss, sequence_advantages
from llm.probes import flat_grads
from llm.rollout import token_logprobs


def group_gradients(model, batch, eps, temperature, reference=None, kappa=0.0, sequence_ratio=False):
    """[B, d] gradients ∇_θ ℓ(θ; β, z_b) of the surrogate (3) of each group of ``batch`` at the current θ."""
    grads = []
    length = batch.completion_mask.shape[1]
    for b in range(batch.rewards.shape[0]):
        group = batch.rows(slice(b, b + 1))
        logp = token_logprobs(model, group.input_ids, group.attention_mask, length, temperature)
        ref_logp = None
        if reference is not None and kappa:
            with torch.no_grad():
                ref_logp = token_logprobs(reference, group.input_ids, group.attention_mask, length, temperature)
        loss, _, _ = grpo_loss(logp, group.behaviour_logp, group.completion_mask, sequence_advantages(group.rewards),
                               eps, ref_logp, kappa, sequence_ratio)
        model.zero_grad()
        loss.backward()
        grads.append(-flat_grads(model))  # the loss is the negated surrogate
    model.zero_grad()
    return torch.stack(grads).double()


def _squared_bias(gram_s, gram_f, cross, i, j):
    """The estimate on groups ``i`` of the stale and ``j`` of the fresh batch, from Gram matrices."""
    ks, kf, ksf = gram_s[i][:, i], gram_f[j][:, j], cross[i][:, j]
    gap = ks.mean() + kf.mean() - 2 * ksf.mean()

    def trace_cov_over_count(k):
        count = k.shape[0]
        return (k.diagonal().sum() - k.sum() / count) / (count - 1) / count

    return gap - trace_cov_over_count(ks) - trace_cov_over_count(kf)


def _jackknife_variance(statistic, count):
    """Delete-one jackknife variance of ``statistic(keep)`` over ``count`` groups."""
    values = torch.stack([statistic(torch.cat([torch.arange(i), torch.arange(i + 1, count)])) for i in range(count)])
    return (count - 1) / count * ((values - values.mean()) ** 2).sum()


def bias_estimate(stale, fresh, level=0.9):
    """``{bias_sq, bias_sq_lo, bias_sq_hi, bias_norm, bias_norm_lo, bias_norm_hi}`` from [B_s, d] and [B_f, d].

    ``bias_sq`` is the unbiased (possibly negative) estimate of ‖b‖²; its
    ``level`` interval is normal with the delete-one-group jackknife variance of
    both batches (a bootstrap would shift it: a resample with repeated groups
    understates the noise terms). Norms are square roots of values floored at 0.
    """
    count_s, count_f = stale.shape[0], fresh.shape[0]
    if count_s < 3 or count_f < 3:
        raise ValueError(f"the bias estimator needs at least 3 groups per batch, got {count_s} and {count_f}")
    gram_s, gram_f, cross = stale @ stale.T, fresh @ fresh.T, stale @ fresh.T
    every_s, every_f = torch.arange(count_s), torch.arange(count_f)
    estimate = float(_squared_bias(gram_s, gram_f, cross, every_s, every_f))
    variance = (_jackknife_variance(lambda i: _squared_bias(gram_s, gram_f, cross, i, every_f), count_s)
                + _jackknife_variance(lambda j: _squared_bias(gram_s, gram_f, cross, every_s, j), count_f))
    half = NormalDist().inv_cdf((1 + level) / 2) * float(variance) ** 0.5
    lo, hi = estimate - half, estimate + half
    root = lambda x: max(x, 0.0) ** 0.5  # noqa: E731
    return {"bias_sq": estimate, "bias_sq_lo": lo, "bias_sq_hi": hi,
            "bias_norm": root(estimate), "bias_norm_lo": root(lo), "bias_norm_hi": root(hi)}
