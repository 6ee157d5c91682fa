"""The GRPO loss of llm.loss against a slow per-sequence Python reference of docs/theory.md (1)–(3)."""

import math

import pytest
import torch

from llm.loss import grpo_loss, sequence_advantages


def reference_loss(logp, behaviour, ref, mask, rewards, eps, kappa, sequence_ratio):
    """Loop over groups, sequences and tokens with Python floats."""
    groups, n = len(rewards), len(rewards[0])
    total = 0.0
    for b in range(groups):
        mean = sum(rewards[b]) / n
        std = math.sqrt(sum((r - mean) ** 2 for r in rewards[b]) / n)
        for i in range(n):
            row = b * n + i
            adv = (rewards[b][i] - mean) / (std + 1e-6)
            tokens = [t for t in range(len(mask[row])) if mask[row][t]]
            if sequence_ratio:
                rho = math.exp(sum(logp[row][t] - behaviour[row][t] for t in tokens))
                term = min(rho * adv, min(max(rho, 1 - eps), 1 + eps) * adv)
            else:
                terms = []
                for t in tokens:
                    rho = math.exp(logp[row][t] - behaviour[row][t])
                    terms.append(min(rho * adv, min(max(rho, 1 - eps), 1 + eps) * adv))
                term = sum(terms) / max(len(tokens), 1)
            kls = [math.exp(ref[row][t] - logp[row][t]) - (ref[row][t] - logp[row][t]) - 1 for t in tokens]
            total += term - kappa * sum(kls) / max(len(kls), 1)
    return -total / (groups * n)


@pytest.mark.parametrize("sequence_ratio", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_equals_per_sequence_reference(seed, sequence_ratio):
    gen = torch.Generator().manual_seed(seed)
    groups, n, length = 3, 4, 5
    logp = -torch.rand(groups * n, length, generator=gen, dtype=torch.float64) * 3
    behaviour = logp + 0.3 * torch.randn(groups * n, length, generator=gen, dtype=torch.float64)
    ref = logp + 0.2 * torch.randn(groups * n, length, generator=gen, dtype=torch.float64)
    mask = (torch.rand(groups * n, length, generator=gen) < 0.8).long()
    mask[0] = 0  # an empty completion contributes no tokens
    rewards = (torch.rand(groups, n, generator=gen) < 0.5).double()
    loss, rho, rho_mask = grpo_loss(logp, behaviour, mask, sequence_advantages(rewards), 0.2, ref, 0.1,
                                    sequence_ratio)
    expected = reference_loss(logp.tolist(), behaviour.tolist(), ref.tolist(), mask.tolist(), rewards.tolist(),
                              0.2, 0.1, sequence_ratio)
    assert loss.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert rho.shape == ((groups * n,) if sequence_ratio else (groups * n, length))
    assert rho_mask.sum() == ((mask.sum(-1) > 0).sum() if sequence_ratio else mask.sum())


def test_loss_gradient_vanishes_on_groups_with_equal_rewards():
    logp = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    loss, _, _ = grpo_loss(logp, torch.zeros(4, 3, dtype=torch.float64), torch.ones(4, 3),
                           sequence_advantages(torch.ones(2, 2, dtype=torch.float64)), 0.2)
    loss.backward()
    assert torch.equal(logp.grad, torch.zeros_like(logp))
