"""The §7 split-halves bias estimator: its closed form, unbiasedness, and a zero-bias interval."""

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from llm.bias import bias_estimate
from llm.config import GRPOConfig, RunConfig, WarmstartConfig
from llm.pipeline import train


def split_halves(stale, fresh):
    """THEORY.md §7 literally, averaged over every split of each batch into two halves."""
    def halves(x):
        count = x.shape[0]
        for first in itertools.combinations(range(count), count // 2):
            second = [i for i in range(count) if i not in first]
            yield x[list(first)].mean(0), x[second].mean(0)

    gap = ((stale.mean(0) - fresh.mean(0)) ** 2).sum()
    noise_s = np.mean([0.25 * ((a - b) ** 2).sum() for a, b in halves(stale)])
    noise_f = np.mean([0.25 * ((a - b) ** 2).sum() for a, b in halves(fresh)])
    return gap - noise_s - noise_f


@pytest.mark.parametrize("seed", [0, 1])
def test_closed_form_equals_the_average_over_all_half_splits(seed):
    gen = torch.Generator().manual_seed(seed)
    stale, fresh = torch.randn(6, 5, generator=gen, dtype=torch.float64), torch.randn(4, 5, generator=gen,
                                                                                       dtype=torch.float64)
    estimate = bias_estimate(stale, fresh)["bias_sq"]
    assert estimate == pytest.approx(float(split_halves(stale.numpy(), fresh.numpy())), rel=1e-10)


def test_estimate_is_unbiased_and_its_interval_covers_zero_bias():
    gen = torch.Generator().manual_seed(0)
    shift = torch.zeros(50, dtype=torch.float64)
    shift[0] = 0.5  # ‖b‖² = 0.25
    biased, covered = [], 0
    for _ in range(300):
        noise = lambda: torch.randn(8, 50, generator=gen, dtype=torch.float64)  # noqa: E731
        biased.append(bias_estimate(noise() + shift, noise())["bias_sq"])
    for _ in range(40):
        same = bias_estimate(torch.randn(8, 50, generator=gen, dtype=torch.float64),
                             torch.randn(8, 50, generator=gen, dtype=torch.float64))
        covered += same["bias_sq_lo"] <= 0 <= same["bias_sq_hi"]
    # the noise terms alone are 2·50/8 = 12.5 ≫ 0.25; the mean of 300 estimates has std ≈ 0.3
    assert np.mean(biased) == pytest.approx(0.25, abs=1.2)
    assert covered >= 34  # a 90 % interval; the jackknife is slightly conservative (97 % in 200 draws)


def test_on_policy_run_reports_bias_intervals_containing_zero(tmp_path):
    """At τ = 1 the stale and fresh policies are identical, so every interval should contain 0."""
    torch.set_num_threads(1)
    config = RunConfig(steps=4, eta=1e-4, warmstart=WarmstartConfig(steps=100, cache_dir=str(tmp_path)),
                       grpo=GRPOConfig(prompts=6, group=6, bias_every=1, val_every=4))
    series, _ = train(config)
    assert np.all(series["bias_norm_lo"] == 0.0)
    assert np.all(series["bias_norm_hi"] > 0) and np.all(series["bias_norm"] <= series["bias_norm_hi"])


def test_bias_probe_does_not_change_the_trajectory(tmp_path):
    base = RunConfig(steps=3, tau=2, eta=1e-4, warmstart=WarmstartConfig(steps=100, cache_dir=str(tmp_path)),
                     grpo=GRPOConfig(prompts=4, group=4, val_every=3))
    plain, _ = train(base)
    probed, _ = train(dataclasses.replace(base, grpo=dataclasses.replace(base.grpo, bias_every=1)))
    np.testing.assert_array_equal(plain["drift"], probed["drift"])
    assert np.all(np.isnan(plain["bias_norm"])) and np.all(np.isfinite(probed["bias_norm"]))
