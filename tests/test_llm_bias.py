"""The streamed §7 estimator: equals the dense one, unbiased on planted gradients, honest intervals; schedule."""

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from llm.bias import Streamed, squared_norm
from llm.config import GRPOConfig, RunConfig, WarmstartConfig
from llm.pipeline import train
from llm.probes import probe_schedule


def streamed(x, chunks):
    """Fold the rows of ``x`` [B, d] into a Streamed one at a time (each row split in two pieces, like parameters)."""
    acc = Streamed(x.shape[0], chunks, x.shape[1])
    for i, row in enumerate(x):
        acc.add(i, [row[:2], row[2:]])
    return acc


def split_halves(stale, fresh):
    """docs/theory.md §7 literally, averaged over every split of each batch into two halves."""
    def halves(x):
        count = x.shape[0]
        for first in itertools.combinations(range(count), count // 2):
            second = [i for i in range(count) if i not in first]
            yield x[list(first)].mean(0), x[second].mean(0)

    gap = ((stale.mean(0) - fresh.mean(0)) ** 2).sum()
    noise_s = np.mean([0.25 * ((a - b) ** 2).sum() for a, b in halves(stale)])
    noise_f = np.mean([0.25 * ((a - b) ** 2).sum() for a, b in halves(fresh)])
    return gap - noise_s - noise_f


def dense_jackknife_variance(stale, fresh):
    """Delete-one-group jackknife variance of the dense U-statistic, from the [B, d] gradients themselves."""
    def within(x):
        k = x @ x.T
        return (k.sum() - np.trace(k)) / (len(x) * (len(x) - 1))

    def estimate(s, f):
        return within(s) + within(f) - 2 * s.mean(0) @ f.mean(0)

    total = 0.0
    for x, other, first in ((stale, fresh, True), (fresh, stale, False)):
        count = x.shape[0]
        values = [estimate(np.delete(x, i, 0), other) if first else estimate(other, np.delete(x, i, 0))
                  for i in range(count)]
        total += (count - 1) / count * ((np.array(values) - np.mean(values)) ** 2).sum()
    return total


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("chunks", [2, 3, 6])
def test_streamed_estimate_equals_the_dense_average_over_all_half_splits(seed, chunks):
    gen = torch.Generator().manual_seed(seed)
    stale, fresh = (torch.randn(count, 5, generator=gen, dtype=torch.float64) for count in (6, 6))
    estimate = squared_norm(streamed(stale, chunks), streamed(fresh, chunks))[0]
    # the chunks only shape the interval: the point estimate is the full U-statistic (sums and per-group norms)
    assert estimate == pytest.approx(float(split_halves(stale.numpy(), fresh.numpy())), rel=1e-5, abs=1e-6)


def test_one_group_per_chunk_gives_the_dense_delete_one_group_jackknife():
    gen = torch.Generator().manual_seed(3)
    stale, fresh = (torch.randn(count, 4, generator=gen, dtype=torch.float64) for count in (5, 4))
    _, _, _, se = squared_norm(streamed(stale, 5), streamed(fresh, 4))
    assert se ** 2 == pytest.approx(dense_jackknife_variance(stale.numpy(), fresh.numpy()), rel=1e-5)


def test_memory_is_m_vectors_whatever_the_batch():
    acc = streamed(torch.randn(64, 7, generator=torch.Generator().manual_seed(0)), 4)
    assert acc.sums.shape == (4, 7) and acc.count.tolist() == [16] * 4 and len(acc.norms) == 64


def planted(gen, count, shift, scale=1.0):
    """``count`` per-group gradients from a planted population: mean ``shift``, anisotropic noise."""
    d = shift.shape[0]
    noise = torch.randn(count, d, generator=gen, dtype=torch.float64) * scale * torch.linspace(0.2, 2.0, d)
    return noise + shift


def test_estimate_is_unbiased_on_a_planted_gradient_population():
    gen = torch.Generator().manual_seed(0)
    bias = torch.zeros(50, dtype=torch.float64)
    bias[:5] = 0.3  # ‖b‖² = 0.45
    estimates = [squared_norm(streamed(planted(gen, 16, bias), 4), streamed(planted(gen, 16, 0 * bias), 4))[0]
                 for _ in range(120)]
    # noise terms E‖s̄ − f̄‖² − ‖b‖² = 2·tr C/16 ≈ 8.5 ≫ 0.45 are removed; the mean of 120 has std ≈ 0.09
    assert np.mean(estimates) == pytest.approx(0.45, abs=0.3)
    one_sample = [squared_norm(streamed(planted(gen, 12, bias), 4))[0] for _ in range(120)]
    assert np.mean(one_sample) == pytest.approx(0.45, abs=0.3)


@pytest.mark.parametrize("chunks", [4, 8])
def test_ninety_percent_intervals_cover_the_planted_bias_without_being_vacuous(chunks):
    gen = torch.Generator().manual_seed(chunks)
    bias = torch.zeros(40, dtype=torch.float64)
    bias[0] = 1.0
    estimates, covered, half = [], 0, []
    for _ in range(120):
        value, lo, hi, _ = squared_norm(streamed(planted(gen, 16, bias, 0.5), chunks),
                                        streamed(planted(gen, 16, 0 * bias, 0.5), chunks))
        estimates.append(value)
        covered += lo <= 1.0 <= hi
        half.append((hi - lo) / 2)
    # the delete-one-chunk jackknife of a U-statistic errs wide (Efron–Stein): at least nominal coverage, and
    # half-widths within 2.5× those of an exact normal 90 % interval (1.645 sd of the estimates themselves)
    assert covered / 120 >= 0.85
    assert np.median(half) <= 2.5 * 1.645 * np.std(estimates)


@pytest.mark.parametrize("tau, every, lags, expected", [
    (4, 8, (3,), {3: 3, 11: 3, 19: 3}),
    (4, 8, (3, 2, 1, 0), {3: 3, 10: 2, 17: 1, 24: 0}),
    (2, 1, (1,), {t: 1 for t in range(1, 24, 2)}),
    (1, 6, (0,), {0: 0, 6: 0, 12: 0, 18: 0, 24: 0}),
])
def test_probe_schedule_fires_at_the_stated_lags(tau, every, lags, expected):
    schedule = probe_schedule(25, tau, every, lags)
    assert schedule == expected
    assert all(t % tau == lag for t, lag in schedule.items())  # under (11) the lag of step t is t mod τ


def test_async_probes_fire_once_the_queue_is_full():
    assert probe_schedule(12, 3, 4, (2,), "async") == {2: 2, 6: 2, 10: 2}


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    torch.set_num_threads(1)
    cache = str(tmp_path_factory.mktemp("warm"))
    return RunConfig(steps=6, tau=3, eta=1e-3, warmstart=WarmstartConfig(steps=60, cache_dir=cache),
                     grpo=GRPOConfig(prompts=6, group=6, bias_every=3, val_every=6))


def test_probes_measure_the_most_stale_step_and_do_not_change_the_trajectory(probed):
    series, proj, constants, _ = train(probed)
    plain, plain_proj, _, _ = train(dataclasses.replace(probed, grpo=dataclasses.replace(probed.grpo, bias_every=0)))
    fired = np.flatnonzero(np.isfinite(series["bias_sq"]))
    np.testing.assert_array_equal(fired, [2, 5])
    np.testing.assert_array_equal(series["staleness"][fired], [2, 2])  # the probe's lag is the store's staleness
    assert np.all(series["bias_sq_lo"][fired] <= series["bias_sq"][fired])
    assert np.all(series["bias_sq"][fired] <= series["bias_sq_hi"][fired])
    np.testing.assert_array_equal(series["bias_norm"][fired], np.sqrt(np.maximum(series["bias_sq"][fired], 0)))
    # Lemma 1 at the pair: the bound's terms are measured, and the bound is their combination
    np.testing.assert_allclose(series["bias_bound"][fired], 2 * series["probe_G"][fired] * series["probe_tv"][fired]
                               + series["probe_gap"][fired])
    np.testing.assert_array_equal(series["drift"], plain["drift"])
    np.testing.assert_array_equal(proj, plain_proj)
    for name in ("G_stale", "G_on", "L_beta", "L_D", "U", "region"):
        assert np.isfinite(constants[f"const_{name}"]) and constants[f"const_{name}_se"] >= 0, name


def test_on_policy_probes_cover_zero_bias(probed):
    """At τ = 1 the stale and fresh policies are identical: ‖b‖² = 0, and 90 % intervals should say so."""
    config = dataclasses.replace(probed, tau=1, steps=4, grpo=dataclasses.replace(probed.grpo, bias_every=1))
    series, _, _, _ = train(config)
    lo, hi = series["bias_sq_lo"], series["bias_sq_hi"]
    assert np.all(np.isfinite(series["bias_sq"])) and np.sum((lo <= 0) & (0 <= hi)) >= 3
    assert np.all(series["probe_tv"] == 0) and np.all(series["probe_gap"] == 0)
